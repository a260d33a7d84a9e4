//! Elementwise prims: unary math, binary arithmetic, comparisons and bitwise ops, `where`,
//! `convert_element_type`, `polygamma`.
//!
//! - VJP: unary prims multiply the cotangent by their local derivative `f'(a)` (from `a` or the
//!   output `y`); piecewise-constant ones (`floor`, `sign`, ...) give zeros, as in PyTorch.
//!   `maximum`/`minimum` split the cotangent on ties. Comparisons and bitwise ops have no rule
//!   (their results are never floating).
//! - JVP: `neg` and `convert_element_type` apply themselves to the tangent, `add`, `sub`, `mul`
//!   and `div` have the sum, product and quotient rules; the others run their VJP rule on the
//!   tangent, which is exact because an elementwise Jacobian is diagonal.
//! - Batching: every tensor operand batched (unbatched ones broadcast), the prim unchanged.

use super::context::{not_written, p1, p2, Batch, Jvp, Vjp};
use crate::Result;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, DType, PrimOp, TraceBuilder, Value};

/// The VJP rule of an elementwise prim.
pub(super) fn vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    match cx.op.class() {
        PrimClass::Unary => {
            let gx = unary_vjp(b, cx)?;
            Ok(cx.only(0, gx))
        }
        PrimClass::Binary => binary_vjp(b, cx),
        PrimClass::Ternary => where_vjp(b, cx),
        PrimClass::Reduction | PrimClass::Other => match cx.op {
            PrimOp::ConvertElementType => Ok(match cx.orig(0) {
                Some(x) => {
                    let dt = cx.trace.tensor(x).map(|t| t.dtype).unwrap_or(DType::F32);
                    let gx = b.prim(
                        PrimOp::ConvertElementType,
                        vec![cx.g.into()],
                        vec![Attr::DType(dt)],
                    )?;
                    vec![(x, gx)]
                }
                None => Vec::new(),
            }),
            PrimOp::Polygamma => {
                let gx = polygamma_vjp(b, cx)?;
                Ok(cx.only(0, gx))
            }
            other => Err(not_written("VJP", other)),
        },
    }
}

/// The cotangent of a unary prim's operand.
fn unary_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Value> {
    use PrimOp::*;
    let (g, y) = (cx.g, cx.y);
    Ok(match cx.op {
        Neg => p1(b, Neg, g)?,
        Exp => p2(b, Mul, g, y)?,
        Log => p2(b, Div, g, cx.arg(0))?,
        Tanh => {
            let y2 = p2(b, Mul, y, y)?;
            let one_minus = p2(b, Sub, Arg::Float(1.0), y2)?;
            p2(b, Mul, g, one_minus)?
        }
        Sqrt => {
            let two_y = p2(b, Mul, y, Arg::Float(2.0))?;
            p2(b, Div, g, two_y)?
        }
        Rsqrt => {
            // y = a^-1/2, dy/da = -y / (2a)
            let q = p2(b, Div, y, cx.arg(0))?;
            let s = p2(b, Mul, q, Arg::Float(-0.5))?;
            p2(b, Mul, g, s)?
        }
        Reciprocal => {
            let y2 = p2(b, Mul, y, y)?;
            let gy = p2(b, Mul, g, y2)?;
            p1(b, Neg, gy)?
        }
        Sin => {
            let c = p1(b, Cos, cx.arg(0))?;
            p2(b, Mul, g, c)?
        }
        Cos => {
            let s = p1(b, Sin, cx.arg(0))?;
            let gs = p2(b, Mul, g, s)?;
            p1(b, Neg, gs)?
        }
        // Piecewise constant: the gradient is zero (as in PyTorch).
        Floor | Ceil | Round | Trunc | Sign => p2(b, Mul, g, Arg::Float(0.0))?,
        Digamma => polygamma_vjp(b, cx)?,
        op => {
            let d = derivative(b, op, cx.arg(0), y)?;
            p2(b, Mul, g, d)?
        }
    })
}

