//! The two training steps: `eager` (the model op by op through libtorch, libtorch autograd,
//! PyTorch's fused AdamW) and `thunder` (the compiled forward, backward and AdamW plans).

use super::config::Config;
use super::model::{self, Init, ParamSpec, DATA_INPUTS};
use super::BenchError;
use tch::{Device as TDevice, Kind, Reduction, Tensor};
use thunder_executors::executor::RtValue;
use thunder_executors::shim::{self, AdamwHyper};
use thunder_executors::{convert, ExecutionPlan, Executor};
use thunder_ir::ops::torch::AdamwOptions;
use thunder_ir::{DType, Device, Trace};

/// The data of a step: token ids, next-token targets, and the RoPE tables.
pub struct Batch {
    /// `[batch, seq]` int64.
    pub idx: Tensor,
    /// `[batch, seq]` int64.
    pub targets: Tensor,
    /// `[seq, head_dim]`, the model dtype.
    pub cos: Tensor,
    /// `[seq, head_dim]`, the model dtype.
    pub sin: Tensor,
}

/// The tch device of a thunder-ir device.
pub fn tdevice(d: Device) -> TDevice {
    match d {
        Device::Cpu => TDevice::Cpu,
        Device::Cuda(i) => TDevice::Cuda(i as usize),
    }
}

/// libtorch's default generator is global: drawing from it under this lock keeps two runs in
/// one process (tests in parallel) from reseeding each other's draws.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A synthetic batch: random token ids from `seed`, targets the ids shifted by one (as a data
/// loader of a text gives them), and LitGPT's RoPE cache.
pub fn batch(
    c: &Config,
    micro_batch: usize,
    seq: usize,
    dtype: DType,
    device: Device,
    seed: i64,
) -> Result<Batch, BenchError> {
    let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    let tokens = Tensor::f_randint(
        c.vocab as i64,
        [micro_batch as i64, seq as i64 + 1],
        (Kind::Int64, TDevice::Cpu),
    )?;
    let dev = tdevice(device);
    let idx = tokens
        .f_narrow(1, 0, seq as i64)?
        .f_contiguous()?
        .f_to(dev)?;
    let targets = tokens
        .f_narrow(1, 1, seq as i64)?
        .f_contiguous()?
        .f_to(dev)?;
    // theta_i = base^(-2i/d); the cache repeats the angles over both halves of a head.
    let hd = c.head_dim() as i64;
    let opts = (Kind::Double, TDevice::Cpu);
    let i = Tensor::f_arange_start_step(0, hd, 2, opts)?;
    let theta = (i / hd as f64 * -c.rope_base.ln()).f_exp()?;
    let pos = Tensor::f_arange(seq as i64, opts)?;
    let angles = pos.f_outer(&theta)?;
    let angles = Tensor::f_cat(&[&angles, &angles], -1)?;
    let kind = convert::kind(dtype);
    Ok(Batch {
        idx,
        targets,
        cos: angles.f_cos()?.f_to_kind(kind)?.f_to(dev)?,
        sin: angles.f_sin()?.f_to_kind(kind)?.f_to(dev)?,
    })
}

/// The parameters, initialized from `seed` (each from its own seed, so both modes get the same
/// values on a device without holding two copies at once).
pub fn init_params(
    specs: &[ParamSpec],
    dtype: DType,
    device: Device,
    seed: i64,
) -> Result<Vec<Tensor>, BenchError> {
    let opts = (convert::kind(dtype), tdevice(device));
    let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    specs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shape: Vec<i64> = p.shape.iter().map(|&s| s as i64).collect();
            Ok(match p.init {
                Init::Ones => Tensor::f_ones(shape.as_slice(), opts)?,
                Init::Normal(std) => {
                    tch::manual_seed(seed.wrapping_mul(1_000_003).wrapping_add(i as i64));
                    let mut t = Tensor::f_empty(shape.as_slice(), opts)?;
                    let _ = t.f_normal_(0.0, std)?;
                    t
                }
            })
        })
        .collect()
}

/// The optimizer's settings (LitGPT's pretraining defaults but the learning rate).
pub fn adamw_options(lr: f64) -> AdamwOptions {
    AdamwOptions {
        lr,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        inplace: true,
    }
}

