//! Prints the fused plan and the generated CUDA source of a cross-entropy step (a debugging aid):
//! `cargo run -p thunder-executors --example fusion_dump`; `DUMP=rmsnorm` or `DUMP=softmax` prints
//! the forward kernel of that pattern at Llama-2-7B sizes. With `DUMP_BLOCK=1` it instead checks
//! every region of a Llama-2-7B block's forward and backward generates, and prints any that does
//! not.
use thunder_executors::fusion::generate;
use thunder_executors::{CrossEntropyExecutor, ExecutionPlan, FusionExecutor, TorchExecutor};
use thunder_ir::{DType, Device, TensorMeta, TraceBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("DUMP_BLOCK").is_some() {
        use thunder_ir::programs::{self, LlamaDims};
        let dims = LlamaDims {
            dtype: DType::BF16,
            device: Device::Cuda(0),
            ..LlamaDims::default()
        };
        let block = programs::llama_block(&dims)?;
        let fb = thunder_transforms::forward_backward(&block, &block.inputs[3..])?;
        for tr in [&fb.forward, &fb.backward] {
            let c = thunder_executors::claim(tr, &[&FusionExecutor, &TorchExecutor::new()])?;
            let ops: Vec<_> = c.ops.iter().map(|o| o.bsym.clone()).collect();
            let regions =
                thunder_executors::fusion::partition(tr, &ops, |i| c.ops[i].executor == 0);
            for (i, r) in regions.iter().enumerate() {
                let res = std::panic::catch_unwind(|| generate(tr, &ops, r, "x"));
                if res.is_err() {
                    println!("region {i} {:?}", r.schedule);
                    for &k in &r.ops {
                        println!("  {}", thunder_ir::printer::statement(tr, &ops[k]));
                    }
                    println!(
                        "  inputs {:?} outputs {:?}",
                        r.inputs.iter().map(|v| tr.name_of(*v)).collect::<Vec<_>>(),
                        r.outputs.iter().map(|v| tr.name_of(*v)).collect::<Vec<_>>()
                    );
                }
            }
        }
        return Ok(());
    }
    // DUMP=rmsnorm or DUMP=softmax: the forward kernel of that pattern at Llama-2-7B sizes.
    let pattern = std::env::var("DUMP").unwrap_or_default();
    if pattern == "rmsnorm" || pattern == "softmax" {
        let (t, h) = if pattern == "rmsnorm" {
            (4096usize, 4096usize)
        } else {
            (4096, 32000)
        };
        let mut b = TraceBuilder::new(&pattern);
        let x = b.input(
            "x",
            TensorMeta::new(DType::BF16, [t, h]).on(Device::Cuda(0)),
        )?;
        let y = if pattern == "rmsnorm" {
            let w = b.input("w", TensorMeta::new(DType::BF16, [h]).on(Device::Cuda(0)))?;
            b.rms_norm(x, &[h], Some(w), Some(1e-5))?
        } else {
            b.softmax(x, -1)?
        };
        let trace = b.build(&[y])?;
        let p = ExecutionPlan::compile(&trace, &[&FusionExecutor, &TorchExecutor::new()])?;
        let ops: Vec<_> = p.claimed().ops.iter().map(|o| o.bsym.clone()).collect();
        for (i, r) in p.claimed().regions.iter().enumerate() {
            let k = generate(&p.claimed().trace, &ops, r, &format!("r{i}"))?;
            println!(
                "// region {i}: {:?}\n// launch {:?}",
                r.schedule, k.entries[0].launch
            );
            println!("{}", k.source.split("typedef").nth(1).unwrap_or(""));
        }
        return Ok(());
    }
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
        let p = ExecutionPlan::compile(
            tr,
            &[
                &CrossEntropyExecutor,
                &FusionExecutor,
                &TorchExecutor::new(),
            ],
        )?;
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
