//! Errors of thunder-distributed: each says what went wrong and what to change.

use std::time::Duration;

/// An error of thunder-distributed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A launcher variable is missing.
    #[error("{var} is not set: {hint}")]
    MissingVar {
        /// The variable.
        var: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// A launcher variable has a bad value.
    #[error("{var}={value:?} is not valid: {why}")]
    BadVar {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is wrong.
        why: String,
    },
    /// Rank 0 cannot listen on the rendezvous port.
    #[error(
        "rank 0 cannot listen on port {port}: {reason}; set THUNDER_MASTER_PORT (default \
         MASTER_PORT, under torchrun MASTER_PORT + 1) to a free port"
    )]
    Listen {
        /// The port.
        port: u16,
        /// The OS's reason.
        reason: String,
    },
    /// Rank 0 cannot listen at the rendezvous address (`MASTER_ADDR`, or `THUNDER_RDZV_BIND`).
    #[error(
        "rank 0 cannot listen at {addr}: {reason}; MASTER_ADDR must name an address of rank 0's \
         host, or set THUNDER_RDZV_BIND to the local address to listen at (0.0.0.0: every \
         interface)"
    )]
    Bind {
        /// The host that was to be bound.
        addr: String,
        /// Why it failed (per resolved address).
        reason: String,
    },
    /// A rendezvous step did not finish in time.
    #[error("rendezvous timed out after {}s: {what}", .after.as_secs_f64())]
    Timeout {
        /// What was waited for (which ranks, which host).
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// A peer broke the protocol or its connection.
    #[error("rank {rank}: {what}")]
    Peer {
        /// The rank (the peer's, or ours when rank 0 rejected us).
        rank: usize,
        /// What happened.
        what: String,
    },
    /// I/O on a rendezvous connection.
    #[error("rendezvous I/O with rank {rank}: {source}")]
    Io {
        /// The peer.
        rank: usize,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A timeout outside the accepted range (see [`crate::timeout`]).
    #[error(
        "{what}: {given} is not a valid timeout; give a finite number of seconds from {} to {} \
         ({} h)",
        crate::timeout::MIN_TIMEOUT.as_secs_f64(),
        crate::timeout::MAX_TIMEOUT.as_secs(),
        crate::timeout::MAX_TIMEOUT.as_secs() / 3600
    )]
    BadTimeout {
        /// Whose timeout.
        what: String,
        /// The value given, as the caller wrote it.
        given: String,
    },
    /// NCCL cannot be loaded or lacks an entry point.
    #[error(transparent)]
    NcclUnavailable(NcclLoadError),
    /// An NCCL call failed or did not finish in time; the communicator was aborted (later
    /// uses give [`Error::Poisoned`]).
    #[error("{what}: {message}")]
    Nccl {
        /// The call (a trace statement, or what was being set up).
        what: String,
        /// NCCL's error, or how long it waited.
        message: String,
    },
    /// The NCCL communicator was aborted earlier (by the watchdog, or after a failed call): it
    /// runs nothing any more.
    #[error(
        "{what}: the NCCL communicator was aborted earlier and cannot be used again: {reason}"
    )]
    Poisoned {
        /// The call that was refused.
        what: String,
        /// Why the communicator was aborted: which collective, which ranks.
        reason: String,
    },
}

/// Why NCCL cannot be loaded ([`Error::NcclUnavailable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NcclLoadError {
    /// None of the library names tried could be opened.
    #[error(
        "cannot load NCCL ({}); it comes with the PyTorch wheel (nvidia/nccl/lib): set \
         THUNDER_NCCL_LIB to its libnccl.so.2",
        attempts(.tried)
    )]
    NotFound {
        /// Per name tried (`THUNDER_NCCL_LIB`, then `libnccl.so.2`, `libnccl.so`): the name and
        /// the loader's error.
        tried: Vec<(String, String)>,
    },
    /// The library lacks an entry point thunder calls.
    #[error("NCCL lacks {symbol}: {reason}")]
    MissingSymbol {
        /// The entry point (`ncclAllReduce`, ...).
        symbol: &'static str,
        /// The loader's error.
        reason: String,
    },
}

/// `name: error` per library tried, `; `-separated.
fn attempts(tried: &[(String, String)]) -> String {
    tried
        .iter()
        .map(|(name, error)| format!("{name}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error of the DDP and FSDP trace transforms.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Options that cannot work (what to change is in the message).
    #[error("{0}")]
    Options(String),
    /// The input trace does not have the form the transform needs.
    #[error("{0}")]
    Form(String),
    /// Building the new trace failed.
    #[error(transparent)]
    Ir(#[from] thunder_ir::IrError),
}

#[cfg(test)]
mod tests {
    use super::NcclLoadError;

    #[test]
    fn nccl_load_errors_list_what_was_tried() {
        let e = NcclLoadError::NotFound {
            tried: vec![
                ("libnccl.so.2".into(), "not found".into()),
                ("libnccl.so".into(), "no such file".into()),
            ],
        };
        assert_eq!(
            e.to_string(),
            "cannot load NCCL (libnccl.so.2: not found; libnccl.so: no such file); it comes with \
             the PyTorch wheel (nvidia/nccl/lib): set THUNDER_NCCL_LIB to its libnccl.so.2"
        );
        let e = NcclLoadError::MissingSymbol {
            symbol: "ncclAllReduce",
            reason: "undefined symbol".into(),
        };
        assert_eq!(e.to_string(), "NCCL lacks ncclAllReduce: undefined symbol");
    }
}
