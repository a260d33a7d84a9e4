//! Indexing: `take`, gathers and scatter-adds (prims), and the torch-level `gather` and
//! `index_select`.

use super::attrs::int;
use super::error::CompileError;
use super::operands::{one, tensor};
use super::{CResult, Out};
use crate::executor::Kernel;
use thunder_ir::{BoundSymbol, PrimOp, TorchOp, ValueType};

/// `take`, `take_along_axis`, `gather`, `index_add` and `scatter_add`.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    let out0 = &out.ty;
    Ok(Some(match p {
        Take => {
            let dim = int(&at[0])?;
            let out_shape: Vec<i64> = match &out0 {
                ValueType::Tensor(t) => t.shape.sizes().iter().map(|&s| s as i64).collect(),
                ValueType::Number(_) => return Err(CompileError::NotATensor("take")),
            };
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let idx = tensor(args, 1)?.f_reshape([-1i64].as_slice())?;
                let d = if dim < 0 {
                    dim + a.dim().max(1) as i64
                } else {
                    dim
                };
                let r = if a.dim() == 0 {
                    a.f_reshape([1i64].as_slice())?.f_index_select(0, &idx)?
                } else {
                    a.f_index_select(d, &idx)?
                };
                one(r.f_reshape(out_shape.as_slice())?)
            })
        }
        TakeAlongAxis | Gather => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_gather(dim, tensor(args, 1)?, false)?))
        }
        IndexAdd => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_index_add(dim, tensor(args, 1)?, tensor(args, 2)?)?)
            })
        }
        ScatterAdd => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_scatter_add(dim, tensor(args, 1)?, tensor(args, 2)?)?)
            })
        }
        _ => return Ok(None),
    }))
}

/// `gather` and `index_select`: PyTorch's ATen calls.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    Ok(Some(match t {
        T::Gather => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_gather(dim, tensor(args, 1)?, false)?))
        }
        T::IndexSelect => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_index_select(dim, tensor(args, 1)?)?))
        }
        _ => return Ok(None),
    }))
}
