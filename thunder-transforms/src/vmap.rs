//! vmap: a trace over one example gives a trace over a batch of them, like `torch.func.vmap`.
//!
//! Batched inputs may carry the batch dim anywhere (`in_dims`); inside, every batched value keeps
//! it first, and outputs have it first unless `out_dims` says otherwise. Unbatched values stay
//! unbatched until an op mixes them with batched ones. Each prim has a batching rule (random ones
//! follow [`Randomness`]); a case a rule does not handle is a typed error naming the prim.

use crate::util::{flatten_prims, ints, no_rule};
use crate::{Result, TransformError};
use std::collections::HashMap;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, BoundSymbol, Op, PrimOp, Trace, TraceBuilder, Value, ValueType};

fn attr_ints(a: &Attr) -> Vec<i64> {
    match a {
        Attr::Ints(v) => v.clone(),
        _ => Vec::new(),
    }
}

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
        let Op::Prim(op) = p.op else { continue };
        let outs = if op.is_random() {
            random_rule(&mut b, op, p, batch, options.randomness)?
        } else {
            rule(&mut b, op, p, &m, batch)?
        };
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
            batched_copy(&mut b, v, batch)?
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

/// The batching rule of a random prim (it has no tensor operands): refused, one draw shared by
/// every example, or one draw per example (its shape with the batch dim in front).
fn random_rule(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    batch: usize,
    randomness: Randomness,
) -> Result<Vec<(Value, bool)>> {
    match randomness {
        Randomness::Error => Err(TransformError::Pass {
            pass: "vmap".into(),
            message: format!(
                "prims.{} is random: choose what each example sees with randomness Same or Different (torch.func.vmap's randomness=\"same\"/\"different\"); the default refuses, as PyTorch's does",
                op.name()
            ),
        }),
        Randomness::Same => {
            let v = b.prim(op, Vec::new(), p.attrs.clone())?;
            Ok(vec![(v, false)])
        }
        Randomness::Different => {
            let mut attrs = p.attrs.clone();
            let mut shape = vec![batch as i64];
            shape.extend(attr_ints(&p.attrs[0]));
            attrs[0] = Attr::Ints(shape);
            let v = b.prim(op, Vec::new(), attrs)?;
            Ok(vec![(v, true)])
        }
    }
}

/// An unbatched tensor broadcast to `[batch] + shape`.
fn batched_copy(b: &mut TraceBuilder, v: Value, batch: usize) -> Result<Value> {
    let t = b.tensor(v)?.clone();
    let mut shape = vec![batch];
    shape.extend(t.shape.sizes());
    Ok(b.prim(
        PrimOp::BroadcastInDim,
        vec![v.into()],
        vec![ints(shape), ints(1..=t.rank())],
    )?)
}

