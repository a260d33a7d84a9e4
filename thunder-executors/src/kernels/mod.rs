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
