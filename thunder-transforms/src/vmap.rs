//! vmap: a trace over one example gives a trace over a batch of them, like `torch.func.vmap`.
//!
//! Batched inputs may carry the batch dim anywhere (`in_dims`); inside, every batched value keeps
//! it first, and outputs have it first (`out_dims = 0`). Unbatched values stay unbatched until an op
//! mixes them with batched ones. Each prim has a batching rule; a prim without one (or a case a rule
//! does not handle) is a typed error naming it.

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

/// `trace` over a batch of `batch` examples. `in_dims[i]` is where input `i` carries the batch dim
/// (`None`: the input is shared by every example). Outputs carry the batch dim first.
pub fn vmap(trace: &Trace, in_dims: &[Option<usize>], batch: usize) -> Result<Trace> {
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
        let outs = rule(&mut b, op, p, &m, batch)?;
        for (o, v) in p.outputs.iter().zip(outs) {
            m.insert(*o, v);
        }
    }
    let mut outputs = Vec::with_capacity(trace.outputs.len());
    for o in &trace.outputs {
        let (v, batched) = m[o];
        outputs.push(if batched {
            v
        } else {
            batched_copy(&mut b, v, batch)?
        });
    }
    Ok(b.build(&outputs)?)
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
        ConvertElementType | DevicePut => b.prim(op, args, p.attrs.clone())?,
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
        TakeAlongAxis | Gather => {
            let r = arg_rank(b, 0)?;
            let d = match &p.attrs[0] {
                Attr::Int(d) => shifted(&[*d], r)[0],
                _ => 1,
            };
            b.prim(op, args, vec![Attr::Int(d)])?
        }
        Matmul => {
            // Equal ranks (>= 2) with the batch dim first, so that libtorch's batch broadcasting
            // lines the batch dims up.
            let (ra, rb) = (arg_rank(b, 0)?, arg_rank(b, 1)?);
            if ra < 2 || rb < 2 {
                return Err(no_rule("batching", op, "1-D operands are not batched yet"));
            }
            let r = ra.max(rb);
            let mut lifted = Vec::new();
            for (i, ri) in [(0, ra), (1, rb)] {
                let v = args[i]
                    .as_value()
                    .ok_or_else(|| no_rule("batching", op, "operand"))?;
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
            b.prim(Matmul, vec![lifted[0].into(), lifted[1].into()], vec![])?
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
        other => return Err(no_rule("batching", other, "not written yet")),
    };
    one(v)
}
