//! The validated op database: [`OpEntry`] and what it holds, built from the YAML by
//! [`crate::load`]. Everything here has been checked against the op's signature: operand counts
//! and kinds, attribute names and kinds, dtype names.

use crate::error::Location;
use crate::schema::{DeviceKind, ErrorKind};
use std::collections::BTreeMap;
use thunder_ir::{Attr, DType, Device, Op};

/// The dtype short names the files use (every [`DType`]; the fp8 storage types are in no group
/// and appear only where named, such as error inputs that must not promote).
pub const DTYPE_NAMES: &[&str] = &[
    "f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "b8", "c64", "c128", "f8e4m3fn",
    "f8e5m2",
];

/// Groups usable in dtype lists, with what they stand for.
pub const DTYPE_GROUPS: &[(&str, &[DType])] = &[
    (
        "floating",
        &[DType::F64, DType::F32, DType::F16, DType::BF16],
    ),
    (
        "integral",
        &[DType::I64, DType::I32, DType::I16, DType::I8, DType::U8],
    ),
    ("complex", &[DType::C64, DType::C128]),
];

/// The keyword that stands for the dtype (or device) under test.
pub const UNDER_TEST: &str = "under_test";

/// Parses a short dtype name (`f32`, `b8`); torch names and aliases are not accepted, so that the
/// files read one way.
pub fn parse_dtype(s: &str) -> Option<DType> {
    DType::ALL
        .into_iter()
        .find(|d| d.short_name() == s && DTYPE_NAMES.contains(&s))
}

/// Absolute and relative tolerance of a comparison, as in `torch.testing.assert_close`:
/// `|actual - expected| <= atol + rtol * |expected|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Tolerance {
    /// The default for a dtype, after `torch.testing`: exact for integers and bool.
    pub fn default_for(dtype: DType) -> Tolerance {
        let (atol, rtol) = match dtype {
            DType::F64 | DType::C128 => (1e-7, 1e-7),
            DType::F32 | DType::C64 => (1e-5, 1.3e-6),
            DType::F16 => (1e-5, 1e-3),
            DType::BF16 => (1e-5, 1.6e-2),
            DType::F8E4M3FN | DType::F8E5M2 => (1e-3, 1.25e-1),
            _ => (0.0, 0.0),
        };
        Tolerance { atol, rtol }
    }
    /// Whether `actual` is close enough to `expected`. NaN equals NaN (as with
    /// `assert_close(equal_nan=True)`), infinities must match exactly.
    pub fn is_close(&self, actual: f64, expected: f64) -> bool {
        if actual.is_nan() || expected.is_nan() {
            return actual.is_nan() && expected.is_nan();
        }
        if actual == expected {
            return true;
        }
        if !actual.is_finite() || !expected.is_finite() {
            return false;
        }
        (actual - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// The dtype of a tensor operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DTypeSpec {
    /// The dtype the case is run for.
    UnderTest,
    /// Always this dtype (index tensors, masks).
    Fixed(DType),
}

impl DTypeSpec {
    /// The concrete dtype for a case run with `under_test`.
    pub fn resolve(self, under_test: DType) -> DType {
        match self {
            DTypeSpec::UnderTest => under_test,
            DTypeSpec::Fixed(d) => d,
        }
    }
}

/// A tensor operand as the YAML describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorTemplate {
    /// Sizes; empty for a 0-dim tensor.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: DTypeSpec,
    /// Value range `(lo, hi)`: `[lo, hi]` for floating dtypes, `[lo, hi)` for integer dtypes.
    /// `None` means the default range of the dtype ([`crate::TensorSpec::value_range`]).
    pub domain: Option<(f64, f64)>,
    /// Whether the tensor is made non-contiguous (strided) before the call.
    pub noncontiguous: bool,
}

