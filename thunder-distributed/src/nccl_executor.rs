//! Runs `dist.*` ops on CUDA tensors through NCCL.
//!
//! A synchronous collective runs on PyTorch's current stream. An asynchronous one runs on a
//! communication stream of its own, after the current stream's work so far; its `dist.wait`
//! makes the current stream wait for it (the host never blocks), and keeps the input alive
//! until then (the caching allocator would otherwise hand its memory to the compute stream
//! while NCCL still reads it).
//!
//! A watchdog thread checks that every collective finishes within the communicator's timeout.
//! One that does not (a rank died or hangs) aborts the communicator, which makes NCCL's kernels
//! stop waiting for the missing peers, and poisons it with the reason (which collective, which
//! ranks are gone); it prints that reason once. The process goes on: every later collective or
//! wait on the communicator fails with [`crate::Error::Poisoned`], which a plan reports as its
//! error and Python raises. (It used to exit the process: under Python the interpreter vanished
//! with no exception.) The outputs of the collectives that were in flight hold undefined values.

use crate::nccl::{nccl_dtype, Communicator, RedOp};
use crate::timeline::driver;
use cudarc::driver::{result as drv, sys as dsys};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tch::{Device, Tensor};
use thunder_executors::cuda::{current_stream, enter_device, CudaError};
use thunder_executors::executor::{KArg, Outputs};
use thunder_executors::{Error as ExecError, Executor, Kernel, KernelError, RtValue};
use thunder_ir::{Attr, BoundSymbol, DistOp, Op, Trace};

struct Pending {
    /// Kept alive until the wait.
    _input: Tensor,
    done: usize,
}

struct Inner {
    comm: Arc<Communicator>,
    comm_stream: usize,
    /// Asynchronous collectives not yet waited for, by their output's data pointer.
    pending: Mutex<HashMap<usize, Pending>>,
    /// Every collective launched: its completion event, launch time and statement.
    inflight: Mutex<VecDeque<(usize, Instant, String)>>,
    /// Which ranks are gone, for the watchdog's message.
    liveness: Mutex<Option<crate::rendezvous::Liveness>>,
    /// Timing events of the collectives and waits, while a timeline is recorded.
    timeline: Mutex<Option<crate::timeline::Recording>>,
}

// SAFETY: the raw CUDA handles are plain identifiers usable from any thread with the device's
// context current; the maps are behind mutexes.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

/// The executor of `dist.*` ops for one rank.
#[derive(Clone)]
pub struct NcclExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NcclExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NcclExecutor({:?})", self.inner.comm)
    }
}

/// Why the NCCL executor could not start ([`NcclExecutor::new`]), or could not record or read
/// its timeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NcclExecutorError {
    /// A CUDA call failed: entering the device, making the communication stream, reading the
    /// current stream, a timing event.
    #[error(transparent)]
    Cuda(#[from] CudaError),
    /// The watchdog thread could not be started.
    #[error("cannot start the NCCL watchdog: {0}")]
    Watchdog(std::io::Error),
}

