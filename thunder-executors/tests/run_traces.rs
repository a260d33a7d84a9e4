//! Running traces: the decomposition path and the direct libtorch path agree with eager tch on the
//! same inputs, errors name the trace line, and inputs are checked.

use tch::{Device, Kind, Tensor};
use thunder_executors::{Error, ExecutionPlan, Executor, RtValue, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, TensorMeta, Trace, TraceBuilder};

fn close(a: &Tensor, b: &Tensor, atol: f64, rtol: f64) -> bool {
    a.size() == b.size()
        && a.kind() == b.kind()
        && a.to_kind(Kind::Double)
            .allclose(&b.to_kind(Kind::Double), rtol, atol, false)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Random inputs for a trace: normal floats, integer inputs in [0, 8).
/// Random inputs for `t`, the same for the same seed: libtorch's generator is global, so the
/// tests of this file (threads of one process) take turns.
fn inputs(t: &Trace, seed: i64) -> Vec<Tensor> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    t.inputs
        .iter()
        .map(|&v| {
            let m = t.tensor(v).expect("tensor input");
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            let k = thunder_executors::convert::kind(m.dtype);
            if m.dtype.is_float() {
                Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)).to_kind(k)
            } else {
                Tensor::randint(8, shape.as_slice(), (k, Device::Cpu))
            }
        })
        .collect()
}

fn run(t: &Trace, ex: &dyn Executor, ins: &[Tensor]) -> Vec<Tensor> {
    let plan = ExecutionPlan::compile(t, &[ex]).unwrap_or_else(|e| panic!("compile: {e}"));
    plan.run_tensors(ins)
        .unwrap_or_else(|e| panic!("run: {e}\n{}", plan.claimed().to_python()))
}

#[test]
fn softmax_both_paths_match_eager() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [4, 7])).unwrap();
    let y = b.softmax(x, -1).unwrap();
    let t = b.build(&[y]).unwrap();
    let ins = inputs(&t, 0);
    let eager = ins[0].softmax(-1, Kind::Float);
    let direct = ExecutionPlan::compile(&t, &[&TorchExecutor::new()]).unwrap();
    let decomposed = ExecutionPlan::compile(&t, &[&TorchExecutor::decomposing()]).unwrap();
    assert_eq!(direct.len(), 1, "softmax runs as one libtorch call");
    assert!(decomposed.len() > 5, "the decomposition runs prim by prim");
    assert!(decomposed.claimed().to_python().contains("prims.amax"));
    for plan in [direct, decomposed] {
        let out = plan.run_tensors(&ins).unwrap();
        assert!(
            close(&out[0], &eager, 1e-6, 1e-5),
            "diff {}",
            max_diff(&out[0], &eager)
        );
    }
}

#[test]
fn llama_block_decomposed_matches_direct() {
    let t = programs::llama_block(&LlamaDims::tiny()).unwrap();
    let ins = inputs(&t, 1);
    let a = run(&t, &TorchExecutor::new(), &ins);
    let b = run(&t, &TorchExecutor::decomposing(), &ins);
    assert!(
        close(&a[0], &b[0], 1e-5, 1e-4),
        "diff {}",
        max_diff(&a[0], &b[0])
    );
}

#[test]
fn bf16_attention_decomposed_is_as_close_to_float64_as_eager() {
    // Lightning Thunder's rule for low precision: compute the reference in float64 and require the
    // decomposition to be no farther from it than libtorch's own bf16 ops are (with slack).
    let d = LlamaDims {
        dtype: DType::BF16,
        ..LlamaDims::tiny()
    };
    let t = programs::llama_attention(&d).unwrap();
    let t64 = programs::llama_attention(&LlamaDims {
        dtype: DType::F64,
        ..d.clone()
    })
    .unwrap();
    let ins = inputs(&t, 2);
    let ins64: Vec<Tensor> = ins.iter().map(|x| x.to_kind(Kind::Double)).collect();
    let reference = run(&t64, &TorchExecutor::new(), &ins64);
    let direct = run(&t, &TorchExecutor::new(), &ins);
    let decomposed = run(&t, &TorchExecutor::decomposing(), &ins);
    assert_eq!(decomposed[0].kind(), Kind::BFloat16);
    let (e_direct, e_decomposed) = (
        max_diff(&direct[0], &reference[0]),
        max_diff(&decomposed[0], &reference[0]),
    );
    let scale = reference[0].abs().max().double_value(&[]);
    assert!(
        e_direct < 0.05 * scale,
        "eager bf16 is itself far from float64: {e_direct} (scale {scale})"
    );
    assert!(
        e_decomposed <= 2.0 * e_direct + 1e-3 * scale,
        "decomposed error {e_decomposed} vs eager {e_direct} (scale {scale})"
    );
}

