//! Rust side of `csrc/shim.cpp`: libtorch entry points that tch 0.24 does not expose.

use crate::executor::KernelError;
use std::ffi::{c_char, c_void, CStr, CString};
use tch::Tensor;
use thunder_ir::ops::aten::{AtenArg, AtenCall};

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
    fn thunder_cuda_graph_new(
        device: i32,
        out: *mut *mut c_void,
        side: *mut *mut c_void,
        current: *mut *mut c_void,
    ) -> *mut c_char;
    fn thunder_cuda_graph_start(graph: *mut c_void) -> *mut c_char;
    fn thunder_cuda_graph_end(graph: *mut c_void) -> *mut c_char;
    fn thunder_cuda_graph_replay(graph: *mut c_void) -> *mut c_char;
    fn thunder_cuda_graph_free(graph: *mut c_void);
    fn thunder_aten_find(
        name: *const c_char,
        overload: *const c_char,
        nargs: usize,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn thunder_aten_free(op: *mut c_void);
    #[allow(clippy::too_many_arguments)]
    fn thunder_aten_call(
        op: *const c_void,
        args: *const CAtenArg,
        nargs: usize,
        tensors: *const *const c_void,
        ntensors: usize,
        outs: *mut *mut c_void,
        max_outs: usize,
        nouts: *mut usize,
    ) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn thunder_aten_vjp(
        op: *const c_void,
        args: *const CAtenArg,
        nargs: usize,
        tensors: *const *const c_void,
        ntensors: usize,
        ct_index: *const i64,
        cts: *const *const c_void,
        ncts: usize,
        wrt: *const i64,
        nwrt: usize,
        grads: *mut *mut c_void,
    ) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn thunder_sdpa_backward(
        g: *const c_void,
        q: *const c_void,
        k: *const c_void,
        v: *const c_void,
        is_causal: i32,
        scale: f64,
        has_scale: i32,
        handled: *mut i32,
        dq: *mut *mut c_void,
        dk: *mut *mut c_void,
        dv: *mut *mut c_void,
    ) -> *mut c_char;
}

/// The gradients of `scaled_dot_product_attention(q, k, v, None, 0.0, is_causal, scale)` with
/// respect to `q`, `k` and `v` for the output gradient `g`, through the fused attention kernel
/// PyTorch picks for these inputs (cuDNN, flash or memory-efficient) and its own backward,
/// without autograd (see `thunder_sdpa_backward` in csrc/shim.cpp). `Ok(None)` when no fused
/// kernel applies (the math path, a head dim that is not a multiple of 8, not 4-d): nothing was
/// computed then.
pub fn sdpa_backward(
    g: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    is_causal: bool,
    scale: Option<f64>,
) -> Result<Option<[Tensor; 3]>, KernelError> {
    let mut handled = 0i32;
    let mut out = [std::ptr::null_mut::<c_void>(); 3];
    let [dq, dk, dv] = &mut out;
    // SAFETY: live `at::Tensor*` handles borrowed for the call and out-pointers to locals; the
    // shim catches every C++ exception and sets the outputs only when it sets `handled`.
    check(
        unsafe {
            thunder_sdpa_backward(
                g.as_ptr() as *const c_void,
                q.as_ptr() as *const c_void,
                k.as_ptr() as *const c_void,
                v.as_ptr() as *const c_void,
                is_causal as i32,
                scale.unwrap_or(0.0),
                scale.is_some() as i32,
                &mut handled,
                dq,
                dk,
                dv,
            )
        },
        "the attention backward",
    )?;
    if handled == 0 {
        return Ok(None);
    }
    // SAFETY: three `new at::Tensor` from the shim, owned from here (tch frees them).
    Ok(Some(out.map(|p| unsafe { Tensor::from_ptr(p.cast()) })))
}

/// A CUDA graph (libtorch's `at::cuda::CUDAGraph`): the work some code launched on one device,
/// captured once and replayed with one launch. Allocations made during the capture come from
/// the graph's private pool in libtorch's caching allocator, so the tensors the captured code
/// made are the ones every replay writes again.
pub struct CudaGraph {
    ptr: *mut c_void,
}

