//! CUDA graphs for execution plans (`GraphedPlan`).
//!
//! On every machine: which plans cannot be captured, and why; a CPU plan runs uncaptured with
//! its reason; static input buffers (copies, fixed inputs, refills and what they refuse). On a GPU (the GPU bundle): replays of a Llama block's forward and backward
//! equal uncaptured runs bit for bit over 50 calls with fresh inputs, memory does not grow
//! across replays, and an uncapturable CUDA plan falls back with its reason and stays right.

use tch::{Kind, Tensor};
use thunder_executors::graphs::{RefillError, StaticInputs};
use thunder_executors::{uncapturable, ExecutionPlan, FusionExecutor, GraphedPlan, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Device, NumberType, TensorMeta, Trace, TraceBuilder};

fn cuda(shape: &[usize]) -> TensorMeta {
    TensorMeta::new(DType::F32, shape.to_vec()).on(Device::Cuda(0))
}

fn plan(t: &Trace) -> ExecutionPlan {
    ExecutionPlan::compile(t, &[&FusionExecutor, &TorchExecutor::new()])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `x * alpha + x`, with `alpha` a number input.
fn scaled(device: Device) -> Trace {
    let mut b = TraceBuilder::new("scaled");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [4, 8]).on(device))
        .unwrap();
    let alpha = b.number_input("alpha", NumberType::Float).unwrap();
    let y = b.mul(x, alpha).unwrap();
    let z = b.add(y, x).unwrap();
    b.build(&[z]).unwrap()
}

#[test]
fn static_inputs_copy_refill_and_refuse_what_does_not_fit() {
    // Buffers work on any device, so this runs on the CPU.
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let w = Tensor::from_slice(&[5.0f32, 6.0]);
    let s = StaticInputs::new(&[x.shallow_clone(), w.shallow_clone()], &[false, true]).unwrap();
    let [bx, bw] = [&s.tensors()[0], &s.tensors()[1]];
    assert_ne!(
        bx.data_ptr(),
        x.data_ptr(),
        "a non-fixed input gets its own buffer"
    );
    assert_eq!(
        bw.data_ptr(),
        w.data_ptr(),
        "a fixed input is used in place"
    );
    assert!(bx.equal(&x));

    // A refill copies new values into the buffer; the fixed input is passed as itself.
    let x2 = Tensor::from_slice(&[7.0f32, 8.0, 9.0]);
    s.refill(&[x2.shallow_clone(), w.shallow_clone()]).unwrap();
    assert!(bx.equal(&x2));
    // Refilling from the buffer itself is a no-op.
    s.refill(&[bx.shallow_clone(), w.shallow_clone()]).unwrap();
    assert!(bx.equal(&x2));

    let err = |inputs: &[Tensor]| s.refill(inputs).unwrap_err();
    assert!(matches!(
        err(&[x2.shallow_clone()]),
        RefillError::Count {
            expected: 2,
            given: 1
        }
    ));
    // A wrong shape anywhere refuses the whole call, before anything is copied.
    let e = err(&[
        Tensor::from_slice(&[0.0f32, 0.0, 0.0]),
        Tensor::from_slice(&[0.0f32, 0.0, 0.0]),
    ]);
    assert!(
        matches!(&e, RefillError::Mismatch { index: 1, .. }) && e.to_string().contains("[2]"),
        "{e}"
    );
    assert!(bx.equal(&x2), "a refused refill copied into the buffers");
    let e = err(&[x2.to_kind(Kind::Double), w.shallow_clone()]);
    assert!(e.to_string().contains("Double"), "{e}");
    // A fixed input must be the captured tensor itself, not another with the same shape.
    let e = err(&[x2.shallow_clone(), w.copy()]);
    assert!(e.to_string().contains("fixed input"), "{e}");
}

#[test]
fn plans_that_cannot_be_captured_say_why() {
    // Metadata only: nothing runs, so this needs no GPU.
    let mut b = TraceBuilder::new("ok");
    let x = b.input("x", cuda(&[4])).unwrap();
    let y = b.exp(x).unwrap();
    let ok = b.build(&[y]).unwrap();
    assert_eq!(uncapturable(&ok), Ok(0));

    let why = |t: &Trace| uncapturable(t).unwrap_err().to_string();
    assert!(why(&scaled(Device::Cpu)).contains("x is on the CPU"));
    assert!(why(&scaled(Device::Cuda(0))).contains("takes the number alpha"));

    let mut b = TraceBuilder::new("collective");
    let x = b.input("x", cuda(&[4])).unwrap();
    let y = b.all_reduce(x, "sum", 2, false).unwrap();
    let t = b.build(&[y]).unwrap();
    assert!(why(&t).contains("dist.all_reduce"), "{}", why(&t));

    let mut b = TraceBuilder::new("two_devices");
    let x = b.input("x", cuda(&[4])).unwrap();
    let _ = b
        .input("w", TensorMeta::new(DType::F32, [4]).on(Device::Cuda(1)))
        .unwrap();
    let t = b.build(&[x]).unwrap();
    assert!(why(&t).contains("several CUDA devices"));
}

