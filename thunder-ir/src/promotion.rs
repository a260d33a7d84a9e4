//! PyTorch's type promotion across tensors and Python numbers (`torch.result_type`), and the
//! elementwise promotion kinds that torch-level ops use to pick computation and result dtypes.

use crate::dtype::{promote_types, Category, DType, NumberType};
use crate::error::{IrError, Result};

/// One operand as type promotion sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionOperand {
    /// A tensor with at least one dimension.
    Tensor(DType),
    /// A 0-dim tensor: it only decides the result when it is of a higher category.
    ZeroDim(DType),
    /// A Python number ("wrapped number"): like a 0-dim tensor, one level lower still.
    Number(NumberType),
}

/// `combine_categories` of PyTorch's `ResultTypeState`: `higher` is the result of a
/// higher-priority group (dimensioned tensors over 0-dim tensors over numbers).
fn combine_categories(
    op: &str,
    higher: Option<DType>,
    lower: Option<DType>,
) -> Result<Option<DType>> {
    let (h, l) = match (higher, lower) {
        (None, l) => return Ok(l),
        (h, None) => return Ok(h),
        (Some(h), Some(l)) => (h, l),
    };
    if h.is_complex() {
        return Ok(Some(h));
    }
    if l.is_complex() {
        // A floating tensor keeps its precision: f64 with a complex number gives complex128.
        if h.is_float() {
            return h.to_complex().map(Some).ok_or_else(|| IrError::Promotion {
                op: op.to_string(),
                lhs: h.to_string(),
                rhs: l.to_string(),
                reason: format!(
                    "the result would be the complex type of {h} (complex32 or similar), which thunder does not support"
                ),
            });
        }
        return Ok(Some(l));
    }
    if h.is_float() {
        return Ok(Some(h));
    }
    if h.is_bool() || l.is_float() {
        return promote(op, h, l).map(Some);
    }
    Ok(Some(h))
}

fn promote(op: &str, a: DType, b: DType) -> Result<DType> {
    promote_types(a, b).map_err(|e| match e {
        IrError::Promotion {
            lhs, rhs, reason, ..
        } => IrError::Promotion {
            op: op.to_string(),
            lhs,
            rhs,
            reason,
        },
        other => other,
    })
}

/// `torch.result_type` over any number of operands. `op` names the caller in errors.
///
/// Returns an error when there are no operands, when two dtypes do not promote, or when the
/// result would be a dtype thunder does not model (complex32).
pub fn result_type(op: &str, operands: &[PromotionOperand]) -> Result<DType> {
    let mut dim = None;
    let mut zero = None;
    let mut wrapped = None;
    let fold = |acc: &mut Option<DType>, d: DType| -> Result<()> {
        *acc = Some(match *acc {
            None => d,
            Some(a) => promote(op, a, d)?,
        });
        Ok(())
    };
    for o in operands {
        match *o {
            PromotionOperand::Tensor(d) => fold(&mut dim, d)?,
            PromotionOperand::ZeroDim(d) => fold(&mut zero, d)?,
            PromotionOperand::Number(n) => fold(&mut wrapped, n.default_dtype())?,
        }
    }
    let low = combine_categories(op, zero, wrapped)?;
    combine_categories(op, dim, low)?
        .ok_or_else(|| IrError::invalid(op, "type promotion needs at least one operand"))
}

/// How an elementwise torch-level op derives its result dtype from the promoted type, after
/// Lightning Thunder's `ELEMENTWISE_TYPE_PROMOTION_KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementwisePromotion {
    /// The promoted type (add, mul, where, maximum, ...).
    Default,
    /// Integers and bool become the default float dtype (true division, exp, sqrt, sigmoid...).
    IntToFloat,
    /// Always bool (comparisons, isfinite).
    AlwaysBool,
    /// Complex becomes its real type (abs).
    ComplexToFloat,
    /// Bool becomes int64 (sum-like accumulation).
    BoolToLong,
}

/// The dtypes an elementwise op computes in and returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotedTypes {
    /// The dtype the decomposition computes in: 16-bit floats are computed in float32.
    pub computation: DType,
    /// The dtype of the op's result, as PyTorch returns it.
    pub result: DType,
}

