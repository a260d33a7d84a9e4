//! `thunder-bench`: the thunder-rs harness, as a library (the `thunder-bench` binary is its
//! command line).
//!
//! - [`llama`]: `thunder-bench llama2`, end-to-end training steps of the Llama-2 family,
//!   compiled against eager.
//! - [`ops`]: `thunder-bench ops`, microbenchmarks of a Llama-2-7B step's memory-bound patterns.
//! - [`memory`]: a device's free memory, and the error that refuses a run needing more.
//! - [`coverage`]: `thunder-bench coverage`, opinfo-db's coverage report (the grad, jvp and vmap
//!   columns ask thunder-transforms which rules exist).

pub mod coverage;
pub mod llama;
pub mod memory;
pub mod ops;
