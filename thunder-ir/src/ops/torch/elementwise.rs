//! Decompositions of the torch-level elementwise ops: one-prim unary and binary math, activations, selection.

use super::*;

/// Runs the decomposition of `op`, one of the elementwise family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    if let Some(out) = one_prim(b, op, n, args, attrs)? {
        return Ok(out);
    }
    match op {
        T::LogicalNot | T::Sigmoid | T::Silu | T::Relu | T::Gelu => {
            activation(b, op, n, args, attrs)
        }
        T::Where | T::MaskedFill | T::Clamp => selection(b, op, n, args, attrs),
        T::Logaddexp => logaddexp(b, n, args).map(|v| vec![v]),
        _ => Err(not_in_family(op, n)),
    }
}

/// `log(exp(a) + exp(b))` without overflow, as PyTorch computes it: `max(a, b) + log1p(exp(-|a -
/// b|))`, except that equal infinities give themselves (the formula would give NaN); NaN stays
/// NaN. Floating operands only (16-bit floats computed in float32), broadcast together.
fn logaddexp(b: &mut TraceBuilder, n: &str, args: &[Arg]) -> Result<Value> {
    let (x, y) = (&args[0], &args[1]);
    let pt = elementwise_promotion(n, &[b.operand(x)?, b.operand(y)?], K::Default)?;
    if !pt.result.is_float() {
        return Err(IrError::invalid(
            n,
            format!(
                "a and b must be floating tensors, got {} (convert them first, as torch.logaddexp needs)",
                pt.result
            ),
        ));
    }
    let common = b.common_shape(n, &[x, y])?;
    let p = b.prepare(&[x, y], common.as_ref().map(|(s, _)| s), pt.computation)?;
    let (Some(x), Some(y)) = (p[0].as_value(), p[1].as_value()) else {
        return Err(IrError::invalid(n, "a and b must be tensors"));
    };
    let m = b.p2(PrimOp::Maximum, x, y)?;
    let d = b.p2(PrimOp::Sub, x, y)?;
    let d = b.p1(PrimOp::Abs, d)?;
    let d = b.p1(PrimOp::Neg, d)?;
    let e = b.p1(PrimOp::Exp, d)?;
    let l = b.p1(PrimOp::Log1p, e)?;
    let r = b.p2(PrimOp::Add, m, l)?;
    let same = b.p2(PrimOp::Eq, x, y)?;
    let finite = b.p1(PrimOp::IsFinite, x)?;
    let infinite = b.p1(PrimOp::BitwiseNot, finite)?;
    let same_infinity = b.p2(PrimOp::BitwiseAnd, same, infinite)?;
    let r = b.prim(
        PrimOp::Where,
        vec![same_infinity.into(), x.into(), r.into()],
        vec![],
    )?;
    b.convert(r, pt.result)
}

/// The ops that map onto one prim (with type promotion, and float32 computation for 16-bit
/// floats where PyTorch does it): `None` for the others.
fn one_prim(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Option<Vec<Value>>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let info = op.info();
    if let (Some((prim, kind)), PrimClass::Unary) = (info.prim, info.class) {
        let a = tensor_arg(b, 0)?;
        let t = b.tensor(a)?.clone();
        let rounding = matches!(op, T::Floor | T::Ceil | T::Round | T::Trunc);
        if rounding && t.dtype.is_bool() {
            return Err(IrError::invalid(n, "a must not be a bool tensor"));
        }
        if rounding && t.dtype.is_integer() {
            // PyTorch returns integer input unchanged.
            return Ok(Some(vec![a]));
        }
        let pt = elementwise_promotion(n, &[b.operand(&args[0])?], kind)?;
        let x = b.convert(a, pt.computation)?;
        let y = b.p1(prim, x)?;
        return Ok(Some(vec![b.convert(y, pt.result)?]));
    }
    if let (Some((prim, kind)), PrimClass::Binary) = (info.prim, info.class) {
        let upcast = info.upcast;
        let mut rhs = args[1].clone();
        if matches!(op, T::Add | T::Sub) {
            if let Some(alpha) = attrs.first().filter(|a| **a != Attr::None) {
                let alpha_arg = match alpha {
                    Attr::Int(i) => Arg::Int(*i),
                    Attr::Float(f) => Arg::Float(*f),
                    Attr::Bool(v) => Arg::Bool(*v),
                    _ => Arg::None,
                };
                rhs = Arg::Value(b.t(T::Mul, vec![rhs, alpha_arg], vec![])?);
            }
        }
        return Ok(Some(vec![b.elementwise(
            n,
            prim,
            &[&args[0], &rhs],
            kind,
            upcast,
        )?]));
    }
    Ok(None)
}

