//! Why the torch executor cannot compile a bound symbol.

use thunder_ir::Attr;

/// Why the torch executor cannot compile a bound symbol: the message of the
/// [`crate::Error::Compile`] it becomes.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CompileError {
    /// An attribute of another kind than its kernel reads.
    #[error("expected {expected}, got {got:?}")]
    Attr {
        /// What the kernel reads (`an int`, `a list of ints`, ...).
        expected: &'static str,
        /// The attribute.
        got: Attr,
    },
    /// A named attribute of another kind than its kernel reads.
    #[error("{name} must be {expected}, got {got:?}")]
    NamedAttr {
        /// The attribute's name.
        name: &'static str,
        /// What the kernel reads.
        expected: &'static str,
        /// The attribute.
        got: Attr,
    },
    /// A `reduction` attribute other than `"mean"`, `"sum"` and `"none"`.
    #[error("unknown reduction {0:?}")]
    Reduction(Attr),
    /// The bound symbol has no output.
    #[error("the bound symbol has no output")]
    NoOutput,
    /// The bound symbol's output is not in the trace's value table.
    #[error("output outside the value table")]
    OutputOutsideTable,
    /// An op that returns a tensor has a number output (`what`: the op).
    #[error("{0} returns a tensor")]
    NotATensor(&'static str),
    /// `embedding` with a `max_norm` (it renormalizes the weight in place).
    #[error("max_norm is not supported (it renormalizes the weight in place)")]
    MaxNorm,
    /// A prim without a kernel.
    /// A `prims.aten` or `prims.aten_vjp` call thunder-ir rejects.
    #[error("{0}")]
    Ir(String),
    #[error("no kernel for prims.{0}")]
    NoPrimKernel(&'static str),
    /// A torch-level op without a kernel of its own (it runs its decomposition).
    #[error("ltorch.{0} has no direct kernel")]
    NoTorchKernel(&'static str),
}
