//! Forward-mode autodiff: a trace, the inputs to perturb and their tangents give a trace that
//! computes the outputs and their tangents (Jacobian-vector products).
//!
//! Like [`crate::grad`], it works on prims (torch-level ops through their decompositions), with one
//! JVP rule per prim; a prim without a rule is a typed error naming it.

use crate::util::{copy_inputs, flatten_prims, ints, no_rule, zeros};
use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::{Arg, Attr, BoundSymbol, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value};

/// A trace computing `trace`'s outputs and their tangents along tangents of `wrt`.
///
/// The new trace takes the original inputs followed by one tangent per `wrt` input (`t_<name>`),
/// and returns the original outputs followed by one tangent per floating output (zeros when it
/// does not depend on `wrt`).
pub fn jvp(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    for &w in wrt {
        let ok = trace.inputs.contains(&w) && trace.tensor(w).is_some_and(|t| t.dtype.is_float());
        if !ok {
            return Err(TransformError::Pass {
                pass: "jvp".into(),
                message: format!(
                    "{} is not a floating tensor input of the trace",
                    trace.name_of(w)
                ),
            });
        }
    }
    let prims = flatten_prims(trace);
    let mut b = TraceBuilder::new(format!("{}_jvp", trace.name));
    let mut m = copy_inputs(&mut b, trace)?;
    let mut tan: HashMap<Value, Value> = HashMap::new();
    for &w in wrt {
        let t = trace
            .tensor(w)
            .cloned()
            .unwrap_or_else(|| TensorMeta::new(thunder_ir::DType::F32, [0usize; 0]));
        let v = b.input(
            &format!("t_{}", trace.name_of(w)),
            TensorMeta {
                requires_grad: false,
                ..t
            },
        )?;
        tan.insert(w, v);
    }
    let active: HashSet<Value> = wrt.iter().copied().collect();
    let mut active = active;
    for p in &prims {
        let Op::Prim(op) = p.op else { continue };
        b.replay(p, &mut m)?;
        let is_active = p.inputs().iter().any(|v| active.contains(v)) && !op.is_random();
        if is_active {
            crate::util::refuse_complex("jvp", p.op, p, trace)?;
        }
        let out_float = trace
            .tensor(p.outputs[0])
            .is_some_and(|t| t.dtype.is_float());
        if !is_active || !out_float {
            continue;
        }
        let t = rule(&mut b, op, p, &m, &tan, trace)?;
        tan.insert(p.outputs[0], t);
        active.insert(p.outputs[0]);
    }
    let mut outputs: Vec<Value> = trace.outputs.iter().map(|o| m[o]).collect();
    for &o in &trace.outputs {
        let Some(meta) = trace.tensor(o).filter(|t| t.dtype.is_float()).cloned() else {
            continue;
        };
        let t = match tan.get(&o) {
            Some(&t) => t,
            None => zeros(&mut b, &meta)?,
        };
        outputs.push(t);
    }
    Ok(b.build(&outputs)?)
}

