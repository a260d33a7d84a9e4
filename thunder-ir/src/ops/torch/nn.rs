//! Decompositions of the torch-level neural-network ops: softmax, norms, dropout, embedding, matrix products, conv2d, attention.

use super::*;

/// Runs the decomposition of `op`, one of the nn family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    match op {
        T::Softmax | T::LogSoftmax => softmax(b, op, n, args, attrs),
        T::RmsNorm | T::LayerNorm => norm(b, op, n, args, attrs),
        T::Dropout => dropout(b, op, n, args, attrs),
        T::Embedding
        | T::Linear
        | T::Matmul
        | T::Bmm
        | T::Addmm
        | T::Conv2d
        | T::ScaledDotProductAttention
        | T::ScaledDotProductAttentionBackward => products(b, op, n, args, attrs),
        _ => Err(not_in_family(op, n)),
    }
}

/// softmax and log_softmax.
fn softmax(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = {
        let a = tensor_arg(b, 0)?;
        let t = b.tensor(a)?.clone();
        if !t.dtype.is_float() {
            return Err(IrError::invalid(
                n,
                format!("a must have a floating dtype, got {}", t.dtype),
            ));
        }
        let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
        let result = attr_opt_dtype(n, attrs, 1)?.unwrap_or(t.dtype);
        let comp = if result.is_low_precision_float() {
            DType::F32
        } else {
            result
        };
        let x = b.convert(a, comp)?;
        // Over a 0-dim tensor the reduction is over nothing.
        let dims: Vec<usize> = if t.rank() == 0 { vec![] } else { vec![d] };
        let m = b.reduce(PrimOp::Amax, x, &dims)?;
        let mb = b.expand_reduced(m, &t.shape, &dims)?;
        let s = b.p2(PrimOp::Sub, x, mb)?;
        let e = b.p1(PrimOp::Exp, s)?;
        let z = b.reduce(PrimOp::Sum, e, &dims)?;
        let y = if op == T::Softmax {
            let zb = b.expand_reduced(z, &t.shape, &dims)?;
            b.p2(PrimOp::Div, e, zb)?
        } else {
            let lz = b.p1(PrimOp::Log, z)?;
            let lzb = b.expand_reduced(lz, &t.shape, &dims)?;
            b.p2(PrimOp::Sub, s, lzb)?
        };
        b.convert(y, result)?
    };
    Ok(vec![out])
}

/// rms_norm and layer_norm.
fn norm(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = {
        let a = tensor_arg(b, 0)?;
        let t = b.tensor(a)?.clone();
        let ns = attr_ints(n, attrs, 0)?;
        let k = ns.len();
        let matches = k <= t.rank()
            && ns
                .iter()
                .zip(&t.shape.sizes()[t.rank() - k..])
                .all(|(&x, &y)| x == y as i64);
        if k == 0 || !matches {
            return Err(IrError::invalid(
                    n,
                    format!("normalized_shape={ns:?} must be non-empty and match the trailing dims of a, which has shape {}", t.shape),
                ));
        }
        if !t.dtype.is_float() {
            return Err(IrError::invalid(
                n,
                format!("a must have a floating dtype, got {}", t.dtype),
            ));
        }
        let eps = if op == T::RmsNorm {
            attr_opt_float(n, attrs, 1)?.unwrap_or_else(|| finfo_eps(t.dtype))
        } else {
            attr_float(n, attrs, 1)?
        };
        let dims: Vec<usize> = (t.rank() - k..t.rank()).collect();
        // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
        let count: usize = dims.iter().map(|&d| t.shape.size(d)).product();
        let comp = if t.dtype.is_low_precision_float() {
            DType::F32
        } else {
            t.dtype
        };
        let x = b.convert(a, comp)?;
        let mut y = if op == T::RmsNorm {
            let sq = b.p2(PrimOp::Mul, x, x)?;
            let ms = b.reduce(PrimOp::Sum, sq, &dims)?;
            let ms = b.p2(PrimOp::Div, ms, count as f64)?;
            let ms = b.p2(PrimOp::Add, ms, eps)?;
            let r = b.p1(PrimOp::Rsqrt, ms)?;
            let rb = b.expand_reduced(r, &t.shape, &dims)?;
            b.p2(PrimOp::Mul, x, rb)?
        } else {
            let s = b.reduce(PrimOp::Sum, x, &dims)?;
            let mean = b.p2(PrimOp::Div, s, count as f64)?;
            let mb = b.expand_reduced(mean, &t.shape, &dims)?;
            let c = b.p2(PrimOp::Sub, x, mb)?;
            let var = b.prim(
                PrimOp::Var,
                vec![x.into()],
                vec![ints(dims.iter().copied()), Attr::Float(0.0)],
            )?;
            let ve = b.p2(PrimOp::Add, var, eps)?;
            let r = b.p1(PrimOp::Rsqrt, ve)?;
            let rb = b.expand_reduced(r, &t.shape, &dims)?;
            b.p2(PrimOp::Mul, c, rb)?
        };
        let affine = if op == T::RmsNorm {
            vec![(1, PrimOp::Mul)]
        } else {
            vec![(1, PrimOp::Mul), (2, PrimOp::Add)]
        };
        for (i, prim) in affine {
            if let Arg::Value(w) = args[i] {
                let wt = b.tensor(w)?.clone();
                if wt.shape.sizes() != t.shape.sizes()[t.rank() - k..] {
                    let which = op.signature().operands[i].0;
                    return Err(IrError::invalid(
                        n,
                        format!(
                            "{which} has shape {} but normalized_shape is {ns:?}",
                            wt.shape
                        ),
                    ));
                }
                let wc = b.convert(w, comp)?;
                let wb = b.broadcast_to(wc, &t.shape)?;
                y = b.p2(prim, y, wb)?;
            }
        }
        b.convert(y, t.dtype)?
    };
    Ok(vec![out])
}

