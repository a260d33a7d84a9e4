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
