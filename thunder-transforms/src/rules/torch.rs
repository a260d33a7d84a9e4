//! VJP rules of torch-level ops that [`grad`](mod@crate::grad) differentiates whole (their row of
//! the op table says `grad(WHOLE)`) instead of through their decompositions: their backward is
//! cheaper to state directly and needs fewer forward values.
//!
//! | op | saved by the rule | backward |
//! |----|-------------------|----------|
//! | `softmax` | the output `y` | `y * (g - sum(g * y))` |
//! | `log_softmax` | the output `y` | `g - exp(y) * sum(g)` |
//! | `cross_entropy` | the logits | one `cross_entropy_backward` op: `(softmax(x) - onehot(target)) * weight of the row` |
//! | `rms_norm` | `x` (and the weight) | `rstd * gw - x * rstd^3 * mean(gw * x)`, `gw = g * weight` |
//! | `layer_norm` | `x` (and the weight) | `rstd * (gw - mean(gw) - xhat * mean(gw * xhat))` |
//! | `scaled_dot_product_attention` | query, key, value | one `scaled_dot_product_attention_backward` op |
//!
//! Norm statistics (`rstd`, `mean`) are recomputed from `x` rather than saved. Gradients of 16-bit
//! tensors are computed in float32, as the forward decompositions compute, and rounded once.

use crate::util::ints;
use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::ops::info::TorchGrad;
use thunder_ir::ops::torch::TorchOp;
use thunder_ir::{
    Arg, Attr, BoundSymbol, DType, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value,
};

/// Whether grad keeps `p` (a call of `op`) whole, given the values that depend on the inputs
/// being differentiated. Attention is kept whole only without dropout (whose mask the backward
/// would need) and when its mask is not differentiated (the rule gives no mask gradient).
pub(crate) fn differentiates_whole(op: TorchOp, p: &BoundSymbol, active: &HashSet<Value>) -> bool {
    if op.info().grad != TorchGrad::Whole {
        return false;
    }
    match op {
        TorchOp::ScaledDotProductAttention => {
            let no_dropout = matches!(p.attrs.first(), Some(Attr::Float(d)) if *d == 0.0);
            let mask_constant = p
                .args
                .get(3)
                .and_then(Arg::as_value)
                .is_none_or(|m| !active.contains(&m));
            no_dropout && mask_constant
        }
        _ => true,
    }
}

fn bad(op: TorchOp, why: impl Into<String>) -> TransformError {
    TransformError::NoRule {
        op: format!("ltorch.{}", op.name()),
        transform: "VJP",
        reason: why.into(),
    }
}

/// Small builder helpers over prims.
struct B<'a> {
    b: &'a mut TraceBuilder,
}

impl B<'_> {
    fn p1(&mut self, op: PrimOp, a: impl Into<Arg>) -> Result<Value> {
        Ok(self.b.prim(op, vec![a.into()], vec![])?)
    }
    fn p2(&mut self, op: PrimOp, a: impl Into<Arg>, c: impl Into<Arg>) -> Result<Value> {
        Ok(self.b.prim(op, vec![a.into(), c.into()], vec![])?)
    }
    fn convert(&mut self, v: Value, dtype: DType) -> Result<Value> {
        if self.b.tensor(v)?.dtype == dtype {
            return Ok(v);
        }
        Ok(self.b.prim(
            PrimOp::ConvertElementType,
            vec![v.into()],
            vec![Attr::DType(dtype)],
        )?)
    }
    fn sum(&mut self, v: Value, dims: &[usize]) -> Result<Value> {
        if dims.is_empty() {
            return Ok(v);
        }
        Ok(self.b.prim(PrimOp::Sum, vec![v.into()], vec![ints(dims)])?)
    }
    /// `v` (reduced over `dims` of `shape`) broadcast back to `shape`.
    fn expand(&mut self, v: Value, shape: &[usize], dims: &[usize]) -> Result<Value> {
        let kept: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
        Ok(self.b.prim(
            PrimOp::BroadcastInDim,
            vec![v.into()],
            vec![ints(shape), ints(kept)],
        )?)
    }
}

/// The dtype 16-bit floats are computed in.
fn comp(d: DType) -> DType {
    if d.is_low_precision_float() {
        DType::F32
    } else {
        d
    }
}

/// A call of a whole torch-level op, as its rule sees it.
struct Call<'a> {
    op: TorchOp,
    p: &'a BoundSymbol,
    m: &'a HashMap<Value, Value>,
    trace: &'a Trace,
}

