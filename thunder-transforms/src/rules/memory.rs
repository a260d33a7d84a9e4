//! Ops that write into an operand: `copy_`.
//!
//! - VJP: refused: differentiate the functional program (the value it copies) instead.
//! - JVP: none.
//! - Batching: the copy of batched values into a batched destination; writing a batch into a
//!   shared tensor is refused, as `torch.func.vmap` refuses it.

use super::context::{not_written, Batch, Vjp};
use crate::util::no_rule;
use crate::{Result, TransformError};
use thunder_ir::{PrimOp, TraceBuilder, Value};

/// The VJP rule of an op that writes in place: a refusal.
pub(super) fn vjp(cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    match cx.op {
        PrimOp::Copy_ => Err(no_rule(
            "VJP",
            cx.op,
            "it writes into copy_to in place; differentiate the functional program (the value it copies) instead",
        )),
        other => Err(not_written("VJP", other)),
    }
}

/// The batching rule of an op that writes in place.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    let args = cx.all_batched(b)?;
    match cx.op {
        PrimOp::Copy_ => {
            if !cx.batched(&cx.p.args[1]) {
                return Err(TransformError::Pass {
                    pass: "vmap".into(),
                    message: "copy_ would write a batched value into a tensor that is not batched; batch copy_to too (torch.func.vmap refuses this as well)".into(),
                });
            }
            Ok(b.prim(PrimOp::Copy_, args, vec![])?)
        }
        other => Err(not_written("batching", other)),
    }
}
