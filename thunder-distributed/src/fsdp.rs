//! Fully sharded data parallelism (FSDP, ZeRO-2 and ZeRO-3).
//!
//! Parameters are grouped into **buckets** (one dtype and device each, at most
//! [`FsdpOptions::bucket_bytes`], in the order the forward first uses them). A bucket is its
//! parameters flattened and laid end to end, zero-padded to a multiple of the world size;
//! rank `r` owns the `r`-th of `world_size` equal pieces of it, a flat *bucket shard*. The
//! optimizer (element-wise, like AdamW) updates only the bucket shards.
//!
//! - **ZeRO-3**: the forward and the backward take the bucket shards. Before a parameter's
//!   first use its bucket is all-gathered (asynchronously, `prefetch` buckets ahead); the
//!   gathered buffer *is* the flat bucket, so every parameter is a view of it (no copy). It is
//!   dropped after its parameters' last use; the backward gathers again what it needs.
//!   Gradients are laid out like the bucket and reduce-scattered (averaged) as soon as the
//!   bucket's last gradient is computed, so each rank gets the gradient of its bucket shard.
//! - **ZeRO-2**: the forward and backward take full parameters (refreshed once per step from
//!   the shards by [`Layout::gather_trace`] after the optimizer step); gradients are
//!   reduce-scattered as in ZeRO-3.
//!
//! One collective moves a bucket. The only copy per step is the gradients' packing into the
//! bucket layout before their reduce-scatter. (Sharding each parameter along dim 0 instead, as
//! PyTorch FSDP2 does, leaves every parameter of a gathered bucket strided; unpacking them
//! copied all the parameters twice per step and cost about 10% of a Llama-2-7B step on
//! 2 H100s.)

use crate::error::TraceError;
use std::collections::{HashMap, HashSet};
use thunder_ir::{Attr, DType, Device, PrimOp, TensorMeta, Trace, TraceBuilder, Value};

/// Which ZeRO stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// Gradients and optimizer state sharded; parameters whole during the step.
    Two,
    /// Parameters, gradients and optimizer state sharded.
    Three,
}

/// Options of the FSDP transform.
#[derive(Debug, Clone, PartialEq)]
pub struct FsdpOptions {
    /// The number of ranks.
    pub world_size: usize,
    /// ZeRO-2 or ZeRO-3.
    pub zero: Zero,
    /// The most bytes of (full) parameters in one bucket: one all-gather or reduce-scatter. A
    /// parameter larger than that gets a bucket of its own.
    pub bucket_bytes: usize,
    /// How many buckets' all-gathers run ahead of the bucket in use (ZeRO-3).
    pub prefetch: usize,
    /// ZeRO-3: bytes of gathered parameters the forward keeps for the backward instead of
    /// gathering them again: the last buckets the forward uses (the first the backward needs),
    /// whole buckets up to this many bytes. 0 (the default) re-gathers everything; more trades
    /// memory for less communication (PyTorch FSDP2's `reshard_after_forward=False` for those
    /// blocks).
    pub keep_gathered_bytes: usize,
}

impl FsdpOptions {
    /// `world_size` ranks, ZeRO-3, 64 MiB buckets (about one Llama-2-7B block in bf16: 202M
    /// parameters ≈ 386 MiB is split into a few), two buckets of prefetch (on 2 H200s, Llama-2-7B
    /// ZeRO-3 steps took 390 ms with two and 402 ms with one).
    pub fn new(world_size: usize, zero: Zero) -> Self {
        FsdpOptions {
            world_size,
            zero,
            bucket_bytes: 64 << 20,
            prefetch: 2,
            keep_gathered_bytes: 0,
        }
    }
}

/// One parameter of the sharded step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The parameter's name (its input's name in the original trace).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: DType,
    /// Its device.
    pub device: Device,
}

