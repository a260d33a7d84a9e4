//! Elementwise ops: unary and binary math (on tensors and numbers, with PyTorch's promotion of
//! wrapped numbers), `where`, `masked_fill`, `clamp`, conversions and copies.

use super::attrs::{device_attr, dtype_attr, int, num_attr, opt_dtype_attr, opt_num};
use super::error::CompileError;
use super::operands::{num_f64, one, operand, tensor, to_number, Num, Operand};
use super::{CResult, KResult, Out};
use crate::convert::{device, kind};
use crate::executor::{Kernel, KernelError, RtValue};
use smallvec::smallvec;
use tch::Tensor;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, BoundSymbol, NumberType, PrimOp, TorchOp, Trace, ValueType};

/// `where(pred, x, y)` with tensors or numbers (bool numbers as 0-dim bool tensors, since
/// libtorch has no bool Scalar); `kind` types a number-only result.
fn where_op(pred: &Tensor, x: Operand<'_>, y: Operand<'_>, kind: tch::Kind) -> KResult<Tensor> {
    let boolean = |o: &Operand<'_>| -> KResult<Option<Tensor>> {
        Ok(match o {
            Operand::N(n @ Num::Bool(_)) => Some(n.tensor(tch::Kind::Bool)?),
            _ => None,
        })
    };
    let (bx, by) = (boolean(&x)?, boolean(&y)?);
    let x = bx.as_ref().map_or(x, Operand::T);
    let y = by.as_ref().map_or(y, Operand::T);
    Ok(match (x, y) {
        (Operand::T(a), Operand::T(b)) => a.f_where_self(pred, b)?,
        (Operand::T(a), Operand::N(n)) => a.f_where_scalarother(pred, n.scalar())?,
        (Operand::N(n), Operand::T(b)) => Tensor::f_where_scalarself(pred, n.scalar(), b)?,
        (Operand::N(a), Operand::N(b)) => a.tensor(kind)?.f_where_self(pred, &b.tensor(kind)?)?,
    })
}

fn unary_tensor(op: PrimOp, a: &Tensor) -> KResult<Tensor> {
    use PrimOp::*;
    Ok(match op {
        Abs => a.f_abs()?,
        Neg => a.f_neg()?,
        Exp => a.f_exp()?,
        Exp2 => a.f_exp2()?,
        Expm1 => a.f_expm1()?,
        Log => a.f_log()?,
        Log1p => a.f_log1p()?,
        Log2 => a.f_log2()?,
        Log10 => a.f_log10()?,
        Sqrt => a.f_sqrt()?,
        Rsqrt => a.f_rsqrt()?,
        Reciprocal => a.f_reciprocal()?,
        Sin => a.f_sin()?,
        Cos => a.f_cos()?,
        Tan => a.f_tan()?,
        Asin => a.f_asin()?,
        Acos => a.f_acos()?,
        Atan => a.f_atan()?,
        Sinh => a.f_sinh()?,
        Cosh => a.f_cosh()?,
        Tanh => a.f_tanh()?,
        Asinh => a.f_asinh()?,
        Acosh => a.f_acosh()?,
        Atanh => a.f_atanh()?,
        Erf => a.f_erf()?,
        Erfc => a.f_erfc()?,
        Erfinv => a.f_erfinv()?,
        Lgamma => a.f_lgamma()?,
        Digamma => a.f_digamma()?,
        Floor => a.f_floor()?,
        Ceil => a.f_ceil()?,
        Round => a.f_round()?,
        Trunc => a.f_trunc()?,
        Sign => a.f_sign()?,
        Signbit => a.f_signbit()?,
        IsFinite => a.f_isfinite()?,
        BitwiseNot => a.f_bitwise_not()?,
        Real => a.f_real()?.f_contiguous()?,
        Imag => a.f_imag()?.f_contiguous()?,
        _ => return Err(KernelError(format!("{op:?} is not unary"))),
    })
}

