//! The Python module `thunder` of thunder-rs: a PyO3 extension (`thunder._C`) and a Python
//! package around it (`python/thunder`), built with maturin.
//!
//! - [`graph`] (pure Rust, tested by `cargo test`): a captured graph, as the Python side makes
//!   it from a Dynamo FX graph, and its translation into a thunder-ir trace.
//! - `py` (feature `python`, which only maturin turns on): the extension module. It compiles a
//!   graph into an [`ExecutionPlan`](thunder_executors::ExecutionPlan) and runs it on PyTorch
//!   tensors without copying them, with the GIL released.
//!
//! Status (issue 7): `thunder.jit` for functions of elementwise ops and matmuls without grad;
//! everything else runs eagerly through PyTorch (see the README).
#![warn(missing_docs)]

pub mod graph;

#[cfg(feature = "python")]
mod py;
