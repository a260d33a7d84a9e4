//! Decompositions of the torch-level indexing ops.

use super::*;

/// Runs the decomposition of `op`, one of the indexing family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let tensor_arg = |b: &TraceBuilder, i: usize| tensor_arg(b, op, n, args, i);
    let out = match op {
        T::Gather => gather(b, n, tensor_arg(b, 0)?, tensor_arg(b, 1)?, attrs)?,
        T::IndexSelect => index_select(b, n, tensor_arg(b, 0)?, tensor_arg(b, 1)?, attrs)?,
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}

/// `torch.gather(a, dim, index)`: `out[i][j] = a[index[i][j]][j]` for dim 0, and so on. The index
/// is int32 or int64 with a's rank and no larger than a outside `dim`, as PyTorch requires; an empty index
/// gives an empty result whatever its shape (PyTorch checks nothing then).
fn gather(b: &mut TraceBuilder, n: &str, a: Value, index: Value, attrs: &[Attr]) -> Result<Value> {
    let (t, it) = (b.tensor(a)?.clone(), b.tensor(index)?.clone());
    if !matches!(it.dtype, DType::I64 | DType::I32) {
        return Err(IrError::invalid(
            n,
            format!("index must be an int32 or int64 tensor, got {}", it.dtype),
        ));
    }
    if it.rank() != t.rank() {
        return Err(IrError::invalid(
            n,
            format!(
                "index has rank {} but a has rank {}; they must match",
                it.rank(),
                t.rank()
            ),
        ));
    }
    let dim = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
    if it.shape.numel() == 0 {
        if it.device != t.device {
            return Err(IrError::invalid(
                n,
                format!(
                    "a is on {} but index is on {}; move them to one device",
                    t.device, it.device
                ),
            ));
        }
        return b.full_prim(&it.shape, Attr::Int(0), t.device, t.dtype);
    }
    if t.rank() == 0 {
        // A 0-dim gather is one of a 1-element vector (whose batching dim is well defined).
        let a1 = b.prim(PrimOp::Reshape, vec![a.into()], vec![ints([1])])?;
        let i1 = b.prim(PrimOp::Reshape, vec![index.into()], vec![ints([1])])?;
        let g = b
            .prim(
                PrimOp::Gather,
                vec![a1.into(), i1.into()],
                vec![Attr::Int(0)],
            )
            .map_err(|e| rename(e, n))?;
        return b.prim(PrimOp::Reshape, vec![g.into()], vec![ints([0usize; 0])]);
    }
    b.prim(
        PrimOp::Gather,
        vec![a.into(), index.into()],
        vec![Attr::Int(dim as i64)],
    )
    .map_err(|e| rename(e, n))
}

/// `torch.index_select(a, dim, index)`: the slices of `a` along `dim` at the positions `index`
/// lists (a vector or a 0-dim index, int32 or int64), in order; the dim keeps its place with
/// `index.numel()` entries. A 0-dim `a` takes an index of one element (which must be 0). One
/// `prims.take` with a vector index.
fn index_select(
    b: &mut TraceBuilder,
    n: &str,
    a: Value,
    index: Value,
    attrs: &[Attr],
) -> Result<Value> {
    let (t, it) = (b.tensor(a)?.clone(), b.tensor(index)?.clone());
    if !matches!(it.dtype, DType::I64 | DType::I32) {
        return Err(IrError::invalid(
            n,
            format!("index must be an int32 or int64 tensor, got {}", it.dtype),
        ));
    }
    if it.rank() > 1 {
        return Err(IrError::invalid(
            n,
            format!("index must be a vector or 0-dim, got shape {}", it.shape),
        ));
    }
    let dim = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
    let k = it.shape.numel();
    if t.rank() == 0 && k != 1 {
        return Err(IrError::invalid(
            n,
            format!("a 0-dim a takes an index of one element, got {k}"),
        ));
    }
    let idx = if it.rank() == 0 {
        b.prim(PrimOp::Reshape, vec![index.into()], vec![ints([1])])?
    } else {
        index
    };
    let x = if t.rank() == 0 {
        b.prim(PrimOp::Reshape, vec![a.into()], vec![ints([1])])?
    } else {
        a
    };
    let y = b
        .prim(
            PrimOp::Take,
            vec![x.into(), idx.into()],
            vec![Attr::Int(dim as i64)],
        )
        .map_err(|e| rename(e, n))?;
    if t.rank() == 0 {
        return b.prim(PrimOp::Reshape, vec![y.into()], vec![ints([0usize; 0])]);
    }
    Ok(y)
}
