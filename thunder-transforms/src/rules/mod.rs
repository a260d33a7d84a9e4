//! The rules of the transforms, filed by op family: one file per family of thunder-ir's op table
//! ([`thunder_ir::ops::info::Family`]) holds that family's VJP ([`grad`](mod@crate::grad)), JVP
//! ([`jvp`](mod@crate::jvp)) and batching ([`vmap`](mod@crate::vmap)) rules, so that one
//! family's rules for every transform read together, and adding an op means touching one file.
//!
//! | file | prims |
//! |------|-------|
//! | [`elementwise`] | unary math, binary arithmetic and comparisons, `where`, `convert_element_type` |
//! | [`reduction`] | `sum`, `amax`, `amin`, `prod`, `var`, `argmax`, `argmin` |
//! | [`shape`] | `broadcast_in_dim`, `reshape`, `transpose`, `slice`, `squeeze`, `cat`, `pad`, `flip`, `device_put` |
//! | [`indexing`] | `take`, `take_along_axis`, `gather`, `index_add`, `scatter_add` |
//! | [`nn`] | `matmul`, `linear`, `embedding`, `embedding_backward` |
//! | [`creation`] | `full`, `iota`, and the random `uniform` and `randn` (batching only: nothing to differentiate) |
//! | [`memory`] | `copy_` |
//! | [`opaque`] | `aten`, `aten_vjp`: ATen operators called by name (VJP through ATen's autograd) |
//!
//! [`torch`] has the VJP rules of the torch-level ops that grad differentiates whole (their row
//! says `grad(WHOLE)`), and [`dist`] those of the collectives, which have no row. The functions
//! here dispatch on the op's family; the transforms' drivers (walking the trace, cotangent and
//! tangent bookkeeping, options) stay in `grad.rs`, `jvp.rs` and `vmap.rs`. A prim without a rule
//! is a [`TransformError::NoRule`](crate::TransformError::NoRule) naming it, never a wrong answer.

mod context;
pub mod creation;
pub mod dist;
pub mod elementwise;
pub mod indexing;
pub mod memory;
pub mod nn;
pub mod opaque;
pub mod reduction;
pub mod shape;
pub mod torch;

pub(crate) use context::batched_copy;

use crate::vmap::Randomness;
use crate::Result;
use context::{not_written, Batch, Jvp, Vjp};
use std::collections::HashMap;
use thunder_ir::ops::info::Family;
use thunder_ir::{BoundSymbol, Op, PrimOp, Trace, TraceBuilder, Value};

/// The contributions of the call `p` of `op` to the cotangents of its (original) tensor operands,
/// given the cotangent `g` of its (first) output; `m` maps the original values to the new trace's.
pub(crate) fn vjp(
    b: &mut TraceBuilder,
    op: Op,
    p: &BoundSymbol,
    g: Value,
    m: &HashMap<Value, Value>,
    trace: &Trace,
) -> Result<Vec<(Value, Value)>> {
    let op = match op {
        Op::Prim(op) => op,
        Op::Torch(t) => return torch::vjp(b, t, p, g, m, trace),
        Op::Dist(d) => return dist::vjp(b, d, p, g),
    };
    let cx = Vjp::new(op, p, g, m, trace);
    match op.info().family {
        Family::Elementwise => elementwise::vjp(b, &cx),
        Family::Reduction => reduction::vjp(b, &cx),
        Family::Shape => shape::vjp(b, &cx),
        Family::Indexing => indexing::vjp(b, &cx),
        Family::Nn => nn::vjp(b, &cx),
        Family::Memory => memory::vjp(&cx),
        // `aten` has several outputs: the driver calls `opaque::vjp` with all their cotangents;
        // `aten_vjp` is not differentiated again.
        Family::Opaque => Err(opaque::refuse("VJP", op)),
        // Creation ops have no operands to differentiate; no prim is a composite.
        Family::Creation | Family::Composite => Err(not_written("VJP", op)),
    }
}

/// The tangent of the (first) output of the call `p` of `op`, from the tangents `tan` of its
/// operands (those that have one).
pub(crate) fn jvp(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    m: &HashMap<Value, Value>,
    tan: &HashMap<Value, Value>,
    trace: &Trace,
) -> Result<Value> {
    let cx = Jvp::new(op, p, m, tan, trace);
    match op.info().family {
        Family::Elementwise => elementwise::jvp(b, &cx),
        Family::Reduction => reduction::jvp(b, &cx),
        Family::Shape => shape::jvp(b, &cx),
        Family::Indexing => indexing::jvp(b, &cx),
        Family::Nn => nn::jvp(b, &cx),
        Family::Opaque => Err(opaque::refuse("JVP", op)),
        Family::Memory | Family::Creation | Family::Composite => Err(not_written("JVP", op)),
    }
}

/// The outputs of the call `p` of `op` over a batch of `batch` examples, each with whether it is
/// batched (batch dim first); `m` maps the original values to the new trace's, with the same
/// flag. Random ops follow `randomness`; a call with no batched operand stays as it is.
pub(crate) fn vmap(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    m: &HashMap<Value, (Value, bool)>,
    batch: usize,
    randomness: Randomness,
) -> Result<Vec<(Value, bool)>> {
    if op.is_random() {
        return creation::random_vmap(b, op, p, batch, randomness);
    }
    let cx = Batch::new(op, p, m, batch);
    if !cx.any_batched() {
        return cx.unbatched(b);
    }
    let v = match op.info().family {
        Family::Elementwise => elementwise::vmap(b, &cx)?,
        Family::Reduction => reduction::vmap(b, &cx)?,
        Family::Shape => shape::vmap(b, &cx)?,
        Family::Indexing => indexing::vmap(b, &cx)?,
        Family::Nn => nn::vmap(b, &cx)?,
        Family::Memory => memory::vmap(b, &cx)?,
        Family::Opaque => return Err(opaque::refuse("batching", op)),
        // Creation ops have no operands to batch; no prim is a composite.
        Family::Creation | Family::Composite => return Err(not_written("batching", op)),
    };
    Ok(vec![(v, true)])
}
