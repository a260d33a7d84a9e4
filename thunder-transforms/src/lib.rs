//! Trace-to-trace transforms for thunder-rs. A pass is a function `Trace -> Result<Trace>` over
//! `thunder-ir` traces.
//!
//! This crate will hold, per the workspace's `ARCHITECTURE.md`:
//!
//! - the pass manager, which verifies the trace after each pass in debug builds and keeps every
//!   intermediate trace for inspection (`last_traces`);
//! - dead-code elimination (dce) and common-subexpression elimination (cse);
//! - grad/vjp and jvp, and the split of a trace into a forward and a backward trace;
//! - vmap;
//! - autocast;
//! - rematerialization (recomputing cheap values instead of saving them for the backward).
//!
//! It will depend on `thunder-ir` only.
//!
//! Status: not started (issue 4); no public items yet.
#![warn(missing_docs)]