fn event() -> Result<dsys::CUevent, KernelError> {
    drv::event::create(dsys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
        .map_err(|e| KernelError(format!("cuEventCreate: {e:?}")))
}

/// The communication stream: non-blocking, at the device's highest priority, so that a
/// collective's kernels get SMs as soon as the compute kernels free some, rather than queueing
/// behind them while the compute stream waits for the collective (PyTorch FSDP2 does the
/// same). `THUNDER_NCCL_STREAM_PRIORITY=normal` makes it an ordinary stream (for comparison).
fn comm_stream() -> Result<dsys::CUstream, CudaError> {
    let normal = std::env::var("THUNDER_NCCL_STREAM_PRIORITY").is_ok_and(|v| v == "normal");
    let (mut least, mut greatest) = (0, 0);
    // SAFETY: out-pointers to locals; the device's context is current (enter_device).
    unsafe { dsys::cuCtxGetStreamPriorityRange(&mut least, &mut greatest) }
        .result()
        .map_err(driver("cuCtxGetStreamPriorityRange"))?;
    let mut s: dsys::CUstream = std::ptr::null_mut();
    let flags = dsys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32;
    let priority = if normal { least } else { greatest };
    // SAFETY: as above; the stream lives as long as the process (like the executor's).
    unsafe { dsys::cuStreamCreateWithPriority(&mut s, flags, priority) }
        .result()
        .map_err(driver("cuStreamCreateWithPriority"))?;
    Ok(s)
}

impl NcclExecutor {
    /// An executor over `comm`, with its communication stream and watchdog.
    pub fn new(comm: Arc<Communicator>) -> Result<Self, NcclExecutorError> {
        enter_device(comm.device())?;
        let s = comm_stream()?;
        let inner = Arc::new(Inner {
            comm,
            comm_stream: s as usize,
            pending: Default::default(),
            inflight: Default::default(),
            liveness: Default::default(),
            timeline: Default::default(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("thunder-nccl-watchdog".into())
            .spawn(move || watchdog(weak))
            .map_err(NcclExecutorError::Watchdog)?;
        Ok(NcclExecutor { inner })
    }

    /// Lets the watchdog name the ranks whose rendezvous connection closed.
    pub fn watch_peers(&self, liveness: crate::rendezvous::Liveness) {
        *self
            .inner
            .liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(liveness);
    }

    /// The communicator.
    pub fn communicator(&self) -> &Arc<Communicator> {
        &self.inner.comm
    }

    /// Starts recording when each collective is issued, starts and ends, and how long each
    /// wait holds the compute stream (timing events; a little host time per collective).
    /// [`NcclExecutor::finish_timeline`] reads them.
    pub fn start_timeline(&self) -> Result<(), NcclExecutorError> {
        let dev = self.inner.comm.device();
        enter_device(dev)?;
        let stream = current_stream(dev)?;
        let base = crate::timeline::mark(stream as usize)?;
        *self.lock_timeline() = Some(crate::timeline::Recording {
            base,
            collectives: Vec::new(),
            waits: Vec::new(),
        });
        Ok(())
    }

    /// Stops recording; waits for the recorded work and returns its timeline (None if no
    /// recording was started).
    pub fn finish_timeline(&self) -> Result<Option<crate::timeline::Timeline>, NcclExecutorError> {
        let rec = self.lock_timeline().take();
        Ok(rec.map(|r| r.read()).transpose()?)
    }

    fn lock_timeline(&self) -> std::sync::MutexGuard<'_, Option<crate::timeline::Recording>> {
        self.inner
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the watchdog aborts: `what` (a collective of rank `rank` of `world`) did not finish
/// within `timeout`; `gone`: the ranks whose rendezvous connection closed.
fn late_reason(rank: usize, world: usize, what: &str, timeout: Duration, gone: &[usize]) -> String {
    let who = match gone {
        [] => "another rank died or hangs (its log says why)".to_string(),
        [r] => format!("rank {r} is gone (its connection closed)"),
        rs => format!(
            "ranks {} are gone (their connections closed)",
            rs.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "rank {rank} of {world}: `{what}` did not finish within {:.0} s: {who}",
        timeout.as_secs_f64()
    )
}

/// Polls the collectives in flight; poisons the communicator when one is late, then stops.
fn watchdog(inner: Weak<Inner>) {
    let mut entered = false;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(inner) = inner.upgrade() else { return };
        if !entered {
            if enter_device(inner.comm.device()).is_err() {
                return;
            }
            entered = true;
        }
        if inner.comm.is_aborted() {
            return;
        }
        let timeout = inner.comm.timeout();
        let mut q = inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((ev, at, what)) = q.front() {
            // SAFETY: an event created by this executor and not yet destroyed.
            match unsafe { drv::event::query(*ev as dsys::CUevent) } {
                Ok(()) => {
                    // SAFETY: done with it.
                    let _ = unsafe { drv::event::destroy(*ev as dsys::CUevent) };
                    q.pop_front();
                }
                Err(_) if at.elapsed() > timeout => {
                    let gone = inner
                        .liveness
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .map(|l| l.gone())
                        .unwrap_or_default();
                    let reason = late_reason(
                        inner.comm.rank(),
                        inner.comm.world_size(),
                        what,
                        timeout,
                        &gone,
                    );
                    // The abort inside lets the stuck kernels, and a host waiting for them, go
                    // on; the poison makes the next use of the communicator say why.
                    inner.comm.poison(reason.clone());
                    eprintln!(
                        "thunder-distributed: {reason}; the NCCL communicator was aborted and \
                         its next use raises this error"
                    );
                    for (ev, _, _) in q.drain(..) {
                        // SAFETY: destruction is deferred until the (aborted) work completes.
                        let _ = unsafe { drv::event::destroy(ev as dsys::CUevent) };
                    }
                    return;
                }
                Err(_) => break,
            }
        }
    }
}

fn input<'a>(args: &thunder_executors::Args<'a>) -> Result<&'a Tensor, KernelError> {
    match args.get(0)? {
        KArg::Value(RtValue::Tensor(t)) => Ok(t),
        _ => Err(KernelError("a collective takes a tensor".into())),
    }
}

impl Executor for NcclExecutor {
    fn name(&self) -> &'static str {
        "nccl"
    }

    fn claims(&self, trace: &Trace, bsym: &BoundSymbol) -> bool {
        let Op::Dist(d) = bsym.op else { return false };
        let on_device = bsym
            .args
            .first()
            .and_then(|a| a.as_value())
            .is_some_and(|v| {
                trace.tensor(v).is_some_and(|t| {
                    t.device == thunder_ir::Device::Cuda(self.inner.comm.device() as _)
                        && nccl_dtype(t.dtype).is_some()
                })
            });
        on_device
            && (d == DistOp::Wait
                || d.world_size(&bsym.attrs) == Some(self.inner.comm.world_size()))
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> thunder_executors::Result<Kernel> {
        let statement = thunder_ir::printer::statement(trace, bsym);
        let bad = |m: &str| ExecError::Compile {
            executor: "nccl",
            statement: statement.clone(),
            message: m.to_string(),
        };
        let Op::Dist(op) = bsym.op else {
            return Err(bad("not a collective"));
        };
        let meta = bsym
            .args
            .first()
            .and_then(|a| a.as_value())
            .and_then(|v| trace.tensor(v))
            .ok_or_else(|| bad("the operand is not a tensor"))?;
        let dtype = nccl_dtype(meta.dtype).ok_or_else(|| bad("NCCL has no such dtype"))?;
        let out_shape: Vec<i64> = bsym
            .outputs
            .first()
            .and_then(|&o| trace.tensor(o))
            .map(|t| t.shape.sizes().iter().map(|&d| d as i64).collect())
            .ok_or_else(|| bad("no tensor output"))?;
        let reduction = match bsym.attrs.first() {
            Some(Attr::Str(s)) => RedOp::parse(s),
            _ => None,
        };
        let root = match bsym.attrs.first() {
            Some(Attr::Int(r)) => *r as usize,
            _ => 0,
        };
        let is_async = op.is_async(&bsym.attrs);
        let inner = Arc::clone(&self.inner);
        let dev = inner.comm.device();
        let kind = thunder_executors::convert::kind(meta.dtype);
        if matches!(op, DistOp::AllReduce | DistOp::ReduceScatter) && reduction.is_none() {
            return Err(bad("unknown reduction"));
        }
        Ok(Box::new(move |args| {
            let t = input(args)?;
            if t.device() != Device::Cuda(dev as usize) {
                return Err(KernelError(format!(
                    "{statement}: the tensor is on {:?}, this rank's NCCL communicator on cuda:{dev}",
                    t.device()
                )));
            }
            // A poisoned communicator (the watchdog aborted it) runs nothing, not even a wait
            // for a collective that was in flight: its output is undefined.
            inner
                .comm
                .check(&statement)
                .map_err(|e| KernelError(e.to_string()))?;
            let cur = current_stream(dev).map_err(KernelError::from)? as usize;
            if op == DistOp::Wait {
                let p = inner
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(t.data_ptr() as usize));
                if let Some(p) = p {
                    let mut tl = inner.timeline.lock().unwrap_or_else(|e| e.into_inner());
                    let reached = tl
                        .as_ref()
                        .map(|_| crate::timeline::mark(cur))
                        .transpose()
                        .map_err(KernelError::from)?;
                    // SAFETY: live stream and event handles.
                    unsafe {
                        drv::stream::wait_event(
                            cur as dsys::CUstream,
                            p.done as dsys::CUevent,
                            dsys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
                        )
                    }
                    .map_err(|e| KernelError(format!("cuStreamWaitEvent: {e:?}")))?;
                    if let (Some(rec), Some(reached)) = (tl.as_mut(), reached) {
                        let resumed = crate::timeline::mark(cur).map_err(KernelError::from)?;
                        rec.waits.push((statement.clone(), reached, resumed));
                    }
                    drop(tl);
                    // SAFETY: destruction is deferred until the event completes.
                    let _ = unsafe { drv::event::destroy(p.done as dsys::CUevent) };
                }
                let mut o = Outputs::new();
                o.push(RtValue::Tensor(t.shallow_clone()));
                return Ok(o);
            }
            let t = t.f_contiguous()?;
            let timed = inner
                .timeline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            let issued = timed
                .then(|| crate::timeline::mark(cur))
                .transpose()
                .map_err(KernelError::from)?;
            let out = Tensor::f_empty(out_shape.as_slice(), (kind, Device::Cuda(dev as usize)))?;
            let stream = if is_async {
                let ready = event()?;
                // SAFETY: live handles; the comm stream starts after the current stream's work.
                unsafe {
                    drv::event::record(ready, cur as dsys::CUstream)
                        .and_then(|_| {
                            drv::stream::wait_event(
                                inner.comm_stream as dsys::CUstream,
                                ready,
                                dsys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
                            )
                        })
                        .map_err(|e| KernelError(format!("ordering the streams: {e:?}")))?;
                    let _ = drv::event::destroy(ready);
                }
                inner.comm_stream
            } else {
                cur
            };
            let started = issued
                .map(|_| crate::timeline::mark(stream))
                .transpose()
                .map_err(KernelError::from)?;
            let n = t.numel();
            let (send, recv) = (t.data_ptr() as *const _, out.data_ptr());
            let s = stream as *mut std::ffi::c_void;
            let comm = &inner.comm;
            // SAFETY: contiguous CUDA tensors of the sizes the meta function computed, alive
            // until the collective completes (the input via `pending`, or stream order).
            unsafe {
                match op {
                    DistOp::AllReduce => comm.all_reduce(
                        send,
                        recv,
                        n,
                        dtype,
                        reduction.unwrap_or(RedOp::Sum),
                        s,
                        &statement,
                    ),
                    DistOp::AllGather => comm.all_gather(send, recv, n, dtype, s, &statement),
                    DistOp::ReduceScatter => comm.reduce_scatter(
                        send,
                        recv,
                        n / comm.world_size(),
                        dtype,
                        reduction.unwrap_or(RedOp::Sum),
                        s,
                        &statement,
                    ),
                    DistOp::Broadcast => comm.broadcast(send, recv, n, dtype, root, s, &statement),
                    DistOp::Wait => Ok(()),
                }
            }
            .map_err(|e| KernelError(e.to_string()))?;
            if let (Some(i), Some(st)) = (issued, started) {
                let ended = crate::timeline::mark(stream).map_err(KernelError::from)?;
                if let Some(rec) = inner
                    .timeline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    rec.collectives.push((statement.clone(), i, st, ended));
                }
            }
            let watched = event()?;
            // SAFETY: live handles.
            unsafe { drv::event::record(watched, stream as dsys::CUstream) }
                .map_err(|e| KernelError(format!("cuEventRecord: {e:?}")))?;
            inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back((watched as usize, Instant::now(), statement.clone()));
            if is_async {
                let done = event()?;
                // SAFETY: live handles.
                unsafe { drv::event::record(done, stream as dsys::CUstream) }
                    .map_err(|e| KernelError(format!("cuEventRecord: {e:?}")))?;
                inner
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        out.data_ptr() as usize,
                        Pending {
                            _input: t,
                            done: done as usize,
                        },
                    );
            }
            let mut o = Outputs::new();
            o.push(RtValue::Tensor(out));
            Ok(o)
        }))
    }
}

