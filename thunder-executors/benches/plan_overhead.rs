//! Host overhead of `ExecutionPlan` per instruction, against calling the same tch ops directly.
//!
//! A chain of 64 elementwise prims on tiny CPU tensors, where kernel time is as small as it gets
//! and host overhead shows most. `cargo bench -p thunder-executors --bench plan_overhead`; the last
//! lines print the overhead per instruction and its share of the direct call time (target: < 10%).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::{Arg, DType, PrimOp, TensorMeta, Trace, TraceBuilder};

const N: usize = 64;
const OPS: [PrimOp; 4] = [PrimOp::Add, PrimOp::Mul, PrimOp::Neg, PrimOp::Sub];

fn chain() -> Trace {
    let mut b = TraceBuilder::new("chain");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [4]))
        .expect("input");
    let mut t = x;
    for i in 0..N {
        let op = OPS[i % OPS.len()];
        let args: Vec<Arg> = if op == PrimOp::Neg {
            vec![t.into()]
        } else {
            vec![t.into(), x.into()]
        };
        t = b.prim(op, args, vec![]).expect("prim");
    }
    b.build(&[t]).expect("trace")
}

fn direct(x: &Tensor) -> Tensor {
    let mut t = x.shallow_clone();
    for i in 0..N {
        t = match OPS[i % OPS.len()] {
            PrimOp::Add => t.f_add(x),
            PrimOp::Mul => t.f_mul(x),
            PrimOp::Neg => t.f_neg(),
            _ => t.f_sub(x),
        }
        .expect("tch op");
    }
    t
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(1);
    let trace = chain();
    let plan = ExecutionPlan::compile(&trace, &[&TorchExecutor::new()]).expect("plan");
    let x = Tensor::randn([4], (Kind::Float, Device::Cpu));
    let want = direct(&x);
    let got = plan.run_tensors(&[x.shallow_clone()]).expect("run");
    assert!(
        got[0].allclose(&want, 0.0, 0.0, true),
        "the plan computes what the direct calls compute"
    );

    let mut g = c.benchmark_group("chain_of_64_prims_cpu_f32x4");
    g.bench_function("direct_tch", |b| {
        b.iter(|| black_box(direct(black_box(&x))))
    });
    let inputs = [x.shallow_clone()];
    g.bench_function("execution_plan", |b| {
        b.iter(|| black_box(plan.run_tensors(black_box(&inputs)).expect("run")))
    });
    g.finish();

    // The figure the issue asks for, from both sides measured here in the same process:
    // alternating rounds (direct, plan, direct, plan, ...) so drift hits both alike.
    for _ in 0..1000 {
        let _ = black_box(direct(&x));
        let _ = black_box(plan.run_tensors(&inputs).expect("run"));
    }
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..101 {
        d.push(time_ns(|| {
            let _ = black_box(direct(black_box(&x)));
        }));
        p.push(time_ns(|| {
            let _ = black_box(plan.run_tensors(black_box(&inputs)).expect("run"));
        }));
    }
    let (d, p) = (median(d), median(p));
    let per_op_direct = d / N as f64;
    let per_op_overhead = (p - d) / N as f64;
    println!(
        "plan overhead (median of 101 alternating rounds of 200 runs): direct {:.0} ns/op, plan {:.0} ns/op, \
         overhead {:.0} ns per instruction = {:.1}% of a direct call (target < 10%)",
        per_op_direct,
        p / N as f64,
        per_op_overhead,
        100.0 * per_op_overhead / per_op_direct
    );
}

fn time_ns(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..200 {
        f();
    }
    start.elapsed().as_nanos() as f64 / 200.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

criterion_group!(benches, bench);
criterion_main!(benches);
