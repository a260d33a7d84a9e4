//! Creation ops: `full`, `iota`, and the random `uniform` and `randn`.
//!
//! They take no tensor operands, so they have nothing to differentiate (no VJP or JVP rule: a
//! created value never depends on the inputs) and nothing batched: vmap makes them once, except
//! the random ones, which follow [`Randomness`].

use super::context::attr_ints;
use crate::vmap::Randomness;
use crate::{Result, TransformError};
use thunder_ir::{Attr, BoundSymbol, PrimOp, TraceBuilder, Value};

/// The batching rule of a random prim (it has no tensor operands): refused, one draw shared by
/// every example, or one draw per example (its shape with the batch dim in front).
pub(super) fn random_vmap(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    batch: usize,
    randomness: Randomness,
) -> Result<Vec<(Value, bool)>> {
    match randomness {
        Randomness::Error => Err(TransformError::Pass {
            pass: "vmap".into(),
            message: format!(
                "prims.{} is random: choose what each example sees with randomness Same or Different (torch.func.vmap's randomness=\"same\"/\"different\"); the default refuses, as PyTorch's does",
                op.name()
            ),
        }),
        Randomness::Same => {
            let v = b.prim(op, Vec::new(), p.attrs.clone())?;
            Ok(vec![(v, false)])
        }
        Randomness::Different => {
            let mut attrs = p.attrs.clone();
            let mut shape = vec![batch as i64];
            shape.extend(attr_ints(&p.attrs[0]));
            attrs[0] = Attr::Ints(shape);
            let v = b.prim(op, Vec::new(), attrs)?;
            Ok(vec![(v, true)])
        }
    }
}
