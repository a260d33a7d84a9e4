//! Launches: a loaded function with its parameters on a stream.

use crate::executor::KernelError;
use cudarc::driver::{result as drv, sys as dsys};
use std::ffi::c_void;
use tch::Tensor;

/// Launches `func` (from a [`super::Module`]) on `stream` with `params`, one 8-byte slot per kernel
/// parameter (pointers, `long long`, `double`).
///
/// # Safety
/// `params` must match the kernel's parameter list, and every pointer in it must stay valid
/// until the launch has run (tensors kept alive until queued: libtorch's allocator reuses memory
/// in stream order).
pub(crate) unsafe fn launch(
    func: usize,
    grid: u32,
    block: u32,
    stream: dsys::CUstream,
    params: &mut [u64],
    name: &str,
) -> std::result::Result<(), KernelError> {
    let mut ptrs: Vec<*mut c_void> = params
        .iter_mut()
        .map(|s| s as *mut u64 as *mut c_void)
        .collect();
    // SAFETY: the caller's contract.
    unsafe { launch_raw(func, grid, block, stream, &mut ptrs, name) }
}

/// Launches `func` with `params`, the address of each kernel parameter (for parameters that are
/// not 8-byte values, such as a struct passed by value).
///
/// # Safety
/// As [`launch`]: each address points to a value laid out as the kernel's parameter of that
/// position, and every device pointer in them stays valid until the launch has run.
pub(crate) unsafe fn launch_raw(
    func: usize,
    grid: u32,
    block: u32,
    stream: dsys::CUstream,
    params: &mut [*mut c_void],
    name: &str,
) -> std::result::Result<(), KernelError> {
    // SAFETY: the caller's contract.
    unsafe {
        drv::launch_kernel(
            func as dsys::CUfunction,
            (grid, 1, 1),
            (block, 1, 1),
            0,
            stream,
            params,
        )
    }
    .map_err(|err| KernelError(format!("cuLaunchKernel({name}): {err:?}")))
}

/// The CUDA device index of a tensor, or an error naming `what` when it is not on CUDA.
pub(crate) fn cuda_index(t: &Tensor, what: &str) -> std::result::Result<i32, KernelError> {
    match t.device() {
        tch::Device::Cuda(i) => Ok(i as i32),
        other => Err(KernelError(format!(
            "{what} must be a CUDA tensor, it is on {other:?}"
        ))),
    }
}
