//! `thunder-bench ops`: the memory-bound patterns of a Llama-2-7B training step at real sizes,
//! eager libtorch against thunder's fusion executor, in one run on one GPU.
//!
//! Each row is a small program built with thunder-ir. Eager runs it op by op through libtorch
//! (`TorchExecutor::eager`, libtorch autograd for the rows with a backward); thunder runs the plan
//! with the cross-entropy and fusion executors first (and its forward/backward split for those
//! rows, whose saved-for-backward bytes the table reports). Before timing,
//! the two results are compared on fresh random data. Timing: warm-up, then the median over
//! repetitions of a batch of iterations between device synchronizations, the inputs rotating over
//! several copies so the L2 cache does not hold them. Bandwidth: the bytes the fused program must
//! move at least (its inputs and outputs, saved tensors included), over the time; the device's
//! copy bandwidth is measured in the same run (a device-to-device copy of 1 GiB).
//!
//! The last row is an AdamW step over every parameter of the model (bf16, updated in place):
//! PyTorch's `_fused_adamw_` against thunder's multi-tensor AdamW executor.

use comfy_table::{presets, Cell, CellAlignment, Table};
use std::time::Instant;
use tch::{Device as TDevice, Kind, Tensor};
use thunder_executors::{
    AdamwExecutor, CrossEntropyExecutor, ExecutionPlan, Executor, FusionExecutor, TorchExecutor,
};
use thunder_ir::{DType, Device, TensorMeta, Trace, TraceBuilder, Value};

type BoxError = Box<dyn std::error::Error>;

/// Sizes of the patterns (Llama-2-7B: tokens 4096, hidden 4096, intermediate 11008, vocab 32000).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Tokens per step.
    pub tokens: usize,
    /// Model width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer blocks (the AdamW row's parameter count).
    pub layers: usize,
}

/// The AdamW row's name.
const ADAMW: &str = "AdamW step (all parameters)";

const ROTATE: usize = 3;

struct Row {
    name: &'static str,
    trace: Trace,
    /// Differentiate with respect to these inputs (a scalar loss): time forward and backward.
    wrt: Option<Vec<usize>>,
}

fn meta(s: &[usize]) -> TensorMeta {
    TensorMeta::new(DType::BF16, s.to_vec()).on(Device::Cuda(0))
}