/// dropout.
fn dropout(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = {
        let a = tensor_arg(b, 0)?;
        let t = b.tensor(a)?.clone();
        let p = attr_float(n, attrs, 0)?;
        if !(0.0..=1.0).contains(&p) {
            return Err(IrError::invalid(
                n,
                format!("p={p} must be between 0 and 1"),
            ));
        }
        if !attr_bool(n, attrs, 1)? || p == 0.0 {
            return Ok(vec![a]);
        }
        if !t.dtype.is_float() {
            return Err(IrError::invalid(
                n,
                format!("a must have a floating dtype, got {}", t.dtype),
            ));
        }
        if p == 1.0 {
            return Ok(vec![b.full_prim(
                &t.shape,
                Attr::Float(0.0),
                t.device,
                t.dtype,
            )?]);
        }
        let comp = if t.dtype.is_low_precision_float() {
            DType::F32
        } else {
            t.dtype
        };
        let u = b.prim(
            PrimOp::Uniform,
            vec![],
            vec![
                ints(t.shape.sizes()),
                Attr::Float(0.0),
                Attr::Float(1.0),
                Attr::Device(t.device),
                Attr::DType(comp),
            ],
        )?;
        let keep = b.p2(PrimOp::Lt, u, 1.0 - p)?;
        let x = b.convert(a, comp)?;
        let scaled = b.p2(PrimOp::Mul, x, 1.0 / (1.0 - p))?;
        let y = b.prim(
            PrimOp::Where,
            vec![keep.into(), scaled.into(), Arg::Float(0.0)],
            vec![],
        )?;
        b.convert(y, t.dtype)?
    };
    Ok(vec![out])
}

