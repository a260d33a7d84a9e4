//! The CUDA runtime this crate's kernels use (feature `cuda`): compiling CUDA C++ with NVRTC,
//! caching the PTX, entering a device's context, PyTorch's current stream, loading modules and
//! launching their functions. The fusion executor, the hand-written kernels
//! ([`crate::kernels`]), CUDA graph capture ([`crate::shim::CudaGraph`]) and the input copies of
//! [`crate::graphs`] use it.
//!
//! - `nvrtc`: NVRTC and the CUDA headers are found at run time ([`toolchain`]:
//!   `THUNDER_CUDA_HOME`, the PyTorch wheel's `nvidia/cu13`, `CUDA_HOME`, `/usr/local/cuda`);
//!   [`compile_ptx`] compiles a source for an architecture.
//! - `cache`: PTX is cached in memory and on disk (`THUNDER_KERNEL_CACHE`, default
//!   `~/.cache/thunder-rs/kernels`), keyed by a hash of the source and the architecture, so a
//!   second process starts warm.
//! - `context` and `stream`: [`enter_device`] makes a device's primary context (PyTorch's) current;
//!   [`current_stream`] is PyTorch's current stream of a device (from libtorch's C shim), which
//!   every launch is ordered on. Nothing synchronizes.
//! - `module` and `launch`: a source compiled and loaded once per device, its functions launched
//!   with 8-byte parameter slots (or raw parameter addresses).
//! - `error`: [`CudaError`], what these return when something fails.

mod cache;
mod context;
mod error;
mod launch;
mod module;
mod nvrtc;
mod stream;

pub(crate) use cache::fnv1a;
pub use context::{device_name, enter_device};
pub use error::CudaError;
pub(crate) use launch::{cuda_index, launch, launch_raw};
pub(crate) use module::Module;
pub use nvrtc::{compile_ptx, toolchain, Toolchain};
pub use stream::current_stream;
pub(crate) use stream::{copy_async, wait_for};