/// `dy/da` of a unary prim `y = op(a)`, from `a` and `y`.
fn derivative(b: &mut TraceBuilder, op: PrimOp, a: Arg, y: Value) -> Result<Value> {
    use PrimOp::*;
    Ok(match op {
        Abs => p1(b, Sign, a)?,
        Expm1 => p2(b, Add, y, Arg::Float(1.0))?,
        Log1p => {
            let t = p2(b, Add, a, Arg::Float(1.0))?;
            p1(b, Reciprocal, t)?
        }
        Log2 | Log10 => {
            let ln = if op == Log2 {
                std::f64::consts::LN_2
            } else {
                std::f64::consts::LN_10
            };
            let t = p2(b, Mul, a, Arg::Float(ln))?;
            p1(b, Reciprocal, t)?
        }
        Exp2 => p2(b, Mul, y, Arg::Float(std::f64::consts::LN_2))?,
        Tan => {
            let y2 = p2(b, Mul, y, y)?;
            p2(b, Add, y2, Arg::Float(1.0))?
        }
        Asin | Acos => {
            let a2 = p2(b, Mul, a.clone(), a)?;
            let t = p2(b, Sub, Arg::Float(1.0), a2)?;
            let r = p1(b, Rsqrt, t)?;
            if op == Acos {
                p1(b, Neg, r)?
            } else {
                r
            }
        }
        Atan => {
            let a2 = p2(b, Mul, a.clone(), a)?;
            let t = p2(b, Add, a2, Arg::Float(1.0))?;
            p1(b, Reciprocal, t)?
        }
        Sinh => p1(b, Cosh, a)?,
        Cosh => p1(b, Sinh, a)?,
        Asinh | Acosh => {
            let a2 = p2(b, Mul, a.clone(), a)?;
            let t = if op == Asinh {
                p2(b, Add, a2, Arg::Float(1.0))?
            } else {
                p2(b, Sub, a2, Arg::Float(1.0))?
            };
            p1(b, Rsqrt, t)?
        }
        Atanh => {
            let a2 = p2(b, Mul, a.clone(), a)?;
            let t = p2(b, Sub, Arg::Float(1.0), a2)?;
            p1(b, Reciprocal, t)?
        }
        Erf | Erfc => {
            // 2/sqrt(pi) * exp(-a^2), negated for erfc
            let a2 = p2(b, Mul, a.clone(), a)?;
            let n = p1(b, Neg, a2)?;
            let e = p1(b, Exp, n)?;
            let c = std::f64::consts::FRAC_2_SQRT_PI * if op == Erfc { -1.0 } else { 1.0 };
            p2(b, Mul, e, Arg::Float(c))?
        }
        Erfinv => {
            // sqrt(pi)/2 * exp(y^2)
            let y2 = p2(b, Mul, y, y)?;
            let e = p1(b, Exp, y2)?;
            p2(b, Mul, e, Arg::Float(std::f64::consts::PI.sqrt() / 2.0))?
        }
        Lgamma => p1(b, Digamma, a)?,
        // Comparisons and other non-differentiable results never carry a cotangent; every
        // other prim is refused rather than differentiated wrongly.
        other => return Err(not_written("VJP", other)),
    })
}

/// `g * polygamma(n + 1, a)`: d/da polygamma(n, a) = polygamma(n + 1, a); digamma is
/// polygamma(0, a).
fn polygamma_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Value> {
    let n = match cx.p.attrs.first() {
        Some(Attr::Int(n)) => *n,
        _ => 0,
    };
    let d = b.prim(PrimOp::Polygamma, vec![cx.arg(0)], vec![Attr::Int(n + 1)])?;
    p2(b, PrimOp::Mul, cx.g, d)
}

/// The VJP rule of a binary prim.
fn binary_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (g, y, op) = (cx.g, cx.y, cx.op);
    let mut out = Vec::new();
    match op {
        Add => {
            cx.push(&mut out, 0, g);
            cx.push(&mut out, 1, g);
        }
        Sub => {
            cx.push(&mut out, 0, g);
            if cx.orig(1).is_some() {
                let n = p1(b, Neg, g)?;
                cx.push(&mut out, 1, n);
            }
        }
        Mul => {
            if cx.orig(0).is_some() {
                let ga = p2(b, Mul, g, cx.arg(1))?;
                cx.push(&mut out, 0, ga);
            }
            if cx.orig(1).is_some() {
                let gb = p2(b, Mul, g, cx.arg(0))?;
                cx.push(&mut out, 1, gb);
            }
        }
        Div => {
            if cx.orig(0).is_some() {
                let ga = p2(b, Div, g, cx.arg(1))?;
                cx.push(&mut out, 0, ga);
            }
            if cx.orig(1).is_some() {
                // d(a/b)/db = -(a/b)/b
                let gy = p2(b, Mul, g, y)?;
                let q = p2(b, Div, gy, cx.arg(1))?;
                let n = p1(b, Neg, q)?;
                cx.push(&mut out, 1, n);
            }
        }
        Maximum | Minimum => return extremum_vjp(b, cx),
        Pow => return pow_vjp(b, cx),
        Atan2 => {
            let a2 = p2(b, Mul, cx.arg(0), cx.arg(0))?;
            let b2 = p2(b, Mul, cx.arg(1), cx.arg(1))?;
            let den = p2(b, Add, a2, b2)?;
            let gd = p2(b, Div, g, den)?;
            if cx.orig(0).is_some() {
                let ga = p2(b, Mul, gd, cx.arg(1))?;
                cx.push(&mut out, 0, ga);
            }
            if cx.orig(1).is_some() {
                let t = p2(b, Mul, gd, cx.arg(0))?;
                let gb = p1(b, Neg, t)?;
                cx.push(&mut out, 1, gb);
            }
        }
        Remainder | Fmod => {
            cx.push(&mut out, 0, g);
            if cx.orig(1).is_some() {
                // a - b * floor(a / b) (remainder) or trunc(a / b) (fmod)
                let q = p2(b, Div, cx.arg(0), cx.arg(1))?;
                let r = p1(b, if op == Remainder { Floor } else { Trunc }, q)?;
                let t = p2(b, Mul, g, r)?;
                let gb = p1(b, Neg, t)?;
                cx.push(&mut out, 1, gb);
            }
        }
        other => return Err(not_written("VJP", other)),
    }
    Ok(out)
}

