//! Shapes, views, layout and placement: `broadcast_in_dim`, `reshape`, `transpose`, `slice`,
//! `squeeze`, `cat`, `pad`, `flip`, `device_put`.
//!
//! - VJP: the adjoint layout op: a broadcast sums the cotangent over the dims it added or
//!   expanded, a slice pads it back with zeros, a pad slices it out, `cat` slices each part,
//!   `transpose` applies the inverse permutation.
//! - JVP: every one of them is linear: the same op on the tangent (`cat` of the tangents, zeros for
//!   parts without one; `pad` with zeros).
//! - Batching: the attributes moved past the batch dim (a leading batch size, dim or padding).

use super::context::{attr_ints, not_written, shifted, Batch, Jvp, Vjp};
use crate::util::{ints, zeros};
use crate::Result;
use thunder_ir::{Arg, Attr, PrimOp, TensorMeta, TraceBuilder, Value};

/// The VJP rule of a shape prim.
pub(super) fn vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (op, p, g, trace) = (cx.op, cx.p, cx.g, cx.trace);
    if op == Cat {
        return cat_vjp(b, cx);
    }
    // The others have one tensor operand, which gets the whole cotangent.
    if !op.info().vjp {
        return Err(not_written("VJP", op));
    }
    let Some(x) = cx.orig(0) else {
        return Ok(Vec::new());
    };
    let gx = match op {
        BroadcastInDim => broadcast_vjp(b, cx, x)?,
        Reshape | Squeeze => {
            let shape = trace.tensor(x).map(|t| t.shape.sizes()).unwrap_or_default();
            b.prim(Reshape, vec![g.into()], vec![ints(&shape)])?
        }
        Transpose => {
            let perm: Vec<usize> = match &p.attrs[0] {
                Attr::Ints(v) => v.iter().map(|&d| d as usize).collect(),
                _ => return Err(cx.no_rule("bad permutation")),
            };
            let mut inv = vec![0usize; perm.len()];
            for (i, &d) in perm.iter().enumerate() {
                inv[d] = i;
            }
            b.prim(Transpose, vec![g.into()], vec![ints(&inv)])?
        }
        Slice => slice_vjp(b, cx)?,
        Flip => b.prim(Flip, vec![g.into()], vec![p.attrs[0].clone()])?,
        DevicePut => {
            let dev = trace
                .tensor(x)
                .map(|t| t.device)
                .unwrap_or(thunder_ir::Device::Cpu);
            b.prim(DevicePut, vec![g.into()], vec![Attr::Device(dev)])?
        }
        Pad => {
            let a = cx.meta(0, "operand is not a tensor")?;
            let config = match &p.attrs[1] {
                Attr::IntLists(c) => c.clone(),
                _ => return Err(cx.no_rule("bad padding_config")),
            };
            pad_vjp(b, g, &a, &config)?
        }
        other => return Err(not_written("VJP", other)),
    };
    Ok(vec![(x, gx)])
}

/// `broadcast_in_dim`: the cotangent summed over the dims the broadcast added or expanded, then
/// reshaped to the operand `x`.
fn broadcast_vjp(b: &mut TraceBuilder, cx: &Vjp, x: Value) -> Result<Value> {
    use PrimOp::*;
    let a = cx
        .trace
        .tensor(x)
        .cloned()
        .ok_or_else(|| cx.no_rule("operand is not a tensor"))?;
    let shape = b.tensor(cx.y)?.shape.clone();
    let bdims: Vec<usize> = match &cx.p.attrs[1] {
        Attr::Ints(v) => v.iter().map(|&d| d as usize).collect(),
        _ => return Err(cx.no_rule("bad broadcast_dimensions")),
    };
    let mut reduce: Vec<usize> = (0..shape.rank()).filter(|d| !bdims.contains(d)).collect();
    for (i, &d) in bdims.iter().enumerate() {
        if a.shape.size(i) == 1 && shape.size(d) != 1 {
            reduce.push(d);
        }
    }
    reduce.sort_unstable();
    let s = b.prim(Sum, vec![cx.g.into()], vec![ints(&reduce)])?;
    Ok(b.prim(Reshape, vec![s.into()], vec![ints(a.shape.sizes())])?)
}

/// `slice`: the cotangent scattered back with zeros: padded in each dim by `start` below, the
/// rest above, and `stride - 1` between elements.
fn slice_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Value> {
    let a = cx.meta(0, "operand is not a tensor")?;
    let attr = |i: usize| match &cx.p.attrs[i] {
        Attr::Ints(v) => v.clone(),
        _ => Vec::new(),
    };
    let (start, strides) = (attr(0), attr(2));
    let out_shape = b.tensor(cx.y)?.shape.clone();
    let config: Vec<Vec<i64>> = (0..a.rank())
        .map(|d| {
            let (size, n, s) = (a.shape.size(d) as i64, out_shape.size(d) as i64, strides[d]);
            let last = if n == 0 {
                start[d] - 1
            } else {
                start[d] + (n - 1) * s
            };
            vec![start[d], size - last - 1, s - 1]
        })
        .collect();
    Ok(b.prim(
        PrimOp::Pad,
        vec![cx.g.into()],
        vec![Attr::Float(0.0), Attr::IntLists(config)],
    )?)
}