/// The tangent of `p`'s (first) output.
fn rule(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    m: &HashMap<Value, Value>,
    tan: &HashMap<Value, Value>,
    trace: &Trace,
) -> Result<Value> {
    use PrimOp::*;
    let arg = |i: usize| -> Arg {
        match &p.args[i] {
            Arg::Value(v) => Arg::Value(m[v]),
            other => other.clone(),
        }
    };
    // The tangent of operand i, if it has one.
    let dt =
        |i: usize| -> Option<Value> { p.args[i].as_value().and_then(|v| tan.get(&v).copied()) };
    // The tangent of operand i, zeros if it has none (for rules that need every operand's).
    let dz = |b: &mut TraceBuilder, i: usize| -> Result<Value> {
        match dt(i) {
            Some(t) => Ok(t),
            None => {
                let v = p.args[i]
                    .as_value()
                    .ok_or_else(|| no_rule("JVP", op, "operand is not a value"))?;
                let meta = trace
                    .tensor(v)
                    .cloned()
                    .ok_or_else(|| no_rule("JVP", op, "operand is not a tensor"))?;
                zeros(b, &meta)
            }
        }
    };
    let y = m[&p.outputs[0]];
    let p2 = |b: &mut TraceBuilder, op: PrimOp, x: Arg, y: Arg| -> Result<Value> {
        Ok(b.prim(op, vec![x, y], vec![])?)
    };
    let un = |b: &mut TraceBuilder, op: PrimOp, x: Arg| -> Result<Value> {
        Ok(b.prim(op, vec![x], vec![])?)
    };
    // Sum of optional terms.
    let sum = |b: &mut TraceBuilder, terms: Vec<Option<Value>>| -> Result<Value> {
        let mut acc: Option<Value> = None;
        for t in terms.into_iter().flatten() {
            acc = Some(match acc {
                None => t,
                Some(a) => b.prim(Add, vec![a.into(), t.into()], vec![])?,
            });
        }
        acc.ok_or_else(|| no_rule("JVP", op, "no operand has a tangent"))
    };
    // Rules linear in their (first) tensor operand: the same prim applied to the tangent.
    let same_on_tangent = |b: &mut TraceBuilder, i: usize| -> Result<Value> {
        let mut args: Vec<Arg> = (0..p.args.len()).map(arg).collect();
        args[i] = dz(b, i)?.into();
        Ok(b.prim(op, args, p.attrs.clone())?)
    };
    Ok(match op {
        Add => {
            let (a, c) = (dt(0), dt(1));
            sum(b, vec![a, c])?
        }
        Sub => {
            let nb = match dt(1) {
                Some(t) => Some(un(b, Neg, t.into())?),
                None => None,
            };
            sum(b, vec![dt(0), nb])?
        }
        Mul => {
            let ta = match dt(0) {
                Some(t) => Some(p2(b, Mul, t.into(), arg(1))?),
                None => None,
            };
            let tb = match dt(1) {
                Some(t) => Some(p2(b, Mul, arg(0), t.into())?),
                None => None,
            };
            sum(b, vec![ta, tb])?
        }
        Div => {
            let ta = match dt(0) {
                Some(t) => Some(p2(b, Div, t.into(), arg(1))?),
                None => None,
            };
            let tb = match dt(1) {
                Some(t) => {
                    let q = p2(b, Mul, y.into(), t.into())?;
                    let q = p2(b, Div, q.into(), arg(1))?;
                    Some(un(b, Neg, q.into())?)
                }
                None => None,
            };
            sum(b, vec![ta, tb])?
        }
        Neg | ConvertElementType | BroadcastInDim | Reshape | Transpose | Sum | Slice | Squeeze
        | Flip | DevicePut | Take | TakeAlongAxis | Gather | EmbeddingBackward => {
            same_on_tangent(b, 0)?
        }
        Pad => {
            let t = dz(b, 0)?;
            b.prim(
                Pad,
                vec![t.into()],
                vec![Attr::Float(0.0), p.attrs[1].clone()],
            )?
        }
        Cat => {
            let Arg::List(parts) = &p.args[0] else {
                return Err(no_rule("JVP", op, "tensors must be a list"));
            };
            let mut ts = Vec::with_capacity(parts.len());
            for &x in parts {
                ts.push(match tan.get(&x) {
                    Some(&t) => t,
                    None => zeros(
                        b,
                        &trace
                            .tensor(x)
                            .cloned()
                            .ok_or_else(|| no_rule("JVP", op, "not a tensor"))?,
                    )?,
                });
            }
            b.prim(Cat, vec![Arg::List(ts)], p.attrs.clone())?
        }
        Where => {
            let ta = match dt(1) {
                Some(t) => Arg::Value(t),
                None => Arg::Float(0.0),
            };
            let tb = match dt(2) {
                Some(t) => Arg::Value(t),
                None => Arg::Float(0.0),
            };
            b.prim(Where, vec![arg(0), ta, tb], vec![])?
        }
        Matmul | Linear => {
            let ta = match dt(0) {
                Some(t) => {
                    let mut args: Vec<Arg> = (0..p.args.len()).map(arg).collect();
                    args[0] = t.into();
                    if op == Linear {
                        args[2] = Arg::None;
                    }
                    Some(b.prim(op, args, vec![])?)
                }
                None => None,
            };
            let tw = match dt(1) {
                Some(t) => {
                    let mut args: Vec<Arg> = (0..p.args.len()).map(arg).collect();
                    args[1] = t.into();
                    if op == Linear {
                        args[2] = Arg::None;
                    }
                    Some(b.prim(op, args, vec![])?)
                }
                None => None,
            };
            let tbias = if op == Linear {
                match dt(2) {
                    Some(t) => {
                        let shape = b.tensor(y)?.shape.clone();
                        let r = b.tensor(t)?.rank();
                        let bd: Vec<usize> = (shape.rank() - r..shape.rank()).collect();
                        Some(b.prim(
                            BroadcastInDim,
                            vec![t.into()],
                            vec![ints(shape.sizes()), ints(&bd)],
                        )?)
                    }
                    None => None,
                }
            } else {
                None
            };
            sum(b, vec![ta, tw, tbias])?
        }
        IndexAdd | ScatterAdd => {
            let ta = dz(b, 0)?;
            let tv = dz(b, 2)?;
            b.prim(op, vec![ta.into(), arg(1), tv.into()], p.attrs.clone())?
        }
        Embedding => {
            let tw = dz(b, 1)?;
            let t = b.prim(Embedding, vec![arg(0), tw.into()], p.attrs.clone())?;
            match &p.attrs[0] {
                // PyTorch treats the padding row as constant (no gradient reaches it); so does
                // the tangent.
                Attr::Int(pad) => crate::util::zero_where_index(b, arg(0), *pad, t)?,
                _ => t,
            }
        }
        Maximum | Minimum | Pow | Atan2 | Remainder | Fmod => {
            // Elementwise binary: the Jacobian is diagonal in each operand, so the VJP rule run on
            // an operand's tangent gives that operand's term.
            let mut terms = Vec::new();
            for i in 0..2 {
                if let (Some(t), Some(x)) = (dt(i), p.args[i].as_value()) {
                    let contributions = crate::grad::vjp_rule(b, op, p, t, m, trace)?;
                    terms.push(
                        contributions
                            .into_iter()
                            .find(|(v, _)| *v == x)
                            .map(|(_, c)| c),
                    );
                }
            }
            sum(b, terms)?
        }
        Prod => {
            let x = p.args[0]
                .as_value()
                .ok_or_else(|| no_rule("JVP", op, "operand is not a value"))?;
            let a = trace
                .tensor(x)
                .cloned()
                .ok_or_else(|| no_rule("JVP", op, "operand is not a tensor"))?;
            let dims = crate::grad::reduced_dims(&p.attrs[0], a.rank());
            let d = crate::grad::prod_partials(b, arg(0), &a, &dims)?;
            let t = dz(b, 0)?;
            let td = p2(b, Mul, t.into(), d.into())?;
            b.prim(Sum, vec![td.into()], vec![ints(&dims)])?
        }
        Amax | Amin | Var => {
            let x = p.args[0]
                .as_value()
                .ok_or_else(|| no_rule("JVP", op, "operand is not a value"))?;
            let a = trace
                .tensor(x)
                .cloned()
                .ok_or_else(|| no_rule("JVP", op, "operand is not a tensor"))?;
            let dims = crate::grad::reduced_dims(&p.attrs[0], a.rank());
            let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
            let full = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
                Ok(b.prim(
                    BroadcastInDim,
                    vec![v.into()],
                    vec![ints(a.shape.sizes()), ints(&kept)],
                )?)
            };
            let t = dz(b, 0)?;
            if op == Var {
                // 2 / (N - correction) * sum((a - mean) * t)
                let n: usize = dims.iter().map(|&d| a.shape.size(d)).product();
                let correction = match &p.attrs[1] {
                    Attr::Float(c) => *c,
                    Attr::Int(c) => *c as f64,
                    _ => 0.0,
                };
                let s = b.prim(Sum, vec![arg(0)], vec![ints(&dims)])?;
                let mean = p2(b, Div, s.into(), Arg::Float(n as f64))?;
                let mb = full(b, mean)?;
                let c = p2(b, Sub, arg(0), mb.into())?;
                let ct = p2(b, Mul, c.into(), t.into())?;
                let st = b.prim(Sum, vec![ct.into()], vec![ints(&dims)])?;
                p2(b, Mul, st.into(), Arg::Float(2.0 / (n as f64 - correction)))?
            } else {
                // The mean of the tangent over the extrema (PyTorch splits ties evenly).
                let yb = full(b, y)?;
                let is_ext = p2(b, Eq, arg(0), yb.into())?;
                let mask = b.prim(
                    ConvertElementType,
                    vec![is_ext.into()],
                    vec![Attr::DType(a.dtype)],
                )?;
                let count = b.prim(Sum, vec![mask.into()], vec![ints(&dims)])?;
                let mt = p2(b, Mul, mask.into(), t.into())?;
                let st = b.prim(Sum, vec![mt.into()], vec![ints(&dims)])?;
                p2(b, Div, st.into(), count.into())?
            }
        }
        _ => {
            // Elementwise and reductions: reuse the VJP rule's local derivative by running the
            // VJP rule on the tangent, which is exact for elementwise ops (their Jacobian is
            // diagonal) and refused otherwise.
            let elementwise_unary =
                op.class() == thunder_ir::ops::prims::PrimClass::Unary || op == Polygamma;
            if !elementwise_unary {
                return Err(no_rule("JVP", op, "not written yet"));
            }
            let t = dz(b, 0)?;
            let contributions = crate::grad::vjp_rule(b, op, p, t, m, trace)?;
            contributions
                .first()
                .map(|(_, v)| *v)
                .ok_or_else(|| no_rule("JVP", op, "the derivative is zero"))?
        }
    })
}