/// `maximum`/`minimum`: between tensors the cotangent goes to the larger (smaller) operand,
/// split on ties; against a number, clamp's rule.
fn extremum_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (g, op) = (cx.g, cx.op);
    let mut out = Vec::new();
    let (strict, tie) = if op == Maximum { (Gt, Lt) } else { (Lt, Gt) };
    match (
        cx.orig(0).is_some() || cx.p.args[0].as_value().is_none(),
        cx.orig(1).is_some(),
    ) {
        (_, true) if cx.orig(0).is_some() => {
            // Both tensors: the gradient goes to the larger (smaller) one, split on ties.
            let half = p2(b, Mul, g, Arg::Float(0.5))?;
            let eq = p2(b, Eq, cx.arg(0), cx.arg(1))?;
            let wins_a = p2(b, strict, cx.arg(0), cx.arg(1))?;
            let wins_b = p2(b, tie, cx.arg(0), cx.arg(1))?;
            let tie_share = b.prim(Where, vec![eq.into(), half.into(), Arg::Float(0.0)], vec![])?;
            let ga = b.prim(
                Where,
                vec![wins_a.into(), g.into(), tie_share.into()],
                vec![],
            )?;
            let gb = b.prim(
                Where,
                vec![wins_b.into(), g.into(), tie_share.into()],
                vec![],
            )?;
            cx.push(&mut out, 0, ga);
            cx.push(&mut out, 1, gb);
        }
        _ => {
            // Against a number: clamp's rule, the gradient passes where the tensor is kept
            // (ties included).
            let (ti, ni) = if cx.orig(0).is_some() { (0, 1) } else { (1, 0) };
            let keep = p2(
                b,
                if op == Maximum { Ge } else { Le },
                cx.arg(ti),
                cx.arg(ni),
            )?;
            let gt = b.prim(Where, vec![keep.into(), g.into(), Arg::Float(0.0)], vec![])?;
            cx.push(&mut out, ti, gt);
        }
    }
    Ok(out)
}

/// `pow(a, b)`: `g * b * a^(b-1)` for `a`, `g * y * log(a)` (zero where `a == 0`) for `b`.
fn pow_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let (g, y) = (cx.g, cx.y);
    let mut out = Vec::new();
    if cx.orig(0).is_some() {
        // b * a^(b-1); a literal exponent folds now (no number op for the backward).
        let bm1: Arg = match cx.arg(1) {
            Arg::Int(e) => Arg::Int(e - 1),
            Arg::Float(e) => Arg::Float(e - 1.0),
            e => p2(b, Sub, e, Arg::Float(1.0))?.into(),
        };
        let pw = p2(b, Pow, cx.arg(0), bm1)?;
        let d = p2(b, Mul, pw, cx.arg(1))?;
        let ga = p2(b, Mul, g, d)?;
        cx.push(&mut out, 0, ga);
    }
    if cx.orig(1).is_some() {
        // y * log(a), zero where a == 0 (PyTorch's convention)
        let la = p1(b, Log, cx.arg(0))?;
        let d = p2(b, Mul, y, la)?;
        let gd = p2(b, Mul, g, d)?;
        let zero = p2(b, Eq, cx.arg(0), Arg::Float(0.0))?;
        let gb = b.prim(Where, vec![zero.into(), Arg::Float(0.0), gd.into()], vec![])?;
        cx.push(&mut out, 1, gb);
    }
    Ok(out)
}

