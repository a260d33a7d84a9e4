//! The plan-overhead workload of `benches/plan_overhead.rs` as a plain binary, for instruction
//! counts (deterministic, unlike timings on a shared machine):
//!
//! ```sh
//! cargo build --release -p thunder-executors --example overhead_count
//! valgrind --tool=callgrind target/release/examples/overhead_count direct 300
//! valgrind --tool=callgrind target/release/examples/overhead_count plan 300
//! valgrind --tool=callgrind target/release/examples/overhead_count none 300   # set-up only
//! ```
//!
//! (plan - direct) / (300 * 64) is the plan's overhead in instructions per executed op.

use std::hint::black_box;
use tch::{Device, Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::{Arg, DType, PrimOp, TensorMeta, TraceBuilder};
const N: usize = 64;
const OPS: [PrimOp; 4] = [PrimOp::Add, PrimOp::Mul, PrimOp::Neg, PrimOp::Sub];
fn main() {
    tch::set_num_threads(1);
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut b = TraceBuilder::new("chain");
    let x = b.input("x", TensorMeta::new(DType::F32, [4])).unwrap();
    let mut t = x;
    for i in 0..N {
        let op = OPS[i % 4];
        let args: Vec<Arg> = if op == PrimOp::Neg {
            vec![t.into()]
        } else {
            vec![t.into(), x.into()]
        };
        t = b.prim(op, args, vec![]).unwrap();
    }
    let trace = b.build(&[t]).unwrap();
    let plan = ExecutionPlan::compile(&trace, &[&TorchExecutor::new()]).unwrap();
    let x = Tensor::randn([4], (Kind::Float, Device::Cpu));
    let inputs = [x.shallow_clone()];
    let iters: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for _ in 0..iters {
        if mode == "plan" {
            let _ = black_box(plan.run_tensors(&inputs).unwrap());
        } else if mode == "direct" {
            let mut t = x.shallow_clone();
            for i in 0..N {
                t = match OPS[i % 4] {
                    PrimOp::Add => t.f_add(&x),
                    PrimOp::Mul => t.f_mul(&x),
                    PrimOp::Neg => t.f_neg(),
                    _ => t.f_sub(&x),
                }
                .unwrap();
            }
            let _ = black_box(t);
        }
    }
}
