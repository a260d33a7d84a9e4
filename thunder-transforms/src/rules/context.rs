//! What a rule sees: the call being transformed, the values of the trace being built, and the
//! helpers that the rules of every family share.

use crate::util::{ints, no_rule, zeros};
use crate::{Result, TransformError};
use std::collections::HashMap;
use thunder_ir::{Arg, Attr, BoundSymbol, PrimOp, TensorMeta, Trace, TraceBuilder, Value};

/// `op(x, y)`: a prim with two operands and no attributes.
pub(super) fn p2(
    b: &mut TraceBuilder,
    op: PrimOp,
    x: impl Into<Arg>,
    y: impl Into<Arg>,
) -> Result<Value> {
    Ok(b.prim(op, vec![x.into(), y.into()], vec![])?)
}

/// `op(x)`: a prim with one operand and no attributes.
pub(super) fn p1(b: &mut TraceBuilder, op: PrimOp, x: impl Into<Arg>) -> Result<Value> {
    Ok(b.prim(op, vec![x.into()], vec![])?)
}

/// The error for a prim that `transform` has no rule for.
pub(super) fn not_written(transform: &'static str, op: PrimOp) -> TransformError {
    no_rule(transform, op, "not written yet")
}

/// The dims that a reduction's `dims` attribute names, negative ones wrapped.
pub(super) fn reduced_dims(a: &Attr, rank: usize) -> Vec<usize> {
    match a {
        Attr::Ints(v) => v
            .iter()
            .map(|&d| {
                if d < 0 {
                    (d + rank as i64) as usize
                } else {
                    d as usize
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The dims of a rank-`rank` tensor that `dims` does not name (what a reduction keeps).
pub(super) fn kept_dims(rank: usize, dims: &[usize]) -> Vec<usize> {
    (0..rank).filter(|d| !dims.contains(d)).collect()
}

/// A VJP rule's view of one prim call: its operands in the original trace, their values in the
/// new one, the output and the cotangent flowing into it.
pub(crate) struct Vjp<'a> {
    /// The prim.
    pub(super) op: PrimOp,
    /// The call, in the original trace.
    pub(super) p: &'a BoundSymbol,
    /// The cotangent of the output (a tangent where jvp runs an elementwise VJP rule on one).
    pub(super) g: Value,
    /// The output, in the new trace.
    pub(super) y: Value,
    /// Original values to new ones.
    pub(super) m: &'a HashMap<Value, Value>,
    /// The original trace.
    pub(super) trace: &'a Trace,
}

impl<'a> Vjp<'a> {
    pub(super) fn new(
        op: PrimOp,
        p: &'a BoundSymbol,
        g: Value,
        m: &'a HashMap<Value, Value>,
        trace: &'a Trace,
    ) -> Self {
        let y = m[&p.outputs[0]];
        Vjp {
            op,
            p,
            g,
            y,
            m,
            trace,
        }
    }
    /// Operand `i` in the new trace.
    pub(super) fn arg(&self, i: usize) -> Arg {
        match &self.p.args[i] {
            Arg::Value(v) => Arg::Value(self.m[v]),
            other => other.clone(),
        }
    }
    /// Operand `i` in the original trace, if it is a tensor (what gets a cotangent).
    pub(super) fn orig(&self, i: usize) -> Option<Value> {
        self.p.args[i]
            .as_value()
            .filter(|v| self.trace.tensor(*v).is_some())
    }
    /// The type of tensor operand `i`, or the error `why`.
    pub(super) fn meta(&self, i: usize, why: &str) -> Result<TensorMeta> {
        self.orig(i)
            .and_then(|v| self.trace.tensor(v))
            .cloned()
            .ok_or_else(|| self.no_rule(why))
    }
    /// Adds `gx` as the contribution to operand `i`'s cotangent, if it is a tensor.
    pub(super) fn push(&self, out: &mut Vec<(Value, Value)>, i: usize, gx: Value) {
        if let Some(x) = self.orig(i) {
            out.push((x, gx));
        }
    }
    /// `gx` as the only contribution, to operand `i`.
    pub(super) fn only(&self, i: usize, gx: Value) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        self.push(&mut out, i, gx);
        out
    }
    /// The error for a call this rule does not handle.
    pub(super) fn no_rule(&self, why: &str) -> TransformError {
        no_rule("VJP", self.op, why)
    }
}

/// A JVP rule's view of one prim call: its operands, their tangents and its output.
pub(crate) struct Jvp<'a> {
    /// The prim.
    pub(super) op: PrimOp,
    /// The call, in the original trace.
    pub(super) p: &'a BoundSymbol,
    /// The output, in the new trace.
    pub(super) y: Value,
    /// Original values to new ones.
    pub(super) m: &'a HashMap<Value, Value>,
    /// Original values to their tangents (those that have one).
    pub(super) tan: &'a HashMap<Value, Value>,
    /// The original trace.
    pub(super) trace: &'a Trace,
}

impl<'a> Jvp<'a> {
    pub(super) fn new(
        op: PrimOp,
        p: &'a BoundSymbol,
        m: &'a HashMap<Value, Value>,
        tan: &'a HashMap<Value, Value>,
        trace: &'a Trace,
    ) -> Self {
        let y = m[&p.outputs[0]];
        Jvp {
            op,
            p,
            y,
            m,
            tan,
            trace,
        }
    }
    /// Operand `i` in the new trace.
    pub(super) fn arg(&self, i: usize) -> Arg {
        match &self.p.args[i] {
            Arg::Value(v) => Arg::Value(self.m[v]),
            other => other.clone(),
        }
    }
    /// The tangent of operand `i`, if it has one.
    pub(super) fn dt(&self, i: usize) -> Option<Value> {
        self.p.args[i]
            .as_value()
            .and_then(|v| self.tan.get(&v).copied())
    }
    /// The tangent of operand `i`, zeros if it has none (for rules that need every operand's).
    pub(super) fn dz(&self, b: &mut TraceBuilder, i: usize) -> Result<Value> {
        match self.dt(i) {
            Some(t) => Ok(t),
            None => {
                let v = self.p.args[i]
                    .as_value()
                    .ok_or_else(|| self.no_rule("operand is not a value"))?;
                let meta = self
                    .trace
                    .tensor(v)
                    .cloned()
                    .ok_or_else(|| self.no_rule("operand is not a tensor"))?;
                zeros(b, &meta)
            }
        }
    }
    /// The type of operand `i` (a tensor value).
    pub(super) fn meta(&self, i: usize) -> Result<TensorMeta> {
        let x = self.p.args[i]
            .as_value()
            .ok_or_else(|| self.no_rule("operand is not a value"))?;
        self.trace
            .tensor(x)
            .cloned()
            .ok_or_else(|| self.no_rule("operand is not a tensor"))
    }
    /// The sum of the terms present.
    pub(super) fn sum(&self, b: &mut TraceBuilder, terms: Vec<Option<Value>>) -> Result<Value> {
        let mut acc: Option<Value> = None;
        for t in terms.into_iter().flatten() {
            acc = Some(match acc {
                None => t,
                Some(a) => b.prim(PrimOp::Add, vec![a.into(), t.into()], vec![])?,
            });
        }
        acc.ok_or_else(|| self.no_rule("no operand has a tangent"))
    }
    /// The rule of a prim linear in operand `i`: the same prim applied to its tangent.
    pub(super) fn same_on_tangent(&self, b: &mut TraceBuilder, i: usize) -> Result<Value> {
        let mut args: Vec<Arg> = (0..self.p.args.len()).map(|j| self.arg(j)).collect();
        args[i] = self.dz(b, i)?.into();
        Ok(b.prim(self.op, args, self.p.attrs.clone())?)
    }
    /// The VJP view of the same call with `t` as the cotangent: an elementwise prim's Jacobian is
    /// diagonal, so its VJP rule run on a tangent gives the tangent's term.
    pub(super) fn as_vjp(&self, t: Value) -> Vjp<'a> {
        Vjp::new(self.op, self.p, t, self.m, self.trace)
    }
    /// The error for a call this rule does not handle.
    pub(super) fn no_rule(&self, why: &str) -> TransformError {
        no_rule("JVP", self.op, why)
    }
}

/// A batching rule's view of one prim call: which operands are batched (batch dim first) and
/// their values in the new trace.
pub(crate) struct Batch<'a> {
    /// The prim.
    pub(super) op: PrimOp,
    /// The call, in the original trace.
    pub(super) p: &'a BoundSymbol,
    /// Original values to (new value, batched with the batch dim first).
    pub(super) m: &'a HashMap<Value, (Value, bool)>,
    /// The batch size.
    pub(super) batch: usize,
    /// The operands in the new trace, as they are (unbatched ones not broadcast).
    pub(super) plain: Vec<Arg>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(
        op: PrimOp,
        p: &'a BoundSymbol,
        m: &'a HashMap<Value, (Value, bool)>,
        batch: usize,
    ) -> Self {
        let plain = p
            .args
            .iter()
            .map(|a| match a {
                Arg::Value(v) => Arg::Value(m[v].0),
                Arg::List(l) => Arg::List(l.iter().map(|v| m[v].0).collect()),
                other => other.clone(),
            })
            .collect();
        Batch {
            op,
            p,
            m,
            batch,
            plain,
        }
    }
    /// Whether an operand (of the original call) is batched.
    pub(super) fn batched(&self, a: &Arg) -> bool {
        match a {
            Arg::Value(v) => self.m[v].1,
            Arg::List(l) => l.iter().any(|v| self.m[v].1),
            _ => false,
        }
    }
    /// Whether any operand is batched.
    pub(super) fn any_batched(&self) -> bool {
        self.p.args.iter().any(|a| self.batched(a))
    }
    /// The call as it is, on unbatched operands: its outputs are unbatched.
    pub(super) fn unbatched(&self, b: &mut TraceBuilder) -> Result<Vec<(Value, bool)>> {
        let outs = b.call(self.p.op, self.plain.clone(), self.p.attrs.clone())?;
        Ok(outs.into_iter().map(|v| (v, false)).collect())
    }
    /// Every tensor operand batched (unbatched ones broadcast), numbers unchanged.
    pub(super) fn all_batched(&self, b: &mut TraceBuilder) -> Result<Vec<Arg>> {
        self.p
            .args
            .iter()
            .map(|a| {
                Ok(match a {
                    Arg::Value(v) => {
                        let (nv, bt) = self.m[v];
                        if bt || b.tensor(nv).is_err() {
                            Arg::Value(nv)
                        } else {
                            Arg::Value(batched_copy(b, nv, self.batch)?)
                        }
                    }
                    Arg::List(l) => Arg::List(
                        l.iter()
                            .map(|v| {
                                let (nv, bt) = self.m[v];
                                if bt {
                                    Ok(nv)
                                } else {
                                    batched_copy(b, nv, self.batch)
                                }
                            })
                            .collect::<Result<_>>()?,
                    ),
                    other => other.clone(),
                })
            })
            .collect()
    }
    /// Operand `i` of `args` as a value, or the error naming `what`.
    pub(super) fn value(&self, args: &[Arg], i: usize, what: &str) -> Result<Value> {
        args[i].as_value().ok_or_else(|| self.no_rule(what))
    }
    /// The per-example rank of tensor operand `i` of `args` (batched).
    pub(super) fn rank(&self, b: &TraceBuilder, args: &[Arg], i: usize) -> Result<usize> {
        Ok(b.tensor(self.value(args, i, "operand is not a tensor")?)?
            .rank()
            - 1)
    }
    /// The error for a call this rule does not handle.
    pub(super) fn no_rule(&self, why: &str) -> TransformError {
        no_rule("batching", self.op, why)
    }
}

