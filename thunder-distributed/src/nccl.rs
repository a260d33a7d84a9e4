//! NCCL, loaded at run time: the copy libtorch_cuda already loaded (the PyTorch wheel's
//! `nvidia/nccl/lib/libnccl.so.2`), or `THUNDER_NCCL_LIB`.
//!
//! cudarc's NCCL loader looks for `libnccl.so` and `libnccl.so.<cuda major>`, never for the
//! wheel's `libnccl.so.2`, so this module declares the dozen entry points it needs itself.
//!
//! Communicators are non-blocking (`blocking = 0`): initialization and every call are polled
//! against a deadline, and a communicator that does not finish in time is aborted, so a dead
//! peer ends the run with an error instead of a hang.
//!
//! An aborted communicator is *poisoned*: it keeps the reason (which call, which ranks), and
//! every later call returns [`Error::Poisoned`] with it, so a Python caller gets an exception
//! rather than a vanished process or a hang.

use crate::error::{Error, NcclLoadError, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `ncclResult_t`
type NcclResult = c_int;
const SUCCESS: NcclResult = 0;
const IN_PROGRESS: NcclResult = 7;

/// NCCL's unique id: 128 opaque bytes rank 0 makes and every rank needs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UniqueId {
    /// The bytes.
    pub internal: [u8; 128],
}

/// `ncclConfig_t` of NCCL 2.28 (`ncclConfig_v22800`).
#[repr(C)]
struct Config {
    size: usize,
    magic: u32,
    version: u32,
    blocking: c_int,
    cga_cluster_size: c_int,
    min_ctas: c_int,
    max_ctas: c_int,
    net_name: *const c_char,
    split_share: c_int,
    traffic_class: c_int,
    comm_name: *const c_char,
    collnet_enable: c_int,
    cta_policy: c_int,
    shrink_share: c_int,
    nvls_ctas: c_int,
    n_channels_per_net_peer: c_int,
    nvlink_centric_sched: c_int,
}

impl Config {
    /// `NCCL_CONFIG_INITIALIZER` (every int "undefined"), non-blocking.
    fn non_blocking() -> Self {
        const UNDEF: c_int = i32::MIN;
        Config {
            size: std::mem::size_of::<Config>(),
            magic: 0xcafe_beef,
            version: 22809,
            blocking: 0,
            cga_cluster_size: UNDEF,
            min_ctas: UNDEF,
            max_ctas: UNDEF,
            net_name: std::ptr::null(),
            split_share: UNDEF,
            traffic_class: UNDEF,
            comm_name: std::ptr::null(),
            collnet_enable: UNDEF,
            cta_policy: UNDEF,
            shrink_share: UNDEF,
            nvls_ctas: UNDEF,
            n_channels_per_net_peer: UNDEF,
            nvlink_centric_sched: UNDEF,
        }
    }
}

type Comm = *mut c_void;
type Stream = *mut c_void;

#[allow(clippy::type_complexity)]
struct Lib {
    get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> NcclResult,
    init_rank_config:
        unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int, *mut Config) -> NcclResult,
    get_async_error: unsafe extern "C" fn(Comm, *mut NcclResult) -> NcclResult,
    abort: unsafe extern "C" fn(Comm) -> NcclResult,
    error_string: unsafe extern "C" fn(NcclResult) -> *const c_char,
    get_version: unsafe extern "C" fn(*mut c_int) -> NcclResult,
    all_reduce: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        Comm,
        Stream,
    ) -> NcclResult,
    all_gather:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, Comm, Stream) -> NcclResult,
    reduce_scatter: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        Comm,
        Stream,
    ) -> NcclResult,
    broadcast: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        Comm,
        Stream,
    ) -> NcclResult,
}

fn lib() -> Result<&'static Lib> {
    load().map_err(|e| Error::NcclUnavailable(e.clone()))
}