/// Embedding, matrix products, conv2d and attention.
fn products(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Embedding => {
            let a = tensor_arg(b, 0)?;
            let w = tensor_arg(b, 1)?;
            let padding_idx = attr_opt_int(n, attrs, 0)?;
            b.prim(
                PrimOp::Embedding,
                vec![a.into(), w.into()],
                vec![
                    padding_idx.map_or(Attr::None, Attr::Int),
                    Attr::None,
                    Attr::Float(2.0),
                    Attr::Bool(false),
                    Attr::Bool(false),
                ],
            )
            .map_err(|e| rename(e, n))?
        }
        T::Linear => {
            let (a, w) = (tensor_arg(b, 0)?, tensor_arg(b, 1)?);
            b.prim(
                PrimOp::Linear,
                vec![a.into(), w.into(), args[2].clone()],
                vec![],
            )
            .map_err(|e| rename(e, n))?
        }
        T::Matmul | T::Bmm => {
            let (x, y) = (tensor_arg(b, 0)?, tensor_arg(b, 1)?);
            if op == T::Bmm {
                let (xs, ys) = (b.tensor(x)?.shape.clone(), b.tensor(y)?.shape.clone());
                if xs.rank() != 3 || ys.rank() != 3 || xs.size(0) != ys.size(0) {
                    return Err(IrError::invalid(n, format!("a and b must be 3-D with the same batch size, got shapes {xs} and {ys}")));
                }
            }
            b.p2(PrimOp::Matmul, x, y).map_err(|e| rename(e, n))?
        }
        T::Addmm => addmm(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?, tensor_arg(b, 2)?],
            attrs,
        )?,
        T::Conv2d => conv2d(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?],
            &args[2],
            attrs,
        )?,
        T::ScaledDotProductAttention => sdpa(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?, tensor_arg(b, 2)?],
            &args[3],
            attrs,
        )?,
        T::ScaledDotProductAttentionBackward => {
            return sdpa_backward(
                b,
                n,
                tensor_arg(b, 0)?,
                [tensor_arg(b, 1)?, tensor_arg(b, 2)?, tensor_arg(b, 3)?],
                &args[4],
                attrs,
            )
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// `addmm(a, mat1, mat2, beta, alpha)`: `beta * a + alpha * (mat1 @ mat2)`, `a` broadcast to the
/// product's shape; beta and alpha None are 1, and beta 0 ignores `a` (its NaNs too), as PyTorch.
/// The three share one dtype; for integer dtypes beta and alpha are truncated to ints, as
/// PyTorch's kernels do. The scaling and the sum of 16-bit floats are computed in float32.
fn addmm(b: &mut TraceBuilder, n: &str, [a, m1, m2]: [Value; 3], attrs: &[Attr]) -> Result<Value> {
    let (at, t1, t2) = (
        b.tensor(a)?.clone(),
        b.tensor(m1)?.clone(),
        b.tensor(m2)?.clone(),
    );
    if t1.rank() != 2 || t2.rank() != 2 {
        return Err(IrError::invalid(
            n,
            format!(
                "mat1 and mat2 must be matrices (2-D), got shapes {} and {}",
                t1.shape, t2.shape
            ),
        ));
    }
    if t1.shape.size(1) != t2.shape.size(0) {
        return Err(IrError::invalid(
            n,
            format!(
                "mat1 of shape {} and mat2 of shape {} cannot be multiplied",
                t1.shape, t2.shape
            ),
        ));
    }
    if t1.dtype != at.dtype || t2.dtype != at.dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "input, mat1 and mat2 must share one dtype, got {}, {} and {}",
                at.dtype, t1.dtype, t2.dtype
            ),
        ));
    }
    let dtype = at.dtype;
    if dtype.is_bool() {
        return Err(IrError::invalid(
            n,
            "input, mat1 and mat2 must not be bool tensors",
        ));
    }
    if at.device != t1.device {
        return Err(IrError::invalid(
            n,
            format!(
                "input is on {} but mat1 is on {}; move them to one device",
                at.device, t1.device
            ),
        ));
    }
    let out = Shape::new([t1.shape.size(0), t2.shape.size(1)]);
    if broadcast_shapes(n, &at.shape, &out).ok().as_ref() != Some(&out) {
        return Err(IrError::invalid(
            n,
            format!(
                "input of shape {} does not broadcast to the product's shape {out}",
                at.shape
            ),
        ));
    }
    // beta and alpha as numbers of the computation: ints for integer dtypes, floats otherwise.
    let scalar = |i: usize| -> Result<Arg> {
        let v = match attrs.get(i) {
            None | Some(Attr::None) => Arg::Int(1),
            Some(Attr::Bool(v)) => Arg::Int(i64::from(*v)),
            Some(Attr::Int(v)) => Arg::Int(*v),
            Some(Attr::Float(f)) if dtype.is_integer() => Arg::Int(float_to_int(n, *f)?),
            Some(Attr::Float(f)) => Arg::Float(*f),
            Some(other) => {
                let which = TorchOp::Addmm.signature().attrs[i].0;
                return Err(IrError::invalid(
                    n,
                    format!("{which} must be a number, got {other:?}"),
                ));
            }
        };
        Ok(match v {
            Arg::Int(v) if !dtype.is_integer() => Arg::Float(v as f64),
            v => v,
        })
    };
    let (beta, alpha) = (scalar(0)?, scalar(1)?);
    let is = |x: &Arg, k: i64| match x {
        Arg::Int(v) => *v == k,
        Arg::Float(f) => *f == k as f64,
        _ => false,
    };
    let comp = if dtype.is_low_precision_float() {
        DType::F32
    } else {
        dtype
    };
    let prod = b.p2(PrimOp::Matmul, m1, m2).map_err(|e| rename(e, n))?;
    let mut y = b.convert(prod, comp)?;
    if !is(&alpha, 1) {
        y = b.p2(PrimOp::Mul, y, alpha)?;
    }
    if !is(&beta, 0) {
        let c = b.broadcast_to(a, &out)?;
        let mut c = b.convert(c, comp)?;
        if !is(&beta, 1) {
            c = b.p2(PrimOp::Mul, c, beta)?;
        }
        y = b.p2(PrimOp::Add, c, y)?;
    }
    b.convert(y, dtype)
}

