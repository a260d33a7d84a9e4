//! The `Executor` trait, kernels, and the values they pass around.

use crate::Result;
use tch::Tensor;
use thunder_ir::{BoundSymbol, Trace};

/// A value at run time: a tensor or a Python number.
#[derive(Debug)]
pub enum RtValue {
    /// A tensor.
    Tensor(Tensor),
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `bool`.
    Bool(bool),
}

impl RtValue {
    /// A new handle to the same value (tensors are reference-counted, not copied).
    pub fn share(&self) -> RtValue {
        match self {
            RtValue::Tensor(t) => RtValue::Tensor(t.shallow_clone()),
            RtValue::Int(i) => RtValue::Int(*i),
            RtValue::Float(f) => RtValue::Float(*f),
            RtValue::Bool(b) => RtValue::Bool(*b),
        }
    }
    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            RtValue::Tensor(t) => Some(t),
            _ => None,
        }
    }
    /// The tensor, if this is one.
    pub fn into_tensor(self) -> Option<Tensor> {
        match self {
            RtValue::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

impl From<Tensor> for RtValue {
    fn from(t: Tensor) -> Self {
        RtValue::Tensor(t)
    }
}

/// An operand as a kernel receives it.
#[derive(Debug, Clone, Copy)]
pub enum KArg<'a> {
    /// A value of the plan.
    Value(&'a RtValue),
    /// An `int` literal.
    Int(i64),
    /// A `float` literal.
    Float(f64),
    /// A `bool` literal.
    Bool(bool),
    /// `None`.
    None,
    /// A list of values (`cat`); the plan resolves it to the slots' values.
    List(&'a [&'a RtValue]),
}

/// What a kernel returns when libtorch (or the kernel) fails; the plan adds which bound symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl From<tch::TchError> for KernelError {
    fn from(e: tch::TchError) -> Self {
        // libtorch's messages end with a C++ backtrace; the first paragraph says what went wrong.
        let s = e.to_string();
        let short = s
            .split("\nException raised from")
            .next()
            .unwrap_or(&s)
            .trim()
            .to_string();
        KernelError(short)
    }
}

/// What a kernel returns: its outputs, inline for up to two (no allocation for most ops).
pub type Outputs = smallvec::SmallVec<[RtValue; 2]>;

/// A compiled bound symbol: called once per run with the operands in signature order.
pub type Kernel =
    Box<dyn Fn(&[KArg<'_>]) -> std::result::Result<Outputs, KernelError> + Send + Sync>;

/// Something that runs bound symbols.
///
/// An executor claims a bound symbol (by its op and its operands' metadata) and compiles it into a
/// [`Kernel`]. The claim pass ([`crate::claim`]) asks the executors of the user's list in order;
/// a torch-level bound symbol that none claims is replaced by its decomposition. The torch
/// executor ([`crate::TorchExecutor`]) is always last and claims every prim.
pub trait Executor: Send + Sync {
    /// A short name, printed in claimed traces and errors.
    fn name(&self) -> &'static str;
    /// Whether this executor runs `bsym` (a bound symbol of `trace`) whole.
    fn claims(&self, trace: &Trace, bsym: &BoundSymbol) -> bool;
    /// Compiles a claimed bound symbol. Called once per plan, not per run.
    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel>;
}