fn load() -> std::result::Result<&'static Lib, &'static NcclLoadError> {
    static LIB: OnceLock<std::result::Result<Lib, NcclLoadError>> = OnceLock::new();
    LIB.get_or_init(|| {
        use libloading::os::unix::{Library, RTLD_LAZY};
        let names: Vec<String> = std::env::var("THUNDER_NCCL_LIB")
            .ok()
            .into_iter()
            .chain(["libnccl.so.2".to_string(), "libnccl.so".to_string()])
            .collect();
        let mut errors = Vec::new();
        let mut found = None;
        for n in &names {
            // SAFETY: loading NCCL runs its (benign) initializers once.
            match unsafe { Library::open(Some(n.as_str()), RTLD_LAZY) } {
                Ok(l) => {
                    found = Some(l);
                    break;
                }
                Err(e) => errors.push((n.clone(), e.to_string())),
            }
        }
        let l = found.ok_or(NcclLoadError::NotFound { tried: errors })?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the signatures are NCCL 2.28's (nccl.h).
                *unsafe { l.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
                    NcclLoadError::MissingSymbol {
                        symbol: $name,
                        reason: e.to_string(),
                    }
                })?
            };
        }
        let lib = Lib {
            get_unique_id: sym!("ncclGetUniqueId"),
            init_rank_config: sym!("ncclCommInitRankConfig"),
            get_async_error: sym!("ncclCommGetAsyncError"),
            abort: sym!("ncclCommAbort"),
            error_string: sym!("ncclGetErrorString"),
            get_version: sym!("ncclGetVersion"),
            all_reduce: sym!("ncclAllReduce"),
            all_gather: sym!("ncclAllGather"),
            reduce_scatter: sym!("ncclReduceScatter"),
            broadcast: sym!("ncclBroadcast"),
        };
        // The library stays loaded for the process's lifetime.
        std::mem::forget(l);
        Ok(lib)
    })
    .as_ref()
}

fn describe(rc: NcclResult) -> String {
    let Ok(l) = load() else {
        return format!("NCCL error {rc}");
    };
    // SAFETY: NCCL returns a static string for every result code.
    let s = unsafe { (l.error_string)(rc) };
    if s.is_null() {
        format!("NCCL error {rc}")
    } else {
        // SAFETY: a NUL-terminated static string.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}

/// NCCL's version as `major.minor.patch`.
pub fn version() -> Result<String> {
    let l = lib()?;
    let mut v: c_int = 0;
    // SAFETY: a valid out pointer.
    let rc = unsafe { (l.get_version)(&mut v) };
    if rc != SUCCESS {
        return Err(Error::Nccl {
            what: "ncclGetVersion".into(),
            message: describe(rc),
        });
    }
    Ok(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100))
}

/// A new unique id (rank 0 makes it; the rendezvous hands it to the others).
pub fn unique_id() -> Result<UniqueId> {
    let l = lib()?;
    let mut id = UniqueId { internal: [0; 128] };
    // SAFETY: a valid out pointer.
    let rc = unsafe { (l.get_unique_id)(&mut id) };
    if rc != SUCCESS {
        return Err(Error::Nccl {
            what: "ncclGetUniqueId".into(),
            message: describe(rc),
        });
    }
    Ok(id)
}

/// NCCL's reductions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedOp {
    /// `ncclSum`
    Sum = 0,
    /// `ncclMax`
    Max = 2,
    /// `ncclMin`
    Min = 3,
    /// `ncclAvg`
    Avg = 4,
}

impl RedOp {
    /// From a `dist.*` op's `op` attribute.
    pub fn parse(s: &str) -> Option<RedOp> {
        Some(match s {
            "sum" => RedOp::Sum,
            "avg" => RedOp::Avg,
            "max" => RedOp::Max,
            "min" => RedOp::Min,
            _ => return None,
        })
    }
}

/// `ncclDataType_t` of a thunder dtype, if NCCL has it.
pub fn nccl_dtype(d: thunder_ir::DType) -> Option<c_int> {
    use thunder_ir::DType as D;
    Some(match d {
        D::I8 => 0,
        D::U8 => 1,
        D::I32 => 2,
        D::I64 => 4,
        D::F16 => 6,
        D::F32 => 7,
        D::F64 => 8,
        D::BF16 => 9,
        _ => return None,
    })
}

