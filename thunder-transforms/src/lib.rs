//! Trace-to-trace transforms for thunder-rs. A pass is a function `Trace -> Result<Trace>` over
//! `thunder-ir` traces.
//!
//! - [`pass`]: the [`PassManager`], which runs passes in order, verifies the trace after each (in
//!   debug builds and tests) and keeps every intermediate trace with the pass name and its time
//!   ([`PassHistory`], what `thunder.last_traces` will show).
//! - [`dce`]: dead-code elimination.
//! - [`cse`]: common-subexpression elimination (never across random or in-place ops).
//! - [`grad`]: reverse-mode autodiff (a joint forward and backward trace), over prims and the
//!   torch-level ops of [`rules::torch`] (softmax, cross entropy, norms, attention), which have
//!   their own rules.
//! - [`jvp`]: forward-mode autodiff over prims (outputs and their tangents).
//! - [`vmap`]: batching, like `torch.func.vmap` (`in_dims` and `out_dims`, nested vmap).
//! - [`autocast`]: matmuls in bf16/f16, sensitive ops in f32, like `torch.autocast`.
//! - [`split`]: the forward/backward split with saved values ([`forward_backward`]).
//! - [`rules`]: the VJP, JVP and batching rules of grad, jvp and vmap, one file per op family
//!   (elementwise, reduction, shape, indexing, nn, creation, memory), so that one family's rules
//!   for every transform read together.
//!
//! Every differentiable prim has a VJP and a JVP rule and every prim a batching rule; opinfo-db
//! checks them all against PyTorch (see its COVERAGE.md). The split saves or recomputes each
//! forward value by a minimum cut ([`thunder_ir::mincut`]), as Lightning Thunder does.
//!
//! ```
//! use thunder_ir::{DType, TensorMeta, TraceBuilder};
//! use thunder_transforms::{cse, dce, pass_fn, PassManager};
//!
//! let mut b = TraceBuilder::new("f");
//! let x = b.input("x", TensorMeta::new(DType::F32, [4]))?;
//! let a = b.exp(x)?;
//! let c = b.exp(x)?; // the same as `a`
//! let _unused = b.neg(x)?;
//! let y = b.add(a, c)?;
//! let trace = b.build(&[y])?;
//!
//! let history = PassManager::new().then(pass_fn("cse", cse)).then(pass_fn("dce", dce)).run(&trace)?;
//! let after = history.last().expect("a trace");
//! assert_eq!(after.bound_symbols.len(), 2); // one exp, one add
//! assert_eq!(history.records.iter().map(|r| r.pass.as_str()).collect::<Vec<_>>(), ["input", "cse", "dce"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

// The README's example is compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod autocast;
pub mod cse;
pub mod dce;
mod error;
pub mod grad;
pub mod jvp;
pub mod pass;
mod remat;
pub mod rules;
pub mod split;
mod util;
pub mod vmap;

pub use autocast::{autocast, autocast_call};
pub use cse::cse;
pub use dce::dce;
pub use error::{Result, TransformError};
pub use grad::{grad, grad_with, value_and_grad, GradOptions};
pub use jvp::jvp;
pub use pass::{pass_fn, FnPass, Pass, PassHistory, PassManager, PassRecord};
pub use split::{forward_backward, forward_backward_with, ForwardBackward};
pub use vmap::{vmap, vmap_dims, vmap_with, Randomness, VmapOptions};
