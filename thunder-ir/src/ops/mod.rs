//! The op set: prims (with meta functions) and torch-level ops (with decompositions), and the
//! signatures that the builder, printer, parser and verifier share.

pub mod aten;
pub mod dist;
pub mod info;
pub mod prims;
pub mod torch;

use crate::args::{Arg, Attr};
use crate::error::{IrError, Result};
pub use dist::DistOp;
pub use prims::PrimOp;
use serde::{Deserialize, Serialize};
use std::fmt;
pub use torch::TorchOp;

/// Declares an op enum with its printed names and a lookup by name.
macro_rules! op_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident in $ns:literal { $($var:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $(#[doc = concat!("`", $ns, ".", $s, "`")] $var),*
        }
        impl $name {
            /// Every op of this kind.
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            /// The name after the module prefix.
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $s),* }
            }
            /// Looks an op up by its name (without the module prefix).
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)* _ => None }
            }
        }
    };
}
pub(crate) use op_enum;

/// Declares an op enum (as [`op_enum!`]) whose every row also declares the op's properties, an
/// [`info::OpInfo`] expression, returned by `info()`: the op table.
macro_rules! op_table {
    ($(#[$m:meta])* $vis:vis enum $name:ident in $ns:literal {
        $($var:ident = $s:literal => $info:expr),* $(,)?
    }) => {
        $crate::ops::op_enum! {
            $(#[$m])* $vis enum $name in $ns { $($var = $s),* }
        }
        impl $name {
            /// The op's row of the op table: its properties.
            pub const fn info(self) -> $crate::ops::info::OpInfo {
                match self { $($name::$var => $info),* }
            }
        }
    };
}
pub(crate) use op_table;

/// Any op a bound symbol can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// A primitive: executors must implement it, it has no decomposition.
    Prim(PrimOp),
    /// A torch-level op: defined by its decomposition, which an executor may claim whole.
    Torch(TorchOp),
    /// A collective over the ranks of a process group (or the wait for one).
    Dist(DistOp),
}

impl Op {
    /// The qualified name as printed: `prims.add`, `ltorch.softmax`.
    pub fn qualified_name(self) -> String {
        match self {
            Op::Prim(p) => format!("prims.{}", p.name()),
            Op::Torch(t) => format!("ltorch.{}", t.name()),
            Op::Dist(d) => format!("dist.{}", d.name()),
        }
    }
    /// Looks up a qualified name.
    pub fn from_qualified_name(s: &str) -> Option<Op> {
        if let Some(n) = s.strip_prefix("prims.") {
            PrimOp::from_name(n).map(Op::Prim)
        } else if let Some(n) = s.strip_prefix("ltorch.") {
            TorchOp::from_name(n).map(Op::Torch)
        } else if let Some(n) = s.strip_prefix("dist.") {
            DistOp::from_name(n).map(Op::Dist)
        } else {
            None
        }
    }
    /// The op's row of the op table (collectives have none).
    pub fn info(self) -> Option<info::OpInfo> {
        match self {
            Op::Prim(p) => Some(p.info()),
            Op::Torch(t) => Some(t.info()),
            Op::Dist(_) => None,
        }
    }
    /// The op's operands and attributes.
    pub fn signature(self) -> Signature {
        match self {
            Op::Prim(p) => p.signature(),
            Op::Torch(t) => t.signature(),
            Op::Dist(d) => d.signature(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.qualified_name())
    }
}

/// What an operand may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A tensor value.
    Tensor,
    /// A tensor value or `None`.
    OptTensor,
    /// A tensor value, a number value, or a number literal.
    TensorOrNumber,
    /// A non-empty list of tensor values.
    TensorList,
}

/// What an attribute may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    /// `int`
    Int,
    /// `int` or `None`
    OptInt,
    /// `float` (an `int` literal is accepted and widened)
    Float,
    /// `float` or `None`
    OptFloat,
    /// `bool`, `int` or `float`
    Number,
    /// a number or `None`
    OptNumber,
    /// `bool`
    Bool,
    /// a string
    Str,
    /// a list of ints
    Ints,
    /// a list of ints or `None`
    OptInts,
    /// an int or a list of ints
    IntOrInts,
    /// a list of int lists
    IntLists,
    /// a dtype
    DType,
    /// a dtype or `None`
    OptDType,
    /// a device
    Device,
    /// a device or `None`
    OptDevice,
}

