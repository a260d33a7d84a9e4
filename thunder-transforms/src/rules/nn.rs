//! Neural-network prims: `matmul`, `linear`, `embedding` and its backward, `embedding_backward`.
//!
//! - VJP: matrix products multiply the cotangent by the other operand transposed (1-D operands as
//!   matrices, broadcast batch dims summed away); `embedding` scatters the rows' cotangents with
//!   `embedding_backward`, which is linear in what it scatters: its VJP gathers them back.
//! - JVP: bilinear: one product per operand with a tangent, summed.
//! - Batching: batched matmuls with the batch dim first; a batched weight or table is folded into
//!   one bigger operand.

use super::context::{not_written, offsets, p2, Batch, Jvp, Vjp};
use crate::util::{ints, plain_embedding_attrs, zero_where_index};
use crate::Result;
use thunder_ir::{Arg, Attr, PrimOp, Shape, TraceBuilder, Value};

/// The VJP rule of an nn prim.
pub(super) fn vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    match cx.op {
        Matmul => matmul_vjp(b, cx),
        Linear => linear_vjp(b, cx),
        Embedding => {
            let mut out = Vec::new();
            if cx.orig(1).is_some() {
                let w = cx.meta(1, "weight is not a tensor")?;
                let attrs = vec![
                    Attr::Int(w.shape.size(0) as i64),
                    cx.p.attrs[0].clone(),
                    cx.p.attrs[3].clone(),
                    cx.p.attrs[4].clone(),
                ];
                let gw = b.prim(EmbeddingBackward, vec![cx.g.into(), cx.arg(0)], attrs)?;
                cx.push(&mut out, 1, gw);
            }
            Ok(out)
        }
        EmbeddingBackward => embedding_backward_vjp(b, cx),
        other => Err(not_written("VJP", other)),
    }
}

/// The operands of a matrix product as they are in the original trace.
fn operands(cx: &Vjp) -> Result<(thunder_ir::TensorMeta, thunder_ir::TensorMeta)> {
    let meta = |i: usize| {
        cx.p.args[i]
            .as_value()
            .and_then(|v| cx.trace.tensor(v))
            .cloned()
    };
    match (meta(0), meta(1)) {
        (Some(ta), Some(tb)) => Ok((ta, tb)),
        _ => Err(cx.no_rule("operands are not tensors")),
    }
}

/// `matmul`: `g b^T` for `a`, `a^T g` for `b`.
fn matmul_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (p, g, m) = (cx.p, cx.g, cx.m);
    let (ta, tb) = operands(cx)?;
    let mut out = Vec::new();
    // 1-D operands become matrices ([k] -> [1, k] on the left, [k, 1] on the right), the
    // gradient gets the dims the result dropped, and broadcast batch dims are summed away.
    let (ra, rb) = (ta.rank(), tb.rank());
    let a_mat: Vec<usize> = if ra == 1 {
        vec![1, ta.shape.size(0)]
    } else {
        ta.shape.sizes()
    };
    let b_mat: Vec<usize> = if rb == 1 {
        vec![tb.shape.size(0), 1]
    } else {
        tb.shape.sizes()
    };
    let a1 = if ra == 1 {
        b.prim(Reshape, vec![cx.arg(0)], vec![ints(&a_mat)])?
    } else {
        m[&p.args[0].as_value().unwrap_or(p.outputs[0])]
    };
    let b1 = if rb == 1 {
        b.prim(Reshape, vec![cx.arg(1)], vec![ints(&b_mat)])?
    } else {
        m[&p.args[1].as_value().unwrap_or(p.outputs[0])]
    };
    let full_out = thunder_ir::ops::prims::matmul_shape(
        "grad",
        &Shape::new(a_mat.clone()),
        &Shape::new(b_mat.clone()),
    )?;
    let g1 = b.prim(Reshape, vec![g.into()], vec![ints(full_out.sizes())])?;
    // The last two dims swapped.
    let t = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
        let r = b.tensor(v)?.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 1, r - 2);
        Ok(b.prim(Transpose, vec![v.into()], vec![ints(&perm)])?)
    };
    if cx.orig(0).is_some() {
        let bt = t(b, b1)?;
        let full = p2(b, Matmul, g1, bt)?;
        let ga = reduce_to(b, full, &a_mat)?;
        let ga = b.prim(Reshape, vec![ga.into()], vec![ints(ta.shape.sizes())])?;
        cx.push(&mut out, 0, ga);
    }
    if cx.orig(1).is_some() {
        let at = t(b, a1)?;
        let full = p2(b, Matmul, at, g1)?;
        let gb = reduce_to(b, full, &b_mat)?;
        let gb = b.prim(Reshape, vec![gb.into()], vec![ints(tb.shape.sizes())])?;
        cx.push(&mut out, 1, gb);
    }
    Ok(out)
}

