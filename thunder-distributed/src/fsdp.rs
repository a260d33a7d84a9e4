//! Fully sharded data parallelism (FSDP, ZeRO-2 and ZeRO-3).
//!
//! Each parameter is split along dim 0 into `world_size` shards of `ceil(d0 / world_size)`
//! rows (the last padded with zeros); rank `r` owns rows `r*s .. (r+1)*s`. The optimizer
//! updates only the shard.
//!
//! - **ZeRO-3**: the forward and the backward take the shards. Before a parameter's first
//!   use, its bucket is all-gathered (asynchronously, `prefetch` buckets ahead), used, and
//!   dropped after its last use; the backward gathers again what it needs. Gradients are
//!   reduce-scattered (averaged) in buckets as soon as a bucket is complete, so each rank
//!   gets the gradient of its shard.
//! - **ZeRO-2**: the forward and backward take full parameters (gathered once per step by
//!   [`gather_parameters`] after the optimizer step); gradients are reduce-scattered as in
//!   ZeRO-3.
//!
//! A bucket is several parameters' shards flattened into one buffer, so one collective moves
//! them all. Gathered, the buffer is `[world_size, total]` rank-major; each parameter is a
//! column block of it.

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
    /// The most bytes of (full) parameters in one bucket: one all-gather or reduce-scatter.
    pub bucket_bytes: usize,
    /// How many buckets' all-gathers run ahead of the bucket in use (ZeRO-3).
    pub prefetch: usize,
}

impl FsdpOptions {
    /// `world_size` ranks, ZeRO-3, 64 MiB buckets (about one Llama-2-7B block in bf16: 202M
    /// parameters ≈ 386 MiB is split into a few), one bucket of prefetch.
    pub fn new(world_size: usize, zero: Zero) -> Self {
        FsdpOptions {
            world_size,
            zero,
            bucket_bytes: 64 << 20,
            prefetch: 1,
        }
    }
}

/// How one parameter is sharded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// The parameter's name (its input's name in the original trace).
    pub name: String,
    /// The full shape.
    pub full_shape: Vec<usize>,
    /// Rows of dim 0 per shard (`ceil(d0 / world_size)`).
    pub rows: usize,
    /// The dtype.
    pub dtype: DType,
    /// The device.
    pub device: Device,
}

impl ShardSpec {
    fn new(name: &str, t: &TensorMeta, world: usize) -> Result<Self, TraceError> {
        let full_shape = t.shape.sizes();
        if full_shape.is_empty() || full_shape[0] == 0 {
            return Err(TraceError::Form(format!(
                "parameter {name} has shape {}: FSDP shards along dim 0, which it lacks",
                t.shape
            )));
        }
        Ok(ShardSpec {
            name: name.to_string(),
            rows: full_shape[0].div_ceil(world),
            full_shape,
            dtype: t.dtype,
            device: t.device,
        })
    }
    /// The shard's shape: `[rows, full_shape[1..]...]`.
    pub fn shard_shape(&self) -> Vec<usize> {
        let mut s = self.full_shape.clone();
        s[0] = self.rows;
        s
    }
    /// Elements of one row.
    fn row_numel(&self) -> usize {
        self.full_shape[1..].iter().product()
    }
    /// Elements of a shard.
    pub fn shard_numel(&self) -> usize {
        self.rows * self.row_numel()
    }
    fn full_bytes(&self) -> usize {
        self.full_shape.iter().product::<usize>() * self.dtype.itemsize()
    }
    fn shard_meta(&self, requires_grad: bool) -> TensorMeta {
        TensorMeta::new(self.dtype, self.shard_shape())
            .on(self.device)
            .with_grad(requires_grad)
    }
}

/// The FSDP traces of a training step.
#[derive(Debug, Clone)]
pub struct Fsdp {
    /// ZeRO-3: takes the forward's inputs with shards in place of parameters. ZeRO-2: the
    /// original forward. Returns the outputs, then the saved values.
    pub forward: Trace,
    /// Takes the saved values (ZeRO-3: shards in place of saved parameters) and the
    /// cotangents; returns one gradient shard per parameter.
    pub backward: Trace,
    /// How many of the forward's outputs are saved values.
    pub num_saved: usize,
    /// Per parameter (in the order given), how it is sharded.
    pub shards: Vec<ShardSpec>,
}

