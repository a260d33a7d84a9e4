//! Reverse-mode autodiff: a trace and the inputs to differentiate give a trace that computes the
//! outputs and the gradients.
//!
//! The transform works on prims: torch-level ops are replaced by their decompositions (custom
//! rules for softmax, cross_entropy, norms and attention, which save less, come next), the forward
//! prims are replayed, and the backward is built from one VJP rule per prim, applied in reverse
//! program order, with cotangents of a value used several times summed. A prim without a rule is a
//! typed error naming it, never a wrong answer.

use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::{
    Arg, Attr, BoundSymbol, DType, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value, ValueType,
};

/// The prims [`grad`] differentiates.
pub const PRIMS_WITH_VJP: &[PrimOp] = &[
    PrimOp::Add,
    PrimOp::Sub,
    PrimOp::Mul,
    PrimOp::Div,
    PrimOp::Neg,
    PrimOp::Exp,
    PrimOp::Log,
    PrimOp::Tanh,
    PrimOp::Sqrt,
    PrimOp::Rsqrt,
    PrimOp::Reciprocal,
    PrimOp::Sin,
    PrimOp::Cos,
    PrimOp::ConvertElementType,
    PrimOp::BroadcastInDim,
    PrimOp::Reshape,
    PrimOp::Transpose,
    PrimOp::Sum,
    PrimOp::Amax,
    PrimOp::Where,
    PrimOp::Matmul,
    PrimOp::Linear,
    PrimOp::TakeAlongAxis,
    PrimOp::Slice,
    PrimOp::Cat,
];

fn flatten(bsyms: &[BoundSymbol], out: &mut Vec<BoundSymbol>) {
    for b in bsyms {
        match b.op {
            Op::Prim(_) => out.push(b.clone()),
            Op::Torch(_) => flatten(&b.subsymbols, out),
        }
    }
}

fn no_rule(op: PrimOp, why: &str) -> TransformError {
    TransformError::Pass {
        pass: "grad".into(),
        message: format!("prims.{}: {why}", op.name()),
    }
}

