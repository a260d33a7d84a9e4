//! Streams: PyTorch's current stream of a device (from libtorch's C shim), which every launch
//! and copy of this crate is ordered on; device-to-device copies and the ordering of one stream
//! after another.

use super::CudaError;
use cudarc::driver::{result as drv, sys as dsys};
use std::ffi::c_void;
use std::sync::OnceLock;

type StreamFn = unsafe extern "C" fn(i32, *mut *mut c_void) -> i32;

/// PyTorch's current stream on device `index` (libtorch_cuda's `aoti_torch_get_current_cuda_stream`).
pub fn current_stream(index: i32) -> Result<dsys::CUstream, CudaError> {
    static F: OnceLock<Result<StreamFn, CudaError>> = OnceLock::new();
    let f = F
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_LAZY};
            // glibc's value (libloading does not export it).
            const RTLD_NOLOAD: std::ffi::c_int = 4;
            const NAME: &[u8] = b"aoti_torch_get_current_cuda_stream\0";
            // In a binary linked with libtorch_cuda the symbol is global; in a Python extension,
            // `import torch` loaded libtorch_cuda with RTLD_LOCAL, so ask for that library by
            // name (already loaded: RTLD_NOLOAD) and never unload it.
            let this = Library::this();
            // SAFETY: the symbol has this signature in torch/csrc/inductor/aoti_torch/c/shim.h.
            if let Ok(f) = unsafe { this.get::<StreamFn>(NAME) } {
                return Ok(*f);
            }
            // SAFETY: opening an already loaded library runs no initializers.
            let lib = unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_LAZY | RTLD_NOLOAD) }
                .map_err(|e| CudaError::TorchCudaNotLoaded(e.to_string()))?;
            // SAFETY: as above.
            let f = unsafe { lib.get::<StreamFn>(NAME) }
                .map(|s| *s)
                .map_err(|e| CudaError::StreamEntryNotLoaded(e.to_string()))?;
            std::mem::forget(lib);
            Ok(f)
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let mut s: *mut c_void = std::ptr::null_mut();
    // SAFETY: a valid out pointer.
    let rc = unsafe { f(index, &mut s) };
    if rc != 0 {
        return Err(CudaError::CurrentStream {
            device: index,
            code: rc,
        });
    }
    Ok(s as dsys::CUstream)
}

/// Queues a copy of `bytes` bytes from device address `src` to device address `dst` on
/// `stream` (`cuMemcpyDtoDAsync`).
///
/// # Safety
/// Both addresses are live allocations of at least `bytes` bytes on the device of `stream`
/// (its context current), kept alive until the copy has run (in stream order).
pub(crate) unsafe fn copy_async(
    dst: u64,
    src: u64,
    bytes: usize,
    stream: dsys::CUstream,
) -> Result<(), CudaError> {
    // SAFETY: the caller's contract.
    unsafe { drv::memcpy_dtod_async(dst, src, bytes, stream) }
        .map_err(CudaError::driver("cuMemcpyDtoDAsync"))
}

/// Makes stream `waiting` wait for the work already queued on stream `on` (through an event);
/// a failure to order them is reported as `what`.
///
/// # Safety
/// Both are live streams of the device whose context is current.
pub(crate) unsafe fn wait_for(
    waiting: dsys::CUstream,
    on: dsys::CUstream,
    what: &str,
) -> Result<(), CudaError> {
    let ev = drv::event::create(dsys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
        .map_err(CudaError::driver("cuEventCreate"))?;
    // SAFETY: the caller's streams and an event just made; the event is destroyed whether or
    // not recording and waiting worked (destroying it after the wait is enqueued is allowed: the
    // driver releases it once the wait is done).
    unsafe {
        let r = drv::event::record(ev, on).and_then(|_| {
            drv::stream::wait_event(waiting, ev, dsys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT)
        });
        let _ = drv::event::destroy(ev);
        r.map_err(CudaError::driver(what))
    }
}
