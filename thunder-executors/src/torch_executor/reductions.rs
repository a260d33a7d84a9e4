//! Reductions: sums (and running sums), extrema, products, variances and arg-extrema.

use super::attrs::{boolean, float, int, ints, opt_dims, opt_dtype_attr, opt_int};
use super::error::CompileError;
use super::operands::{one, tensor};
use super::{CResult, Out};
use crate::convert::kind;
use crate::executor::{Kernel, KernelError};
use tch::Scalar;
use thunder_ir::{BoundSymbol, PrimOp, TorchOp, ValueType};

/// The kernel of a reduction prim (`sum`, `amax`, `amin`, `prod`, `var`).
pub(super) fn reduction_prim(p: PrimOp, bsym: &BoundSymbol, out: &Out) -> CResult<Kernel> {
    use PrimOp::*;
    let at = &bsym.attrs;
    let out0 = out.ty.clone();
    let dims = ints(&at[0])?;
    let out_kind = match &out0 {
        ValueType::Tensor(t) => kind(t.dtype),
        ValueType::Number(_) => return Err(CompileError::NotATensor("a reduction")),
    };
    let correction = if p == Var { float(&at[1])? } else { 0.0 };
    Ok(Box::new(move |args| {
        let a = tensor(args, 0)?;
        // An empty dim list reduces nothing for prims, but everything for ATen.
        if dims.is_empty() && !(p == Var && a.dim() == 0) {
            return one(a.f_to_kind(out_kind)?);
        }
        one(match p {
            Sum => a.f_sum_dim_intlist(dims.as_slice(), false, out_kind)?,
            Amax => a.f_amax(dims.as_slice(), false)?,
            Amin => a.f_amin(dims.as_slice(), false)?,
            Prod => {
                let mut sorted = dims.clone();
                sorted.sort_unstable_by(|x, y| y.cmp(x));
                let mut r = a.shallow_clone();
                for d in sorted {
                    r = r.f_prod_dim_int(d, false, out_kind)?;
                }
                r
            }
            Var => a.f_var_correction(dims.as_slice(), Scalar::float(correction), false)?,
            _ => return Err(KernelError(format!("{p:?} is not a reduction"))),
        })
    }))
}

/// `argmax` and `argmin`.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    Ok(Some(match p {
        Argmax | Argmin => {
            let dim = opt_int(&at[0])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if p == Argmax {
                    a.f_argmax(dim, false)?
                } else {
                    a.f_argmin(dim, false)?
                })
            })
        }
        _ => return Ok(None),
    }))
}

/// `sum`, `mean`, `cumsum`, `amax`, `amin`, `var`, `std`, `argmax` and `argmin`.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    Ok(Some(match t {
        T::Sum | T::Mean => {
            let dims = opt_dims(&at[0])?;
            let keepdim = boolean(&at[1])?;
            let dt = opt_dtype_attr(&at[2])?.map(kind);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let d = dims.as_deref();
                one(if t == T::Sum {
                    a.f_sum_dim_intlist(d, keepdim, dt)?
                } else {
                    a.f_mean_dim(d, keepdim, dt)?
                })
            })
        }
        T::Cumsum => {
            let dim = int(&at[0])?;
            let dt = opt_dtype_attr(&at[1])?.map(kind);
            Box::new(move |args| one(tensor(args, 0)?.f_cumsum(dim, dt)?))
        }
        T::Amax | T::Amin => {
            let dims = opt_dims(&at[0])?.unwrap_or_default();
            let keepdim = boolean(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Amax {
                    a.f_amax(dims.as_slice(), keepdim)?
                } else {
                    a.f_amin(dims.as_slice(), keepdim)?
                })
            })
        }
        T::Var | T::Std => {
            let dims = opt_dims(&at[0])?;
            let correction = float(&at[1])?;
            let keepdim = boolean(&at[2])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let d = dims.as_deref();
                let c = Scalar::float(correction);
                one(if t == T::Var {
                    a.f_var_correction(d, c, keepdim)?
                } else {
                    a.f_std_correction(d, c, keepdim)?
                })
            })
        }
        T::Argmax | T::Argmin => {
            let dim = opt_int(&at[0])?;
            let keepdim = boolean(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Argmax {
                    a.f_argmax(dim, keepdim)?
                } else {
                    a.f_argmin(dim, keepdim)?
                })
            })
        }
        _ => return Ok(None),
    }))
}