/// Groups parameters (indices into `specs`, in the order they are needed) into buckets of at
/// most `bytes` (one parameter larger than that gets its own), one dtype and device each.
fn buckets(order: &[usize], specs: &[ShardSpec], bytes: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for &p in order {
        let fits = out.last().is_some_and(|b| {
            let first = &specs[b[0]];
            first.dtype == specs[p].dtype
                && first.device == specs[p].device
                && size + specs[p].full_bytes() <= bytes
        });
        if fits {
            out.last_mut().expect("a bucket").push(p);
            size += specs[p].full_bytes();
        } else {
            out.push(vec![p]);
            size = specs[p].full_bytes();
        }
    }
    out
}

/// Launches the all-gather of a bucket of shards (values of `b`); returns the handle.
fn launch_gather(
    b: &mut TraceBuilder,
    shards: &[Value],
    world: usize,
) -> thunder_ir::Result<Value> {
    let flat = flatten_cat(b, shards)?;
    b.all_gather(flat, world, true)
}

fn flatten_cat(b: &mut TraceBuilder, vs: &[Value]) -> thunder_ir::Result<Value> {
    let parts = vs
        .iter()
        .map(|&v| b.reshape(v, &[-1]))
        .collect::<thunder_ir::Result<Vec<_>>>()?;
    if parts.len() == 1 {
        Ok(parts[0])
    } else {
        b.cat(&parts, 0)
    }
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// The full parameters out of a gathered bucket (`[world * total]`, rank-major).
fn unpack_gather(
    b: &mut TraceBuilder,
    gathered: Value,
    specs: &[&ShardSpec],
    world: usize,
) -> thunder_ir::Result<Vec<Value>> {
    let total: usize = specs.iter().map(|s| s.shard_numel()).sum();
    let grid = b.reshape(gathered, &[world as i64, total as i64])?;
    let mut out = Vec::with_capacity(specs.len());
    let mut offset = 0;
    for s in specs {
        let n = s.shard_numel();
        let cols = if specs.len() == 1 {
            grid
        } else {
            b.narrow(grid, 1, offset as i64, n as i64)?
        };
        let mut padded = s.full_shape.clone();
        padded[0] = s.rows * world;
        let full = b.reshape(cols, &i64s(&padded))?;
        out.push(if padded[0] != s.full_shape[0] {
            b.narrow(full, 0, 0, s.full_shape[0] as i64)?
        } else {
            full
        });
        offset += n;
    }
    Ok(out)
}

/// Launches the averaging reduce-scatter of a bucket of full gradients; returns the handle.
fn launch_reduce_scatter(
    b: &mut TraceBuilder,
    grads: &[Value],
    specs: &[&ShardSpec],
    world: usize,
) -> thunder_ir::Result<Value> {
    let mut grids = Vec::with_capacity(grads.len());
    for (&g, s) in grads.iter().zip(specs) {
        let pad = s.rows * world - s.full_shape[0];
        let padded = if pad > 0 {
            let mut zs = s.full_shape.clone();
            zs[0] = pad;
            let z = b.zeros(&zs, s.dtype, s.device)?;
            b.cat(&[g, z], 0)?
        } else {
            g
        };
        grids.push(b.reshape(padded, &[world as i64, s.shard_numel() as i64])?);
    }
    let grid = if grids.len() == 1 {
        grids[0]
    } else {
        b.cat(&grids, 1)?
    };
    let flat = b.reshape(grid, &[-1])?;
    b.reduce_scatter(flat, "avg", world, true)
}

/// The gradient shards out of a reduce-scattered bucket (`[total]`).
fn unpack_shards(
    b: &mut TraceBuilder,
    flat: Value,
    specs: &[&ShardSpec],
) -> thunder_ir::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(specs.len());
    let mut offset = 0;
    for s in specs {
        let n = s.shard_numel();
        let piece = if specs.len() == 1 {
            flat
        } else {
            b.narrow(flat, 0, offset as i64, n as i64)?
        };
        out.push(b.reshape(piece, &i64s(&s.shard_shape()))?);
        offset += n;
    }
    Ok(out)
}