// SAFETY: the graph is a heap object of the shim; replays may come from any thread with the
// device's context (libtorch sets it).
unsafe impl Send for CudaGraph {}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaGraph({:p})", self.ptr)
    }
}

impl CudaGraph {
    /// Captures what `f` launches on `device`. During the capture a side stream is libtorch's
    /// current stream (so kernels launched on the current stream, libtorch's and the fusion
    /// executor's, are captured), ordered after the work already on the current stream.
    /// Nothing runs: replay to compute. An error from `f`, or a capture that CUDA ended (an
    /// operation that cannot be captured, such as a host synchronization), is returned with
    /// the reason; the graph is then dropped.
    pub fn capture<T, E: std::fmt::Display>(
        device: usize,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<(CudaGraph, T), KernelError> {
        let (mut ptr, mut side, mut current) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        // SAFETY: out-pointers to locals; errors come back as messages.
        check(
            unsafe { thunder_cuda_graph_new(device as i32, &mut ptr, &mut side, &mut current) },
            "preparing a CUDA graph capture",
        )?;
        let graph = CudaGraph { ptr };
        // The side stream starts after the work already on the current stream.
        order_streams(device, side, current)?;
        // SAFETY: a graph not yet capturing.
        check(
            unsafe { thunder_cuda_graph_start(graph.ptr) },
            "starting a CUDA graph capture",
        )?;
        let result = f();
        // SAFETY: a graph that is capturing; ending it restores the current stream.
        let ended = check(
            unsafe { thunder_cuda_graph_end(graph.ptr) },
            "ending the CUDA graph capture",
        );
        match (result, ended) {
            (Ok(v), Ok(())) => Ok((graph, v)),
            (Err(e), _) => Err(KernelError(format!("while capturing a CUDA graph: {e}"))),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Replays the captured work on the current stream.
    pub fn replay(&self) -> Result<(), KernelError> {
        // SAFETY: a captured graph; errors come back as messages.
        check(
            unsafe { thunder_cuda_graph_replay(self.ptr) },
            "replaying a CUDA graph",
        )
    }
}

/// Makes stream `side` wait for the work already on stream `current` (both of `device`).
#[cfg(feature = "cuda")]
fn order_streams(
    device: usize,
    side: *mut c_void,
    current: *mut c_void,
) -> Result<(), KernelError> {
    crate::cuda::enter_device(device as i32)?;
    // SAFETY: live stream handles of this device, whose context was just made current.
    unsafe { crate::cuda::wait_for(side.cast(), current.cast(), "ordering the capture stream") }?;
    Ok(())
}

/// Without cudarc nothing here can order the streams, so there is no capture: callers such as
/// `graphs::GraphedPlan` then run uncaptured, with this reason.
#[cfg(not(feature = "cuda"))]
fn order_streams(_: usize, _: *mut c_void, _: *mut c_void) -> Result<(), KernelError> {
    Err(KernelError(
        "capturing a CUDA graph needs thunder-executors' `cuda` feature (cudarc orders the \
         capture stream), which this build leaves out"
            .to_string(),
    ))
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: ours, freed once.
        unsafe { thunder_cuda_graph_free(self.ptr) }
    }
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

/// `ThunderAtenArg` of csrc/shim.cpp: one argument of an ATen call.
#[repr(C)]
struct CAtenArg {
    kind: i32,
    i: i64,
    d: f64,
    ints: *const i64,
    len: usize,
    str: *const c_char,
}

/// libtorch's `c10::ScalarType` number of a dtype.
fn scalar_type(d: thunder_ir::DType) -> i64 {
    use thunder_ir::DType as D;
    match d {
        D::U8 => 0,
        D::I8 => 1,
        D::I16 => 2,
        D::I32 => 3,
        D::I64 => 4,
        D::F16 => 5,
        D::F32 => 6,
        D::F64 => 7,
        D::C64 => 9,
        D::C128 => 10,
        D::Bool => 11,
        D::BF16 => 15,
        D::F8E5M2 => 23,
        D::F8E4M3FN => 24,
    }
}

/// The C form of `args`; the vectors it points into are `lists` (kept alive by the caller).
fn c_args(args: &[AtenArg], lists: &mut Vec<Vec<i64>>) -> Vec<CAtenArg> {
    // Fill `lists` first: the pointers taken below must not move.
    for a in args {
        match a {
            AtenArg::Ints(v) => lists.push(v.clone()),
            AtenArg::Tensors(l) => {
                lists.push(l.iter().map(|t| t.map_or(-1, |i| i as i64)).collect());
            }
            _ => {}
        }
    }
    let mut next = lists.iter();
    args.iter()
        .map(|a| {
            let mut c = CAtenArg {
                kind: 0,
                i: 0,
                d: 0.0,
                ints: std::ptr::null(),
                len: 0,
                str: std::ptr::null(),
            };
            match a {
                AtenArg::None => {}
                AtenArg::Tensor(i) => (c.kind, c.i) = (1, *i as i64),
                AtenArg::Tensors(_) | AtenArg::Ints(_) => {
                    let l = next.next().map_or(&[][..], |l| l.as_slice());
                    c.kind = if matches!(a, AtenArg::Ints(_)) { 7 } else { 2 };
                    (c.ints, c.len) = (l.as_ptr(), l.len());
                }
                AtenArg::Bool(b) => (c.kind, c.i) = (3, *b as i64),
                AtenArg::Int(v) => (c.kind, c.i) = (4, *v),
                AtenArg::Float(f) => (c.kind, c.d) = (5, *f),
                AtenArg::Str(s) => (c.kind, c.str, c.len) = (6, s.as_ptr().cast(), s.len()),
                AtenArg::DType(d) => (c.kind, c.i) = (8, scalar_type(*d)),
                // libtorch keeps a `c10::MemoryFormat` argument as its int.
                AtenArg::MemoryFormat(m) => (c.kind, c.i) = (4, *m as i64),
                AtenArg::Wrapped(n) => match **n {
                    AtenArg::Float(f) => (c.kind, c.d) = (10, f),
                    AtenArg::Bool(b) => (c.kind, c.i) = (11, b as i64),
                    AtenArg::Int(v) => (c.kind, c.i) = (9, v),
                    // The parser wraps numbers only; anything else reaches ATen as None.
                    _ => {}
                },
            }
            c
        })
        .collect()
}

/// An ATen operator found in libtorch's dispatcher for a call (`thunder_aten_find`): looked up
/// and checked once, when a plan is compiled, then called by handle.
pub struct AtenOp {
    ptr: *mut c_void,
    call: AtenCall,
    /// The call's arguments in C form, built once: they point into `lists` and into `call`'s
    /// strings, heap buffers that neither move nor change while this lives.
    args: Vec<CAtenArg>,
    /// Only kept alive (`args` points into it).
    _lists: Vec<Vec<i64>>,
}

// SAFETY: a `c10::OperatorHandle` is an immutable pointer into the dispatcher's operator table,
// which lives as long as the process and is safe to call from any thread; the C arguments are
// read-only pointers into buffers this value owns and never changes.
unsafe impl Send for AtenOp {}
unsafe impl Sync for AtenOp {}

impl std::fmt::Debug for AtenOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtenOp(aten.{})", self.call.op)
    }
}

impl Drop for AtenOp {
    fn drop(&mut self) {
        // SAFETY: the handle came from `thunder_aten_find` and is freed once, here.
        unsafe { thunder_aten_free(self.ptr) }
    }
}

impl AtenOp {
    /// Finds `call`'s operator, checking that it takes as many arguments as the call gives: an
    /// operator this libtorch lacks, or another schema, is an error now rather than at a run.
    pub fn find(call: &AtenCall) -> Result<AtenOp, KernelError> {
        let (name, overload) = call.name_and_overload();
        let c = |s: &str| {
            CString::new(s)
                .map_err(|_| KernelError(format!("the ATen operator name {s:?} has a NUL")))
        };
        let (name, overload) = (c(name)?, c(overload)?);
        let mut ptr = std::ptr::null_mut::<c_void>();
        // SAFETY: NUL-terminated strings alive for the call and an out-pointer to a local; the
        // shim catches every C++ exception and sets `ptr` only on success.
        check(
            unsafe {
                thunder_aten_find(name.as_ptr(), overload.as_ptr(), call.args.len(), &mut ptr)
            },
            &format!("aten.{}", call.op),
        )?;
        let call = call.clone();
        let mut lists = Vec::new();
        let args = c_args(&call.args, &mut lists);
        Ok(AtenOp {
            ptr,
            call,
            args,
            _lists: lists,
        })
    }