impl ParamSpec {
    fn new(name: &str, t: &TensorMeta) -> Self {
        ParamSpec {
            name: name.to_string(),
            shape: t.shape.sizes(),
            dtype: t.dtype,
            device: t.device,
        }
    }
    /// Its number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn bytes(&self) -> usize {
        self.numel() * self.dtype.itemsize()
    }
}

/// Parameters laid end to end in one flat buffer: the unit of every collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The parameters (indices into [`Layout::params`]), in layout order.
    pub params: Vec<usize>,
    /// Where each parameter starts in the flat bucket, in elements.
    pub offsets: Vec<usize>,
    /// The parameters' elements together (the flat bucket without its padding).
    pub numel: usize,
    /// Elements of each rank's shard: `ceil(numel / world_size)`.
    pub shard_numel: usize,
    /// The dtype of its parameters.
    pub dtype: DType,
    /// Their device.
    pub device: Device,
}

impl Bucket {
    /// The metadata of a rank's shard of it: `[shard_numel]`.
    pub fn shard_meta(&self) -> TensorMeta {
        TensorMeta::new(self.dtype, [self.shard_numel]).on(self.device)
    }
}

/// How a step's parameters are sharded over the ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The number of ranks.
    pub world_size: usize,
    /// The parameters, in the order `fsdp` was given them.
    pub params: Vec<ParamSpec>,
    /// The buckets; every parameter is in exactly one.
    pub buckets: Vec<Bucket>,
}

impl Layout {
    /// Groups `params` into buckets of at most `bytes`, taking them in `order` (indices into
    /// `params`; those it leaves out go last): a new bucket starts where the dtype or device
    /// changes or the next parameter would not fit.
    pub fn new(world_size: usize, params: Vec<ParamSpec>, order: &[usize], bytes: usize) -> Self {
        let mut seen = HashSet::new();
        let order: Vec<usize> = order
            .iter()
            .copied()
            .chain(0..params.len())
            .filter(|&p| seen.insert(p))
            .collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut size = 0;
        for p in order {
            let fits = groups.last().is_some_and(|g| {
                let first = &params[g[0]];
                first.dtype == params[p].dtype
                    && first.device == params[p].device
                    && size + params[p].bytes() <= bytes
            });
            if fits {
                groups.last_mut().expect("a bucket").push(p);
                size += params[p].bytes();
            } else {
                groups.push(vec![p]);
                size = params[p].bytes();
            }
        }
        let buckets = groups
            .into_iter()
            .map(|g| {
                let mut offsets = Vec::with_capacity(g.len());
                let mut numel = 0;
                for &p in &g {
                    offsets.push(numel);
                    numel += params[p].numel();
                }
                Bucket {
                    dtype: params[g[0]].dtype,
                    device: params[g[0]].device,
                    params: g,
                    offsets,
                    numel,
                    shard_numel: numel.div_ceil(world_size),
                }
            })
            .collect();
        Layout {
            world_size,
            params,
            buckets,
        }
    }

    /// Per parameter, the index of its bucket.
    pub fn bucket_of(&self) -> Vec<usize> {
        let mut out = vec![0; self.params.len()];
        for (k, bk) in self.buckets.iter().enumerate() {
            for &p in &bk.params {
                out[p] = k;
            }
        }
        out
    }

    /// Rank `rank`'s bucket shards (one per bucket, in bucket order) of the full parameters
    /// `full` (in [`Layout::params`] order): what the ZeRO-3 step and the optimizer take.
    pub fn shard(&self, full: &[tch::Tensor], rank: usize) -> Vec<tch::Tensor> {
        self.buckets
            .iter()
            .map(|bk| {
                let flat = flat_bucket(bk, full, self.world_size);
                flat.narrow(0, (rank * bk.shard_numel) as i64, bk.shard_numel as i64)
                    .copy()
            })
            .collect()
    }

