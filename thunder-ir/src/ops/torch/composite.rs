//! Decompositions of the torch-level composites: cross entropy (and its backward) and the AdamW step.

use super::*;

/// Runs the decomposition of `op`, one of the composite family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    match op {
        T::CrossEntropy | T::CrossEntropyBackward | T::Adamw => composite(b, op, n, args, attrs),
        _ => Err(not_in_family(op, n)),
    }
}

/// Losses and the optimizer step.
fn composite(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::CrossEntropy => cross_entropy(b, n, tensor_arg(b, 0)?, tensor_arg(b, 1)?, attrs)?,
        T::CrossEntropyBackward => cross_entropy_backward(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?, tensor_arg(b, 2)?],
            attrs,
        )?,
        T::Adamw => return adamw(b, n, args, attrs),
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// The operands of `adamw` checked: the four lists (each parameter's gradient and moments match
/// it) and the step. Returns the lists.
fn adamw_operands(n: &str, b: &TraceBuilder, args: &[Arg]) -> Result<[Vec<Value>; 4]> {
    const NAMES: [&str; 4] = ["params", "grads", "exp_avgs", "exp_avg_sqs"];
    let mut lists: [Vec<Value>; 4] = Default::default();
    for (k, list) in lists.iter_mut().enumerate() {
        *list = match args.get(k) {
            Some(Arg::List(l)) => l.clone(),
            _ => {
                return Err(IrError::invalid(
                    n,
                    format!("{} must be a list of tensors", NAMES[k]),
                ))
            }
        };
    }
    let count = lists[0].len();
    for (k, l) in lists.iter().enumerate().skip(1) {
        if l.len() != count {
            return Err(IrError::invalid(
                n,
                format!(
                    "{} has {} tensors but params has {count}: pass one per parameter",
                    NAMES[k],
                    l.len()
                ),
            ));
        }
    }
    let step = match args.get(4) {
        Some(Arg::Value(v)) if b.tensor(*v).is_ok() => b.tensor(*v)?.clone(),
        _ => return Err(IrError::invalid(n, "step must be a tensor")),
    };
    let p0 = b.tensor(lists[0][0])?.clone();
    if step.rank() != 0 || !step.dtype.is_float() || step.device != p0.device {
        return Err(IrError::invalid(
            n,
            format!(
                "step must be a 0-dim floating tensor (float32, as PyTorch keeps it) on the parameters' device {}, got shape {}, dtype {}, device {}",
                p0.device, step.shape, step.dtype, step.device
            ),
        ));
    }
    for i in 0..count {
        let p = b.tensor(lists[0][i])?.clone();
        if !p.dtype.is_float() {
            return Err(IrError::invalid(
                n,
                format!("params[{i}] must have a floating dtype, got {}", p.dtype),
            ));
        }
        if p.device != p0.device {
            return Err(IrError::invalid(
                n,
                format!(
                    "params[{i}] is on {} but params[0] on {}: every parameter must be on one device",
                    p.device, p0.device
                ),
            ));
        }
        for (k, l) in lists.iter().enumerate().skip(1) {
            let t = b.tensor(l[i])?;
            if t.shape != p.shape || t.dtype != p.dtype || t.device != p.device {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "{}[{i}] (shape {}, {}, {}) must match params[{i}] (shape {}, {}, {})",
                        NAMES[k], t.shape, t.dtype, t.device, p.shape, p.dtype, p.device
                    ),
                ));
            }
        }
    }
    Ok(lists)
}

