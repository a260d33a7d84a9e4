//! Shape ops and views: broadcasts, reshapes, permutations, slices, squeezes, concatenations,
//! padding, flips, splits.

use super::attrs::{int, ints, num_attr, opt_num};
use super::error::CompileError;
use super::operands::{num_f64, one, tensor, tensor_list, Num};
use super::{CResult, KResult, Out};
use crate::executor::{Kernel, RtValue};
use tch::Tensor;
use thunder_ir::{Attr, BoundSymbol, PrimOp, TorchOp};

/// Broadcasts, reshapes, transposes, slices, squeezes, `cat`, `pad` and `flip`.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, _: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    Ok(Some(match p {
        BroadcastInDim => {
            let shape = ints(&at[0])?;
            let bdims = ints(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let a_shape = a.size();
                let mut view = vec![1i64; shape.len()];
                for (i, &d) in bdims.iter().enumerate() {
                    view[d as usize] = a_shape[i];
                }
                one(a
                    .f_reshape(view.as_slice())?
                    .f_expand(shape.as_slice(), false)?)
            })
        }
        Reshape => {
            let shape = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_reshape(shape.as_slice())?))
        }
        Transpose => {
            let perm = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_permute(perm.as_slice())?))
        }
        Slice => {
            let (start, end, strides) = (ints(&at[0])?, ints(&at[1])?, ints(&at[2])?);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let size = a.size();
                let mut r = a.shallow_clone();
                for d in 0..start.len() {
                    if start[d] != 0 || end[d] != size[d] || strides[d] != 1 {
                        r = r.f_slice(d as i64, start[d], end[d], strides[d])?;
                    }
                }
                one(r)
            })
        }
        Squeeze => {
            let dims = ints(&at[0])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if a.dim() == 0 {
                    a.shallow_clone()
                } else {
                    a.f_squeeze_dims(dims.as_slice())?
                })
            })
        }
        Cat => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(Tensor::f_cat(&tensor_list(args, 0)?, dim)?))
        }
        Pad => {
            let value = num_attr(&at[0])?;
            let config: Vec<Vec<i64>> = match &at[1] {
                Attr::IntLists(v) => v.clone(),
                other => {
                    return Err(CompileError::NamedAttr {
                        name: "padding_config",
                        expected: "int lists",
                        got: other.clone(),
                    })
                }
            };
            Box::new(move |args| one(pad(tensor(args, 0)?, value, &config)?))
        }
        Flip => {
            let dims = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_flip(dims.as_slice())?))
        }
        _ => return Ok(None),
    }))
}

/// `prims.pad`: interior padding by copying into a strided view of a filled buffer, then
/// low/high padding (negative values crop) with ATen's constant `pad`.
fn pad(a: &Tensor, value: Num, config: &[Vec<i64>]) -> KResult<Tensor> {
    let size = a.size();
    let x = if config.iter().any(|c| c[2] > 0) {
        let dilated: Vec<i64> = size
            .iter()
            .zip(config)
            .map(|(&s, c)| s + (s - 1).max(0) * c[2])
            .collect();
        let buf = Tensor::f_full(dilated.as_slice(), value.scalar(), (a.kind(), a.device()))?;
        let mut view = buf.shallow_clone();
        for (d, c) in config.iter().enumerate() {
            view = view.f_slice(d as i64, 0, dilated[d], c[2] + 1)?;
        }
        view.f_copy_(a)?;
        buf
    } else {
        a.shallow_clone()
    };
    // ATen takes (low, high) pairs from the last dim backwards.
    let pads: Vec<i64> = config.iter().rev().flat_map(|c| [c[0], c[1]]).collect();
    if pads.iter().all(|&p| p == 0) {
        return Ok(x);
    }
    let v = match value {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
        Num::Bool(b) => b as i64 as f64,
    };
    Ok(x.f_pad(pads.as_slice(), "constant", v)?)
}

/// Reshapes and views, permutations, `flatten`, `squeeze`, `expand`, `split`, `narrow`, `pad`,
/// `repeat_interleave`, `triu`, `tril`, `cat` and `stack`.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let out_shape = out.shape.clone();
    Ok(Some(match t {
        // Shape ops: the output shape is known from the trace, so -1 and dim wrapping are resolved.
        T::Reshape | T::View | T::Unsqueeze => {
            Box::new(move |args| one(tensor(args, 0)?.f_reshape(out_shape.as_slice())?))
        }
        T::Permute => {
            let dims = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_permute(dims.as_slice())?))
        }
        T::Transpose => {
            let (d0, d1) = (int(&at[0])?, int(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_transpose(d0, d1)?))
        }
        T::Flatten => {
            let (s, e) = (int(&at[0])?, int(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_flatten(s, e)?))
        }
        T::Squeeze => {
            let dims = match &at[0] {
                Attr::None => None,
                a => Some(ints(a)?),
            };
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(match &dims {
                    None => a.f_squeeze()?,
                    Some(d) => a.f_squeeze_dims(d.as_slice())?,
                })
            })
        }
        T::Expand => {
            let shape = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_expand(shape.as_slice(), false)?))
        }
        T::Split => {
            let dim = int(&at[1])?;
            match &at[0] {
                Attr::Int(size) => {
                    let size = *size;
                    Box::new(move |args| {
                        Ok(tensor(args, 0)?
                            .f_split(size, dim)?
                            .into_iter()
                            .map(RtValue::Tensor)
                            .collect())
                    })
                }
                Attr::Ints(sections) => {
                    let sections = sections.clone();
                    Box::new(move |args| {
                        Ok(tensor(args, 0)?
                            .f_split_with_sizes(sections.as_slice(), dim)?
                            .into_iter()
                            .map(RtValue::Tensor)
                            .collect())
                    })
                }
                other => {
                    return Err(CompileError::NamedAttr {
                        name: "split_size_or_sections",
                        expected: "an int or ints",
                        got: other.clone(),
                    })
                }
            }
        }
        T::Narrow => {
            let (dim, start, len) = (int(&at[0])?, int(&at[1])?, int(&at[2])?);
            Box::new(move |args| one(tensor(args, 0)?.f_narrow(dim, start, len)?))
        }
        T::Pad => {
            // `F.pad`'s ATen call: `pad(input, pad, mode, value)` (constant mode: constant_pad_nd).
            let pad = ints(&at[0])?;
            let mode = match &at[1] {
                Attr::Str(s) => s.clone(),
                other => {
                    return Err(CompileError::NamedAttr {
                        name: "mode",
                        expected: "a string",
                        got: other.clone(),
                    })
                }
            };
            let value = opt_num(&at[2])?.map(num_f64);
            Box::new(move |args| one(tensor(args, 0)?.f_pad(pad.as_slice(), &mode, value)?))
        }
        T::Triu | T::Tril => {
            let diagonal = int(&at[0])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Triu {
                    a.f_triu(diagonal)?
                } else {
                    a.f_tril(diagonal)?
                })
            })
        }
        T::RepeatInterleave => {
            let (repeats, dim) = (int(&at[0])?, int(&at[1])?);
            Box::new(move |args| {
                one(tensor(args, 0)?.f_repeat_interleave_self_int(repeats, dim, None)?)
            })
        }
        T::Cat | T::Stack => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                let ts = tensor_list(args, 0)?;
                one(if t == T::Cat {
                    Tensor::f_cat(&ts, dim)?
                } else {
                    Tensor::f_stack(&ts, dim)?
                })
            })
        }
        _ => return Ok(None),
    }))
}
