//! Collectives (`dist.*`, no row in the op table): the cotangent goes through the adjoint
//! collective, synchronously (the DDP and FSDP transforms schedule their own asynchronous ones).
//! jvp and vmap have no rules for them.

use crate::{Result, TransformError};
use thunder_ir::{Arg, Attr, BoundSymbol, DistOp, Op, PrimOp, TraceBuilder, Value};

/// The VJP of a collective: all_reduce's is itself, all_gather's a reduce_scatter, reduce_scatter's
/// an all_gather (divided by the world size for `avg`); `wait` passes the cotangent on.
pub(super) fn vjp(
    b: &mut TraceBuilder,
    op: DistOp,
    p: &BoundSymbol,
    g: Value,
) -> Result<Vec<(Value, Value)>> {
    use DistOp::*;
    let Some(x) = p.args.first().and_then(Arg::as_value) else {
        return Ok(Vec::new());
    };
    let no_rule = |reason: &str| TransformError::NoRule {
        op: Op::Dist(op).qualified_name(),
        transform: "VJP",
        reason: reason.to_string(),
    };
    let world = op.world_size(&p.attrs).unwrap_or(1);
    let reduce = match p.attrs.first() {
        Some(Attr::Str(r)) => r.as_str(),
        _ => "",
    };
    let gx = match op {
        Wait => g,
        AllReduce if reduce == "sum" || reduce == "avg" => b.all_reduce(g, reduce, world, false)?,
        AllGather => b.reduce_scatter(g, "sum", world, false)?,
        ReduceScatter if reduce == "sum" => b.all_gather(g, world, false)?,
        ReduceScatter if reduce == "avg" => {
            let full = b.all_gather(g, world, false)?;
            b.prim(
                PrimOp::Div,
                vec![full.into(), Arg::Float(world as f64)],
                vec![],
            )?
        }
        Broadcast => {
            return Err(no_rule(
                "the gradient of a broadcast needs the rank; broadcast outside differentiated code",
            ))
        }
        _ => {
            return Err(no_rule(&format!(
                "op={reduce:?} has no gradient (use sum or avg)"
            )))
        }
    };
    Ok(vec![(x, gx)])
}