/// An operand as the YAML describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgSpec {
    /// A tensor input.
    Tensor(TensorTemplate),
    /// A list of tensor inputs (`cat`, `stack`).
    List(Vec<TensorTemplate>),
    /// An `int` literal.
    Int(i64),
    /// A `float` literal.
    Float(f64),
    /// A `bool` literal.
    Bool(bool),
    /// A number literal of the Python type of the dtype under test (`bool` for b8 - nonzero is
    /// true -, `int` for integer dtypes - truncated -, `float` otherwise).
    Scalar(f64),
    /// `None` (an absent optional tensor).
    None,
}

/// An attribute as the YAML describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrSpec {
    /// A fixed value.
    Fixed(Attr),
    /// The dtype under test (`dtype: under_test`).
    DTypeUnderTest,
    /// The device under test (`device: under_test`).
    DeviceUnderTest,
}

impl AttrSpec {
    /// The concrete attribute for a case.
    pub fn resolve(&self, device: Device, dtype: DType) -> Attr {
        match self {
            AttrSpec::Fixed(a) => a.clone(),
            AttrSpec::DTypeUnderTest => Attr::DType(dtype),
            AttrSpec::DeviceUnderTest => Attr::Device(device),
        }
    }
}

/// A sample input: operands in signature order and attributes in signature order.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    /// One per operand of the op's signature.
    pub args: Vec<ArgSpec>,
    /// One per attribute of the op's signature (defaults filled in).
    pub attrs: Vec<AttrSpec>,
    /// The dtypes under test this sample applies to (`None`: all of the entry's).
    pub dtypes: Option<Vec<DType>>,
    /// What the sample exercises, for readers.
    pub note: Option<String>,
}

impl SampleSpec {
    /// Whether the sample applies to `dtype`.
    pub fn applies_to(&self, dtype: DType) -> bool {
        self.dtypes.as_ref().is_none_or(|d| d.contains(&dtype))
    }
}

/// An input that the trace builder must reject.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInput {
    /// The operands and attributes (its `dtypes` is `None`).
    pub sample: SampleSpec,
    /// The dtype under test for `under_test` operands and attributes.
    pub dtype: DType,
    /// The kind of error.
    pub error: ErrorKind,
    /// A substring of the error message.
    pub message: String,
}

/// A case not to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    /// Only on this device class (`None`: all).
    pub device: Option<DeviceKind>,
    /// Only this dtype (`None`: all).
    pub dtype: Option<DType>,
    /// Only this sample (`None`: all).
    pub sample: Option<usize>,
    /// Only this transform's check: `grad`, `jvp` or `vmap` (`None`: every check, forward
    /// included).
    pub transform: Option<String>,
    /// Why.
    pub reason: String,
}

impl Skip {
    /// Whether the skip covers sample `sample` run on `device` with `dtype`.
    pub fn covers(&self, device: DeviceKind, dtype: DType, sample: usize) -> bool {
        self.device.is_none_or(|d| d == device)
            && self.dtype.is_none_or(|d| d == dtype)
            && self.sample.is_none_or(|s| s == sample)
    }
}

/// One op's entry in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct OpEntry {
    /// The qualified op name (`ltorch.softmax`).
    pub name: String,
    /// The op.
    pub op: Op,
    /// The PyTorch reference (`torch.softmax`, `aten::expand`).
    pub torch: String,
    /// Supported dtypes on the CPU.
    pub cpu_dtypes: Vec<DType>,
    /// Supported dtypes on CUDA devices.
    pub cuda_dtypes: Vec<DType>,
    /// Whether the op has a gradient.
    pub differentiable: bool,
    /// Whether the op draws random numbers.
    pub random: bool,
    /// The sample inputs.
    pub samples: Vec<SampleSpec>,
    /// Tolerances that override [`Tolerance::default_for`].
    pub tolerances: BTreeMap<DType, Tolerance>,
    /// Inputs the trace builder must reject.
    pub error_inputs: Vec<ErrorInput>,
    /// Cases not to run.
    pub skips: Vec<Skip>,
    /// Transforms (`grad`, `jvp`, `vmap`) that refuse the op for want of a rule, each with a
    /// substring of the refusal's message: the surveys check that refusal instead of the
    /// transform.
    pub no_rule: BTreeMap<String, String>,
    /// Free text.
    pub note: Option<String>,
    /// Where the entry is (file and line of its `- name:`).
    pub location: Location,
}

