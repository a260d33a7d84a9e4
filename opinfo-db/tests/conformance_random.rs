//! Random cases on top of the listed samples: for a set of elementwise, reduction and nn ops,
//! proptest draws shapes (broadcastable, 0-size, non-contiguous) and values from
//! `OpEntry::strategy` and each case goes through the same check as the listed samples (direct and
//! decomposed paths against eager libtorch, on the CPU).

use opinfo_db::conformance::check_case;
use opinfo_db::OpDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use thunder_ir::{DType, Device};

fn run(op: &str, dtypes: &[DType], cases: u32) {
    let db = OpDb::builtin().expect("the builtin database loads");
    let entry = db.by_name(op).unwrap_or_else(|| panic!("no entry {op}"));
    for &dtype in dtypes {
        let Some(strategy) = entry.strategy(Device::Cpu, dtype) else {
            panic!("{op} has no sample for {dtype}");
        };
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |sample| {
                check_case(entry, &sample)
                    .map(|_| ())
                    .map_err(|m| TestCaseError::fail(format!("{sample}\n    {m}")))
            })
            .unwrap_or_else(|e| panic!("{op} ({dtype}): {e}"));
    }
}

#[test]
fn random_add() {
    run("ltorch.add", &[DType::F32, DType::BF16, DType::I64], 48);
}

#[test]
fn random_mul_and_div() {
    run("ltorch.mul", &[DType::F32, DType::I32], 32);
    run("ltorch.div", &[DType::F32, DType::F64], 32);
}

#[test]
fn random_comparisons_and_where() {
    run("ltorch.lt", &[DType::F32, DType::I64], 32);
    run("ltorch.where", &[DType::F32, DType::BF16], 32);
}

#[test]
fn random_unary() {
    for op in [
        "ltorch.exp",
        "ltorch.tanh",
        "ltorch.silu",
        "ltorch.abs",
        "prims.neg",
    ] {
        run(op, &[DType::F32, DType::BF16], 24);
    }
}

#[test]
fn random_reductions_and_softmax() {
    for op in [
        "ltorch.sum",
        "ltorch.mean",
        "ltorch.amax",
        "ltorch.softmax",
        "ltorch.log_softmax",
    ] {
        run(op, &[DType::F32, DType::BF16], 24);
    }
}
