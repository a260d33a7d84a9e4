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