/// `stride`, `padding` or `dilation` of conv2d as (height, width): an int is both, a list holds
/// one value (both) or two; `min` is the least value allowed.
fn conv_pair(n: &str, attrs: &[Attr], i: usize, min: i64) -> Result<[usize; 2]> {
    let which = TorchOp::Conv2d.signature().attrs[i].0;
    let v: Vec<i64> = match attrs.get(i) {
        Some(Attr::Int(x)) => vec![*x, *x],
        Some(Attr::Ints(v)) if v.len() == 1 => vec![v[0], v[0]],
        Some(Attr::Ints(v)) if v.len() == 2 => v.clone(),
        other => {
            return Err(IrError::invalid(
                n,
                format!("{which} must be an int or a list of 1 or 2 ints, got {other:?}"),
            ))
        }
    };
    if v.iter().any(|&x| x < min) {
        return Err(IrError::invalid(
            n,
            format!("{which}={v:?} must be at least {min}"),
        ));
    }
    // Bounded by the check below against the input's sizes (stride and dilation) or by the
    // padded size's overflow check (padding).
    let cast = |x: i64| {
        usize::try_from(x).map_err(|_| IrError::invalid(n, format!("{which}={v:?} is too large")))
    };
    Ok([cast(v[0])?, cast(v[1])?])
}