fn binary_tensors(op: PrimOp, a: &Tensor, b: &Tensor) -> KResult<Tensor> {
    use PrimOp::*;
    let integer = || {
        crate::convert::dtype(a.kind())
            .is_some_and(|d| d.category() <= thunder_ir::Category::Integer)
    };
    Ok(match op {
        Add => a.f_add(b)?,
        Sub => a.f_sub(b)?,
        Mul => a.f_mul(b)?,
        // prims.div keeps the dtype: integer division truncates, as in C (ltorch.div converts
        // integers to float first, so true division never reaches here with integers).
        Div if integer() => a.f_div_tensor_mode(b, "trunc")?,
        Div => a.f_div(b)?,
        Remainder => a.f_remainder_tensor(b)?,
        Fmod => a.f_fmod_tensor(b)?,
        Pow => a.f_pow(b)?,
        Atan2 => a.f_atan2(b)?,
        Maximum => a.f_maximum(b)?,
        Minimum => a.f_minimum(b)?,
        Eq => a.f_eq_tensor(b)?,
        Ne => a.f_ne_tensor(b)?,
        Lt => a.f_lt_tensor(b)?,
        Le => a.f_le_tensor(b)?,
        Gt => a.f_gt_tensor(b)?,
        Ge => a.f_ge_tensor(b)?,
        BitwiseAnd => a.f_bitwise_and_tensor(b)?,
        BitwiseOr => a.f_bitwise_or_tensor(b)?,
        BitwiseXor => a.f_bitwise_xor_tensor(b)?,
        ShiftLeft => a.f_bitwise_left_shift(b)?,
        ShiftRight => a.f_bitwise_right_shift(b)?,
        _ => return Err(KernelError(format!("{op:?} is not binary"))),
    })
}

/// A binary prim of a tensor and a number. Uses libtorch's scalar overloads where they exist, so
/// that the number is a "wrapped number" (never changes the result dtype), as in eager PyTorch.
fn binary_tensor_number(op: PrimOp, a: &Tensor, n: Num, number_first: bool) -> KResult<Tensor> {
    use PrimOp::*;
    if let Num::Bool(_) = n {
        // libtorch has no bool Scalar: a 0-dim bool tensor is the one that never promotes.
        let nt = n.tensor(tch::Kind::Bool)?;
        return if number_first {
            binary_tensors(op, &nt, a)
        } else {
            binary_tensors(op, a, &nt)
        };
    }
    let s = n.scalar();
    let commutative = matches!(
        op,
        Add | Mul | Eq | Ne | BitwiseAnd | BitwiseOr | BitwiseXor | Maximum | Minimum
    );
    if !number_first || commutative {
        let direct = match op {
            Add => Some(a.f_add_scalar(s)),
            Mul => Some(a.f_mul_scalar(s)),
            Sub => Some(a.f_sub_scalar(s)),
            Div if crate::convert::dtype(a.kind()).is_some_and(|d| d.is_inexact()) => {
                Some(a.f_div_scalar(s))
            }
            Pow => Some(a.f_pow_tensor_scalar(s)),
            Remainder => Some(a.f_remainder(s)),
            Fmod => Some(a.f_fmod(s)),
            Eq => Some(a.f_eq(s)),
            Ne => Some(a.f_ne(s)),
            Lt => Some(a.f_lt(s)),
            Le => Some(a.f_le(s)),
            Gt => Some(a.f_gt(s)),
            Ge => Some(a.f_ge(s)),
            BitwiseAnd => Some(a.f_bitwise_and(s)),
            BitwiseOr => Some(a.f_bitwise_or(s)),
            BitwiseXor => Some(a.f_bitwise_xor(s)),
            ShiftLeft => Some(a.f_bitwise_left_shift_tensor_scalar(s)),
            ShiftRight => Some(a.f_bitwise_right_shift_tensor_scalar(s)),
            // clamp_min/max propagate NaN of the tensor, as maximum/minimum do.
            Maximum => Some(a.f_clamp_min(s)),
            Minimum => Some(a.f_clamp_max(s)),
            _ => None,
        };
        if let Some(r) = direct {
            return Ok(r?);
        }
    } else {
        let mirrored = match op {
            Sub => Some(a.f_rsub_scalar(s)),
            Pow => Some(Tensor::f_pow_scalar(s, a)),
            Lt => Some(a.f_gt(s)),
            Le => Some(a.f_ge(s)),
            Gt => Some(a.f_lt(s)),
            Ge => Some(a.f_le(s)),
            _ => None,
        };
        if let Some(r) = mirrored {
            return Ok(r?);
        }
    }
    // No scalar overload: a 0-dim CPU tensor of the tensor's dtype.
    let nt = n.tensor(a.kind())?;
    if number_first {
        binary_tensors(op, &nt, a)
    } else {
        binary_tensors(op, a, &nt)
    }
}

