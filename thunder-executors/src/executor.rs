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

/// How an instruction refers to one operand: a slot of the plan or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgRef {
    /// The value in this slot.
    Slot(u32),
    /// An `int` literal.
    Int(i64),
    /// A `float` literal.
    Float(f64),
    /// A `bool` literal.
    Bool(bool),
    /// `None`.
    None,
    /// A list of slots (`cat`).
    List(Box<[u32]>),
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
    /// A list of values (`cat`).
    List(ListArg<'a>),
}

/// A list operand: the values of some slots.
#[derive(Debug, Clone, Copy)]
pub struct ListArg<'a> {
    slots: &'a [Option<RtValue>],
    idx: &'a [u32],
}

impl<'a> ListArg<'a> {
    /// The values, in order; `None` for a slot that holds nothing (a plan bug).
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a RtValue>> + 'a {
        let slots = self.slots;
        self.idx
            .iter()
            .map(move |&s| slots.get(s as usize).and_then(|v| v.as_ref()))
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.idx.len()
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }
}

/// The operands of one kernel call. They are read from the plan's slots on demand, so a call
/// builds nothing.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    slots: &'a [Option<RtValue>],
    refs: &'a [ArgRef],
}

impl<'a> Args<'a> {
    /// Operands `refs`, read from `slots`.
    pub fn new(slots: &'a [Option<RtValue>], refs: &'a [ArgRef]) -> Self {
        Args { slots, refs }
    }
    /// Number of operands.
    pub fn len(&self) -> usize {
        self.refs.len()
    }
    /// Whether there are no operands.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
    /// Operand `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Result<KArg<'a>, KernelError> {
        Ok(match self.refs.get(i) {
            Some(ArgRef::Slot(s)) => match self.slots.get(*s as usize) {
                Some(Some(v)) => KArg::Value(v),
                _ => {
                    return Err(KernelError(format!(
                        "operand {i} was freed or never computed (a plan bug)"
                    )))
                }
            },
            Some(ArgRef::Int(x)) => KArg::Int(*x),
            Some(ArgRef::Float(x)) => KArg::Float(*x),
            Some(ArgRef::Bool(x)) => KArg::Bool(*x),
            Some(ArgRef::None) => KArg::None,
            Some(ArgRef::List(l)) => KArg::List(ListArg {
                slots: self.slots,
                idx: l,
            }),
            None => {
                return Err(KernelError(format!(
                    "the kernel asked for operand {i} of {}",
                    self.refs.len()
                )))
            }
        })
    }
}

/// What a kernel returns when libtorch (or the kernel) fails; the plan adds which bound symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
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
pub type Kernel = Box<dyn Fn(&Args<'_>) -> std::result::Result<Outputs, KernelError> + Send + Sync>;

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
    /// A fusion executor's region support: the prims it fuses take its place in the list, and
    /// the plan groups them into regions it compiles whole. `None` (the default) for executors
    /// that run one op at a time.
    fn fuser(&self) -> Option<&dyn Fuser> {
        None
    }
    /// Whether this executor is the plan's fallback: it runs every prim, including those a
    /// fusion executor claimed but left outside its regions (views). The plan uses the first
    /// such executor of the list, and appends [`crate::TorchExecutor::new`] when there is none.
    /// `false` (the default) for executors that run only what they claim.
    fn is_fallback(&self) -> bool {
        false
    }
}

/// What a fusion executor adds to [`Executor`]: which prims it can put in a region, and how it
/// compiles a region into one [`Kernel`].
pub trait Fuser: Send + Sync {
    /// Whether `bsym` (a prim of `trace`) may join a region.
    fn fusible(&self, trace: &Trace, bsym: &BoundSymbol) -> bool;
    /// Compiles `region` (its op indices refer to `ops`, the claimed trace's ops) into a kernel
    /// that takes the region's inputs and returns its outputs, in order.
    fn compile_region(
        &self,
        trace: &Trace,
        ops: &[BoundSymbol],
        region: &crate::fusion::Region,
    ) -> Result<Kernel>;
}
