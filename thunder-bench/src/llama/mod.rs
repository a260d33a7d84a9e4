//! `thunder-bench llama2`: end-to-end training steps of the Llama-2 family, compiled against
//! eager, in one invocation.
//!
//! Each mode trains the same model (same initial parameters, same batch, same AdamW settings)
//! for `warmup + steps` steps, one mode after the other so that only one copy of the model is on
//! the device at a time. A step is timed from its start until the device has finished it; its
//! host time is the time until the last kernel is queued. The losses of the modes must agree
//! step by step within the dtype's tolerance, or the run fails.
//!
//! Before anything is made, the options are checked (every size, and every tensor's element
//! count against libtorch's `int64`), then a lower bound of the run's peak memory
//! ([`estimate`]) against the device's free memory: a run that cannot fit is refused with what
//! to lower.

pub mod config;
pub mod dist;
pub mod estimate;
pub mod graphed;
pub mod model;
pub mod train;

use comfy_table::{presets, Cell, CellAlignment, Table};
use config::Config;
use std::path::{Path, PathBuf};
use std::time::Instant;
use thunder_executors::Executor;
use thunder_ir::{DType, Device};
use train::{Compiled, Eager, Trainer};

/// What can go wrong; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// The run cannot fit the device's free memory (checked before it starts).
    #[error(transparent)]
    NotEnoughMemory(#[from] Box<crate::memory::NotEnoughMemory>),
    /// The device ran out of memory.
    #[error("out of memory on {device} in {mode} mode ({what}): lower --micro-batch, --seq-len or --layers")]
    OutOfMemory {
        /// The device.
        device: String,
        /// The mode.
        mode: String,
        /// The model and sizes.
        what: String,
    },
    /// The losses of two modes differ by more than the tolerance.
    #[error("{0}")]
    Diverged(String),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    /// Building the model's trace failed.
    #[error("building the model: {0}")]
    Ir(#[from] thunder_ir::IrError),
    /// A transform failed.
    #[error("transforming the step: {0}")]
    Transform(#[from] thunder_transforms::TransformError),
    /// Compiling or running a plan failed.
    #[error("{0}")]
    Plan(#[from] thunder_executors::Error),
    /// A kernel outside a plan failed (the eager optimizer step, memory statistics).
    #[error("{0}")]
    Kernel(String),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A way of running the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The model op by op through libtorch, with libtorch autograd and `_fused_adamw_`.
    Eager,
    /// The compiled step (forward, backward and AdamW plans).
    Thunder,
    /// The compiled step captured into one CUDA graph after its first run, then replayed.
    #[serde(rename = "thunder-graphs")]
    ThunderGraphs,
}

impl Mode {
    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Eager => "eager",
            Mode::Thunder => "thunder",
            Mode::ThunderGraphs => "thunder-graphs",
        }
    }

    /// Parses a comma-separated list (`eager,thunder`).
    pub fn parse_list(s: &str) -> Result<Vec<Mode>, BenchError> {
        let mut out = Vec::new();
        for m in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let mode = match m {
                "eager" => Mode::Eager,
                "thunder" => Mode::Thunder,
                "thunder-graphs" => Mode::ThunderGraphs,
                _ => {
                    return Err(BenchError::Usage(format!(
                        "unknown mode {m:?} in --modes; the modes are: eager, thunder, \
                         thunder-graphs"
                    )))
                }
            };
            if !out.contains(&mode) {
                out.push(mode);
            }
        }
        if out.is_empty() {
            return Err(BenchError::Usage(
                "--modes is empty; give eager, thunder or eager,thunder".into(),
            ));
        }
        Ok(out)
    }
}

/// The executors `--executors` may name, in the order of the default list.
pub const EXECUTORS: [&str; 4] = thunder_executors::EXECUTOR_NAMES;

