//! Executors for thunder-rs traces: they claim the operations of a trace and run them.
//!
//! - [`Executor`]: what an executor claims (by op and operand metadata) and how it compiles a
//!   bound symbol into a [`Kernel`].
//! - [`TorchExecutor`]: runs every prim, and a set of torch-level ops whole, through libtorch
//!   (tch); always last in the list, it runs whatever no other executor claims.
//! - [`claim`]: the claim pass (trace -> [`ClaimedTrace`], every op with its executor; unclaimed
//!   torch-level ops descend into their decompositions).
//! - [`ExecutionPlan`]: the claimed trace compiled into instructions over numbered slots, run many
//!   times with low host overhead; intermediates are freed after their last use.
//! - [`runtime_info`]: what this process can use (libtorch, CUDA, cuDNN).
//! - [`FusionExecutor`] (feature `cuda`, default): CUDA kernels generated for regions of fusible
//!   prims, compiled with NVRTC, launched on PyTorch's stream (see [`fusion`]).
//!
//! - [`CrossEntropyExecutor`] (feature `cuda`): cross entropy's forward and backward as fused
//!   kernels that never store the softmax.
//! - [`AdamwExecutor`] (feature `cuda`): `ltorch.adamw`, an optimizer step over every parameter,
//!   as one multi-tensor kernel (in place when the trace donates the buffers).
//! - [`shim`]: libtorch entry points tch lacks (`torch._fused_adamw_`), from `csrc/shim.cpp`.
//!
//! Between the regions of one trace, the partitioner decides by minimum cut which values a
//! region reads and which it recomputes from what their producers read
//! ([`fusion::partition()`]).
//!
//! ```no_run
//! use thunder_executors::{ExecutionPlan, TorchExecutor};
//! use thunder_ir::{DType, TensorMeta, TraceBuilder};
//!
//! let mut b = TraceBuilder::new("f");
//! let x = b.input("x", TensorMeta::new(DType::F32, [2, 3]))?;
//! let y = b.softmax(x, -1)?;
//! let trace = b.build(&[y])?;
//! let plan = ExecutionPlan::compile(&trace, &[&TorchExecutor::new()])?;
//! let out = plan.run_tensors(&[tch::Tensor::randn([2, 3], (tch::Kind::Float, tch::Device::Cpu))])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! - `error`: [`Error`], the crate's one error type.
//! - `executor`: the trait, kernels and run-time values.
//! - `claim`, `plan`: the claim pass and the execution plan.
//! - `torch_executor`: the libtorch executor.
//! - `fusion`: the fusion executor (partition, codegen; compiling and launching with feature
//!   `cuda`).
//! - `kernels` (feature `cuda`): hand-written kernels for whole ops (cross entropy, AdamW).
//! - `cuda` (feature `cuda`): the CUDA runtime (NVRTC, kernel caches, contexts, streams,
//!   launches) the fusion executor, the kernels, the shim and `graphs` use.
//! - `graphs`: CUDA graphs for execution plans.
//! - `convert`: dtype/device conversions between thunder-ir and tch.
//! - `runtime`: [`runtime_info`], [`RuntimeInfo`] and [`check_device`].
#![warn(missing_docs)]

// The README's example is compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod claim;
pub mod convert;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod executor;
pub mod fusion;
pub mod graphs;
#[cfg(feature = "cuda")]
pub mod kernels;
pub mod plan;
mod runtime;
pub mod shim;
pub mod torch_executor;

pub use claim::{claim, ClaimedOp, ClaimedTrace};
pub use error::{Error, Result};
pub use executor::{
    ArgRef, Args, Executor, Fuser, KArg, Kernel, KernelError, ListArg, Outputs, RtValue,
};
#[cfg(feature = "cuda")]
pub use fusion::FusionExecutor;
pub use graphs::{uncapturable, GraphedPlan, UncapturableError};
#[cfg(feature = "cuda")]
pub use kernels::{AdamwExecutor, CrossEntropyExecutor};
pub use plan::ExecutionPlan;
pub use runtime::{check_device, runtime_info, RuntimeInfo};
pub use torch_executor::TorchExecutor;

/// The executors a user may name (`--executors`, `thunder.jit(executors=...)`), in the default
/// order of priority.
#[cfg(feature = "cuda")]
pub const EXECUTOR_NAMES: [&str; 4] = ["cross-entropy", "adamw", "fusion", "torch"];
/// The executors a user may name (without the `cuda` feature, only libtorch's).
#[cfg(not(feature = "cuda"))]
pub const EXECUTOR_NAMES: [&str; 1] = ["torch"];

/// The executor called `name` (one of [`EXECUTOR_NAMES`]; `xent` is `cross-entropy`), or `None`.
pub fn executor_by_name(name: &str) -> Option<Box<dyn Executor>> {
    Some(match name {
        #[cfg(feature = "cuda")]
        "cross-entropy" | "xent" => Box::new(CrossEntropyExecutor),
        #[cfg(feature = "cuda")]
        "adamw" => Box::new(AdamwExecutor),
        #[cfg(feature = "cuda")]
        "fusion" => Box::new(FusionExecutor),
        "torch" => Box::new(TorchExecutor::new()),
        _ => return None,
    })
}

/// A name that is none of [`EXECUTOR_NAMES`] (nor an alias of one); the message lists the
/// valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown executor {name:?}; the executors are: {}", EXECUTOR_NAMES.join(", "))]
pub struct UnknownExecutor {
    /// The name given (trimmed).
    pub name: String,
}

/// The executors called `names`, highest priority first, with the torch executor added last
/// when missing (every op needs one); the error names the unknown executor and the valid ones.
pub fn executors_by_name<S: AsRef<str>>(
    names: &[S],
) -> std::result::Result<Vec<Box<dyn Executor>>, UnknownExecutor> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        if seen.contains(&n) {
            continue;
        }
        seen.push(n);
        out.push(executor_by_name(n).ok_or_else(|| UnknownExecutor {
            name: n.to_string(),
        })?);
    }
    if !seen.contains(&"torch") {
        out.push(Box::new(TorchExecutor::new()));
    }
    Ok(out)
}
