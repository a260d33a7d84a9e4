//! Prim-level helpers the decompositions share.

use super::*;

// ---------------------------------------------------------------------------------------------
// Prim-level helpers used by the decompositions.

impl TraceBuilder {
    pub(super) fn p1(&mut self, op: PrimOp, a: impl Into<Arg>) -> Result<Value> {
        self.prim(op, vec![a.into()], vec![])
    }
    pub(super) fn p2(&mut self, op: PrimOp, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.prim(op, vec![a.into(), b.into()], vec![])
    }
    /// `convert_element_type` unless `a` already has `dtype`.
    pub(super) fn convert(&mut self, a: Value, dtype: DType) -> Result<Value> {
        match self.ty(a)? {
            ValueType::Tensor(t) if t.dtype == dtype => Ok(a),
            _ => self.prim(
                PrimOp::ConvertElementType,
                vec![a.into()],
                vec![Attr::DType(dtype)],
            ),
        }
    }
    /// `broadcast_in_dim` to `shape`, aligning dims from the right, unless the shape already is.
    pub(super) fn broadcast_to(&mut self, a: Value, shape: &Shape) -> Result<Value> {
        let t = self.tensor(a)?;
        if &t.shape == shape {
            return Ok(a);
        }
        let offset = shape.rank().saturating_sub(t.rank());
        self.prim(
            PrimOp::BroadcastInDim,
            vec![a.into()],
            vec![ints(shape.sizes()), ints((0..t.rank()).map(|i| i + offset))],
        )
    }
    /// Puts reduced dims back as size 1 (for `keepdim=True`).
    pub(super) fn keepdim(&mut self, r: Value, full: &Shape, dims: &[usize]) -> Result<Value> {
        let shape: Vec<usize> = (0..full.rank())
            .map(|i| if dims.contains(&i) { 1 } else { full.size(i) })
            .collect();
        let kept = (0..full.rank()).filter(|i| !dims.contains(i));
        self.prim(
            PrimOp::BroadcastInDim,
            vec![r.into()],
            vec![ints(shape), ints(kept)],
        )
    }
    /// Broadcasts a reduction result back to the full shape (the reduced dims re-expanded).
    pub(super) fn expand_reduced(
        &mut self,
        r: Value,
        full: &Shape,
        dims: &[usize],
    ) -> Result<Value> {
        let kept = (0..full.rank()).filter(|i| !dims.contains(i));
        self.prim(
            PrimOp::BroadcastInDim,
            vec![r.into()],
            vec![ints(full.sizes()), ints(kept)],
        )
    }
    pub(super) fn reduce(&mut self, op: PrimOp, a: Value, dims: &[usize]) -> Result<Value> {
        self.prim(op, vec![a.into()], vec![ints(dims.iter().copied())])
    }
    pub(super) fn full_prim(
        &mut self,
        shape: &Shape,
        value: Attr,
        device: Device,
        dtype: DType,
    ) -> Result<Value> {
        self.prim(
            PrimOp::Full,
            vec![],
            vec![
                ints(shape.sizes()),
                value,
                Attr::Device(device),
                Attr::DType(dtype),
            ],
        )
    }
    pub(super) fn operand(&self, a: &Arg) -> Result<PromotionOperand> {
        Ok(match a {
            Arg::Value(v) => match self.ty(*v)? {
                ValueType::Tensor(t) if t.rank() == 0 => PromotionOperand::ZeroDim(t.dtype),
                ValueType::Tensor(t) => PromotionOperand::Tensor(t.dtype),
                ValueType::Number(n) => PromotionOperand::Number(*n),
            },
            Arg::Int(_) => PromotionOperand::Number(NumberType::Int),
            Arg::Float(_) => PromotionOperand::Number(NumberType::Float),
            Arg::Bool(_) => PromotionOperand::Number(NumberType::Bool),
            _ => PromotionOperand::Number(NumberType::Int),
        })
    }
    /// The common broadcast shape and device of the tensor operands (`None` if there are none).
    pub(super) fn common_shape(&self, op: &str, args: &[&Arg]) -> Result<Option<(Shape, Device)>> {
        let mut acc: Option<(Shape, Device, String)> = None;
        for a in args {
            if let Arg::Value(v) = a {
                if let ValueType::Tensor(t) = self.ty(*v)? {
                    acc = Some(match acc {
                        None => (t.shape.clone(), t.device, self.name_of(*v)?.to_string()),
                        Some((s, d, first)) => {
                            if d != t.device {
                                return Err(IrError::invalid(
                                    op,
                                    format!("{first} is on {d} but {} is on {}; move them to one device", self.name_of(*v)?, t.device),
                                ));
                            }
                            (broadcast_shapes(op, &s, &t.shape)?, d, first)
                        }
                    });
                }
            }
        }
        Ok(acc.map(|(s, d, _)| (s, d)))
    }
    /// Broadcasts and converts tensor operands; leaves numbers as they are.
    pub(super) fn prepare(
        &mut self,
        args: &[&Arg],
        shape: Option<&Shape>,
        dtype: DType,
    ) -> Result<Vec<Arg>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(match a {
                Arg::Value(v) if matches!(self.ty(*v)?, ValueType::Tensor(_)) => {
                    let c = self.convert(*v, dtype)?;
                    match shape {
                        Some(s) => Arg::Value(self.broadcast_to(c, s)?),
                        None => Arg::Value(c),
                    }
                }
                other => (*other).clone(),
            });
        }
        Ok(out)
    }
    /// A promoted, broadcast elementwise prim call.
    pub(super) fn elementwise(
        &mut self,
        op: &str,
        prim: PrimOp,
        args: &[&Arg],
        kind: K,
        upcast: bool,
    ) -> Result<Value> {
        let operands = args
            .iter()
            .map(|a| self.operand(a))
            .collect::<Result<Vec<_>>>()?;
        let pt = elementwise_promotion(op, &operands, kind)?;
        let comp = if upcast {
            pt.computation
        } else {
            promoted_input(pt.computation, &operands, op)?
        };
        let common = self.common_shape(op, args)?;
        let prepared = self.prepare(args, common.as_ref().map(|(s, _)| s), comp)?;
        let r = self.prim(prim, prepared, vec![])?;
        if kind == K::AlwaysBool {
            return Ok(r);
        }
        self.convert(r, pt.result)
    }
}