    /// Runs the call over `tensors` through libtorch's dispatcher (autocast excluded), as
    /// `torch.ops.aten.<op>(...)` does; at most `max_outs` results. A result that shares memory
    /// with an operand is a copy.
    pub fn call(&self, tensors: &[&Tensor], max_outs: usize) -> Result<Vec<Tensor>, KernelError> {
        let args = &self.args;
        let ts = ptrs(tensors);
        let mut outs = vec![std::ptr::null_mut::<c_void>(); max_outs];
        let mut n = 0usize;
        // SAFETY: `self.ptr` is a live handle; `args` points into `self._lists` and the call's
        // strings, alive and unmoved while `self` lives; `ts` are live `at::Tensor*` handles; `outs`
        // has room for `max_outs` results. The shim catches every C++ exception and writes `n`
        // results only on success.
        check(
            unsafe {
                thunder_aten_call(
                    self.ptr,
                    args.as_ptr(),
                    args.len(),
                    ts.as_ptr(),
                    ts.len(),
                    outs.as_mut_ptr(),
                    max_outs,
                    &mut n,
                )
            },
            &format!("aten.{}", self.call.op),
        )?;
        // SAFETY: `n` new `at::Tensor` from the shim, owned from here (tch frees them).
        Ok(outs[..n]
            .iter()
            .map(|&p| unsafe { Tensor::from_ptr(p.cast()) })
            .collect())
    }