/// `adamw`: see [`TraceBuilder::adamw`]. The bias corrections are computed once from `step`, then
/// each parameter's update, in float32 for 16-bit parameters.
fn adamw(b: &mut TraceBuilder, n: &str, args: &[Arg], attrs: &[Attr]) -> Result<Vec<Value>> {
    let [params, grads, ms, vs] = adamw_operands(n, b, args)?;
    let step = match &args[4] {
        Arg::Value(v) => *v,
        _ => return Err(IrError::invalid(n, "step must be a tensor")),
    };
    let [lr, beta1, beta2, eps, wd] = [0, 1, 2, 3, 4].map(|i| attr_float(n, attrs, i));
    let (lr, beta1, beta2, eps, wd) = (lr?, beta1?, beta2?, eps?, wd?);
    attr_bool(n, attrs, 5)?;
    let bad = |what: &str, v: f64| {
        Err(IrError::invalid(
            n,
            format!("{what}={v} is out of range, as torch.optim.AdamW would reject it"),
        ))
    };
    if !(0.0..=f64::INFINITY).contains(&lr) {
        return bad("lr (must be >= 0)", lr);
    }
    if !(0.0..1.0).contains(&beta1) {
        return bad("beta1 (must be in [0, 1))", beta1);
    }
    if !(0.0..1.0).contains(&beta2) {
        return bad("beta2 (must be in [0, 1))", beta2);
    }
    if !(0.0..=f64::INFINITY).contains(&eps) {
        return bad("eps (must be >= 0)", eps);
    }
    if !(0.0..=f64::INFINITY).contains(&wd) {
        return bad("weight_decay (must be >= 0)", wd);
    }
    // Per computation dtype (float32, or float64 for float64 parameters): the step size and
    // sqrt(1 - beta2^step), as 0-dim tensors.
    let mut scalars: Vec<(DType, Value, Value)> = Vec::new();
    let mut new_p = Vec::with_capacity(params.len());
    let mut new_m = Vec::with_capacity(params.len());
    let mut new_v = Vec::with_capacity(params.len());
    for i in 0..params.len() {
        let pt = b.tensor(params[i])?.clone();
        let comp = if pt.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let (step_size, bc2_sqrt) = match scalars.iter().find(|s| s.0 == comp) {
            Some(&(_, a, c)) => (a, c),
            None => {
                let s = b.convert(step, comp)?;
                let p1 = b.p2(PrimOp::Pow, beta1, s)?;
                let bc1 = b.p2(PrimOp::Sub, 1.0, p1)?;
                let step_size = b.p2(PrimOp::Div, lr, bc1)?;
                let p2 = b.p2(PrimOp::Pow, beta2, s)?;
                let bc2 = b.p2(PrimOp::Sub, 1.0, p2)?;
                let bc2_sqrt = b.p1(PrimOp::Sqrt, bc2)?;
                scalars.push((comp, step_size, bc2_sqrt));
                (step_size, bc2_sqrt)
            }
        };
        let p = b.convert(params[i], comp)?;
        let g = b.convert(grads[i], comp)?;
        let m = b.convert(ms[i], comp)?;
        let v = b.convert(vs[i], comp)?;
        let p = if wd != 0.0 {
            b.p2(PrimOp::Mul, p, 1.0 - lr * wd)?
        } else {
            p
        };
        let m1 = b.p2(PrimOp::Mul, m, beta1)?;
        let g1 = b.p2(PrimOp::Mul, g, 1.0 - beta1)?;
        let m = b.p2(PrimOp::Add, m1, g1)?;
        let v1 = b.p2(PrimOp::Mul, v, beta2)?;
        let gg = b.p2(PrimOp::Mul, g, g)?;
        let g2 = b.p2(PrimOp::Mul, gg, 1.0 - beta2)?;
        let v = b.p2(PrimOp::Add, v1, g2)?;
        let sq = b.p1(PrimOp::Sqrt, v)?;
        let bc = b.broadcast_to(bc2_sqrt, &pt.shape)?;
        let d = b.p2(PrimOp::Div, sq, bc)?;
        let denom = b.p2(PrimOp::Add, d, eps)?;
        let ss = b.broadcast_to(step_size, &pt.shape)?;
        let upd = b.p2(PrimOp::Mul, ss, m)?;
        let upd = b.p2(PrimOp::Div, upd, denom)?;
        let p = b.p2(PrimOp::Sub, p, upd)?;
        new_p.push(b.convert(p, pt.dtype)?);
        new_m.push(b.convert(m, pt.dtype)?);
        new_v.push(b.convert(v, pt.dtype)?);
    }
    new_p.extend(new_m);
    new_p.extend(new_v);
    Ok(new_p)
}

