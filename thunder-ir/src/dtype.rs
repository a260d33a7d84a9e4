//! Element types of tensors and of Python numbers, and PyTorch's `promote_types` lattice.

use crate::error::{IrError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The element type of a tensor, as PyTorch names it.
///
/// The fp8 types are storage types: PyTorch refuses to promote them with anything else, and so
/// does [`promote_types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DType {
    /// `torch.float64`
    F64,
    /// `torch.float32`
    F32,
    /// `torch.float16`
    F16,
    /// `torch.bfloat16`
    BF16,
    /// `torch.int64`
    I64,
    /// `torch.int32`
    I32,
    /// `torch.int16`
    I16,
    /// `torch.int8`
    I8,
    /// `torch.uint8`
    U8,
    /// `torch.bool`
    Bool,
    /// `torch.complex64`
    C64,
    /// `torch.complex128`
    C128,
    /// `torch.float8_e4m3fn` (storage only)
    F8E4M3FN,
    /// `torch.float8_e5m2` (storage only)
    F8E5M2,
}

/// The four categories PyTorch orders dtypes by when it promotes across tensors and scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `bool`
    Bool,
    /// Signed and unsigned integers.
    Integer,
    /// Real floating point, fp8 included.
    Float,
    /// Complex.
    Complex,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 14] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::Bool,
        DType::C64,
        DType::C128,
        DType::F8E4M3FN,
        DType::F8E5M2,
    ];

    /// The short name used in trace annotations (`f32`, `bf16`, `i64`, `b8`, ...).
    pub fn short_name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "b8",
            DType::C64 => "c64",
            DType::C128 => "c128",
            DType::F8E4M3FN => "f8e4m3fn",
            DType::F8E5M2 => "f8e5m2",
        }
    }

    /// The attribute name under `torch` (and under `dtypes` in printed traces).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
            DType::C64 => "complex64",
            DType::C128 => "complex128",
            DType::F8E4M3FN => "float8_e4m3fn",
            DType::F8E5M2 => "float8_e5m2",
        }
    }

    /// Parses a short name (`f32`) or a torch name (`float32`, also `torch.float32`, `float`,
    /// `double`, `half`, `long`, `int`).
    pub fn parse(s: &str) -> Option<DType> {
        let s = s
            .strip_prefix("torch.")
            .or_else(|| s.strip_prefix("dtypes."))
            .unwrap_or(s);
        let alias = match s {
            "float" => Some(DType::F32),
            "double" => Some(DType::F64),
            "half" => Some(DType::F16),
            "long" => Some(DType::I64),
            "int" => Some(DType::I32),
            "short" => Some(DType::I16),
            "bool8" => Some(DType::Bool),
            "cfloat" => Some(DType::C64),
            "cdouble" => Some(DType::C128),
            _ => None,
        };
        alias.or_else(|| {
            DType::ALL
                .into_iter()
                .find(|d| d.short_name() == s || d.torch_name() == s)
        })
    }

    /// Size of one element in bytes.
    pub fn itemsize(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::C64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool | DType::F8E4M3FN | DType::F8E5M2 => 1,
            DType::C128 => 16,
        }
    }

    /// The promotion category.
    pub fn category(self) -> Category {
        match self {
            DType::Bool => Category::Bool,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 => Category::Integer,
            DType::F64
            | DType::F32
            | DType::F16
            | DType::BF16
            | DType::F8E4M3FN
            | DType::F8E5M2 => Category::Float,
            DType::C64 | DType::C128 => Category::Complex,
        }
    }

    /// Real floating point (fp8 included).
    pub fn is_float(self) -> bool {
        self.category() == Category::Float
    }
    /// Complex.
    pub fn is_complex(self) -> bool {
        self.category() == Category::Complex
    }
    /// Integer, not bool.
    pub fn is_integer(self) -> bool {
        self.category() == Category::Integer
    }
    /// `bool`.
    pub fn is_bool(self) -> bool {
        self == DType::Bool
    }
    /// Floating or complex: the dtypes that have gradients.
    pub fn is_inexact(self) -> bool {
        self.is_float() || self.is_complex()
    }
    /// fp8 storage types.
    pub fn is_fp8(self) -> bool {
        matches!(self, DType::F8E4M3FN | DType::F8E5M2)
    }
    /// `torch.finfo(dtype).eps` of a floating dtype (the real part's for complex; float32's for
    /// other dtypes, where PyTorch has none).
    pub fn finfo_eps(self) -> f64 {
        match self {
            DType::F64 | DType::C128 => f64::EPSILON,
            DType::F16 => 0.0009765625,
            DType::BF16 => 0.0078125,
            DType::F8E4M3FN => 0.125,
            DType::F8E5M2 => 0.25,
            _ => f32::EPSILON as f64,
        }
    }
    /// 16-bit floats, which thunder computes in float32 (as Lightning Thunder does).
    pub fn is_low_precision_float(self) -> bool {
        matches!(
            self,
            DType::F16 | DType::BF16 | DType::F8E4M3FN | DType::F8E5M2
        )
    }

    /// The real dtype of a complex dtype (`c64 -> f32`); other dtypes map to themselves.
    pub fn to_real(self) -> DType {
        match self {
            DType::C64 => DType::F32,
            DType::C128 => DType::F64,
            d => d,
        }
    }

    /// The complex dtype with the precision of a real float (`f32 -> c64`, `f64 -> c128`, and
    /// `bf16 -> c64` as in PyTorch, bfloat16 having float32's range). `None` for float16 (whose
    /// counterpart complex32 thunder does not model) and the fp8 types.
    pub fn to_complex(self) -> Option<DType> {
        match self {
            DType::F32 | DType::BF16 => Some(DType::C64),
            DType::F64 => Some(DType::C128),
            DType::C64 | DType::C128 => Some(self),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// The type of a Python number (a scalar that is not a tensor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NumberType {
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `float`
    Float,
    /// `complex`
    Complex,
}

impl NumberType {
    /// The name Python gives the type.
    pub fn name(self) -> &'static str {
        match self {
            NumberType::Bool => "bool",
            NumberType::Int => "int",
            NumberType::Float => "float",
            NumberType::Complex => "complex",
        }
    }
    /// Parses `bool`, `int`, `float` or `complex`.
    pub fn parse(s: &str) -> Option<NumberType> {
        [
            NumberType::Bool,
            NumberType::Int,
            NumberType::Float,
            NumberType::Complex,
        ]
        .into_iter()
        .find(|n| n.name() == s)
    }
    /// The category of the number.
    pub fn category(self) -> Category {
        match self {
            NumberType::Bool => Category::Bool,
            NumberType::Int => Category::Integer,
            NumberType::Float => Category::Float,
            NumberType::Complex => Category::Complex,
        }
    }
    /// The dtype PyTorch gives a "wrapped number" of this type, with the default float dtype
    /// float32: bool, int64, float32, complex64.
    pub fn default_dtype(self) -> DType {
        match self {
            NumberType::Bool => DType::Bool,
            NumberType::Int => DType::I64,
            NumberType::Float => DType::F32,
            NumberType::Complex => DType::C64,
        }
    }
    /// The Python number type that holds elements of `dtype` (`f32 -> float`).
    pub fn of_dtype(dtype: DType) -> NumberType {
        match dtype.category() {
            Category::Bool => NumberType::Bool,
            Category::Integer => NumberType::Int,
            Category::Float => NumberType::Float,
            Category::Complex => NumberType::Complex,
        }
    }
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// PyTorch's `torch.promote_types(a, b)`: the smallest dtype both convert to without losing
/// category.
///
/// Matches torch 2.11 on every pair of [`DType::ALL`] (checked against a table generated from
/// torch). Errors where torch errors (fp8 with any other dtype) and where the result would be
/// `complex32`, which thunder does not model.
pub fn promote_types(a: DType, b: DType) -> Result<DType> {
    use DType::*;
    if a == b {
        return Ok(a);
    }
    let err = |reason: &str| IrError::Promotion {
        op: "promote_types".into(),
        lhs: a.to_string(),
        rhs: b.to_string(),
        reason: reason.into(),
    };
    if a.is_fp8() || b.is_fp8() {
        return Err(err(
            "PyTorch does not promote float8 types with other dtypes; convert explicitly",
        ));
    }
    let (ca, cb) = (a.category(), b.category());
    // Order the pair so that `hi` has the higher (or equal) category.
    let (hi, lo) = if ca >= cb { (a, b) } else { (b, a) };
    Ok(match (hi.category(), lo.category()) {
        (_, Category::Bool) => hi,
        (Category::Integer, Category::Integer) => {
            let signed = |d: DType| d != U8;
            match (signed(hi), signed(lo)) {
                (true, true) => {
                    if hi.itemsize() >= lo.itemsize() {
                        hi
                    } else {
                        lo
                    }
                }
                // uint8 with a signed type: the signed type if wider than a byte, else int16.
                _ => {
                    let s = if signed(hi) { hi } else { lo };
                    if s.itemsize() > 1 {
                        s
                    } else {
                        I16
                    }
                }
            }
        }
        (Category::Float, Category::Integer) | (Category::Complex, Category::Integer) => hi,
        (Category::Float, Category::Float) => match (hi, lo) {
            (F16, BF16) | (BF16, F16) => F32,
            _ => {
                if hi.itemsize() >= lo.itemsize() {
                    hi
                } else {
                    lo
                }
            }
        },
        (Category::Complex, Category::Float) => {
            if lo == F64 {
                C128
            } else {
                hi
            }
        }
        (Category::Complex, Category::Complex) => C128,
        _ => return Err(err("internal: unordered categories")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.short_name()), Some(d));
            assert_eq!(DType::parse(d.torch_name()), Some(d));
            assert_eq!(DType::parse(&format!("torch.{}", d.torch_name())), Some(d));
        }
        assert_eq!(DType::parse("float"), Some(DType::F32));
        assert_eq!(DType::parse("nope"), None);
    }

    #[test]
    fn promotion_is_symmetric() {
        for a in DType::ALL {
            for b in DType::ALL {
                assert_eq!(
                    promote_types(a, b).ok(),
                    promote_types(b, a).ok(),
                    "{a} {b}"
                );
            }
        }
    }
}
