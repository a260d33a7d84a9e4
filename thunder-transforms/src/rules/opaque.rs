//! ATen operators called by name: `aten` and its derivative `aten_vjp` (see
//! [`thunder_ir::ops::aten`]).
//!
//! - VJP: `aten_vjp`, ATen's own autograd formula run by the executor: one call with the forward's
//!   operands, the cotangents of the outputs that have one (several outputs may) and the operands
//!   that need a gradient. `aten_vjp` itself is not differentiated again (a typed error).
//! - JVP and batching: none (typed errors): thunder knows nothing of the operator but its
//!   outputs' metadata.

use crate::util::no_rule;
use crate::Result;
use std::collections::{HashMap, HashSet};
use thunder_ir::{Arg, Attr, BoundSymbol, Op, PrimOp, Trace, TraceBuilder, Value};

/// The contributions of the call `p` of `prims.aten` to its operands' cotangents, given the
/// cotangent of each output (`None`: no gradient flows into it); `active` are the values that
/// depend on what grad differentiates, `m` maps the original values to the new trace's.
pub(crate) fn vjp(
    b: &mut TraceBuilder,
    p: &BoundSymbol,
    cts: &[Option<Value>],
    m: &HashMap<Value, Value>,
    active: &HashSet<Value>,
    trace: &Trace,
) -> Result<Vec<(Value, Value)>> {
    let Op::Prim(op) = p.op else {
        return Err(no_rule("VJP", PrimOp::Aten, "internal: not an ATen call"));
    };
    if op != PrimOp::Aten {
        return Err(refuse("VJP", op));
    }
    let operands: Vec<Value> = match p.args.first() {
        Some(Arg::List(l)) => l.clone(),
        _ => return Err(no_rule("VJP", op, "internal: operands are not a list")),
    };
    let mapped = |v: &Value| {
        m.get(v)
            .copied()
            .ok_or_else(|| no_rule("VJP", op, "internal: an operand missing from the forward"))
    };
    let mut tensors: Vec<Value> = operands.iter().map(mapped).collect::<Result<_>>()?;
    let mut ct_index = Vec::new();
    for (i, (o, g)) in p.outputs.iter().zip(cts).enumerate() {
        if let Some(g) = g {
            if trace.tensor(*o).is_some_and(|t| t.dtype.is_float()) {
                ct_index.push(i as i64);
                tensors.push(*g);
            }
        }
    }
    let wrt: Vec<usize> = operands
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            active.contains(v) && trace.tensor(**v).is_some_and(|t| t.dtype.is_float())
        })
        .map(|(i, _)| i)
        .collect();
    if ct_index.is_empty() || wrt.is_empty() {
        return Ok(Vec::new());
    }
    let mut attrs: Vec<Attr> = p.attrs.iter().take(3).cloned().collect();
    attrs.push(Attr::Ints(ct_index));
    attrs.push(Attr::Ints(wrt.iter().map(|&i| i as i64).collect()));
    let grads = b.call(Op::Prim(PrimOp::AtenVjp), vec![Arg::List(tensors)], attrs)?;
    Ok(wrt.iter().map(|&i| operands[i]).zip(grads).collect())
}

/// The rules `aten` and `aten_vjp` lack (`aten`'s JVP and batching, every rule of `aten_vjp`):
/// refusals that say why.
pub(crate) fn refuse(transform: &'static str, op: PrimOp) -> crate::TransformError {
    let why = match (op, transform) {
        (PrimOp::AtenVjp, "VJP") => {
            "an ATen operator called by name: the derivative of an ATen call is not differentiated again (no double backward through an opaque op)"
        }
        (PrimOp::AtenVjp, _) => {
            "an ATen operator called by name (thunder has only its outputs' metadata): the derivative of an ATen call has no rule of its own"
        }
        _ => {
            "an ATen operator called by name (thunder has only its outputs' metadata); only grad, through ATen's autograd, differentiates it"
        }
    };
    no_rule(transform, op, why)
}
