//! `prims.aten`: ATen operators called by name through libtorch's dispatcher, forward and
//! backward (`prims.aten_vjp`, ATen's autograd), against tch's eager ops and autograd on the same
//! inputs.

use tch::{Device, Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::ops::aten::{AtenArg, AtenCall, AtenOut};
use thunder_ir::{Arg, DType, Op, PrimOp, TensorMeta, TraceBuilder};

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.kind() == b.kind() && a.allclose(b, 1e-5, 1e-6, false)
}

fn call(op: &str, args: Vec<AtenArg>, outs: Vec<AtenOut>) -> AtenCall {
    AtenCall {
        op: op.into(),
        args,
        outs,
    }
}

/// `y, i = cummax(x * w, 1); loss = (y * y).sum() + logcumsumexp(x, 0).sum()`: two ATen calls, one
/// with an integer output, differentiated by thunder's grad around ATen's own formulas.
#[test]
fn aten_calls_run_and_differentiate_like_eager() {
    let mut b = TraceBuilder::new("f");
    let x = b
        .input(
            "x",
            TensorMeta::new(DType::F32, [3usize, 5]).with_grad(true),
        )
        .unwrap();
    let w = b
        .input(
            "w",
            TensorMeta::new(DType::F32, [3usize, 5]).with_grad(true),
        )
        .unwrap();
    let xw = b.mul(x, w).unwrap();
    let cm = call(
        "cummax.default",
        vec![AtenArg::Tensor(0), AtenArg::Int(1)],
        vec![AtenOut::Like(0), AtenOut::Tensor(DType::I64, vec![3, 5])],
    );
    let outs = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![xw])],
            cm.attrs(),
        )
        .unwrap();
    let lse = call(
        "logcumsumexp.default",
        vec![AtenArg::Tensor(0), AtenArg::Int(0)],
        vec![AtenOut::Like(0)],
    );
    let l = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x])],
            lse.attrs(),
        )
        .unwrap();
    let sq = b.mul(outs[0], outs[0]).unwrap();
    let s1 = b.sum(sq, &[0, 1], false).unwrap();
    let s2 = b.sum(l[0], &[0, 1], false).unwrap();
    let loss = b.add(s1, s2).unwrap();
    let t = b.build(&[loss, outs[1]]).unwrap();
    let ta = b_grad(&t);

    tch::manual_seed(3);
    let xs = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
    let ws = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
    // Eager, with autograd.
    let xe = xs.copy().set_requires_grad(true);
    let we = ws.copy().set_requires_grad(true);
    let (y, i) = (&xe * &we).cummax(1);
    let loss_e = (&y * &y).sum(Kind::Float) + xe.logcumsumexp(0).sum(Kind::Float);
    let g = Tensor::run_backward(&[&loss_e], &[&xe, &we], false, false);

    let plan = ExecutionPlan::compile(&ta, &[&TorchExecutor::new()]).unwrap();
    let printed = plan.claimed().to_python();
    assert!(printed.contains("prims.aten_vjp("), "{printed}");
    let one = Tensor::ones([] as [i64; 0], (Kind::Float, Device::Cpu));
    let out = plan.run_tensors(&[xs, ws, one]).unwrap();
    assert!(
        close(&out[0], &loss_e.detach()),
        "loss {:?} vs {:?}",
        out[0],
        loss_e
    );
    assert_eq!(out[1], i, "cummax's indices");
    assert!(close(&out[2], &g[0]), "grad x");
    assert!(close(&out[3], &g[1]), "grad w");
}

fn b_grad(t: &thunder_ir::Trace) -> thunder_ir::Trace {
    let wrt: Vec<_> = t.inputs.clone();
    thunder_transforms::grad(t, &wrt).unwrap_or_else(|e| panic!("grad: {e}"))
}

