//! Creation ops: constants, ranges and random tensors.

use super::attrs::{device_attr, dtype_attr, float, int, ints, num_attr, opt_num};
use super::operands::{one, Num};
use super::{CResult, Out};
use crate::convert::{device, kind};
use crate::executor::Kernel;
use tch::{Scalar, Tensor};
use thunder_ir::{BoundSymbol, PrimOp, TorchOp};

/// `full`, `iota`, `uniform` and `randn`.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    Ok(Some(match p {
        Full => {
            let shape = ints(&at[0])?;
            let value = num_attr(&at[1])?;
            let dev = device(device_attr(&at[2])?);
            let k = kind(dtype_attr(&at[3])?);
            Box::new(move |_| one(Tensor::f_full(shape.as_slice(), value.scalar(), (k, dev))?))
        }
        Iota => {
            let len = int(&at[0])?;
            let (start, step) = (num_attr(&at[1])?, num_attr(&at[2])?);
            let dev = device(device_attr(&at[3])?);
            let k = kind(dtype_attr(&at[4])?);
            Box::new(move |_| {
                // start + i * step, computed in the target dtype like Lightning Thunder's iota.
                let i = Tensor::f_arange(Scalar::int(len), (k, dev))?;
                one(i
                    .f_mul_scalar(step.scalar())?
                    .f_add_scalar(start.scalar())?
                    .f_to_kind(k)?)
            })
        }
        Uniform => {
            let shape = ints(&at[0])?;
            let (lo, hi) = (float(&at[1])?, float(&at[2])?);
            let dev = device(device_attr(&at[3])?);
            let k = kind(dtype_attr(&at[4])?);
            Box::new(move |_| {
                let mut t = Tensor::f_empty(shape.as_slice(), (k, dev))?;
                let _ = t.f_uniform_(lo, hi)?;
                one(t)
            })
        }
        Randn => {
            let shape = ints(&at[0])?;
            let dev = device(device_attr(&at[1])?);
            let k = kind(dtype_attr(&at[2])?);
            Box::new(move |_| one(Tensor::f_randn(shape.as_slice(), (k, dev))?))
        }
        _ => return Ok(None),
    }))
}

/// `zeros`, `ones`, `full` and `arange`, of the trace's dtype, shape and device.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let (out_shape, out_kind, out_device) = (out.shape.clone(), out.kind, out.device);
    Ok(Some(match t {
        // Creation: PyTorch's dtype and device inference is in the decomposition (and checked
        // against PyTorch in thunder-ir's tests); the kernel creates what the trace says.
        T::Zeros => Box::new(move |_| {
            one(Tensor::f_zeros(
                out_shape.as_slice(),
                (out_kind, out_device),
            )?)
        }),
        T::Ones => Box::new(move |_| {
            one(Tensor::f_ones(
                out_shape.as_slice(),
                (out_kind, out_device),
            )?)
        }),
        T::Full => {
            let value = num_attr(&at[1])?;
            Box::new(move |_| {
                one(Tensor::f_full(
                    out_shape.as_slice(),
                    value.scalar(),
                    (out_kind, out_device),
                )?)
            })
        }
        T::Arange => {
            // `start` and `step` left out are PyTorch's defaults, 0 and 1.
            let start = opt_num(&at[0])?.unwrap_or(Num::Int(0));
            let end = num_attr(&at[1])?;
            let step = opt_num(&at[2])?.unwrap_or(Num::Int(1));
            Box::new(move |_| {
                one(Tensor::f_arange_start_step(
                    start.scalar(),
                    end.scalar(),
                    step.scalar(),
                    (out_kind, out_device),
                )?)
            })
        }
        _ => return Ok(None),
    }))
}
