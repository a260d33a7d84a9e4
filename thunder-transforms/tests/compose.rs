//! The transforms compose: vmap(grad(f)) gives per-example gradients equal to a loop of grad(f);
//! grad(vmap(f)) matches PyTorch autograd on the batched computation; jvp(grad(f)) gives Hessian-
//! vector products whose Hessian is symmetric (<H u, v> = <u, H v>).

use tch::{Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::{DType, TensorMeta, Trace, TraceBuilder, Value};
use thunder_transforms::{grad, jvp, vmap};

/// f(x, w) = sum(tanh(x @ w^T) * x2) with x: [4, 6], w: [5, 6]: a linear layer, a nonlinearity, a
/// reduction to a scalar.
fn f() -> Trace {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F64, [4, 6])).unwrap();
    let w = b.input("w", TensorMeta::new(DType::F64, [5, 6])).unwrap();
    let h = b.linear(x, w, None).unwrap();
    let h = b.tanh(h).unwrap();
    let h = b.mul(h, h).unwrap();
    let y = b.sum(h, &[], false).unwrap();
    b.build(&[y]).unwrap()
}

fn randn(shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Double, tch::Device::Cpu))
}

fn run(t: &Trace, ins: &[Tensor]) -> Vec<Tensor> {
    ExecutionPlan::compile(t, &[&TorchExecutor::new()])
        .unwrap()
        .run_tensors(ins)
        .unwrap_or_else(|e| panic!("{e}\n{}", t.to_python()))
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.allclose(b, 1e-10, 1e-10, false)
}

#[test]
fn vmap_of_grad_gives_per_example_gradients() {
    let t = f();
    let w = t.inputs[1];
    let g = grad(&t, &[w]).unwrap(); // inputs x, w, ct_y; outputs y, dw
    let per_example = vmap(&g, &[Some(0), None, None], 3).unwrap();
    let xs = randn(&[3, 4, 6], 1);
    let wv = randn(&[5, 6], 2);
    let ct = Tensor::ones([], (Kind::Double, tch::Device::Cpu));
    let out = run(
        &per_example,
        &[xs.shallow_clone(), wv.shallow_clone(), ct.shallow_clone()],
    );
    for e in 0..3 {
        let one = run(&g, &[xs.get(e), wv.shallow_clone(), ct.shallow_clone()]);
        assert!(
            close(&out[1].get(e), &one[1]),
            "example {e}: per-example gradient differs from grad alone"
        );
        assert!(close(&out[0].get(e), &one[0]));
    }
}

#[test]
fn grad_of_vmap_matches_autograd() {
    let t = f();
    let batched = vmap(&t, &[Some(0), None], 3).unwrap(); // y: [3]
    let w: Value = batched.inputs[1];
    let g = grad(&batched, &[w]).unwrap();
    let xs = randn(&[3, 4, 6], 3);
    let wv = randn(&[5, 6], 4);
    let ct = randn(&[3], 5);
    let out = run(
        &g,
        &[xs.shallow_clone(), wv.shallow_clone(), ct.shallow_clone()],
    );
    // Autograd on the same batched computation, eagerly.
    let wl = wv.detach().set_requires_grad(true);
    let y = ExecutionPlan::compile(&batched, &[&TorchExecutor::eager()])
        .unwrap()
        .run_tensors(&[xs, wl.shallow_clone()])
        .unwrap();
    let loss = (&y[0] * &ct).sum(Kind::Double);
    let expected = Tensor::run_backward(&[loss], &[&wl], false, false);
    assert!(
        close(&out[1], &expected[0]),
        "grad of the vmapped trace differs from autograd"
    );
}