#[test]
fn a_cpu_plan_runs_uncaptured_and_says_why() {
    let mut b = TraceBuilder::new("double");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [3]).on(Device::Cpu))
        .unwrap();
    let y = b.add(x, x).unwrap();
    let t = b.build(&[y]).unwrap();
    let mut g = GraphedPlan::new(plan(&t));
    assert_eq!(g.fallback_reason(), None);
    for i in 0..3 {
        let x = tch::Tensor::from_slice(&[1.0f32, 2.0, i as f32]);
        let out = g.run_tensors(&[x.shallow_clone()]).unwrap();
        assert!(out[0].as_tensor().unwrap().equal(&(&x * 2.0)));
    }
    assert!(!g.is_captured());
    assert_eq!(g.replays(), 0);
    assert!(g.fallback_reason().unwrap().contains("on the CPU"));
}

fn randn_like(t: &Trace, seed: i64) -> Vec<tch::Tensor> {
    tch::manual_seed(seed);
    t.inputs
        .iter()
        .map(|&v| {
            let m = t.tensor(v).unwrap();
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            tch::Tensor::randn(shape.as_slice(), (tch::Kind::Float, tch::Device::Cuda(0)))
                .to_kind(thunder_executors::convert::kind(m.dtype))
        })
        .collect()
}

#[test]
fn replays_equal_uncaptured_runs_bit_for_bit_and_memory_stays_flat() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: the replay checks run in the GPU bundle");
        return;
    }
    let block = programs::llama_block(&LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::tiny()
    })
    .unwrap();
    let wrt: Vec<_> = block.inputs[3..].to_vec();
    let fb = thunder_transforms::forward_backward(&block, &wrt).unwrap();
    for t in [&fb.forward, &fb.backward] {
        let reference = plan(t);
        let mut graphed = GraphedPlan::new(plan(t));
        let mut allocated = Vec::new();
        for step in 0..50 {
            let ins = randn_like(t, 1000 + step);
            let want = reference.run_tensors(&ins).unwrap();
            let got = graphed.run_tensors(&ins).unwrap();
            assert_eq!(graphed.fallback_reason(), None, "{}", t.name);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.as_tensor().unwrap().equal(w),
                    "{} step {step}: output {k} differs from the uncaptured run",
                    t.name
                );
            }
            drop(want);
            drop(got);
            tch::Cuda::synchronize(0);
            allocated.push(
                thunder_executors::shim::cuda_memory_stats(0)
                    .unwrap()
                    .allocated,
            );
        }
        assert!(graphed.is_captured());
        assert_eq!(graphed.replays(), 49);
        // After the capture, replays allocate nothing new.
        assert_eq!(allocated[5], allocated[49], "{}: {allocated:?}", t.name);
    }
}

#[test]
fn an_uncapturable_cuda_plan_falls_back_and_stays_right() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: the fallback on a GPU runs in the GPU bundle");
        return;
    }
    let t = scaled(Device::Cuda(0));
    let mut g = GraphedPlan::new(plan(&t));
    let x = tch::Tensor::ones([4, 8], (tch::Kind::Float, tch::Device::Cuda(0)));
    // A replay would keep the first call's alpha: every call must run the plan, with its own.
    for alpha in [1.0, 2.0, 3.0] {
        let ins = vec![
            thunder_executors::RtValue::Tensor(x.shallow_clone()),
            thunder_executors::RtValue::Float(alpha),
        ];
        let out = g.run_values(ins).unwrap();
        let v = out[0].as_tensor().unwrap().double_value(&[0, 0]);
        assert_eq!(v, alpha + 1.0);
    }
    assert!(!g.is_captured());
    assert_eq!(g.replays(), 0);
    let why = g.fallback_reason().expect("the reason it runs uncaptured");
    assert!(why.contains("takes the number alpha"), "{why}");
}