/// A trace computing `trace`'s outputs and the gradients of `wrt` (inputs of `trace`).
///
/// The new trace takes the original inputs followed by one cotangent per tensor output
/// (`ct_<output name>`, the gradient flowing in, as `torch.autograd.grad`'s `grad_outputs`), and
/// returns the original outputs followed by one gradient per `wrt` input (zeros when the outputs
/// do not depend on it).
pub fn grad(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    for &w in wrt {
        let name = trace.name_of(w).to_string();
        let meta = trace.tensor(w).ok_or_else(|| TransformError::Pass {
            pass: "grad".into(),
            message: format!("{name} is not a tensor input: only tensors have gradients"),
        })?;
        if !trace.inputs.contains(&w) {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!("{name} is not an input of the trace"),
            });
        }
        if !meta.dtype.is_inexact() {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!("{name} has dtype {}, which has no gradient (only floating and complex tensors do)", meta.dtype),
            });
        }
    }
    let mut prims = Vec::new();
    flatten(&trace.bound_symbols, &mut prims);

    let mut b = TraceBuilder::new(format!("{}_grad", trace.name));
    let mut m: HashMap<Value, Value> = HashMap::new();
    for &i in &trace.inputs {
        let v = match trace.ty(i) {
            ValueType::Tensor(t) => b.input(trace.name_of(i), t.clone())?,
            ValueType::Number(n) => b.number_input(trace.name_of(i), *n)?,
        };
        m.insert(i, v);
    }
    // Forward: replay, and track which values depend on `wrt`.
    let mut active: HashSet<Value> = wrt.iter().copied().collect();
    let map_arg = |a: &Arg, m: &HashMap<Value, Value>| match a {
        Arg::Value(v) => Arg::Value(m[v]),
        Arg::List(l) => Arg::List(l.iter().map(|v| m[v]).collect()),
        other => other.clone(),
    };
    for p in &prims {
        let Op::Prim(op) = p.op else { continue };
        let args: Vec<Arg> = p.args.iter().map(|a| map_arg(a, &m)).collect();
        let outs = b.call(p.op, args, p.attrs.clone())?;
        let is_active = p.inputs().iter().any(|v| active.contains(v));
        for (o, n) in p.outputs.iter().zip(outs) {
            m.insert(*o, n);
            if is_active
                && trace.tensor(*o).is_some_and(|t| t.dtype.is_inexact())
                && !op.is_random()
            {
                active.insert(*o);
            }
        }
    }
    // Cotangents of the outputs.
    let mut ct: HashMap<Value, Value> = HashMap::new();
    for &o in &trace.outputs {
        if let (Some(t), true) = (trace.tensor(o), active.contains(&o)) {
            if ct.contains_key(&o) {
                continue;
            }
            let meta = TensorMeta {
                requires_grad: false,
                ..t.clone()
            };
            let v = b.input(&format!("ct_{}", trace.name_of(o)), meta)?;
            ct.insert(o, v);
        }
    }
    // Backward.
    for p in prims.iter().rev() {
        let Op::Prim(op) = p.op else { continue };
        let Some(&g) = p.outputs.first().and_then(|o| ct.get(o)) else {
            continue;
        };
        if !p.inputs().iter().any(|v| active.contains(v)) {
            continue;
        }
        let contributions = vjp(&mut b, op, p, g, &m, trace)?;
        for (x, gx) in contributions {
            if !active.contains(&x) {
                continue;
            }
            let acc = match ct.get(&x) {
                Some(&prev) => b.prim(PrimOp::Add, vec![prev.into(), gx.into()], vec![])?,
                None => gx,
            };
            ct.insert(x, acc);
        }
    }
    let mut outputs: Vec<Value> = trace.outputs.iter().map(|o| m[o]).collect();
    for &w in wrt {
        let gw = match ct.get(&w) {
            Some(&g) => g,
            None => {
                let t = trace
                    .tensor(w)
                    .cloned()
                    .unwrap_or_else(|| TensorMeta::new(DType::F32, [0usize; 0]));
                b.prim(
                    PrimOp::Full,
                    vec![],
                    vec![
                        ints(&t.shape.sizes()),
                        Attr::Float(0.0),
                        Attr::Device(t.device),
                        Attr::DType(t.dtype),
                    ],
                )?
            }
        };
        outputs.push(gw);
    }
    Ok(b.build(&outputs)?)
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

fn tensor_meta(b: &TraceBuilder, v: Value) -> Result<TensorMeta> {
    Ok(b.tensor(v)?.clone())
}