/// `linear`: `y = a w^T (+ bias)`.
fn linear_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (p, g, m) = (cx.p, cx.g, cx.m);
    let (ta, tw) = operands(cx)?;
    let mut out = Vec::new();
    // A 1-D weight is a [1, in] matrix whose output dim was dropped.
    let n_in = tw.shape.size(tw.rank() - 1);
    let n_out = if tw.rank() == 2 { tw.shape.size(0) } else { 1 };
    let rows: usize = ta.shape.sizes()[..ta.rank() - 1].iter().product();
    let w2 = if tw.rank() == 1 {
        b.prim(Reshape, vec![cx.arg(1)], vec![ints([1, n_in])])?
    } else {
        m[&p.args[1].as_value().unwrap_or(p.outputs[0])]
    };
    let mut g_full = ta.shape.sizes();
    g_full.pop();
    g_full.push(n_out);
    let g2 = b.prim(Reshape, vec![g.into()], vec![ints(&g_full)])?;
    if cx.orig(0).is_some() {
        let ga = p2(b, Matmul, g2, w2)?;
        cx.push(&mut out, 0, ga);
    }
    if cx.orig(1).is_some() {
        let gr = b.prim(Reshape, vec![g2.into()], vec![ints([rows, n_out])])?;
        let a2 = b.prim(Reshape, vec![cx.arg(0)], vec![ints([rows, n_in])])?;
        let grt = b.prim(Transpose, vec![gr.into()], vec![ints([1, 0])])?;
        let gw = p2(b, Matmul, grt, a2)?;
        let gw = b.prim(Reshape, vec![gw.into()], vec![ints(tw.shape.sizes())])?;
        cx.push(&mut out, 1, gw);
    }
    if let Some(bias) = cx.orig(2) {
        let shape = cx
            .trace
            .tensor(bias)
            .map(|t| t.shape.sizes())
            .unwrap_or_default();
        out.push((bias, reduce_to(b, g, &shape)?));
    }
    Ok(out)
}

/// Sums `v` over the dims that broadcasting added or expanded, so that it gets `target`'s shape.
fn reduce_to(b: &mut TraceBuilder, v: Value, target: &[usize]) -> Result<Value> {
    let shape = b.tensor(v)?.shape.sizes();
    if shape == target {
        return Ok(v);
    }
    let offset = shape.len() - target.len();
    let dims: Vec<usize> = (0..shape.len())
        .filter(|&d| d < offset || (target[d - offset] == 1 && shape[d] != 1))
        .collect();
    let s = b.prim(PrimOp::Sum, vec![v.into()], vec![ints(&dims)])?;
    Ok(b.prim(PrimOp::Reshape, vec![s.into()], vec![ints(target)])?)
}