#[test]
fn cross_entropy_matches_eager() {
    let d = LlamaDims::tiny();
    let t = programs::lm_head_loss(&d).unwrap();
    let ins = inputs(&t, 3);
    // Eager: the same computation with libtorch's own ops.
    let (x, targets, norm, head) = (&ins[0], &ins[1], &ins[2], &ins[3]);
    let h = x.rms_norm([d.hidden as i64].as_slice(), Some(norm), 1e-5);
    let logits = h
        .linear(head, None::<&Tensor>)
        .reshape([-1, d.vocab as i64]);
    let eager = logits.cross_entropy_loss::<&Tensor>(
        &targets.reshape([-1]),
        None,
        tch::Reduction::Mean,
        -100,
        0.0,
    );
    for ex in [TorchExecutor::new(), TorchExecutor::decomposing()] {
        let out = run(&t, &ex, &ins);
        assert!(
            close(&out[0], &eager, 1e-5, 1e-5),
            "{}: diff {}",
            ex.name(),
            max_diff(&out[0], &eager)
        );
    }
}

#[test]
fn kernel_errors_name_the_trace_line() {
    let mut b = TraceBuilder::new("f");
    let idx = b.input("idx", TensorMeta::new(DType::I64, [3])).unwrap();
    let w = b.input("w", TensorMeta::new(DType::F32, [4, 2])).unwrap();
    let y = b.embedding(idx, w).unwrap();
    let t = b.build(&[y]).unwrap();
    let plan = ExecutionPlan::compile(&t, &[&TorchExecutor::decomposing()]).unwrap();
    let bad = Tensor::from_slice(&[0i64, 9, 1]);
    let err = plan
        .run_tensors(&[bad, Tensor::zeros([4, 2], (Kind::Float, Device::Cpu))])
        .unwrap_err();
    match &err {
        Error::Kernel {
            line,
            statement,
            message,
            ..
        } => {
            let text = t.to_python();
            let printed = text.lines().nth(line - 1).unwrap_or("");
            assert!(
                printed.contains(statement.as_str()),
                "line {line} is {printed:?}, not {statement:?}"
            );
            assert!(statement.contains("prims.embedding"), "{statement}");
            assert!(message.contains("index out of range"), "{message}");
            assert!(
                !message.contains("Exception raised from"),
                "the C++ backtrace is cut: {message}"
            );
        }
        other => panic!("expected a kernel error, got {other}"),
    }
}

#[test]
fn inputs_are_checked() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [2, 3])).unwrap();
    let y = b.exp(x).unwrap();
    let t = b.build(&[y]).unwrap();
    let plan = ExecutionPlan::compile(&t, &[]).unwrap();
    let e = plan
        .run_tensors(&[Tensor::zeros([3], (Kind::Float, Device::Cpu))])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input 0 (x): expected cpu f32[2, 3], got cpu f32[3]"
    );
    let e = plan
        .run_tensors(&[Tensor::zeros([2, 3], (Kind::Double, Device::Cpu))])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input 0 (x): expected cpu f32[2, 3], got cpu f64[2, 3]"
    );
    let e = plan.run(&[]).unwrap_err();
    assert!(
        e.to_string().contains("expected 1 inputs, got 0 inputs"),
        "{e}"
    );
    let e = plan.run(&[RtValue::Float(1.0)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input 0 (x): expected cpu f32[2, 3], got a float"
    );
}

#[test]
fn unclaimed_op_without_decomposition_is_an_error() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [2, 3])).unwrap();
    let y = b.softmax(x, 0).unwrap();
    let mut t = b.build(&[y]).unwrap();
    t.bound_symbols[0].subsymbols.clear();
    let e = ExecutionPlan::compile(&t, &[&TorchExecutor::decomposing()]).unwrap_err();
    assert!(matches!(e, Error::Unclaimed { line: 8, .. }), "{e}");
    assert!(t
        .to_python()
        .lines()
        .nth(7)
        .is_some_and(|l| l.contains("ltorch.softmax(x, dim=0")));
    assert!(
        e.to_string()
            .contains("ltorch.softmax(x, dim=0, dtype=None)` (and it has no decomposition)"),
        "{e}"
    );
}

