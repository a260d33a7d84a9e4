//! The YAML schema, as serde reads it: one [`RawEntry`] per op.
//!
//! These types only fix the *shape* of a file (which keys exist, which are lists): every struct
//! denies unknown fields, so a misspelled key is an error with its line and column. What the
//! values mean (an op name, an attribute of that op, a dtype) is checked by [`crate::load`],
//! which turns a `RawEntry` into an [`crate::OpEntry`]. Operands and attribute values stay
//! [`serde_yaml::Value`]s here because their meaning depends on the op's signature. The README
//! documents the schema with an example.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A map with string keys that rejects a key given twice (serde's maps keep the last value
/// silently, which would hide a mistake such as `{dim: 1, dim: 2}`).
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueMap<V>(pub BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(BTreeMap::new())
    }
}

impl<V> std::ops::Deref for UniqueMap<V> {
    type Target = BTreeMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("`{k}` is given twice")));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// One op's entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    /// Qualified op name: `ltorch.softmax`, `prims.broadcast_in_dim`.
    pub name: String,
    /// The PyTorch reference the op must match (`torch.softmax`, `aten::expand`).
    pub torch: String,
    /// Supported dtypes per device.
    pub dtypes: RawDTypes,
    /// Whether the op has a gradient (grad and jvp tests apply).
    pub differentiable: bool,
    /// Whether the op draws random numbers (compared by statistics, not values).
    #[serde(default)]
    pub random: bool,
    /// Attribute values shared by every sample and error input (a sample's own `attrs` win).
    #[serde(default)]
    pub attrs: UniqueMap<serde_yaml::Value>,
    /// Sample inputs.
    pub samples: Vec<RawSample>,
    /// Per-dtype tolerances that override the defaults.
    #[serde(default)]
    pub tolerances: UniqueMap<RawTolerance>,
    /// Inputs the trace builder must reject.
    #[serde(default)]
    pub error_inputs: Vec<RawErrorInput>,
    /// Cases not to run, with the reason.
    #[serde(default)]
    pub skips: Vec<RawSkip>,
    /// Transforms (`grad`, `jvp`, `vmap`) that have no rule for the op, each with a substring of
    /// the refusal (`TransformError::NoRule`) that the surveys expect instead of a check.
    #[serde(default)]
    pub no_rule: UniqueMap<String>,
    /// Free text for readers.
    #[serde(default)]
    pub note: Option<String>,
}

/// `dtypes: {cpu: [...], cuda: [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDTypes {
    /// Short dtype names or groups supported on the CPU.
    pub cpu: Vec<String>,
    /// Short dtype names or groups supported on CUDA devices.
    pub cuda: Vec<String>,
}

/// A sample input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSample {
    /// Positional operands: tensor specs, numbers, `null`, `{scalar: x}`, lists of tensor specs.
    #[serde(default)]
    pub args: Vec<serde_yaml::Value>,
    /// Attributes by name.
    #[serde(default)]
    pub attrs: UniqueMap<serde_yaml::Value>,
    /// Restricts the sample to these dtypes under test (default: all of the entry's).
    #[serde(default)]
    pub dtypes: Option<Vec<String>>,
    /// Free text for readers (what the sample exercises).
    #[serde(default)]
    pub note: Option<String>,
}

/// A tensor operand: `{shape: [2, 3], dtype: i64, domain: [0, 5], noncontiguous: true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTensor {
    /// Sizes; `[]` is a 0-dim tensor.
    pub shape: Vec<u64>,
    /// A fixed dtype (short name), or `under_test` (the default).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Value range `[lo, hi]` (half-open `[lo, hi)` for integer dtypes).
    #[serde(default)]
    pub domain: Option<[f64; 2]>,
    /// Whether the tensor is made non-contiguous.
    #[serde(default)]
    pub noncontiguous: bool,
}

/// A number operand typed by the dtype under test: `{scalar: 2.5}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScalar {
    /// The value; converted to the Python number type of the dtype under test.
    pub scalar: f64,
}

/// `{atol: 1e-5, rtol: 1.3e-6}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

/// The kind of [`thunder_ir::IrError`] an error input must raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ErrorKind {
    /// [`thunder_ir::IrError::InvalidArgument`]
    InvalidArgument,
    /// [`thunder_ir::IrError::Promotion`]
    Promotion,
    /// [`thunder_ir::IrError::Broadcast`]
    Broadcast,
}

impl ErrorKind {
    /// Whether `e` is of this kind.
    pub fn matches(self, e: &thunder_ir::IrError) -> bool {
        use thunder_ir::IrError as E;
        matches!(
            (self, e),
            (ErrorKind::InvalidArgument, E::InvalidArgument { .. })
                | (ErrorKind::Promotion, E::Promotion { .. })
                | (ErrorKind::Broadcast, E::Broadcast { .. })
        )
    }
    /// The variant name, as written in the YAML.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::Promotion => "Promotion",
            ErrorKind::Broadcast => "Broadcast",
        }
    }
}

/// An input the trace builder must reject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawErrorInput {
    /// Operands, as in a sample.
    #[serde(default)]
    pub args: Vec<serde_yaml::Value>,
    /// Attributes, as in a sample.
    #[serde(default)]
    pub attrs: UniqueMap<serde_yaml::Value>,
    /// The dtype under test (default: the entry's first CPU dtype).
    #[serde(default)]
    pub dtype: Option<String>,
    /// The expected error kind.
    pub error: ErrorKind,
    /// A substring of the error's message.
    pub message: String,
    /// Free text for readers.
    #[serde(default)]
    pub note: Option<String>,
}

/// The device classes of the `dtypes` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The host.
    Cpu,
    /// Any CUDA device.
    Cuda,
}

impl DeviceKind {
    /// Both, in table order.
    pub const ALL: [DeviceKind; 2] = [DeviceKind::Cpu, DeviceKind::Cuda];
    /// The device class of a device.
    pub fn of(d: thunder_ir::Device) -> DeviceKind {
        match d {
            thunder_ir::Device::Cpu => DeviceKind::Cpu,
            thunder_ir::Device::Cuda(_) => DeviceKind::Cuda,
        }
    }
    /// A representative device: `cpu` or `cuda:0`.
    pub fn device(self) -> thunder_ir::Device {
        match self {
            DeviceKind::Cpu => thunder_ir::Device::Cpu,
            DeviceKind::Cuda => thunder_ir::Device::Cuda(0),
        }
    }
    /// `cpu` or `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A case not to run: every field given must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSkip {
    /// Only on this device class.
    #[serde(default)]
    pub device: Option<DeviceKind>,
    /// Only for this dtype under test.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Only this sample (0-based index into `samples`).
    #[serde(default)]
    pub sample: Option<usize>,
    /// Only this transform's check (`grad`, `jvp` or `vmap`); without it the case is skipped
    /// everywhere, forward included.
    #[serde(default)]
    pub transform: Option<String>,
    /// Why: a bug, a missing kernel, a known difference.
    pub reason: String,
}