/// Replays `t` into `b`, gathering sharded parameters before their first use.
///
/// `sharded`: the values of `t` that are sharded parameters, with their spec index;
/// `m` maps `t`'s values to `b`'s (a sharded parameter maps to its shard until gathered).
/// Gathers run in buckets, in order of first use, `prefetch` buckets ahead.
struct Gatherer<'a> {
    specs: &'a [ShardSpec],
    world: usize,
    buckets: Vec<Vec<usize>>,
    /// Per bucket, the original values of its parameters.
    values: Vec<Vec<Value>>,
    handles: Vec<Option<Value>>,
    gathered: Vec<bool>,
    bucket_of: HashMap<Value, usize>,
    launched: usize,
    prefetch: usize,
}

impl<'a> Gatherer<'a> {
    fn new(
        t: &Trace,
        sharded: &HashMap<Value, usize>,
        specs: &'a [ShardSpec],
        opts: &FsdpOptions,
    ) -> Self {
        // Parameters in order of first use.
        let mut seen = HashSet::new();
        let mut order_vals: Vec<Value> = Vec::new();
        for s in &t.bound_symbols {
            for v in s.inputs() {
                if sharded.contains_key(&v) && seen.insert(v) {
                    order_vals.push(v);
                }
            }
        }
        let order: Vec<usize> = order_vals.iter().map(|v| sharded[v]).collect();
        let by_spec: HashMap<usize, Value> = order_vals.iter().map(|v| (sharded[v], *v)).collect();
        let buckets = buckets(&order, specs, opts.bucket_bytes.max(1));
        let values: Vec<Vec<Value>> = buckets
            .iter()
            .map(|bk| bk.iter().map(|p| by_spec[p]).collect())
            .collect();
        let mut bucket_of = HashMap::new();
        for (k, vs) in values.iter().enumerate() {
            for v in vs {
                bucket_of.insert(*v, k);
            }
        }
        Gatherer {
            specs,
            world: opts.world_size,
            handles: vec![None; buckets.len()],
            gathered: vec![false; buckets.len()],
            buckets,
            values,
            bucket_of,
            launched: 0,
            prefetch: opts.prefetch,
        }
    }

    /// Launches buckets up to `k + prefetch`.
    fn launch_up_to(
        &mut self,
        b: &mut TraceBuilder,
        m: &HashMap<Value, Value>,
        k: usize,
    ) -> thunder_ir::Result<()> {
        while self.launched < self.buckets.len() && self.launched <= k + self.prefetch {
            let shards: Vec<Value> = self.values[self.launched].iter().map(|v| m[v]).collect();
            self.handles[self.launched] = Some(launch_gather(b, &shards, self.world)?);
            self.launched += 1;
        }
        Ok(())
    }

    /// Before statement `s`: gathers the buckets of the sharded parameters it reads.
    fn before(
        &mut self,
        b: &mut TraceBuilder,
        m: &mut HashMap<Value, Value>,
        s: &thunder_ir::BoundSymbol,
    ) -> thunder_ir::Result<()> {
        for v in s.inputs() {
            let Some(&k) = self.bucket_of.get(&v) else {
                continue;
            };
            if self.gathered[k] {
                continue;
            }
            self.launch_up_to(b, m, k)?;
            let h = self.handles[k].expect("launched");
            let flat = b.wait(h)?;
            let specs: Vec<&ShardSpec> = self.buckets[k].iter().map(|&p| &self.specs[p]).collect();
            let fulls = unpack_gather(b, flat, &specs, self.world)?;
            for (orig, full) in self.values[k].iter().zip(fulls) {
                m.insert(*orig, full);
            }
            self.gathered[k] = true;
        }
        Ok(())
    }
}