    /// The full parameters (in [`Layout::params`] order) from every rank's bucket shards
    /// (`per_rank[r]`: rank `r`'s shards, in bucket order).
    pub fn unshard(&self, per_rank: &[Vec<tch::Tensor>]) -> Vec<tch::Tensor> {
        let mut out: Vec<Option<tch::Tensor>> = (0..self.params.len()).map(|_| None).collect();
        for (k, bk) in self.buckets.iter().enumerate() {
            let pieces: Vec<&tch::Tensor> = per_rank.iter().map(|s| &s[k]).collect();
            let flat = tch::Tensor::cat(&pieces, 0);
            for (&p, &off) in bk.params.iter().zip(&bk.offsets) {
                let s = &self.params[p];
                let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
                out[p] = Some(
                    flat.narrow(0, off as i64, s.numel() as i64)
                        .reshape(shape.as_slice()),
                );
            }
        }
        out.into_iter()
            .map(|t| t.expect("every parameter is in a bucket"))
            .collect()
    }

    /// ZeRO-2's once-per-step gather: a trace that takes every bucket shard, then every full
    /// parameter buffer; all-gathers the shards and copies them into the buffers.
    pub fn gather_trace(&self) -> Result<Trace, TraceError> {
        let mut b = TraceBuilder::new("gather_parameters");
        let shards = (0..self.buckets.len())
            .map(|k| b.input(&format!("bucket{k}_shard"), self.buckets[k].shard_meta()))
            .collect::<thunder_ir::Result<Vec<_>>>()?;
        let fulls = self
            .params
            .iter()
            .map(|s| {
                b.input(
                    &s.name,
                    TensorMeta::new(s.dtype, s.shape.clone()).on(s.device),
                )
            })
            .collect::<thunder_ir::Result<Vec<_>>>()?;
        for (k, &shard) in shards.iter().enumerate() {
            let h = b.all_gather(shard, self.world_size, true)?;
            let flat = b.wait(h)?;
            for (p, full) in self.unpack(&mut b, flat, k)? {
                b.prim(
                    PrimOp::Copy_,
                    vec![full.into(), fulls[p].into()],
                    Vec::<Attr>::new(),
                )?;
            }
        }
        Ok(b.build(&[])?)
    }

    /// The parameters of bucket `k` as views of its gathered flat buffer `flat`
    /// (`[world_size * shard_numel]`): `(parameter index, value)`.
    fn unpack(
        &self,
        b: &mut TraceBuilder,
        flat: Value,
        k: usize,
    ) -> thunder_ir::Result<Vec<(usize, Value)>> {
        let bk = &self.buckets[k];
        let padded = bk.shard_numel * self.world_size;
        let mut out = Vec::with_capacity(bk.params.len());
        for (&p, &off) in bk.params.iter().zip(&bk.offsets) {
            let s = &self.params[p];
            let n = s.numel();
            let piece = if off == 0 && n == padded {
                flat
            } else {
                b.narrow(flat, 0, off as i64, n as i64)?
            };
            let v = if s.shape.len() == 1 {
                piece
            } else {
                b.reshape(piece, &i64s(&s.shape))?
            };
            out.push((p, v));
        }
        Ok(out)
    }

    /// Launches the averaging reduce-scatter of bucket `k`'s full gradients `grads` (in the
    /// bucket's parameter order), laid out like the bucket; returns the handle.
    fn launch_reduce_scatter(
        &self,
        b: &mut TraceBuilder,
        k: usize,
        grads: &[Value],
    ) -> thunder_ir::Result<Value> {
        let bk = &self.buckets[k];
        let mut parts = Vec::with_capacity(grads.len() + 1);
        for (&g, &p) in grads.iter().zip(&bk.params) {
            parts.push(if self.params[p].shape.len() == 1 {
                g
            } else {
                b.reshape(g, &[-1])?
            });
        }
        let pad = bk.shard_numel * self.world_size - bk.numel;
        if pad > 0 {
            parts.push(b.zeros(&[pad], bk.dtype, bk.device)?);
        }
        let flat = if parts.len() == 1 {
            parts[0]
        } else {
            b.cat(&parts, 0)?
        };
        b.reduce_scatter(flat, "avg", self.world_size, true)
    }
}

