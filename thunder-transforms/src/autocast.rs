//! Autocast: run matrix multiplications in bfloat16 or float16 and keep the numerically sensitive
//! ops in float32, like `torch.autocast(device_type="cuda", dtype=...)`.
//!
//! The trace is rebuilt at the torch level (so that PyTorch's type promotion applies to what
//! follows a low-precision result): the operands of ops whose row of the op table says
//! `autocast(LOWER)` (torch.autocast's CUDA "lower_precision_fp" list, the entries thunder-ir has)
//! are cast to the autocast dtype, those of ops marked `autocast(F32)` (its "fp32" list) to
//! float32, and every other op runs on what it is given, as under torch.autocast. Decompositions
//! are recomputed for the new dtypes.

use crate::util::copy_inputs;
use crate::{Result, TransformError};
use thunder_ir::ops::info::Autocast;
use thunder_ir::{Arg, Attr, DType, Op, Trace, TraceBuilder, Value};

/// `trace` under autocast to `dtype` (bfloat16 or float16).
pub fn autocast(trace: &Trace, dtype: DType) -> Result<Trace> {
    check_dtype(dtype)?;
    let mut b = TraceBuilder::new(format!("{}_autocast", trace.name));
    let mut m = copy_inputs(&mut b, trace)?;
    for bsym in &trace.bound_symbols {
        let args = bsym
            .args
            .iter()
            .map(|a| match a {
                Arg::Value(v) => Arg::Value(m[v]),
                Arg::List(l) => Arg::List(l.iter().map(|v| m[v]).collect()),
                other => other.clone(),
            })
            .collect();
        let outs = autocast_call(&mut b, bsym.op, args, bsym.attrs.clone(), dtype)?;
        for (o, n) in bsym.outputs.iter().zip(outs) {
            m.insert(*o, n);
        }
    }
    let outputs: Vec<Value> = trace.outputs.iter().map(|o| m[o]).collect();
    Ok(b.build(&outputs)?)
}

/// Builds one call of `op` under autocast to `dtype` (bfloat16 or float16): its floating
/// tensor operands cast as its row of the op table says, then the op. The transform does this
/// for every op of a trace; a front end with autocast regions (the Python binding's
/// `torch.autocast` blocks) does it for the ops inside them.
pub fn autocast_call(
    b: &mut TraceBuilder,
    op: Op,
    args: Vec<Arg>,
    attrs: Vec<Attr>,
    dtype: DType,
) -> Result<Vec<Value>> {
    check_dtype(dtype)?;
    let target = match op.info().map(|i| i.autocast) {
        Some(Autocast::LowerPrecision) => Some(dtype),
        Some(Autocast::Float32) => Some(DType::F32),
        Some(Autocast::Follow) | None => None,
    };
    let mut cast_args = Vec::with_capacity(args.len());
    for a in args {
        cast_args.push(match a {
            Arg::Value(v) => Arg::Value(cast(b, v, target)?),
            Arg::List(l) => Arg::List(
                l.iter()
                    .map(|v| cast(b, *v, target))
                    .collect::<Result<_>>()?,
            ),
            other => other,
        });
    }
    Ok(b.call(op, cast_args, attrs)?)
}

fn check_dtype(dtype: DType) -> Result<()> {
    if !matches!(dtype, DType::BF16 | DType::F16) {
        return Err(TransformError::Pass {
            pass: "autocast".into(),
            message: format!("autocast runs in bf16 or f16, not {dtype}"),
        });
    }
    Ok(())
}

/// Casts a floating tensor to `target` (no-op for other values or without a target). Only float32
/// and the 16-bit floats are cast, as torch.autocast does: float64 stays float64.
fn cast(b: &mut TraceBuilder, v: Value, target: Option<DType>) -> Result<Value> {
    let Some(target) = target else { return Ok(v) };
    let Ok(t) = b.tensor(v) else { return Ok(v) };
    let d = t.dtype;
    if d == target || !matches!(d, DType::F32 | DType::BF16 | DType::F16) {
        return Ok(v);
    }
    Ok(b.to_dtype(v, target)?)
}