/// `embedding_backward`: linear in the gradient it scatters, so the VJP gathers the rows back
/// (the padding row's entries got nothing, so they get nothing back).
fn embedding_backward_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (p, g) = (cx.p, cx.g);
    if cx.orig(0).is_none() {
        return Ok(Vec::new());
    }
    let rows = b.prim(
        Embedding,
        vec![cx.arg(1), g.into()],
        plain_embedding_attrs(),
    )?;
    let gx = match &p.attrs[1] {
        Attr::Int(pad) => {
            let num = match &p.attrs[0] {
                Attr::Int(n) => *n,
                _ => 0,
            };
            let pad = if *pad < 0 { *pad + num } else { *pad };
            zero_where_index(b, cx.arg(1), pad, rows)?
        }
        _ => rows,
    };
    let gx = if matches!(p.attrs[2], Attr::Bool(true)) {
        // scale_grad_by_freq divided each row's sum by how often its index occurs:
        // divide each gathered entry by its index's count.
        let num = p.attrs[0].clone();
        let gt = cx.meta(0, "grad is not a tensor")?;
        let mut ones_shape = gt.shape.sizes();
        if let Some(last) = ones_shape.last_mut() {
            *last = 1;
        }
        let ones = b.prim(
            Full,
            vec![],
            vec![
                ints(&ones_shape),
                Attr::Float(1.0),
                Attr::Device(gt.device),
                Attr::DType(gt.dtype),
            ],
        )?;
        let counts = b.prim(
            EmbeddingBackward,
            vec![ones.into(), cx.arg(1)],
            vec![num, Attr::None, Attr::Bool(false), Attr::Bool(false)],
        )?;
        let at = b.prim(
            Embedding,
            vec![cx.arg(1), counts.into()],
            plain_embedding_attrs(),
        )?;
        let r = ones_shape.len();
        let ab = b.prim(
            BroadcastInDim,
            vec![at.into()],
            vec![ints(gt.shape.sizes()), ints(0..r)],
        )?;
        p2(b, Div, gx, ab)?
    } else {
        gx
    };
    Ok(cx.only(0, gx))
}

/// The JVP rule of an nn prim.
pub(super) fn jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    use PrimOp::*;
    let op = cx.op;
    match op {
        Matmul | Linear => {
            // One product per operand with a tangent (the bias left out), plus the bias's tangent.
            let product = |b: &mut TraceBuilder, i: usize| -> Result<Option<Value>> {
                let Some(t) = cx.dt(i) else { return Ok(None) };
                let mut args: Vec<Arg> = (0..cx.p.args.len()).map(|j| cx.arg(j)).collect();
                args[i] = t.into();
                if op == Linear {
                    args[2] = Arg::None;
                }
                Ok(Some(b.prim(op, args, vec![])?))
            };
            let ta = product(b, 0)?;
            let tw = product(b, 1)?;
            let bias_tangent = if op == Linear { cx.dt(2) } else { None };
            let tbias = match bias_tangent {
                Some(t) => {
                    let shape = b.tensor(cx.y)?.shape.clone();
                    let r = b.tensor(t)?.rank();
                    let bd: Vec<usize> = (shape.rank() - r..shape.rank()).collect();
                    Some(b.prim(
                        BroadcastInDim,
                        vec![t.into()],
                        vec![ints(shape.sizes()), ints(&bd)],
                    )?)
                }
                None => None,
            };
            cx.sum(b, vec![ta, tw, tbias])
        }
        Embedding => {
            let tw = cx.dz(b, 1)?;
            let t = b.prim(Embedding, vec![cx.arg(0), tw.into()], cx.p.attrs.clone())?;
            Ok(match &cx.p.attrs[0] {
                // PyTorch treats the padding row as constant (no gradient reaches it); so does
                // the tangent.
                Attr::Int(pad) => zero_where_index(b, cx.arg(0), *pad, t)?,
                _ => t,
            })
        }
        EmbeddingBackward => cx.same_on_tangent(b, 0),
        other => Err(not_written("JVP", other)),
    }
}

/// The batching rule of an nn prim.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    use PrimOp::*;
    let p = cx.p;
    let args = cx.all_batched(b)?;
    match cx.op {
        Matmul => matmul_vmap(b, cx, &args),
        Linear if !cx.batched(&p.args[1]) && !cx.batched(&p.args[2]) => Ok(b.prim(
            Linear,
            vec![args[0].clone(), cx.plain[1].clone(), cx.plain[2].clone()],
            vec![],
        )?),
        Linear => linear_vmap(b, cx, &args),
        Embedding if !cx.batched(&p.args[1]) => Ok(b.prim(
            Embedding,
            vec![args[0].clone(), cx.plain[1].clone()],
            p.attrs.clone(),
        )?),
        Embedding => embedding_vmap(b, cx, &args),
        EmbeddingBackward => embedding_backward_vmap(b, cx, &args),
        other => Err(not_written("batching", other)),
    }
}

