//! Decompositions of the torch-level creation ops.

use super::*;

/// Runs the decomposition of `op`, one of the creation family.
pub(super) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    match op {
        T::Zeros | T::Ones | T::Full | T::Arange => creation(b, op, n, args, attrs),
        _ => Err(not_in_family(op, n)),
    }
}

/// Creation.
fn creation(
    b: &mut TraceBuilder,
    op: TorchOp,
    n: &str,
    _args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let out = match op {
        T::Zeros | T::Ones | T::Full => {
            let shape = Shape::new(crate::ops::sizes(n, "shape", attr_ints(n, attrs, 0)?)?);
            let (value, dt_i, dev_i) = match op {
                T::Zeros => (Attr::Int(0), 1, 2),
                T::Ones => (Attr::Int(1), 1, 2),
                _ => (attrs[1].clone(), 2, 3),
            };
            let dtype = match attr_opt_dtype(n, attrs, dt_i)? {
                Some(d) => d,
                None if op == T::Full => match value {
                    Attr::Bool(_) => DType::Bool,
                    Attr::Int(_) => DType::I64,
                    _ => DType::F32,
                },
                None => DType::F32,
            };
            let device = attr_opt_device(n, attrs, dev_i)?.unwrap_or(Device::Cpu);
            b.full_prim(&shape, value, device, dtype)?
        }
        T::Arange => {
            // `start` and `step` left out (None) are PyTorch's defaults, 0 and 1: ints.
            let start = match &attrs[0] {
                Attr::None => Attr::Int(0),
                a => a.clone(),
            };
            let step = match &attrs[2] {
                Attr::None => Attr::Int(1),
                a => a.clone(),
            };
            let range = [start, attrs[1].clone(), step];
            let (s, e, st) = (
                attr_float(n, &range, 0)?,
                attr_float(n, &range, 1)?,
                attr_float(n, &range, 2)?,
            );
            if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
                return Err(IrError::invalid(
                    n,
                    format!("start={s}, end={e}, step={st}: step must be non-zero and all finite"),
                ));
            }
            let len = ((e - s) / st).ceil().max(0.0);
            // `as` saturates: a longer range would silently become i64::MAX elements.
            if len >= crate::shape::MAX_NUMEL as f64 {
                return Err(IrError::overflow(
                    n,
                    format!(
                        "start={s}, end={e}, step={st} make {len} elements, more than i64::MAX"
                    ),
                ));
            }
            let len = len as i64;
            let all_int = range.iter().all(|a| matches!(a, Attr::Int(_)));
            let dtype = attr_opt_dtype(n, attrs, 3)?.unwrap_or(if all_int {
                DType::I64
            } else {
                DType::F32
            });
            let device = attr_opt_device(n, attrs, 4)?.unwrap_or(Device::Cpu);
            b.prim(
                PrimOp::Iota,
                vec![],
                vec![
                    Attr::Int(len),
                    range[0].clone(),
                    range[2].clone(),
                    Attr::Device(device),
                    Attr::DType(dtype),
                ],
            )?
        }
        _ => return Err(not_in_family(op, n)),
    };
    Ok(vec![out])
}