/// Every dtype reaches ATen as the `c10::ScalarType` it names (`aten::to.dtype`), lists of tensors
/// and strings pass, and an output unlike the trace's metadata is an error that says so.
#[test]
fn arguments_cross_as_aten_reads_them_and_outputs_are_checked() {
    for d in DType::ALL {
        let mut b = TraceBuilder::new("f");
        let x = b.input("x", TensorMeta::new(DType::F32, [2usize])).unwrap();
        let c = call(
            "to.dtype",
            vec![
                AtenArg::Tensor(0),
                AtenArg::DType(d),
                AtenArg::Bool(false),
                AtenArg::Bool(false),
                AtenArg::None,
            ],
            vec![AtenOut::Tensor(d, vec![2])],
        );
        let y = b
            .call(Op::Prim(PrimOp::Aten), vec![Arg::List(vec![x])], c.attrs())
            .unwrap();
        let t = b.build(&y).unwrap();
        let plan = ExecutionPlan::compile(&t, &[&TorchExecutor::new()]).unwrap();
        let out = plan
            .run_tensors(&[Tensor::from_slice(&[1.5f32, -2.0])])
            .unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(out[0].kind(), thunder_executors::convert::kind(d), "{d}");
    }
    // cat(Tensor[] tensors, int dim), div.Tensor_mode (a string).
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [2usize])).unwrap();
    let y = b.input("y", TensorMeta::new(DType::F32, [2usize])).unwrap();
    let cat = call(
        "cat.default",
        vec![
            AtenArg::Tensors(vec![Some(0), Some(1), Some(0)]),
            AtenArg::Int(0),
        ],
        vec![AtenOut::Tensor(DType::F32, vec![6])],
    );
    let c = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x, y])],
            cat.attrs(),
        )
        .unwrap();
    let div = call(
        "div.Tensor_mode",
        vec![
            AtenArg::Tensor(0),
            AtenArg::Tensor(1),
            AtenArg::Str("floor".into()),
        ],
        vec![AtenOut::Like(0)],
    );
    let d = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x, y])],
            div.attrs(),
        )
        .unwrap();
    let x4 = b
        .input("x4", TensorMeta::new(DType::F32, [1usize, 2, 2, 3]))
        .unwrap();
    let clone = call(
        "clone.default",
        vec![AtenArg::Tensor(0), AtenArg::MemoryFormat(2)],
        vec![AtenOut::Like(0)],
    );
    let cl = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x4])],
            clone.attrs(),
        )
        .unwrap();
    // A number where the schema takes a tensor: it promotes as a number (bfloat16 * 0.5 is
    // bfloat16, not float64).
    let h = b
        .input("h", TensorMeta::new(DType::BF16, [2usize]))
        .unwrap();
    let mul = call(
        "mul.Tensor",
        vec![
            AtenArg::Tensor(0),
            AtenArg::Wrapped(Box::new(AtenArg::Float(0.5))),
        ],
        vec![AtenOut::Like(0)],
    );
    let m = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![h])],
            mul.attrs(),
        )
        .unwrap();
    let t = b.build(&[c[0], d[0], cl[0], m[0]]).unwrap();
    let plan = ExecutionPlan::compile(&t, &[&TorchExecutor::new()]).unwrap();
    let (xs, ys) = (
        Tensor::from_slice(&[7.0f32, -7.0]),
        Tensor::from_slice(&[2.0f32, 2.0]),
    );
    let x4 = Tensor::randn([1, 2, 2, 3], (Kind::Float, Device::Cpu));
    let hs = Tensor::from_slice(&[3.0f32, -1.0]).to_kind(Kind::BFloat16);
    let out = plan
        .run_tensors(&[xs.copy(), ys.copy(), x4.copy(), hs.copy()])
        .unwrap();
    assert_eq!(out[3], &hs * 0.5);
    assert_eq!(out[3].kind(), Kind::BFloat16);
    assert_eq!(out[0], Tensor::cat(&[&xs, &ys, &xs], 0));
    assert_eq!(out[1], Tensor::from_slice(&[3.0f32, -4.0]));
    // torch.channels_last: the same values, laid out with channels last (strides 12, 1, 6, 2).
    assert_eq!(out[2], x4);
    assert_eq!(out[2].stride(), vec![12, 1, 6, 2]);

    // The trace says float32[3]; cummax returns [2]: an error naming both.
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [2usize])).unwrap();
    let bad = call(
        "cummax.default",
        vec![AtenArg::Tensor(0), AtenArg::Int(0)],
        vec![
            AtenOut::Tensor(DType::F32, vec![3]),
            AtenOut::Tensor(DType::I64, vec![2]),
        ],
    );
    let y = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x])],
            bad.attrs(),
        )
        .unwrap();
    let t = b.build(&y).unwrap();
    let plan = ExecutionPlan::compile(&t, &[&TorchExecutor::new()]).unwrap();
    let e = plan.run_tensors(&[xs.copy()]).unwrap_err().to_string();
    assert!(e.contains("the trace expects Float of sizes [3]"), "{e}");
    // An output nothing reads is not checked (fake and real kernels disagree on some, as
    // `_embedding_bag`'s offset2bag): the trace returns only the values.
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [2usize])).unwrap();
    let unread = call(
        "cummax.default",
        vec![AtenArg::Tensor(0), AtenArg::Int(0)],
        vec![AtenOut::Like(0), AtenOut::Tensor(DType::I64, vec![7])],
    );
    let y = b
        .call(
            Op::Prim(PrimOp::Aten),
            vec![Arg::List(vec![x])],
            unread.attrs(),
        )
        .unwrap();
    let t = b.build(&y[..1]).unwrap();
    let plan = ExecutionPlan::compile(&t, &[&TorchExecutor::new()]).unwrap();
    let out = plan.run_tensors(&[xs.copy()]).unwrap();
    assert_eq!(out[0], xs.cummax(0).0);

    // An unknown operator and a wrong argument count: errors when the plan is compiled (the
    // operator is looked up once, then); an argument of the wrong type: libtorch's message at
    // the run. No crash.
    for (op, args, at_compile) in [
        ("no_such_op.default", vec![AtenArg::Tensor(0)], true),
        ("cummax.default", vec![AtenArg::Tensor(0)], true),
        (
            "cummax.default",
            vec![AtenArg::Tensor(0), AtenArg::Str("x".into())],
            false,
        ),
    ] {
        let mut b = TraceBuilder::new("f");
        let x = b.input("x", TensorMeta::new(DType::F32, [2usize])).unwrap();
        let c = call(
            op,
            args,
            vec![AtenOut::Like(0), AtenOut::Tensor(DType::I64, vec![2])],
        );
        let y = b
            .call(Op::Prim(PrimOp::Aten), vec![Arg::List(vec![x])], c.attrs())
            .unwrap();
        let t = b.build(&y).unwrap();
        let e = match ExecutionPlan::compile(&t, &[&TorchExecutor::new()]) {
            Err(e) => {
                assert!(at_compile, "{op}: {e}");
                e.to_string()
            }
            Ok(plan) => {
                assert!(!at_compile, "{op} compiled");
                plan.run_tensors(&[xs.copy()]).unwrap_err().to_string()
            }
        };
        assert!(e.contains(&format!("aten.{op}")), "{e}");
    }
}