/// The executors of the thunder mode, from their names (highest priority first). The torch
/// executor is added last when missing: every op must have an executor.
pub fn executors(names: &[String]) -> Result<Vec<Box<dyn Executor>>, BenchError> {
    thunder_executors::executors_by_name(names)
        .map_err(|e| BenchError::Usage(format!("{e} (--executors)")))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model.
    pub config: Config,
    /// Sequences per step.
    pub micro_batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Parameter and activation dtype.
    pub dtype: DType,
    /// Where to train.
    pub device: Device,
    /// The modes, run in this order.
    pub modes: Vec<Mode>,
    /// The thunder mode's executors (see [`EXECUTORS`]).
    pub executors: Vec<String>,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (the first step is timed on its own as the compile time).
    pub warmup: usize,
    /// Seed of the initial parameters and the batch.
    pub seed: i64,
    /// AdamW's learning rate.
    pub lr: f64,
    /// Write every trace of the compiled step there.
    pub print_traces: Option<PathBuf>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Time every instruction of the compiled step's first step and of one more step after the
    /// timed ones, and write the results into this folder.
    pub profile: Option<PathBuf>,
    /// Distributed: record the collectives' timeline of the last timed step of the compiled
    /// mode into this folder (`rank<N>.txt`).
    pub comm_profile: Option<PathBuf>,
}

impl Options {
    /// Checks every size and setting before anything is made; the error names the flag to
    /// change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Usage(m));
        self.config.validate()?;
        for (flag, v) in [
            ("--micro-batch", self.micro_batch),
            ("--seq-len", self.seq_len),
            ("--steps", self.steps),
        ] {
            if v == 0 {
                return bad(format!("{flag} must be at least 1"));
            }
        }
        if self
            .steps
            .checked_add(self.warmup)
            .is_none_or(|n| n == usize::MAX)
        {
            return bad(format!(
                "--steps {} and --warmup {} add up to more steps than can be counted; lower them",
                self.steps, self.warmup
            ));
        }
        if !self.lr.is_finite() || self.lr < 0.0 {
            return bad(format!(
                "--lr {} is not a learning rate: give a finite number, 0 or more (e.g. 3e-5)",
                self.lr
            ));
        }
        let c = &self.config;
        let (b, t) = (self.micro_batch, self.seq_len);
        let kv = c.kv_heads * c.head_dim();
        // The batch's ids hold one token more than a sequence; the widest activations.
        for (what, n) in [
            ("the token ids", product(&[b, t.saturating_add(1)])),
            ("the logits", product(&[b, t, c.padded_vocab()])),
            ("the MLP activations", product(&[b, t, c.intermediate])),
            ("the qkv activations", product(&[b, t, c.hidden + 2 * kv])),
        ] {
            if n.is_none_or(|n| n > config::MAX_NUMEL) {
                return bad(format!(
                    "{what} of --micro-batch {b} x --seq-len {t} would have more than {} \
                     elements (libtorch counts them in int64): lower --seq-len or --micro-batch",
                    config::MAX_NUMEL
                ));
            }
        }
        Ok(())
    }
}

/// The product of `sizes`, if it fits `usize`.
fn product(sizes: &[usize]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s))
}

/// Refuses the run when [`estimate`]'s lower bound of its peak memory exceeds the device's free
/// memory. When the free memory cannot be read, says so and lets the run go on.
pub fn check_memory(o: &Options, dist: Option<&dist::Dist>) -> Result<(), BenchError> {
    use estimate::Sharding;
    let sharding = match dist.map(|d| (d.parallel, d.world)) {
        Some((dist::Parallel::Fsdp(thunder_distributed::Zero::Two), w)) => Sharding::Zero2(w),
        Some((dist::Parallel::Fsdp(thunder_distributed::Zero::Three), w)) => Sharding::Zero3(w),
        _ => Sharding::Replicated,
    };
    match crate::memory::room(o.device) {
        Ok(room) => Ok(estimate::check(o, sharding, &room)?),
        Err(e) => {
            eprintln!("thunder-bench: {e}; the run goes on without a memory check");
            Ok(())
        }
    }
}