/// `where(pred, a, b)`: the cotangent goes to `a` where `pred` holds, to `b` elsewhere.
fn where_vjp(b: &mut TraceBuilder, cx: &Vjp) -> Result<Vec<(Value, Value)>> {
    let g = cx.g;
    let mut out = Vec::new();
    let zero = Arg::Float(0.0);
    if cx.orig(1).is_some() {
        let ga = b.prim(
            PrimOp::Where,
            vec![cx.arg(0), g.into(), zero.clone()],
            vec![],
        )?;
        cx.push(&mut out, 1, ga);
    }
    if cx.orig(2).is_some() {
        let gb = b.prim(PrimOp::Where, vec![cx.arg(0), zero, g.into()], vec![])?;
        cx.push(&mut out, 2, gb);
    }
    Ok(out)
}

/// The JVP rule of an elementwise prim.
pub(super) fn jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    match (cx.op.class(), cx.op) {
        (_, PrimOp::Neg | PrimOp::ConvertElementType) => cx.same_on_tangent(b, 0),
        (PrimClass::Unary, _) | (_, PrimOp::Polygamma) => {
            // The VJP rule's local derivative, run on the tangent.
            let t = cx.dz(b, 0)?;
            let contributions = vjp(b, &cx.as_vjp(t))?;
            contributions
                .first()
                .map(|(_, v)| *v)
                .ok_or_else(|| cx.no_rule("the derivative is zero"))
        }
        (PrimClass::Binary, _) => binary_jvp(b, cx),
        (PrimClass::Ternary, _) => {
            let ta = match cx.dt(1) {
                Some(t) => Arg::Value(t),
                None => Arg::Float(0.0),
            };
            let tb = match cx.dt(2) {
                Some(t) => Arg::Value(t),
                None => Arg::Float(0.0),
            };
            Ok(b.prim(PrimOp::Where, vec![cx.arg(0), ta, tb], vec![])?)
        }
        (_, other) => Err(not_written("JVP", other)),
    }
}

/// The JVP rule of a binary prim.
fn binary_jvp(b: &mut TraceBuilder, cx: &Jvp) -> Result<Value> {
    use PrimOp::*;
    let (dt, y) = (|i| cx.dt(i), cx.y);
    match cx.op {
        Add => cx.sum(b, vec![dt(0), dt(1)]),
        Sub => {
            let nb = match dt(1) {
                Some(t) => Some(p1(b, Neg, t)?),
                None => None,
            };
            cx.sum(b, vec![dt(0), nb])
        }
        Mul => {
            let ta = match dt(0) {
                Some(t) => Some(p2(b, Mul, t, cx.arg(1))?),
                None => None,
            };
            let tb = match dt(1) {
                Some(t) => Some(p2(b, Mul, cx.arg(0), t)?),
                None => None,
            };
            cx.sum(b, vec![ta, tb])
        }
        Div => {
            let ta = match dt(0) {
                Some(t) => Some(p2(b, Div, t, cx.arg(1))?),
                None => None,
            };
            let tb = match dt(1) {
                Some(t) => {
                    let q = p2(b, Mul, y, t)?;
                    let q = p2(b, Div, q, cx.arg(1))?;
                    Some(p1(b, Neg, q)?)
                }
                None => None,
            };
            cx.sum(b, vec![ta, tb])
        }
        Maximum | Minimum | Pow | Atan2 | Remainder | Fmod => {
            // The Jacobian is diagonal in each operand, so the VJP rule run on an operand's
            // tangent gives that operand's term.
            let mut terms = Vec::new();
            for i in 0..2 {
                if let (Some(t), Some(x)) = (dt(i), cx.p.args[i].as_value()) {
                    let contributions = binary_vjp(b, &cx.as_vjp(t))?;
                    terms.push(
                        contributions
                            .into_iter()
                            .find(|(v, _)| *v == x)
                            .map(|(_, c)| c),
                    );
                }
            }
            cx.sum(b, terms)
        }
        other => Err(not_written("JVP", other)),
    }
}

/// The batching rule of an elementwise prim: the prim on batched operands.
pub(super) fn vmap(b: &mut TraceBuilder, cx: &Batch) -> Result<Value> {
    let args = cx.all_batched(b)?;
    Ok(b.prim(cx.op, args, cx.p.attrs.clone())?)
}