/// A training step of one mode.
pub trait Trainer {
    /// Issues one step (forward, backward, AdamW) on `b` and returns the loss, without waiting
    /// for the device.
    fn step(&mut self, b: &Batch) -> Result<Tensor, BenchError>;
    /// Called once after the timed steps (profiling hooks); does nothing by default.
    fn after_timing(&mut self, _b: &Batch) -> Result<(), BenchError> {
        Ok(())
    }
}

/// PyTorch eager: the model op by op through libtorch, libtorch autograd for the backward,
/// `torch._fused_adamw_` for the update, gradients dropped after it (`zero_grad()`).
pub struct Eager {
    c: Config,
    /// Data parallel: the gradients are averaged over the ranks before the update.
    comm: Option<std::sync::Arc<thunder_distributed::nccl::Communicator>>,
    params: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    step: Tensor,
    hyper: AdamwHyper,
}

impl Eager {
    /// The eager model with parameters `params` (they become leaves that require grad).
    pub fn new(c: &Config, params: Vec<Tensor>, lr: f64) -> Result<Self, BenchError> {
        let o = adamw_options(lr);
        let params: Vec<Tensor> = params
            .into_iter()
            .map(|p| p.set_requires_grad(true))
            .collect();
        let zeros = |ps: &[Tensor]| -> Result<Vec<Tensor>, BenchError> {
            ps.iter()
                .map(|p| Ok(p.f_zeros_like()?.set_requires_grad(false)))
                .collect()
        };
        let device = params
            .first()
            .ok_or_else(|| BenchError::Usage("a model without parameters".into()))?
            .device();
        Ok(Eager {
            c: c.clone(),
            comm: None,
            exp_avgs: zeros(&params)?,
            exp_avg_sqs: zeros(&params)?,
            params,
            step: Tensor::f_zeros([], (Kind::Float, device))?,
            hyper: AdamwHyper {
                lr: o.lr,
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
            },
        })
    }

    /// Data parallel over `comm`'s ranks: gradients all-reduced (averaged) before AdamW.
    pub fn with_grad_all_reduce(
        mut self,
        comm: std::sync::Arc<thunder_distributed::nccl::Communicator>,
    ) -> Self {
        self.comm = Some(comm);
        self
    }

    fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, BenchError> {
        let hd = x.size()[3];
        let half = hd / 2;
        let x1 = x.f_narrow(-1, 0, half)?;
        let x2 = x.f_narrow(-1, half, half)?;
        let rotated = Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?;
        let roped = x.f_mul(cos)?.f_add(&rotated.f_mul(sin)?)?;
        Ok(roped.f_to_kind(x.kind())?)
    }

    /// The loss (LitGPT's `GPT.forward` and cross entropy), recording autograd's graph.
    pub fn loss(&self, b: &Batch) -> Result<Tensor, BenchError> {
        let c = &self.c;
        let (hd, eps) = (c.head_dim() as i64, c.norm_eps);
        let hidden = c.hidden as i64;
        let bt = b.idx.size();
        let (bs, t) = (bt[0], bt[1]);
        let mut p = self.params.iter();
        let mut next = || {
            p.next()
                .ok_or_else(|| BenchError::Usage("parameter list".into()))
        };
        let none = None::<Tensor>;
        let mut x = Tensor::f_embedding(next()?, &b.idx, -1, false, false)?;
        for _ in 0..c.layers {
            let (n1, attn, attn_proj, n2) = (next()?, next()?, next()?, next()?);
            let (fc_1, fc_2, proj) = (next()?, next()?, next()?);
            let h = x.f_rms_norm([hidden], Some(n1), eps)?;
            let qkv = h.f_linear(attn, none.as_ref())?;
            let sizes = [
                c.heads as i64 * hd,
                c.kv_heads as i64 * hd,
                c.kv_heads as i64 * hd,
            ];
            let parts = qkv.f_split_with_sizes(sizes, -1)?;
            let mut heads = Vec::with_capacity(3);
            for (i, part) in parts.iter().enumerate() {
                let n = if i == 0 { c.heads } else { c.kv_heads } as i64;
                heads.push(part.f_reshape([bs, t, n, hd])?.f_transpose(1, 2)?);
            }
            let q = Self::rope(&heads[0], &b.cos, &b.sin)?;
            let k = Self::rope(&heads[1], &b.cos, &b.sin)?;
            let y = Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &heads[2],
                none.as_ref(),
                0.0,
                true,
                None,
                c.kv_heads != c.heads,
            )?;
            let y = y.f_transpose(1, 2)?.f_reshape([bs, t, hidden])?;
            x = x.f_add(&y.f_linear(attn_proj, none.as_ref())?)?;
            let m = x.f_rms_norm([hidden], Some(n2), eps)?;
            let g = m.f_linear(fc_1, none.as_ref())?.f_silu()?;
            let u = m.f_linear(fc_2, none.as_ref())?;
            x = x.f_add(&g.f_mul(&u)?.f_linear(proj, none.as_ref())?)?;
        }
        let ln_f = next()?;
        let head = next()?;
        let x = x.f_rms_norm([hidden], Some(ln_f), eps)?;
        let logits = x.f_linear(head, none.as_ref())?;
        let v = c.padded_vocab() as i64;
        Ok(logits.f_reshape([-1, v])?.f_cross_entropy_loss(
            &b.targets.f_reshape([-1])?,
            none.as_ref(),
            Reduction::Mean,
            -100,
            0.0,
        )?)
    }
}