/// One rank's NCCL communicator (non-blocking).
pub struct Communicator {
    rank: usize,
    world_size: usize,
    device: i32,
    timeout: Duration,
    /// Held from the start of an NCCL call until it has settled. NCCL requires the calls on
    /// one communicator to come one at a time (and, in non-blocking mode, none while another
    /// is in progress); two Python threads, or the eager baseline and a plan, could otherwise
    /// enqueue at once. It does not order calls across ranks: every rank must still issue
    /// its collectives in the same order.
    calls: Mutex<()>,
    /// The handle and why it was aborted. Locked around each single NCCL function call on the
    /// handle (microseconds: nothing blocks in non-blocking mode), not across a settle, so
    /// that the watchdog's abort waits for no collective yet never frees the handle under a
    /// call in flight.
    state: Mutex<State>,
}

struct State {
    comm: Comm,
    /// Why the communicator was aborted; `Some` forever after.
    poison: Option<String>,
}

// SAFETY: an NCCL communicator may be used from any thread; every use of the handle is
// behind the `state` lock, and abort may come from another thread by NCCL's design.
unsafe impl Send for State {}

impl State {
    /// The handle while the communicator is not poisoned; [`Error::Poisoned`] naming `what`
    /// once it was aborted (the handle is gone then).
    fn usable(&self, what: &str) -> Result<Comm> {
        match &self.poison {
            None => Ok(self.comm),
            Some(reason) => Err(Error::Poisoned {
                what: what.to_string(),
                reason: reason.clone(),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Communicator(rank {} of {}, cuda:{})",
            self.rank, self.world_size, self.device
        )
    }
}

/// The state of the communicator's pending work (`ncclCommGetAsyncError`).
fn async_state(comm: Comm) -> Result<NcclResult> {
    let l = lib()?;
    let mut state: NcclResult = SUCCESS;
    // SAFETY: a live communicator (the caller holds the state lock, so no abort frees it) and
    // a valid out pointer.
    let rc = unsafe { (l.get_async_error)(comm, &mut state) };
    if rc != SUCCESS {
        return Err(Error::Nccl {
            what: "ncclCommGetAsyncError".into(),
            message: describe(rc),
        });
    }
    Ok(state)
}

impl Communicator {
    /// Joins the communicator of `id` as `rank` of `world_size`, on CUDA device `device`; fails
    /// (and aborts) when the others do not join within `timeout` (1 ms to
    /// [`crate::timeout::MAX_TIMEOUT`]; it also bounds every later call).
    pub fn new(
        id: &UniqueId,
        rank: usize,
        world_size: usize,
        device: i32,
        timeout: Duration,
    ) -> Result<Communicator> {
        let timeout = crate::timeout::check("the NCCL communicator", timeout)?;
        let (Ok(ranks), Ok(me)) = (c_int::try_from(world_size), c_int::try_from(rank)) else {
            return Err(Error::Nccl {
                what: "joining the communicator".into(),
                message: format!("rank {rank} of a world of {world_size} does not exist"),
            });
        };
        if rank >= world_size {
            return Err(Error::Nccl {
                what: "joining the communicator".into(),
                message: format!("rank {rank} of a world of {world_size} does not exist"),
            });
        }
        let l = lib()?;
        if std::env::var("NCCL_COMM_BLOCKING").as_deref() == Ok("1") {
            return Err(Error::Nccl {
                what: "joining the communicator".into(),
                message: "NCCL_COMM_BLOCKING=1 would make a dead rank hang the others forever; \
                          unset it"
                    .into(),
            });
        }
        thunder_executors::cuda::enter_device(device).map_err(|e| Error::Nccl {
            what: format!("entering cuda:{device}"),
            message: e.to_string(),
        })?;
        let mut cfg = Config::non_blocking();
        let mut comm: Comm = std::ptr::null_mut();
        // SAFETY: valid pointers; the id is passed by value as NCCL expects.
        let rc = unsafe { (l.init_rank_config)(&mut comm, ranks, *id, me, &mut cfg) };
        if rc != SUCCESS && rc != IN_PROGRESS {
            return Err(Error::Nccl {
                what: "ncclCommInitRankConfig".into(),
                message: describe(rc),
            });
        }
        let c = Communicator::with_handle(comm, rank, world_size, device, timeout);
        {
            let _turn = lock(&c.calls);
            c.settle("joining the communicator", &async_state)?;
        }
        Ok(c)
    }

    fn with_handle(
        comm: Comm,
        rank: usize,
        world_size: usize,
        device: i32,
        timeout: Duration,
    ) -> Communicator {
        Communicator {
            rank,
            world_size,
            device,
            timeout,
            calls: Mutex::new(()),
            state: Mutex::new(State { comm, poison: None }),
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }
    /// The CUDA device.
    pub fn device(&self) -> i32 {
        self.device
    }
    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits until the communicator's pending operation is done (`poll` reads its state);
    /// poisons it on an error or after the timeout. The caller holds `calls`.
    fn settle(&self, what: &str, poll: &dyn Fn(Comm) -> Result<NcclResult>) -> Result<()> {
        let start = Instant::now();
        let deadline = crate::timeout::deadline("the NCCL communicator", self.timeout)?;
        loop {
            let state = {
                // (Poisoned meanwhile: the watchdog aborted it.)
                let st = lock(&self.state);
                poll(st.usable(what)?)
            };
            match state {
                Err(e) => return Err(self.fail(what, e.to_string())),
                Ok(SUCCESS) => return Ok(()),
                // Enqueuing usually finishes within microseconds: spin first (a sleep would
                // add its whole granularity to every collective's host time).
                Ok(IN_PROGRESS) if start.elapsed() < Duration::from_millis(2) => {
                    std::hint::spin_loop()
                }
                Ok(IN_PROGRESS) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                Ok(IN_PROGRESS) => {
                    return Err(self.fail(
                        what,
                        format!(
                            "not done after {:.0} s (another rank died, hung or was never \
                             started); the communicator was aborted",
                            self.timeout.as_secs_f64()
                        ),
                    ))
                }
                Ok(e) => return Err(self.fail(what, describe(e))),
            }
        }
    }

    /// Poisons the communicator after `what` failed with `message`; the error to return.
    fn fail(&self, what: &str, message: String) -> Error {
        self.poison(format!(
            "rank {} of {}: {what}: {message}",
            self.rank, self.world_size
        ));
        Error::Nccl {
            what: what.to_string(),
            message,
        }
    }

    /// Whether the communicator was aborted (after a failure, a timeout or [`Self::abort`]).
    pub fn is_aborted(&self) -> bool {
        lock(&self.state).poison.is_some()
    }

    /// Why the communicator was aborted, if it was.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.state).poison.clone()
    }

    /// `Ok` while the communicator can run collectives; [`Error::Poisoned`] (naming `what`)
    /// once it was aborted.
    pub fn check(&self, what: &str) -> Result<()> {
        lock(&self.state).usable(what).map(|_| ())
    }

    /// Aborts the communicator (NCCL kernels waiting for peers exit) and keeps `reason` for
    /// every later call. The first reason stays; later ones are ignored. Never blocks on a
    /// collective: callable from any thread, e.g. a watchdog, while another one is in a call.
    pub fn poison(&self, reason: impl Into<String>) {
        let mut st = lock(&self.state);
        if st.poison.is_some() {
            return;
        }
        st.poison = Some(reason.into());
        if !st.comm.is_null() {
            if let Ok(l) = lib() {
                // SAFETY: a communicator that was created and not yet aborted; no call is in
                // flight on it (they hold the state lock).
                unsafe { (l.abort)(st.comm) };
            }
        }
    }

    /// Aborts the communicator: NCCL kernels waiting for peers exit. Idempotent.
    pub fn abort(&self) {
        self.poison(format!(
            "rank {} of {}: the program aborted it",
            self.rank, self.world_size
        ));
    }

    /// Runs one NCCL call (`call` gets the handle, under the state lock) and waits until it
    /// has settled (`poll`), with no other call on this communicator in between.
    fn run(
        &self,
        what: &str,
        call: impl FnOnce(Comm) -> Result<NcclResult>,
        poll: &dyn Fn(Comm) -> Result<NcclResult>,
    ) -> Result<()> {
        let _turn = lock(&self.calls);
        let rc = {
            let st = lock(&self.state);
            call(st.usable(what)?)?
        };
        match rc {
            SUCCESS => Ok(()),
            IN_PROGRESS => self.settle(what, poll),
            e => Err(self.fail(what, describe(e))),
        }
    }

    /// `ncclAllReduce` of `count` elements on `stream`.
    ///
    /// # Safety
    /// `send` and `recv` point to `count` elements of `dtype` on this communicator's device,
    /// alive until the operation completes on `stream`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn all_reduce(
        &self,
        send: *const c_void,
        recv: *mut c_void,
        count: usize,
        dtype: c_int,
        op: RedOp,
        stream: Stream,
        what: &str,
    ) -> Result<()> {
        self.run(
            what,
            |comm| {
                let l = lib()?;
                // SAFETY: the caller's promise on the buffers; a live handle.
                Ok(unsafe { (l.all_reduce)(send, recv, count, dtype, op as c_int, comm, stream) })
            },
            &async_state,
        )
    }

    /// `ncclAllGather`: `count` elements from every rank into `recv` (`count * world_size`).
    ///
    /// # Safety
    /// As [`Communicator::all_reduce`], with `recv` holding `count * world_size` elements.
    pub unsafe fn all_gather(
        &self,
        send: *const c_void,
        recv: *mut c_void,
        count: usize,
        dtype: c_int,
        stream: Stream,
        what: &str,
    ) -> Result<()> {
        self.run(
            what,
            |comm| {
                let l = lib()?;
                // SAFETY: as above.
                Ok(unsafe { (l.all_gather)(send, recv, count, dtype, comm, stream) })
            },
            &async_state,
        )
    }

    /// `ncclReduceScatter`: `recv` gets this rank's `count` elements of the reduction.
    ///
    /// # Safety
    /// As [`Communicator::all_reduce`], with `send` holding `count * world_size` elements.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn reduce_scatter(
        &self,
        send: *const c_void,
        recv: *mut c_void,
        count: usize,
        dtype: c_int,
        op: RedOp,
        stream: Stream,
        what: &str,
    ) -> Result<()> {
        self.run(
            what,
            |comm| {
                let l = lib()?;
                // SAFETY: as above.
                Ok(unsafe {
                    (l.reduce_scatter)(send, recv, count, dtype, op as c_int, comm, stream)
                })
            },
            &async_state,
        )
    }