/// `conv2d(a, w, bias, stride, padding, dilation, groups)`: a 2-D cross-correlation of `a`
/// (`N x C x H x W`, or unbatched `C x H x W`) with `w` (`O x C/groups x kH x kW`), plus `bias`
/// (`O`). Decomposed as im2col: `a` padded with zeros, one strided slice per kernel offset
/// (or, when the stride equals the kernel and the dilation is 1, as ViT's patch embedding, one
/// reshape into patches), and a batched matmul per group with the weight. 16-bit floats are
/// computed in float32 and rounded once.
fn conv2d(
    b: &mut TraceBuilder,
    n: &str,
    [a, w]: [Value; 2],
    bias: &Arg,
    attrs: &[Attr],
) -> Result<Value> {
    let (at, wt) = (b.tensor(a)?.clone(), b.tensor(w)?.clone());
    if at.rank() != 3 && at.rank() != 4 {
        return Err(IrError::invalid(
            n,
            format!(
                "input must be 3-D (unbatched) or 4-D (batched), got shape {}",
                at.shape
            ),
        ));
    }
    if wt.rank() != 4 {
        return Err(IrError::invalid(
            n,
            format!(
                "weight must be 4-D (out_channels x in_channels/groups x kH x kW), got shape {}",
                wt.shape
            ),
        ));
    }
    if !at.dtype.is_float() || wt.dtype != at.dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "input and weight must share one floating dtype, got {} and {}",
                at.dtype, wt.dtype
            ),
        ));
    }
    if at.device != wt.device {
        return Err(IrError::invalid(
            n,
            format!(
                "input is on {} but weight is on {}; move them to one device",
                at.device, wt.device
            ),
        ));
    }
    let [sh, sw] = conv_pair(n, attrs, 0, 1)?;
    let [ph, pw] = conv_pair(n, attrs, 1, 0)?;
    let [dh, dw] = conv_pair(n, attrs, 2, 1)?;
    let groups = attr_int(n, attrs, 3)?;
    if groups < 1 {
        return Err(IrError::invalid(
            n,
            format!("groups={groups} must be positive"),
        ));
    }
    let batched = at.rank() == 4;
    let x_sizes = if batched {
        at.shape.sizes()
    } else {
        let mut s = at.shape.sizes();
        s.insert(0, 1);
        s
    };
    let (nb, c, h, wd) = (x_sizes[0], x_sizes[1], x_sizes[2], x_sizes[3]);
    let ws = wt.shape.sizes();
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let g = usize::try_from(groups).unwrap_or(usize::MAX);
    if o % g != 0 {
        return Err(IrError::invalid(
            n,
            format!("weight has {o} output channels, not divisible by groups={groups}"),
        ));
    }
    if c != cg.saturating_mul(g) {
        return Err(IrError::invalid(
            n,
            format!(
                "given groups={groups}, weight of shape {} expects input of shape {} to have {} channels, but it has {c}",
                wt.shape,
                at.shape,
                cg.saturating_mul(g)
            ),
        ));
    }
    if let Arg::Value(bv) = bias {
        let bt = b.tensor(*bv)?.clone();
        if bt.shape.sizes() != [o] || bt.dtype != at.dtype || bt.device != at.device {
            return Err(IrError::invalid(
                n,
                format!(
                    "bias must be a {} tensor of shape [{o}] on {}, got {} of shape {} on {}",
                    at.dtype, at.device, bt.dtype, bt.shape, bt.device
                ),
            ));
        }
    }
    // The padded extent and the extent of the dilated kernel, per spatial dim.
    let spatial = |size: usize, pad: usize, k: usize, d: usize, s: usize| -> Result<usize> {
        let padded = pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(size))
            .filter(|&p| p <= crate::shape::MAX_NUMEL);
        let ext = k
            .checked_sub(1)
            .and_then(|k1| k1.checked_mul(d))
            .and_then(|e| e.checked_add(1));
        match (padded, ext) {
            (Some(p), Some(e)) if k > 0 && e <= p => Ok((p - e) / s + 1),
            _ => Err(IrError::invalid(
                n,
                format!(
                    "the kernel of size {k} (dilation {d}) does not fit the input's size {size} padded by {pad} on each side"
                ),
            )),
        }
    };
    let ho = spatial(h, ph, kh, dh, sh)?;
    let wo = spatial(wd, pw, kw, dw, sw)?;
    let comp = if at.dtype.is_low_precision_float() {
        DType::F32
    } else {
        at.dtype
    };
    let mut x = b.convert(a, comp)?;
    if !batched {
        x = b.prim(PrimOp::Reshape, vec![x.into()], vec![ints(x_sizes.clone())])?;
    }
    if ph > 0 || pw > 0 {
        let (ph, pw) = (ph as i64, pw as i64);
        x = b.prim(
            PrimOp::Pad,
            vec![x.into()],
            vec![
                Attr::Float(0.0),
                Attr::IntLists(vec![
                    vec![0, 0, 0],
                    vec![0, 0, 0],
                    vec![ph, ph, 0],
                    vec![pw, pw, 0],
                ]),
            ],
        )?;
    }
    let k = kh * kw;
    let l = ho * wo;
    // The columns: [N, C, kH * kW, Ho, Wo], the kernel offsets in the weight's (row-major) order.
    let cols = if dh == 1 && dw == 1 && sh == kh && sw == kw {
        // Non-overlapping patches: crop to whole patches, split each spatial dim into
        // (patch, offset) and move the offsets before the patches.
        let (eh, ew) = (ho * kh, wo * kw);
        let xs = b.tensor(x)?.shape.sizes();
        if xs[2] != eh || xs[3] != ew {
            x = b.prim(
                PrimOp::Slice,
                vec![x.into()],
                vec![
                    ints([0, 0, 0, 0]),
                    ints([nb, c, eh, ew]),
                    ints([1, 1, 1, 1]),
                ],
            )?;
        }
        let x6 = b.prim(
            PrimOp::Reshape,
            vec![x.into()],
            vec![ints([nb, c, ho, kh, wo, kw])],
        )?;
        let t = b.prim(
            PrimOp::Transpose,
            vec![x6.into()],
            vec![ints([0, 1, 3, 5, 2, 4])],
        )?;
        b.prim(
            PrimOp::Reshape,
            vec![t.into()],
            vec![ints([nb, c, k, ho, wo])],
        )?
    } else {
        let mut parts = Vec::with_capacity(k);
        for i in 0..kh {
            for j in 0..kw {
                let (r0, c0) = (i * dh, j * dw);
                let s = b.prim(
                    PrimOp::Slice,
                    vec![x.into()],
                    vec![
                        ints([0, 0, r0, c0]),
                        ints([nb, c, r0 + (ho - 1) * sh + 1, c0 + (wo - 1) * sw + 1]),
                        ints([1, 1, sh, sw]),
                    ],
                )?;
                parts.push(b.prim(
                    PrimOp::BroadcastInDim,
                    vec![s.into()],
                    vec![ints([nb, c, 1, ho, wo]), ints([0, 1, 3, 4])],
                )?);
            }
        }
        if parts.len() == 1 {
            parts[0]
        } else {
            b.prim(PrimOp::Cat, vec![Arg::List(parts)], vec![Attr::Int(2)])?
        }
    };
    // [N, g, C/g * kH * kW, Ho * Wo] against the weight as [g, O/g, C/g * kH * kW].
    let cols = b.prim(
        PrimOp::Reshape,
        vec![cols.into()],
        vec![ints([nb, g, cg * k, l])],
    )?;
    let wc = b.convert(w, comp)?;
    let wm = b.prim(
        PrimOp::Reshape,
        vec![wc.into()],
        vec![ints([g, o / g, cg * k])],
    )?;
    let y = b.p2(PrimOp::Matmul, wm, cols).map_err(|e| rename(e, n))?;
    let mut y = b.prim(PrimOp::Reshape, vec![y.into()], vec![ints([nb, o, ho, wo])])?;
    if let Arg::Value(bv) = bias {
        let bc = b.convert(*bv, comp)?;
        let bb = b.prim(
            PrimOp::BroadcastInDim,
            vec![bc.into()],
            vec![ints([nb, o, ho, wo]), ints([1])],
        )?;
        y = b.p2(PrimOp::Add, y, bb)?;
    }
    if !batched {
        y = b.prim(PrimOp::Reshape, vec![y.into()], vec![ints([o, ho, wo])])?;
    }
    b.convert(y, at.dtype)
}

