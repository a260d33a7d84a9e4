//! Indexing: `take`, `take_along_axis`, `gather` (reads at indices) and `index_add`,
//! `scatter_add` (accumulations at indices).
//!
//! - VJP: a read scatters the cotangent back into zeros (`take` with `index_add`, the others with
//!   `scatter_add`); an accumulation passes it to its operand and gathers it for the value.
//! - JVP: linear in the tensors indexed: the same op on the tangents.
//! - Batching: the dim moved past the batch dim; per-example indices are made global by folding
//!   the batch into the indexed dim.

use super::context::{fold_dim, not_written, offsets, shifted, unfold_dim, Batch, Jvp, Vjp};
use crate::util::{ints, zeros};
use crate::Result;
use thunder_ir::{Arg, Attr, PrimOp, TraceBuilder, Value};

/// The VJP rule of an indexing prim.
pub(super) fn vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (p, g, trace) = (cx.p, cx.g, cx.trace);
    let mut out = Vec::new();
    match cx.op {
        Take => {
            if let Some(x) = cx.orig(0) {
                out.push((x, take_vjp(b, cx)?));
            }
        }
        TakeAlongAxis | Gather => {
            if cx.orig(0).is_some() {
                let a = cx.meta(0, "operand is not a tensor")?;
                let zeros = zeros(b, &a)?;
                let gx = b.prim(
                    ScatterAdd,
                    vec![zeros.into(), cx.arg(1), g.into()],
                    vec![p.attrs[0].clone()],
                )?;
                cx.push(&mut out, 0, gx);
            }
        }
        IndexAdd => {
            cx.push(&mut out, 0, g);
            if cx.orig(2).is_some() {
                let gv = b.prim(Take, vec![g.into(), cx.arg(1)], vec![p.attrs[0].clone()])?;
                cx.push(&mut out, 2, gv);
            }
        }
        ScatterAdd => {
            cx.push(&mut out, 0, g);
            if let Some(v) = cx.orig(2) {
                // The value's entries that the index covers get the gathered gradient, the rest
                // zero (PyTorch's own backward fails when the index is smaller than the value).
                let gv = b.prim(Gather, vec![g.into(), cx.arg(1)], vec![p.attrs[0].clone()])?;
                let have = b.tensor(gv)?.shape.sizes();
                let want = trace.tensor(v).map(|t| t.shape.sizes()).unwrap_or_default();
                let gv = if have == want {
                    gv
                } else {
                    let config = have
                        .iter()
                        .zip(&want)
                        .map(|(&h, &w)| vec![0, w as i64 - h as i64, 0])
                        .collect();
                    b.prim(
                        Pad,
                        vec![gv.into()],
                        vec![Attr::Float(0.0), Attr::IntLists(config)],
                    )?
                };
                out.push((v, gv));
            }
        }
        other => return Err(not_written("VJP", other)),
    }
    Ok(out)
}

/// `take`: the cotangent added back into zeros at the indices.
fn take_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Value> {
    use PrimOp::*;
    let g = cx.g;
    let a = cx.meta(0, "operand is not a tensor")?;
    let idx = cx.meta(1, "index is not a tensor")?;
    Ok(if a.rank() == 0 {
        // Every index picks the one element.
        let s = b.prim(Sum, vec![g.into()], vec![ints(0..idx.rank())])?;
        b.prim(Reshape, vec![s.into()], vec![ints([0usize; 0])])?
    } else {
        let dim = match &cx.p.attrs[0] {
            Attr::Int(d) if *d < 0 => (*d + a.rank() as i64) as usize,
            Attr::Int(d) => *d as usize,
            _ => 0,
        };
        // A 0-d index took one slice and dropped the dim: put it back as size 1.
        let k = idx.shape.numel();
        let mut gshape = a.shape.sizes();
        gshape[dim] = k;
        let g1 = b.prim(Reshape, vec![g.into()], vec![ints(&gshape)])?;
        let i1 = b.prim(Reshape, vec![cx.arg(1)], vec![ints([k])])?;
        let zeros = zeros(b, &a)?;
        b.prim(
            IndexAdd,
            vec![zeros.into(), i1.into(), g1.into()],
            vec![Attr::Int(dim as i64)],
        )?
    })
}

/// The JVP rule of an indexing prim: the same op on the tangents.
pub(super) fn jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    use PrimOp::*;
    match cx.op {
        Take | TakeAlongAxis | Gather => cx.same_on_tangent(b, 0),
        IndexAdd | ScatterAdd => {
            let ta = cx.dz(b, 0)?;
            let tv = cx.dz(b, 2)?;
            Ok(b.prim(
                cx.op,
                vec![ta.into(), cx.arg(1), tv.into()],
                cx.p.attrs.clone(),
            )?)
        }
        other => Err(not_written("JVP", other)),
    }
}

/// The batching rule of an indexing prim.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    use PrimOp::*;
    let args = cx.all_batched(b)?;
    match cx.op {
        TakeAlongAxis | Gather | ScatterAdd => {
            let r = cx.rank(b, &args, 0)?;
            let d = match &cx.p.attrs[0] {
                Attr::Int(d) => shifted(&[*d], r)[0],
                _ => 1,
            };
            Ok(b.prim(cx.op, args, vec![Attr::Int(d)])?)
        }
        Take => take_vmap(b, cx, &args),
        IndexAdd => index_add_vmap(b, cx, &args),
        other => Err(not_written("batching", other)),
    }
}

/// `take` over a batch: shared indices take along the shifted dim; per-example ones from the
/// batch folded into the indexed dim.
fn take_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    use PrimOp::*;
    let (p, batch) = (cx.p, cx.batch);
    let a = cx.value(args, 0, "operand")?;
    let dim = match &p.attrs[0] {
        Attr::Int(d) => *d,
        _ => 0,
    };
    let r = cx.rank(b, args, 0)?;
    // A 0-d tensor is taken from as if it were [1].
    let a = if r == 0 {
        b.prim(Reshape, vec![a.into()], vec![ints([batch, 1])])?
    } else {
        a
    };
    let r = r.max(1);
    let dim = if dim < 0 { dim + r as i64 } else { dim } as usize;
    if !cx.batched(&p.args[1]) {
        return Ok(b.prim(
            Take,
            vec![a.into(), cx.plain[1].clone()],
            vec![Attr::Int(dim as i64 + 1)],
        )?);
    }
    // Per-example indices: fold the batch into the indexed dim and offset each example's
    // indices by its position.
    let idx = cx.value(args, 1, "index")?;
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
    Ok(b.prim(Transpose, vec![t.into()], vec![ints(perm)])?)
}

/// `index_add` over a batch: shared indices add along the shifted dim; per-example ones into the
/// batch folded into the indexed dim.
fn index_add_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    use PrimOp::*;
    let (p, batch) = (cx.p, cx.batch);
    let (a, v) = (cx.value(args, 0, "operand")?, cx.value(args, 2, "value")?);
    let r = cx.rank(b, args, 0)?;
    if r == 0 {
        return Err(cx.no_rule("a 0-d tensor is not batched"));
    }
    let dim = match &p.attrs[0] {
        Attr::Int(d) if *d < 0 => (*d + r as i64) as usize,
        Attr::Int(d) => *d as usize,
        _ => 0,
    };
    if !cx.batched(&p.args[1]) {
        return Ok(b.prim(
            IndexAdd,
            vec![a.into(), cx.plain[1].clone(), v.into()],
            vec![Attr::Int(dim as i64 + 1)],
        )?);
    }
    let idx = cx.value(args, 1, "index")?;
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
    unfold_dim(b, s, a, dim)
}
