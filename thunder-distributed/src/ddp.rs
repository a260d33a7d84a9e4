//! Data parallelism (DDP): every rank holds all parameters and computes gradients on its own
//! micro-batch; the gradients are averaged over the ranks.
//!
//! [`ddp_backward`] rewrites a backward trace so that the gradients are all-reduced in buckets:
//! as soon as the last gradient of a bucket is computed, the bucket is flattened into one
//! buffer and all-reduced asynchronously, so the communication overlaps the rest of the
//! backward; the waits come at the end. [`broadcast_parameters`] makes the trace that copies
//! rank 0's parameters to every rank at the start.
//!
//! Gradient accumulation over micro-batches without communication (PyTorch DDP's `no_sync`):
//! [`accumulate_backward`] adds the sum so far to each gradient as soon as it is computed. The
//! micro-steps before the last run it (the first may run the plain backward); the last runs
//! `ddp_backward(&accumulate_backward(..))`, which averages the accumulated sums in buckets that
//! still overlap the rest of its backward.

use crate::error::TraceError;
use std::collections::HashMap;
use thunder_ir::{Attr, DType, Device, PrimOp, Trace, TraceBuilder, Value};

/// Options of the DDP transform.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpOptions {
    /// The number of ranks.
    pub world_size: usize,
    /// The most bytes of gradients in one all-reduce (PyTorch DDP's default: 25 MiB). A single
    /// gradient larger than this gets a bucket of its own.
    pub bucket_bytes: usize,
}

impl DdpOptions {
    /// `world_size` ranks with 25 MiB buckets.
    pub fn new(world_size: usize) -> Self {
        DdpOptions {
            world_size,
            bucket_bytes: 25 << 20,
        }
    }
}

/// A bucket under construction: gradients of one dtype and device.
struct Bucket {
    key: (DType, Device),
    grads: Vec<Value>,
    bytes: usize,
}

/// Plans the buckets: gradients (outputs of `backward`) in the order the backward computes
/// them, grouped by dtype and device, each bucket closed when the next gradient would overflow
/// it. Returns per bucket the gradients (original values).
fn plan_buckets(backward: &Trace, grads: &[Value], bucket_bytes: usize) -> Vec<Vec<Value>> {
    // When each gradient is final: its defining top-level statement (inputs count as -1).
    let mut order: HashMap<Value, isize> = backward.inputs.iter().map(|&v| (v, -1)).collect();
    for (i, b) in backward.bound_symbols.iter().enumerate() {
        for &o in &b.outputs {
            order.insert(o, i as isize);
        }
    }
    let mut gs: Vec<Value> = Vec::new();
    for &g in grads {
        if backward.tensor(g).is_some() && !gs.contains(&g) {
            gs.push(g);
        }
    }
    gs.sort_by_key(|g| order.get(g).copied().unwrap_or(-1));
    let mut open: Vec<Bucket> = Vec::new();
    let mut done: Vec<Vec<Value>> = Vec::new();
    for g in gs {
        let t = backward.tensor(g).expect("tensor gradient");
        let key = (t.dtype, t.device);
        let bytes = t.shape.numel() * t.dtype.itemsize();
        if let Some(i) = open.iter().position(|b| b.key == key) {
            if open[i].bytes + bytes > bucket_bytes {
                done.push(open.remove(i).grads);
            }
        }
        match open.iter_mut().find(|b| b.key == key) {
            Some(b) => {
                b.grads.push(g);
                b.bytes += bytes;
            }
            None => open.push(Bucket {
                key,
                grads: vec![g],
                bytes,
            }),
        }
    }
    done.extend(open.into_iter().map(|b| b.grads));
    done
}

/// The DDP backward: `backward` (returning gradients, as `forward_backward` makes it) with
/// its tensor outputs averaged over `options.world_size` ranks by bucketed asynchronous
/// all-reduces. Bucket `k` is launched right after its last gradient is computed.
pub fn ddp_backward(backward: &Trace, options: &DdpOptions) -> Result<Trace, TraceError> {
    let all: Vec<usize> = (0..backward.outputs.len()).collect();
    ddp_backward_for(backward, options, &all)
}

