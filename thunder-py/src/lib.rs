//! The Python module `thunder` of thunder-rs, a PyO3 extension.
//!
//! This crate will hold, per the workspace's `ARCHITECTURE.md`:
//!
//! - `thunder.jit`;
//! - acquisition of programs from FX graphs;
//! - autograd interop: a compiled function takes part in PyTorch's autograd;
//! - `thunder.last_traces`: the trace at every stage, printed as Python;
//! - the one place where the workspace's errors become Python exceptions.
//!
//! It will depend on every crate of the workspace, on pyo3 (abi3) and on pyo3-tch, which share
//! tensors with the calling PyTorch without copies.
//!
//! Status: not started (issue 7); no public items yet.
#![warn(missing_docs)]