/// The device chosen by `--device` (`auto`: the first GPU if libtorch sees one, else the CPU),
/// checked to exist.
pub fn parse_device(s: &str) -> Result<Device, BenchError> {
    let n = tch::Cuda::device_count() as usize;
    let d = match s {
        "auto" => {
            if n > 0 {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }
        }
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<u32>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => {
                return Err(BenchError::Usage(format!(
                    "--device {s:?} is not a device; give auto, cpu, cuda or cuda:N"
                )))
            }
        },
    };
    if let Device::Cuda(i) = d {
        if i as usize >= n {
            return Err(BenchError::Usage(if n == 0 {
                format!("--device {s}: libtorch sees no CUDA device here; use --device cpu")
            } else {
                format!(
                    "--device {s}: this machine has {n} CUDA device(s), cuda:0 to cuda:{}",
                    n - 1
                )
            }));
        }
    }
    Ok(d)
}

/// Parses `--dtype`.
pub fn parse_dtype(s: &str) -> Result<DType, BenchError> {
    Ok(match s {
        "bf16" | "bfloat16" => DType::BF16,
        "f16" | "float16" => DType::F16,
        "f32" | "float32" => DType::F32,
        "f64" | "float64" => DType::F64,
        _ => {
            return Err(BenchError::Usage(format!(
                "--dtype {s:?} is not a floating dtype; give bf16, f16, f32 or f64"
            )))
        }
    })
}

/// Dense 16-bit tensor-core peaks (TFLOP/s) by device name, for MFU.
const PEAKS: [(&str, f64); 8] = [
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0), // SXM (80GB HBM3)
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
];

/// The device's dense bf16 peak, if the table has it.
pub fn peak_tflops(device_name: &str) -> Option<f64> {
    PEAKS
        .iter()
        .find(|(k, _)| device_name.contains(k))
        .map(|&(_, p)| p)
}

/// The measurements of one mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModeReport {
    /// The mode.
    pub mode: Mode,
    /// Median milliseconds per step (until the device is done).
    pub ms_per_step: f64,
    /// Median host milliseconds per step (until the last kernel is queued).
    pub host_ms_per_step: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Model TFLOP/s (PaLM's count).
    pub tflops: f64,
    /// Model FLOP utilization against the device's dense bf16 peak (16-bit dtypes on a known
    /// device).
    pub mfu: Option<f64>,
    /// Peak bytes in live tensors (the CUDA caching allocator's count), from the start of the
    /// mode (parameters and optimizer state included).
    pub peak_memory_bytes: Option<i64>,
    /// Seconds of the first step (compilation included).
    pub first_step_s: f64,
    /// Seconds of compilation before it (thunder: trace, transforms, plans).
    pub compile_s: f64,
    /// Bytes the forward saves for the backward besides the parameters and the batch (thunder).
    pub saved_bytes: Option<usize>,
    /// The loss after each step (warm-up included).
    pub losses: Vec<f64>,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Distributed: how (DDP, FSDP ZeRO-2/3) and over how many GPUs (this is rank 0's report).
    pub parallel: Option<(String, usize)>,
    /// The model.
    pub config: Config,
    /// Parameters (embedding included).
    pub params: usize,
    /// The device, by name.
    pub device: String,
    /// The dtype.
    pub dtype: String,
    /// Sequences per step.
    pub micro_batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps.
    pub warmup: usize,
    /// The thunder mode's executors.
    pub executors: Vec<String>,
    /// Per mode.
    pub modes: Vec<ModeReport>,
    /// The largest loss difference to the first mode, per later mode.
    pub max_loss_diff: Vec<(Mode, f64)>,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Tolerance of a loss comparison between modes: `|a - b| <= atol + rtol * |b|`.
pub fn loss_tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-9, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (2e-2, 1e-2),
        _ => (5e-2, 2e-2),
    }
}

fn oom(e: &BenchError) -> bool {
    let s = e.to_string();
    s.contains("out of memory") || s.contains("CUDA error: out of memory")
}

/// Runs the modes; the report holds every measurement (checked for divergence by
/// [`Report::check_losses`]).
pub fn run(o: &Options) -> Result<Report, BenchError> {
    run_with(o, None)
}