fn rows(z: &Sizes) -> Result<Vec<Row>, BoxError> {
    let (t, h, i, v) = (z.tokens, z.hidden, z.intermediate, z.vocab);
    let mut out = Vec::new();
    // RMSNorm forward.
    let mut b = TraceBuilder::new("rmsnorm");
    let x = b.input("x", meta(&[t, h]))?;
    let w = b.input("w", meta(&[h]))?;
    let y = b.rms_norm(x, &[h], Some(w), Some(1e-5))?;
    out.push(Row {
        name: "RMSNorm fwd",
        trace: b.build(&[y])?,
        wrt: None,
    });
    // RMSNorm forward + backward (loss = sum(rms_norm(x) * c)).
    let mut b = TraceBuilder::new("rmsnorm_fb");
    let x = b.input("x", meta(&[t, h]))?;
    let w = b.input("w", meta(&[h]))?;
    let c = b.input("c", meta(&[t, h]))?;
    let y = b.rms_norm(x, &[h], Some(w), Some(1e-5))?;
    let p = b.mul(y, c)?;
    let l = b.sum(p, &[], false)?;
    out.push(Row {
        name: "RMSNorm fwd+bwd",
        trace: b.build(&[l])?,
        wrt: Some(vec![0, 1]),
    });
    // Residual add + RMSNorm.
    let mut b = TraceBuilder::new("add_rmsnorm");
    let x = b.input("x", meta(&[t, h]))?;
    let r = b.input("r", meta(&[t, h]))?;
    let w = b.input("w", meta(&[h]))?;
    let s = b.add(x, r)?;
    let y = b.rms_norm(s, &[h], Some(w), Some(1e-5))?;
    out.push(Row {
        name: "residual add + RMSNorm",
        trace: b.build(&[s, y])?,
        wrt: None,
    });
    // SwiGLU forward.
    let mut b = TraceBuilder::new("swiglu");
    let a = b.input("a", meta(&[t, i]))?;
    let g = b.input("g", meta(&[t, i]))?;
    let s = b.silu(a)?;
    let y = b.mul(s, g)?;
    out.push(Row {
        name: "SwiGLU fwd",
        trace: b.build(&[y])?,
        wrt: None,
    });
    // SwiGLU forward + backward.
    let mut b = TraceBuilder::new("swiglu_fb");
    let a = b.input("a", meta(&[t, i]))?;
    let g = b.input("g", meta(&[t, i]))?;
    let c = b.input("c", meta(&[t, i]))?;
    let s = b.silu(a)?;
    let y = b.mul(s, g)?;
    let p = b.mul(y, c)?;
    let l = b.sum(p, &[], false)?;
    out.push(Row {
        name: "SwiGLU fwd+bwd",
        trace: b.build(&[l])?,
        wrt: Some(vec![0, 1]),
    });
    // RoPE forward on the query: [1, heads, tokens, head_dim].
    let hd = h / z.heads;
    let mut b = TraceBuilder::new("rope");
    let q = b.input("q", meta(&[1, z.heads, t, hd]))?;
    let cos = b.input("cos", meta(&[t, hd]))?;
    let sin = b.input("sin", meta(&[t, hd]))?;
    let y = thunder_ir::programs::apply_rope(&mut b, q, cos, sin)?;
    out.push(Row {
        name: "RoPE fwd",
        trace: b.build(&[y])?,
        wrt: None,
    });
    // RoPE forward + backward (loss = sum(rope(q) * c)).
    let mut b = TraceBuilder::new("rope_fb");
    let q = b.input("q", meta(&[1, z.heads, t, hd]))?;
    let cos = b.input("cos", meta(&[t, hd]))?;
    let sin = b.input("sin", meta(&[t, hd]))?;
    let c = b.input("c", meta(&[1, z.heads, t, hd]))?;
    let y = thunder_ir::programs::apply_rope(&mut b, q, cos, sin)?;
    let p = b.mul(y, c)?;
    let l = b.sum(p, &[], false)?;
    out.push(Row {
        name: "RoPE fwd+bwd",
        trace: b.build(&[l])?,
        wrt: Some(vec![0]),
    });
    // Softmax over the vocabulary.
    let mut b = TraceBuilder::new("softmax");
    let x = b.input("x", meta(&[t, v]))?;
    let y = b.softmax(x, -1)?;
    out.push(Row {
        name: "softmax",
        trace: b.build(&[y])?,
        wrt: None,
    });
    // Cross entropy: the same program timed forward, then forward + backward.
    let mut b = TraceBuilder::new("cross_entropy");
    let x = b.input("logits", meta(&[t, v]))?;
    let tg = b.input(
        "targets",
        TensorMeta::new(DType::I64, [t]).on(Device::Cuda(0)),
    )?;
    let l = b.cross_entropy(x, tg)?;
    let ce = b.build(&[l])?;
    out.push(Row {
        name: "cross entropy fwd",
        trace: ce.clone(),
        wrt: None,
    });
    out.push(Row {
        name: "cross entropy fwd+bwd",
        trace: ce,
        wrt: Some(vec![0]),
    });
    Ok(out)
}

fn random_inputs(trace: &Trace, vocab: usize) -> Vec<Tensor> {
    trace
        .inputs
        .iter()
        .map(|&v| {
            let m = trace.tensor(v).expect("tensor inputs");
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            if m.dtype == DType::I64 {
                Tensor::randint(
                    vocab as i64,
                    shape.as_slice(),
                    (Kind::Int64, TDevice::Cuda(0)),
                )
            } else {
                Tensor::randn(shape.as_slice(), (Kind::BFloat16, TDevice::Cuda(0)))
            }
        })
        .collect()
}

fn sync() {
    tch::Cuda::synchronize(0);
}

/// Median milliseconds per call of `f(k)` (k rotates over the input copies).
fn time_ms(mut f: impl FnMut(usize) -> Result<(), BoxError>) -> Result<f64, BoxError> {
    for k in 0..3 {
        f(k % ROTATE)?;
    }
    sync();
    let (reps, per) = (15, 8);
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        sync();
        let t0 = Instant::now();
        for k in 0..per {
            f(k % ROTATE)?;
        }
        sync();
        samples.push(t0.elapsed().as_secs_f64() * 1e3 / per as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[reps / 2])
}

fn bytes_of(trace: &Trace, values: &[Value]) -> usize {
    values
        .iter()
        .filter_map(|&v| trace.tensor(v))
        .map(|t| t.shape.numel() * t.dtype.itemsize())
        .sum()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    let scale = b.abs().max().double_value(&[]).max(1e-30);
    (a - b).abs().max().double_value(&[]) / scale
}

