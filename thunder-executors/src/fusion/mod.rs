//! The fusion executor: CUDA kernels generated for regions of fusible ops.
//!
//! - [`mod@partition`]: groups fusible ops into [`Region`]s by data flow, without cycles.
//! - [`codegen`]: the CUDA C++ of a region ([`RegionKernel`]): pointwise kernels (16-byte vector
//!   accesses where the layout allows) and rows kernels (reductions over trailing dims, one block
//!   per row, the row kept in registers).
//! - `executor` (feature `cuda`): [`FusionExecutor`], which compiles regions (through
//!   [`crate::cuda`]) and launches their kernels.
//!
//! Source generation needs no GPU. Compiling (NVRTC) and launching need the `cuda` feature.

pub mod codegen;
pub mod partition;

pub use codegen::{fusible, generate, KernelEntry, Launch, RegionKernel};
pub use partition::{partition, Region, Schedule};

#[cfg(feature = "cuda")]
mod executor;
#[cfg(feature = "cuda")]
pub use executor::FusionExecutor;
