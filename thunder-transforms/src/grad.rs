//! Reverse-mode autodiff: a trace and the inputs to differentiate give a trace that computes the
//! outputs and the gradients.
//!
//! The transform works on prims (those whose row of the op table says `vjp`, see
//! [`thunder_ir::ops::info`]) and on the torch-level ops whose row says `grad(WHOLE)` (softmax,
//! log_softmax, cross_entropy, rms_norm, layer_norm, attention), which keep their own rule, save less than their decompositions would,
//! and stay one op in the forward (attention's backward is one op too, which an executor may run
//! whole); every other torch-level op is replaced by its decomposition. The forward is replayed,
//! and the backward is built from one VJP rule per op, applied in reverse program order, with
//! cotangents of a value used several times summed. An op without a rule is a typed error naming
//! it, never a wrong answer.

use crate::util::{copy_inputs, ints, no_rule, zeros};
use crate::{Result, TransformError};
use std::collections::{HashMap, HashSet};
use thunder_ir::{
    Arg, Attr, BoundSymbol, DType, Op, PrimOp, TensorMeta, Trace, TraceBuilder, Value,
};

/// A trace computing `trace`'s outputs and the gradients of `wrt` (inputs of `trace`).
///
/// The new trace takes the original inputs followed by one cotangent per floating tensor output
/// (`ct_<output name>`, the gradient flowing in, as `torch.autograd.grad`'s `grad_outputs`), and
/// returns the original outputs followed by one gradient per `wrt` input (zeros when the outputs
/// do not depend on it).
pub fn grad(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    grad_with(trace, wrt, &GradOptions::default())
}

/// `jax.value_and_grad` for a trace with one output, a floating scalar (a loss): a trace that takes
/// `trace`'s inputs only and returns the output followed by its gradient with respect to each of
/// `wrt` (the output's cotangent is 1).
pub fn value_and_grad(trace: &Trace, wrt: &[Value]) -> Result<Trace> {
    let scalar = match trace.outputs.as_slice() {
        [o] => trace
            .tensor(*o)
            .filter(|t| t.rank() == 0 && t.dtype.is_float())
            .cloned(),
        _ => None,
    };
    let Some(meta) = scalar else {
        return Err(TransformError::Pass {
            pass: "value_and_grad".into(),
            message: format!(
                "{} must return one floating scalar (a loss), it returns {} values; use grad, which takes the outputs' cotangents",
                trace.name,
                trace.outputs.len()
            ),
        });
    };
    let mut joint = grad(trace, wrt)?;
    let n_in = trace.inputs.len();
    let ct = joint.inputs[n_in];
    joint.inputs.truncate(n_in);
    joint.bound_symbols.insert(
        0,
        BoundSymbol {
            op: Op::Prim(PrimOp::Full),
            args: Vec::new(),
            attrs: vec![
                ints([0usize; 0]),
                Attr::Float(1.0),
                Attr::Device(meta.device),
                Attr::DType(meta.dtype),
            ],
            outputs: vec![ct],
            subsymbols: Vec::new(),
        },
    );
    joint.name = format!("{}_value_and_grad", trace.name);
    joint.verify()?;
    Ok(joint.renumbered())
}

/// Options of [`grad_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradOptions {
    /// Differentiate the torch-level ops the op table marks `grad(WHOLE)` whole with
    /// their own rules (the default); `false` sends every torch-level op through its
    /// decomposition (to compare, or to debug a rule).
    pub torch_rules: bool,
}

impl Default for GradOptions {
    fn default() -> Self {
        GradOptions { torch_rules: true }
    }
}

