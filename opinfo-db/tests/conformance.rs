//! Conformance of every op against eager libtorch: one test per op and device, generated from
//! `ops/*.yaml` by build.rs (`cargo test -p opinfo-db softmax` runs the softmax ops). CUDA tests
//! run on `cuda:0` when libtorch sees a GPU and print a skip message otherwise.

use opinfo_db::conformance::{check_op, Report};
use thunder_ir::Device;

fn check(op: &str, device: Device) {
    let report: Report = check_op(op, device).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{op} on {device}: {} cases, {} skipped, {} passed by the float64 re-check, {} failed",
        report.cases,
        report.skipped,
        report.rechecked,
        report.failures.len()
    );
    assert!(
        report.cases + report.skipped > 0,
        "{op} has no cases on {device}"
    );
    if !report.failures.is_empty() {
        panic!(
            "{} of {} cases of {op} on {device} failed:\n{}",
            report.failures.len(),
            report.cases,
            report.failures.join("\n")
        );
    }
}

fn check_cuda(op: &str) {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: {op} on cuda:0 (libtorch sees no CUDA device)");
        return;
    }
    check(op, Device::Cuda(0));
}

include!(concat!(env!("OUT_DIR"), "/conformance_tests.rs"));
