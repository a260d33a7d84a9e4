//! Reductions: `sum`, `amax`, `amin`, `prod`, `var` (over `dims`) and `argmax`, `argmin`.
//!
//! - VJP: the cotangent broadcast back over the reduced dims, times the local derivative: 1 for
//!   `sum`, the extrema's share for `amax`/`amin` (split evenly on ties, as in PyTorch), the
//!   product of the other elements for `prod` (zeros handled without dividing by them),
//!   `2 (a - mean) / (N - correction)` for `var`. `argmax`/`argmin` have none (integer results).
//! - JVP: `sum` of the tangent; the others from the same local derivatives.
//! - Batching: the reduced dims shifted past the batch dim; `argmax`/`argmin` over every dim
//!   reduce each example flattened.

use super::context::{
    attr_ints, kept_dims, not_written, p2, reduced_dims, shifted, Batch, Jvp, Vjp,
};
use crate::util::ints;
use crate::Result;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, PrimOp, TensorMeta, TraceBuilder, Value};

/// The VJP rule of a reduction.
pub(super) fn vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let op = cx.op;
    // Those with a rule (not argmax, argmin) have one tensor operand.
    if !op.info().vjp {
        return Err(not_written("VJP", op));
    }
    let Some(x) = cx.orig(0) else {
        return Ok(Vec::new());
    };
    let a = cx.meta(0, "operand is not a tensor")?;
    let dims = reduced_dims(&cx.p.attrs[0], a.rank());
    let kept = kept_dims(a.rank(), &dims);
    // `v`, reduced over `dims`, broadcast back to the operand's shape.
    let full = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
        Ok(b.prim(
            BroadcastInDim,
            vec![v.into()],
            vec![ints(a.shape.sizes()), ints(&kept)],
        )?)
    };
    let gx = match op {
        Sum => full(b, cx.g)?,
        Amax | Amin => {
            // The gradient is split evenly among the extrema, as in PyTorch.
            let yb = full(b, cx.y)?;
            let is_extremum = p2(b, Eq, cx.arg(0), yb)?;
            let mask = b.prim(
                ConvertElementType,
                vec![is_extremum.into()],
                vec![Attr::DType(a.dtype)],
            )?;
            let count = b.prim(Sum, vec![mask.into()], vec![ints(&dims)])?;
            let share = p2(b, Div, cx.g, count)?;
            let shared = full(b, share)?;
            p2(b, Mul, shared, mask)?
        }
        Var => {
            // 2 (a - mean) / (N - correction)
            let n: usize = dims.iter().map(|&d| a.shape.size(d)).product();
            let s = b.prim(Sum, vec![cx.arg(0)], vec![ints(&dims)])?;
            let mean = p2(b, Div, s, Arg::Float(n as f64))?;
            let mb = full(b, mean)?;
            let c = p2(b, Sub, cx.arg(0), mb)?;
            let gb = full(b, cx.g)?;
            let t = p2(b, Mul, gb, c)?;
            let scale = 2.0 / (n as f64 - correction(&cx.p.attrs[1]));
            p2(b, Mul, t, Arg::Float(scale))?
        }
        Prod => {
            let d = prod_partials(b, cx.arg(0), &a, &dims)?;
            let gb = full(b, cx.g)?;
            p2(b, Mul, gb, d)?
        }
        other => return Err(not_written("VJP", other)),
    };
    Ok(vec![(x, gx)])
}

/// `var`'s correction attribute.
fn correction(a: &Attr) -> f64 {
    match a {
        Attr::Float(c) => *c,
        Attr::Int(c) => *c as f64,
        _ => 0.0,
    }
}

