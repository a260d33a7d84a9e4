//! Helpers shared by the DDP and FSDP tests.
#![allow(dead_code)]

use tch::Tensor;
use thunder_executors::ExecutionPlan;
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{parse_trace, Trace};

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

pub fn check_golden(name: &str, t: &Trace) {
    let text = t.to_python();
    let path = package_dir()
        .join("tests/golden")
        .join(format!("{name}.py"));
    if std::env::var_os("THUNDER_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bless with THUNDER_BLESS=1", path.display()));
    assert!(
        want == text,
        "{} differs from the printed trace; re-bless with THUNDER_BLESS=1 if intended",
        path.display()
    );
    assert_eq!(&parse_trace(&want).expect("parses"), t);
}

/// `mean(llama_block(x))` for a batch of `batch`.
pub fn block_loss(batch: usize) -> Trace {
    block_loss_on(batch, thunder_ir::Device::Cpu)
}

/// `mean(llama_block(x))` for a batch of `batch` on `device`.
pub fn block_loss_on(batch: usize, device: thunder_ir::Device) -> Trace {
    let block = programs::llama_block(&LlamaDims {
        batch,
        device,
        ..LlamaDims::tiny()
    })
    .unwrap();
    let mut b = thunder_ir::TraceBuilder::new("block_loss");
    let mut m = b.inputs_like(&block).unwrap();
    for s in &block.bound_symbols {
        b.replay(s, &mut m).unwrap();
    }
    let loss = b.mean(m[&block.outputs[0]], &[], false).unwrap();
    b.build(&[loss]).unwrap()
}

/// Runs `forward` then `backward` (cotangent 1) on `ins` with `execs`; the gradients.
pub fn grads(
    forward: &Trace,
    backward: &Trace,
    ins: &[Tensor],
    execs: &[&dyn thunder_executors::Executor],
) -> Vec<Tensor> {
    grads_with(forward, backward, ins, Vec::new(), execs)
}

/// [`grads`] with `extra` inputs to the backward after the cotangent (an accumulating
/// backward's sums so far).
pub fn grads_with(
    forward: &Trace,
    backward: &Trace,
    ins: &[Tensor],
    extra: Vec<Tensor>,
    execs: &[&dyn thunder_executors::Executor],
) -> Vec<Tensor> {
    let fw = ExecutionPlan::compile(forward, execs)
        .unwrap()
        .run_tensors(ins)
        .unwrap();
    let mut bw: Vec<Tensor> = fw[1..].iter().map(|t| t.shallow_clone()).collect();
    bw.push(Tensor::from(1.0f32));
    bw.extend(extra);
    ExecutionPlan::compile(backward, execs)
        .unwrap()
        .run_tensors(&bw)
        .unwrap()
}

/// Normal(0, 0.5) values for every input of `t`, drawn on the CPU from `seed`, then moved to
/// `device`.
pub fn random_inputs(t: &Trace, seed: i64, device: tch::Device) -> Vec<Tensor> {
    tch::manual_seed(seed);
    t.inputs
        .iter()
        .map(|&v| {
            let shape: Vec<i64> = t
                .tensor(v)
                .expect("tensor input")
                .shape
                .sizes()
                .iter()
                .map(|&s| s as i64)
                .collect();
            (Tensor::randn(shape.as_slice(), (tch::Kind::Float, tch::Device::Cpu)) * 0.5)
                .to_device(device)
        })
        .collect()
}
