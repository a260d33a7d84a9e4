//! Distributed training for thunder-rs traces.
//!
//! This crate will hold, per the workspace's `ARCHITECTURE.md`:
//!
//! - the ddp and fsdp trace transforms;
//! - the collective prims (all-reduce, all-gather, reduce-scatter) with their meta functions;
//! - the NCCL communicator (cudarc's `nccl` feature; NCCL comes from the PyTorch wheel);
//! - rendezvous from a torchrun-compatible environment (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, ...).
//!
//! It will depend on `thunder-ir`, `thunder-transforms`, `thunder-executors` and cudarc.
//!
//! Status: not started (issue 8); no public items yet.
#![warn(missing_docs)]