/// [`grad`] with options.
pub fn grad_with(trace: &Trace, wrt: &[Value], options: &GradOptions) -> Result<Trace> {
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
        if meta.dtype.is_complex() {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!("{name} has dtype {}: gradients of complex tensors are not supported yet (the VJP rules are written for real inputs; PyTorch's conjugate Wirtinger convention needs conj in each)", meta.dtype),
            });
        }
        if !meta.dtype.is_float() {
            return Err(TransformError::Pass {
                pass: "grad".into(),
                message: format!(
                    "{name} has dtype {}, which has no gradient (only floating tensors do)",
                    meta.dtype
                ),
            });
        }
    }
    let mut b = TraceBuilder::new(format!("{}_grad", trace.name));
    let mut m = copy_inputs(&mut b, trace)?;
    // Forward: replay, and track which values depend on `wrt`. Torch-level ops with their own
    // rule stay whole (an executor runs them as one op); the rest are replaced by their
    // decompositions, down to prims.
    let mut active: HashSet<Value> = wrt.iter().copied().collect();
    let mut units: Vec<&BoundSymbol> = Vec::new();
    let mut stack: Vec<&BoundSymbol> = trace.bound_symbols.iter().rev().collect();
    while let Some(p) = stack.pop() {
        if let Op::Torch(t) = p.op {
            if !(options.torch_rules && crate::grad_torch::differentiates_whole(t, p, &active)) {
                stack.extend(p.subsymbols.iter().rev());
                continue;
            }
        }
        let random = matches!(p.op, Op::Prim(op) if op.is_random());
        b.replay(p, &mut m)?;
        let is_active = p.inputs().iter().any(|v| active.contains(v));
        if is_active && !random {
            crate::util::refuse_complex("grad", p.op, p, trace)?;
        }
        for o in &p.outputs {
            if is_active && !random && trace.tensor(*o).is_some_and(|t| t.dtype.is_float()) {
                active.insert(*o);
            }
        }
        units.push(p);
    }
    // One cotangent per floating tensor output (an output that does not depend on `wrt` still
    // takes one, unused, so that the signature depends on the trace only).
    let mut ct: HashMap<Value, Value> = HashMap::new();
    let mut declared: HashSet<Value> = HashSet::new();
    for &o in &trace.outputs {
        if let Some(t) = trace.tensor(o).filter(|t| t.dtype.is_float()) {
            if !declared.insert(o) {
                continue;
            }
            let meta = TensorMeta {
                requires_grad: false,
                ..t.clone()
            };
            let v = b.input(&format!("ct_{}", trace.name_of(o)), meta)?;
            if active.contains(&o) {
                ct.insert(o, v);
            }
        }
    }
    // Backward.
    for p in units.iter().rev() {
        let Some(&g) = p.outputs.first().and_then(|o| ct.get(o)) else {
            continue;
        };
        if !p.inputs().iter().any(|v| active.contains(v)) {
            continue;
        }
        let contributions = match p.op {
            Op::Prim(op) => vjp_rule(&mut b, op, p, g, &m, trace)?,
            Op::Torch(t) => crate::grad_torch::vjp(&mut b, t, p, g, &m, trace)?,
            Op::Dist(d) => dist_vjp(&mut b, d, p, g)?,
        };
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
                zeros(&mut b, &t)?
            }
        };
        outputs.push(gw);
    }
    // Rules emit the gradients of every operand; those nobody asked for are dropped here.
    Ok(crate::dce::dce(&b.build(&outputs)?)?.renumbered())
}

fn tensor_meta(b: &TraceBuilder, v: Value) -> Result<TensorMeta> {
    Ok(b.tensor(v)?.clone())
}

/// The contributions of one prim to the cotangents of its (original) tensor operands. For an
/// elementwise unary prim this is `g * f'(a)`, which [`crate::jvp`] reuses with a tangent as `g`.
/// The vjp of a collective: the cotangent goes through the adjoint collective (synchronously;
/// the DDP and FSDP transforms schedule their own asynchronous ones).
fn dist_vjp(
    b: &mut TraceBuilder,
    op: thunder_ir::DistOp,
    p: &BoundSymbol,
    g: Value,
) -> Result<Vec<(Value, Value)>> {
    use thunder_ir::DistOp::*;
    let Some(x) = p.args.first().and_then(Arg::as_value) else {
        return Ok(Vec::new());
    };
    let no_rule = |reason: &str| TransformError::NoRule {
        op: Op::Dist(op).qualified_name(),
        transform: "VJP",
        reason: reason.to_string(),
    };
    let world = op.world_size(&p.attrs).unwrap_or(1);
    let reduce = match p.attrs.first() {
        Some(Attr::Str(r)) => r.as_str(),
        _ => "",
    };
    let gx = match op {
        Wait => g,
        AllReduce if reduce == "sum" || reduce == "avg" => b.all_reduce(g, reduce, world, false)?,
        AllGather => b.reduce_scatter(g, "sum", world, false)?,
        ReduceScatter if reduce == "sum" => b.all_gather(g, world, false)?,
        ReduceScatter if reduce == "avg" => {
            let full = b.all_gather(g, world, false)?;
            b.prim(
                PrimOp::Div,
                vec![full.into(), Arg::Float(world as f64)],
                vec![],
            )?
        }
        Broadcast => {
            return Err(no_rule(
                "the gradient of a broadcast needs the rank; broadcast outside differentiated code",
            ))
        }
        _ => {
            return Err(no_rule(&format!(
                "op={reduce:?} has no gradient (use sum or avg)"
            )))
        }
    };
    Ok(vec![(x, gx)])
}

