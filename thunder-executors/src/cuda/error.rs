//! What can go wrong in the CUDA runtime.

use crate::executor::KernelError;
use cudarc::driver::DriverError;

/// An error of the CUDA runtime: finding or running NVRTC, the driver, PyTorch's streams.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// NVRTC is not on the loader path or under any of the folders searched.
    #[error(
        "NVRTC (libnvrtc.so.13) was not found on the loader path or under {searched}; set THUNDER_CUDA_HOME to a CUDA 13 installation"
    )]
    NvrtcNotFound {
        /// The folders searched, comma-separated.
        searched: String,
    },
    /// The CUDA headers are under none of the folders searched.
    #[error(
        "the CUDA headers (cuda_bf16.h) were not found under {searched}; set THUNDER_CUDA_HOME"
    )]
    HeadersNotFound {
        /// The folders searched, comma-separated.
        searched: String,
    },
    /// NVRTC rejected a source.
    #[error(
        "NVRTC could not compile a generated kernel:\n{log}\n--- source ---\n{numbered_source}"
    )]
    Compile {
        /// NVRTC's log.
        log: String,
        /// The source, each line with its number.
        numbered_source: String,
    },
    /// A CUDA driver call failed.
    #[error("{call}: {error:?}")]
    Driver {
        /// The call (`cuInit`, `cuModuleGetFunction(name)`, ...).
        call: String,
        /// The driver's error.
        error: DriverError,
    },
    /// A device attribute could not be read.
    #[error("{0:?}")]
    Attribute(DriverError),
    /// libtorch_cuda, whose current-stream entry point the launches need, is not loaded.
    #[error("libtorch_cuda is not loaded: {0}")]
    TorchCudaNotLoaded(String),
    /// libtorch_cuda is loaded without `aoti_torch_get_current_cuda_stream`.
    #[error("libtorch_cuda's aoti_torch_get_current_cuda_stream is not loaded: {0}")]
    StreamEntryNotLoaded(String),
    /// libtorch could not say which stream is current on a device.
    #[error("aoti_torch_get_current_cuda_stream({device}) failed ({code})")]
    CurrentStream {
        /// The device index.
        device: i32,
        /// libtorch's error code.
        code: i32,
    },
    /// A loaded module lacks one of its functions.
    #[error("a region module lacks a {}function", if *.vector { "vector " } else { "" })]
    MissingFunction {
        /// Whether the missing function is a vector variant.
        vector: bool,
    },
    /// A cache's lock was poisoned by a thread that panicked.
    #[error("{0}")]
    Poisoned(String),
    /// A source or a function name holds a NUL byte.
    #[error(transparent)]
    Nul(#[from] std::ffi::NulError),
}

impl CudaError {
    /// A failed driver call, with `call` saying which.
    pub(crate) fn driver(call: impl Into<String>) -> impl FnOnce(DriverError) -> CudaError {
        let call = call.into();
        move |error| CudaError::Driver { call, error }
    }
}

impl<T> From<std::sync::PoisonError<T>> for CudaError {
    fn from(e: std::sync::PoisonError<T>) -> Self {
        CudaError::Poisoned(e.to_string())
    }
}

impl From<CudaError> for KernelError {
    fn from(e: CudaError) -> Self {
        KernelError(e.to_string())
    }
}
