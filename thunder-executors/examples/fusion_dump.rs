//! Prints the fused plan and the generated CUDA source of a program (a debugging aid):
//! `cargo run -p thunder-executors --example fusion_dump`.
use thunder_executors::fusion::generate;
use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};
use thunder_ir::{DType, Device, TensorMeta, TraceBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (t, v) = (64usize, 320usize);
    let mut b = TraceBuilder::new("cross_entropy");
    let x = b.input(
        "logits",
        TensorMeta::new(DType::BF16, [t, v]).on(Device::Cuda(0)),
    )?;
    let tg = b.input(
        "targets",
        TensorMeta::new(DType::I64, [t]).on(Device::Cuda(0)),
    )?;
    let l = b.cross_entropy(x, tg)?;
    let trace = b.build(&[l])?;
    let fb = thunder_transforms::forward_backward(&trace, &[trace.inputs[0]])?;
    for tr in [&fb.forward, &fb.backward] {
        let p = ExecutionPlan::compile(tr, &[&FusionExecutor, &TorchExecutor::new()])?;
        println!("{}", p.claimed().to_python());
        let ops: Vec<_> = p.claimed().ops.iter().map(|o| o.bsym.clone()).collect();
        for (i, r) in p.claimed().regions.iter().enumerate() {
            println!(
                "// region {i}: {:?} inputs {:?} outputs {:?}",
                r.schedule, r.inputs, r.outputs
            );
            println!(
                "{}",
                generate(&p.claimed().trace, &ops, r, &format!("r{i}"))?
                    .source
                    .split("typedef")
                    .nth(1)
                    .unwrap_or("")
            );
        }
    }
    Ok(())
}