/// [`run`] as one rank of a data-parallel job (`dist`): each rank trains on its own batch
/// (the seed plus its rank); the report is this rank's.
pub fn run_with(o: &Options, dist: Option<&dist::Dist>) -> Result<Report, BenchError> {
    let c = &o.config;
    o.validate()?;
    let execs = executors(&o.executors)?;
    check_memory(o, dist)?;
    let exec_refs: Vec<&dyn Executor> = execs.iter().map(|e| e.as_ref()).collect();
    let device_name = match o.device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => thunder_executors::cuda::device_name(i as i32)
            .map_or_else(|| format!("cuda:{i}"), |n| format!("{n} (cuda:{i})")),
    };
    let specs = model::param_specs(c);
    let rank = dist.map_or(0, |d| d.rank as i64);
    let batch = train::batch(
        c,
        o.micro_batch,
        o.seq_len,
        o.dtype,
        o.device,
        o.seed.wrapping_add(rank),
    )?;
    let tokens = o.micro_batch as f64 * o.seq_len as f64;
    let flops_per_step = c.flops_per_token(o.seq_len) * tokens;
    let peak = match o.dtype {
        DType::BF16 | DType::F16 => peak_tflops(&device_name),
        _ => None,
    };
    let what = format!(
        "{}, micro-batch {}, seq {}",
        c.name, o.micro_batch, o.seq_len
    );
    let mut modes = Vec::new();
    for &mode in &o.modes {
        let r = run_mode(
            o,
            mode,
            &specs,
            &batch,
            &exec_refs,
            flops_per_step,
            peak,
            dist,
        );
        let r = r.map_err(|e| {
            if oom(&e) {
                BenchError::OutOfMemory {
                    device: device_name.clone(),
                    mode: mode.name().into(),
                    what: what.clone(),
                }
            } else {
                e
            }
        })?;
        modes.push(r);
        if let Device::Cuda(_) = o.device {
            thunder_executors::shim::cuda_empty_cache().map_err(|e| BenchError::Kernel(e.0))?;
        }
    }
    let max_loss_diff = modes
        .iter()
        .skip(1)
        .map(|m| {
            let d = m
                .losses
                .iter()
                .zip(&modes[0].losses)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            (m.mode, d)
        })
        .collect();
    Ok(Report {
        parallel: dist.map(|d| (d.parallel.describe().to_string(), d.world)),
        config: c.clone(),
        params: c.params(),
        device: device_name,
        dtype: o.dtype.to_string(),
        micro_batch: o.micro_batch,
        seq_len: o.seq_len,
        steps: o.steps,
        warmup: o.warmup,
        executors: o.executors.clone(),
        modes,
        max_loss_diff,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_mode(
    o: &Options,
    mode: Mode,
    specs: &[model::ParamSpec],
    batch: &train::Batch,
    executors: &[&dyn Executor],
    flops_per_step: f64,
    peak: Option<f64>,
    dist: Option<&dist::Dist>,
) -> Result<ModeReport, BenchError> {
    let c = &o.config;
    if let Device::Cuda(i) = o.device {
        sync(o.device);
        thunder_executors::shim::cuda_reset_peak_memory(i as usize)
            .map_err(|e| BenchError::Kernel(e.0))?;
    }
    let params = train::init_params(specs, o.dtype, o.device, o.seed)?;
    let t0 = Instant::now();
    if mode == Mode::ThunderGraphs && dist.is_some() {
        return Err(BenchError::Usage(
            "thunder-graphs cannot capture collectives yet (the NCCL executor checks them from \
             the host): drop the mode, or --ddp/--fsdp"
                .into(),
        ));
    }
    let (mut trainer, saved): (Box<dyn Trainer>, Option<usize>) = match mode {
        Mode::Eager => {
            let e = Eager::new(c, params, o.lr)?;
            let e = match dist {
                Some(d) => e.with_grad_all_reduce(std::sync::Arc::clone(d.comm())),
                None => e,
            };
            (Box::new(e), None)
        }
        Mode::Thunder | Mode::ThunderGraphs => {
            let compiled = Compiled::new(
                c,
                specs,
                params,
                o.micro_batch,
                o.seq_len,
                o.dtype,
                o.device,
                executors,
                o.lr,
                dist,
            )?;
            if let Some(dir) = &o.print_traces {
                write_traces(dir, &compiled)?;
            }
            let saved = compiled.saved_bytes();
            let trainer: Box<dyn Trainer> = match mode {
                Mode::ThunderGraphs => Box::new(graphed::GraphedStep::new(compiled, o.device)),
                _ if o.profile.is_some() => Box::new(Profiled::new(compiled, o)),
                _ => Box::new(compiled),
            };
            (trainer, Some(saved))
        }
    };
    let compile_s = t0.elapsed().as_secs_f64();
    // `Options::validate` keeps the count from overflowing; the vectors grow as steps run.
    let total = o.warmup.saturating_add(o.steps).saturating_add(1);
    let bar = progress_bar(o.progress, total, mode);
    const RESERVE: usize = 1 << 16;
    let mut losses = Vec::with_capacity(total.min(RESERVE));
    let mut times = Vec::with_capacity(o.steps.min(RESERVE));
    let mut host = Vec::with_capacity(o.steps.min(RESERVE));
    let mut first_step_s = 0.0;
    let comm_profile = match (mode, dist, &o.comm_profile) {
        (Mode::Thunder, Some(d), Some(dir)) => Some((d, dir)),
        _ => None,
    };
    for s in 0..total {
        if let Some((d, _)) = comm_profile.filter(|_| s + 1 == total) {
            sync(o.device);
            d.nccl
                .start_timeline()
                .map_err(|e| BenchError::Kernel(e.to_string()))?;
        }
        let start = Instant::now();
        let loss = trainer.step(batch)?;
        let queued = start.elapsed().as_secs_f64();
        sync(o.device);
        let done = start.elapsed().as_secs_f64();
        if let Some((d, dir)) = comm_profile.filter(|_| s + 1 == total) {
            write_comm_profile(d, dir, done * 1e3)?;
        }
        if s == 0 {
            first_step_s = done + compile_s;
        } else if s > o.warmup {
            times.push(done * 1e3);
            host.push(queued * 1e3);
        }
        let l = loss.f_to_kind(tch::Kind::Double)?.f_double_value(&[])?;
        losses.push(l);
        if let Some(b) = &bar {
            b.set_message(format!("loss {l:.4}"));
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // The profiled step: after the timed ones.
    trainer.after_timing(batch)?;
    let peak_memory_bytes = match o.device {
        Device::Cuda(i) => Some(
            thunder_executors::shim::cuda_memory_stats(i as usize)
                .map_err(|e| BenchError::Kernel(e.0))?
                .peak_allocated,
        ),
        Device::Cpu => None,
    };
    drop(trainer);
    let ms = median(times);
    let tflops = flops_per_step / (ms * 1e-3) / 1e12;
    Ok(ModeReport {
        mode,
        ms_per_step: ms,
        host_ms_per_step: median(host),
        tokens_per_s: o.micro_batch as f64 * o.seq_len as f64 / (ms * 1e-3),
        tflops,
        mfu: peak.map(|p| tflops / p),
        peak_memory_bytes,
        first_step_s,
        compile_s: if mode != Mode::Eager { compile_s } else { 0.0 },
        saved_bytes: saved,
        losses,
    })
}

/// Writes the timeline of the collectives just recorded to `dir/rank<N>.txt`.
fn write_comm_profile(d: &dist::Dist, dir: &Path, step_ms: f64) -> Result<(), BenchError> {
    let t = d
        .nccl
        .finish_timeline()
        .map_err(|e| BenchError::Kernel(e.to_string()))?
        .ok_or_else(|| BenchError::Kernel("no collective timeline was recorded".into()))?;
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("rank{}.txt", d.rank));
    let text = format!(
        "rank {} of {}, {}: the last timed step took {step_ms:.1} ms (with the timing events)\n{}",
        d.rank,
        d.world,
        d.parallel.describe(),
        t.summary()
    );
    std::fs::write(&path, text).map_err(|source| BenchError::Io { path, source })
}

/// The compiled step with its first step and one step after the timed ones profiled
/// (`--profile`).
struct Profiled {
    inner: Compiled,
    dir: PathBuf,
    device: Device,
    first: bool,
}

impl Profiled {
    fn new(inner: Compiled, o: &Options) -> Self {
        Profiled {
            inner,
            dir: o.profile.clone().unwrap_or_default(),
            device: o.device,
            first: true,
        }
    }

    fn profile(&mut self, b: &train::Batch, file: &str) -> Result<tch::Tensor, BenchError> {
        let device = self.device;
        let wait = move || sync(device);
        let (loss, prof) = self.inner.step_profiled(b, Some(&wait))?;
        let path = self.dir.join(file);
        std::fs::create_dir_all(&self.dir).map_err(|source| BenchError::Io {
            path: self.dir.clone(),
            source,
        })?;
        std::fs::write(&path, profile_text(&prof))
            .map_err(|source| BenchError::Io { path, source })?;
        Ok(loss)
    }
}

impl Trainer for Profiled {
    fn step(&mut self, b: &train::Batch) -> Result<tch::Tensor, BenchError> {
        if std::mem::take(&mut self.first) {
            return self.profile(b, "first_step.txt");
        }
        self.inner.step(b)
    }
    fn after_timing(&mut self, b: &train::Batch) -> Result<(), BenchError> {
        self.profile(b, "step.txt").map(|_| ())
    }
}

/// Per plan the total, then the instructions grouped by what they run (a fusion region, or the
/// op's name), most time first, then the 40 slowest instructions.
fn profile_text(prof: &[(&'static str, String, f64)]) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let mut out = String::new();
    let total: f64 = prof.iter().map(|p| p.2).sum();
    let _ = writeln!(
        out,
        "total {:.3} ms over {} instructions",
        total * 1e3,
        prof.len()
    );
    for plan in ["forward", "backward", "adamw"] {
        let (n, t) = prof
            .iter()
            .filter(|p| p.0 == plan)
            .fold((0, 0.0), |(n, t), p| (n + 1, t + p.2));
        let _ = writeln!(out, "  {plan}: {:.3} ms, {n} instructions", t * 1e3);
    }
    let kind = |s: &str| -> String {
        if s.starts_with("fusion") {
            return "fusion region".into();
        }
        // `t1 = ltorch.linear(...)`: the callee.
        let callee = s.split_once(" = ").map_or(s, |(_, r)| r);
        callee
            .split('(')
            .next()
            .unwrap_or(callee)
            .trim()
            .to_string()
    };
    let mut by: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for p in prof {
        let e = by.entry(kind(&p.1)).or_default();
        e.0 += 1;
        e.1 += p.2;
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let _ = writeln!(out, "\nby kind:");
    for (k, (n, t)) in by {
        let _ = writeln!(out, "  {:>10.3} ms {n:>5}x  {k}", t * 1e3);
    }
    let mut slow: Vec<&(&str, String, f64)> = prof.iter().collect();
    slow.sort_by(|a, b| b.2.total_cmp(&a.2));
    let _ = writeln!(out, "\nslowest:");
    for p in slow.into_iter().take(40) {
        let s: String = p.1.chars().take(160).collect();
        let _ = writeln!(out, "  {:>10.3} ms  {:<8}  {s}", p.2 * 1e3, p.0);
    }
    out
}

fn progress_bar(on: bool, total: usize, mode: Mode) -> Option<indicatif::ProgressBar> {
    if !on {
        return None;
    }
    let b = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>8} [{bar:30}] {pos}/{len} steps {elapsed_precise} {msg}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(mode.name());
    Some(b)
}

/// Writes the compiled step's traces as Python files into `dir`.
fn write_traces(dir: &Path, c: &Compiled) -> Result<(), BenchError> {
    let io = |path: PathBuf| move |source| BenchError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let files = [
        ("0_loss.py", c.traces.loss.to_python()),
        ("1_forward.py", c.traces.forward.to_python()),
        ("2_backward.py", c.traces.backward.to_python()),
        ("3_adamw.py", c.traces.adamw.to_python()),
        ("4_forward_executed.py", c.plans[0].claimed().to_python()),
        ("5_backward_executed.py", c.plans[1].claimed().to_python()),
        ("6_adamw_executed.py", c.plans[2].claimed().to_python()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(path.clone()))?;
    }
    Ok(())
}

impl Report {
    /// Fails when a later mode's loss differs from the first mode's at some step by more than
    /// the dtype's tolerance.
    pub fn check_losses(&self, dtype: DType) -> Result<(), BenchError> {
        let (atol, rtol) = loss_tolerance(dtype);
        let Some(first) = self.modes.first() else {
            return Ok(());
        };
        for m in &self.modes[1..] {
            for (s, (a, b)) in m.losses.iter().zip(&first.losses).enumerate() {
                // NaN losses diverge too.
                let within = (a - b).abs() <= atol + rtol * b.abs();
                if !within {
                    return Err(BenchError::Diverged(format!(
                        "the losses diverge at step {}: {} {b:.6}, {} {a:.6} (tolerance {atol:e} + {rtol:e} x |loss| for {})",
                        s + 1,
                        first.mode.name(),
                        m.mode.name(),
                        self.dtype
                    )));
                }
            }
        }
        Ok(())
    }

    /// The table: one row per mode.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "mode",
            "ms/step",
            "host ms/step",
            "tokens/s",
            "TFLOP/s",
            "MFU",
            "peak mem GiB",
            "first step s",
            "saved GiB",
            "vs eager",
            "max |Δ loss|",
        ]);
        let eager_ms = self
            .modes
            .iter()
            .find(|m| m.mode == Mode::Eager)
            .map(|m| m.ms_per_step);
        let gib = |b: f64| format!("{:.2}", b / (1u64 << 30) as f64);
        for m in &self.modes {
            let diff = self
                .max_loss_diff
                .iter()
                .find(|(k, _)| *k == m.mode)
                .map_or_else(|| "-".into(), |(_, d)| format!("{d:.1e}"));
            let cells = vec![
                m.mode.name().to_string(),
                format!("{:.2}", m.ms_per_step),
                format!("{:.2}", m.host_ms_per_step),
                format!("{:.0}", m.tokens_per_s),
                format!("{:.1}", m.tflops),
                m.mfu
                    .map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x)),
                m.peak_memory_bytes
                    .map_or_else(|| "-".into(), |b| gib(b as f64)),
                format!("{:.2}", m.first_step_s),
                m.saved_bytes.map_or_else(|| "-".into(), |b| gib(b as f64)),
                eager_ms.map_or_else(|| "-".into(), |e| format!("{:.2}x", e / m.ms_per_step)),
                diff,
            ];
            t.add_row(cells.into_iter().enumerate().map(|(i, s)| {
                let cell = Cell::new(s);
                if i == 0 {
                    cell
                } else {
                    cell.set_alignment(CellAlignment::Right)
                }
            }));
        }
        let c = &self.config;
        let params = if self.params >= 1_000_000_000 {
            format!("{:.2}B", self.params as f64 / 1e9)
        } else {
            format!("{:.2}M", self.params as f64 / 1e6)
        };
        let on = match &self.parallel {
            Some((how, world)) => format!("{how} over {world} GPUs, per GPU: {}", self.device),
            None => self.device.clone(),
        };
        format!(
            "{} ({params} parameters: {} layers, hidden {}, {} heads, {} kv heads, intermediate {}, vocab {}) on {}, {}, micro-batch {} x seq {}, {} steps after {} warm-up\n{t}",
            c.name,
            c.layers,
            c.hidden,
            c.heads,
            c.kv_heads,
            c.intermediate,
            c.padded_vocab(),
            on,
            self.dtype,
            self.micro_batch,
            self.seq_len,
            self.steps,
            self.warmup
        )
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
