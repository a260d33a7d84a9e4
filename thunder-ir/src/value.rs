//! Values: handles into a trace's table of metadata.

use crate::device::Device;
use crate::dtype::{DType, NumberType};
use crate::shape::Shape;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A handle to a value of a trace: an index into the trace's value table.
///
/// Handles are plain integers; the metadata lives in the table ([`ValueInfo`]). A handle is only
/// meaningful for the trace (or builder) that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Value(pub u32);

impl Value {
    /// The position in the value table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What thunder knows about a tensor at trace time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorMeta {
    /// Sizes.
    pub shape: Shape,
    /// Element type.
    pub dtype: DType,
    /// Where it lives.
    pub device: Device,
    /// Whether autograd tracks it.
    pub requires_grad: bool,
}

impl TensorMeta {
    /// A tensor on the CPU that does not require grad.
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> Self {
        TensorMeta {
            shape: shape.into(),
            dtype,
            device: Device::Cpu,
            requires_grad: false,
        }
    }
    /// The same tensor on `device`.
    pub fn on(mut self, device: Device) -> Self {
        self.device = device;
        self
    }
    /// The same tensor with `requires_grad` set.
    pub fn with_grad(mut self, requires_grad: bool) -> Self {
        self.requires_grad = requires_grad;
        self
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
}

impl fmt::Display for TensorMeta {
    /// The annotation form used in printed traces: `cuda:0 bf16[2, 4096]`, plus
    /// ` requires_grad` when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.device, self.dtype, self.shape)?;
        if self.requires_grad {
            f.write_str(" requires_grad")?;
        }
        Ok(())
    }
}

/// The type of a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueType {
    /// A tensor.
    Tensor(TensorMeta),
    /// A Python number whose value is known only at run time.
    Number(NumberType),
}

impl ValueType {
    /// The tensor metadata, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorMeta> {
        match self {
            ValueType::Tensor(t) => Some(t),
            ValueType::Number(_) => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Tensor(t) => write!(f, "{t}"),
            ValueType::Number(n) => write!(f, "{n}"),
        }
    }
}

/// One entry of the value table: the printed name and the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValueInfo {
    /// A valid Python identifier, unique in its trace.
    pub name: String,
    /// Tensor metadata or number type.
    pub ty: ValueType,
}

/// Python keywords and names a trace cannot use for its values.
const RESERVED: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "prims", "ltorch", "dtypes", "float", "torch",
];

/// Checks that `name` can name a value in printed Python: an ASCII identifier that is not a
/// keyword or one of the module names the printer uses. Returns the reason when it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("names cannot be empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Err("names start with a letter or '_'".into())
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("names hold only ASCII letters, digits and '_'".into());
    }
    if RESERVED.contains(&name) {
        return Err("it is a Python keyword or a name the printed trace uses".into());
    }
    Ok(())
}
