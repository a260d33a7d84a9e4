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
