//! Executors for thunder-rs traces: they claim the operations of a trace and run them.
//!
//! This crate will hold, per the workspace's `ARCHITECTURE.md`:
//!
//! - the `Executor` trait: what an executor claims (with a checker on metadata) and how it runs it;
//! - the torch executor, which runs any operation through libtorch (tch) and is the fallback for
//!   whatever no other executor claims;
//! - the fusion executor: CUDA C++ generated for fusible regions, compiled with NVRTC, launched on
//!   torch's current stream;
//! - vendor-kernel executors (flash SDPA, fused cross-entropy, fused AdamW);
//! - `ExecutionPlan`, the claimed trace ready to run, and its runtime.
//!
//! Today it holds the groundwork they stand on: libtorch is linked so that binaries run without
//! `LD_LIBRARY_PATH` and see CUDA on GPU machines (see `build.rs`), and [`runtime_info`] reports what
//! this process can use.
//!
//! # Modules
//!
//! - `error`: [`Error`], the crate's one error type.
//! - `runtime`: [`runtime_info`], [`RuntimeInfo`] and [`check_device`], the libtorch and CUDA probe.
#![warn(missing_docs)]

mod error;
mod runtime;

pub use error::{Error, Result};
pub use runtime::{check_device, runtime_info, RuntimeInfo};