    /// `ncclBroadcast` from `root`.
    ///
    /// # Safety
    /// As [`Communicator::all_reduce`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn broadcast(
        &self,
        send: *const c_void,
        recv: *mut c_void,
        count: usize,
        dtype: c_int,
        root: usize,
        stream: Stream,
        what: &str,
    ) -> Result<()> {
        let root = c_int::try_from(root)
            .ok()
            .filter(|&r| (r as usize) < self.world_size)
            .ok_or_else(|| Error::Nccl {
                what: what.to_string(),
                message: format!("root {root} is not a rank of {}", self.world_size),
            })?;
        self.run(
            what,
            |comm| {
                let l = lib()?;
                // SAFETY: as above.
                Ok(unsafe { (l.broadcast)(send, recv, count, dtype, root, comm, stream) })
            },
            &async_state,
        )
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        // Destroy may block on a broken peer; abort never does.
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A communicator without NCCL behind it (a null handle is never passed to NCCL: the
    /// calls below are fakes, and abort skips it).
    fn detached() -> Communicator {
        Communicator::with_handle(std::ptr::null_mut(), 0, 2, 0, Duration::from_secs(5))
    }

    #[test]
    fn a_poisoned_communicator_refuses_every_later_call_with_the_first_reason() {
        let c = detached();
        assert!(c.check("x").is_ok() && !c.is_aborted());
        c.poison(
            "rank 0 of 2: `t3 = dist.all_reduce(t2)` did not finish within 15 s: rank 1 is gone",
        );
        c.poison("a later reason");
        c.abort();
        assert!(c.is_aborted());
        let e = c.check("t9 = dist.wait(h)").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t9 = dist.wait(h): the NCCL communicator was aborted earlier and cannot be used \
             again: rank 0 of 2: `t3 = dist.all_reduce(t2)` did not finish within 15 s: rank 1 \
             is gone"
        );
        let called = AtomicBool::new(false);
        let e = c
            .run(
                "t5 = dist.all_gather(t4)",
                |_| {
                    called.store(true, Ordering::SeqCst);
                    Ok(SUCCESS)
                },
                &|_| Ok(SUCCESS),
            )
            .unwrap_err();
        assert!(
            !called.load(Ordering::SeqCst),
            "NCCL was called on an aborted communicator"
        );
        assert!(matches!(e, Error::Poisoned { ref what, ref reason }
            if what == "t5 = dist.all_gather(t4)" && reason.contains("rank 1 is gone")));
        // The public collectives check before they touch NCCL (none is loaded here).
        // SAFETY: nothing is enqueued: the call is refused first.
        let e = unsafe {
            c.all_reduce(
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
                7,
                RedOp::Sum,
                std::ptr::null_mut(),
                "eager all-reduce",
            )
        }
        .unwrap_err();
        assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    }

    #[test]
    fn a_call_that_fails_or_never_settles_poisons_the_communicator() {
        let c = detached();
        let e = c
            .run("t1 = dist.broadcast(t0)", |_| Ok(3), &|_| Ok(SUCCESS))
            .unwrap_err();
        assert!(matches!(e, Error::Nccl { .. }), "{e}");
        let reason = c.poisoned().unwrap();
        assert!(
            reason.starts_with("rank 0 of 2: t1 = dist.broadcast(t0): "),
            "{reason}"
        );
        assert!(matches!(c.check("next"), Err(Error::Poisoned { .. })));

        let mut c = detached();
        c.timeout = Duration::from_millis(50);
        let t0 = Instant::now();
        let e = c
            .run("t1 = dist.all_reduce(t0)", |_| Ok(IN_PROGRESS), &|_| {
                Ok(IN_PROGRESS)
            })
            .unwrap_err()
            .to_string();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(e.contains("not done after 0 s"), "{e}");
        assert!(c.poisoned().unwrap().contains("t1 = dist.all_reduce(t0)"));
    }

    #[test]
    fn a_poison_from_another_thread_ends_a_call_that_is_settling() {
        let c = Arc::new(detached());
        let polls = Arc::new(AtomicUsize::new(0));
        let (c2, p2) = (Arc::clone(&c), Arc::clone(&polls));
        let t = std::thread::spawn(move || {
            c2.run("t1 = dist.all_reduce(t0)", |_| Ok(IN_PROGRESS), &|_| {
                p2.fetch_add(1, Ordering::SeqCst);
                Ok(IN_PROGRESS)
            })
        });
        while polls.load(Ordering::SeqCst) < 10 {
            std::thread::yield_now();
        }
        c.poison("the watchdog: rank 1 is gone");
        let e = t.join().unwrap().unwrap_err();
        assert!(
            matches!(e, Error::Poisoned { ref reason, .. } if reason.contains("rank 1")),
            "{e}"
        );
    }

    #[test]
    fn two_threads_never_have_calls_in_progress_at_once() {
        let c = Arc::new(detached());
        // Set while a call is enqueued and not yet settled.
        let busy = Arc::new(AtomicBool::new(false));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, busy, overlaps) =
                    (Arc::clone(&c), Arc::clone(&busy), Arc::clone(&overlaps));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let polls = AtomicUsize::new(0);
                        c.run(
                            "t1 = dist.all_reduce(t0)",
                            |_| {
                                if busy.swap(true, Ordering::SeqCst) {
                                    overlaps.fetch_add(1, Ordering::SeqCst);
                                }
                                Ok(IN_PROGRESS)
                            },
                            &|_| {
                                if polls.fetch_add(1, Ordering::SeqCst) < 3 {
                                    std::thread::yield_now();
                                    return Ok(IN_PROGRESS);
                                }
                                busy.store(false, Ordering::SeqCst);
                                Ok(SUCCESS)
                            },
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn bad_timeouts_and_ranks_are_refused_before_nccl_is_loaded() {
        let id = UniqueId { internal: [0; 128] };
        for t in [Duration::ZERO, Duration::MAX, Duration::from_secs(86_401)] {
            let e = Communicator::new(&id, 0, 2, 0, t).unwrap_err();
            assert!(matches!(e, Error::BadTimeout { .. }), "{e}");
        }
        for (rank, world) in [(2, 2), (0, 0), (0, usize::MAX)] {
            let e = Communicator::new(&id, rank, world, 0, Duration::from_secs(1)).unwrap_err();
            assert!(e.to_string().contains("does not exist"), "{e}");
        }
    }
}