/// What the forward and the backward of attention share: the checked operands, key and value
/// with their heads repeated for grouped-query attention, all in the computation dtype, and the
/// attention weights `softmax(q k^T * scale + mask)`.
struct SdpaParts {
    q: Value,
    k: Value,
    v: Value,
    attn: Value,
    scale: f64,
    comp: DType,
    /// The query's, key's and value's metadata.
    metas: [crate::value::TensorMeta; 3],
    /// Query heads per key/value head (1 without grouped-query attention).
    group: usize,
}

/// [`SdpaParts`]; `flags` are `is_causal`, `scale` and `enable_gqa`.
fn sdpa_parts(
    b: &mut TraceBuilder,
    n: &str,
    qkv: [Value; 3],
    mask: &Arg,
    flags: (bool, Option<f64>, bool),
) -> Result<SdpaParts> {
    let [q, k, v] = qkv;
    let (is_causal, scale, enable_gqa) = flags;
    let (qt, kt, vt) = (
        b.tensor(q)?.clone(),
        b.tensor(k)?.clone(),
        b.tensor(v)?.clone(),
    );
    if qt.rank() < 2 || kt.rank() != qt.rank() || vt.rank() != qt.rank() {
        return Err(IrError::invalid(
            n,
            format!("query, key and value must have the same rank (at least 2), got shapes {}, {} and {}", qt.shape, kt.shape, vt.shape),
        ));
    }
    if !qt.dtype.is_float() || kt.dtype != qt.dtype || vt.dtype != qt.dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "query, key and value must share one floating dtype, got {}, {} and {}",
                qt.dtype, kt.dtype, vt.dtype
            ),
        ));
    }
    let r = qt.rank();
    let e = qt.shape.size(r - 1);
    if kt.shape.size(r - 1) != e || kt.shape.size(r - 2) != vt.shape.size(r - 2) {
        return Err(IrError::invalid(
            n,
            format!(
                "key {} must have query's head dim {e} and as many positions as value {}",
                kt.shape, vt.shape
            ),
        ));
    }
    if is_causal && !matches!(mask, Arg::None) {
        return Err(IrError::invalid(
            n,
            "attn_mask and is_causal=True cannot be used together",
        ));
    }
    let (mut k, mut v) = (k, v);
    let mut group = 1;
    if r >= 3 {
        let (hq, hk) = (qt.shape.size(r - 3), kt.shape.size(r - 3));
        if hq != hk {
            if !enable_gqa || hk == 0 || hq % hk != 0 || vt.shape.size(r - 3) != hk {
                return Err(IrError::invalid(
                    n,
                    format!("query has {hq} heads but key/value have {hk}: pass enable_gqa=True with a query head count that is a multiple"),
                ));
            }
            group = hq / hk;
            k = repeat_heads(b, k, hq, hk)?;
            v = repeat_heads(b, v, hq, hk)?;
        }
    }
    let (l, s) = (qt.shape.size(r - 2), kt.shape.size(r - 2));
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 1, r - 2);
    // 16-bit inputs are computed in float32 throughout (both matmuls, the softmax), as
    // PyTorch's attention kernels accumulate, and rounded once at the end.
    let comp = if qt.dtype.is_low_precision_float() {
        DType::F32
    } else {
        qt.dtype
    };
    let (q, k, v) = (
        b.convert(q, comp)?,
        b.convert(k, comp)?,
        b.convert(v, comp)?,
    );
    let k_t = b.prim(PrimOp::Transpose, vec![k.into()], vec![ints(perm)])?;
    let scores = b.p2(PrimOp::Matmul, q, k_t).map_err(|e| rename(e, n))?;
    let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
    let mut scores = b.p2(PrimOp::Mul, scores, scale)?;
    let score_shape = b.tensor(scores)?.shape.clone();
    if is_causal {
        scores = causal(b, scores, [l, s], qt.device)?;
    } else if let Arg::Value(m) = mask {
        let mt = b.tensor(*m)?.clone();
        let shape = broadcast_shapes(n, &mt.shape, &score_shape)?;
        if shape != score_shape {
            return Err(IrError::invalid(
                n,
                format!(
                    "attn_mask of shape {} does not broadcast to the scores' shape {score_shape}",
                    mt.shape
                ),
            ));
        }
        let mb = b.broadcast_to(*m, &score_shape)?;
        scores = if mt.dtype.is_bool() {
            b.prim(
                PrimOp::Where,
                vec![mb.into(), scores.into(), Arg::Float(f64::NEG_INFINITY)],
                vec![],
            )?
        } else {
            let mf = b.convert(mb, comp)?;
            b.p2(PrimOp::Add, scores, mf)?
        };
    }
    let attn = b.t(
        TorchOp::Softmax,
        vec![scores.into()],
        vec![Attr::Int(-1), Attr::None],
    )?;
    Ok(SdpaParts {
        q,
        k,
        v,
        attn,
        scale,
        comp,
        metas: [qt, kt, vt],
        group,
    })
}