/// The kernel of a unary, binary or ternary (`where`) prim: on tensors, or on numbers (in a
/// 0-dim tensor, read back as the output's number type).
pub(super) fn math_prim(
    trace: &Trace,
    p: PrimOp,
    bsym: &BoundSymbol,
    out: &Out,
) -> CResult<Kernel> {
    match p.class() {
        PrimClass::Unary => Ok(unary_prim(p, out)),
        PrimClass::Binary => Ok(binary_prim(trace, p, bsym, out)),
        PrimClass::Ternary => Ok(where_prim(out)),
        _ => Err(CompileError::NoPrimKernel(p.name())),
    }
}

/// A unary prim's kernel.
fn unary_prim(p: PrimOp, out: &Out) -> Kernel {
    let number_out = out.number;
    if matches!(out.ty, ValueType::Tensor(_)) {
        return Box::new(move |args| one(unary_tensor(p, tensor(args, 0)?)?));
    }
    Box::new(move |args| match operand(args, 0)? {
        Operand::T(a) => one(unary_tensor(p, a)?),
        Operand::N(n) => {
            let r = unary_tensor(p, &n.tensor(n.natural_kind())?)?;
            Ok(smallvec![to_number(
                &r,
                number_out.unwrap_or(NumberType::Float)
            )?])
        }
    })
}

/// A binary prim's kernel (the number dispatch only where an operand may be a number).
fn binary_prim(trace: &Trace, p: PrimOp, bsym: &BoundSymbol, out: &Out) -> Kernel {
    use PrimOp::*;
    let number_out = out.number;
    let is_tensor = |a: &Arg| match a {
        Arg::Value(v) => trace
            .values
            .get(v.index())
            .is_some_and(|i| i.ty.as_tensor().is_some()),
        _ => false,
    };
    if bsym.args.iter().all(is_tensor) {
        // The common case, without the number dispatch.
        return Box::new(move |args| one(binary_tensors(p, tensor(args, 0)?, tensor(args, 1)?)?));
    }
    Box::new(move |args| {
        let r = match (operand(args, 0)?, operand(args, 1)?) {
            (Operand::T(a), Operand::T(b)) => binary_tensors(p, a, b)?,
            (Operand::T(a), Operand::N(n)) => binary_tensor_number(p, a, n, false)?,
            (Operand::N(n), Operand::T(b)) => binary_tensor_number(p, b, n, true)?,
            (Operand::N(x), Operand::N(y)) => {
                let k = match number_out {
                    Some(NumberType::Bool) if !matches!(p, Eq | Ne | Lt | Le | Gt | Ge) => {
                        tch::Kind::Bool
                    }
                    _ if matches!((x, y), (Num::Float(_), _) | (_, Num::Float(_))) => {
                        tch::Kind::Double
                    }
                    _ if matches!((x, y), (Num::Int(_), _) | (_, Num::Int(_))) => tch::Kind::Int64,
                    _ => tch::Kind::Bool,
                };
                let r = binary_tensors(p, &x.tensor(k)?, &y.tensor(k)?)?;
                return Ok(smallvec![to_number(
                    &r,
                    number_out.unwrap_or(NumberType::Float)
                )?]);
            }
        };
        one(r)
    })
}

/// `where`'s kernel.
fn where_prim(out: &Out) -> Kernel {
    let (out0, number_out) = (out.ty.clone(), out.number);
    Box::new(move |args| {
        let pred = match operand(args, 0)? {
            Operand::T(t) => t.shallow_clone(),
            Operand::N(n) => n.tensor(tch::Kind::Bool)?,
        };
        let k = match &out0 {
            ValueType::Tensor(t) => kind(t.dtype),
            ValueType::Number(_) => tch::Kind::Double,
        };
        let r = where_op(&pred, operand(args, 1)?, operand(args, 2)?, k)?;
        if let Some(n) = number_out {
            return Ok(smallvec![to_number(&r, n)?]);
        }
        one(r)
    })
}