/// [`ddp_backward`] that averages only the outputs `reduce` (indices into the backward's
/// outputs): the parameters' gradients, when the others are gradients of activations that flow
/// on into code outside the trace (a graph split around an op that runs eagerly).
pub fn ddp_backward_for(
    backward: &Trace,
    options: &DdpOptions,
    reduce: &[usize],
) -> Result<Trace, TraceError> {
    let world = options.world_size;
    if world == 0 {
        return Err(TraceError::Options("world_size must be at least 1".into()));
    }
    let mut chosen = Vec::with_capacity(reduce.len());
    for &i in reduce {
        let v = backward.outputs.get(i).copied().ok_or_else(|| {
            TraceError::Options(format!(
                "output {i} to reduce does not exist (the backward has {})",
                backward.outputs.len()
            ))
        })?;
        chosen.push(v);
    }
    let buckets = plan_buckets(backward, &chosen, options.bucket_bytes.max(1));
    // The bucket each statement completes (by the statement that defines its last gradient).
    let mut closes: HashMap<Value, Vec<usize>> = HashMap::new();
    for (k, bucket) in buckets.iter().enumerate() {
        if let Some(&last) = bucket.last() {
            closes.entry(last).or_default().push(k);
        }
    }
    let mut b = TraceBuilder::new(format!("{}_ddp", backward.name));
    let mut m = b.inputs_like(backward)?;
    let mut handles: Vec<Option<Value>> = vec![None; buckets.len()];
    let launch =
        |b: &mut TraceBuilder, m: &HashMap<Value, Value>, k: usize| -> thunder_ir::Result<Value> {
            let grads: Vec<Value> = buckets[k].iter().map(|g| m[g]).collect();
            let flat = if grads.len() == 1 {
                grads[0]
            } else {
                let parts = grads
                    .iter()
                    .map(|&g| b.reshape(g, &[-1]))
                    .collect::<thunder_ir::Result<Vec<_>>>()?;
                b.cat(&parts, 0)?
            };
            b.all_reduce(flat, "avg", world, true)
        };
    for &i in &backward.inputs {
        for &k in closes.get(&i).into_iter().flatten() {
            handles[k] = Some(launch(&mut b, &m, k)?);
        }
    }
    for s in &backward.bound_symbols {
        b.replay(s, &mut m)?;
        for o in &s.outputs {
            for &k in closes.get(o).into_iter().flatten() {
                handles[k] = Some(launch(&mut b, &m, k)?);
            }
        }
    }
    // The waits, and the averaged gradients out of their buckets.
    let mut reduced: HashMap<Value, Value> = HashMap::new();
    for (k, bucket) in buckets.iter().enumerate() {
        let h = handles[k].ok_or_else(|| {
            TraceError::Options(format!("internal: bucket {k} was never launched"))
        })?;
        let flat = b.wait(h)?;
        if bucket.len() == 1 {
            reduced.insert(bucket[0], flat);
            continue;
        }
        let mut start = 0i64;
        for &g in bucket {
            let t = backward.tensor(g).expect("tensor gradient");
            let n = t.shape.numel() as i64;
            let piece = b.narrow(flat, 0, start, n)?;
            let shape: Vec<i64> = t.shape.sizes().iter().map(|&d| d as i64).collect();
            reduced.insert(g, b.reshape(piece, &shape)?);
            start += n;
        }
    }
    let outputs: Vec<Value> = backward
        .outputs
        .iter()
        .map(|o| reduced.get(o).copied().unwrap_or_else(|| m[o]))
        .collect();
    Ok(b.build(&outputs)?)
}

/// Gradient accumulation: `backward` with one more input per output in `which` (indices into
/// its outputs): the sum of the earlier micro-batches' gradients, named `acc<i>`, after the
/// backward's own inputs. It returns `acc + gradient` in those places, each sum computed right
/// after its gradient (so [`ddp_backward`] of it still launches each bucket early).
pub fn accumulate_backward(backward: &Trace, which: &[usize]) -> Result<Trace, TraceError> {
    let mut b = TraceBuilder::new(format!("{}_accumulate", backward.name));
    let mut m = b.inputs_like(backward)?;
    let mut acc: HashMap<Value, Value> = HashMap::new();
    for &i in which {
        let g = backward.outputs.get(i).copied().ok_or_else(|| {
            TraceError::Options(format!(
                "output {i} to accumulate does not exist (the backward has {})",
                backward.outputs.len()
            ))
        })?;
        let mut meta = backward
            .tensor(g)
            .ok_or_else(|| TraceError::Options(format!("output {i} is a number, not a gradient")))?
            .clone();
        meta.requires_grad = false;
        if acc.contains_key(&g) {
            return Err(TraceError::Options(format!(
                "output {i} is the same value as another output to accumulate: accumulate it once"
            )));
        }
        let a = b.input(&format!("acc{i}"), meta)?;
        acc.insert(g, a);
    }
    let mut summed: HashMap<Value, Value> = HashMap::new();
    for &i in &backward.inputs {
        if let Some(&a) = acc.get(&i) {
            summed.insert(i, b.add(m[&i], a)?);
        }
    }
    for s in &backward.bound_symbols {
        b.replay(s, &mut m)?;
        for o in &s.outputs {
            if let Some(&a) = acc.get(o) {
                summed.insert(*o, b.add(m[o], a)?);
            }
        }
    }
    let outputs: Vec<Value> = backward
        .outputs
        .iter()
        .map(|o| summed.get(o).copied().unwrap_or_else(|| m[o]))
        .collect();
    Ok(b.build(&outputs)?)
}

/// The trace that makes every rank's parameters rank 0's: `broadcast` each one and copy the
/// result into it. Takes the parameters (described by `params`: name, dtype, shape, device),
/// returns nothing.
pub fn broadcast_parameters(
    params: &[(String, thunder_ir::TensorMeta)],
    world_size: usize,
) -> Result<Trace, TraceError> {
    let mut b = TraceBuilder::new("broadcast_parameters");
    let mut ins = Vec::with_capacity(params.len());
    for (name, meta) in params {
        let mut meta = meta.clone();
        meta.requires_grad = false;
        ins.push(b.input(name, meta)?);
    }
    for &p in &ins {
        let h = b.broadcast(p, 0, world_size, true)?;
        let v = b.wait(h)?;
        b.prim(PrimOp::Copy_, vec![v.into(), p.into()], Vec::<Attr>::new())?;
    }
    Ok(b.build(&[])?)
}