/// `x` (key or value, heads at dim `rank - 3`) with each of its `hk` heads repeated `hq / hk`
/// times (`repeat_interleave` along the head dim), for grouped-query attention.
fn repeat_heads(b: &mut TraceBuilder, x: Value, hq: usize, hk: usize) -> Result<Value> {
    let s = b.tensor(x)?.shape.sizes();
    let r = s.len();
    let mut expanded = s[..r - 2].to_vec();
    expanded.insert(r - 2, hq / hk);
    expanded.extend_from_slice(&s[r - 2..]);
    let bdims = (0..r).map(|i| if i < r - 2 { i } else { i + 1 });
    let bx = b.prim(
        PrimOp::BroadcastInDim,
        vec![x.into()],
        vec![ints(expanded), ints(bdims)],
    )?;
    let mut target = s.clone();
    target[r - 3] = hq;
    b.prim(PrimOp::Reshape, vec![bx.into()], vec![ints(target)])
}

/// `scores` (`[..., l, s]`) with the positions above the diagonal set to -inf (`is_causal`).
fn causal(
    b: &mut TraceBuilder,
    scores: Value,
    [l, s]: [usize; 2],
    device: Device,
) -> Result<Value> {
    let score_shape = b.tensor(scores)?.shape.clone();
    let (row, col) = index_grid(b, [l, s], device)?;
    let keep = b.p2(PrimOp::Ge, row, col)?;
    let keep = b.broadcast_to(keep, &score_shape)?;
    b.prim(
        PrimOp::Where,
        vec![keep.into(), scores.into(), Arg::Float(f64::NEG_INFINITY)],
        vec![],
    )
}