/// Joins the job's NCCL communicator: rank 0 makes the unique id and the rendezvous hands it
/// to the others. `device`: this rank's CUDA device (usually its local rank); `timeout`:
/// bounds the join and every collective (see [`crate::timeout`]).
pub fn communicator(
    rdv: &mut crate::Rendezvous,
    device: i32,
    timeout: Duration,
) -> crate::Result<Arc<Communicator>> {
    // Checked before the id goes out, so that no rank joins with a timeout the others refuse.
    crate::timeout::check("the NCCL communicator", timeout)?;
    let id = if rdv.rank() == 0 {
        crate::nccl::unique_id()?.internal.to_vec()
    } else {
        Vec::new()
    };
    let bytes = rdv.broadcast(&id, "the NCCL unique id")?;
    let mut uid = crate::nccl::UniqueId { internal: [0; 128] };
    if bytes.len() != 128 {
        return Err(crate::Error::Peer {
            rank: 0,
            what: format!("sent an NCCL unique id of {} bytes, not 128", bytes.len()),
        });
    }
    uid.internal.copy_from_slice(&bytes);
    Ok(Arc::new(Communicator::new(
        &uid,
        rdv.rank(),
        rdv.world_size(),
        device,
        timeout,
    )?))
}

#[cfg(test)]
mod tests {
    use super::late_reason;
    use std::time::Duration;

    #[test]
    fn the_watchdogs_reason_names_the_collective_and_the_ranks_that_are_gone() {
        let t = Duration::from_secs(15);
        let what = "t3 = dist.all_reduce(t2, 'sum', 2)";
        assert_eq!(
            late_reason(0, 2, what, t, &[1]),
            "rank 0 of 2: `t3 = dist.all_reduce(t2, 'sum', 2)` did not finish within 15 s: \
             rank 1 is gone (its connection closed)"
        );
        assert!(late_reason(0, 4, what, t, &[1, 3])
            .ends_with("ranks 1, 3 are gone (their connections closed)"));
        assert!(late_reason(2, 4, what, t, &[])
            .ends_with("another rank died or hangs (its log says why)"));
    }
}
