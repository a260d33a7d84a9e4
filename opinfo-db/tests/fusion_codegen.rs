//! Without a GPU: every op of the database, as the one-op trace of its samples on cuda:0, goes
//! through the fusion executor's claim and partition, and the kernel of every region it makes
//! compiles with NVRTC (the PyTorch wheel's, for sm_90). To keep CI short: the first two samples in
//! float32 and the first one in each other dtype. On a GPU the conformance suite runs the kernels
//! of every sample against eager PyTorch (`tests/conformance.rs`, the "fusion" path).

use opinfo_db::{DeviceKind, OpDb};
use std::collections::HashSet;
use thunder_executors::cuda::compile_ptx;
use thunder_executors::fusion::generate;
use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};

#[test]
fn every_region_of_every_op_compiles_with_nvrtc() {
    let db = OpDb::builtin().expect("loads");
    let mut sources: HashSet<String> = HashSet::new();
    let mut fused_ops: HashSet<String> = HashSet::new();
    let mut failures = Vec::new();
    for e in db.entries() {
        for &dtype in e.dtypes(DeviceKind::Cuda) {
            let take = if dtype == thunder_ir::DType::F32 {
                2
            } else {
                1
            };
            for sample in e
                .samples(
                    DeviceKind::Cuda.device(),
                    dtype,
                    opinfo_db::conformance::SEED,
                )
                .into_iter()
                .take(take)
            {
                let Ok(trace) = sample.build_trace() else {
                    continue;
                };
                let plan =
                    match ExecutionPlan::compile(&trace, &[&FusionExecutor, &TorchExecutor::new()])
                    {
                        Ok(p) => p,
                        Err(err) => {
                            failures.push(format!("{sample}: plan: {err}"));
                            continue;
                        }
                    };
                let c = plan.claimed();
                let ops: Vec<_> = c.ops.iter().map(|o| o.bsym.clone()).collect();
                for (i, r) in c.regions.iter().enumerate() {
                    fused_ops.insert(e.name.clone());
                    match generate(&c.trace, &ops, r, &format!("r{i}")) {
                        Ok(k) => {
                            sources.insert(k.source);
                        }
                        Err(err) => failures.push(format!("{sample}: codegen: {err}")),
                    }
                }
            }
        }
    }
    // NVRTC takes most of the time: compile on every core.
    let sources: Vec<String> = sources.into_iter().collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = sources.len().div_ceil(threads).max(1);
    let compile_errors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|s| compile_ptx(s, "compute_90").err().map(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a compile thread panicked".into()])
            })
            .collect()
    });
    failures.extend(compile_errors);
    eprintln!(
        "{} ops fused, {} distinct kernels compiled with NVRTC",
        fused_ops.len(),
        sources.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The elementwise, shape and reduction ops of the database fuse (about 110 of them today).
    assert!(fused_ops.len() >= 100, "only {} ops fused", fused_ops.len());
    for op in [
        "ltorch.softmax",
        "ltorch.rms_norm",
        "ltorch.silu",
        "prims.sum",
        "ltorch.gelu",
    ] {
        assert!(fused_ops.contains(op), "{op} is not fused");
    }
}
