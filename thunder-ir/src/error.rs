//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong while building, parsing or checking a trace.
///
/// Errors name the op, the argument, what was expected and what was given, so that a message such
/// as `linear: weight has shape [64, 32] but input's last dim is 16` can be acted on without
/// reading the code.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IrError {
    /// An op was given an argument it cannot take.
    #[error("{op}: {message}")]
    InvalidArgument {
        /// Qualified op name, e.g. `ltorch.linear` or `prims.add`.
        op: String,
        /// What was wrong, naming the argument.
        message: String,
    },
    /// Two dtypes have no common type under PyTorch's promotion rules.
    #[error("{op}: cannot promote {lhs} and {rhs}: {reason}")]
    Promotion {
        /// The op that asked for promotion.
        op: String,
        /// One dtype.
        lhs: String,
        /// The other dtype.
        rhs: String,
        /// Why PyTorch refuses, or why thunder-rs does.
        reason: String,
    },
    /// Shapes that do not broadcast.
    #[error("{op}: shapes {lhs} and {rhs} do not broadcast: dim {dim} has sizes {lhs_size} and {rhs_size}")]
    Broadcast {
        /// The op that broadcast.
        op: String,
        /// One shape, printed.
        lhs: String,
        /// The other shape, printed.
        rhs: String,
        /// The offending dimension, counted from the right as in the broadcast result.
        dim: usize,
        /// Size in `lhs`.
        lhs_size: usize,
        /// Size in `rhs`.
        rhs_size: usize,
    },
    /// A name was used twice, or is not a valid Python identifier.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Trace text that could not be parsed.
    #[error("parse error at line {line}, column {column}: {message}\n  {text}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
        /// The offending line.
        text: String,
    },
    /// Trace text nested deeper than [`crate::trace::MAX_NESTING`] levels: lists, tuples,
    /// calls and unary minus inside one another, or decompositions inside one another. No real
    /// trace comes near the limit; it keeps hostile text from overflowing the parser's stack.
    #[error("parse error at line {line}, column {column}: {what} nested more than {limit} levels deep\n  {text}")]
    TooDeep {
        /// 1-based line number.
        line: usize,
        /// 1-based column where the limit was passed.
        column: usize,
        /// What was nested: `expressions ([...], (...), calls, unary minus)` or
        /// `decompositions`.
        what: String,
        /// The limit, [`crate::trace::MAX_NESTING`].
        limit: usize,
        /// The start of the offending line (hostile lines can be long; the rest is left out).
        text: String,
    },
    /// Arithmetic on sizes, indices or counts given by the user that does not fit: a shape
    /// whose element count exceeds `i64::MAX` (PyTorch's sizes are `int64`), a sum of sizes,
    /// an index plus a length. Refused instead of wrapping (release builds) or panicking (debug).
    #[error("{op}: integer overflow: {message}")]
    Overflow {
        /// Qualified op name, or `TraceBuilder` / `parser` where no op is involved.
        op: String,
        /// What overflowed, with the values involved.
        message: String,
    },
    /// A trace that breaks an invariant (SSA, metadata consistency).
    #[error("verifier: {0}")]
    Verify(String),
    /// A handle that does not belong to this trace or builder.
    #[error("unknown value v{0}: it was not created by this trace builder")]
    UnknownValue(u32),
}

impl IrError {
    /// Shorthand for [`IrError::InvalidArgument`].
    pub fn invalid(op: impl Into<String>, message: impl Into<String>) -> Self {
        IrError::InvalidArgument {
            op: op.into(),
            message: message.into(),
        }
    }
    /// Shorthand for [`IrError::Overflow`].
    pub fn overflow(op: impl Into<String>, message: impl Into<String>) -> Self {
        IrError::Overflow {
            op: op.into(),
            message: message.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = IrError> = std::result::Result<T, E>;
