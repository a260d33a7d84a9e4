//! autocast: linear/matmul/sdpa run in bf16, norms and softmax in f32; the result has bf16-level
//! accuracy against a float64 computation (the order of running the whole block in bf16).

use tch::{Kind, Tensor};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Op, TorchOp, Trace};
use thunder_transforms::autocast;

fn run(t: &Trace, ins: &[Tensor]) -> Tensor {
    let out = ExecutionPlan::compile(t, &[&TorchExecutor::new()])
        .unwrap()
        .run_tensors(ins)
        .unwrap_or_else(|e| panic!("{e}"));
    out[0].to_kind(Kind::Double)
}

fn inputs(t: &Trace, kind: Kind) -> Vec<Tensor> {
    tch::manual_seed(11);
    t.inputs
        .iter()
        .map(|&v| {
            let shape: Vec<i64> = t
                .tensor(v)
                .unwrap()
                .shape
                .sizes()
                .iter()
                .map(|&s| s as i64)
                .collect();
            (Tensor::randn(shape.as_slice(), (Kind::Double, tch::Device::Cpu)) * 0.5).to_kind(kind)
        })
        .collect()
}

#[test]
fn autocast_runs_matmuls_low_and_norms_high() {
    let f32_block = programs::llama_block(&LlamaDims::tiny()).unwrap();
    let ac = autocast(&f32_block, DType::BF16).unwrap();
    ac.verify().unwrap();
    for b in &ac.bound_symbols {
        let first = b
            .args
            .iter()
            .find_map(|a| a.as_value())
            .and_then(|v| ac.tensor(v))
            .map(|t| t.dtype);
        match b.op {
            Op::Torch(TorchOp::Linear | TorchOp::ScaledDotProductAttention) => {
                assert_eq!(first, Some(DType::BF16), "{}", ac.to_python())
            }
            Op::Torch(TorchOp::RmsNorm) => assert_eq!(first, Some(DType::F32)),
            _ => {}
        }
    }
    assert_eq!(
        ac.tensor(ac.outputs[0]).unwrap().dtype,
        DType::F32,
        "the residual stream stays f32"
    );

    // Accuracy: compare with float64, and with the whole block in bf16.
    let d64 = LlamaDims {
        dtype: DType::F64,
        ..LlamaDims::tiny()
    };
    let dbf = LlamaDims {
        dtype: DType::BF16,
        ..LlamaDims::tiny()
    };
    let (t64, tbf) = (
        programs::llama_block(&d64).unwrap(),
        programs::llama_block(&dbf).unwrap(),
    );
    let reference = run(&t64, &inputs(&t64, Kind::Double));
    let err = |y: &Tensor| (y - &reference).abs().max().double_value(&[]);
    let e_auto = err(&run(&ac, &inputs(&f32_block, Kind::Float)));
    let e_f32 = err(&run(&f32_block, &inputs(&f32_block, Kind::Float)));
    let e_bf16 = err(&run(&tbf, &inputs(&tbf, Kind::BFloat16)));
    assert!(
        e_auto > e_f32,
        "autocast must actually compute in bf16 ({e_auto} vs f32 {e_f32})"
    );
    // bf16-level accuracy: the same order as running everything in bf16 (one sample, so a factor
    // of slack), and far from the f32 result's.
    assert!(
        e_auto <= 2.0 * e_bf16,
        "autocast ({e_auto}) is much less accurate than all-bf16 ({e_bf16})"
    );
}

#[test]
fn autocast_refuses_other_dtypes() {
    let t = programs::llama_mlp(&LlamaDims::tiny()).unwrap();
    let e = autocast(&t, DType::F32).unwrap_err();
    assert!(
        e.to_string()
            .contains("autocast runs in bf16 or f16, not f32"),
        "{e}"
    );
}
