//! grad of a grad trace: the second grad's cotangent inputs get names of their own (they used to
//! collide with the first grad's `ct_t0` and fail), and the values are the second derivative,
//! run on libtorch and compared with the closed form.

use tch::{Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::{DType, TensorMeta, TraceBuilder};
use thunder_transforms::grad;

#[test]
fn grad_of_grad_is_the_second_derivative() {
    // f(x) = x^3 elementwise.
    let mut b = TraceBuilder::new("cube");
    let x = b.input("x", TensorMeta::new(DType::F64, [5])).unwrap();
    let x2 = b.mul(x, x).unwrap();
    let y = b.mul(x2, x).unwrap();
    let f = b.build(&[y]).unwrap();
    // g(x, c) = (f(x), c * f'(x)); h = grad of g wrt x, with cotangents (u, w) for its outputs:
    // h returns (f(x), c * f'(x), u * f'(x) + w * c * f''(x)) and the gradient wrt c too.
    let g = grad(&f, &[f.inputs[0]]).unwrap();
    let h = grad(&g, &g.inputs).unwrap();
    let names: Vec<&str> = h.inputs.iter().map(|&v| h.name_of(v)).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 4, "input names collide: {names:?}");

    let xv = Tensor::from_slice(&[-1.5f64, -0.5, 0.0, 0.7, 2.0]);
    let c = Tensor::from_slice(&[0.3f64, -1.0, 2.0, 0.5, 1.5]);
    let u = Tensor::from_slice(&[1.0f64, 0.25, -0.5, 2.0, -1.0]);
    let w = Tensor::from_slice(&[0.5f64, 1.0, 1.0, -0.3, 0.2]);
    let plan = ExecutionPlan::compile(&h, &[&TorchExecutor::new()]).unwrap();
    let outs = plan
        .run_tensors(&[
            xv.shallow_clone(),
            c.shallow_clone(),
            u.shallow_clone(),
            w.shallow_clone(),
        ])
        .unwrap();
    let f1 = &xv * &xv * 3.0;
    let f2 = &xv * 6.0;
    let dx = &u * &f1 + &w * &c * &f2;
    let dc = &w * &f1;
    assert_eq!(outs.len(), 4);
    for (got, want) in [(&outs[2], &dx), (&outs[3], &dc)] {
        let err = f64::try_from((got.to_kind(Kind::Double) - want).abs().max()).unwrap();
        assert!(err < 1e-12, "{got} vs {want}");
    }
}