/// Activations (one operand).
fn activation(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::LogicalNot => {
            let a = tensor_arg(b, 0)?;
            let zero = if b.tensor(a)?.dtype.is_bool() {
                Arg::Bool(false)
            } else {
                Arg::Int(0)
            };
            b.elementwise(n, PrimOp::Eq, &[&args[0], &zero], K::AlwaysBool, false)?
        }
        T::Sigmoid | T::Silu => {
            let a = tensor_arg(b, 0)?;
            let d = b.tensor(a)?.dtype;
            if op == T::Silu && !d.is_inexact() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating dtype, got {d}"),
                ));
            }
            let pt = elementwise_promotion(n, &[b.operand(&args[0])?], K::IntToFloat)?;
            let x = b.convert(a, pt.computation)?;
            let e = b.p1(PrimOp::Neg, x)?;
            let e = b.p1(PrimOp::Exp, e)?;
            let d = b.p2(PrimOp::Add, e, 1.0)?;
            let mut y = b.p1(PrimOp::Reciprocal, d)?;
            if op == T::Silu {
                y = b.p2(PrimOp::Mul, x, y)?;
            }
            b.convert(y, pt.result)?
        }
        T::Relu => {
            let a = tensor_arg(b, 0)?;
            let d = b.tensor(a)?.dtype;
            if d.is_bool() || d.is_complex() {
                return Err(IrError::invalid(
                    n,
                    format!("a must be a real numeric tensor, got {d}"),
                ));
            }
            // maximum propagates NaN, as torch.relu does.
            let zero = if d.is_float() {
                Arg::Float(0.0)
            } else {
                Arg::Int(0)
            };
            b.p2(PrimOp::Maximum, a, zero)?
        }
        T::Gelu => {
            let a = tensor_arg(b, 0)?;
            let approximate = attr_str(n, attrs, 0)?;
            let pt = elementwise_promotion(n, &[b.operand(&args[0])?], K::IntToFloat)?;
            let x = b.convert(a, pt.computation)?;
            let inner = match approximate {
                "none" => {
                    let s = b.p2(PrimOp::Mul, x, std::f64::consts::FRAC_1_SQRT_2)?;
                    b.p1(PrimOp::Erf, s)?
                }
                "tanh" => {
                    let x2 = b.p2(PrimOp::Mul, x, x)?;
                    let x3 = b.p2(PrimOp::Mul, x2, x)?;
                    let c = b.p2(PrimOp::Mul, x3, 0.044715)?;
                    let s = b.p2(PrimOp::Add, x, c)?;
                    let s = b.p2(PrimOp::Mul, s, (2.0 / std::f64::consts::PI).sqrt())?;
                    b.p1(PrimOp::Tanh, s)?
                }
                other => {
                    return Err(IrError::invalid(
                        n,
                        format!("approximate={other:?} must be \"none\" or \"tanh\""),
                    ))
                }
            };
            let one_plus = b.p2(PrimOp::Add, inner, 1.0)?;
            let half_x = b.p2(PrimOp::Mul, x, 0.5)?;
            let y = b.p2(PrimOp::Mul, half_x, one_plus)?;
            b.convert(y, pt.result)?
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// Selection: `where`, `masked_fill`, `clamp`.
fn selection(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Where => {
            let c = tensor_arg(b, 0)?;
            let cd = b.tensor(c)?.dtype;
            if !cd.is_bool() {
                return Err(IrError::invalid(
                    n,
                    format!("condition must be a bool tensor, got {cd}"),
                ));
            }
            let operands = [b.operand(&args[1])?, b.operand(&args[2])?];
            let pt = elementwise_promotion(n, &operands, K::Default)?;
            let common = b.common_shape(n, &[&args[0], &args[1], &args[2]])?;
            let shape = common.as_ref().map(|(s, _)| s);
            let cond = match shape {
                Some(s) => b.broadcast_to(c, s)?,
                None => c,
            };
            let ab = b.prepare(&[&args[1], &args[2]], shape, pt.result)?;
            b.prim(
                PrimOp::Where,
                vec![cond.into(), ab[0].clone(), ab[1].clone()],
                vec![],
            )?
        }
        T::MaskedFill => {
            let a = tensor_arg(b, 0)?;
            let mask = tensor_arg(b, 1)?;
            let (at, mt) = (b.tensor(a)?.clone(), b.tensor(mask)?.clone());
            if !mt.dtype.is_bool() {
                return Err(IrError::invalid(
                    n,
                    format!("mask must be a bool tensor, got {}", mt.dtype),
                ));
            }
            let shape = broadcast_shapes(n, &at.shape, &mt.shape)?;
            if shape != at.shape {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "mask of shape {} does not broadcast to a's shape {}",
                        mt.shape, at.shape
                    ),
                ));
            }
            let value = match &args[2] {
                Arg::Value(v) => match b.ty(*v)?.clone() {
                    ValueType::Tensor(vt) => {
                        if vt.rank() != 0 {
                            return Err(IrError::invalid(
                                n,
                                format!(
                                    "value must be a number or a 0-dim tensor, got shape {}",
                                    vt.shape
                                ),
                            ));
                        }
                        let c = b.convert(*v, at.dtype)?;
                        Arg::Value(b.broadcast_to(c, &at.shape)?)
                    }
                    ValueType::Number(_) => {
                        let c = b.prim(
                            PrimOp::ConvertElementType,
                            vec![Arg::Value(*v)],
                            vec![Attr::DType(at.dtype)],
                        )?;
                        Arg::Value(c)
                    }
                },
                // A literal is cast to a's dtype, as PyTorch does.
                Arg::Float(f) if at.dtype.is_bool() => Arg::Bool(*f != 0.0),
                Arg::Float(f) if at.dtype.is_integer() => Arg::Int(float_to_int(n, *f)?),
                Arg::Int(i) if at.dtype.is_bool() => Arg::Bool(*i != 0),
                other => other.clone(),
            };
            let m = b.broadcast_to(mask, &at.shape)?;
            b.prim(PrimOp::Where, vec![m.into(), value, a.into()], vec![])?
        }
        T::Clamp => {
            let a = tensor_arg(b, 0)?;
            let to_arg = |x: &Attr| match x {
                Attr::Int(i) => Some(Arg::Int(*i)),
                Attr::Float(f) => Some(Arg::Float(*f)),
                Attr::Bool(v) => Some(Arg::Bool(*v)),
                _ => None,
            };
            let (lo, hi) = (
                attrs.first().and_then(to_arg),
                attrs.get(1).and_then(to_arg),
            );
            if lo.is_none() && hi.is_none() {
                return Err(IrError::invalid(
                    n,
                    "at least one of min and max must not be None",
                ));
            }
            let mut ops = vec![b.operand(&args[0])?];
            for x in lo.iter().chain(hi.iter()) {
                ops.push(b.operand(x)?);
            }
            let pt = elementwise_promotion(n, &ops, K::Default)?;
            let mut y = b.convert(a, pt.result)?;
            if let Some(lo) = lo {
                y = b.prim(PrimOp::Maximum, vec![y.into(), lo], vec![])?;
            }
            if let Some(hi) = hi {
                y = b.prim(PrimOp::Minimum, vec![y.into(), hi], vec![])?;
            }
            y
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}
