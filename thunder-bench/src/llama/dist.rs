//! `thunder-bench llama2 --ddp | --fsdp [--zero 2|3]`: one rank of a data-parallel run.
//!
//! Every rank trains on its own micro-batch (the batch seed plus its rank). The thunder mode
//! transforms its step with `thunder_distributed` (DDP: bucketed gradient all-reduce; FSDP:
//! sharded parameters, gradients and AdamW state); the eager mode is the same model with
//! libtorch autograd and an NCCL all-reduce of the gradients before `_fused_adamw_`.

use super::BenchError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tch::Tensor;
use thunder_distributed::nccl::{nccl_dtype, Communicator, RedOp};
use thunder_distributed::nccl_executor::{communicator, NcclExecutor};
use thunder_distributed::{DistEnv, Rendezvous, Zero};

/// How the step is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallel {
    /// Replicated parameters, averaged gradients.
    Ddp,
    /// Sharded (ZeRO-2 or ZeRO-3).
    Fsdp(Zero),
}

impl Parallel {
    /// How the table names it.
    pub fn describe(self) -> &'static str {
        match self {
            Parallel::Ddp => "DDP",
            Parallel::Fsdp(Zero::Two) => "FSDP ZeRO-2",
            Parallel::Fsdp(Zero::Three) => "FSDP ZeRO-3",
        }
    }
}

/// This process's rank: its connections to the others.
pub struct Dist {
    /// DDP or FSDP.
    pub parallel: Parallel,
    /// This rank.
    pub rank: usize,
    /// The number of ranks.
    pub world: usize,
    /// The executor of the collectives (first in the thunder mode's list).
    pub nccl: NcclExecutor,
    /// The rendezvous (for exchanging results).
    pub rdv: Mutex<Rendezvous>,
    /// Bytes per bucket (`--bucket-mb`; None: the transform's default).
    pub bucket_bytes: Option<usize>,
    /// FSDP ZeRO-3: buckets gathered ahead (`--prefetch`; None: the default).
    pub prefetch: Option<usize>,
    /// FSDP ZeRO-3: bytes of gathered parameters kept for the backward (`--keep-gathered-mb`).
    pub keep_gathered_bytes: Option<usize>,
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Dist({:?}, rank {} of {})",
            self.parallel, self.rank, self.world
        )
    }
}

impl Dist {
    /// Meets the other ranks of `env`'s job and joins the NCCL communicator on CUDA device
    /// `env.local_rank`. `timeout` bounds the rendezvous and every collective.
    pub fn join(parallel: Parallel, env: &DistEnv, timeout: Duration) -> Result<Dist, BenchError> {
        let mut rdv = Rendezvous::connect(env, timeout)
            .map_err(|e| BenchError::Usage(format!("rank {}: {e}", env.rank)))?;
        let comm = communicator(&mut rdv, env.local_rank as i32, timeout)
            .map_err(|e| BenchError::Kernel(format!("rank {}: NCCL: {e}", env.rank)))?;
        let nccl = NcclExecutor::new(comm).map_err(|e| BenchError::Kernel(e.to_string()))?;
        nccl.watch_peers(rdv.liveness());
        Ok(Dist {
            parallel,
            rank: env.rank,
            world: env.world_size,
            nccl,
            rdv: Mutex::new(rdv),
            bucket_bytes: None,
            prefetch: None,
            keep_gathered_bytes: None,
        })
    }

    /// The communicator.
    pub fn comm(&self) -> &Arc<Communicator> {
        self.nccl.communicator()
    }
}

/// Averages `grads` over the ranks in place (NCCL on the current stream): the eager baseline's
/// data parallelism.
pub fn all_reduce_grads(comm: &Communicator, grads: &[Tensor]) -> Result<(), BenchError> {
    let dev = comm.device();
    let stream = thunder_executors::cuda::current_stream(dev)
        .map_err(|e| BenchError::Kernel(e.to_string()))?;
    for g in grads {
        let kind = g.kind();
        let d = thunder_executors::convert::dtype(kind)
            .and_then(nccl_dtype)
            .ok_or_else(|| BenchError::Kernel(format!("NCCL cannot reduce {kind:?}")))?;
        if !g.is_contiguous() {
            return Err(BenchError::Kernel("a gradient is not contiguous".into()));
        }
        let p = g.data_ptr();
        // SAFETY: a contiguous CUDA tensor on this rank's device, reduced in place on the
        // stream that uses it next.
        unsafe {
            comm.all_reduce(
                p,
                p,
                g.numel(),
                d,
                RedOp::Avg,
                stream as *mut std::ffi::c_void,
                "the eager gradient all-reduce",
            )
        }
        .map_err(|e| BenchError::Kernel(e.to_string()))?;
    }
    Ok(())
}