fn refs(ts: &[Tensor]) -> Vec<&Tensor> {
    ts.iter().collect()
}

impl Trainer for Eager {
    fn step(&mut self, b: &Batch) -> Result<Tensor, BenchError> {
        let loss = self.loss(b)?;
        loss.f_backward()?;
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| p.f_grad())
            .collect::<Result<_, _>>()?;
        if let Some(comm) = &self.comm {
            super::dist::all_reduce_grads(comm, &grads)?;
        }
        let _ = self.step.f_add_scalar_(1.0)?;
        shim::fused_adamw_(
            &refs(&self.params),
            &refs(&grads),
            &refs(&self.exp_avgs),
            &refs(&self.exp_avg_sqs),
            &self.step,
            self.hyper,
        )
        .map_err(|e| BenchError::Kernel(e.0))?;
        drop(grads);
        for p in &self.params {
            shim::clear_grad(p).map_err(|e| BenchError::Kernel(e.0))?;
        }
        Ok(loss.f_detach()?)
    }
}

/// The traces of the compiled step, in the order they are made (for `--print-traces`).
pub struct StepTraces {
    /// The loss, as the model builder made it.
    pub loss: Trace,
    /// The forward (returns the loss and what the backward needs).
    pub forward: Trace,
    /// The backward (returns one gradient per parameter).
    pub backward: Trace,
    /// The AdamW step over every parameter.
    pub adamw: Trace,
}

/// thunder: the loss trace split into forward and backward by the grad transform (with its
/// min-cut rematerialization), and an AdamW trace that updates the parameters and moments in
/// place; each compiled into an [`ExecutionPlan`] for the given executors.
///
/// Distributed (`dist`), the step is transformed by `thunder_distributed`: DDP all-reduces the
/// gradients in buckets; FSDP shards them (and ZeRO-3 the parameters too), AdamW updates this
/// rank's shards, and ZeRO-2 gathers the updated shards into the full parameters after it.
pub struct Compiled {
    /// The plans: forward, backward, AdamW, and (ZeRO-2) the parameter gather.
    pub plans: Vec<ExecutionPlan>,
    /// The traces they run.
    pub traces: StepTraces,
    /// What AdamW updates: the parameters, or this rank's shards of them (FSDP).
    params: Vec<Tensor>,
    /// ZeRO-2: the full parameters the forward and backward read.
    full: Vec<Tensor>,
    zero: Option<thunder_distributed::Zero>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    step: Tensor,
    cotangent: Tensor,
}