#[test]
fn number_inputs_and_outputs() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [3])).unwrap();
    let s = b.number_input("s", thunder_ir::NumberType::Float).unwrap();
    let y = b.mul(x, s).unwrap();
    let t = b.build(&[y]).unwrap();
    let plan = ExecutionPlan::compile(&t, &[]).unwrap();
    let out = plan
        .run(&[
            RtValue::Tensor(Tensor::from_slice(&[1.0f32, 2.0, 3.0])),
            RtValue::Float(0.5),
        ])
        .unwrap();
    let got = out[0].as_tensor().unwrap();
    assert!(close(
        got,
        &Tensor::from_slice(&[0.5f32, 1.0, 1.5]),
        0.0,
        0.0
    ));
}

#[test]
fn eager_runs_every_torch_level_op_directly_and_agrees_with_the_decompositions() {
    let d = LlamaDims::tiny();
    for t in [
        programs::llama_block(&d).unwrap(),
        programs::lm_head_loss(&d).unwrap(),
        programs::llama_mlp(&d).unwrap(),
    ] {
        let eager = ExecutionPlan::compile(&t, &[&TorchExecutor::eager()]).unwrap();
        assert_eq!(
            eager.len(),
            t.bound_symbols.len(),
            "one ATen call per torch-level op"
        );
        assert!(eager
            .claimed()
            .ops
            .iter()
            .all(|o| matches!(o.bsym.op, thunder_ir::Op::Torch(_))));
        let ins = inputs(&t, 4);
        let a = eager.run_tensors(&ins).unwrap();
        let b = run(&t, &TorchExecutor::decomposing(), &ins);
        assert!(
            close(&a[0], &b[0], 1e-5, 1e-4),
            "{}: diff {}",
            t.name,
            max_diff(&a[0], &b[0])
        );
    }
}

/// Forward and backward of `x * w` summed, with the collectives `with` puts around the product;
/// returns the loss and the gradient of `x`, and the backward's text.
fn collective_step(
    with: impl Fn(&mut TraceBuilder, thunder_ir::Value) -> thunder_ir::Value,
    ins: &[Tensor],
) -> (Vec<Tensor>, String) {
    let mut b = TraceBuilder::new("f");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [4, 3]).with_grad(true))
        .unwrap();
    let w = b.input("w", TensorMeta::new(DType::F32, [4, 3])).unwrap();
    let p = b.mul(x, w).unwrap();
    let p = with(&mut b, p);
    let s = b.sum(p, &[], false).unwrap();
    let t = b.build(&[s]).unwrap();
    let fb = thunder_transforms::forward_backward(&t, &[t.inputs[0]]).unwrap();
    let fw = run(&fb.forward, &TorchExecutor::new(), ins);
    let mut bw_in: Vec<Tensor> = fw[1..].iter().map(|t| t.shallow_clone()).collect();
    bw_in.push(Tensor::from(1.0f32));
    let grads = run(&fb.backward, &TorchExecutor::new(), &bw_in);
    (
        vec![fw[0].shallow_clone(), grads[0].shallow_clone()],
        fb.backward.to_python(),
    )
}

#[test]
fn collectives_of_a_one_rank_world_run_as_the_identity_forward_and_backward() {
    let ins = vec![
        Tensor::randn([4, 3], (Kind::Float, Device::Cpu)),
        Tensor::randn([4, 3], (Kind::Float, Device::Cpu)),
    ];
    let (plain, _) = collective_step(|_, p| p, &ins);
    let (dist, backward) = collective_step(
        |b, p| {
            let h = b.all_gather(p, 1, true).unwrap();
            let g = b.wait(h).unwrap();
            let r = b.all_reduce(g, "sum", 1, false).unwrap();
            b.reduce_scatter(r, "avg", 1, false).unwrap()
        },
        &ins,
    );
    for (a, e) in dist.iter().zip(&plain) {
        assert!(close(a, e, 1e-6, 1e-6), "{a} vs {e}");
    }
    // The adjoints: reduce_scatter(avg) <- all_gather, all_reduce <- all_reduce, all_gather <-
    // reduce_scatter.
    for op in [
        "dist.all_gather(",
        "dist.all_reduce(",
        "dist.reduce_scatter(",
    ] {
        assert!(backward.contains(op), "{op} missing from\n{backward}");
    }
    // Over two ranks the torch executor has no communicator: a clear error, not a wrong answer.
    let mut b = TraceBuilder::new("g");
    let x = b.input("x", TensorMeta::new(DType::F32, [4])).unwrap();
    let y = b.all_reduce(x, "sum", 2, false).unwrap();
    let t = b.build(&[y]).unwrap();
    let e = ExecutionPlan::compile(&t, &[&TorchExecutor::new()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dist.all_reduce"), "{e}");
}