/// Bucket `bk`'s parameters out of `full`, flattened end to end and zero-padded to
/// `world * shard_numel` elements.
fn flat_bucket(bk: &Bucket, full: &[tch::Tensor], world: usize) -> tch::Tensor {
    let mut parts: Vec<tch::Tensor> = bk.params.iter().map(|&p| full[p].reshape([-1])).collect();
    let pad = bk.shard_numel * world - bk.numel;
    if pad > 0 {
        let first = &full[bk.params[0]];
        parts.push(tch::Tensor::zeros(
            [pad as i64],
            (first.kind(), first.device()),
        ));
    }
    tch::Tensor::cat(&parts, 0)
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// Replays a trace into `b`, gathering the buckets of sharded parameters before their first
/// use, in order of first use, `prefetch` buckets ahead.
///
/// `param_of`: the values of the trace being replayed that are parameters, with their index;
/// `shard_of`: per bucket, the value in `b` of this rank's shard (None: the trace never needs
/// the bucket).
struct Gatherer<'a> {
    layout: &'a Layout,
    /// Buckets in order of first use.
    order: Vec<usize>,
    /// Per bucket, its position in `order`.
    pos: HashMap<usize, usize>,
    shard_of: Vec<Option<Value>>,
    /// Per parameter, its value in the trace being replayed.
    value_of: HashMap<usize, Value>,
    param_of: &'a HashMap<Value, usize>,
    bucket_of: Vec<usize>,
    handles: Vec<Option<Value>>,
    gathered: Vec<bool>,
    launched: usize,
    prefetch: usize,
}

impl<'a> Gatherer<'a> {
    fn new(
        t: &Trace,
        layout: &'a Layout,
        param_of: &'a HashMap<Value, usize>,
        shard_of: Vec<Option<Value>>,
        prefetch: usize,
    ) -> Self {
        let bucket_of = layout.bucket_of();
        let mut order = Vec::new();
        let mut pos = HashMap::new();
        for s in &t.bound_symbols {
            for v in s.inputs() {
                if let Some(&p) = param_of.get(&v) {
                    let k = bucket_of[p];
                    if let std::collections::hash_map::Entry::Vacant(e) = pos.entry(k) {
                        e.insert(order.len());
                        order.push(k);
                    }
                }
            }
        }
        Gatherer {
            layout,
            handles: vec![None; order.len()],
            order,
            pos,
            shard_of,
            value_of: param_of.iter().map(|(&v, &p)| (p, v)).collect(),
            param_of,
            bucket_of,
            gathered: vec![false; layout.buckets.len()],
            launched: 0,
            prefetch,
        }
    }

    /// Launches the gathers of the buckets up to position `i + prefetch` of the order.
    fn launch_up_to(&mut self, b: &mut TraceBuilder, i: usize) -> Result<(), TraceError> {
        while self.launched < self.order.len() && self.launched <= i + self.prefetch {
            let k = self.order[self.launched];
            let shard = self.shard_of[k].ok_or_else(|| {
                TraceError::Form(format!("internal: bucket {k} is used but has no shard"))
            })?;
            self.handles[self.launched] =
                Some(b.all_gather(shard, self.layout.world_size, true)?);
            self.launched += 1;
        }
        Ok(())
    }