impl Compiled {
    /// Builds, transforms and compiles the step for `params` (of `specs`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c: &Config,
        specs: &[ParamSpec],
        params: Vec<Tensor>,
        micro_batch: usize,
        seq: usize,
        dtype: DType,
        device: Device,
        executors: &[&dyn Executor],
        lr: f64,
        dist: Option<&super::dist::Dist>,
    ) -> Result<Self, BenchError> {
        use super::dist::Parallel;
        use thunder_distributed as td;
        let loss = model::loss_trace(c, micro_batch, seq, dtype, device)?;
        let wrt = loss.inputs[DATA_INPUTS..].to_vec();
        let fb = thunder_transforms::forward_backward(&loss, &wrt)?;
        let mut execs: Vec<&dyn Executor> = Vec::with_capacity(executors.len() + 1);
        if let Some(d) = dist {
            execs.push(&d.nccl);
        }
        execs.extend_from_slice(executors);
        let dist_err =
            |e: td::TraceError| BenchError::Kernel(format!("distributing the step: {e}"));
        let (forward, backward, layout, zero) = match dist.map(|d| (d.parallel, d.world, d)) {
            None => (fb.forward.clone(), fb.backward.clone(), None, None),
            Some((Parallel::Ddp, world, d)) => {
                let mut o = td::DdpOptions::new(world);
                o.bucket_bytes = d.bucket_bytes.unwrap_or(o.bucket_bytes);
                let b = td::ddp_backward(&fb.backward, &o).map_err(dist_err)?;
                (fb.forward.clone(), b, None, None)
            }
            Some((Parallel::Fsdp(z), world, d)) => {
                let mut o = td::FsdpOptions::new(world, z);
                o.bucket_bytes = d.bucket_bytes.unwrap_or(o.bucket_bytes);
                o.prefetch = d.prefetch.unwrap_or(o.prefetch);
                o.keep_gathered_bytes = d.keep_gathered_bytes.unwrap_or(o.keep_gathered_bytes);
                let idx: Vec<usize> = (DATA_INPUTS..loss.inputs.len()).collect();
                let f = td::fsdp(&fb.forward, &fb.backward, fb.num_saved, &idx, &o)
                    .map_err(dist_err)?;
                (f.forward, f.backward, Some(f.layout), Some(z))
            }
        };
        if let Some(d) = dist {
            // Every rank must run the same program, or the collectives pair up wrongly and hang.
            use std::hash::{Hash, Hasher};
            // Each rank's traces name its own device: compare them without it.
            let own = match device {
                Device::Cuda(i) => format!("cuda:{i}"),
                Device::Cpu => "cpu".into(),
            };
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for t in [&forward, &backward] {
                t.to_python().replace(&own, "DEVICE").hash(&mut h);
            }
            d.rdv
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .check_same(
                    &h.finish().to_le_bytes(),
                    "compiled step (model, sizes, dtype)",
                )
                .map_err(|e| BenchError::Usage(e.to_string()))?;
        }
        let rank = dist.map_or(0, |d| d.rank);
        // What AdamW updates, and (ZeRO-2) the full parameters beside it.
        let (params, full) = match &layout {
            None => (params, Vec::new()),
            Some(l) => {
                let mine = l.shard(&params, rank);
                if zero == Some(td::Zero::Two) {
                    (mine, params)
                } else {
                    (mine, Vec::new())
                }
            }
        };
        let shapes: Vec<(DType, Vec<usize>)> = match &layout {
            None => specs.iter().map(|p| (dtype, p.shape.clone())).collect(),
            // One flat shard per bucket.
            Some(l) => l
                .buckets
                .iter()
                .map(|bk| (dtype, vec![bk.shard_numel]))
                .collect(),
        };
        let adamw =
            thunder_ir::programs::adamw_step(&shapes, DType::F32, device, &adamw_options(lr))?;
        let mut plans = vec![
            ExecutionPlan::compile(&forward, &execs)?,
            ExecutionPlan::compile(&backward, &execs)?,
            ExecutionPlan::compile(&adamw, &execs)?,
        ];
        if let (Some(l), Some(td::Zero::Two)) = (&layout, zero) {
            let g = l.gather_trace().map_err(dist_err)?;
            plans.push(ExecutionPlan::compile(&g, &execs)?);
        }
        if let Some(d) = dist.filter(|d| d.parallel == Parallel::Ddp) {
            // Rank 0's parameters everywhere (they are equal already: one seed; this is what a
            // run from a checkpoint on rank 0 needs).
            let metas: Vec<(String, thunder_ir::TensorMeta)> = loss.inputs[DATA_INPUTS..]
                .iter()
                .filter_map(|&v| Some((loss.name_of(v).to_string(), loss.tensor(v)?.clone())))
                .collect();
            let b = td::broadcast_parameters(&metas, d.world).map_err(dist_err)?;
            ExecutionPlan::compile(&b, &execs)?.run_tensors(&params)?;
        }
        let loss_meta = fb
            .forward
            .tensor(fb.forward.outputs[0])
            .ok_or_else(|| BenchError::Usage("the loss is not a tensor".into()))?;
        let tdev = tdevice(device);
        let zeros = |ps: &[Tensor]| -> Result<Vec<Tensor>, BenchError> {
            ps.iter().map(|p| Ok(p.f_zeros_like()?)).collect()
        };
        Ok(Compiled {
            plans,
            traces: StepTraces {
                loss,
                forward,
                backward,
                adamw,
            },
            exp_avgs: zeros(&params)?,
            exp_avg_sqs: zeros(&params)?,
            params,
            full,
            zero,
            step: Tensor::f_zeros([], (Kind::Float, tdev))?,
            cotangent: Tensor::f_ones([], (convert::kind(loss_meta.dtype), tdev))?,
        })
    }

    /// Bytes the forward saves for the backward (its outputs after the loss) besides its inputs
    /// (the parameters and the batch, which live on anyway).
    pub fn saved_bytes(&self) -> usize {
        let f = &self.traces.forward;
        f.outputs[1..]
            .iter()
            .filter(|v| !f.inputs.contains(v))
            .filter_map(|&v| f.tensor(v))
            .map(|t| t.shape.numel().saturating_mul(t.dtype.itemsize()))
            .fold(0, usize::saturating_add)
    }
}

