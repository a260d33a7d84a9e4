//! The crate's error type.

use thiserror::Error;
use thunder_ir::IrError;

/// What can go wrong in a transform.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TransformError {
    /// A pass produced a trace that breaks an invariant (caught by the verifier after the pass).
    #[error("pass {pass} produced an invalid trace: {error}")]
    InvalidOutput {
        /// The pass's name.
        pass: String,
        /// What the verifier found (boxed: an `IrError` is large and errors are rare).
        error: Box<IrError>,
    },
    /// A pass failed.
    #[error("pass {pass} failed: {message}")]
    Pass {
        /// The pass's name.
        pass: String,
        /// Why.
        message: String,
    },
    /// A transform has no rule for an op (yet): refused rather than answered wrongly.
    #[error("{op}: no {transform} rule: {reason}")]
    NoRule {
        /// The qualified op name (`prims.maximum`).
        op: String,
        /// The transform (`VJP`, `JVP`, `batching`).
        transform: &'static str,
        /// What is missing.
        reason: String,
    },
    /// The input trace is invalid, or building the new trace failed.
    #[error(transparent)]
    Ir(Box<IrError>),
}

impl From<IrError> for TransformError {
    fn from(e: IrError) -> Self {
        TransformError::Ir(Box::new(e))
    }
}

/// `Result` with [`TransformError`].
pub type Result<T, E = TransformError> = std::result::Result<T, E>;
