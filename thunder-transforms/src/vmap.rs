//! vmap: a trace over one example gives a trace over a batch of them, like `torch.func.vmap`.
//!
//! Batched inputs may carry the batch dim anywhere (`in_dims`); inside, every batched value keeps
//! it first, and outputs have it first unless `out_dims` says otherwise. Unbatched values stay
//! unbatched until an op mixes them with batched ones. Each prim has a batching rule (random ones
//! follow [`Randomness`]); a case a rule does not handle is a typed error naming the prim. The
//! rules are filed by op family in [`crate::rules`]; this file is the driver.

use crate::util::{flatten_prims, ints};
use crate::{Result, TransformError};
use std::collections::HashMap;
use thunder_ir::{Op, PrimOp, Trace, TraceBuilder, Value, ValueType};

/// How vmap treats random ops: `torch.func.vmap`'s `randomness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Randomness {
    /// A random op under vmap is an error (PyTorch's default).
    #[default]
    Error,
    /// Every example sees the same random numbers.
    Same,
    /// Each example draws its own.
    Different,
}

/// Options of [`vmap_with`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmapOptions {
    /// Where each output carries the batch dim (`None`: first, for every output).
    pub out_dims: Option<Vec<usize>>,
    /// What random ops do.
    pub randomness: Randomness,
}

/// `trace` over a batch of `batch` examples. `in_dims[i]` is where input `i` carries the batch dim
/// (`None`: the input is shared by every example). Outputs carry the batch dim first; a random op
/// is an error (see [`vmap_with`]).
pub fn vmap(trace: &Trace, in_dims: &[Option<usize>], batch: usize) -> Result<Trace> {
    vmap_with(trace, in_dims, batch, &VmapOptions::default())
}

/// [`vmap`] with the batch dim of output `i` at `out_dims[i]` (`torch.func.vmap`'s `out_dims`).
/// Nested vmap is vmap of the trace vmap returns.
pub fn vmap_dims(
    trace: &Trace,
    in_dims: &[Option<usize>],
    out_dims: &[usize],
    batch: usize,
) -> Result<Trace> {
    let options = VmapOptions {
        out_dims: Some(out_dims.to_vec()),
        ..VmapOptions::default()
    };
    vmap_with(trace, in_dims, batch, &options)
}

/// [`vmap`] with options: `out_dims` and `randomness`.
pub fn vmap_with(
    trace: &Trace,
    in_dims: &[Option<usize>],
    batch: usize,
    options: &VmapOptions,
) -> Result<Trace> {
    let zeros = vec![0; trace.outputs.len()];
    let out_dims: &[usize] = options.out_dims.as_deref().unwrap_or(&zeros);
    if out_dims.len() != trace.outputs.len() {
        return Err(TransformError::Pass {
            pass: "vmap".into(),
            message: format!(
                "out_dims has {} entries but the trace has {} outputs",
                out_dims.len(),
                trace.outputs.len()
            ),
        });
    }
    if in_dims.len() != trace.inputs.len() {
        return Err(TransformError::Pass {
            pass: "vmap".into(),
            message: format!(
                "in_dims has {} entries but the trace has {} inputs",
                in_dims.len(),
                trace.inputs.len()
            ),
        });
    }
    let prims = flatten_prims(trace);
    let mut b = TraceBuilder::new(format!("{}_vmap", trace.name));
    // value -> (new value, batched with the batch dim first)
    let mut m: HashMap<Value, (Value, bool)> = HashMap::new();
    for (&i, d) in trace.inputs.iter().zip(in_dims) {
        let v = match (trace.ty(i), d) {
            (ValueType::Tensor(t), Some(d)) => {
                if *d > t.rank() {
                    return Err(TransformError::Pass {
                        pass: "vmap".into(),
                        message: format!(
                            "in_dims: {} has rank {}, so its batch dim cannot be {d}",
                            trace.name_of(i),
                            t.rank()
                        ),
                    });
                }
                let mut meta = t.clone();
                let mut sizes = t.shape.sizes();
                sizes.insert(*d, batch);
                meta.shape = thunder_ir::Shape::new(sizes);
                let input = b.input(trace.name_of(i), meta)?;
                let moved = if *d == 0 {
                    input
                } else {
                    let mut perm: Vec<usize> = vec![*d];
                    perm.extend((0..=t.rank()).filter(|x| x != d));
                    b.prim(PrimOp::Transpose, vec![input.into()], vec![ints(perm)])?
                };
                (moved, true)
            }
            (ValueType::Tensor(t), None) => (b.input(trace.name_of(i), t.clone())?, false),
            (ValueType::Number(n), None) => (b.number_input(trace.name_of(i), *n)?, false),
            (ValueType::Number(_), Some(_)) => {
                return Err(TransformError::Pass {
                    pass: "vmap".into(),
                    message: format!(
                        "{} is a number: only tensors can be batched",
                        trace.name_of(i)
                    ),
                })
            }
        };
        m.insert(i, v);
    }
    for p in &prims {
        let op = match p.op {
            Op::Prim(op) => op,
            _ => return Err(crate::util::collective_refused("batching", p)),
        };
        let outs = crate::rules::vmap(&mut b, op, p, &m, batch, options.randomness)?;
        for (o, v) in p.outputs.iter().zip(outs) {
            m.insert(*o, v);
        }
    }
    let mut outputs = Vec::with_capacity(trace.outputs.len());
    for (o, &d) in trace.outputs.iter().zip(out_dims) {
        let (v, batched) = m[o];
        let v = if batched {
            v
        } else {
            crate::rules::batched_copy(&mut b, v, batch)?
        };
        let rank = b
            .tensor(v)
            .map(|t| t.rank())
            .map_err(|_| TransformError::Pass {
                pass: "vmap".into(),
                message: format!(
                    "output {} is a number: only tensors can be batched",
                    trace.name_of(*o)
                ),
            })?;
        if d >= rank {
            return Err(TransformError::Pass {
                pass: "vmap".into(),
                message: format!(
                    "out_dims: {} has rank {} with the batch dim, so its batch dim cannot be {d}",
                    trace.name_of(*o),
                    rank
                ),
            });
        }
        outputs.push(if d == 0 {
            v
        } else {
            // Move the batch dim from the front to `d`.
            let perm: Vec<usize> = (0..rank)
                .map(|j| match j.cmp(&d) {
                    std::cmp::Ordering::Less => j + 1,
                    std::cmp::Ordering::Equal => 0,
                    std::cmp::Ordering::Greater => j,
                })
                .collect();
            b.prim(PrimOp::Transpose, vec![v.into()], vec![ints(perm)])?
        });
    }
    Ok(b.build(&outputs)?)
}