/// `matmul` over a batch: equal ranks (>= 2) with the batch dim first, so that libtorch's batch
/// broadcasting lines the batch dims up. A 1-D operand becomes a matrix ([k] -> [1, k] on the
/// left, [k, 1] on the right) and the result loses that dim again.
fn matmul_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    use PrimOp::*;
    let batch = cx.batch;
    let (ra0, rb0) = (cx.rank(b, args, 0)?, cx.rank(b, args, 1)?);
    let (mut va, mut vb) = (cx.value(args, 0, "operand")?, cx.value(args, 1, "operand")?);
    let per_example = |b: &TraceBuilder, v: Value| -> Result<Shape> {
        Ok(Shape::new(b.tensor(v)?.shape.sizes()[1..].to_vec()))
    };
    let want =
        thunder_ir::ops::prims::matmul_shape("matmul", &per_example(b, va)?, &per_example(b, vb)?)?;
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
        Ok(y)
    } else {
        Ok(b.prim(Reshape, vec![y.into()], vec![ints(shape)])?)
    }
}

/// `linear` with a batched weight or bias: `x w^T` as a batched matmul, then the bias broadcast.
fn linear_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    use PrimOp::*;
    let (p, batch) = (cx.p, cx.batch);
    let (x, w) = (cx.value(args, 0, "operand")?, cx.value(args, 1, "weight")?);
    let xs = b.tensor(x)?.shape.sizes();
    let n_in = *xs.last().ok_or_else(|| cx.no_rule("0-d input"))?;
    let mid: Vec<usize> = xs[1..xs.len() - 1].to_vec();
    let rows: usize = mid.iter().product();
    let y = if cx.batched(&p.args[1]) {
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
        b.prim(
            Linear,
            vec![x.into(), cx.plain[1].clone(), Arg::None],
            vec![],
        )?
    };
    Ok(match &p.args[2] {
        Arg::Value(bias) => {
            let (bv, bt) = cx.m[bias];
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
    })
}

/// `embedding` of a batched table: example `e`'s rows are `e * num + i` of the stacked tables.
fn embedding_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    let p = cx.p;
    if !matches!(p.attrs[0], Attr::None) || !matches!(p.attrs[1], Attr::None) {
        return Err(cx.no_rule(
            "a batched weight with padding_idx or max_norm (per-example padding rows and renormalization have no single-table form)",
        ));
    }
    let (idx, w) = (cx.value(args, 0, "indices")?, cx.value(args, 1, "weight")?);
    let ws = b.tensor(w)?.shape.sizes();
    let w2 = b.prim(
        PrimOp::Reshape,
        vec![w.into()],
        vec![ints([ws[0] * ws[1], ws[2]])],
    )?;
    let off = offsets(b, idx, ws[1], cx.batch)?;
    Ok(b.prim(
        PrimOp::Embedding,
        vec![off.into(), w2.into()],
        p.attrs.clone(),
    )?)
}

/// `embedding_backward` over a batch: per-example gradients of per-example tables: example `e`'s
/// rows are `e * num + i` of a table `batch` times taller. The padding row gets no gradient: mask
/// it first.
fn embedding_backward_vmap(b: &mut TraceBuilder, cx: &Batch, args: &[Arg]) -> Result<Value> {
    let (p, batch) = (cx.p, cx.batch);
    let (g, idx) = (cx.value(args, 0, "grad")?, cx.value(args, 1, "indices")?);
    let num = match &p.attrs[0] {
        Attr::Int(n) => *n as usize,
        _ => return Err(cx.no_rule("num_weights")),
    };
    let g = match &p.attrs[1] {
        Attr::Int(pad) => {
            let pad = if *pad < 0 { *pad + num as i64 } else { *pad };
            zero_where_index(b, idx.into(), pad, g)?
        }
        _ => g,
    };
    let off = offsets(b, idx, num, batch)?;
    let t = b.prim(
        PrimOp::EmbeddingBackward,
        vec![g.into(), off.into()],
        vec![
            Attr::Int((num * batch) as i64),
            Attr::None,
            p.attrs[2].clone(),
            p.attrs[3].clone(),
        ],
    )?;
    let d = b.tensor(t)?.shape.size(1);
    Ok(b.prim(PrimOp::Reshape, vec![t.into()], vec![ints([batch, num, d])])?)
}