/// Without upcasting, the operands are converted to the promoted dtype itself (not float32).
pub(super) fn promoted_input(
    computation: DType,
    operands: &[PromotionOperand],
    op: &str,
) -> Result<DType> {
    let promoted = crate::promotion::result_type(op, operands)?;
    Ok(if promoted.is_low_precision_float() {
        promoted
    } else {
        computation
    })
}

pub(super) fn finfo_eps(d: DType) -> f64 {
    d.finfo_eps()
}

/// Resolves one `-1` in a requested shape, as `reshape`/`view` do.
pub(super) fn infer_shape(
    op: &str,
    requested: &[i64],
    numel: usize,
    given: &Shape,
) -> Result<Vec<usize>> {
    let bad = || {
        IrError::invalid(
            op,
            format!("shape {requested:?} is invalid for input of shape {given} ({numel} elements)"),
        )
    };
    let mut infer = None;
    let mut known: usize = 1;
    for (i, &s) in requested.iter().enumerate() {
        match s {
            -1 if infer.is_none() => infer = Some(i),
            -1 => {
                return Err(IrError::invalid(
                    op,
                    format!("shape {requested:?} has more than one -1"),
                ))
            }
            s if s < 0 => return Err(bad()),
            s => known = known.checked_mul(s as usize).ok_or_else(bad)?,
        }
    }
    let mut out: Vec<usize> = requested.iter().map(|&s| s.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || numel % known != 0 {
            return Err(bad());
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(bad());
    }
    Ok(out)
}

/// `f` truncated to an integer, as PyTorch casts a fill value; an error where `as` would
/// saturate (out of the i64 range) or make 0 of NaN.
pub(super) fn float_to_int(op: &str, f: f64) -> Result<i64> {
    let t = f.trunc();
    // 2^63, exact in f64 (as is -2^63): the range check is exact too.
    let limit = -(i64::MIN as f64);
    if t.is_nan() || !(-limit..limit).contains(&t) {
        return Err(IrError::overflow(
            op,
            format!("value={f} cannot be converted to int64 without overflow"),
        ));
    }
    Ok(t as i64)
}

/// Reports a prim's error under the torch-level op's name, which is what the user called.
pub(super) fn rename(e: IrError, op: &str) -> IrError {
    match e {
        IrError::InvalidArgument { message, .. } => IrError::InvalidArgument {
            op: op.to_string(),
            message,
        },
        IrError::Overflow { message, .. } => IrError::Overflow {
            op: op.to_string(),
            message,
        },
        other => other,
    }
}

pub(super) fn reduction_dims(op: &str, dims: Option<&[i64]>, rank: usize) -> Result<Vec<usize>> {
    match dims {
        None | Some([]) => Ok((0..rank).collect()),
        Some(ds) => {
            let c = canonicalize_dims(op, "dim", ds, rank)?;
            // Reducing dim 0 of a 0-dim tensor reduces nothing.
            Ok(if rank == 0 { vec![] } else { c })
        }
    }
}

pub(super) fn slice_dim(
    b: &mut TraceBuilder,
    a: Value,
    shape: &Shape,
    d: usize,
    start: i64,
    end: i64,
) -> Result<Value> {
    let mut starts = vec![0i64; shape.rank()];
    let mut ends: Vec<i64> = shape.sizes().iter().map(|&s| s as i64).collect();
    starts[d] = start;
    ends[d] = end;
    b.prim(
        PrimOp::Slice,
        vec![a.into()],
        vec![
            Attr::Ints(starts),
            Attr::Ints(ends),
            Attr::Ints(vec![1; shape.rank()]),
        ],
    )
}

/// The row and the column index of every element of a `[rows, cols]` matrix, as two int64
/// tensors of that shape on `device` (for triangular and causal masks).
pub(super) fn index_grid(
    b: &mut TraceBuilder,
    [rows, cols]: [usize; 2],
    device: Device,
) -> Result<(Value, Value)> {
    let iota = |b: &mut TraceBuilder, len: usize| {
        b.prim(
            PrimOp::Iota,
            vec![],
            vec![
                Attr::Int(len as i64),
                Attr::Int(0),
                Attr::Int(1),
                Attr::Device(device),
                Attr::DType(DType::I64),
            ],
        )
    };
    let row = iota(b, rows)?;
    let col = iota(b, cols)?;
    let grid = |b: &mut TraceBuilder, v: Value, dim: usize| {
        b.prim(
            PrimOp::BroadcastInDim,
            vec![v.into()],
            vec![ints([rows, cols]), ints([dim])],
        )
    };
    Ok((grid(b, row, 0)?, grid(b, col, 1)?))
}
