//! thunder-ir: the intermediate representation of thunder-rs.
//!
//! A program is a [`Trace`]: named inputs, a list of [`BoundSymbol`]s in program order, and
//! outputs. Values are [`Value`] handles into the trace's table of metadata. Torch-level ops keep
//! their decomposition into prims as subsymbols. A trace prints as valid Python and parses back.
//!
//! Map of the crate:
//! - [`dtype`], [`device`], [`shape`]: element types, devices, shapes and broadcasting.
//! - [`promotion`]: PyTorch's type promotion (`torch.result_type`) and elementwise kinds.
//! - [`value`]: value handles and metadata.
//! - [`ops`]: the prim set with meta functions ([`ops::prims`]) and torch-level ops with
//!   decompositions ([`ops::torch`]).
//! - [`trace`]: [`Trace`], [`BoundSymbol`], operands and attributes.
//! - [`builder`]: [`TraceBuilder`], to build traces with calls that read like PyTorch.
//! - [`printer`], [`parser`]: trace <-> Python text.
//! - [`verify`]: the verifier (SSA and metadata consistency).
//! - [`mincut`]: minimum cuts (Dinic's maximum flow), which rematerialization decides with.
//! - [`programs`]: small realistic programs (Llama MLP, attention with RoPE, cross entropy).
//!
//! No libtorch, no CUDA: this crate builds in seconds and can be used alone.
#![warn(missing_docs)]

pub mod args;
pub mod builder;
pub mod device;
pub mod dtype;
pub mod error;
pub(crate) mod infer;
pub mod mincut;
pub mod ops;
pub mod parser;
pub mod printer;
pub mod programs;
pub mod promotion;
pub mod shape;
pub mod trace;
pub mod value;
pub mod verify;

pub use builder::TraceBuilder;

// The examples in the crate README and the workspace README are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;
pub use device::Device;
pub use dtype::{promote_types, Category, DType, NumberType};
pub use error::{IrError, Result};
pub use ops::torch::{AdamwOptions, AdamwUpdate, SdpaOptions};
pub use ops::{DistOp, Op, PrimOp, TorchOp};
pub use parser::parse_trace;
pub use shape::{Dim, Shape};
pub use trace::{Arg, Attr, BoundSymbol, Trace};
pub use value::{TensorMeta, Value, ValueInfo, ValueType};