impl Call<'_> {
    /// Operand `i` in the original trace, if it is a value.
    fn orig(&self, i: usize) -> Option<Value> {
        self.p.args.get(i).and_then(Arg::as_value)
    }
    /// The type of tensor operand `i`.
    fn meta(&self, i: usize) -> Result<TensorMeta> {
        self.orig(i)
            .and_then(|v| self.trace.tensor(v))
            .cloned()
            .ok_or_else(|| bad(self.op, format!("operand {i} is not a tensor")))
    }
    /// Operand `i` in the new trace.
    fn value(&self, i: usize) -> Result<Value> {
        self.orig(i)
            .map(|v| self.m[&v])
            .ok_or_else(|| bad(self.op, format!("operand {i} is not a tensor")))
    }
    /// Operand `i` in the original trace, or the output where it is not a value (the
    /// contributions are keyed by original values).
    fn key(&self, i: usize) -> Value {
        self.orig(i).unwrap_or(self.p.outputs[0])
    }
}

/// The contributions of a whole torch-level op to the cotangents of its tensor operands, given
/// the cotangent `g` of its output.
pub(super) fn vjp(
    b: &mut TraceBuilder,
    op: TorchOp,
    p: &BoundSymbol,
    g: Value,
    m: &HashMap<Value, Value>,
    trace: &Trace,
) -> Result<Vec<(Value, Value)>> {
    let cx = Call { op, p, m, trace };
    let y = m[&p.outputs[0]];
    let mut h = B { b };
    match op {
        TorchOp::Softmax | TorchOp::LogSoftmax => softmax_vjp(&mut h, &cx, g, y),
        TorchOp::CrossEntropy => {
            // One op (an executor may fuse it whole); its decomposition recomputes the softmax.
            let ignore_index = match &p.attrs[0] {
                Attr::Int(i) => *i,
                _ => return Err(bad(op, "ignore_index must be an int")),
            };
            let reduction = match &p.attrs[1] {
                Attr::Str(s) => s.clone(),
                _ => return Err(bad(op, "reduction must be a string")),
            };
            let gx = h.b.cross_entropy_backward(
                g,
                cx.value(0)?,
                cx.value(1)?,
                ignore_index,
                &reduction,
            )?;
            Ok(vec![(cx.key(0), gx)])
        }
        TorchOp::RmsNorm | TorchOp::LayerNorm => norm_vjp(&mut h, &cx, g),
        TorchOp::ScaledDotProductAttention => {
            let mask = match p.args.get(3) {
                Some(Arg::Value(v)) => Arg::Value(m[v]),
                _ => Arg::None,
            };
            let grads = h.b.call(
                Op::Torch(TorchOp::ScaledDotProductAttentionBackward),
                vec![
                    g.into(),
                    cx.value(0)?.into(),
                    cx.value(1)?.into(),
                    cx.value(2)?.into(),
                    mask,
                ],
                p.attrs[1..4].to_vec(),
            )?;
            let mut out = Vec::new();
            for (i, gv) in grads.into_iter().enumerate() {
                if let Some(x) = cx.orig(i) {
                    out.push((x, gv));
                }
            }
            Ok(out)
        }
        other => Err(no_rule_torch(other)),
    }
}

/// `softmax`: `y * (g - sum(g * y))`; `log_softmax`: `g - exp(y) * sum(g)`.
fn softmax_vjp(h: &mut B, cx: &Call, g: Value, y: Value) -> Result<Vec<(Value, Value)>> {
    let op = cx.op;
    let a = cx.meta(0)?;
    let dims = softmax_dims(op, cx.p, a.rank())?;
    let shape = a.shape.sizes();
    let c = comp(h.b.tensor(y)?.dtype);
    let (yc, gc) = (h.convert(y, c)?, h.convert(g, c)?);
    let gx = if op == TorchOp::Softmax {
        // y * (g - sum(g * y))
        let gy = h.p2(PrimOp::Mul, gc, yc)?;
        let s = h.sum(gy, &dims)?;
        let sb = h.expand(s, &shape, &dims)?;
        let t = h.p2(PrimOp::Mul, yc, sb)?;
        h.p2(PrimOp::Sub, gy, t)?
    } else {
        // g - exp(y) * sum(g)
        let s = h.sum(gc, &dims)?;
        let sb = h.expand(s, &shape, &dims)?;
        let e = h.p1(PrimOp::Exp, yc)?;
        let t = h.p2(PrimOp::Mul, e, sb)?;
        h.p2(PrimOp::Sub, gc, t)?
    };
    Ok(vec![(cx.key(0), h.convert(gx, a.dtype)?)])
}

