//! Where this process sits in a distributed job: from the variables torchrun and SLURM set.

use crate::error::{Error, Result};
use crate::token::Token;

/// This process's place in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    /// Global rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Rank on this node (the GPU it drives).
    pub local_rank: usize,
    /// Host of rank 0's rendezvous.
    pub master_addr: String,
    /// Port of rank 0's rendezvous: `THUNDER_MASTER_PORT` if set; under torchrun (whose agent
    /// holds `MASTER_PORT` for its own store) `MASTER_PORT + 1`; otherwise `MASTER_PORT`.
    pub master_port: u16,
    /// The job's rendezvous token (see [`crate::token`]): `THUNDER_RDZV_TOKEN`, else derived
    /// from `TORCHELASTIC_RUN_ID` or `SLURM_JOB_ID`, else none.
    pub token: Token,
    /// Where rank 0 listens instead of `master_addr` (`THUNDER_RDZV_BIND`, e.g. `0.0.0.0`), for
    /// a `MASTER_ADDR` that is not an address of rank 0's host (NAT, a container's service
    /// address).
    pub bind_addr: Option<String>,
}

/// The port when SLURM runs the job and `MASTER_PORT` is not set (torchrun's default).
pub const DEFAULT_PORT: u16 = 29500;

impl DistEnv {
    /// From the process environment; `Ok(None)` when no launcher variable is set (a single
    /// process).
    pub fn from_env() -> Result<Option<DistEnv>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From `get` (a variable's value by name). torchrun's `RANK`/`WORLD_SIZE`/`LOCAL_RANK`/
    /// `MASTER_ADDR`/`MASTER_PORT` win; otherwise SLURM's `SLURM_PROCID`/`SLURM_NTASKS`/
    /// `SLURM_LOCALID` with `MASTER_ADDR` (or `SLURM_LAUNCH_NODE_IPADDR`) and `MASTER_PORT`
    /// (default 29500). The rendezvous token comes from the same variables
    /// ([`Token::from_vars`]).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<DistEnv>> {
        let torchrun = ["RANK", "WORLD_SIZE", "LOCAL_RANK"]
            .iter()
            .any(|k| get(k).is_some());
        let slurm = get("SLURM_PROCID").is_some();
        if !torchrun && !slurm {
            return Ok(None);
        }
        let need =
            |k: &'static str, hint: &'static str| get(k).ok_or(Error::MissingVar { var: k, hint });
        let number = |k: &'static str, v: String| -> Result<usize> {
            v.trim().parse::<usize>().map_err(|_| Error::BadVar {
                var: k,
                value: v.clone(),
                why: "it must be a non-negative integer".into(),
            })
        };
        let (rank, world_size, local_rank, rank_var) = if torchrun {
            let hint =
                "launch with torchrun, or set RANK, WORLD_SIZE and LOCAL_RANK for every process";
            (
                number("RANK", need("RANK", hint)?)?,
                number("WORLD_SIZE", need("WORLD_SIZE", hint)?)?,
                number("LOCAL_RANK", need("LOCAL_RANK", hint)?)?,
                "RANK",
            )
        } else {
            let hint = "run inside an srun step (or use torchrun's variables instead)";
            (
                number("SLURM_PROCID", need("SLURM_PROCID", hint)?)?,
                number("SLURM_NTASKS", need("SLURM_NTASKS", hint)?)?,
                number("SLURM_LOCALID", need("SLURM_LOCALID", hint)?)?,
                "SLURM_PROCID",
            )
        };
        if world_size == 0 {
            return Err(Error::BadVar {
                var: if torchrun {
                    "WORLD_SIZE"
                } else {
                    "SLURM_NTASKS"
                },
                value: "0".into(),
                why: "a job needs at least one process".into(),
            });
        }
        if rank >= world_size {
            return Err(Error::BadVar {
                var: rank_var,
                value: rank.to_string(),
                why: format!("ranks of a world of {world_size} are 0..{}", world_size - 1),
            });
        }
        let master_addr = match get("MASTER_ADDR").or_else(|| {
            (!torchrun)
                .then(|| get("SLURM_LAUNCH_NODE_IPADDR"))
                .flatten()
        }) {
            Some(a) if !a.trim().is_empty() => a.trim().to_string(),
            _ => {
                return Err(Error::MissingVar {
                    var: "MASTER_ADDR",
                    hint: "set it to the host of rank 0 (e.g. localhost on one node)",
                })
            }
        };
        let port = |k: &'static str, p: String| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or(Error::BadVar {
                    var: k,
                    value: p.clone(),
                    why: "it must be a port number, 1..65535".into(),
                })
        };
        let master_port = match get("MASTER_PORT") {
            Some(p) => port("MASTER_PORT", p)?,
            None if !torchrun => DEFAULT_PORT,
            None => {
                return Err(Error::MissingVar {
                    var: "MASTER_PORT",
                    hint: "set it to a free port on rank 0's host (torchrun sets it)",
                })
            }
        };
        // torchrun's agent serves its own store at MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE):
        // thunder's rendezvous takes the next port.
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        let master_port = match get("THUNDER_MASTER_PORT") {
            Some(p) => port("THUNDER_MASTER_PORT", p)?,
            None if agent_store => master_port.checked_add(1).ok_or(Error::BadVar {
                var: "MASTER_PORT",
                value: master_port.to_string(),
                why: "under torchrun thunder's rendezvous uses MASTER_PORT + 1; pick a lower \
                      port or set THUNDER_MASTER_PORT"
                    .into(),
            })?,
            None => master_port,
        };
        let token = Token::from_vars(&get)?;
        let bind_addr = get("THUNDER_RDZV_BIND")
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty());
        Ok(Some(DistEnv {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
            token,
            bind_addr,
        }))
    }
}
