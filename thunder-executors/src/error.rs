//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libtorch rejected an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A device was asked for that this process cannot use.
    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable {
        /// The device, as tch prints it (`Cuda(1)`).
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An executor could not compile a bound symbol it claimed.
    #[error("{executor} executor cannot compile `{statement}`: {message}")]
    Compile {
        /// The executor's name.
        executor: &'static str,
        /// The bound symbol as printed in the trace.
        statement: String,
        /// Why.
        message: String,
    },
    /// A kernel failed at run time (libtorch raised).
    #[error("trace line {line}: `{statement}` failed in the {executor} executor: {message}")]
    Kernel {
        /// The executor's name.
        executor: &'static str,
        /// The 1-based line of the bound symbol in the printed trace (`Trace::to_python`).
        line: usize,
        /// The bound symbol as printed.
        statement: String,
        /// libtorch's message, without its C++ backtrace.
        message: String,
    },
    /// No executor claims a bound symbol, and it has no decomposition to descend into.
    #[error("trace line {line}: no executor can run `{statement}` (and it has no decomposition)")]
    Unclaimed {
        /// The 1-based line in the printed trace.
        line: usize,
        /// The bound symbol as printed.
        statement: String,
    },
    /// A run was given inputs that do not match the trace the plan was compiled for.
    #[error("input {index} ({name}): expected {expected}, got {given}")]
    Input {
        /// Position among the trace's inputs.
        index: usize,
        /// The input's name in the trace.
        name: String,
        /// What the plan was compiled for.
        expected: String,
        /// What was passed.
        given: String,
    },
    /// The trace itself is invalid.
    #[error(transparent)]
    Ir(#[from] thunder_ir::IrError),
    /// A device computed a wrong result: a broken libtorch install or driver.
    #[error("device {device} computed {got:?} for {op}, expected {expected:?}")]
    WrongResult {
        /// The device, as tch prints it.
        device: String,
        /// The operation that was checked.
        op: &'static str,
        /// What it should have computed.
        expected: Vec<f32>,
        /// What it computed.
        got: Vec<f32>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
