//! `prims.aten` and `prims.aten_vjp`: ATen operators called by name through libtorch's
//! dispatcher (see [`thunder_ir::ops::aten`] and [`crate::shim::AtenOp`]), looked up once per
//! plan.
//!
//! Each run checks what the operator returned against the trace's metadata (count, and the
//! dtype and shape of every output the trace reads): the metadata came from PyTorch's fake
//! tensors, and a disagreement is an error, never a value of the wrong shape flowing on.

use super::error::CompileError;
use super::operands::tensor_list;
use super::CResult;
use crate::convert::kind;
use crate::executor::{Kernel, KernelError, Outputs, RtValue};
use crate::shim::AtenOp;
use thunder_ir::ops::aten::{vjp_indices, AtenCall};
use thunder_ir::{BoundSymbol, PrimOp, Trace};

/// What each output of `bsym` must be: its dtype and sizes, or `None` for an output nothing in
/// `trace` reads (its metadata is not checked: PyTorch's fake kernels and real kernels disagree
/// on some unused outputs, as `_embedding_bag`'s `offset2bag` when it is not needed).
type Expected = Vec<Option<(tch::Kind, Vec<i64>)>>;

fn expected(trace: &Trace, bsym: &BoundSymbol) -> CResult<Expected> {
    let read: std::collections::HashSet<thunder_ir::Value> = trace
        .walk()
        .into_iter()
        .flat_map(|b| b.inputs())
        .chain(trace.outputs.iter().copied())
        .collect();
    bsym.outputs
        .iter()
        .map(|&v| {
            let t = trace
                .values
                .get(v.index())
                .and_then(|i| i.ty.as_tensor())
                .ok_or(CompileError::NotATensor("an ATen call"))?;
            Ok(read.contains(&v).then(|| {
                (
                    kind(t.dtype),
                    t.shape.sizes().iter().map(|&s| s as i64).collect(),
                )
            }))
        })
        .collect()
}

fn check(op: &str, got: Vec<tch::Tensor>, want: &Expected) -> Result<Outputs, KernelError> {
    if got.len() != want.len() {
        return Err(KernelError(format!(
            "aten.{op} returned {} tensors, the trace expects {}",
            got.len(),
            want.len()
        )));
    }
    got.into_iter()
        .zip(want)
        .enumerate()
        .map(|(i, (t, w))| {
            let Some((k, s)) = w else {
                return Ok(RtValue::Tensor(t));
            };
            if t.kind() != *k || t.size() != *s {
                return Err(KernelError(format!(
                    "aten.{op}'s output {i} is {:?} of sizes {:?}, the trace expects {k:?} of sizes {s:?} (PyTorch's metadata of the call disagrees with the call)",
                    t.kind(),
                    t.size()
                )));
            }
            Ok(RtValue::Tensor(t))
        })
        .collect()
}

/// The kernel of a `prims.aten` or `prims.aten_vjp` call.
pub(super) fn prim(trace: &Trace, p: PrimOp, bsym: &BoundSymbol) -> CResult<Kernel> {
    let ir = |e: thunder_ir::IrError| CompileError::Ir(e.to_string());
    let call = AtenCall::from_attrs(&bsym.attrs).map_err(ir)?;
    let want = expected(trace, bsym)?;
    // Found once, here: an operator this libtorch lacks is a compile error.
    let op = AtenOp::find(&call).map_err(|e| CompileError::Ir(e.0))?;
    match p {
        PrimOp::Aten => Ok(Box::new(move |args| {
            let ts = tensor_list(args, 0)?;
            let got = op.call(&ts, want.len())?;
            check(&call.op, got, &want)
        })),
        PrimOp::AtenVjp => {
            let (cts, wrt) = vjp_indices(&bsym.attrs).map_err(ir)?;
            Ok(Box::new(move |args| {
                let ts = tensor_list(args, 0)?;
                let n = ts.len().checked_sub(cts.len()).ok_or_else(|| {
                    KernelError(format!(
                        "aten.{}'s VJP: fewer operands than cotangents",
                        call.op
                    ))
                })?;
                let got = op.vjp(&ts[..n], &cts, &ts[n..], &wrt)?;
                check(&call.op, got, &want)
            }))
        }
        other => Err(CompileError::NoPrimKernel(other.name())),
    }
}
