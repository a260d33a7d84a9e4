//! Decompositions of the torch-level reductions, and `cumsum`.

use super::*;

/// Runs the decomposition of `op`, one of the reduction family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    match op {
        T::Sum | T::Mean | T::Amax | T::Amin | T::Var | T::Std | T::Argmax | T::Argmin => {
            reduction(b, op, n, args, attrs)
        }
        T::Cumsum => cumsum(b, n, tensor_arg(b, op, n, args, 0)?, attrs).map(|v| vec![v]),
        _ => Err(not_in_family(op, n)),
    }
}

/// `torch.cumsum(a, dim, dtype=None)`: running sums along `dim`. The result dtype is `dtype`
/// (a is converted to it first), else int64 for integer and bool `a`, else a's; 16-bit floats
/// are summed in float32 and rounded once, as PyTorch's kernels do. Computed as a scan of
/// log2(size) steps, each adding the running sums shifted by a power of two (`prims.pad`, which
/// crops as it pads): exact for integers, a tree of sums for floats.
fn cumsum(b: &mut TraceBuilder, n: &str, a: Value, attrs: &[Attr]) -> Result<Value> {
    let t = b.tensor(a)?.clone();
    let r = t.rank();
    let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, r)?;
    let result = match attr_opt_dtype(n, attrs, 1)? {
        Some(dt) => dt,
        None if t.dtype.category() <= crate::Category::Integer => DType::I64,
        None => t.dtype,
    };
    let comp = if result.is_low_precision_float() {
        DType::F32
    } else if result.is_bool() {
        DType::I64
    } else {
        result
    };
    let x = b.convert(a, result)?;
    let mut y = b.convert(x, comp)?;
    let len = if r == 0 { 1 } else { t.shape.size(d) };
    let zero = if comp.is_integer() {
        Attr::Int(0)
    } else {
        Attr::Float(0.0)
    };
    let mut shift = 1usize;
    while shift < len {
        let mut config = vec![vec![0i64; 3]; r];
        // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
        config[d] = vec![shift as i64, -(shift as i64), 0];
        let shifted = b.prim(
            PrimOp::Pad,
            vec![y.into()],
            vec![zero.clone(), Attr::IntLists(config)],
        )?;
        y = b.p2(PrimOp::Add, y, shifted)?;
        shift *= 2;
    }
    b.convert(y, result)
}

/// Reductions.
fn reduction(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Sum | T::Mean => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let keepdim = attr_bool(n, attrs, 1)?;
            let result = match attr_opt_dtype(n, attrs, 2)? {
                Some(d) => d,
                None if t.dtype.category() <= crate::Category::Integer => {
                    if op == T::Mean {
                        return Err(IrError::invalid(
                            n,
                            format!("could not infer output dtype: a has dtype {}, pass a floating dtype", t.dtype),
                        ));
                    }
                    DType::I64
                }
                None => t.dtype,
            };
            let comp = if result.is_low_precision_float() {
                DType::F32
            } else {
                result
            };
            let x = b.convert(a, comp)?;
            let mut s = b.reduce(PrimOp::Sum, x, &dims)?;
            if op == T::Mean {
                // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
                let count: usize = dims.iter().map(|&d| t.shape.size(d)).product();
                s = b.p2(PrimOp::Div, s, count as f64)?;
            }
            if keepdim {
                s = b.keepdim(s, &t.shape, &dims)?;
            }
            b.convert(s, result)?
        }
        T::Amax | T::Amin => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let prim = if op == T::Amax {
                PrimOp::Amax
            } else {
                PrimOp::Amin
            };
            let mut r = b.reduce(prim, a, &dims)?;
            if attr_bool(n, attrs, 1)? {
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            r
        }
        T::Var | T::Std => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if !t.dtype.is_inexact() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating or complex dtype, got {}", t.dtype),
                ));
            }
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let correction = attr_float(n, attrs, 1)?;
            let comp = if t.dtype.is_low_precision_float() {
                DType::F32
            } else {
                t.dtype
            };
            let x = b.convert(a, comp)?;
            let mut r = b.prim(
                PrimOp::Var,
                vec![x.into()],
                vec![ints(dims.iter().copied()), Attr::Float(correction)],
            )?;
            if op == T::Std {
                r = b.p1(PrimOp::Sqrt, r)?;
            }
            if attr_bool(n, attrs, 2)? {
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            b.convert(r, t.dtype.to_real())?
        }
        T::Argmax | T::Argmin => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dim = attr_opt_int(n, attrs, 0)?;
            let prim = if op == T::Argmax {
                PrimOp::Argmax
            } else {
                PrimOp::Argmin
            };
            let mut r = b.prim(
                prim,
                vec![a.into()],
                vec![dim.map_or(Attr::None, Attr::Int)],
            )?;
            if attr_bool(n, attrs, 1)? {
                let dims = match dim {
                    Some(d) => vec![canonicalize_dim(n, "dim", d, t.rank())?],
                    None => (0..t.rank()).collect(),
                };
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            r
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}
