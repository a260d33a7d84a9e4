//! Decompositions of the torch-level shape, view, split/join, padding, repetition, triangle and
//! conversion ops.

use super::*;

/// Runs the decomposition of `op`, one of the shape family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    match op {
        T::Reshape
        | T::View
        | T::Permute
        | T::Transpose
        | T::Unsqueeze
        | T::Squeeze
        | T::Flatten
        | T::Expand => views(b, op, n, args, attrs),
        T::Split | T::Narrow | T::Cat | T::Stack | T::To => pieces(b, op, n, args, attrs),
        T::Pad => pad(b, n, tensor_arg(b, op, n, args, 0)?, attrs).map(|v| vec![v]),
        T::Triu | T::Tril => {
            triangle(b, op, n, tensor_arg(b, op, n, args, 0)?, attrs).map(|v| vec![v])
        }
        T::RepeatInterleave => {
            repeat_interleave(b, n, tensor_arg(b, op, n, args, 0)?, attrs).map(|v| vec![v])
        }
        _ => Err(not_in_family(op, n)),
    }
}

/// Views and layout.
fn views(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Reshape | T::View => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let shape = infer_shape(n, attr_ints(n, attrs, 0)?, t.shape.numel(), &t.shape)?;
            if shape == t.shape.sizes() {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Reshape, vec![a.into()], vec![ints(shape)])?
        }
        T::Permute | T::Transpose => {
            let a = tensor_arg(b, 0)?;
            let r = b.tensor(a)?.rank();
            let perm: Vec<usize> = if op == T::Permute {
                let dims = attr_ints(n, attrs, 0)?;
                if dims.len() != r {
                    return Err(IrError::invalid(
                        n,
                        format!("dims={dims:?} must list each of the {r} dims of a once"),
                    ));
                }
                canonicalize_dims(n, "dims", dims, r)?
            } else {
                let d0 = canonicalize_dim(n, "dim0", attr_int(n, attrs, 0)?, r)?;
                let d1 = canonicalize_dim(n, "dim1", attr_int(n, attrs, 1)?, r)?;
                let mut p: Vec<usize> = (0..r).collect();
                if r > 0 {
                    p.swap(d0, d1);
                }
                p
            };
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Transpose, vec![a.into()], vec![ints(perm)])?
        }
        T::Unsqueeze => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank() + 1)?;
            let mut shape = t.shape.sizes();
            shape.insert(d, 1);
            let kept = (0..t.rank() + 1).filter(|&i| i != d);
            b.prim(
                PrimOp::BroadcastInDim,
                vec![a.into()],
                vec![ints(shape), ints(kept)],
            )?
        }
        T::Squeeze => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims: Vec<usize> = match attr_opt_ints(n, attrs, 0)? {
                Some(ds) => canonicalize_dims(n, "dim", ds, t.rank())?,
                None => (0..t.rank()).collect(),
            };
            let dims: Vec<usize> = dims
                .into_iter()
                .filter(|&d| t.rank() > 0 && t.shape.size(d) == 1)
                .collect();
            if dims.is_empty() {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Squeeze, vec![a.into()], vec![ints(dims)])?
        }
        T::Flatten => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if t.rank() == 0 {
                return Ok(vec![b.prim(
                    PrimOp::Reshape,
                    vec![a.into()],
                    vec![ints([1])],
                )?]);
            }
            let s = canonicalize_dim(n, "start_dim", attr_int(n, attrs, 0)?, t.rank())?;
            let e = canonicalize_dim(n, "end_dim", attr_int(n, attrs, 1)?, t.rank())?;
            if s > e {
                return Err(IrError::invalid(
                    n,
                    format!("start_dim ({s}) must not come after end_dim ({e})"),
                ));
            }
            if s == e {
                return Ok(vec![a]);
            }
            let sz = t.shape.sizes();
            let mut shape = sz[..s].to_vec();
            // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
            shape.push(sz[s..=e].iter().product());
            shape.extend_from_slice(&sz[e + 1..]);
            b.prim(PrimOp::Reshape, vec![a.into()], vec![ints(shape)])?
        }
        T::Expand => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let req = attr_ints(n, attrs, 0)?;
            if req.len() < t.rank() {
                return Err(IrError::invalid(
                    n,
                    format!("shape {req:?} has fewer dims than a's shape {}", t.shape),
                ));
            }
            let offset = req.len() - t.rank();
            let mut shape = Vec::with_capacity(req.len());
            for (i, &r) in req.iter().enumerate() {
                let have = if i >= offset {
                    Some(t.shape.size(i - offset))
                } else {
                    None
                };
                shape.push(match (r, have) {
                    (-1, Some(h)) => h,
                    (r, Some(h)) if r >= 0 && (h == r as usize || h == 1) => r as usize,
                    (r, None) if r >= 0 => r as usize,
                    _ => {
                        return Err(IrError::invalid(
                            n,
                            format!(
                                "a of shape {} cannot be expanded to {req:?} (dim {i})",
                                t.shape
                            ),
                        ))
                    }
                });
            }
            b.broadcast_to(a, &Shape::new(shape))?
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// Splitting, joining and conversion.
fn pieces(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Split => return split(b, n, tensor_arg(b, 0)?, attrs),
        T::Narrow => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if t.rank() == 0 {
                return Err(IrError::invalid(n, "a 0-dim tensor cannot be narrowed"));
            }
            let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
            // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
            let size = t.shape.size(d) as i64;
            let mut start = attr_int(n, attrs, 1)?;
            if start < 0 {
                start += size;
            }
            let len = attr_int(n, attrs, 2)?;
            // A sum that overflows i64 exceeds the size as well.
            let end = start.checked_add(len).filter(|&e| e <= size);
            let Some(end) = end.filter(|_| start >= 0 && len >= 0) else {
                return Err(IrError::invalid(
                    n,
                    format!("start ({start}) + length ({len}) exceeds dim {d} of size {size}"),
                ));
            };
            slice_dim(b, a, &t.shape, d, start, end)?
        }
        T::Cat | T::Stack => {
            let tensors = match &args[0] {
                Arg::List(l) => l.clone(),
                _ => return Err(IrError::invalid(n, "tensors must be a list of tensors")),
            };
            let mut operands = Vec::with_capacity(tensors.len());
            for &v in &tensors {
                operands.push(PromotionOperand::Tensor(b.tensor(v)?.dtype));
            }
            let dtype = crate::promotion::result_type(n, &operands)?;
            let mut parts = Vec::with_capacity(tensors.len());
            for &v in &tensors {
                let c = b.convert(v, dtype)?;
                parts.push(if op == T::Stack {
                    let dim = attr_int(n, attrs, 0)?;
                    b.t(T::Unsqueeze, vec![c.into()], vec![Attr::Int(dim)])?
                } else {
                    c
                });
            }
            b.prim(PrimOp::Cat, vec![Arg::List(parts)], vec![attrs[0].clone()])
                .map_err(|e| rename(e, n))?
        }
        T::To => {
            let a = tensor_arg(b, 0)?;
            let mut y = a;
            if let Some(dev) = attr_opt_device(n, attrs, 1)? {
                if b.tensor(a)?.device != dev {
                    y = b.prim(PrimOp::DevicePut, vec![y.into()], vec![Attr::Device(dev)])?;
                }
            }
            if let Some(d) = attr_opt_dtype(n, attrs, 0)? {
                y = b.convert(y, d)?;
            }
            y
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// `torch.nn.functional.pad` in constant mode: `pad` lists (low, high) pairs from the last dim
/// backwards, negative values crop (never more than the dim holds); the padding is `value` (0
/// when None) cast to a's dtype, as PyTorch does. One `prims.pad`.
fn pad(b: &mut TraceBuilder, n: &str, a: Value, attrs: &[Attr]) -> Result<Value> {
    let t = b.tensor(a)?.clone();
    let pad = attr_ints(n, attrs, 0)?.to_vec();
    let mode = attr_str(n, attrs, 1)?;
    if mode != "constant" {
        return Err(IrError::invalid(
            n,
            format!("mode={mode:?} is not supported yet (only \"constant\")"),
        ));
    }
    if pad.len() % 2 != 0 {
        return Err(IrError::invalid(
            n,
            format!("pad={pad:?} must have an even length: (low, high) pairs from the last dim backwards"),
        ));
    }
    let r = t.rank();
    if pad.len() / 2 > r {
        return Err(IrError::invalid(
            n,
            format!("pad={pad:?} pads {} dims but a has {r}", pad.len() / 2),
        ));
    }
    let mut config = vec![vec![0i64; 3]; r];
    for (i, pair) in pad.chunks(2).enumerate() {
        let d = r - 1 - i;
        // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
        let size = t.shape.size(d) as i64;
        let cropped = i128::from(pair[0].min(0)) + i128::from(pair[1].min(0));
        if i128::from(size) + cropped < 0 {
            return Err(IrError::invalid(
                n,
                format!("pad={pad:?} crops dim {d} of size {size} by more than its size"),
            ));
        }
        config[d] = vec![pair[0], pair[1], 0];
    }
    let value = match attrs.get(2) {
        None | Some(Attr::None) if t.dtype.is_bool() => Attr::Bool(false),
        None | Some(Attr::None) => Attr::Int(0),
        // The value is cast to a's dtype, as PyTorch does.
        Some(Attr::Float(f)) if t.dtype.is_bool() => Attr::Bool(*f != 0.0),
        Some(Attr::Float(f)) if t.dtype.is_integer() => Attr::Int(float_to_int(n, *f)?),
        Some(Attr::Int(i)) if t.dtype.is_bool() => Attr::Bool(*i != 0),
        Some(Attr::Bool(v)) if !t.dtype.is_bool() => Attr::Int(i64::from(*v)),
        Some(other) => other.clone(),
    };
    if config.iter().all(|c| c[0] == 0 && c[1] == 0) {
        return Ok(a);
    }
    b.prim(
        PrimOp::Pad,
        vec![a.into()],
        vec![value, Attr::IntLists(config)],
    )
    .map_err(|e| rename(e, n))
}

/// `repeat_interleave(a, repeats, dim)` with an int `repeats`: each element repeated `repeats`
/// times along `dim` in place (`[x, y]` -> `[x, x, y, y]`), as a broadcast of a new dim after
/// `dim` and a reshape that merges the two.
fn repeat_interleave(b: &mut TraceBuilder, n: &str, a: Value, attrs: &[Attr]) -> Result<Value> {
    let t = b.tensor(a)?.clone();
    let repeats = attr_int(n, attrs, 0)?;
    if repeats < 0 {
        return Err(IrError::invalid(
            n,
            format!("repeats={repeats} must be non-negative"),
        ));
    }
    if t.rank() == 0 {
        // PyTorch rejects any dim of a 0-dim tensor here.
        return Err(IrError::invalid(
            n,
            "a 0-dim tensor has no dim to repeat along",
        ));
    }
    let r = t.rank();
    let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 1)?, r)?;
    if repeats == 1 {
        return Ok(a);
    }
    let sizes = t.shape.sizes();
    // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
    let merged = (sizes[d] as u64)
        .checked_mul(repeats as u64)
        .filter(|&m| m <= crate::shape::MAX_NUMEL as u64)
        .ok_or_else(|| {
            IrError::overflow(
                n,
                format!(
                    "repeats={repeats} of dim {d} of size {} makes a size beyond i64",
                    sizes[d]
                ),
            )
        })?;
    let mut expanded = sizes.clone();
    expanded.insert(d + 1, repeats as usize);
    let bdims = (0..r).map(|i| if i <= d { i } else { i + 1 });
    let bx = b.prim(
        PrimOp::BroadcastInDim,
        vec![a.into()],
        vec![ints(expanded), ints(bdims)],
    )?;
    let mut out = sizes;
    out[d] = merged as usize;
    b.prim(PrimOp::Reshape, vec![bx.into()], vec![ints(out)])
}

