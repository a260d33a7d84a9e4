//! Rust side of `csrc/shim.cpp`: libtorch entry points that tch 0.24 does not expose.

use crate::executor::KernelError;
use std::ffi::{c_char, c_void, CStr};
use tch::Tensor;

extern "C" {
    fn thunder_shim_free(message: *mut c_char);
    #[allow(clippy::too_many_arguments)]
    fn thunder_fused_adamw_(
        params: *const *const c_void,
        grads: *const *const c_void,
        exp_avgs: *const *const c_void,
        exp_avg_sqs: *const *const c_void,
        step: *const c_void,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn thunder_cuda_memory_stats(device: i32, out: *mut i64) -> *mut c_char;
    fn thunder_cuda_reset_peak_memory(device: i32) -> *mut c_char;
    fn thunder_clear_grad(t: *mut c_void) -> *mut c_char;
    fn thunder_cuda_empty_cache() -> *mut c_char;
}

/// `t.grad = None`: drops the gradient libtorch's autograd accumulated into `t` (what
/// `optimizer.zero_grad()` does), so its memory is free until the next backward.
pub fn clear_grad(t: &Tensor) -> Result<(), KernelError> {
    // SAFETY: `t` is a live tensor handle; the shim resets its grad field and catches every
    // C++ exception.
    check(
        unsafe { thunder_clear_grad(t.as_ptr() as *mut c_void) },
        "clearing a gradient",
    )
}

/// `torch.cuda.empty_cache()`: the caching allocator gives its unused blocks back to the device.
pub fn cuda_empty_cache() -> Result<(), KernelError> {
    // SAFETY: no pointers; errors come back as messages.
    check(
        unsafe { thunder_cuda_empty_cache() },
        "emptying the CUDA cache",
    )
}

/// The CUDA caching allocator's byte counts for one device (`torch.cuda.memory_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemoryStats {
    /// Bytes in live tensors now (`torch.cuda.memory_allocated`).
    pub allocated: i64,
    /// The most bytes in live tensors since the last reset (`torch.cuda.max_memory_allocated`).
    pub peak_allocated: i64,
    /// Bytes the allocator holds from the device now (`torch.cuda.memory_reserved`).
    pub reserved: i64,
    /// The most bytes it held since the last reset (`torch.cuda.max_memory_reserved`).
    pub peak_reserved: i64,
}

/// The caching allocator's statistics for CUDA device `device`. Errs when libtorch has no CUDA
/// allocator (a build or machine without CUDA).
pub fn cuda_memory_stats(device: usize) -> Result<CudaMemoryStats, KernelError> {
    let mut out = [0i64; 4];
    // SAFETY: `out` has the 4 slots the shim writes; errors come back as messages.
    check(
        unsafe { thunder_cuda_memory_stats(device as i32, out.as_mut_ptr()) },
        "CUDA memory statistics",
    )?;
    Ok(CudaMemoryStats {
        allocated: out[0],
        peak_allocated: out[1],
        reserved: out[2],
        peak_reserved: out[3],
    })
}

/// Resets the peak counts of [`cuda_memory_stats`] (`torch.cuda.reset_peak_memory_stats`).
pub fn cuda_reset_peak_memory(device: usize) -> Result<(), KernelError> {
    // SAFETY: no pointers; errors come back as messages.
    check(
        unsafe { thunder_cuda_reset_peak_memory(device as i32) },
        "resetting CUDA peak memory statistics",
    )
}

/// A shim call's result: `Ok` for NULL, the message otherwise.
fn check(message: *mut c_char, what: &str) -> Result<(), KernelError> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL result is a NUL-terminated string from malloc, ours to free.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    unsafe { thunder_shim_free(message) };
    Err(KernelError(format!("{what}: {text}")))
}

/// AdamW hyperparameters, as `torch._fused_adamw_` takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwHyper {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// `torch._fused_adamw_`: one AdamW step that updates `params`, `exp_avgs` and `exp_avg_sqs` in
/// place. Every tensor has one dtype and one device (contiguous, as PyTorch's fused kernels want);
/// `step` (0-dim float32 on the same device) holds the step number, already counted.
pub fn fused_adamw_(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    step: &Tensor,
    h: AdamwHyper,
) -> Result<(), KernelError> {
    let n = params.len();
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len()] != [n; 3] {
        return Err(KernelError(format!(
            "_fused_adamw_: {n} params but {} grads, {} exp_avgs, {} exp_avg_sqs",
            grads.len(),
            exp_avgs.len(),
            exp_avg_sqs.len()
        )));
    }
    let ptrs = |ts: &[&Tensor]| -> Vec<*const c_void> {
        ts.iter().map(|t| t.as_ptr() as *const c_void).collect()
    };
    let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    // SAFETY: every pointer is a live `at::Tensor*` borrowed for the call; the shim copies the
    // handles (reference counts) and catches every C++ exception.
    let message = unsafe {
        thunder_fused_adamw_(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            step.as_ptr() as *const c_void,
            n,
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
        )
    };
    check(message, "torch._fused_adamw_")
}