fn rule(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    m: &HashMap<Value, (Value, bool)>,
    batch: usize,
) -> Result<Vec<(Value, bool)>> {
    use PrimOp::*;
    let batched = |a: &Arg| match a {
        Arg::Value(v) => m[v].1,
        Arg::List(l) => l.iter().any(|v| m[v].1),
        _ => false,
    };
    let plain: Vec<Arg> = p
        .args
        .iter()
        .map(|a| match a {
            Arg::Value(v) => Arg::Value(m[v].0),
            Arg::List(l) => Arg::List(l.iter().map(|v| m[v].0).collect()),
            other => other.clone(),
        })
        .collect();
    if !p.args.iter().any(batched) {
        let outs = b.call(p.op, plain, p.attrs.clone())?;
        return Ok(outs.into_iter().map(|v| (v, false)).collect());
    }
    // Every tensor operand batched (unbatched ones broadcast), numbers unchanged.
    let all_batched = |b: &mut TraceBuilder| -> Result<Vec<Arg>> {
        p.args
            .iter()
            .map(|a| {
                Ok(match a {
                    Arg::Value(v) => {
                        let (nv, bt) = m[v];
                        if bt || b.tensor(nv).is_err() {
                            Arg::Value(nv)
                        } else {
                            Arg::Value(batched_copy(b, nv, batch)?)
                        }
                    }
                    Arg::List(l) => Arg::List(
                        l.iter()
                            .map(|v| {
                                let (nv, bt) = m[v];
                                if bt {
                                    Ok(nv)
                                } else {
                                    batched_copy(b, nv, batch)
                                }
                            })
                            .collect::<Result<_>>()?,
                    ),
                    other => other.clone(),
                })
            })
            .collect()
    };
    let one = |v: Value| Ok(vec![(v, true)]);
    let shifted = |dims: &[i64], r: usize| -> Vec<i64> {
        dims.iter()
            .map(|&d| if d < 0 { d + r as i64 + 1 } else { d + 1 })
            .collect()
    };
    match op.class() {
        PrimClass::Unary | PrimClass::Binary | PrimClass::Ternary => {
            let args = all_batched(b)?;
            return one(b.prim(op, args, p.attrs.clone())?);
        }
        PrimClass::Reduction => {
            let args = all_batched(b)?;
            let r = b
                .tensor(
                    args[0]
                        .as_value()
                        .ok_or_else(|| no_rule("batching", op, "operand"))?,
                )?
                .rank()
                - 1;
            let mut attrs = p.attrs.clone();
            attrs[0] = Attr::Ints(shifted(&attr_ints(&p.attrs[0]), r));
            return one(b.prim(op, args, attrs)?);
        }
        PrimClass::Other => {}
    }
    let args = all_batched(b)?;
    let arg_rank = |b: &TraceBuilder, i: usize| -> Result<usize> {
        Ok(b.tensor(
            args[i]
                .as_value()
                .ok_or_else(|| no_rule("batching", op, "operand is not a tensor"))?,
        )?
        .rank()
            - 1)
    };
    let v = match op {
        ConvertElementType | DevicePut | Polygamma => b.prim(op, args, p.attrs.clone())?,
        BroadcastInDim => {
            let mut shape = vec![batch as i64];
            shape.extend(attr_ints(&p.attrs[0]));
            let mut bd = vec![0i64];
            bd.extend(attr_ints(&p.attrs[1]).iter().map(|d| d + 1));
            b.prim(op, args, vec![Attr::Ints(shape), Attr::Ints(bd)])?
        }
        Reshape => {
            let mut shape = vec![batch as i64];
            shape.extend(attr_ints(&p.attrs[0]));
            b.prim(op, args, vec![Attr::Ints(shape)])?
        }
        Transpose => {
            let mut perm = vec![0i64];
            perm.extend(attr_ints(&p.attrs[0]).iter().map(|d| d + 1));
            b.prim(op, args, vec![Attr::Ints(perm)])?
        }
        Slice => {
            let pre = |a: &Attr, x: i64| {
                let mut v = vec![x];
                v.extend(attr_ints(a));
                Attr::Ints(v)
            };
            b.prim(
                op,
                args,
                vec![
                    pre(&p.attrs[0], 0),
                    pre(&p.attrs[1], batch as i64),
                    pre(&p.attrs[2], 1),
                ],
            )?
        }
        Squeeze | Flip => {
            let r = arg_rank(b, 0)?;
            b.prim(
                op,
                args,
                vec![Attr::Ints(shifted(&attr_ints(&p.attrs[0]), r))],
            )?
        }
        Pad => {
            let mut config = vec![vec![0, 0, 0]];
            if let Attr::IntLists(c) = &p.attrs[1] {
                config.extend(c.iter().cloned());
            }
            b.prim(op, args, vec![p.attrs[0].clone(), Attr::IntLists(config)])?
        }
        Cat => {
            let Arg::List(l) = &args[0] else {
                return Err(no_rule("batching", op, "tensors must be a list"));
            };
            let r = b.tensor(l[0])?.rank() - 1;
            let d = match &p.attrs[0] {
                Attr::Int(d) => shifted(&[*d], r)[0],
                _ => 1,
            };
            b.prim(op, args, vec![Attr::Int(d)])?
        }
        Argmax | Argmin => {
            let r = arg_rank(b, 0)?;
            match &p.attrs[0] {
                Attr::Int(d) => b.prim(op, args, vec![Attr::Int(shifted(&[*d], r)[0])])?,
                _ => {
                    let a = args[0]
                        .as_value()
                        .ok_or_else(|| no_rule("batching", op, "operand"))?;
                    let numel: usize = b.tensor(a)?.shape.numel() / batch.max(1);
                    let flat = b.prim(Reshape, vec![a.into()], vec![ints([batch, numel])])?;
                    b.prim(op, vec![flat.into()], vec![Attr::Int(1)])?
                }
            }
        }
        TakeAlongAxis | Gather | ScatterAdd => {
            let r = arg_rank(b, 0)?;
            let d = match &p.attrs[0] {
                Attr::Int(d) => shifted(&[*d], r)[0],
                _ => 1,
            };
            b.prim(op, args, vec![Attr::Int(d)])?
        }
        Matmul => {
            // Equal ranks (>= 2) with the batch dim first, so that libtorch's batch broadcasting
            // lines the batch dims up. A 1-D operand becomes a matrix ([k] -> [1, k] on the
            // left, [k, 1] on the right) and the result loses that dim again.
            let (ra0, rb0) = (arg_rank(b, 0)?, arg_rank(b, 1)?);
            let operand = |i: usize| {
                args[i]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "operand"))
            };
            let (mut va, mut vb) = (operand(0)?, operand(1)?);
            let per_example = |b: &TraceBuilder, v: Value| -> Result<thunder_ir::Shape> {
                Ok(thunder_ir::Shape::new(
                    b.tensor(v)?.shape.sizes()[1..].to_vec(),
                ))
            };
            let want = thunder_ir::ops::prims::matmul_shape(
                "matmul",
                &per_example(b, va)?,
                &per_example(b, vb)?,
            )?;
            if ra0 == 1 {
                va = b.prim(
                    Reshape,
                    vec![va.into()],
                    vec![ints([batch, 1, b.tensor(va)?.shape.size(1)])],
                )?;
            }
            if rb0 == 1 {
                vb = b.prim(
                    Reshape,
                    vec![vb.into()],
                    vec![ints([batch, b.tensor(vb)?.shape.size(1), 1])],
                )?;
            }
            let (ra, rb) = (ra0.max(2), rb0.max(2));
            let r = ra.max(rb);
            let mut lifted = Vec::new();
            for (v, ri) in [(va, ra), (vb, rb)] {
                if ri == r {
                    lifted.push(v);
                    continue;
                }
                let s = b.tensor(v)?.shape.sizes();
                let mut shape = vec![s[0]];
                shape.extend(std::iter::repeat_n(1, r - ri));
                shape.extend(&s[1..]);
                lifted.push(b.prim(Reshape, vec![v.into()], vec![ints(shape)])?);
            }
            let y = b.prim(Matmul, vec![lifted[0].into(), lifted[1].into()], vec![])?;
            let mut shape = vec![batch];
            shape.extend(want.sizes());
            if b.tensor(y)?.shape.sizes() == shape {
                y
            } else {
                b.prim(Reshape, vec![y.into()], vec![ints(shape)])?
            }
        }
        Linear if !batched(&p.args[1]) && !batched(&p.args[2]) => b.prim(
            Linear,
            vec![args[0].clone(), plain[1].clone(), plain[2].clone()],
            vec![],
        )?,
        Embedding if !batched(&p.args[1]) => b.prim(
            Embedding,
            vec![args[0].clone(), plain[1].clone()],
            p.attrs.clone(),
        )?,
        Linear => {
            // A batched weight or bias: x w^T as a batched matmul, then the bias broadcast.
            let (x, w) = (
                args[0]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "operand"))?,
                args[1]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "weight"))?,
            );
            let xs = b.tensor(x)?.shape.sizes();
            let n_in = *xs
                .last()
                .ok_or_else(|| no_rule("batching", op, "0-d input"))?;
            let mid: Vec<usize> = xs[1..xs.len() - 1].to_vec();
            let rows: usize = mid.iter().product();
            let y = if batched(&p.args[1]) {
                let ws = b.tensor(w)?.shape.sizes();
                let (wt, n_out) = if ws.len() == 3 {
                    (
                        b.prim(Transpose, vec![w.into()], vec![ints([0, 2, 1])])?,
                        Some(ws[1]),
                    )
                } else {
                    (
                        b.prim(Reshape, vec![w.into()], vec![ints([batch, n_in, 1])])?,
                        None,
                    )
                };
                let x3 = b.prim(Reshape, vec![x.into()], vec![ints([batch, rows, n_in])])?;
                let y3 = b.prim(Matmul, vec![x3.into(), wt.into()], vec![])?;
                let mut shape = vec![batch];
                shape.extend(&mid);
                shape.extend(n_out);
                b.prim(Reshape, vec![y3.into()], vec![ints(shape)])?
            } else {
                b.prim(Linear, vec![x.into(), plain[1].clone(), Arg::None], vec![])?
            };
            match &p.args[2] {
                Arg::Value(bias) => {
                    let (bv, bt) = m[bias];
                    let ys = b.tensor(y)?.shape.sizes();
                    let rb = b.tensor(bv)?.rank();
                    let bd: Vec<usize> = if bt {
                        std::iter::once(0)
                            .chain(ys.len() + 1 - rb..ys.len())
                            .collect()
                    } else {
                        (ys.len() - rb..ys.len()).collect()
                    };
                    let bb = b.prim(BroadcastInDim, vec![bv.into()], vec![ints(&ys), ints(bd)])?;
                    b.prim(Add, vec![y.into(), bb.into()], vec![])?
                }
                _ => y,
            }
        }
        Take => {
            let a = args[0]
                .as_value()
                .ok_or_else(|| no_rule("batching", op, "operand"))?;
            let dim = match &p.attrs[0] {
                Attr::Int(d) => *d,
                _ => 0,
            };
            let r = arg_rank(b, 0)?;
            // A 0-d tensor is taken from as if it were [1].
            let a = if r == 0 {
                b.prim(Reshape, vec![a.into()], vec![ints([batch, 1])])?
            } else {
                a
            };
            let r = r.max(1);
            let dim = if dim < 0 { dim + r as i64 } else { dim } as usize;
            if !batched(&p.args[1]) {
                b.prim(
                    Take,
                    vec![a.into(), plain[1].clone()],
                    vec![Attr::Int(dim as i64 + 1)],
                )?
            } else {
                // Per-example indices: fold the batch into the indexed dim and offset each
                // example's indices by its position.
                let idx = args[1]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "index"))?;
                let kr = b.tensor(idx)?.rank() - 1;
                let (folded, n, rest) = fold_dim(b, a, dim, batch)?;
                let off = offsets(b, idx, n, batch)?;
                let k = b.tensor(off)?.shape.numel();
                let flat = b.prim(Reshape, vec![off.into()], vec![ints([k])])?;
                let t = b.prim(Take, vec![folded.into(), flat.into()], vec![Attr::Int(0)])?;
                let mut shape = b.tensor(off)?.shape.sizes();
                shape.extend(&rest);
                let t = b.prim(Reshape, vec![t.into()], vec![ints(&shape)])?;
                // [B, idx.., a[:dim].., a[dim+1:]..] -> [B, a[:dim].., idx.., a[dim+1:]..]
                let mut perm = vec![0usize];
                perm.extend(1 + kr..1 + kr + dim);
                perm.extend(1..1 + kr);
                perm.extend(1 + kr + dim..shape.len());
                b.prim(Transpose, vec![t.into()], vec![ints(perm)])?
            }
        }
        IndexAdd => {
            let (a, v) = (
                args[0]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "operand"))?,
                args[2]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "value"))?,
            );
            let r = arg_rank(b, 0)?;
            if r == 0 {
                return Err(no_rule("batching", op, "a 0-d tensor is not batched"));
            }
            let dim = match &p.attrs[0] {
                Attr::Int(d) if *d < 0 => (*d + r as i64) as usize,
                Attr::Int(d) => *d as usize,
                _ => 0,
            };
            if !batched(&p.args[1]) {
                b.prim(
                    IndexAdd,
                    vec![a.into(), plain[1].clone(), v.into()],
                    vec![Attr::Int(dim as i64 + 1)],
                )?
            } else {
                let idx = args[1]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "index"))?;
                let (fa, n, _) = fold_dim(b, a, dim, batch)?;
                let (fv, _, _) = fold_dim(b, v, dim, batch)?;
                let off = offsets(b, idx, n, batch)?;
                let k = b.tensor(off)?.shape.numel();
                let flat = b.prim(Reshape, vec![off.into()], vec![ints([k])])?;
                let s = b.prim(
                    IndexAdd,
                    vec![fa.into(), flat.into(), fv.into()],
                    vec![Attr::Int(0)],
                )?;
                unfold_dim(b, s, a, dim)?
            }
        }
        EmbeddingBackward => {
            // Per-example gradients of per-example tables: example e's rows are e * num + i of a
            // table `batch` times taller. The padding row gets no gradient: mask it first.
            let (g, idx) = (
                args[0]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "grad"))?,
                args[1]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "indices"))?,
            );
            let num = match &p.attrs[0] {
                Attr::Int(n) => *n as usize,
                _ => return Err(no_rule("batching", op, "num_weights")),
            };
            let g = match &p.attrs[1] {
                Attr::Int(pad) => {
                    let pad = if *pad < 0 { *pad + num as i64 } else { *pad };
                    crate::util::zero_where_index(b, idx.into(), pad, g)?
                }
                _ => g,
            };
            let off = offsets(b, idx, num, batch)?;
            let t = b.prim(
                EmbeddingBackward,
                vec![g.into(), off.into()],
                vec![
                    Attr::Int((num * batch) as i64),
                    Attr::None,
                    p.attrs[2].clone(),
                    p.attrs[3].clone(),
                ],
            )?;
            let d = b.tensor(t)?.shape.size(1);
            b.prim(Reshape, vec![t.into()], vec![ints([batch, num, d])])?
        }
        Embedding => {
            // A batched table: example e's rows are e * num + i of the stacked tables.
            if !matches!(p.attrs[0], Attr::None) || !matches!(p.attrs[1], Attr::None) {
                return Err(no_rule(
                    "batching",
                    op,
                    "a batched weight with padding_idx or max_norm (per-example padding rows and renormalization have no single-table form)",
                ));
            }
            let (idx, w) = (
                args[0]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "indices"))?,
                args[1]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "weight"))?,
            );
            let ws = b.tensor(w)?.shape.sizes();
            let w2 = b.prim(Reshape, vec![w.into()], vec![ints([ws[0] * ws[1], ws[2]])])?;
            let off = offsets(b, idx, ws[1], batch)?;
            b.prim(Embedding, vec![off.into(), w2.into()], p.attrs.clone())?
        }
        Copy_ => {
            if !batched(&p.args[1]) {
                return Err(TransformError::Pass {
                    pass: "vmap".into(),
                    message: "copy_ would write a batched value into a tensor that is not batched; batch copy_to too (torch.func.vmap refuses this as well)".into(),
                });
            }
            b.prim(Copy_, args, vec![])?
        }
        other => return Err(no_rule("batching", other, "not written yet")),
    };
    one(v)
}