/// `triu` and `tril`: the elements of the last two dims (a matrix, or a batch of them) on and
/// above (`triu`) or below (`tril`) the `diagonal`-th diagonal (0 the main one, positive above),
/// the others zero; as `where` with a mask of column minus row compared with `diagonal`.
fn triangle(b: &mut TraceBuilder, op: TorchOp, n: &str, a: Value, attrs: &[Attr]) -> Result<Value> {
    let t = b.tensor(a)?.clone();
    let r = t.rank();
    if r < 2 {
        return Err(IrError::invalid(
            n,
            format!("a must have at least 2 dims, got shape {}", t.shape),
        ));
    }
    let diagonal = attr_int(n, attrs, 0)?;
    let (rows, cols) = (t.shape.size(r - 2), t.shape.size(r - 1));
    let (row, col) = index_grid(b, [rows, cols], t.device)?;
    let offset = b.p2(PrimOp::Sub, col, row)?;
    let cmp = if op == TorchOp::Triu {
        PrimOp::Ge
    } else {
        PrimOp::Le
    };
    let keep = b.p2(cmp, offset, diagonal)?;
    let keep = b.broadcast_to(keep, &t.shape)?;
    let zero = if t.dtype.is_bool() {
        Arg::Bool(false)
    } else if t.dtype.is_integer() {
        Arg::Int(0)
    } else {
        Arg::Float(0.0)
    };
    b.prim(PrimOp::Where, vec![keep.into(), a.into(), zero], vec![])
}

