//! How long the fusion executor's planning takes for a Llama-2-7B block's forward and backward
//! (claim, partition, codegen; NVRTC runs later, at the first launch, and is cached):
//! `cargo run --release -p thunder-executors --example fusion_compile_time`.
use std::time::Instant;
use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Device, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dims = LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::default()
    };
    let block = programs::llama_block(&dims)?;
    let wrt: Vec<Value> = block.inputs[3..].to_vec();
    let t0 = Instant::now();
    let fb = thunder_transforms::forward_backward(&block, &wrt)?;
    let t1 = Instant::now();
    let fwd = ExecutionPlan::compile(&fb.forward, &[&FusionExecutor, &TorchExecutor::new()])?;
    let bwd = ExecutionPlan::compile(&fb.backward, &[&FusionExecutor, &TorchExecutor::new()])?;
    let t2 = Instant::now();
    println!(
        "grad + split: {:.1} ms; fusion plans: {:.1} ms ({} + {} instructions, {} + {} regions); saved for backward: {:.1} MB",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3,
        fwd.len(),
        bwd.len(),
        fwd.claimed().regions.len(),
        bwd.claimed().regions.len(),
        fb.saved_bytes() as f64 / 1e6
    );
    Ok(())
}