/// Result and computation dtype of an elementwise op over `operands`.
pub fn elementwise_promotion(
    op: &str,
    operands: &[PromotionOperand],
    kind: ElementwisePromotion,
) -> Result<PromotedTypes> {
    let promoted = result_type(op, operands)?;
    let computation_of = |d: DType| {
        if d.is_low_precision_float() {
            DType::F32
        } else {
            d
        }
    };
    let pt = match kind {
        ElementwisePromotion::Default => PromotedTypes {
            computation: computation_of(promoted),
            result: promoted,
        },
        ElementwisePromotion::IntToFloat => {
            let r = if promoted.category() <= Category::Integer {
                DType::F32
            } else {
                promoted
            };
            PromotedTypes {
                computation: computation_of(r),
                result: r,
            }
        }
        ElementwisePromotion::AlwaysBool => PromotedTypes {
            computation: computation_of(promoted),
            result: DType::Bool,
        },
        ElementwisePromotion::ComplexToFloat => PromotedTypes {
            computation: computation_of(promoted),
            result: promoted.to_real(),
        },
        ElementwisePromotion::BoolToLong => {
            let r = if promoted.is_bool() {
                DType::I64
            } else {
                promoted
            };
            PromotedTypes {
                computation: computation_of(r),
                result: r,
            }
        }
    };
    Ok(pt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PromotionOperand::*;

    // The examples of PyTorch's "Type promotion" documentation (torch.result_type and tensor
    // attributes pages); the full pairwise table is checked in tests/promotion.rs.
    #[test]
    fn documented_examples() {
        let rt = |ops: &[PromotionOperand]| result_type("t", ops).unwrap();
        assert_eq!(
            rt(&[Number(NumberType::Int), Number(NumberType::Int)]),
            DType::I64
        );
        assert_eq!(
            rt(&[Tensor(DType::I32), Number(NumberType::Int)]),
            DType::I32
        );
        assert_eq!(rt(&[Tensor(DType::I32), ZeroDim(DType::I64)]), DType::I32);
        assert_eq!(rt(&[Tensor(DType::I64), Tensor(DType::I32)]), DType::I64);
        assert_eq!(rt(&[Tensor(DType::Bool), Tensor(DType::I64)]), DType::I64);
        assert_eq!(rt(&[Tensor(DType::Bool), Tensor(DType::U8)]), DType::U8);
        assert_eq!(rt(&[Tensor(DType::F32), Tensor(DType::F64)]), DType::F64);
        assert_eq!(rt(&[Tensor(DType::C64), Tensor(DType::C128)]), DType::C128);
        assert_eq!(rt(&[Tensor(DType::Bool), Tensor(DType::I32)]), DType::I32);
        assert_eq!(rt(&[Tensor(DType::I64), Tensor(DType::F32)]), DType::F32);
        assert_eq!(
            rt(&[Tensor(DType::I32), Number(NumberType::Float)]),
            DType::F32
        );
        assert_eq!(rt(&[Tensor(DType::U8), ZeroDim(DType::I64)]), DType::U8);
        assert_eq!(rt(&[Tensor(DType::F16), ZeroDim(DType::F64)]), DType::F16);
        assert_eq!(rt(&[Tensor(DType::I32), ZeroDim(DType::F64)]), DType::F64);
    }

    #[test]
    fn elementwise_kinds() {
        let p = |ops: &[PromotionOperand], k| elementwise_promotion("t", ops, k).unwrap();
        let bf = [Tensor(DType::BF16), Number(NumberType::Float)];
        assert_eq!(
            p(&bf, ElementwisePromotion::Default),
            PromotedTypes {
                computation: DType::F32,
                result: DType::BF16
            }
        );
        let i = [Tensor(DType::I64)];
        assert_eq!(p(&i, ElementwisePromotion::IntToFloat).result, DType::F32);
        assert_eq!(p(&i, ElementwisePromotion::AlwaysBool).result, DType::Bool);
        assert_eq!(
            p(&[Tensor(DType::C128)], ElementwisePromotion::ComplexToFloat).result,
            DType::F64
        );
        assert_eq!(
            p(&[Tensor(DType::Bool)], ElementwisePromotion::BoolToLong).result,
            DType::I64
        );
        assert!(result_type("t", &[]).is_err());
        let e = result_type(
            "ltorch.add",
            &[Tensor(DType::F16), Number(NumberType::Complex)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("complex32"), "{e}");
    }
}