    /// Before statement `s`: gathers the buckets of the parameters it reads, and maps their
    /// values in `m` to views of the gathered buffers.
    fn before(
        &mut self,
        b: &mut TraceBuilder,
        m: &mut HashMap<Value, Value>,
        s: &thunder_ir::BoundSymbol,
    ) -> Result<(), TraceError> {
        for v in s.inputs() {
            let Some(&p) = self.param_of.get(&v) else {
                continue;
            };
            let k = self.bucket_of[p];
            if self.gathered[k] {
                continue;
            }
            let i = self.pos[&k];
            self.launch_up_to(b, i)?;
            let h = self.handles[i].expect("launched");
            let flat = b.wait(h)?;
            for (q, full) in self.layout.unpack(b, flat, k)? {
                if let Some(orig) = self.value_of.get(&q) {
                    m.insert(*orig, full);
                }
            }
            self.gathered[k] = true;
        }
        Ok(())
    }
}

/// How many gradient reduce-scatters may be in flight before the oldest is waited for.
const REDUCE_SCATTERS_IN_FLIGHT: usize = 2;

/// The backward's gradient reduce-scatters: per bucket its handle and, once waited for, its
/// gradient shard; and the buckets launched but not waited for, oldest first.
struct ReduceScatters {
    handles: Vec<Option<Value>>,
    done: Vec<Option<Value>>,
    in_flight: Vec<usize>,
}

impl ReduceScatters {
    fn wait(&mut self, b: &mut TraceBuilder, k: usize) -> Result<(), TraceError> {
        let h = self.handles[k].take().ok_or_else(|| {
            TraceError::Form(format!("internal: gradient bucket {k} waited for twice"))
        })?;
        self.done[k] = Some(b.wait(h)?);
        Ok(())
    }
}

/// The FSDP traces of a training step.
#[derive(Debug, Clone)]
pub struct Fsdp {
    /// ZeRO-3: takes the forward's inputs that are not parameters (in their order), then this
    /// rank's bucket shards (in bucket order). ZeRO-2: the original forward. Returns the
    /// outputs, then the saved values (ZeRO-3: a bucket shard in place of the saved
    /// parameters of its bucket).
    pub forward: Trace,
    /// Takes the saved values and the cotangents; returns the gradient of each bucket shard
    /// (in bucket order).
    pub backward: Trace,
    /// How many of the forward's outputs are saved values.
    pub num_saved: usize,
    /// How the parameters are sharded.
    pub layout: Layout,
}

fn copy_input(b: &mut TraceBuilder, t: &Trace, v: Value) -> thunder_ir::Result<Value> {
    match t.ty(v) {
        thunder_ir::ValueType::Tensor(x) => b.input(t.name_of(v), x.clone()),
        thunder_ir::ValueType::Number(n) => b.number_input(t.name_of(v), *n),
    }
}

/// The FSDP forward and backward of `fb` (from `thunder_transforms::forward_backward` of a
/// trace whose inputs `params` - indices into its inputs, in the `wrt` order - are the
/// parameters). The buckets follow the order in which the forward first reads the parameters.
pub fn fsdp(
    forward: &Trace,
    backward: &Trace,
    num_saved: usize,
    params: &[usize],
    opts: &FsdpOptions,
) -> Result<Fsdp, TraceError> {
    if opts.world_size == 0 {
        return Err(TraceError::Options("world_size must be at least 1".into()));
    }
    if backward.outputs.len() != params.len() {
        return Err(TraceError::Form(format!(
            "the backward returns {} gradients for {} parameters",
            backward.outputs.len(),
            params.len()
        )));
    }
    let mut specs = Vec::with_capacity(params.len());
    for &i in params {
        let v = *forward
            .inputs
            .get(i)
            .ok_or_else(|| TraceError::Form(format!("parameter input {i} does not exist")))?;
        let t = forward
            .tensor(v)
            .ok_or_else(|| TraceError::Form(format!("parameter input {i} is a number")))?;
        specs.push(ParamSpec::new(forward.name_of(v), t));
    }
    let index: HashMap<Value, usize> = params
        .iter()
        .enumerate()
        .map(|(p, &i)| (forward.inputs[i], p))
        .collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for s in &forward.bound_symbols {
        for v in s.inputs() {
            if let Some(&p) = index.get(&v) {
                if seen.insert(p) {
                    order.push(p);
                }
            }
        }
    }
    let layout = Layout::new(opts.world_size, specs, &order, opts.bucket_bytes.max(1));
    let all: Vec<(usize, usize)> = (0..params.len()).map(|j| (j, j)).collect();
    let piece = fsdp_with_layout(forward, backward, num_saved, params, &all, &layout, opts)?;
    Ok(Fsdp {
        forward: piece.forward,
        backward: piece.backward,
        num_saved: piece.num_saved,
        layout,
    })
}