pub(crate) fn vjp_rule(
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
                .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
            let shape = tensor_meta(b, y)?.shape;
            let bdims: Vec<usize> = match &p.attrs[1] {
                Attr::Ints(v) => v.iter().map(|&d| d as usize).collect(),
                _ => return Err(no_rule("VJP", op, "bad broadcast_dimensions")),
            };
            let mut reduce: Vec<usize> = (0..shape.rank()).filter(|d| !bdims.contains(d)).collect();
            for (i, &d) in bdims.iter().enumerate() {
                if a.shape.size(i) == 1 && shape.size(d) != 1 {
                    reduce.push(d);
                }
            }
            reduce.sort_unstable();
            let s = b.prim(Sum, vec![g.into()], vec![ints(&reduce)])?;
            let gx = b.prim(Reshape, vec![s.into()], vec![ints(a.shape.sizes())])?;
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
                    _ => return Err(no_rule("VJP", op, "bad permutation")),
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
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                out.push((
                    x,
                    b.prim(
                        BroadcastInDim,
                        vec![g.into()],
                        vec![ints(a.shape.sizes()), ints(&kept)],
                    )?,
                ));
            }
        }
        Amax | Amin => {
            if let Some(x) = orig(0) {
                // The gradient is split evenly among the extrema, as in PyTorch.
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                let full = |b: &mut TraceBuilder, v: Value| {
                    b.prim(
                        BroadcastInDim,
                        vec![v.into()],
                        vec![ints(a.shape.sizes()), ints(&kept)],
                    )
                };
                let yb = full(b, y)?;
                let is_extremum = p2(b, Eq, arg(0), yb.into())?;
                let mask = b.prim(
                    ConvertElementType,
                    vec![is_extremum.into()],
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
                p.args[0].as_value().and_then(|v| trace.tensor(v)).cloned(),
                p.args[1].as_value().and_then(|v| trace.tensor(v)).cloned(),
            ) else {
                return Err(no_rule("VJP", op, "operands are not tensors"));
            };
            // 1-D operands become matrices ([k] -> [1, k] on the left, [k, 1] on the right), the
            // gradient gets the dims the result dropped, and broadcast batch dims are summed away.
            let (ra, rb) = (ta.rank(), tb.rank());
            let a_mat: Vec<usize> = if ra == 1 {
                vec![1, ta.shape.size(0)]
            } else {
                ta.shape.sizes()
            };
            let b_mat: Vec<usize> = if rb == 1 {
                vec![tb.shape.size(0), 1]
            } else {
                tb.shape.sizes()
            };
            let a1 = if ra == 1 {
                b.prim(Reshape, vec![arg(0)], vec![ints(&a_mat)])?
            } else {
                m[&p.args[0].as_value().unwrap_or(p.outputs[0])]
            };
            let b1 = if rb == 1 {
                b.prim(Reshape, vec![arg(1)], vec![ints(&b_mat)])?
            } else {
                m[&p.args[1].as_value().unwrap_or(p.outputs[0])]
            };
            let full_out = thunder_ir::ops::prims::matmul_shape(
                "grad",
                &thunder_ir::Shape::new(a_mat.clone()),
                &thunder_ir::Shape::new(b_mat.clone()),
            )?;
            let g1 = b.prim(Reshape, vec![g.into()], vec![ints(full_out.sizes())])?;
            let t = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
                let r = b.tensor(v)?.rank();
                let mut perm: Vec<usize> = (0..r).collect();
                perm.swap(r - 1, r - 2);
                Ok(b.prim(Transpose, vec![v.into()], vec![ints(&perm)])?)
            };
            if orig(0).is_some() {
                let bt = t(b, b1)?;
                let full = p2(b, Matmul, g1.into(), bt.into())?;
                let ga = reduce_to(b, full, &a_mat)?;
                push(
                    0,
                    b.prim(Reshape, vec![ga.into()], vec![ints(ta.shape.sizes())])?,
                    &mut out,
                );
            }
            if orig(1).is_some() {
                let at = t(b, a1)?;
                let full = p2(b, Matmul, at.into(), g1.into())?;
                let gb = reduce_to(b, full, &b_mat)?;
                push(
                    1,
                    b.prim(Reshape, vec![gb.into()], vec![ints(tb.shape.sizes())])?,
                    &mut out,
                );
            }
        }
        Linear => {
            let (Some(ta), Some(tw)) = (
                p.args[0].as_value().and_then(|v| trace.tensor(v)).cloned(),
                p.args[1].as_value().and_then(|v| trace.tensor(v)).cloned(),
            ) else {
                return Err(no_rule("VJP", op, "operands are not tensors"));
            };
            // y = a w^T (+ bias). A 1-D weight is a [1, in] matrix whose output dim was dropped.
            let n_in = tw.shape.size(tw.rank() - 1);
            let n_out = if tw.rank() == 2 { tw.shape.size(0) } else { 1 };
            let rows: usize = ta.shape.sizes()[..ta.rank() - 1].iter().product();
            let w2 = if tw.rank() == 1 {
                b.prim(Reshape, vec![arg(1)], vec![ints([1, n_in])])?
            } else {
                m[&p.args[1].as_value().unwrap_or(p.outputs[0])]
            };
            let mut g_full = ta.shape.sizes();
            g_full.pop();
            g_full.push(n_out);
            let g2 = b.prim(Reshape, vec![g.into()], vec![ints(&g_full)])?;
            if orig(0).is_some() {
                push(0, p2(b, Matmul, g2.into(), w2.into())?, &mut out);
            }
            if orig(1).is_some() {
                let gr = b.prim(Reshape, vec![g2.into()], vec![ints([rows, n_out])])?;
                let a2 = b.prim(Reshape, vec![arg(0)], vec![ints([rows, n_in])])?;
                let grt = b.prim(Transpose, vec![gr.into()], vec![ints([1, 0])])?;
                let gw = p2(b, Matmul, grt.into(), a2.into())?;
                push(
                    1,
                    b.prim(Reshape, vec![gw.into()], vec![ints(tw.shape.sizes())])?,
                    &mut out,
                );
            }
            if let Some(bias) = orig(2) {
                let shape = trace
                    .tensor(bias)
                    .map(|t| t.shape.sizes())
                    .unwrap_or_default();
                out.push((bias, reduce_to(b, g, &shape)?));
            }
        }
        TakeAlongAxis | Gather => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let zeros = zeros(b, &a)?;
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
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
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
                return Err(no_rule("VJP", op, "tensors must be a list"));
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
        Abs | Expm1 | Log1p | Log2 | Log10 | Exp2 | Tan | Asin | Acos | Atan | Sinh | Cosh
        | Asinh | Acosh | Atanh | Erf | Erfc | Erfinv | Lgamma => {
            let a = arg(0);
            let un = |b: &mut TraceBuilder, op: PrimOp, x: Arg| b.prim(op, vec![x], vec![]);
            // d = dy/da, from a and y.
            let d = match op {
                Abs => un(b, Sign, a)?,
                Expm1 => p2(b, Add, y.into(), Arg::Float(1.0))?,
                Log1p => {
                    let t = p2(b, Add, a, Arg::Float(1.0))?;
                    un(b, Reciprocal, t.into())?
                }
                Log2 | Log10 => {
                    let ln = if op == Log2 {
                        std::f64::consts::LN_2
                    } else {
                        std::f64::consts::LN_10
                    };
                    let t = p2(b, Mul, a, Arg::Float(ln))?;
                    un(b, Reciprocal, t.into())?
                }
                Exp2 => p2(b, Mul, y.into(), Arg::Float(std::f64::consts::LN_2))?,
                Tan => {
                    let y2 = p2(b, Mul, y.into(), y.into())?;
                    p2(b, Add, y2.into(), Arg::Float(1.0))?
                }
                Asin | Acos => {
                    let a2 = p2(b, Mul, a.clone(), a)?;
                    let t = p2(b, Sub, Arg::Float(1.0), a2.into())?;
                    let r = un(b, Rsqrt, t.into())?;
                    if op == Acos {
                        un(b, Neg, r.into())?
                    } else {
                        r
                    }
                }
                Atan => {
                    let a2 = p2(b, Mul, a.clone(), a)?;
                    let t = p2(b, Add, a2.into(), Arg::Float(1.0))?;
                    un(b, Reciprocal, t.into())?
                }
                Sinh => un(b, Cosh, a)?,
                Cosh => un(b, Sinh, a)?,
                Asinh | Acosh => {
                    let a2 = p2(b, Mul, a.clone(), a)?;
                    let t = if op == Asinh {
                        p2(b, Add, a2.into(), Arg::Float(1.0))?
                    } else {
                        p2(b, Sub, a2.into(), Arg::Float(1.0))?
                    };
                    un(b, Rsqrt, t.into())?
                }
                Atanh => {
                    let a2 = p2(b, Mul, a.clone(), a)?;
                    let t = p2(b, Sub, Arg::Float(1.0), a2.into())?;
                    un(b, Reciprocal, t.into())?
                }
                Erf | Erfc => {
                    // 2/sqrt(pi) * exp(-a^2), negated for erfc
                    let a2 = p2(b, Mul, a.clone(), a)?;
                    let n = un(b, Neg, a2.into())?;
                    let e = un(b, Exp, n.into())?;
                    let c = std::f64::consts::FRAC_2_SQRT_PI * if op == Erfc { -1.0 } else { 1.0 };
                    p2(b, Mul, e.into(), Arg::Float(c))?
                }
                Erfinv => {
                    // sqrt(pi)/2 * exp(y^2)
                    let y2 = p2(b, Mul, y.into(), y.into())?;
                    let e = un(b, Exp, y2.into())?;
                    p2(
                        b,
                        Mul,
                        e.into(),
                        Arg::Float(std::f64::consts::PI.sqrt() / 2.0),
                    )?
                }
                _ => un(b, Digamma, a)?, // Lgamma
            };
            push(0, p2(b, Mul, g.into(), d.into())?, &mut out);
        }
        Floor | Ceil | Round | Trunc | Sign => {
            // Piecewise constant: the gradient is zero (as in PyTorch).
            push(0, p2(b, Mul, g.into(), Arg::Float(0.0))?, &mut out);
        }
        Maximum | Minimum => {
            let (strict, tie) = if op == Maximum { (Gt, Lt) } else { (Lt, Gt) };
            match (
                orig(0).is_some() || p.args[0].as_value().is_none(),
                orig(1).is_some(),
            ) {
                (_, true) if orig(0).is_some() => {
                    // Both tensors: the gradient goes to the larger (smaller) one, split on ties.
                    let half = p2(b, Mul, g.into(), Arg::Float(0.5))?;
                    let eq = p2(b, Eq, arg(0), arg(1))?;
                    let wins_a = p2(b, strict, arg(0), arg(1))?;
                    let wins_b = p2(b, tie, arg(0), arg(1))?;
                    let tie_share =
                        b.prim(Where, vec![eq.into(), half.into(), Arg::Float(0.0)], vec![])?;
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
                    push(0, ga, &mut out);
                    push(1, gb, &mut out);
                }
                _ => {
                    // Against a number: clamp's rule, the gradient passes where the tensor is kept
                    // (ties included).
                    let (ti, ni) = if orig(0).is_some() { (0, 1) } else { (1, 0) };
                    let keep = p2(b, if op == Maximum { Ge } else { Le }, arg(ti), arg(ni))?;
                    push(
                        ti,
                        b.prim(Where, vec![keep.into(), g.into(), Arg::Float(0.0)], vec![])?,
                        &mut out,
                    );
                }
            }
        }
        Pow => {
            if orig(0).is_some() {
                // b * a^(b-1); a literal exponent folds now (no number op for the backward).
                let bm1: Arg = match arg(1) {
                    Arg::Int(e) => Arg::Int(e - 1),
                    Arg::Float(e) => Arg::Float(e - 1.0),
                    e => p2(b, Sub, e, Arg::Float(1.0))?.into(),
                };
                let pw = p2(b, Pow, arg(0), bm1)?;
                let d = p2(b, Mul, pw.into(), arg(1))?;
                push(0, p2(b, Mul, g.into(), d.into())?, &mut out);
            }
            if orig(1).is_some() {
                // y * log(a), zero where a == 0 (PyTorch's convention)
                let la = b.prim(Log, vec![arg(0)], vec![])?;
                let d = p2(b, Mul, y.into(), la.into())?;
                let gd = p2(b, Mul, g.into(), d.into())?;
                let zero = p2(b, Eq, arg(0), Arg::Float(0.0))?;
                push(
                    1,
                    b.prim(Where, vec![zero.into(), Arg::Float(0.0), gd.into()], vec![])?,
                    &mut out,
                );
            }
        }
        Atan2 => {
            let a2 = p2(b, Mul, arg(0), arg(0))?;
            let b2 = p2(b, Mul, arg(1), arg(1))?;
            let den = p2(b, Add, a2.into(), b2.into())?;
            let gd = p2(b, Div, g.into(), den.into())?;
            if orig(0).is_some() {
                push(0, p2(b, Mul, gd.into(), arg(1))?, &mut out);
            }
            if orig(1).is_some() {
                let t = p2(b, Mul, gd.into(), arg(0))?;
                push(1, b.prim(Neg, vec![t.into()], vec![])?, &mut out);
            }
        }
        Remainder | Fmod => {
            push(0, g, &mut out);
            if orig(1).is_some() {
                // a - b * floor(a / b) (remainder) or trunc(a / b) (fmod)
                let q = p2(b, Div, arg(0), arg(1))?;
                let r = b.prim(
                    if op == Remainder { Floor } else { Trunc },
                    vec![q.into()],
                    vec![],
                )?;
                let t = p2(b, Mul, g.into(), r.into())?;
                push(1, b.prim(Neg, vec![t.into()], vec![])?, &mut out);
            }
        }
        Squeeze => {
            if let Some(x) = orig(0) {
                let shape = trace.tensor(x).map(|t| t.shape.sizes()).unwrap_or_default();
                out.push((x, b.prim(Reshape, vec![g.into()], vec![ints(&shape)])?));
            }
        }
        Flip => {
            if let Some(x) = orig(0) {
                out.push((x, b.prim(Flip, vec![g.into()], vec![p.attrs[0].clone()])?));
            }
        }
        DevicePut => {
            if let Some(x) = orig(0) {
                let dev = trace
                    .tensor(x)
                    .map(|t| t.device)
                    .unwrap_or(thunder_ir::Device::Cpu);
                out.push((
                    x,
                    b.prim(DevicePut, vec![g.into()], vec![Attr::Device(dev)])?,
                ));
            }
        }
        Var => {
            if let Some(x) = orig(0) {
                // 2 (a - mean) / (N - correction)
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let correction = match &p.attrs[1] {
                    Attr::Float(c) => *c,
                    Attr::Int(c) => *c as f64,
                    _ => 0.0,
                };
                let n: usize = dims.iter().map(|&d| a.shape.size(d)).product();
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                let full = |b: &mut TraceBuilder, v: Value| {
                    b.prim(
                        BroadcastInDim,
                        vec![v.into()],
                        vec![ints(a.shape.sizes()), ints(&kept)],
                    )
                };
                let s = b.prim(Sum, vec![arg(0)], vec![ints(&dims)])?;
                let mean = p2(b, Div, s.into(), Arg::Float(n as f64))?;
                let mb = full(b, mean)?;
                let c = p2(b, Sub, arg(0), mb.into())?;
                let gb = full(b, g)?;
                let t = p2(b, Mul, gb.into(), c.into())?;
                let scale = 2.0 / (n as f64 - correction);
                push(0, p2(b, Mul, t.into(), Arg::Float(scale))?, &mut out);
            }
        }
        Take => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let idx = p.args[1]
                    .as_value()
                    .and_then(|v| trace.tensor(v))
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "index is not a tensor"))?;
                let gx = if a.rank() == 0 {
                    // Every index picks the one element.
                    let s = b.prim(Sum, vec![g.into()], vec![ints(0..idx.rank())])?;
                    b.prim(Reshape, vec![s.into()], vec![ints([0usize; 0])])?
                } else {
                    let dim = match &p.attrs[0] {
                        Attr::Int(d) if *d < 0 => (*d + a.rank() as i64) as usize,
                        Attr::Int(d) => *d as usize,
                        _ => 0,
                    };
                    // A 0-d index took one slice and dropped the dim: put it back as size 1.
                    let k = idx.shape.numel();
                    let mut gshape = a.shape.sizes();
                    gshape[dim] = k;
                    let g1 = b.prim(Reshape, vec![g.into()], vec![ints(&gshape)])?;
                    let i1 = b.prim(Reshape, vec![arg(1)], vec![ints([k])])?;
                    let zeros = zeros(b, &a)?;
                    b.prim(
                        IndexAdd,
                        vec![zeros.into(), i1.into(), g1.into()],
                        vec![Attr::Int(dim as i64)],
                    )?
                };
                out.push((x, gx));
            }
        }
        IndexAdd => {
            push(0, g, &mut out);
            if orig(2).is_some() {
                push(
                    2,
                    b.prim(Take, vec![g.into(), arg(1)], vec![p.attrs[0].clone()])?,
                    &mut out,
                );
            }
        }
        ScatterAdd => {
            push(0, g, &mut out);
            if let Some(v) = orig(2) {
                // The value's entries that the index covers get the gathered gradient, the rest
                // zero (PyTorch's own backward fails when the index is smaller than the value).
                let gv = b.prim(Gather, vec![g.into(), arg(1)], vec![p.attrs[0].clone()])?;
                let have = b.tensor(gv)?.shape.sizes();
                let want = trace.tensor(v).map(|t| t.shape.sizes()).unwrap_or_default();
                let gv = if have == want {
                    gv
                } else {
                    let config = have
                        .iter()
                        .zip(&want)
                        .map(|(&h, &w)| vec![0, w as i64 - h as i64, 0])
                        .collect();
                    b.prim(
                        Pad,
                        vec![gv.into()],
                        vec![Attr::Float(0.0), Attr::IntLists(config)],
                    )?
                };
                out.push((v, gv));
            }
        }
        Embedding => {
            if orig(1).is_some() {
                let w = p.args[1]
                    .as_value()
                    .and_then(|v| trace.tensor(v))
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "weight is not a tensor"))?;
                let attrs = vec![
                    Attr::Int(w.shape.size(0) as i64),
                    p.attrs[0].clone(),
                    p.attrs[3].clone(),
                    p.attrs[4].clone(),
                ];
                push(
                    1,
                    b.prim(EmbeddingBackward, vec![g.into(), arg(0)], attrs)?,
                    &mut out,
                );
            }
        }
        Digamma | Polygamma => {
            // d/da polygamma(n, a) = polygamma(n + 1, a); digamma is polygamma(0, a).
            let n = match p.attrs.first() {
                Some(Attr::Int(n)) => *n,
                _ => 0,
            };
            let d = b.prim(Polygamma, vec![arg(0)], vec![Attr::Int(n + 1)])?;
            push(0, p2(b, Mul, g.into(), d.into())?, &mut out);
        }
        Prod => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let dims = reduced_dims(&p.attrs[0], a.rank());
                let d = prod_partials(b, arg(0), &a, &dims)?;
                let kept: Vec<usize> = (0..a.rank()).filter(|d| !dims.contains(d)).collect();
                let gb = b.prim(
                    BroadcastInDim,
                    vec![g.into()],
                    vec![ints(a.shape.sizes()), ints(&kept)],
                )?;
                out.push((x, p2(b, Mul, gb.into(), d.into())?));
            }
        }
        Pad => {
            if let Some(x) = orig(0) {
                let a = trace
                    .tensor(x)
                    .cloned()
                    .ok_or_else(|| no_rule("VJP", op, "operand is not a tensor"))?;
                let config = match &p.attrs[1] {
                    Attr::IntLists(c) => c.clone(),
                    _ => return Err(no_rule("VJP", op, "bad padding_config")),
                };
                out.push((x, pad_vjp(b, g, &a, &config)?));
            }
        }
        EmbeddingBackward => {
            // Linear in the gradient it scatters: the VJP gathers the rows back (the padding
            // row's entries got nothing, so they get nothing back).
            if orig(0).is_some() {
                let rows = b.prim(
                    Embedding,
                    vec![arg(1), g.into()],
                    crate::util::plain_embedding_attrs(),
                )?;
                let gx = match &p.attrs[1] {
                    Attr::Int(pad) => {
                        let num = match &p.attrs[0] {
                            Attr::Int(n) => *n,
                            _ => 0,
                        };
                        let pad = if *pad < 0 { *pad + num } else { *pad };
                        crate::util::zero_where_index(b, arg(1), pad, rows)?
                    }
                    _ => rows,
                };
                let gx = if matches!(p.attrs[2], Attr::Bool(true)) {
                    // scale_grad_by_freq divided each row's sum by how often its index occurs:
                    // divide each gathered entry by its index's count.
                    let num = p.attrs[0].clone();
                    let gt = orig(0)
                        .and_then(|v| trace.tensor(v))
                        .cloned()
                        .ok_or_else(|| no_rule("VJP", op, "grad is not a tensor"))?;
                    let mut ones_shape = gt.shape.sizes();
                    if let Some(last) = ones_shape.last_mut() {
                        *last = 1;
                    }
                    let ones = b.prim(
                        Full,
                        vec![],
                        vec![
                            ints(&ones_shape),
                            Attr::Float(1.0),
                            Attr::Device(gt.device),
                            Attr::DType(gt.dtype),
                        ],
                    )?;
                    let counts = b.prim(
                        EmbeddingBackward,
                        vec![ones.into(), arg(1)],
                        vec![num, Attr::None, Attr::Bool(false), Attr::Bool(false)],
                    )?;
                    let at = b.prim(
                        Embedding,
                        vec![arg(1), counts.into()],
                        crate::util::plain_embedding_attrs(),
                    )?;
                    let r = ones_shape.len();
                    let ab = b.prim(
                        BroadcastInDim,
                        vec![at.into()],
                        vec![ints(gt.shape.sizes()), ints(0..r)],
                    )?;
                    p2(b, Div, gx.into(), ab.into())?
                } else {
                    gx
                };
                push(0, gx, &mut out);
            }
        }
        Copy_ => {
            return Err(no_rule(
                "VJP",
                op,
                "it writes into copy_to in place; differentiate the functional program (the value it copies) instead",
            ))
        }
        // Comparisons and other non-differentiable results never carry a cotangent; every
        // other prim is refused rather than differentiated wrongly.
        other => return Err(no_rule("VJP", other, "not written yet")),
    }
    Ok(out)
}