#[test]
fn jvp_of_grad_gives_a_symmetric_hessian() {
    let t = f();
    let w = t.inputs[1];
    let g = grad(&t, &[w]).unwrap(); // (x, w, ct) -> (y, dw)
    let gw = g.inputs[1];
    let h = jvp(&g, &[gw]).unwrap(); // (x, w, ct, t_w) -> (y, dw, t_y, t_dw = H t_w)
    let x = randn(&[4, 6], 6);
    let wv = randn(&[5, 6], 7);
    let ct = Tensor::ones([], (Kind::Double, tch::Device::Cpu));
    let (u, v) = (randn(&[5, 6], 8), randn(&[5, 6], 9));
    let hu = run(
        &h,
        &[
            x.shallow_clone(),
            wv.shallow_clone(),
            ct.shallow_clone(),
            u.shallow_clone(),
        ],
    );
    let hv = run(
        &h,
        &[
            x.shallow_clone(),
            wv.shallow_clone(),
            ct.shallow_clone(),
            v.shallow_clone(),
        ],
    );
    let (hu, hv) = (hu.last().unwrap(), hv.last().unwrap());
    let a = (hu * &v).sum(Kind::Double).double_value(&[]);
    let b = (&u * hv).sum(Kind::Double).double_value(&[]);
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        "<H u, v> = {a} but <u, H v> = {b}"
    );
    // And H u against central finite differences of the gradient.
    let eps = 1e-6;
    let gp = run(&g, &[x.shallow_clone(), &wv + &u * eps, ct.shallow_clone()]);
    let gm = run(&g, &[x.shallow_clone(), &wv - &u * eps, ct.shallow_clone()]);
    let fd = (&gp[1] - &gm[1]) / (2.0 * eps);
    let err = (&fd - hu).abs().max().double_value(&[]);
    assert!(
        err < 1e-6 * hu.abs().max().double_value(&[]).max(1.0),
        "H u differs from finite differences by {err}"
    );
}

/// g(x, w) = (tanh(x @ w^T), sum(x)) with x: [4, 6], w: [5, 6]: two outputs of different ranks.
fn g2() -> Trace {
    let mut b = TraceBuilder::new("g");
    let x = b.input("x", TensorMeta::new(DType::F64, [4, 6])).unwrap();
    let w = b.input("w", TensorMeta::new(DType::F64, [5, 6])).unwrap();
    let h = b.linear(x, w, None).unwrap();
    let h = b.tanh(h).unwrap();
    let s = b.sum(x, &[1], false).unwrap();
    b.build(&[h, s]).unwrap()
}

#[test]
fn nested_vmap_matches_a_double_loop() {
    // Inner vmap over x's dim 1 (3 examples, w shared); outer over a batch of 2 at x's dim 0 and
    // w's dim 2: x: [2, 4, 3, 6], w: [5, 6, 2].
    let t = g2();
    let inner = vmap(&t, &[Some(1), None], 3).unwrap();
    let outer = vmap(&inner, &[Some(0), Some(2)], 2).unwrap();
    let xs = randn(&[2, 4, 3, 6], 3);
    let ws = randn(&[5, 6, 2], 4);
    let out = run(&outer, &[xs.shallow_clone(), ws.shallow_clone()]);
    assert_eq!(out[0].size(), [2, 3, 4, 5]);
    assert_eq!(out[1].size(), [2, 3, 4]);
    for o in 0..2 {
        for i in 0..3 {
            let x = xs.get(o).select(1, i);
            let w = ws.select(2, o);
            let one = run(&t, &[x, w]);
            assert!(close(&out[0].get(o).get(i), &one[0]), "({o}, {i})");
            assert!(close(&out[1].get(o).get(i), &one[1]), "({o}, {i})");
        }
    }
}

#[test]
fn vmap_out_dims_put_the_batch_dim_where_asked() {
    let t = g2();
    let v = thunder_transforms::vmap_dims(&t, &[Some(0), None], &[2, 1], 3).unwrap();
    let xs = randn(&[3, 4, 6], 5);
    let w = randn(&[5, 6], 6);
    let out = run(&v, &[xs.shallow_clone(), w.shallow_clone()]);
    assert_eq!(out[0].size(), [4, 5, 3]);
    assert_eq!(out[1].size(), [4, 3]);
    for e in 0..3 {
        let one = run(&t, &[xs.get(e), w.shallow_clone()]);
        assert!(close(&out[0].select(2, e), &one[0]), "example {e}");
        assert!(close(&out[1].select(1, e), &one[1]), "example {e}");
    }
    // An out_dim past the output's rank is a typed error naming the output.
    let e = thunder_transforms::vmap_dims(&t, &[Some(0), None], &[3, 0], 3).unwrap_err();
    assert!(e.to_string().contains("cannot be 3"), "{e}");
    let e = thunder_transforms::vmap_dims(&t, &[Some(0), None], &[0], 3).unwrap_err();
    assert!(
        e.to_string()
            .contains("out_dims has 1 entries but the trace has 2 outputs"),
        "{e}"
    );
}