/// The most pieces `split` may make: each is a value and a statement of the trace. Far above
/// real use (heads, chunks of a fused projection), far below what would exhaust memory.
pub const MAX_SPLIT_OUTPUTS: usize = 1 << 16;

fn split(b: &mut TraceBuilder, n: &str, a: Value, attrs: &[Attr]) -> Result<Vec<Value>> {
    let t = b.tensor(a)?.clone();
    let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 1)?, t.rank())?;
    if t.rank() == 0 {
        return Err(IrError::invalid(n, "a 0-dim tensor cannot be split"));
    }
    // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
    let size = t.shape.size(d) as i64;
    let too_many = |count: i64| {
        IrError::invalid(
            n,
            format!("splitting dim {d} of size {size} makes {count} pieces, more than the {MAX_SPLIT_OUTPUTS} a trace allows"),
        )
    };
    let sections: Vec<i64> = match &attrs[0] {
        Attr::Int(s) if *s > 0 => {
            // Counted before the list is made: split size 1 of a huge dim would exhaust memory.
            let count = size / s + i64::from(size % s != 0 || size == 0);
            if count > MAX_SPLIT_OUTPUTS as i64 {
                return Err(too_many(count));
            }
            let mut v = vec![*s; (size / s) as usize];
            if size % s != 0 || size == 0 {
                v.push(size % s);
            }
            v
        }
        Attr::Int(s) => {
            return Err(IrError::invalid(
                n,
                format!("split_size_or_sections={s} must be positive"),
            ))
        }
        Attr::Ints(v) => {
            if v.len() > MAX_SPLIT_OUTPUTS {
                return Err(too_many(v.len() as i64));
            }
            let sum = v.iter().try_fold(0i64, |acc, &x| acc.checked_add(x));
            if v.iter().any(|&x| x < 0) || sum != Some(size) {
                return Err(IrError::invalid(
                    n,
                    format!("split_size_or_sections={v:?} must be non-negative and sum to {size}, the size of dim {d}"),
                ));
            }
            v.clone()
        }
        other => {
            return Err(IrError::invalid(
                n,
                format!("split_size_or_sections must be an int or a list of ints, got {other:?}"),
            ))
        }
    };
    let mut out = Vec::with_capacity(sections.len());
    let mut start = 0;
    for s in sections {
        out.push(slice_dim(b, a, &t.shape, d, start, start + s)?);
        start += s;
    }
    Ok(out)
}