/// Per instruction of a compiled step: its plan, statement and seconds.
pub type StepProfile = Vec<(&'static str, String, f64)>;

impl Compiled {
    /// One step; with `wait` (a device synchronization), every instruction of the three plans
    /// is timed: `(plan, statement, seconds)` in run order.
    pub fn step_profiled(
        &mut self,
        b: &Batch,
        wait: Option<&dyn Fn()>,
    ) -> Result<(Tensor, StepProfile), BenchError> {
        let mut prof = Vec::new();
        let mut run = |k: usize, ins: Vec<Tensor>| -> Result<Vec<Tensor>, BenchError> {
            let plan = &self.plans[k];
            let ins: Vec<RtValue> = ins.into_iter().map(RtValue::Tensor).collect();
            let outs = match wait {
                None => plan.run_owned(ins)?,
                Some(w) => {
                    let (outs, times) = plan.run_profiled(ins, w)?;
                    let name = ["forward", "backward", "adamw", "gather"][k];
                    prof.extend(times.into_iter().map(|(s, t)| (name, s, t)));
                    outs
                }
            };
            outs.into_iter()
                .map(|v| {
                    v.into_tensor()
                        .ok_or_else(|| BenchError::Kernel("a plan returned a number".into()))
                })
                .collect()
        };
        let mut ins: Vec<Tensor> = Vec::with_capacity(DATA_INPUTS + self.params.len());
        for t in [&b.idx, &b.targets, &b.cos, &b.sin] {
            ins.push(t.shallow_clone());
        }
        let weights = if self.zero == Some(thunder_distributed::Zero::Two) {
            &self.full
        } else {
            &self.params
        };
        ins.extend(weights.iter().map(|p| p.shallow_clone()));
        let mut out = run(0, ins)?.into_iter();
        let loss = out
            .next()
            .ok_or_else(|| BenchError::Kernel("the forward returned nothing".into()))?;
        let mut saved: Vec<Tensor> = out.collect();
        saved.push(self.cotangent.shallow_clone());
        let grads = run(1, saved)?;
        let _ = self.step.f_add_scalar_(1.0)?;
        let n = self.params.len();
        let mut ains: Vec<Tensor> = Vec::with_capacity(4 * n + 1);
        for (i, g) in grads.into_iter().enumerate() {
            ains.push(self.params[i].shallow_clone());
            ains.push(g);
            ains.push(self.exp_avgs[i].shallow_clone());
            ains.push(self.exp_avg_sqs[i].shallow_clone());
        }
        ains.push(self.step.shallow_clone());
        let mut updated = run(2, ains)?.into_iter();
        // In place (the trace donates the buffers): these are the same tensors.
        self.params = updated.by_ref().take(n).collect();
        self.exp_avgs = updated.by_ref().take(n).collect();
        self.exp_avg_sqs = updated.take(n).collect();
        if self.zero == Some(thunder_distributed::Zero::Two) {
            let mut gin: Vec<Tensor> = self.params.iter().map(|t| t.shallow_clone()).collect();
            gin.extend(self.full.iter().map(|t| t.shallow_clone()));
            run(3, gin)?;
        }
        Ok((loss, prof))
    }
}

impl Trainer for Compiled {
    fn step(&mut self, b: &Batch) -> Result<Tensor, BenchError> {
        Ok(self.step_profiled(b, None)?.0)
    }
}