/// A list-of-ints attribute's values (empty for any other attribute).
pub(crate) fn attr_ints(a: &Attr) -> Vec<i64> {
    match a {
        Attr::Ints(v) => v.clone(),
        _ => Vec::new(),
    }
}

/// Per-example dims (negative ones counted from rank `r`) as dims of the batched tensor.
pub(super) fn shifted(dims: &[i64], r: usize) -> Vec<i64> {
    dims.iter()
        .map(|&d| if d < 0 { d + r as i64 + 1 } else { d + 1 })
        .collect()
}

/// An unbatched tensor broadcast to `[batch] + shape`.
pub(crate) fn batched_copy(b: &mut TraceBuilder, v: Value, batch: usize) -> Result<Value> {
    let t = b.tensor(v)?.clone();
    let mut shape = vec![batch];
    shape.extend(t.shape.sizes());
    Ok(b.prim(
        PrimOp::BroadcastInDim,
        vec![v.into()],
        vec![ints(shape), ints(1..=t.rank())],
    )?)
}

/// `v` (batched, batch dim first) with its per-example dim `dim` folded into the batch:
/// `[B, .., n, ..]` -> `[B * n, ..]` (the other dims in order). Returns the folded tensor, `n` and
/// the other per-example sizes.
pub(super) fn fold_dim(
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
pub(super) fn unfold_dim(
    b: &mut TraceBuilder,
    folded: Value,
    like: Value,
    dim: usize,
) -> Result<Value> {
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
pub(super) fn offsets(b: &mut TraceBuilder, idx: Value, n: usize, batch: usize) -> Result<Value> {
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
