//! The fusion executor: CUDA kernels generated for regions of fusible ops.
//!
//! - [`mod@partition`]: groups fusible ops into [`Region`]s by data flow, without cycles.
//! - [`codegen`]: the CUDA C++ of a region ([`RegionKernel`]): pointwise kernels (16-byte vector
//!   accesses where the layout allows) and rows kernels (reductions over trailing dims, one block
//!   per row, the row kept in registers).
//! - [`xent`]: the cross-entropy executor, fused forward and backward kernels that never store
//!   the softmax.
//! - [`adamw`]: the AdamW executor, one multi-tensor kernel for an optimizer step over every
//!   parameter.
//!
//! Source generation needs no GPU. Compiling (NVRTC) and launching need the `cuda` feature.

pub mod codegen;
pub mod partition;

pub use codegen::{fusible, generate, KernelEntry, Launch, RegionKernel};
pub use partition::{partition, Region, Schedule};

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda")]
pub use cuda::{compile_ptx, current_stream, device_name, enter_device, toolchain, FusionExecutor};
#[cfg(feature = "cuda")]
pub mod xent;
#[cfg(feature = "cuda")]
pub use xent::CrossEntropyExecutor;
#[cfg(feature = "cuda")]
pub mod adamw;
#[cfg(feature = "cuda")]
pub use adamw::AdamwExecutor;
