//! Pieces shared by the transforms that rebuild a trace (grad, jvp, vmap, autocast).

use crate::{Result, TransformError};
use std::borrow::Borrow;
use std::collections::HashMap;
use thunder_ir::{Attr, BoundSymbol, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value};

/// Every prim of `trace` in program order, torch-level ops replaced by their decompositions.
pub(crate) fn flatten_prims(trace: &Trace) -> Vec<BoundSymbol> {
    fn go(bsyms: &[BoundSymbol], out: &mut Vec<BoundSymbol>) {
        for b in bsyms {
            match b.op {
                Op::Prim(_) | Op::Dist(_) => out.push(b.clone()),
                Op::Torch(_) => go(&b.subsymbols, out),
            }
        }
    }
    let mut out = Vec::new();
    go(&trace.bound_symbols, &mut out);
    out
}

/// Declares `trace`'s inputs, with their names and types, as inputs of `b`; returns the map from
/// the old values to the new ones.
pub(crate) fn copy_inputs(b: &mut TraceBuilder, trace: &Trace) -> Result<HashMap<Value, Value>> {
    Ok(b.inputs_like(trace)?)
}

/// A list-of-ints attribute.
pub(crate) fn ints<I: IntoIterator<Item = B>, B: Borrow<usize>>(v: I) -> Attr {
    Attr::Ints(v.into_iter().map(|x| *x.borrow() as i64).collect())
}

/// A tensor of zeros with `t`'s shape, dtype and device.
pub(crate) fn zeros(b: &mut TraceBuilder, t: &TensorMeta) -> Result<Value> {
    Ok(b.prim(
        PrimOp::Full,
        vec![],
        vec![
            ints(t.shape.sizes()),
            Attr::Float(0.0),
            Attr::Device(t.device),
            Attr::DType(t.dtype),
        ],
    )?)
}

/// The error for a prim that `transform` (`"VJP"`, `"JVP"`, `"batching"`) has no rule for.
pub(crate) fn no_rule(transform: &'static str, op: PrimOp, why: &str) -> TransformError {
    TransformError::NoRule {
        op: format!("prims.{}", op.name()),
        transform,
        reason: why.to_string(),
    }
}

/// Refuses a prim on the differentiated path that makes a complex value: the rules are written for
/// real values, and a complex intermediate would get a silently wrong derivative.
pub(crate) fn refuse_complex(pass: &str, op: Op, p: &BoundSymbol, trace: &Trace) -> Result<()> {
    match p
        .outputs
        .iter()
        .find(|&&o| trace.tensor(o).is_some_and(|t| t.dtype.is_complex()))
    {
        Some(&o) => Err(TransformError::Pass {
            pass: pass.into(),
            message: format!(
                "{} makes the complex value {} from a differentiated input: derivatives through complex values are not supported yet",
                op.qualified_name(),
                trace.name_of(o)
            ),
        }),
        None => Ok(()),
    }
}

/// `v` with zeros where `idx` equals `pad`; `v`'s leading dims are `idx`'s (the rows an
/// embedding's padding index selects get no gradient or tangent).
pub(crate) fn zero_where_index(
    b: &mut TraceBuilder,
    idx: thunder_ir::Arg,
    pad: i64,
    v: Value,
) -> Result<Value> {
    use thunder_ir::Arg;
    let keep = b.prim(PrimOp::Ne, vec![idx, Arg::Int(pad)], vec![])?;
    let shape = b.tensor(v)?.shape.sizes();
    let r = b.tensor(keep)?.rank();
    let kb = b.prim(
        PrimOp::BroadcastInDim,
        vec![keep.into()],
        vec![ints(&shape), ints(0..r)],
    )?;
    Ok(b.prim(
        PrimOp::Where,
        vec![kb.into(), v.into(), Arg::Float(0.0)],
        vec![],
    )?)
}

/// The attributes of a plain `prims.embedding` (no padding row, no max_norm, no scaling): the
/// gathers the VJP rules build.
pub(crate) fn plain_embedding_attrs() -> Vec<Attr> {
    vec![
        Attr::None,
        Attr::None,
        Attr::Float(2.0),
        Attr::Bool(false),
        Attr::Bool(false),
    ]
}

/// The error of a transform that meets a collective (`dist.*`, the only ops besides prims that
/// [`flatten_prims`] keeps): jvp and vmap have no rules for communication, and skipping the op
/// would leave its outputs undefined (an error about an unknown value, naming nothing the user
/// wrote).
pub(crate) fn collective_refused(transform: &'static str, p: &BoundSymbol) -> TransformError {
    TransformError::NoRule {
        op: p.op.qualified_name(),
        transform,
        reason: "collectives are not transformed: apply ddp/fsdp to the transformed trace instead"
            .into(),
    }
}
