//! The op database of thunder-rs: one YAML description per op drives the op, grad and executor
//! tests, all compared against eager PyTorch.
//!
//! ```
//! use opinfo_db::OpDb;
//! use thunder_ir::{DType, Device};
//!
//! let db = OpDb::builtin()?;
//! let softmax = db.by_name("ltorch.softmax").expect("an entry");
//! assert!(softmax.supports(Device::Cpu, DType::BF16));
//! for sample in softmax.samples(Device::Cpu, DType::F32, 0) {
//!     let trace = sample.build_trace().expect("the sample agrees with thunder-ir");
//!     assert_eq!(trace.outputs.len(), 1);
//! }
//! # Ok::<(), opinfo_db::DbError>(())
//! ```
//!
//! Map of the crate:
//! - [`schema`]: the YAML schema as serde reads it (`ops/*.yaml`; documented in the README).
//! - [`load`]: validation against thunder-ir's op signatures, with file:line errors.
//! - [`entry`]: the validated entries ([`OpEntry`]), default tolerances ([`Tolerance`]).
//! - [`db`]: [`OpDb`], from a directory or from the files built into the crate; [`package_dir`],
//!   this package's folder at run time.
//! - [`sample`]: concrete [`Sample`]s for a device and dtype, deterministic from a seed, and
//!   their one-op traces ([`Sample::build_trace`]).
//! - [`strategy`]: proptest strategies (random seeds; random broadcastable shapes for
//!   elementwise ops).
//! - [`coverage`]: the coverage report (`COVERAGE.md`; `thunder-bench coverage` prints it), which
//!   asks a [`coverage::Transforms`] which rules exist.
//! - [`error`]: the error type, [`DbError`], with file and line.
//!
//! - [`conformance`]: the runner behind the generated tests (`tests/conformance.rs`): makes the
//!   tensors from [`TensorSpec`]s, runs each case through thunder-executors (direct and
//!   decomposed) and compares with eager libtorch; the eager reference, tolerance comparison and
//!   survey driver that thunder-transforms' grad, jvp and vmap surveys (its `tests/*_ops.rs`)
//!   build on. This crate does not depend on thunder-transforms.
#![warn(missing_docs)]

pub mod conformance;
pub mod coverage;
pub mod db;
pub mod entry;
pub mod error;
pub mod load;
pub mod sample;
pub mod schema;
pub mod strategy;

pub use db::{all_ops, package_dir, OpDb, BUILTIN_FILES};
pub use entry::{
    ArgSpec, AttrSpec, DTypeSpec, ErrorInput, OpEntry, SampleSpec, Skip, TensorTemplate, Tolerance,
};
pub use error::{DbError, Location, Part};
pub use sample::{Sample, SampleArg, TensorSpec};
pub use schema::{DeviceKind, ErrorKind};
pub use strategy::{elementwise, Elementwise};

// The README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
