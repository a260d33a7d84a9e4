//! The fusion executor's CUDA source is a function of the region alone: generated twice, it is
//! the same text (the PTX cache is keyed by it, and identical layers share one kernel). A rows
//! region that reduces in two compute types declares two shared-memory arrays, whose order once
//! followed a hash set's. Needs no GPU: code generation only.
#![cfg(feature = "cuda")]

use thunder_executors::fusion::generate;
use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};
use thunder_ir::{DType, Device, TensorMeta, TraceBuilder};

#[test]
fn a_region_reducing_in_two_compute_types_generates_one_source() {
    let mut b = TraceBuilder::new("two_types");
    let cuda = Device::Cuda(0);
    let x = b
        .input("x", TensorMeta::new(DType::F32, [8, 64]).on(cuda))
        .unwrap();
    let y = b
        .input("y", TensorMeta::new(DType::F64, [8, 64]).on(cuda))
        .unwrap();
    let sx = b.sum(x, &[1], false).unwrap();
    let sy = b.sum(y, &[1], false).unwrap();
    let s = b.add(sx, sy).unwrap();
    let t = b.build(&[s]).unwrap();
    let sources = (0..8)
        .map(|_| {
            let plan =
                ExecutionPlan::compile(&t, &[&FusionExecutor, &TorchExecutor::new()]).unwrap();
            let c = plan.claimed();
            let ops: Vec<_> = c.ops.iter().map(|o| o.bsym.clone()).collect();
            c.regions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    generate(&c.trace, &ops, r, &format!("r{i}"))
                        .unwrap()
                        .source
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let all: String = sources[0].concat();
    assert!(
        all.contains("__shared__ float") && all.contains("__shared__ double"),
        "{all}"
    );
    assert!(
        sources.iter().all(|s| *s == sources[0]),
        "the sources differ between runs"
    );
}