/// One measured row.
pub struct Measured {
    /// The pattern.
    pub name: &'static str,
    /// Eager libtorch, ms.
    pub eager_ms: f64,
    /// thunder (fusion executor), ms.
    pub fused_ms: f64,
    /// Bytes the fused program moves at least.
    pub bytes: usize,
    /// Fusion regions in the fused plans.
    pub regions: usize,
    /// Rows with a backward: bytes the forward saves for it (inputs it passes on included).
    pub saved_bytes: Option<usize>,
    /// Largest difference between the two results, relative to the largest value.
    pub max_rel_diff: f64,
}

/// Runs every row (or those whose name contains `only`, ignoring case); returns the
/// measurements and the copy bandwidth (GB/s).
pub fn run(z: &Sizes, only: Option<&str>) -> Result<(Vec<Measured>, f64), BoxError> {
    let mut selected = rows(z)?;
    let mut with_adamw = true;
    if let Some(o) = only {
        let mut names: Vec<&str> = selected.iter().map(|r| r.name).collect();
        names.push(ADAMW);
        let o = o.to_lowercase();
        selected.retain(|r| r.name.to_lowercase().contains(&o));
        with_adamw = ADAMW.to_lowercase().contains(&o);
        if selected.is_empty() && !with_adamw {
            return Err(format!(
                "--only {o:?} matches no pattern; the patterns are: {}",
                names.join(", ")
            )
            .into());
        }
    }
    if !tch::Cuda::is_available() {
        return Err("thunder-bench ops needs a CUDA device (libtorch sees none)".into());
    }
    // Copy bandwidth: read + write of 1 GiB.
    let n = 1usize << 29; // bf16 elements
    let src = Tensor::randn([n as i64], (Kind::BFloat16, TDevice::Cuda(0)));
    let mut dst = src.empty_like();
    let copy_ms = time_ms(|_| {
        dst.copy_(&src);
        Ok(())
    })?;
    drop((src, dst));
    let copy_gbs = (2 * 2 * n) as f64 / (copy_ms * 1e-3) / 1e9;
    let torch = TorchExecutor::new();
    let thunder: [&dyn Executor; 4] = [
        &CrossEntropyExecutor,
        &AdamwExecutor,
        &FusionExecutor,
        &torch,
    ];
    let eager = TorchExecutor::eager();
    let mut out = Vec::new();
    for row in selected {
        let sets: Vec<Vec<Tensor>> = (0..ROTATE)
            .map(|_| random_inputs(&row.trace, z.vocab))
            .collect();
        let m = match &row.wrt {
            None => {
                let fused = ExecutionPlan::compile(&row.trace, &thunder)?;
                let plain = ExecutionPlan::compile(&row.trace, &[&eager])?;
                let check = random_inputs(&row.trace, z.vocab);
                let a = fused.run_tensors(&check)?;
                let b = plain.run_tensors(&check)?;
                let diff = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| max_rel_diff(x, y))
                    .fold(0.0, f64::max);
                let eager_ms = time_ms(|k| {
                    plain.run_tensors(&sets[k])?;
                    Ok(())
                })?;
                let fused_ms = time_ms(|k| {
                    fused.run_tensors(&sets[k])?;
                    Ok(())
                })?;
                let io: Vec<Value> = row
                    .trace
                    .inputs
                    .iter()
                    .chain(&row.trace.outputs)
                    .copied()
                    .collect();
                Measured {
                    name: row.name,
                    eager_ms,
                    fused_ms,
                    bytes: bytes_of(&row.trace, &io),
                    regions: fused.claimed().regions.len(),
                    saved_bytes: None,
                    max_rel_diff: diff,
                }
            }
            Some(wrt_idx) => {
                let wrt: Vec<Value> = wrt_idx.iter().map(|&k| row.trace.inputs[k]).collect();
                let fb = thunder_transforms::forward_backward(&row.trace, &wrt)?;
                let fwd = ExecutionPlan::compile(&fb.forward, &thunder)?;
                let bwd = ExecutionPlan::compile(&fb.backward, &thunder)?;
                let plain = ExecutionPlan::compile(&row.trace, &[&eager])?;
                let n_out = row.trace.outputs.len();
                let ones = Tensor::ones([], (Kind::BFloat16, TDevice::Cuda(0)));
                let fused_step = |ins: &[Tensor]| -> Result<Vec<Tensor>, BoxError> {
                    let f = fwd.run_tensors(ins)?;
                    let mut bi: Vec<Tensor> =
                        f[n_out..].iter().map(|t| t.shallow_clone()).collect();
                    bi.push(ones.shallow_clone());
                    Ok(bwd.run_tensors(&bi)?)
                };
                let eager_step = |ins: &[Tensor]| -> Result<Vec<Tensor>, BoxError> {
                    let leaves: Vec<Tensor> = ins
                        .iter()
                        .enumerate()
                        .map(|(k, t)| {
                            if wrt_idx.contains(&k) {
                                t.detach().set_requires_grad(true)
                            } else {
                                t.shallow_clone()
                            }
                        })
                        .collect();
                    let out = plain.run_tensors(&leaves)?;
                    let refs: Vec<&Tensor> = wrt_idx.iter().map(|&k| &leaves[k]).collect();
                    Ok(Tensor::f_run_backward(
                        &[out[0].shallow_clone()],
                        &refs,
                        false,
                        false,
                    )?)
                };
                let check = random_inputs(&row.trace, z.vocab);
                let a = fused_step(&check)?;
                let b = eager_step(&check)?;
                let diff = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| max_rel_diff(x, y))
                    .fold(0.0, f64::max);
                let eager_ms = time_ms(|k| {
                    eager_step(&sets[k])?;
                    Ok(())
                })?;
                let fused_ms = time_ms(|k| {
                    fused_step(&sets[k])?;
                    Ok(())
                })?;
                // A saved forward input is passed on, not written again.
                let fio: Vec<Value> = fb
                    .forward
                    .inputs
                    .iter()
                    .chain(
                        fb.forward
                            .outputs
                            .iter()
                            .filter(|v| !fb.forward.inputs.contains(v)),
                    )
                    .copied()
                    .collect();
                let saved: Vec<Value> = fb.forward.outputs[n_out..].to_vec();
                let bio: Vec<Value> = fb
                    .backward
                    .inputs
                    .iter()
                    .chain(&fb.backward.outputs)
                    .copied()
                    .collect();
                Measured {
                    name: row.name,
                    eager_ms,
                    fused_ms,
                    bytes: bytes_of(&fb.forward, &fio) + bytes_of(&fb.backward, &bio),
                    regions: fwd.claimed().regions.len() + bwd.claimed().regions.len(),
                    saved_bytes: Some(bytes_of(&fb.forward, &saved)),
                    max_rel_diff: diff,
                }
            }
        };
        eprintln!(
            "{}: eager {:.3} ms, thunder {:.3} ms, max rel diff {:.2e}",
            m.name, m.eager_ms, m.fused_ms, m.max_rel_diff
        );
        out.push(m);
    }
    if with_adamw {
        let m = adamw_row(z, &thunder)?;
        eprintln!(
            "{}: eager {:.3} ms, thunder {:.3} ms, max rel diff {:.2e}",
            m.name, m.eager_ms, m.fused_ms, m.max_rel_diff
        );
        out.push(m);
    }
    Ok((out, copy_gbs))
}

