//! The op database of thunder-rs: one description per op drives the op, grad and executor tests,
//! all compared against eager PyTorch.
//!
//! This crate will hold, per the workspace's `ARCHITECTURE.md`:
//!
//! - the YAML op database (`opinfo-db/ops/*.yaml`): samples, dtypes, per-dtype tolerances and the
//!   error inputs that must be rejected with the right error;
//! - sample generation;
//! - reference calls into eager libtorch (tch);
//! - the generated conformance tests.
//!
//! It will depend on `thunder-ir`, serde_yaml, tch and proptest.
//!
//! Status: not started (issue 3); no public items yet.
#![warn(missing_docs)]