fn cross_entropy(
    b: &mut TraceBuilder,
    n: &str,
    input: Value,
    target: Value,
    attrs: &[Attr],
) -> Result<Value> {
    let it = b.tensor(input)?.clone();
    let tt = b.tensor(target)?.clone();
    let ignore_index = attr_int(n, attrs, 0)?;
    let reduction = attr_str(n, attrs, 1)?.to_string();
    let label_smoothing = attr_float(n, attrs, 2)?;
    if !matches!(reduction.as_str(), "mean" | "sum" | "none") {
        return Err(IrError::invalid(
            n,
            format!("reduction={reduction:?} must be \"mean\", \"sum\" or \"none\""),
        ));
    }
    if label_smoothing != 0.0 {
        return Err(IrError::invalid(
            n,
            format!("label_smoothing={label_smoothing} is not supported yet (only 0.0)"),
        ));
    }
    let (rows, classes) = cross_entropy_operands(n, &it, &tt)?;
    let (x, tgt) = if it.rank() == 1 {
        (
            b.prim(
                PrimOp::Reshape,
                vec![input.into()],
                vec![ints([1, classes])],
            )?,
            b.prim(PrimOp::Reshape, vec![target.into()], vec![ints([1])])?,
        )
    } else {
        (input, target)
    };
    let comp = if it.dtype.is_low_precision_float() {
        DType::F32
    } else {
        it.dtype
    };
    let xc = b.convert(x, comp)?;
    let logp = b.t(
        TorchOp::LogSoftmax,
        vec![xc.into()],
        vec![Attr::Int(1), Attr::None],
    )?;
    let col = b.prim(
        PrimOp::BroadcastInDim,
        vec![tgt.into()],
        vec![ints([rows, 1]), ints([0])],
    )?;
    let valid = b.p2(PrimOp::Ne, col, ignore_index)?;
    let safe = b.prim(
        PrimOp::Where,
        vec![valid.into(), col.into(), Arg::Int(0)],
        vec![],
    )?;
    let picked = b.prim(
        PrimOp::TakeAlongAxis,
        vec![logp.into(), safe.into()],
        vec![Attr::Int(1)],
    )?;
    let nll = b.p1(PrimOp::Neg, picked)?;
    let nll = b.prim(
        PrimOp::Where,
        vec![valid.into(), nll.into(), Arg::Float(0.0)],
        vec![],
    )?;
    let nll = b.prim(PrimOp::Reshape, vec![nll.into()], vec![ints([rows])])?;
    let y = match reduction.as_str() {
        "none" if it.rank() == 1 => b.prim(PrimOp::Reshape, vec![nll.into()], vec![ints([])])?,
        "none" => nll,
        "sum" => b.reduce(PrimOp::Sum, nll, &[0])?,
        _ => {
            let total = b.reduce(PrimOp::Sum, nll, &[0])?;
            let vf = b.convert(valid, comp)?;
            let count = b.reduce(PrimOp::Sum, vf, &[0, 1])?;
            b.p2(PrimOp::Div, total, count)?
        }
    };
    b.convert(y, it.dtype)
}

/// Checks `cross_entropy`'s input and target (shapes `[N, C]` and `[N]`, or `[C]` and `[]`) and
/// returns `(rows, classes)`.
fn cross_entropy_operands(
    n: &str,
    it: &crate::value::TensorMeta,
    tt: &crate::value::TensorMeta,
) -> Result<(usize, usize)> {
    if !it.dtype.is_float() {
        return Err(IrError::invalid(
            n,
            format!("input must have a floating dtype, got {}", it.dtype),
        ));
    }
    if tt.dtype != DType::I64 {
        return Err(IrError::invalid(
            n,
            format!("target must hold int64 class indices, got {} (class-probability targets are not supported yet)", tt.dtype),
        ));
    }
    let ok = match it.rank() {
        2 => tt.rank() == 1 && tt.shape.size(0) == it.shape.size(0),
        1 => tt.rank() == 0,
        _ => false,
    };
    if !ok {
        return Err(IrError::invalid(
            n,
            format!(
                "input of shape {} and target of shape {} must be [N, C] and [N], or [C] and []",
                it.shape, tt.shape
            ),
        ));
    }
    Ok(if it.rank() == 2 {
        (it.shape.size(0), it.shape.size(1))
    } else {
        (1, it.shape.size(0))
    })
}