/// The partial derivatives of `prod(a, dims)` with respect to each element of `a`, with `a`'s
/// shape: the product of the other elements of its reduction group. Zeros are handled without
/// dividing by them: with no zero in the group it is `prod / a`; with one zero, the product of the
/// non-zeros at the zero and 0 elsewhere; with two or more, 0 everywhere.
pub(crate) fn prod_partials(
    b: &mut TraceBuilder,
    a: Arg,
    meta: &TensorMeta,
    dims: &[usize],
) -> Result<Value> {
    use PrimOp::*;
    let kept: Vec<usize> = (0..meta.rank()).filter(|d| !dims.contains(d)).collect();
    let full = |b: &mut TraceBuilder, v: Value| -> Result<Value> {
        Ok(b.prim(
            BroadcastInDim,
            vec![v.into()],
            vec![ints(meta.shape.sizes()), ints(&kept)],
        )?)
    };
    let is0 = b.prim(Eq, vec![a.clone(), Arg::Float(0.0)], vec![])?;
    let a1 = b.prim(Where, vec![is0.into(), Arg::Float(1.0), a], vec![])?;
    let p_nz = b.prim(Prod, vec![a1.into()], vec![ints(dims)])?;
    let p_nz = full(b, p_nz)?;
    let zf = b.prim(
        ConvertElementType,
        vec![is0.into()],
        vec![Attr::DType(meta.dtype)],
    )?;
    let count = b.prim(Sum, vec![zf.into()], vec![ints(dims)])?;
    let count = full(b, count)?;
    let none = b.prim(Eq, vec![count.into(), Arg::Float(0.0)], vec![])?;
    let one = b.prim(Eq, vec![count.into(), Arg::Float(1.0)], vec![])?;
    let at_zero = b.prim(
        Where,
        vec![one.into(), p_nz.into(), Arg::Float(0.0)],
        vec![],
    )?;
    let q = b.prim(Div, vec![p_nz.into(), a1.into()], vec![])?;
    let elsewhere = b.prim(Where, vec![none.into(), q.into(), Arg::Float(0.0)], vec![])?;
    Ok(b.prim(
        Where,
        vec![is0.into(), at_zero.into(), elsewhere.into()],
        vec![],
    )?)
}