/// The FSDP forward and backward of `fb` (from `thunder_transforms::forward_backward` of a
/// trace whose inputs `params` - indices into its inputs, in the `wrt` order - are the
/// parameters).
pub fn fsdp(
    forward: &Trace,
    backward: &Trace,
    num_saved: usize,
    params: &[usize],
    opts: &FsdpOptions,
) -> Result<Fsdp, TraceError> {
    let world = opts.world_size;
    if world == 0 {
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
        specs.push(ShardSpec::new(forward.name_of(v), t, world)?);
    }
    let param_of: HashMap<Value, usize> = params
        .iter()
        .enumerate()
        .map(|(p, &i)| (forward.inputs[i], p))
        .collect();
    let n_out = forward.outputs.len() - num_saved;

    // Forward.
    let fwd = if opts.zero == Zero::Three {
        let mut b = TraceBuilder::new(format!("{}_fsdp", forward.name));
        let mut m = HashMap::new();
        for &i in &forward.inputs {
            let nv = match param_of.get(&i) {
                Some(&p) => b.input(
                    &format!("{}_shard", specs[p].name),
                    specs[p].shard_meta(forward.tensor(i).is_some_and(|t| t.requires_grad)),
                )?,
                None => match forward.ty(i) {
                    thunder_ir::ValueType::Tensor(t) => b.input(forward.name_of(i), t.clone())?,
                    thunder_ir::ValueType::Number(n) => b.number_input(forward.name_of(i), *n)?,
                },
            };
            m.insert(i, nv);
        }
        let shards: HashMap<Value, Value> = param_of.keys().map(|&v| (v, m[&v])).collect();
        let mut g = Gatherer::new(forward, &param_of, &specs, opts);
        g.launch_up_to(&mut b, &m, 0)?;
        for s in &forward.bound_symbols {
            g.before(&mut b, &mut m, s)?;
            b.replay(s, &mut m)?;
        }
        // Saved parameters leave as their shards: the backward gathers them again.
        let outputs: Vec<Value> = forward
            .outputs
            .iter()
            .enumerate()
            .map(|(k, o)| match shards.get(o) {
                Some(&sh) if k >= n_out => sh,
                _ => m[o],
            })
            .collect();
        b.build(&outputs)?
    } else {
        forward.clone()
    };

    // Backward.
    let mut b = TraceBuilder::new(format!("{}_fsdp", backward.name));
    let mut m: HashMap<Value, Value>;
    // Backward inputs that are saved parameters (ZeRO-3 passes their shards).
    let mut saved_params: HashMap<Value, usize> = HashMap::new();
    if opts.zero == Zero::Three {
        m = HashMap::new();
        for (j, &i) in backward.inputs.iter().enumerate() {
            let saved_param = (j < num_saved)
                .then(|| param_of.get(&forward.outputs[n_out + j]).copied())
                .flatten();
            let nv = match saved_param {
                Some(p) => {
                    saved_params.insert(i, p);
                    b.input(
                        &format!("{}_shard", specs[p].name),
                        specs[p].shard_meta(false),
                    )?
                }
                None => match backward.ty(i) {
                    thunder_ir::ValueType::Tensor(t) => b.input(backward.name_of(i), t.clone())?,
                    thunder_ir::ValueType::Number(n) => b.number_input(backward.name_of(i), *n)?,
                },
            };
            m.insert(i, nv);
        }
    } else {
        m = b.inputs_like(backward)?;
    }
    let mut g = Gatherer::new(backward, &saved_params, &specs, opts);
    g.launch_up_to(&mut b, &m, 0)?;
    // Gradients, reduce-scattered in buckets, each launched as soon as its last gradient is
    // computed (in the order the backward computes them).
    let mut final_at: HashMap<Value, isize> = backward.inputs.iter().map(|&v| (v, -1)).collect();
    for (i, s) in backward.bound_symbols.iter().enumerate() {
        for &o in &s.outputs {
            final_at.insert(o, i as isize);
        }
    }
    let mut order: Vec<(isize, usize)> = backward
        .outputs
        .iter()
        .enumerate()
        .map(|(p, o)| (final_at.get(o).copied().unwrap_or(-1), p))
        .collect();
    order.sort();
    let order: Vec<usize> = order.into_iter().map(|(_, p)| p).collect();
    let gbuckets = buckets(&order, &specs, opts.bucket_bytes.max(1));
    let mut closes: HashMap<Value, Vec<usize>> = HashMap::new();
    for (k, bk) in gbuckets.iter().enumerate() {
        if let Some(&last) = bk.iter().max_by_key(|&&p| final_at[&backward.outputs[p]]) {
            closes.entry(backward.outputs[last]).or_default().push(k);
        }
    }
    let mut ghandles: Vec<Option<Value>> = vec![None; gbuckets.len()];
    let launch = |b: &mut TraceBuilder, m: &HashMap<Value, Value>, k: usize| {
        let gs: Vec<Value> = gbuckets[k]
            .iter()
            .map(|&p| m[&backward.outputs[p]])
            .collect();
        let ss: Vec<&ShardSpec> = gbuckets[k].iter().map(|&p| &specs[p]).collect();
        launch_reduce_scatter(b, &gs, &ss, world)
    };
    for &i in &backward.inputs {
        for &k in closes.get(&i).into_iter().flatten() {
            ghandles[k] = Some(launch(&mut b, &m, k)?);
        }
    }
    for s in &backward.bound_symbols {
        g.before(&mut b, &mut m, s)?;
        b.replay(s, &mut m)?;
        for o in &s.outputs {
            for &k in closes.get(o).into_iter().flatten() {
                ghandles[k] = Some(launch(&mut b, &m, k)?);
            }
        }
    }
    let mut grad_shards: HashMap<usize, Value> = HashMap::new();
    for (k, bk) in gbuckets.iter().enumerate() {
        let h = ghandles[k].ok_or_else(|| {
            TraceError::Form(format!("internal: gradient bucket {k} was never launched"))
        })?;
        let flat = b.wait(h)?;
        let ss: Vec<&ShardSpec> = bk.iter().map(|&p| &specs[p]).collect();
        for (p, v) in bk.iter().zip(unpack_shards(&mut b, flat, &ss)?) {
            grad_shards.insert(*p, v);
        }
    }
    let outputs: Vec<Value> = (0..params.len()).map(|p| grad_shards[&p]).collect();
    let bwd = b.build(&outputs)?;
    Ok(Fsdp {
        forward: fwd,
        backward: bwd,
        num_saved,
        shards: specs,
    })
}