fn sdpa(
    b: &mut TraceBuilder,
    n: &str,
    qkv: [Value; 3],
    mask: &Arg,
    attrs: &[Attr],
) -> Result<Value> {
    let dropout_p = attr_float(n, attrs, 0)?;
    let flags = (
        attr_bool(n, attrs, 1)?,
        attr_opt_float(n, attrs, 2)?,
        attr_bool(n, attrs, 3)?,
    );
    let SdpaParts { v, attn, metas, .. } = sdpa_parts(b, n, qkv, mask, flags)?;
    let mut attn = attn;
    if dropout_p > 0.0 {
        attn = b.t(
            TorchOp::Dropout,
            vec![attn.into()],
            vec![Attr::Float(dropout_p), Attr::Bool(true)],
        )?;
    }
    let out = b.p2(PrimOp::Matmul, attn, v).map_err(|e| rename(e, n))?;
    b.convert(out, metas[0].dtype)
}

/// The backward of attention without dropout, as one op (an executor may run it whole, as
/// flash attention's backward): gradients of query, key and value from the output's gradient,
/// with the attention weights recomputed from the saved query and key.
fn sdpa_backward(
    b: &mut TraceBuilder,
    n: &str,
    grad_out: Value,
    qkv: [Value; 3],
    mask: &Arg,
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    let flags = (
        attr_bool(n, attrs, 0)?,
        attr_opt_float(n, attrs, 1)?,
        attr_bool(n, attrs, 2)?,
    );
    let SdpaParts {
        q,
        k,
        v,
        attn,
        scale,
        comp,
        metas,
        group,
    } = sdpa_parts(b, n, qkv, mask, flags)?;
    let gt = b.tensor(grad_out)?.clone();
    let r = metas[0].rank();
    let mut want = metas[0].shape.sizes();
    want[r - 1] = metas[2].shape.size(r - 1);
    if gt.shape.sizes() != want || gt.dtype != metas[0].dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "grad_out is {} {} but the attention output is {} {}",
                gt.dtype,
                gt.shape,
                metas[0].dtype,
                Shape::new(want)
            ),
        ));
    }
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 1, r - 2);
    let tr = |b: &mut TraceBuilder, x: Value| -> Result<Value> {
        b.prim(PrimOp::Transpose, vec![x.into()], vec![ints(perm.clone())])
    };
    let g = b.convert(grad_out, comp)?;
    // dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP)); dQ = dS K scale; dK = dS^T Q scale.
    let attn_t = tr(b, attn)?;
    let dv = b.p2(PrimOp::Matmul, attn_t, g)?;
    let v_t = tr(b, v)?;
    let dp = b.p2(PrimOp::Matmul, g, v_t)?;
    let pdp = b.p2(PrimOp::Mul, attn, dp)?;
    let delta = b.reduce(PrimOp::Sum, pdp, &[r - 1])?;
    let pshape = b.tensor(attn)?.shape.clone();
    let delta = b.expand_reduced(delta, &pshape, &[r - 1])?;
    let centered = b.p2(PrimOp::Sub, dp, delta)?;
    let ds = b.p2(PrimOp::Mul, attn, centered)?;
    let dq = b.p2(PrimOp::Matmul, ds, k)?;
    let dq = b.p2(PrimOp::Mul, dq, scale)?;
    let ds_t = tr(b, ds)?;
    let dk = b.p2(PrimOp::Matmul, ds_t, q)?;
    let dk = b.p2(PrimOp::Mul, dk, scale)?;
    // Grouped-query attention: each key/value head served `group` query heads; sum their parts.
    let (dk, dv) = if group > 1 {
        let mut out = Vec::with_capacity(2);
        for (x, meta) in [(dk, &metas[1]), (dv, &metas[2])] {
            let s = b.tensor(x)?.shape.sizes();
            let mut split = s[..r - 3].to_vec();
            split.extend([meta.shape.size(r - 3), group]);
            split.extend_from_slice(&s[r - 2..]);
            let x = b.prim(PrimOp::Reshape, vec![x.into()], vec![ints(split)])?;
            out.push(b.reduce(PrimOp::Sum, x, &[r - 2])?);
        }
        (out[0], out[1])
    } else {
        (dk, dv)
    };
    Ok(vec![
        b.convert(dq, metas[0].dtype)?,
        b.convert(dk, metas[1].dtype)?,
        b.convert(dv, metas[2].dtype)?,
    ])
}