    /// The gradients of the call over `tensors` with respect to the operands listed in `wrt`,
    /// given the cotangents `cts` of the outputs listed in `ct_index`: ATen's autograd formula,
    /// from the call run again with autograd on (see `thunder_aten_vjp` in csrc/shim.cpp).
    pub fn vjp(
        &self,
        tensors: &[&Tensor],
        ct_index: &[usize],
        cts: &[&Tensor],
        wrt: &[usize],
    ) -> Result<Vec<Tensor>, KernelError> {
        if ct_index.len() != cts.len() {
            return Err(KernelError(format!(
                "aten.{}'s VJP: {} cotangents for {} outputs",
                self.call.op,
                cts.len(),
                ct_index.len()
            )));
        }
        let args = &self.args;
        let ts = ptrs(tensors);
        let gs = ptrs(cts);
        let cti: Vec<i64> = ct_index.iter().map(|&i| i as i64).collect();
        let w: Vec<i64> = wrt.iter().map(|&i| i as i64).collect();
        let mut grads = vec![std::ptr::null_mut::<c_void>(); wrt.len()];
        // SAFETY: as in `call`; `grads` has room for one result per `wrt` entry, all written on
        // success.
        check(
            unsafe {
                thunder_aten_vjp(
                    self.ptr,
                    args.as_ptr(),
                    args.len(),
                    ts.as_ptr(),
                    ts.len(),
                    cti.as_ptr(),
                    gs.as_ptr(),
                    gs.len(),
                    w.as_ptr(),
                    w.len(),
                    grads.as_mut_ptr(),
                )
            },
            &format!("aten.{}'s VJP", self.call.op),
        )?;
        // SAFETY: `wrt.len()` new `at::Tensor` from the shim, owned from here.
        Ok(grads
            .into_iter()
            .map(|p| unsafe { Tensor::from_ptr(p.cast()) })
            .collect())
    }
}

fn ptrs(ts: &[&Tensor]) -> Vec<*const c_void> {
    ts.iter().map(|t| t.as_ptr() as *const c_void).collect()
}