/// `v` (batched, batch dim first) with its per-example dim `dim` folded into the batch:
/// `[B, .., n, ..]` -> `[B * n, ..]` (the other dims in order). Returns the folded tensor, `n` and
/// the other per-example sizes.
fn fold_dim(
    b: &mut TraceBuilder,
    v: Value,
    dim: usize,
    batch: usize,
) -> Result<(Value, usize, Vec<usize>)> {
    let s = b.tensor(v)?.shape.sizes();
    let mut perm = vec![0usize, dim + 1];
    perm.extend((1..s.len()).filter(|&j| j != dim + 1));
    let moved = if dim == 0 {
        v
    } else {
        b.prim(PrimOp::Transpose, vec![v.into()], vec![ints(&perm)])?
    };
    let n = s[dim + 1];
    let rest: Vec<usize> = perm[2..].iter().map(|&j| s[j]).collect();
    let mut shape = vec![batch * n];
    shape.extend(&rest);
    let folded = b.prim(PrimOp::Reshape, vec![moved.into()], vec![ints(shape)])?;
    Ok((folded, n, rest))
}

/// The inverse of [`fold_dim`]: `folded` back to the shape and dim order of `like`.
fn unfold_dim(b: &mut TraceBuilder, folded: Value, like: Value, dim: usize) -> Result<Value> {
    let s = b.tensor(like)?.shape.sizes();
    let mut perm = vec![0usize, dim + 1];
    perm.extend((1..s.len()).filter(|&j| j != dim + 1));
    let moved_shape: Vec<usize> = perm.iter().map(|&j| s[j]).collect();
    let r = b.prim(
        PrimOp::Reshape,
        vec![folded.into()],
        vec![ints(moved_shape)],
    )?;
    if dim == 0 {
        return Ok(r);
    }
    let mut inv = vec![0usize; perm.len()];
    for (i, &d) in perm.iter().enumerate() {
        inv[d] = i;
    }
    Ok(b.prim(PrimOp::Transpose, vec![r.into()], vec![ints(inv)])?)
}

/// Per-example indices (`idx`, batched, into a dim of size `n`) made global for the folded dim
/// of [`fold_dim`]: negative indices wrapped, then example `e`'s shifted by `e * n`.
fn offsets(b: &mut TraceBuilder, idx: Value, n: usize, batch: usize) -> Result<Value> {
    use PrimOp::*;
    let t = b.tensor(idx)?.clone();
    let neg = b.prim(Lt, vec![idx.into(), Arg::Int(0)], vec![])?;
    let wrapped = b.prim(Add, vec![idx.into(), Arg::Int(n as i64)], vec![])?;
    let idx = b.prim(Where, vec![neg.into(), wrapped.into(), idx.into()], vec![])?;
    let base = b.prim(
        Iota,
        vec![],
        vec![
            Attr::Int(batch as i64),
            Attr::Int(0),
            Attr::Int(n as i64),
            Attr::Device(t.device),
            Attr::DType(t.dtype),
        ],
    )?;
    let base = b.prim(
        BroadcastInDim,
        vec![base.into()],
        vec![ints(t.shape.sizes()), ints([0usize])],
    )?;
    Ok(b.prim(Add, vec![idx.into(), base.into()], vec![])?)
}