/// The contributions of one prim to the cotangents of its (original) tensor operands.
fn vjp(
    b: &mut TraceBuilder,
    op: PrimOp,
    p: &BoundSymbol,
    g: Value,
    m: &HashMap<Value, Value>,
    trace: &Trace,
) -> Result<Vec<(Value, Value)>> {
    use PrimOp::*;
    let arg = |i: usize| -> Arg {
        match &p.args[i] {
            Arg::Value(v) => Arg::Value(m[v]),
            other => other.clone(),
        }
    };
    let orig = |i: usize| p.args[i].as_value().filter(|v| trace.tensor(*v).is_some());
    let y = m[&p.outputs[0]];
    let mut out = Vec::new();
    let push = |i: usize, gx: Value, out: &mut Vec<(Value, Value)>| {
        if let Some(x) = orig(i) {
            out.push((x, gx));
        }
    };
    let p2 = |b: &mut TraceBuilder, op: PrimOp, x: Arg, y: Arg| b.prim(op, vec![x, y], vec![]);
    match op {
        Add => {
            push(0, g, &mut out);
            push(1, g, &mut out);
        }
        Sub => {
            push(0, g, &mut out);
            if orig(1).is_some() {
                let n = b.prim(Neg, vec![g.into()], vec![])?;
                push(1, n, &mut out);
            }
        }
        Mul => {
            if orig(0).is_some() {
                let ga = p2(b, Mul, g.into(), arg(1))?;
                push(0, ga, &mut out);
            }
            if orig(1).is_some() {
                let gb = p2(b, Mul, g.into(), arg(0))?;
                push(1, gb, &mut out);
            }
        }
        Div => {
            if orig(0).is_some() {
                let ga = p2(b, Div, g.into(), arg(1))?;
                push(0, ga, &mut out);
            }
            if orig(1).is_some() {
                // d(a/b)/db = -(a/b)/b
                let gy = p2(b, Mul, g.into(), y.into())?;
                let q = p2(b, Div, gy.into(), arg(1))?;
                let n = b.prim(Neg, vec![q.into()], vec![])?;
                push(1, n, &mut out);
            }
        }
        Neg => {
            let n = b.prim(Neg, vec![g.into()], vec![])?;
            push(0, n, &mut out);
        }
        Exp => push(0, p2(b, Mul, g.into(), y.into())?, &mut out),
        Log => push(0, p2(b, Div, g.into(), arg(0))?, &mut out),
        Tanh => {
            let y2 = p2(b, Mul, y.into(), y.into())?;
            let one_minus = p2(b, Sub, Arg::Float(1.0), y2.into())?;
            push(0, p2(b, Mul, g.into(), one_minus.into())?, &mut out);
        }
        Sqrt => {
            let two_y = p2(b, Mul, y.into(), Arg::Float(2.0))?;
            push(0, p2(b, Div, g.into(), two_y.into())?, &mut out);
        }
        Rsqrt => {
            // y = a^-1/2, dy/da = -y / (2a)
            let q = p2(b, Div, y.into(), arg(0))?;
            let s = p2(b, Mul, q.into(), Arg::Float(-0.5))?;
            push(0, p2(b, Mul, g.into(), s.into())?, &mut out);
        }
        Reciprocal => {
            let y2 = p2(b, Mul, y.into(), y.into())?;
            let gy = p2(b, Mul, g.into(), y2.into())?;
            push(0, b.prim(Neg, vec![gy.into()], vec![])?, &mut out);
        }
        Sin => {
            let c = b.prim(Cos, vec![arg(0)], vec![])?;
            push(0, p2(b, Mul, g.into(), c.into())?, &mut out);
        }
        Cos => {
            let s = b.prim(Sin, vec![arg(0)], vec![])?;
            let gs = p2(b, Mul, g.into(), s.into())?;
            push(0, b.prim(Neg, vec![gs.into()], vec![])?, &mut out);
        }
        ConvertElementType => {
            if let Some(x) = orig(0) {
                let dt = trace.tensor(x).map(|t| t.dtype).unwrap_or(DType::F32);
                let gx = b.prim(ConvertElementType, vec![g.into()], vec![Attr::DType(dt)])?;
                out.push((x, gx));
            }
        }
        BroadcastInDim => {
            let Some(x) = orig(0) else { return Ok(out) };
            let a = trace
                .tensor(x)
                .cloned()
                .ok_or_else(|| no_rule(op, "operand is not a tensor"))?;
            let shape = tensor_meta(b, y)?.shape;
            let bdims: Vec<usize> = match &p.attrs[1] {
                Attr::Ints(v) => v.iter().map(|&d| d as usize).collect(),
                _ => return Err(no_rule(op, "bad broadcast_dimensions")),
            };
            let mut reduce: Vec<usize> = (0..shape.rank()).filter(|d| !bdims.contains(d)).collect();
            for (i, &d) in bdims.iter().enumerate() {
                if a.shape.size(i) == 1 && shape.size(d) != 1 {
                    reduce.push(d);
                }
            }
            reduce.sort_unstable();
            let s = b.prim(Sum, vec![g.into()], vec![ints(&reduce)])?;
            let gx = b.prim(Reshape, vec![s.into()], vec![ints(&a.shape.sizes())])?;
            out.push((x, gx));
        }
        Reshape => {
            if let Some(x) = orig(0) {
                let shape = trace.tensor(x).map(|t| t.shape.sizes()).unwrap_or_default();
                out.push((x, b.prim(Reshape, vec![g.into()], vec![ints(&shape)])?));
            }
        }
        Transpose => {
            if let Some(x) = orig(0) {
                let perm: Vec<usize> = match &p.attrs[0] {
                    Attr::Ints(v) => v.iter().map(|&d| d as usize).collect(),
                    _ => return Err(no_rule(op, "bad permutation")),
                };
                let mut inv = vec![0usize; perm.len()];
                for (i, &d) in perm.iter().enumerate() {
                    inv[d] = i;
                }
                out.push((x, b.prim(Transpose, vec![g.into()], vec![ints(&inv)])?));
            }
        }
        Sum => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule(op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                out.push((
                    x,
                    b.prim(
                        BroadcastInDim,
                        vec![g.into()],
                        vec![ints(&a.shape.sizes()), ints(&kept)],
                    )?,
                ));
            }
        }
        Amax => {
            if let Some(x) = orig(0) {
                // The gradient is split evenly among the maxima, as in PyTorch.
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule(op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                let full = |b: &mut TraceBuilder, v: Value| {
                    b.prim(
                        BroadcastInDim,
                        vec![v.into()],
                        vec![ints(&a.shape.sizes()), ints(&kept)],
                    )
                };
                let yb = full(b, y)?;
                let is_max = p2(b, Eq, arg(0), yb.into())?;
                let mask = b.prim(
                    ConvertElementType,
                    vec![is_max.into()],
                    vec![Attr::DType(a.dtype)],
                )?;
                let count = b.prim(Sum, vec![mask.into()], vec![ints(&dims)])?;
                let share = p2(b, Div, g.into(), count.into())?;
                let shared = full(b, share)?;
                out.push((x, p2(b, Mul, shared.into(), mask.into())?));
            }
        }
        Where => {
            let zero = Arg::Float(0.0);
            if orig(1).is_some() {
                push(
                    1,
                    b.prim(Where, vec![arg(0), g.into(), zero.clone()], vec![])?,
                    &mut out,
                );
            }
            if orig(2).is_some() {
                push(
                    2,
                    b.prim(Where, vec![arg(0), zero, g.into()], vec![])?,
                    &mut out,
                );
            }
        }
        Matmul => {
            let (Some(ta), Some(tb)) = (
                p.args[0].as_value().and_then(|v| trace.tensor(v)),
                p.args[1].as_value().and_then(|v| trace.tensor(v)),
            ) else {
                return Err(no_rule(op, "operands are not tensors"));
            };
            if ta.rank() < 2
                || ta.rank() != tb.rank()
                || ta.shape.dims()[..ta.rank() - 2] != tb.shape.dims()[..tb.rank() - 2]
            {
                return Err(no_rule(op, "only matmuls of equal-rank (>= 2) operands without batch broadcasting are differentiated yet"));
            }
            let r = ta.rank();
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 1, r - 2);
            if orig(0).is_some() {
                let bt = b.prim(Transpose, vec![arg(1)], vec![ints(&perm)])?;
                push(0, p2(b, Matmul, g.into(), bt.into())?, &mut out);
            }
            if orig(1).is_some() {
                let at = b.prim(Transpose, vec![arg(0)], vec![ints(&perm)])?;
                push(1, p2(b, Matmul, at.into(), g.into())?, &mut out);
            }
        }
        Linear => {
            let (Some(ta), Some(tw)) = (
                p.args[0].as_value().and_then(|v| trace.tensor(v)),
                p.args[1].as_value().and_then(|v| trace.tensor(v)),
            ) else {
                return Err(no_rule(op, "operands are not tensors"));
            };
            if tw.rank() != 2 {
                return Err(no_rule(op, "only 2-D weights are differentiated yet"));
            }
            let (n_in, n_out) = (tw.shape.size(1), tw.shape.size(0));
            let rows: usize = ta.shape.sizes()[..ta.rank() - 1].iter().product();
            if orig(0).is_some() {
                // y = a w^T: ga = g w
                push(0, p2(b, Matmul, g.into(), arg(1))?, &mut out);
            }
            if orig(1).is_some() {
                let g2 = b.prim(Reshape, vec![g.into()], vec![ints(&[rows, n_out])])?;
                let a2 = b.prim(Reshape, vec![arg(0)], vec![ints(&[rows, n_in])])?;
                let g2t = b.prim(Transpose, vec![g2.into()], vec![ints(&[1, 0])])?;
                push(1, p2(b, Matmul, g2t.into(), a2.into())?, &mut out);
            }
            if orig(2).is_some() {
                let dims: Vec<usize> = (0..ta.rank() - 1).collect();
                push(2, b.prim(Sum, vec![g.into()], vec![ints(&dims)])?, &mut out);
            }
        }
        TakeAlongAxis => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule(op, "operand is not a tensor"))?;
                let zeros = b.prim(
                    Full,
                    vec![],
                    vec![
                        ints(&a.shape.sizes()),
                        Attr::Float(0.0),
                        Attr::Device(a.device),
                        Attr::DType(a.dtype),
                    ],
                )?;
                out.push((
                    x,
                    b.prim(
                        ScatterAdd,
                        vec![zeros.into(), arg(1), g.into()],
                        vec![p.attrs[0].clone()],
                    )?,
                ));
            }
        }
        Slice => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule(op, "operand is not a tensor"))?;
                let attr = |i: usize| match &p.attrs[i] {
                    Attr::Ints(v) => v.clone(),
                    _ => Vec::new(),
                };
                let (start, strides) = (attr(0), attr(2));
                let out_shape = tensor_meta(b, y)?.shape;
                // Scatter the gradient back: pad each dim by `start` below, the rest above, and
                // `stride - 1` between elements.
                let config: Vec<Vec<i64>> = (0..a.rank())
                    .map(|d| {
                        let (size, n, s) =
                            (a.shape.size(d) as i64, out_shape.size(d) as i64, strides[d]);
                        let last = if n == 0 {
                            start[d] - 1
                        } else {
                            start[d] + (n - 1) * s
                        };
                        vec![start[d], size - last - 1, s - 1]
                    })
                    .collect();
                out.push((
                    x,
                    b.prim(
                        Pad,
                        vec![g.into()],
                        vec![Attr::Float(0.0), Attr::IntLists(config)],
                    )?,
                ));
            }
        }
        Cat => {
            let Arg::List(parts) = &p.args[0] else {
                return Err(no_rule(op, "tensors must be a list"));
            };
            let dim = match &p.attrs[0] {
                Attr::Int(d) => *d,
                _ => 0,
            };
            let gshape = tensor_meta(b, g)?.shape.sizes();
            let d = if dim < 0 {
                (dim + gshape.len() as i64) as usize
            } else {
                dim as usize
            };
            let mut offset = 0usize;
            for &x in parts {
                let size = trace.tensor(x).map(|t| t.shape.size(d)).unwrap_or(0);
                let mut st = vec![0i64; gshape.len()];
                let mut en: Vec<i64> = gshape.iter().map(|&s| s as i64).collect();
                st[d] = offset as i64;
                en[d] = (offset + size) as i64;
                let gx = b.prim(
                    Slice,
                    vec![g.into()],
                    vec![
                        Attr::Ints(st),
                        Attr::Ints(en),
                        Attr::Ints(vec![1; gshape.len()]),
                    ],
                )?;
                out.push((x, gx));
                offset += size;
            }
        }
        // Comparisons and other non-differentiable results never carry a cotangent; every
        // other prim is refused rather than differentiated wrongly.
        other => return Err(no_rule(other, "has no VJP rule yet")),
    }
    Ok(out)
}

fn reduced_dims(a: &Attr, rank: usize) -> Vec<usize> {
    match a {
        Attr::Ints(v) => v
            .iter()
            .map(|&d| {
                if d < 0 {
                    (d + rank as i64) as usize
                } else {
                    d as usize
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}