/// The parameter shapes of a Llama-2 model of `z`'s sizes (LitGPT's layout: fused qkv, untied
/// head).
fn llama_parameter_shapes(z: &Sizes) -> Vec<Vec<i64>> {
    let (h, i, v) = (z.hidden as i64, z.intermediate as i64, z.vocab as i64);
    let mut shapes = vec![vec![v, h]];
    for _ in 0..z.layers {
        shapes.extend([
            vec![h],
            vec![3 * h, h],
            vec![h, h],
            vec![h],
            vec![i, h],
            vec![i, h],
            vec![h, i],
        ]);
    }
    shapes.extend([vec![h], vec![v, h]]);
    shapes
}

/// AdamW state for `shapes` (bf16 on cuda:0): parameters, gradients, first and second moments.
fn adamw_state(shapes: &[Vec<i64>]) -> [Vec<Tensor>; 4] {
    let on = (Kind::BFloat16, TDevice::Cuda(0));
    let mut s: [Vec<Tensor>; 4] = Default::default();
    for shape in shapes {
        s[0].push(Tensor::randn(shape.as_slice(), on));
        s[1].push(Tensor::randn(shape.as_slice(), on) * 1e-2);
        s[2].push(Tensor::randn(shape.as_slice(), on) * 1e-3);
        s[3].push(Tensor::rand(shape.as_slice(), on) * 1e-5);
    }
    s
}

fn adamw_trace(shapes: &[Vec<i64>]) -> Result<Trace, BoxError> {
    let params: Vec<(DType, Vec<usize>)> = shapes
        .iter()
        .map(|s| (DType::BF16, s.iter().map(|&d| d as usize).collect()))
        .collect();
    let o = thunder_ir::AdamwOptions {
        inplace: true,
        ..Default::default()
    };
    Ok(thunder_ir::programs::adamw_step(
        &params,
        DType::F32,
        Device::Cuda(0),
        &o,
    )?)
}

