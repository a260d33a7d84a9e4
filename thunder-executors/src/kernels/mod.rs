//! Hand-written CUDA kernels for whole torch-level ops (feature `cuda`): executors that claim one
//! op each and run it with kernels of their own, not fusion regions.
//!
//! - [`xent`]: the cross-entropy executor, fused forward and backward kernels that never store
//!   the softmax.
//! - [`adamw`]: the AdamW executor, one multi-tensor kernel for an optimizer step over every
//!   parameter.

pub mod adamw;
pub mod xent;

pub use adamw::AdamwExecutor;
pub use xent::CrossEntropyExecutor;

use thunder_ir::DType;

/// Why the source of a hand-written kernel cannot be generated ([`xent::source`],
/// [`adamw::source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The cross-entropy kernels were asked for a non-floating input dtype.
    #[error("the fused cross entropy takes floating inputs (f16, bf16, f32, f64), not {dtype}")]
    CrossEntropyDtype {
        /// The dtype asked for.
        dtype: DType,
    },
    /// The AdamW kernel was asked for a non-floating parameter dtype.
    #[error("the AdamW kernel takes floating parameters (f16, bf16, f32, f64), not {dtype}")]
    AdamwDtype {
        /// The dtype asked for.
        dtype: DType,
    },
}