/// Conversions, `polygamma` and `copy_`.
pub(super) fn prim(p: PrimOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use PrimOp::*;
    let at = &bsym.attrs;
    let number_out = out.number;
    Ok(Some(match p {
        ConvertElementType => {
            let d = kind(dtype_attr(&at[0])?);
            Box::new(move |args| match operand(args, 0)? {
                Operand::T(a) => one(a.f_to_kind(d)?),
                Operand::N(n) => Ok(smallvec![to_number(
                    &n.tensor(n.natural_kind())?.f_to_kind(d)?,
                    number_out.unwrap_or(NumberType::Float)
                )?]),
            })
        }
        DevicePut => {
            let dev = device(device_attr(&at[0])?);
            Box::new(move |args| one(tensor(args, 0)?.f_to_device(dev)?))
        }
        Polygamma => {
            let order = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_polygamma(order)?))
        }
        Copy_ => Box::new(move |args| {
            let mut dst = tensor(args, 1)?.shallow_clone();
            dst.f_copy_(tensor(args, 0)?)?;
            one(dst)
        }),
        _ => return Ok(None),
    }))
}

/// A unary ATen call.
type UnaryAten = fn(&Tensor) -> Result<Tensor, tch::TchError>;

/// The unary ATen call of a torch-level op (PyTorch's own promotion included), `None` for ops
/// that are not plain unary math.
fn unary_aten(t: TorchOp) -> Option<UnaryAten> {
    use TorchOp as T;
    Some(match t {
        T::Abs => Tensor::f_abs,
        T::Neg => Tensor::f_neg,
        T::Exp => Tensor::f_exp,
        T::Expm1 => Tensor::f_expm1,
        T::Log => Tensor::f_log,
        T::Log1p => Tensor::f_log1p,
        T::Log2 => Tensor::f_log2,
        T::Sqrt => Tensor::f_sqrt,
        T::Rsqrt => Tensor::f_rsqrt,
        T::Reciprocal => Tensor::f_reciprocal,
        T::Sin => Tensor::f_sin,
        T::Cos => Tensor::f_cos,
        T::Tan => Tensor::f_tan,
        T::Tanh => Tensor::f_tanh,
        T::Erf => Tensor::f_erf,
        T::Floor => Tensor::f_floor,
        T::Ceil => Tensor::f_ceil,
        T::Round => Tensor::f_round,
        T::Trunc => Tensor::f_trunc,
        T::Sign => Tensor::f_sign,
        T::IsFinite => Tensor::f_isfinite,
        T::BitwiseNot => Tensor::f_bitwise_not,
        T::LogicalNot => Tensor::f_logical_not,
        _ => return None,
    })
}

/// The prim whose ATen call has the semantics of a binary torch-level op (ATen promotes and
/// broadcasts by itself): the prim of the op's row (`div` is special-cased where it is used:
/// ATen's div is true division whatever the dtypes).
fn binary_as_prim(t: TorchOp) -> Option<PrimOp> {
    let info = t.info();
    match (info.class, info.prim) {
        (PrimClass::Binary, Some((prim, _))) => Some(prim),
        _ => None,
    }
}

/// A binary torch-level op on two operands, as ATen computes it.
fn torch_binary(
    t: TorchOp,
    x: Operand<'_>,
    y: Operand<'_>,
    number_out: Option<NumberType>,
) -> KResult<RtValue> {
    let prim = binary_as_prim(t).unwrap_or(PrimOp::Add);
    let r = match (t, x, y) {
        // True division whatever the dtypes (ATen's div promotes integers to float).
        (TorchOp::Div, Operand::T(a), Operand::T(b)) => a.f_div(b)?,
        (TorchOp::Div, Operand::T(a), Operand::N(n)) => a.f_div_scalar(n.scalar())?,
        (TorchOp::Div, Operand::N(n), Operand::T(b)) => {
            let k = if crate::convert::dtype(b.kind()).is_some_and(|d| d.is_inexact()) {
                b.kind()
            } else {
                tch::Kind::Float
            };
            n.tensor(k)?.f_div(b)?
        }
        (_, Operand::T(a), Operand::T(b)) => binary_tensors(prim, a, b)?,
        (_, Operand::T(a), Operand::N(n)) => binary_tensor_number(prim, a, n, false)?,
        (_, Operand::N(n), Operand::T(b)) => binary_tensor_number(prim, b, n, true)?,
        (_, Operand::N(a), Operand::N(b)) => {
            let (ta, tb) = (a.tensor(a.natural_kind())?, b.tensor(b.natural_kind())?);
            let r = if t == TorchOp::Div {
                ta.f_div(&tb)?
            } else {
                binary_tensors(prim, &ta, &tb)?
            };
            return to_number(&r, number_out.unwrap_or(NumberType::Float));
        }
    };
    Ok(RtValue::Tensor(r))
}