/// The trace's inputs for `state` and `step`, in order.
fn adamw_inputs(state: &[Vec<Tensor>; 4], step: &Tensor) -> Vec<Tensor> {
    let mut ins = Vec::with_capacity(4 * state[0].len() + 1);
    for k in 0..state[0].len() {
        for col in state {
            ins.push(col[k].shallow_clone());
        }
    }
    ins.push(step.shallow_clone());
    ins
}

/// One AdamW step over every parameter of the model, updated in place: eager is PyTorch's
/// `_fused_adamw_` (what `torch.optim.AdamW(fused=True)` runs), thunder the plan of `ltorch.adamw`
/// with donated buffers. Checked first on one block's parameters (same shapes, fresh values,
/// both sides from the same state); timed on the whole model, whose state (54 GB for 7B in
/// bf16) is far larger than any cache, so it is not rotated.
fn adamw_row(z: &Sizes, thunder: &[&dyn Executor]) -> Result<Measured, BoxError> {
    let h = thunder_executors::shim::AdamwHyper {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-2,
    };
    let step = Tensor::full([], 3.0, (Kind::Float, TDevice::Cuda(0)));
    let eager = |s: &[Vec<Tensor>; 4]| -> Result<(), BoxError> {
        let r = |k: usize| s[k].iter().collect::<Vec<&Tensor>>();
        thunder_executors::shim::fused_adamw_(&r(0), &r(1), &r(2), &r(3), &step, h)
            .map_err(|e| e.0)?;
        Ok(())
    };
    // Check: one block (and the embedding), both from the same state.
    let check_shapes = llama_parameter_shapes(&Sizes { layers: 1, ..*z });
    let a = adamw_state(&check_shapes);
    let b: [Vec<Tensor>; 4] = std::array::from_fn(|k| a[k].iter().map(|t| t.copy()).collect());
    let plan = ExecutionPlan::compile(&adamw_trace(&check_shapes)?, thunder)?;
    let got = plan.run_tensors(&adamw_inputs(&a, &step))?;
    eager(&b)?;
    let want: Vec<&Tensor> = [0, 2, 3].iter().flat_map(|&k| b[k].iter()).collect();
    let diff = got
        .iter()
        .zip(want)
        .map(|(x, y)| max_rel_diff(x, y))
        .fold(0.0, f64::max);
    drop((a, b, got, plan));
    // Time: the whole model, in place, the same buffers every step.
    let shapes = llama_parameter_shapes(z);
    let state = adamw_state(&shapes);
    let trace = adamw_trace(&shapes)?;
    let plan = ExecutionPlan::compile(&trace, thunder)?;
    let ins = adamw_inputs(&state, &step);
    let eager_ms = time_ms(|_| eager(&state))?;
    let fused_ms = time_ms(|_| {
        plan.run_tensors(&ins)?;
        Ok(())
    })?;
    let numel: i64 = shapes.iter().map(|s| s.iter().product::<i64>()).sum();
    Ok(Measured {
        name: ADAMW,
        eager_ms,
        fused_ms,
        // Parameter, gradient and both moments read, parameter and moments written.
        bytes: numel as usize * 2 * 7,
        regions: plan.claimed().regions.len(),
        saved_bytes: None,
        max_rel_diff: diff,
    })
}

/// The table: one row per pattern.
pub fn table(rows: &[Measured], copy_gbs: f64, device: &str) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED).set_header(vec![
        "pattern",
        "eager ms",
        "thunder ms",
        "speedup",
        "eager GB/s",
        "thunder GB/s",
        "eager % copy",
        "thunder % copy",
        "regions",
        "saved MB",
        "max rel diff",
    ]);
    for r in rows {
        let gbs = |ms: f64| r.bytes as f64 / (ms * 1e-3) / 1e9;
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        t.add_row(vec![
            Cell::new(r.name),
            right(format!("{:.3}", r.eager_ms)),
            right(format!("{:.3}", r.fused_ms)),
            right(format!("{:.2}x", r.eager_ms / r.fused_ms)),
            right(format!("{:.0}", gbs(r.eager_ms))),
            right(format!("{:.0}", gbs(r.fused_ms))),
            right(format!("{:.0}%", 100.0 * gbs(r.eager_ms) / copy_gbs)),
            right(format!("{:.0}%", 100.0 * gbs(r.fused_ms) / copy_gbs)),
            right(r.regions.to_string()),
            right(
                r.saved_bytes
                    .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
            ),
            right(format!("{:.1e}", r.max_rel_diff)),
        ]);
    }
    format!("{device}; device-to-device copy: {copy_gbs:.0} GB/s\n{t}")
}
