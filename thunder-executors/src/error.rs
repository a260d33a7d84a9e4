//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libtorch rejected an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A device was asked for that this process cannot use.
    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable {
        /// The device, as tch prints it (`Cuda(1)`).
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A device computed a wrong result: a broken libtorch install or driver.
    #[error("device {device} computed {got:?} for {op}, expected {expected:?}")]
    WrongResult {
        /// The device, as tch prints it.
        device: String,
        /// The operation that was checked.
        op: &'static str,
        /// What it should have computed.
        expected: Vec<f32>,
        /// What it computed.
        got: Vec<f32>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