/// A forward and backward sharded along a [`Layout`] fixed beforehand (for example one per
/// model, when the model runs as several traces).
#[derive(Debug, Clone)]
pub struct FsdpPiece {
    /// ZeRO-3: takes the forward's inputs that are not parameters (`inputs` says which), then
    /// the shards of `buckets`. ZeRO-2: the original forward. Returns the outputs, then the
    /// saved values.
    pub forward: Trace,
    /// Takes the saved values and the cotangents; returns the gradients of the inputs that
    /// are not parameters (`grads` says which), then the gradients of the shards of `buckets`.
    pub backward: Trace,
    /// How many of the forward's outputs are saved values.
    pub num_saved: usize,
    /// The buckets holding this trace's parameters, in order.
    pub buckets: Vec<usize>,
    /// Per forward input before the shards: its index among the original forward's inputs.
    pub inputs: Vec<usize>,
    /// Per backward output before the bucket gradients: its position in `wrt`.
    pub grads: Vec<usize>,
}

/// [`fsdp`] along a given `layout`: `wrt[j]` is the forward input whose gradient is the
/// backward's output `j`; `params` pairs positions in `wrt` with parameters of the layout (the
/// other `wrt` inputs are activations whose gradients pass through). A bucket whose
/// parameters the trace only partly reads is gathered whole, and its gradient is zero where
/// the trace has none (another trace adds its part).
pub fn fsdp_with_layout(
    forward: &Trace,
    backward: &Trace,
    num_saved: usize,
    wrt: &[usize],
    params: &[(usize, usize)],
    layout: &Layout,
    opts: &FsdpOptions,
) -> Result<FsdpPiece, TraceError> {
    let world = opts.world_size;
    if world == 0 || world != layout.world_size {
        return Err(TraceError::Options(format!(
            "world_size {world} does not match the layout's {}",
            layout.world_size
        )));
    }
    if backward.outputs.len() != wrt.len() {
        return Err(TraceError::Form(format!(
            "the backward returns {} gradients for {} inputs",
            backward.outputs.len(),
            wrt.len()
        )));
    }
    // Parameter inputs of the forward, and their gradients in the backward.
    let mut param_of: HashMap<Value, usize> = HashMap::new();
    let mut grad_of: HashMap<usize, Value> = HashMap::new();
    for &(j, p) in params {
        let i = *wrt
            .get(j)
            .ok_or_else(|| TraceError::Form(format!("wrt position {j} does not exist")))?;
        let v = *forward
            .inputs
            .get(i)
            .ok_or_else(|| TraceError::Form(format!("input {i} does not exist")))?;
        let spec = layout
            .params
            .get(p)
            .ok_or_else(|| TraceError::Form(format!("the layout has no parameter {p}")))?;
        let t = forward
            .tensor(v)
            .ok_or_else(|| TraceError::Form(format!("parameter input {i} is a number")))?;
        if t.shape.sizes() != spec.shape || t.dtype != spec.dtype {
            return Err(TraceError::Form(format!(
                "input {} is {:?}{:?} but the layout's parameter {} is {:?}{:?}",
                forward.name_of(v),
                t.dtype,
                t.shape.sizes(),
                spec.name,
                spec.dtype,
                spec.shape
            )));
        }
        if param_of.insert(v, p).is_some() || grad_of.insert(p, backward.outputs[j]).is_some() {
            return Err(TraceError::Form(format!(
                "parameter {} is given twice",
                spec.name
            )));
        }
    }
    let param_positions: HashSet<usize> = params.iter().map(|&(j, _)| j).collect();
    let bucket_of = layout.bucket_of();
    let touched: Vec<usize> = params
        .iter()
        .map(|&(_, p)| bucket_of[p])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let seen: HashSet<usize> = forward
        .bound_symbols
        .iter()
        .flat_map(|s| s.inputs())
        .filter_map(|v| param_of.get(&v).copied())
        .collect();
    let n_out = forward.outputs.len() - num_saved;
    // ZeRO-3: parameters the forward gathers and keeps for the backward (the last buckets it
    // uses, up to `keep_gathered_bytes`).
    let mut kept: HashSet<usize> = HashSet::new();
    if opts.zero == Zero::Three {
        let mut budget = opts.keep_gathered_bytes;
        for &k in touched.iter().rev() {
            let bk = &layout.buckets[k];
            let bytes: usize = bk.params.iter().map(|&p| layout.params[p].bytes()).sum();
            if bytes > budget {
                break;
            }
            budget -= bytes;
            kept.extend(bk.params.iter().copied().filter(|p| seen.contains(p)));
        }
    }

    // Forward, and the saved values it returns.
    let mut inputs = Vec::new();
    let (fwd, new_num_saved) = if opts.zero == Zero::Three {
        let mut b = TraceBuilder::new(format!("{}_fsdp", forward.name));
        let mut m = HashMap::new();
        for (idx, &i) in forward.inputs.iter().enumerate() {
            if !param_of.contains_key(&i) {
                let nv = copy_input(&mut b, forward, i)?;
                m.insert(i, nv);
                inputs.push(idx);
            }
        }
        let mut shards: Vec<Option<Value>> = vec![None; layout.buckets.len()];
        for &k in &touched {
            let meta = layout.buckets[k].shard_meta();
            shards[k] = Some(b.input(&format!("bucket{k}_shard"), meta)?);
        }
        let mut g = Gatherer::new(forward, layout, &param_of, shards.clone(), opts.prefetch);
        g.launch_up_to(&mut b, 0)?;
        for s in &forward.bound_symbols {
            g.before(&mut b, &mut m, s)?;
            b.replay(s, &mut m)?;
        }
        // Saved parameters leave as their bucket's shard (once): the backward gathers again.
        // Kept ones leave gathered.
        let mut outputs: Vec<Value> = forward.outputs[..n_out].iter().map(|o| m[o]).collect();
        let mut saved_buckets = HashSet::new();
        for o in &forward.outputs[n_out..] {
            match param_of.get(o).filter(|p| !kept.contains(p)) {
                Some(p) => {
                    let k = bucket_of[*p];
                    if saved_buckets.insert(k) {
                        outputs.push(shards[k].expect("a touched bucket"));
                    }
                }
                None => outputs.push(m[o]),
            }
        }
        let saved = outputs.len() - n_out;
        (b.build(&outputs)?, saved)
    } else {
        inputs.extend(0..forward.inputs.len());
        (forward.clone(), num_saved)
    };

    // Backward.
    let mut b = TraceBuilder::new(format!("{}_fsdp", backward.name));
    let mut m: HashMap<Value, Value>;
    // Backward inputs that are saved parameters (ZeRO-3 passes their bucket's shard).
    let mut saved_params: HashMap<Value, usize> = HashMap::new();
    let mut shard_of: Vec<Option<Value>> = vec![None; layout.buckets.len()];
    if opts.zero == Zero::Three {
        m = HashMap::new();
        for (j, &i) in backward.inputs.iter().enumerate() {
            let saved_param = (j < num_saved)
                .then(|| param_of.get(&forward.outputs[n_out + j]).copied())
                .flatten()
                .filter(|p| !kept.contains(p));
            match saved_param {
                Some(p) => {
                    saved_params.insert(i, p);
                    let k = bucket_of[p];
                    if shard_of[k].is_none() {
                        let meta = layout.buckets[k].shard_meta();
                        shard_of[k] = Some(b.input(&format!("bucket{k}_shard"), meta)?);
                    }
                }
                None => {
                    let nv = copy_input(&mut b, backward, i)?;
                    m.insert(i, nv);
                }
            }
        }
    } else {
        m = b.inputs_like(backward)?;
    }
    let mut g = Gatherer::new(backward, layout, &saved_params, shard_of, opts.prefetch);
    g.launch_up_to(&mut b, 0)?;
    // Gradients, reduce-scattered per bucket, each launched as soon as the bucket's last
    // gradient is computed.
    let mut final_at: HashMap<Value, isize> = backward.inputs.iter().map(|&v| (v, -1)).collect();
    for (i, s) in backward.bound_symbols.iter().enumerate() {
        for &o in &s.outputs {
            final_at.insert(o, i as isize);
        }
    }
    let mut closes: HashMap<Value, Vec<usize>> = HashMap::new();
    for &k in &touched {
        if let Some(last) = layout.buckets[k]
            .params
            .iter()
            .filter_map(|p| grad_of.get(p).copied())
            .max_by_key(|g| final_at.get(g).copied().unwrap_or(-1))
        {
            closes.entry(last).or_default().push(k);
        }
    }
    // Reduce-scatters in flight: each is waited for when the one after the next is launched,
    // so its full-size input (the bucket's gradients) is freed early rather than at the end
    // of the backward (the wait is a stream wait: the host does not block).
    let mut rs = ReduceScatters {
        handles: vec![None; layout.buckets.len()],
        done: vec![None; layout.buckets.len()],
        in_flight: Vec::new(),
    };
    let launch = |b: &mut TraceBuilder,
                  m: &HashMap<Value, Value>,
                  rs: &mut ReduceScatters,
                  k: usize|
     -> Result<(), TraceError> {
        let mut gs = Vec::with_capacity(layout.buckets[k].params.len());
        for &p in &layout.buckets[k].params {
            gs.push(match grad_of.get(&p) {
                Some(g) => m[g],
                None => {
                    // Another trace's parameter: no gradient from this one.
                    let s = &layout.params[p];
                    b.zeros(&s.shape, s.dtype, s.device)?
                }
            });
        }
        rs.handles[k] = Some(layout.launch_reduce_scatter(b, k, &gs)?);
        rs.in_flight.push(k);
        if rs.in_flight.len() > REDUCE_SCATTERS_IN_FLIGHT {
            let old = rs.in_flight.remove(0);
            rs.wait(b, old)?;
        }
        Ok(())
    };
    for &i in &backward.inputs {
        for &k in closes.get(&i).into_iter().flatten() {
            launch(&mut b, &m, &mut rs, k)?;
        }
    }
    for s in &backward.bound_symbols {
        g.before(&mut b, &mut m, s)?;
        b.replay(s, &mut m)?;
        for o in &s.outputs {
            for &k in closes.get(o).into_iter().flatten() {
                launch(&mut b, &m, &mut rs, k)?;
            }
        }
    }
    for k in std::mem::take(&mut rs.in_flight) {
        rs.wait(&mut b, k)?;
    }
    let grads: Vec<usize> = (0..wrt.len())
        .filter(|j| !param_positions.contains(j))
        .collect();
    let mut outputs: Vec<Value> = grads.iter().map(|&j| m[&backward.outputs[j]]).collect();
    for &k in &touched {
        outputs.push(rs.done[k].ok_or_else(|| {
            TraceError::Form(format!("internal: gradient bucket {k} was never launched"))
        })?);
    }
    let bwd = b.build(&outputs)?;
    Ok(FsdpPiece {
        forward: fwd,
        backward: bwd,
        num_saved: new_num_saved,
        buckets: touched,
        inputs,
        grads,
    })
}
