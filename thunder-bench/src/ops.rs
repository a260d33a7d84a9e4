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
//!
//! Before any work the sizes are checked ([`Sizes::validate`]: every flag, every tensor's element
//! count against libtorch's `int64`), then what the run needs at least against the device's free
//! memory: the copy test's 2 GiB, a pattern's input copies, the AdamW row's parameters,
//! gradients and moments.

use comfy_table::{presets, Cell, CellAlignment, Table};
use std::time::Instant;
use tch::{Device as TDevice, Kind, Tensor};
use thunder_executors::{
    AdamwExecutor, CrossEntropyExecutor, ExecutionPlan, Executor, FusionExecutor, TorchExecutor,
};
use thunder_ir::{DType, Device, TensorMeta, Trace, TraceBuilder, Value};

/// What can go wrong; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// The run cannot fit the device's free memory (checked before it starts).
    #[error(transparent)]
    NotEnoughMemory(#[from] Box<crate::memory::NotEnoughMemory>),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    /// Building a pattern's trace failed.
    #[error("building a pattern: {0}")]
    Ir(#[from] thunder_ir::IrError),
    /// The forward/backward split failed.
    #[error("transforming a pattern: {0}")]
    Transform(#[from] thunder_transforms::TransformError),
    /// Compiling or running a plan failed.
    #[error("{0}")]
    Plan(#[from] thunder_executors::Error),
    /// A kernel outside a plan failed (PyTorch's fused AdamW).
    #[error("{0}")]
    Kernel(String),
}

type Result<T, E = OpsError> = std::result::Result<T, E>;

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

impl Sizes {
    /// Checks every size before any work; the error names the flag to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(OpsError::Usage(m));
        crate::llama::config::check_shared_sizes(
            &[
                ("--tokens", self.tokens),
                ("--hidden", self.hidden),
                ("--intermediate", self.intermediate),
                ("--vocab", self.vocab),
                ("--heads", self.heads),
                ("--layers", self.layers),
            ],
            self.hidden,
            self.heads,
        )
        .map_err(OpsError::Usage)?;
        let max_layers = crate::llama::config::MAX_LAYERS;
        if self.layers > max_layers {
            return bad(format!(
                "--layers {} is more than {max_layers}: the AdamW row holds 9 tensors per block \
                 (Llama-2-7B has 32 blocks); give at most {max_layers}",
                self.layers
            ));
        }
        let max = crate::llama::config::MAX_NUMEL;
        let mul = |a: usize, b: usize| a.checked_mul(b).filter(|&n| n <= max);
        let (t, h, i, v) = (self.tokens, self.hidden, self.intermediate, self.vocab);
        for (what, flags, n) in [
            (
                "a [tokens, hidden] input",
                "--tokens or --hidden",
                mul(t, h),
            ),
            (
                "a [tokens, intermediate] input",
                "--tokens or --intermediate",
                mul(t, i),
            ),
            (
                "the logits [tokens, vocab]",
                "--tokens or --vocab",
                mul(t, v),
            ),
            (
                "the embedding [vocab, hidden]",
                "--vocab or --hidden",
                mul(v, h),
            ),
            (
                "the qkv weight [3 hidden, hidden]",
                "--hidden",
                mul(3, h).and_then(|r| mul(r, h)),
            ),
            (
                "an MLP weight [intermediate, hidden]",
                "--intermediate or --hidden",
                mul(i, h),
            ),
            (
                "the AdamW row's state (14 bytes a parameter)",
                "--layers, --hidden, --intermediate or --vocab",
                self.parameters().and_then(|p| mul(p, 14)),
            ),
        ] {
            if n.is_none() {
                return bad(format!(
                    "{what} would have more than {max} elements (libtorch counts them in int64): \
                     lower {flags}"
                ));
            }
        }
        Ok(())
    }

    /// The parameters of a Llama-2 model of these sizes (the AdamW row's:
    /// [`llama_parameter_shapes`]), if the count fits.
    fn parameters(&self) -> Option<usize> {
        let w = |n: usize| n as u128;
        let (h, i, v) = (w(self.hidden), w(self.intermediate), w(self.vocab));
        // Two norms, qkv, the output projection, three MLP weights.
        let block = (2 * h)
            .checked_add(h.checked_mul(h)?.checked_mul(4)?)?
            .checked_add(i.checked_mul(h)?.checked_mul(3)?)?;
        let all = w(self.layers)
            .checked_mul(block)?
            .checked_add(v.checked_mul(h)?.checked_mul(2)?)?
            .checked_add(h)?;
        usize::try_from(all).ok()
    }
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

fn rows(z: &Sizes) -> Result<Vec<Row>> {
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
    let hd = h / z.heads.max(1);
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

fn random_inputs(trace: &Trace, vocab: usize) -> Result<Vec<Tensor>> {
    trace
        .inputs
        .iter()
        .map(|&v| {
            let m = trace.tensor(v).ok_or_else(|| {
                OpsError::Usage(format!("{}: an input is not a tensor", trace.name))
            })?;
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            Ok(if m.dtype == DType::I64 {
                Tensor::f_randint(
                    vocab as i64,
                    shape.as_slice(),
                    (Kind::Int64, TDevice::Cuda(0)),
                )?
            } else {
                Tensor::f_randn(shape.as_slice(), (Kind::BFloat16, TDevice::Cuda(0)))?
            })
        })
        .collect()
}

fn sync() {
    tch::Cuda::synchronize(0);
}

/// Median milliseconds per call of `f(k)` (k rotates over the input copies).
fn time_ms(mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
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
        .map(|t| t.shape.numel().saturating_mul(t.dtype.itemsize()))
        .fold(0, usize::saturating_add)
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.f_to_kind(Kind::Double)?;
    let b = b.f_to_kind(Kind::Double)?;
    let scale = b.f_abs()?.f_max()?.f_double_value(&[])?.max(1e-30);
    Ok(a.f_sub(&b)?.f_abs()?.f_max()?.f_double_value(&[])? / scale)
}

/// Folds the relative differences of two result lists into the largest.
fn max_rel_diffs(a: &[Tensor], b: &[Tensor]) -> Result<f64> {
    a.iter()
        .zip(b)
        .try_fold(0.0, |m, (x, y)| Ok(max_rel_diff(x, y)?.max(m)))
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
pub fn run(z: &Sizes, only: Option<&str>) -> Result<(Vec<Measured>, f64)> {
    z.validate()?;
    let (selected, with_adamw) = select(z, only)?;
    if !tch::Cuda::is_available() {
        return Err(OpsError::Usage(
            "thunder-bench ops needs a CUDA device (libtorch sees none)".into(),
        ));
    }
    match crate::memory::cuda_room(0) {
        Ok(room) => check_memory(z, only, &room)?,
        Err(e) => eprintln!("thunder-bench: {e}; the run goes on without a memory check"),
    }
    // Copy bandwidth: read + write of 1 GiB.
    let n = COPY_ELEMENTS;
    let src = Tensor::f_randn([n as i64], (Kind::BFloat16, TDevice::Cuda(0)))?;
    let mut dst = src.f_empty_like()?;
    let copy_ms = time_ms(|_| {
        dst.f_copy_(&src)?;
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
            .collect::<Result<_>>()?;
        let m = match &row.wrt {
            None => {
                let fused = ExecutionPlan::compile(&row.trace, &thunder)?;
                let plain = ExecutionPlan::compile(&row.trace, &[&eager])?;
                let check = random_inputs(&row.trace, z.vocab)?;
                let a = fused.run_tensors(&check)?;
                let b = plain.run_tensors(&check)?;
                let diff = max_rel_diffs(&a, &b)?;
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
                let ones = Tensor::f_ones([], (Kind::BFloat16, TDevice::Cuda(0)))?;
                let fused_step = |ins: &[Tensor]| -> Result<Vec<Tensor>> {
                    let f = fwd.run_tensors(ins)?;
                    let mut bi: Vec<Tensor> =
                        f[n_out..].iter().map(|t| t.shallow_clone()).collect();
                    bi.push(ones.shallow_clone());
                    Ok(bwd.run_tensors(&bi)?)
                };
                let eager_step = |ins: &[Tensor]| -> Result<Vec<Tensor>> {
                    let leaves: Vec<Tensor> = ins
                        .iter()
                        .enumerate()
                        .map(|(k, t)| {
                            Ok(if wrt_idx.contains(&k) {
                                t.f_detach()?.f_set_requires_grad(true)?
                            } else {
                                t.shallow_clone()
                            })
                        })
                        .collect::<Result<_>>()?;
                    let out = plain.run_tensors(&leaves)?;
                    let refs: Vec<&Tensor> = wrt_idx.iter().map(|&k| &leaves[k]).collect();
                    Ok(Tensor::f_run_backward(
                        &[out[0].shallow_clone()],
                        &refs,
                        false,
                        false,
                    )?)
                };
                let check = random_inputs(&row.trace, z.vocab)?;
                let a = fused_step(&check)?;
                let b = eager_step(&check)?;
                let diff = max_rel_diffs(&a, &b)?;
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

/// The patterns `--only` picks (all without it), and whether it picks the AdamW row.
fn select(z: &Sizes, only: Option<&str>) -> Result<(Vec<Row>, bool)> {
    let mut selected = rows(z)?;
    let Some(o) = only else {
        return Ok((selected, true));
    };
    let mut names: Vec<&str> = selected.iter().map(|r| r.name).collect();
    names.push(ADAMW);
    let o = o.to_lowercase();
    selected.retain(|r| r.name.to_lowercase().contains(&o));
    let with_adamw = ADAMW.to_lowercase().contains(&o);
    if selected.is_empty() && !with_adamw {
        return Err(OpsError::Usage(format!(
            "--only {o:?} matches no pattern; the patterns are: {}",
            names.join(", ")
        )));
    }
    Ok((selected, with_adamw))
}

/// Elements (bf16) of the copy-bandwidth test's source.
const COPY_ELEMENTS: usize = 1 << 29;

/// What needs the most device memory in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// The copy-bandwidth test: a source and a destination.
    Copy,
    /// A pattern: its rotated input copies and the checked one, both sides' outputs.
    Pattern(&'static str),
    /// The AdamW row: parameters, gradients and both moments, bf16.
    Adamw,
}

/// What the run needs at least on the device, in bytes, and the part that needs it (the parts
/// run one after the other).
fn need(z: &Sizes, only: Option<&str>) -> Result<(f64, Part)> {
    let (selected, with_adamw) = select(z, only)?;
    let mut worst = ((2 * 2 * COPY_ELEMENTS) as f64, Part::Copy);
    for r in &selected {
        let ins = bytes_of(&r.trace, &r.trace.inputs) as f64;
        let outs = bytes_of(&r.trace, &r.trace.outputs) as f64;
        let n = (ROTATE + 1) as f64 * ins + 2.0 * outs;
        if n > worst.0 {
            worst = (n, Part::Pattern(r.name));
        }
    }
    if with_adamw {
        let n = 4.0 * 2.0 * z.parameters().unwrap_or(usize::MAX) as f64;
        if n > worst.0 {
            worst = (n, Part::Adamw);
        }
    }
    Ok(worst)
}

/// Refuses a run that needs more than `room` on cuda:0, saying what to lower and to what.
fn check_memory(z: &Sizes, only: Option<&str>, room: &crate::memory::Room) -> Result<()> {
    let (n, part) = need(z, only)?;
    let free = room.bytes as f64;
    if n <= free {
        return Ok(());
    }
    let fits = |z: Sizes| need(&z, only).is_ok_and(|(n, _)| n <= free);
    let (what, advice) = match part {
        Part::Copy => (
            "the copy-bandwidth test".to_string(),
            "free memory on cuda:0 (other processes hold it)".to_string(),
        ),
        Part::Pattern(name) => (
            format!("the pattern {name:?}"),
            match crate::memory::largest(z.tokens, |tokens| fits(Sizes { tokens, ..*z })) {
                Some(t) => format!("lower --tokens to at most {t}"),
                None => "lower --tokens, --vocab or --intermediate".into(),
            },
        ),
        Part::Adamw => (
            format!("the {ADAMW} row"),
            match crate::memory::largest(z.layers, |layers| fits(Sizes { layers, ..*z })) {
                Some(l) => format!(
                    "lower --layers to at most {l}, or leave the row out with --only PATTERN"
                ),
                None => {
                    "lower --vocab or --hidden, or leave the row out with --only PATTERN".into()
                }
            },
        ),
    };
    Err(Box::new(crate::memory::NotEnoughMemory {
        device: "cuda:0".into(),
        what,
        need: n,
        breakdown: format!(
            "tokens {}, hidden {}, intermediate {}, vocab {}, {} layers, bf16",
            z.tokens, z.hidden, z.intermediate, z.vocab, z.layers
        ),
        room: room.clone(),
        advice,
    })
    .into())
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
fn adamw_state(shapes: &[Vec<i64>]) -> Result<[Vec<Tensor>; 4]> {
    let on = (Kind::BFloat16, TDevice::Cuda(0));
    let mut s: [Vec<Tensor>; 4] = Default::default();
    for shape in shapes {
        let shape = shape.as_slice();
        s[0].push(Tensor::f_randn(shape, on)?);
        s[1].push(Tensor::f_randn(shape, on)?.f_mul_scalar_(1e-2)?);
        s[2].push(Tensor::f_randn(shape, on)?.f_mul_scalar_(1e-3)?);
        s[3].push(Tensor::f_rand(shape, on)?.f_mul_scalar_(1e-5)?);
    }
    Ok(s)
}

fn adamw_trace(shapes: &[Vec<i64>]) -> Result<Trace> {
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
fn adamw_row(z: &Sizes, thunder: &[&dyn Executor]) -> Result<Measured> {
    let h = thunder_executors::shim::AdamwHyper {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-2,
    };
    let step = Tensor::f_full([], 3.0, (Kind::Float, TDevice::Cuda(0)))?;
    let eager = |s: &[Vec<Tensor>; 4]| -> Result<()> {
        let r = |k: usize| s[k].iter().collect::<Vec<&Tensor>>();
        thunder_executors::shim::fused_adamw_(&r(0), &r(1), &r(2), &r(3), &step, h)
            .map_err(|e| OpsError::Kernel(e.0))?;
        Ok(())
    };
    // Check: one block (and the embedding), both from the same state.
    let check_shapes = llama_parameter_shapes(&Sizes { layers: 1, ..*z });
    let a = adamw_state(&check_shapes)?;
    let copy = |t: &Tensor| -> Result<Tensor> {
        let mut c = t.f_empty_like()?;
        c.f_copy_(t)?;
        Ok(c)
    };
    let mut b: [Vec<Tensor>; 4] = Default::default();
    for (col, from) in b.iter_mut().zip(&a) {
        *col = from.iter().map(copy).collect::<Result<_>>()?;
    }
    let plan = ExecutionPlan::compile(&adamw_trace(&check_shapes)?, thunder)?;
    let got = plan.run_tensors(&adamw_inputs(&a, &step))?;
    eager(&b)?;
    let want: Vec<&Tensor> = [0, 2, 3].iter().flat_map(|&k| b[k].iter()).collect();
    let diff = got.iter().zip(want).try_fold(0.0, |m, (x, y)| {
        Ok::<_, OpsError>(max_rel_diff(x, y)?.max(m))
    })?;
    drop((a, b, got, plan));
    // Time: the whole model, in place, the same buffers every step.
    let shapes = llama_parameter_shapes(z);
    let state = adamw_state(&shapes)?;
    let trace = adamw_trace(&shapes)?;
    let plan = ExecutionPlan::compile(&trace, thunder)?;
    let ins = adamw_inputs(&state, &step);
    let eager_ms = time_ms(|_| eager(&state))?;
    let fused_ms = time_ms(|_| {
        plan.run_tensors(&ins)?;
        Ok(())
    })?;
    Ok(Measured {
        name: ADAMW,
        eager_ms,
        fused_ms,
        // Parameter, gradient and both moments read, parameter and moments written (the count
        // fits: `Sizes::validate`).
        bytes: z.parameters().unwrap_or(0).saturating_mul(2 * 7),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Room;

    const LLAMA2_7B: Sizes = Sizes {
        tokens: 4096,
        hidden: 4096,
        intermediate: 11008,
        vocab: 32000,
        heads: 32,
        layers: 32,
    };

    /// Checked before CUDA is asked for: the same errors on a machine without a GPU.
    #[test]
    fn bad_sizes_are_refused_before_any_work_naming_the_flag() {
        /// A change to the 7B sizes and the error it must give.
        type Case = (fn(&mut Sizes), &'static str);
        let cases: [Case; 6] = [
            (|z| z.heads = 0, "--heads must be at least 1"),
            (|z| z.vocab = 0, "--vocab must be at least 1"),
            (|z| z.layers = 2000, "--layers 2000 is more than 1024"),
            (
                |z| z.hidden = 4095,
                "--hidden 4095 is not a multiple of --heads 32",
            ),
            (|z| z.tokens = usize::MAX, "lower --tokens or --hidden"),
            (
                |z| (z.layers, z.intermediate) = (1024, 1 << 45),
                "the AdamW row's state (14 bytes a parameter) would have more than",
            ),
        ];
        for (change, want) in cases {
            let mut z = LLAMA2_7B;
            change(&mut z);
            let e = run(&z, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
        LLAMA2_7B.validate().unwrap();
        assert_eq!(LLAMA2_7B.parameters(), Some(6_738_415_616));
        let numel = |z: &Sizes| -> i64 {
            llama_parameter_shapes(z)
                .iter()
                .map(|s| s.iter().product::<i64>())
                .sum()
        };
        assert_eq!(numel(&LLAMA2_7B), 6_738_415_616);
        let z = Sizes {
            layers: 3,
            vocab: 77,
            ..LLAMA2_7B
        };
        assert_eq!(z.parameters(), Some(numel(&z) as usize));
        // Sizes near the top of usize are refused, not wrapped.
        for hidden in [1 << 62, usize::MAX - 1] {
            let z = Sizes {
                hidden,
                heads: 2,
                ..LLAMA2_7B
            };
            assert!(z.validate().is_err());
        }
    }

    #[test]
    fn a_run_that_cannot_fit_says_which_size_to_lower_to_what() {
        let room = |gb: f64| Room {
            bytes: (gb * 1e9) as u64,
            source: "test".into(),
        };
        // The AdamW row's 54 GB of state for 7B.
        let (n, part) = need(&LLAMA2_7B, None).unwrap();
        assert_eq!(part, Part::Adamw);
        assert!((n - 8.0 * 6_738_415_616.0).abs() < 1.0, "{n}");
        check_memory(&LLAMA2_7B, None, &room(80.0)).unwrap();
        let e = check_memory(&LLAMA2_7B, None, &room(24.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not enough memory on cuda:0: the AdamW"), "{e}");
        let l: usize = e
            .split("--layers to at most ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{e}"));
        let fits = |layers| {
            check_memory(
                &Sizes {
                    layers,
                    ..LLAMA2_7B
                },
                None,
                &room(24.0),
            )
        };
        assert!(fits(l).is_ok() && fits(l + 1).is_err(), "{l}");
        // Without the AdamW row the patterns need little; many tokens make the softmax big.
        check_memory(&LLAMA2_7B, Some("softmax"), &room(24.0)).unwrap();
        let z = Sizes {
            tokens: 1 << 22,
            ..LLAMA2_7B
        };
        let e = check_memory(&z, Some("softmax"), &room(24.0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the pattern \"softmax\"") && e.contains("lower --tokens to at most"),
            "{e}"
        );
    }
}