#[test]
fn grad_of_prod_with_zeros_matches_autograd() {
    // prod's gradient without dividing by zero: no zero, one zero and two zeros in a row.
    let mut b = TraceBuilder::new("p");
    let x = b.input("x", TensorMeta::new(DType::F64, [3, 4])).unwrap();
    let y = b
        .prim(
            thunder_ir::PrimOp::Prod,
            vec![x.into()],
            vec![thunder_ir::Attr::Ints(vec![1])],
        )
        .unwrap();
    let t = b.build(&[y]).unwrap();
    let gt = grad(&t, &[t.inputs[0]]).unwrap();
    let jt = jvp(&t, &[t.inputs[0]]).unwrap();
    let xv = Tensor::from_slice(&[
        1.5, -2.0, 0.5, 3.0, //
        2.0, 0.0, -1.5, 0.75, //
        0.0, 1.25, 0.0, 2.0,
    ])
    .reshape([3, 4]);
    let ct = randn(&[3], 7);
    let got = run(&gt, &[xv.shallow_clone(), ct.shallow_clone()]);
    let leaf = xv.detach().set_requires_grad(true);
    let loss = (leaf.prod_dim_int(1, false, Kind::Double) * &ct).sum(Kind::Double);
    let want = Tensor::run_backward(&[loss], &[&leaf], false, false);
    assert!(close(&got[1], &want[0]), "{} vs {}", got[1], want[0]);
    // jvp along a direction agrees with <grad, u> row by row (each row is its own function).
    let u = randn(&[3, 4], 8);
    let tangent = run(&jt, &[xv.shallow_clone(), u.shallow_clone()]);
    let ones = Tensor::ones([3], (Kind::Double, tch::Device::Cpu));
    let full = run(&gt, &[xv.shallow_clone(), ones]);
    let dot = (&full[1] * &u).sum_dim_intlist(1, false, Kind::Double);
    assert!(close(&tangent[1], &dot), "{} vs {}", tangent[1], dot);
}

#[test]
fn vmap_of_a_random_op_follows_the_randomness_policy() {
    use thunder_transforms::{vmap_with, Randomness, VmapOptions};
    // f(x) = x + randn(shape of x)
    let mut b = TraceBuilder::new("noisy");
    let x = b.input("x", TensorMeta::new(DType::F64, [4])).unwrap();
    let r = b
        .prim(
            thunder_ir::PrimOp::Randn,
            vec![],
            vec![
                thunder_ir::Attr::Ints(vec![4]),
                thunder_ir::Attr::Device(thunder_ir::Device::Cpu),
                thunder_ir::Attr::DType(DType::F64),
            ],
        )
        .unwrap();
    let y = b.add(x, r).unwrap();
    let t = b.build(&[y]).unwrap();
    // PyTorch's default: refuse, and say what to choose.
    let e = vmap(&t, &[Some(0)], 3).unwrap_err();
    assert!(e.to_string().contains("prims.randn is random"), "{e}");
    let xs = Tensor::zeros([3, 4], (Kind::Double, tch::Device::Cpu));
    let with = |randomness| {
        let o = VmapOptions {
            randomness,
            ..Default::default()
        };
        run(
            &vmap_with(&t, &[Some(0)], 3, &o).unwrap(),
            &[xs.shallow_clone()],
        )
        .remove(0)
    };
    let same = with(Randomness::Same);
    assert_eq!(same.size(), [3, 4]);
    assert!(same.get(1).equal(&same.get(0)) && same.get(2).equal(&same.get(0)));
    let different = with(Randomness::Different);
    assert_eq!(different.size(), [3, 4]);
    assert!(!different.get(1).equal(&different.get(0)));
}