impl AttrKind {
    /// Whether `attr` is of this kind.
    pub fn accepts(self, attr: &Attr) -> bool {
        use AttrKind as K;
        matches!(
            (self, attr),
            (
                K::OptInt | K::OptFloat | K::OptNumber | K::OptInts | K::OptDType | K::OptDevice,
                Attr::None
            ) | (K::Int | K::OptInt | K::IntOrInts, Attr::Int(_))
                | (K::Float | K::OptFloat, Attr::Float(_))
                | (
                    K::Number | K::OptNumber,
                    Attr::Int(_) | Attr::Float(_) | Attr::Bool(_)
                )
                | (K::Bool, Attr::Bool(_))
                | (K::Str, Attr::Str(_))
                | (K::Ints | K::OptInts | K::IntOrInts, Attr::Ints(_))
                | (K::IntLists, Attr::IntLists(_))
                | (K::DType | K::OptDType, Attr::DType(_))
                | (K::Device | K::OptDevice, Attr::Device(_))
        )
    }
    /// A human description for error messages.
    pub fn describe(self) -> &'static str {
        use AttrKind as K;
        match self {
            K::Int => "an int",
            K::OptInt => "an int or None",
            K::Float => "a float",
            K::OptFloat => "a float or None",
            K::Number => "a number",
            K::OptNumber => "a number or None",
            K::Bool => "a bool",
            K::Str => "a string",
            K::Ints => "a list of ints",
            K::OptInts => "a list of ints or None",
            K::IntOrInts => "an int or a list of ints",
            K::IntLists => "a list of int lists",
            K::DType => "a dtype",
            K::OptDType => "a dtype or None",
            K::Device => "a device",
            K::OptDevice => "a device or None",
        }
    }
}

/// The operands (positional) and attributes (keyword) of an op.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Operand names and kinds.
    pub operands: &'static [(&'static str, ParamKind)],
    /// Attribute names and kinds.
    pub attrs: &'static [(&'static str, AttrKind)],
    /// How many values the op defines; `None` when it depends on the attributes (`split`).
    pub num_outputs: Option<usize>,
}

impl Signature {
    /// Checks the number and kind of attributes (operands are checked by the meta functions,
    /// which know the values' types).
    pub fn check_attrs(&self, op: Op, attrs: &[Attr]) -> Result<()> {
        if attrs.len() != self.attrs.len() {
            return Err(IrError::invalid(
                op.qualified_name(),
                format!(
                    "expected {} attributes, got {}",
                    self.attrs.len(),
                    attrs.len()
                ),
            ));
        }
        for ((name, kind), a) in self.attrs.iter().zip(attrs) {
            if !kind.accepts(a) {
                return Err(IrError::invalid(
                    op.qualified_name(),
                    format!("{name} must be {}, got {a:?}", kind.describe()),
                ));
            }
        }
        Ok(())
    }
    /// Checks the number of operands and the literal/None/list shape of each (value types are
    /// the meta functions' business).
    pub fn check_operands(&self, op: Op, args: &[Arg]) -> Result<()> {
        if args.len() != self.operands.len() {
            return Err(IrError::invalid(
                op.qualified_name(),
                format!(
                    "expected {} operands, got {}",
                    self.operands.len(),
                    args.len()
                ),
            ));
        }
        for ((name, kind), a) in self.operands.iter().zip(args) {
            let ok = match (kind, a) {
                (ParamKind::Tensor, Arg::Value(_)) => true,
                (ParamKind::OptTensor, Arg::Value(_) | Arg::None) => true,
                (
                    ParamKind::TensorOrNumber,
                    Arg::Value(_) | Arg::Int(_) | Arg::Float(_) | Arg::Bool(_),
                ) => true,
                (ParamKind::TensorList, Arg::List(l)) => !l.is_empty(),
                _ => false,
            };
            if !ok {
                let want = match kind {
                    ParamKind::Tensor => "a tensor",
                    ParamKind::OptTensor => "a tensor or None",
                    ParamKind::TensorOrNumber => "a tensor or a number",
                    ParamKind::TensorList => "a non-empty list of tensors",
                };
                return Err(IrError::invalid(
                    op.qualified_name(),
                    format!("{name} must be {want}, got {a:?}"),
                ));
            }
        }
        Ok(())
    }
}

// The attribute accessors the signature checks and meta functions share (in `crate::args`).
pub(crate) use crate::args::{
    attr_bool, attr_device, attr_dtype, attr_float, attr_int, attr_int_lists, attr_ints,
    attr_opt_device, attr_opt_dtype, attr_opt_float, attr_opt_int, attr_opt_ints, attr_str,
};

/// Converts non-negative `i64` sizes from attributes to `usize`, naming the argument on error.
pub(crate) fn sizes(op: &str, arg: &str, v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| IrError::invalid(op, format!("{arg}={v:?} has a negative size {x}")))
        })
        .collect()
}