/// ZeRO-2's once-per-step gather: takes every parameter's shard, then every full parameter
/// buffer; all-gathers the shards (in buckets) and copies them into the buffers.
pub fn gather_parameters(specs: &[ShardSpec], opts: &FsdpOptions) -> Result<Trace, TraceError> {
    let mut b = TraceBuilder::new("gather_parameters");
    let shards = specs
        .iter()
        .map(|s| b.input(&format!("{}_shard", s.name), s.shard_meta(false)))
        .collect::<thunder_ir::Result<Vec<_>>>()?;
    let fulls = specs
        .iter()
        .map(|s| {
            b.input(
                &s.name,
                TensorMeta::new(s.dtype, s.full_shape.clone()).on(s.device),
            )
        })
        .collect::<thunder_ir::Result<Vec<_>>>()?;
    let order: Vec<usize> = (0..specs.len()).collect();
    for bk in buckets(&order, specs, opts.bucket_bytes.max(1)) {
        let vs: Vec<Value> = bk.iter().map(|&p| shards[p]).collect();
        let h = launch_gather(&mut b, &vs, opts.world_size)?;
        let flat = b.wait(h)?;
        let ss: Vec<&ShardSpec> = bk.iter().map(|&p| &specs[p]).collect();
        for (&p, full) in bk
            .iter()
            .zip(unpack_gather(&mut b, flat, &ss, opts.world_size)?)
        {
            b.prim(
                PrimOp::Copy_,
                vec![full.into(), fulls[p].into()],
                Vec::<Attr>::new(),
            )?;
        }
    }
    Ok(b.build(&[])?)
}

/// Rank `rank`'s shard of `full` (rows `rank*s .. (rank+1)*s`, zero-padded), as the FSDP
/// traces expect it.
pub fn shard_tensor(full: &tch::Tensor, spec: &ShardSpec, rank: usize) -> tch::Tensor {
    let d0 = spec.full_shape[0] as i64;
    let rows = spec.rows as i64;
    let start = (rank as i64 * rows).min(d0);
    let take = (d0 - start).clamp(0, rows);
    let mine = full.narrow(0, start, take);
    if take == rows {
        return mine.contiguous();
    }
    let mut pad_shape: Vec<i64> = full.size();
    pad_shape[0] = rows - take;
    tch::Tensor::cat(
        &[
            mine,
            tch::Tensor::zeros(pad_shape.as_slice(), (full.kind(), full.device())),
        ],
        0,
    )
}

/// The full tensor from every rank's shard (rank order), without the padding.
pub fn unshard(shards: &[tch::Tensor], spec: &ShardSpec) -> tch::Tensor {
    tch::Tensor::cat(shards, 0).narrow(0, 0, spec.full_shape[0] as i64)
}