/// `cat`: each part's slice of the cotangent.
fn cat_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    let (p, g) = (cx.p, cx.g);
    let Arg::List(parts) = &p.args[0] else {
        return Err(cx.no_rule("tensors must be a list"));
    };
    let dim = match &p.attrs[0] {
        Attr::Int(d) => *d,
        _ => 0,
    };
    let gshape = b.tensor(g)?.shape.sizes();
    let d = if dim < 0 {
        (dim + gshape.len() as i64) as usize
    } else {
        dim as usize
    };
    let mut out = Vec::new();
    let mut offset = 0usize;
    for &x in parts {
        let size = cx.trace.tensor(x).map(|t| t.shape.size(d)).unwrap_or(0);
        let mut st = vec![0i64; gshape.len()];
        let mut en: Vec<i64> = gshape.iter().map(|&s| s as i64).collect();
        st[d] = offset as i64;
        en[d] = (offset + size) as i64;
        let gx = b.prim(
            PrimOp::Slice,
            vec![g.into()],
            vec![
                Attr::Ints(st),
                Attr::Ints(en),
                Attr::Ints(vec![1; gshape.len()]),
            ],
        )?;
        out.push((x, gx));
        offset += size;
    }
    Ok(out)
}

/// The VJP of `pad(a, config)`: undo the low/high padding (negative padding cropped `a`, so the
/// cropped elements get zeros back) and take every `interior + 1`-th element.
fn pad_vjp(b: &mut TraceBuilder, g: Value, a: &TensorMeta, config: &[Vec<i64>]) -> Result<Value> {
    use PrimOp::*;
    if a.shape.numel() == 0 {
        return zeros(b, a);
    }
    let mut v = g;
    if config.iter().any(|c| c[0] != 0 || c[1] != 0) {
        let undo: Vec<Vec<i64>> = config.iter().map(|c| vec![-c[0], -c[1], 0]).collect();
        v = b.prim(
            Pad,
            vec![v.into()],
            vec![Attr::Float(0.0), Attr::IntLists(undo)],
        )?;
    }
    if config.iter().any(|c| c[2] != 0) {
        let sizes = b.tensor(v)?.shape.sizes();
        v = b.prim(
            Slice,
            vec![v.into()],
            vec![
                Attr::Ints(vec![0; sizes.len()]),
                Attr::Ints(sizes.iter().map(|&s| s as i64).collect()),
                Attr::Ints(config.iter().map(|c| c[2] + 1).collect()),
            ],
        )?;
    }
    Ok(v)
}

/// The JVP rule of a shape prim: the same op on the tangent.
pub(super) fn jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    use PrimOp::*;
    match cx.op {
        BroadcastInDim | Reshape | Transpose | Slice | Squeeze | Flip | DevicePut => {
            cx.same_on_tangent(b, 0)
        }
        Pad => {
            let t = cx.dz(b, 0)?;
            Ok(b.prim(
                Pad,
                vec![t.into()],
                vec![Attr::Float(0.0), cx.p.attrs[1].clone()],
            )?)
        }
        Cat => {
            let Arg::List(parts) = &cx.p.args[0] else {
                return Err(cx.no_rule("tensors must be a list"));
            };
            let mut ts = Vec::with_capacity(parts.len());
            for &x in parts {
                ts.push(match cx.tan.get(&x) {
                    Some(&t) => t,
                    None => zeros(
                        b,
                        &cx.trace
                            .tensor(x)
                            .cloned()
                            .ok_or_else(|| cx.no_rule("not a tensor"))?,
                    )?,
                });
            }
            Ok(b.prim(Cat, vec![Arg::List(ts)], cx.p.attrs.clone())?)
        }
        other => Err(not_written("JVP", other)),
    }
}

/// The batching rule of a shape prim.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    use PrimOp::*;
    let (op, p, batch) = (cx.op, cx.p, cx.batch);
    let args = cx.all_batched(b)?;
    // `a`'s ints after `x`.
    let pre = |a: &Attr, x: i64| {
        let mut v = vec![x];
        v.extend(attr_ints(a));
        Attr::Ints(v)
    };
    Ok(match op {
        DevicePut => b.prim(op, args, p.attrs.clone())?,
        BroadcastInDim => {
            let mut bd = vec![0i64];
            bd.extend(attr_ints(&p.attrs[1]).iter().map(|d| d + 1));
            b.prim(
                op,
                args,
                vec![pre(&p.attrs[0], batch as i64), Attr::Ints(bd)],
            )?
        }
        Reshape => b.prim(op, args, vec![pre(&p.attrs[0], batch as i64)])?,
        Transpose => {
            let mut perm = vec![0i64];
            perm.extend(attr_ints(&p.attrs[0]).iter().map(|d| d + 1));
            b.prim(op, args, vec![Attr::Ints(perm)])?
        }
        Slice => b.prim(
            op,
            args,
            vec![
                pre(&p.attrs[0], 0),
                pre(&p.attrs[1], batch as i64),
                pre(&p.attrs[2], 1),
            ],
        )?,
        Squeeze | Flip => {
            let r = cx.rank(b, &args, 0)?;
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
                return Err(cx.no_rule("tensors must be a list"));
            };
            let r = b.tensor(l[0])?.rank() - 1;
            let d = match &p.attrs[0] {
                Attr::Int(d) => shifted(&[*d], r)[0],
                _ => 1,
            };
            b.prim(op, args, vec![Attr::Int(d)])?
        }
        other => return Err(not_written("batching", other)),
    })
}
