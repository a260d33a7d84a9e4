//! Distributed training for thunder-rs traces.
//!
//! - [`env`]: this process's rank, world size and rendezvous address, from the variables
//!   torchrun and SLURM set;
//! - [`rendezvous`]: a TCP rendezvous at `MASTER_ADDR:MASTER_PORT` through which the ranks
//!   exchange small messages (the NCCL unique id), with deadlines on every step; rank 0 admits
//!   only clients with the job's [`token`] and drops the others;
//! - [`token`]: the per-job token (`THUNDER_RDZV_TOKEN`, or derived from the launcher's
//!   variables);
//! - [`timeout`]: the range every user-given timeout is checked against, and checked deadlines;
//! - [`ddp`]: the DDP transform (bucketed asynchronous gradient all-reduces in the backward),
//!   gradient accumulation without communication (`no_sync`) and the parameter broadcast at the
//!   start;
//! - [`fsdp`]: the FSDP transform (ZeRO-2 and ZeRO-3: bucketed, prefetched parameter
//!   all-gathers; bucketed gradient reduce-scatters) and the sharding helpers;
//! - [`loopback`]: collectives by exchange (every rank gets every rank's tensor): between threads
//!   of one process, to test the transforms on the CPU with several ranks, or through any
//!   [`loopback::Exchange`] (thunder-py's: torch.distributed's gloo process group);
//! - `nccl` and `nccl_executor` (feature `cuda`): NCCL loaded from the PyTorch wheel, a
//!   non-blocking communicator with deadlines, and the executor that runs `dist.*` ops on CUDA
//!   tensors (asynchronous ones on a communication stream), with a watchdog that aborts a
//!   late collective's communicator and poisons it: every later use is an [`Error::Poisoned`].
//!
//! The collective ops themselves (`dist.all_reduce`, ...) are thunder-ir ops
//! ([`thunder_ir::DistOp`]).
//!
//! Status: issue 8 in progress (see the README).
#![warn(missing_docs)]

pub mod ddp;
pub mod env;
pub mod error;
pub mod fsdp;
pub mod loopback;
#[cfg(feature = "cuda")]
pub mod nccl;
#[cfg(feature = "cuda")]
pub mod nccl_executor;
pub mod rendezvous;
#[cfg(feature = "cuda")]
pub mod timeline;
pub mod timeout;
pub mod token;

pub use ddp::{
    accumulate_backward, broadcast_parameters, ddp_backward, ddp_backward_for, DdpOptions,
};
pub use env::DistEnv;
pub use error::{Error, NcclLoadError, Result, TraceError};
pub use fsdp::{
    fsdp, fsdp_with_layout, Bucket, Fsdp, FsdpOptions, FsdpPiece, Layout, ParamSpec, Zero,
};
pub use rendezvous::Rendezvous;
pub use token::{Token, TokenSource};