/// `rms_norm` and `layer_norm`, with their statistics recomputed from `x`.
fn norm_vjp(h: &mut B, cx: &Call, g: Value) -> Result<Vec<(Value, Value)>> {
    let (op, p, m, trace) = (cx.op, cx.p, cx.m, cx.trace);
    let a = cx.meta(0)?;
    let k = match &p.attrs[0] {
        Attr::Ints(v) => v.len(),
        _ => return Err(bad(op, "normalized_shape must be ints")),
    };
    let eps = match &p.attrs[1] {
        Attr::Float(e) => *e,
        Attr::Int(e) => *e as f64,
        _ => a.dtype.finfo_eps(),
    };
    let shape = a.shape.sizes();
    let r = a.rank();
    let dims: Vec<usize> = (r - k..r).collect();
    let lead: Vec<usize> = (0..r - k).collect();
    let count: usize = dims.iter().map(|&d| shape[d]).product();
    let c = comp(a.dtype);
    let x = h.convert(cx.value(0)?, c)?;
    let gc = h.convert(g, c)?;
    let weight = match cx.orig(1) {
        Some(w) => {
            let wc = h.convert(m[&w], c)?;
            Some(h.b.prim(
                PrimOp::BroadcastInDim,
                vec![wc.into()],
                vec![ints(&shape), ints(dims.clone())],
            )?)
        }
        None => None,
    };
    let gw = match weight {
        Some(wb) => h.p2(PrimOp::Mul, gc, wb)?,
        None => gc,
    };
    // Statistics recomputed from x. `xc` is x (rms_norm) or x - mean (layer_norm).
    let xc = if op == TorchOp::RmsNorm {
        x
    } else {
        let s = h.sum(x, &dims)?;
        let mean = h.p2(PrimOp::Div, s, count as f64)?;
        let mb = h.expand(mean, &shape, &dims)?;
        h.p2(PrimOp::Sub, x, mb)?
    };
    let sq = h.p2(PrimOp::Mul, xc, xc)?;
    let ms = h.sum(sq, &dims)?;
    let ms = h.p2(PrimOp::Div, ms, count as f64)?;
    let ms = h.p2(PrimOp::Add, ms, eps)?;
    let rstd = h.p1(PrimOp::Rsqrt, ms)?;
    let rb = h.expand(rstd, &shape, &dims)?;
    // gx = rstd * (gw - [mean(gw)] - xc * rstd^2 * mean(gw * xc)); the bracket only for
    // layer_norm.
    let gwx = h.p2(PrimOp::Mul, gw, xc)?;
    let s = h.sum(gwx, &dims)?;
    let s = h.p2(PrimOp::Div, s, count as f64)?;
    let r2 = h.p2(PrimOp::Mul, rstd, rstd)?;
    let coef = h.p2(PrimOp::Mul, s, r2)?;
    let cb = h.expand(coef, &shape, &dims)?;
    let t = h.p2(PrimOp::Mul, xc, cb)?;
    let mut inner = h.p2(PrimOp::Sub, gw, t)?;
    if op == TorchOp::LayerNorm {
        let sg = h.sum(gw, &dims)?;
        let mg = h.p2(PrimOp::Div, sg, count as f64)?;
        let mgb = h.expand(mg, &shape, &dims)?;
        inner = h.p2(PrimOp::Sub, inner, mgb)?;
    }
    let gx = h.p2(PrimOp::Mul, inner, rb)?;
    let mut out = vec![(cx.key(0), h.convert(gx, a.dtype)?)];
    if let Some(w) = cx.orig(1) {
        // sum over the leading dims of g * xhat
        let gxc = h.p2(PrimOp::Mul, gc, xc)?;
        let gxh = h.p2(PrimOp::Mul, gxc, rb)?;
        let gwt = h.sum(gxh, &lead)?;
        let wdt = trace.tensor(w).map(|t| t.dtype).unwrap_or(a.dtype);
        out.push((w, h.convert(gwt, wdt)?));
    }
    if op == TorchOp::LayerNorm {
        if let Some(bias) = cx.orig(2) {
            let gb = h.sum(gc, &lead)?;
            let bdt = trace.tensor(bias).map(|t| t.dtype).unwrap_or(a.dtype);
            out.push((bias, h.convert(gb, bdt)?));
        }
    }
    Ok(out)
}

fn no_rule_torch(op: TorchOp) -> TransformError {
    bad(
        op,
        "it is differentiated through its decomposition, not whole",
    )
}

/// The dims `softmax`/`log_softmax` reduce (none for a 0-d tensor).
fn softmax_dims(op: TorchOp, p: &BoundSymbol, rank: usize) -> Result<Vec<usize>> {
    if rank == 0 {
        return Ok(Vec::new());
    }
    match p.attrs.first() {
        Some(Attr::Int(d)) => {
            let d = if *d < 0 { *d + rank as i64 } else { *d };
            if d < 0 || d as usize >= rank {
                return Err(bad(op, format!("dim {d} is out of range for rank {rank}")));
            }
            Ok(vec![d as usize])
        }
        _ => Err(bad(op, "dim must be an int")),
    }
}