/// Unary and binary torch-level math (with `alpha`), `where`, `masked_fill`, `clamp` and
/// `to`.
pub(super) fn torch(t: TorchOp, bsym: &BoundSymbol, out: &Out) -> CResult<Option<Kernel>> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let (number_out, out_kind) = (out.number, out.kind);
    if let Some(f) = unary_aten(t) {
        return Ok(Some(Box::new(move |args| one(f(tensor(args, 0)?)?))));
    }
    if binary_as_prim(t).is_some() {
        let alpha = match (t, at.first()) {
            (T::Add | T::Sub, Some(a)) if !matches!(a, Attr::None) => Some(num_attr(a)?),
            _ => None,
        };
        return Ok(Some(Box::new(move |args| {
            let (x, y) = (operand(args, 0)?, operand(args, 1)?);
            // alpha scales the second operand first (ATen fuses it; the difference is rounding).
            let scaled;
            let y = match (alpha, y) {
                (Some(al), Operand::T(b)) => {
                    scaled = b.f_mul_scalar(al.scalar())?;
                    Operand::T(&scaled)
                }
                (Some(al), Operand::N(n)) => Operand::N(match (n, al) {
                    (Num::Int(a), Num::Int(b)) => Num::Int(a * b),
                    (n, al) => Num::Float(num_f64(n) * num_f64(al)),
                }),
                (None, y) => y,
            };
            Ok(smallvec![torch_binary(t, x, y, number_out)?])
        })));
    }
    Ok(Some(match t {
        T::Logaddexp => Box::new(move |args| one(tensor(args, 0)?.f_logaddexp(tensor(args, 1)?)?)),
        T::Where => Box::new(move |args| {
            one(where_op(
                tensor(args, 0)?,
                operand(args, 1)?,
                operand(args, 2)?,
                out_kind,
            )?)
        }),
        T::MaskedFill => Box::new(move |args| {
            let (a, m) = (tensor(args, 0)?, tensor(args, 1)?);
            one(match operand(args, 2)? {
                Operand::T(v) => a.f_masked_fill_tensor(m, v)?,
                Operand::N(n @ Num::Bool(_)) => {
                    a.f_masked_fill_tensor(m, &n.tensor(tch::Kind::Bool)?)?
                }
                Operand::N(n) => a.f_masked_fill(m, n.scalar())?,
            })
        }),
        T::Clamp => {
            let (lo, hi) = (opt_num(&at[0])?, opt_num(&at[1])?);
            Box::new(move |args| {
                let mut r = tensor(args, 0)?.shallow_clone();
                if let Some(lo) = lo {
                    r = r.f_clamp_min(lo.scalar())?;
                }
                if let Some(hi) = hi {
                    r = r.f_clamp_max(hi.scalar())?;
                }
                one(r)
            })
        }
        T::To => {
            let dt = opt_dtype_attr(&at[0])?.map(kind);
            let dev = match &at[1] {
                Attr::None => None,
                a => Some(device(device_attr(a)?)),
            };
            Box::new(move |args| {
                let mut r = tensor(args, 0)?.shallow_clone();
                if let Some(d) = dev {
                    r = r.f_to_device(d)?;
                }
                if let Some(k) = dt {
                    r = r.f_to_kind(k)?;
                }
                one(r)
            })
        }
        _ => return Ok(None),
    }))
}