/// The partial derivatives of `prod(a, dims)` with respect to each element of `a`, with `a`'s
/// shape: the product of the other elements of its reduction group. Zeros are handled without
/// dividing by them: with no zero in the group it is `prod / a`; with one zero, the product of the
/// non-zeros at the zero and 0 elsewhere; with two or more, 0 everywhere.
fn prod_partials(b: &mut TraceBuilder, a: Arg, meta: &TensorMeta, dims: &[usize]) -> Result<Value> {
    use PrimOp::*;
    let kept = kept_dims(meta.rank(), dims);
    let full = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
        Ok(b.prim(
            BroadcastInDim,
            vec![v.into()],
            vec![ints(meta.shape.sizes()), ints(&kept)],
        )?)
    };
    let is0 = b.prim(Eq, vec![a.clone(), Arg::Float(0.0)], vec![])?;
    let a1 = b.prim(Where, vec![is0.into(), Arg::Float(1.0), a], vec![])?;
    let p_nz = b.prim(Prod, vec![a1.into()], vec![ints(dims)])?;
    let p_nz = full(b, p_nz)?;
    let zf = b.prim(
        ConvertElementType,
        vec![is0.into()],
        vec![Attr::DType(meta.dtype)],
    )?;
    let count = b.prim(Sum, vec![zf.into()], vec![ints(dims)])?;
    let count = full(b, count)?;
    let none = b.prim(Eq, vec![count.into(), Arg::Float(0.0)], vec![])?;
    let one = b.prim(Eq, vec![count.into(), Arg::Float(1.0)], vec![])?;
    let at_zero = b.prim(
        Where,
        vec![one.into(), p_nz.into(), Arg::Float(0.0)],
        vec![],
    )?;
    let q = b.prim(Div, vec![p_nz.into(), a1.into()], vec![])?;
    let elsewhere = b.prim(Where, vec![none.into(), q.into(), Arg::Float(0.0)], vec![])?;
    Ok(b.prim(
        Where,
        vec![is0.into(), at_zero.into(), elsewhere.into()],
        vec![],
    )?)
}

/// The JVP rule of a reduction.
pub(super) fn jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    use PrimOp::*;
    let op = cx.op;
    match op {
        Sum => return cx.same_on_tangent(b, 0),
        Prod | Amax | Amin | Var => {}
        other => return Err(not_written("JVP", other)),
    }
    let a = cx.meta(0)?;
    let dims = reduced_dims(&cx.p.attrs[0], a.rank());
    if op == Prod {
        let d = prod_partials(b, cx.arg(0), &a, &dims)?;
        let t = cx.dz(b, 0)?;
        let td = p2(b, Mul, t, d)?;
        return Ok(b.prim(Sum, vec![td.into()], vec![ints(&dims)])?);
    }
    let kept = kept_dims(a.rank(), &dims);
    let full = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
        Ok(b.prim(
            BroadcastInDim,
            vec![v.into()],
            vec![ints(a.shape.sizes()), ints(&kept)],
        )?)
    };
    let t = cx.dz(b, 0)?;
    if op == Var {
        // 2 / (N - correction) * sum((a - mean) * t)
        let n: usize = dims.iter().map(|&d| a.shape.size(d)).product();
        let correction = correction(&cx.p.attrs[1]);
        let s = b.prim(Sum, vec![cx.arg(0)], vec![ints(&dims)])?;
        let mean = p2(b, Div, s, Arg::Float(n as f64))?;
        let mb = full(b, mean)?;
        let c = p2(b, Sub, cx.arg(0), mb)?;
        let ct = p2(b, Mul, c, t)?;
        let st = b.prim(Sum, vec![ct.into()], vec![ints(&dims)])?;
        p2(b, Mul, st, Arg::Float(2.0 / (n as f64 - correction)))
    } else {
        // The mean of the tangent over the extrema (PyTorch splits ties evenly).
        let yb = full(b, cx.y)?;
        let is_ext = p2(b, Eq, cx.arg(0), yb)?;
        let mask = b.prim(
            ConvertElementType,
            vec![is_ext.into()],
            vec![Attr::DType(a.dtype)],
        )?;
        let count = b.prim(Sum, vec![mask.into()], vec![ints(&dims)])?;
        let mt = p2(b, Mul, mask, t)?;
        let st = b.prim(Sum, vec![mt.into()], vec![ints(&dims)])?;
        p2(b, Div, st, count)
    }
}

/// The batching rule of a reduction.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    let (op, p, batch) = (cx.op, cx.p, cx.batch);
    let args = cx.all_batched(b)?;
    if op.class() == PrimClass::Reduction {
        let r = b.tensor(cx.value(&args, 0, "operand")?)?.rank() - 1;
        let mut attrs = p.attrs.clone();
        attrs[0] = Attr::Ints(shifted(&attr_ints(&p.attrs[0]), r));
        return Ok(b.prim(op, args, attrs)?);
    }
    match op {
        PrimOp::Argmax | PrimOp::Argmin => {
            let r = cx.rank(b, &args, 0)?;
            match &p.attrs[0] {
                Attr::Int(d) => Ok(b.prim(op, args, vec![Attr::Int(shifted(&[*d], r)[0])])?),
                _ => {
                    let a = cx.value(&args, 0, "operand")?;
                    let numel: usize = b.tensor(a)?.shape.numel() / batch.max(1);
                    let flat =
                        b.prim(PrimOp::Reshape, vec![a.into()], vec![ints([batch, numel])])?;
                    Ok(b.prim(op, vec![flat.into()], vec![Attr::Int(1)])?)
                }
            }
        }
        other => Err(not_written("batching", other)),
    }
}