/// `cross_entropy_backward(g, input, target)`: `(softmax(x) - onehot(target)) * w` per row, `w`
/// the row's cotangent, zero for ignored rows, divided by the number of counted rows for the mean.
fn cross_entropy_backward(
    b: &mut TraceBuilder,
    n: &str,
    [g, input, target]: [Value; 3],
    attrs: &[Attr],
) -> Result<Value> {
    let it = b.tensor(input)?.clone();
    let tt = b.tensor(target)?.clone();
    let gt = b.tensor(g)?.clone();
    let ignore_index = attr_int(n, attrs, 0)?;
    let reduction = attr_str(n, attrs, 1)?.to_string();
    let (rows, classes) = cross_entropy_operands(n, &it, &tt)?;
    let g_shape: Vec<usize> = match reduction.as_str() {
        "mean" | "sum" => vec![],
        "none" => tt.shape.sizes().to_vec(),
        other => {
            return Err(IrError::invalid(
                n,
                format!("reduction={other:?} must be \"mean\", \"sum\" or \"none\""),
            ))
        }
    };
    if gt.shape.sizes() != g_shape.as_slice() || !gt.dtype.is_float() {
        return Err(IrError::invalid(
            n,
            format!(
                "grad_out of shape {} and dtype {} must be a floating tensor of the loss's shape {:?}",
                gt.shape, gt.dtype, g_shape
            ),
        ));
    }
    let comp = if it.dtype.is_low_precision_float() {
        DType::F32
    } else {
        it.dtype
    };
    let rc = [rows, classes];
    let expand = |b: &mut TraceBuilder, v: Value, dims: &[usize]| {
        b.prim(
            PrimOp::BroadcastInDim,
            vec![v.into()],
            vec![ints(rc), ints(dims.iter().copied())],
        )
    };
    // The softmax of the logits, recomputed.
    let x = b.prim(PrimOp::Reshape, vec![input.into()], vec![ints(rc)])?;
    let x = b.convert(x, comp)?;
    let mx = b.prim(PrimOp::Amax, vec![x.into()], vec![ints([1])])?;
    let mxb = expand(b, mx, &[0])?;
    let s = b.p2(PrimOp::Sub, x, mxb)?;
    let e = b.p1(PrimOp::Exp, s)?;
    let z = b.reduce(PrimOp::Sum, e, &[1])?;
    let zb = expand(b, z, &[0])?;
    let probs = b.p2(PrimOp::Div, e, zb)?;
    // Each row's weight.
    let t1 = b.prim(PrimOp::Reshape, vec![target.into()], vec![ints([rows])])?;
    let valid = b.p2(PrimOp::Ne, t1, ignore_index)?;
    let vf = b.convert(valid, comp)?;
    let gc = b.convert(g, comp)?;
    let w = if reduction == "none" {
        let g1 = b.prim(PrimOp::Reshape, vec![gc.into()], vec![ints([rows])])?;
        b.p2(PrimOp::Mul, g1, vf)?
    } else {
        let gb = b.prim(
            PrimOp::BroadcastInDim,
            vec![gc.into()],
            vec![ints([rows]), ints([0usize; 0])],
        )?;
        let w = b.p2(PrimOp::Mul, gb, vf)?;
        if reduction == "mean" {
            // Divided by the number of counted rows, at least 1: when every row is ignored the
            // gradient is 0 (as PyTorch's), and its own derivatives stay finite.
            let count = b.reduce(PrimOp::Sum, vf, &[0])?;
            let count = b.p2(PrimOp::Maximum, count, 1.0)?;
            let cb = b.prim(
                PrimOp::BroadcastInDim,
                vec![count.into()],
                vec![ints([rows]), ints([0usize; 0])],
            )?;
            b.p2(PrimOp::Div, w, cb)?
        } else {
            w
        }
    };
    let iota = b.prim(
        PrimOp::Iota,
        vec![],
        vec![
            Attr::Int(classes as i64),
            Attr::Int(0),
            Attr::Int(1),
            Attr::Device(it.device),
            Attr::DType(DType::I64),
        ],
    )?;
    let cols = expand(b, iota, &[1])?;
    let tb = expand(b, t1, &[0])?;
    let hit = b.p2(PrimOp::Eq, cols, tb)?;
    let onehot = b.convert(hit, comp)?;
    let wb = expand(b, w, &[0])?;
    let pw = b.p2(PrimOp::Mul, probs, wb)?;
    let ow = b.p2(PrimOp::Mul, onehot, wb)?;
    let gx = b.p2(PrimOp::Sub, pw, ow)?;
    let gx = b.prim(
        PrimOp::Reshape,
        vec![gx.into()],
        vec![ints(it.shape.sizes().iter().copied())],
    )?;
    b.convert(gx, it.dtype)
}