/// The VJP of `pad(a, config)`: undo the low/high padding (negative padding cropped `a`, so the
/// cropped elements get zeros back) and take every `interior + 1`-th element.
fn pad_vjp(b: &mut TraceBuilder, g: Value, a: &TensorMeta, config: &[Vec<i64>]) -> Result<Value> {
    use PrimOp::*;
    if a.shape.numel() == 0 {
        return zeros(b, a);
    }
    let mut v = g;
    if config.iter().any(|c| c[0] != 0 || c[1] != 0) {
        let undo: Vec<Vec<i64>> = config.iter().map(|c| vec![-c[0], -c[1], 0]).collect();
        v = b.prim(
            Pad,
            vec![v.into()],
            vec![Attr::Float(0.0), Attr::IntLists(undo)],
        )?;
    }
    if config.iter().any(|c| c[2] != 0) {
        let sizes = b.tensor(v)?.shape.sizes();
        v = b.prim(
            Slice,
            vec![v.into()],
            vec![
                Attr::Ints(vec![0; sizes.len()]),
                Attr::Ints(sizes.iter().map(|&s| s as i64).collect()),
                Attr::Ints(config.iter().map(|c| c[2] + 1).collect()),
            ],
        )?;
    }
    Ok(v)
}

/// Sums `v` over the dims that broadcasting added or expanded, so that it gets `target`'s shape.
fn reduce_to(b: &mut TraceBuilder, v: Value, target: &[usize]) -> Result<Value> {
    let shape = b.tensor(v)?.shape.sizes();
    if shape == target {
        return Ok(v);
    }
    let offset = shape.len() - target.len();
    let dims: Vec<usize> = (0..shape.len())
        .filter(|&d| d < offset || (target[d - offset] == 1 && shape[d] != 1))
        .collect();
    let s = b.prim(PrimOp::Sum, vec![v.into()], vec![ints(&dims)])?;
    Ok(b.prim(PrimOp::Reshape, vec![s.into()], vec![ints(target)])?)
}

pub(crate) fn reduced_dims(a: &Attr, rank: usize) -> Vec<usize> {
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