impl OpEntry {
    /// The dtypes supported on a device class.
    pub fn dtypes(&self, device: DeviceKind) -> &[DType] {
        match device {
            DeviceKind::Cpu => &self.cpu_dtypes,
            DeviceKind::Cuda => &self.cuda_dtypes,
        }
    }
    /// Whether the entry lists `dtype` for `device`'s class.
    pub fn supports(&self, device: Device, dtype: DType) -> bool {
        self.dtypes(DeviceKind::of(device)).contains(&dtype)
    }
    /// The tolerance for `dtype`: the entry's override or the default.
    pub fn tolerance(&self, dtype: DType) -> Tolerance {
        self.tolerances
            .get(&dtype)
            .copied()
            .unwrap_or_else(|| Tolerance::default_for(dtype))
    }
    /// The first skip that covers sample `sample` on `device` with `dtype`, if any.
    pub fn skip_for(&self, device: DeviceKind, dtype: DType, sample: usize) -> Option<&Skip> {
        self.skips
            .iter()
            .find(|s| s.transform.is_none() && s.covers(device, dtype, sample))
    }
    /// The skip, if any, of `transform`'s check (`grad`, `jvp`, `vmap`) of a case: a skip of
    /// every check or one of that transform only.
    pub fn transform_skip(
        &self,
        transform: &str,
        device: DeviceKind,
        dtype: DType,
        sample: usize,
    ) -> Option<&Skip> {
        self.skips.iter().find(|s| {
            s.transform.as_deref().is_none_or(|t| t == transform) && s.covers(device, dtype, sample)
        })
    }
    /// The text the database expects in `transform`'s refusal of the op (`grad`, `jvp` or
    /// `vmap`: its `no_rule`), if it expects one.
    pub fn expected_no_rule(&self, transform: &str) -> Option<&str> {
        self.no_rule.get(transform).map(String::as_str)
    }
    /// Which file category the entry is in (`nn` for `ops/nn.yaml`).
    pub fn category(&self) -> &str {
        let file = self.location.file.rsplit(['/', '\\']).next().unwrap_or("");
        file.strip_suffix(".yaml").unwrap_or(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_follow_torch_testing() {
        let t = Tolerance::default_for(DType::F32);
        assert_eq!((t.atol, t.rtol), (1e-5, 1.3e-6));
        assert!(t.is_close(1.0 + 1e-6, 1.0));
        assert!(!t.is_close(1.0 + 1e-4, 1.0));
        assert!(t.is_close(f64::NAN, f64::NAN));
        assert!(!t.is_close(f64::NAN, 1.0));
        assert!(t.is_close(f64::INFINITY, f64::INFINITY));
        assert!(!t.is_close(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!t.is_close(1e300, f64::INFINITY));
        let exact = Tolerance::default_for(DType::I64);
        assert!(exact.is_close(3.0, 3.0) && !exact.is_close(3.0, 4.0));
        assert_eq!(Tolerance::default_for(DType::BF16).rtol, 1.6e-2);
    }

    #[test]
    fn dtype_names_are_the_short_names_only() {
        for name in DTYPE_NAMES {
            let d = parse_dtype(name).expect(name);
            assert_eq!(d.short_name(), *name);
        }
        assert_eq!(parse_dtype("float32"), None);
        assert_eq!(parse_dtype("float"), None);
        assert_eq!(DTYPE_NAMES.len(), DType::ALL.len());
    }

    #[test]
    fn skips_match_every_given_field() {
        let s = Skip {
            device: Some(DeviceKind::Cuda),
            dtype: None,
            sample: Some(2),
            transform: None,
            reason: "r".into(),
        };
        assert!(s.covers(DeviceKind::Cuda, DType::F16, 2));
        assert!(!s.covers(DeviceKind::Cpu, DType::F16, 2));
        assert!(!s.covers(DeviceKind::Cuda, DType::F16, 1));
    }
}
