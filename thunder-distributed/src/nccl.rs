//! NCCL, loaded at run time: the copy libtorch_cuda already loaded (the PyTorch wheel's
//! `nvidia/nccl/lib/libnccl.so.2`), or `THUNDER_NCCL_LIB`.
//!
//! cudarc's NCCL loader looks for `libnccl.so` and `libnccl.so.<cuda major>`, never for the
//! wheel's `libnccl.so.2`, so this module declares the dozen entry points it needs itself.
//!
//! Communicators are non-blocking (`blocking = 0`): initialization and every call are polled
//! against a deadline, and a communicator that does not finish in time is aborted, so a dead
//! peer ends the run with an error instead of a hang.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;
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

fn lib() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
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
                Err(e) => errors.push(format!("{n}: {e}")),
            }
        }
        let l = found.ok_or_else(|| {
            format!(
                "cannot load NCCL ({}); it comes with the PyTorch wheel (nvidia/nccl/lib): \
                 set THUNDER_NCCL_LIB to its libnccl.so.2",
                errors.join("; ")
            )
        })?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the signatures are NCCL 2.28's (nccl.h).
                *unsafe { l.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("NCCL lacks {}: {e}", $name))?
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
    .map_err(Clone::clone)
}

fn describe(l: &Lib, rc: NcclResult) -> String {
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
pub fn version() -> Result<String, String> {
    let l = lib()?;
    let mut v: c_int = 0;
    // SAFETY: a valid out pointer.
    let rc = unsafe { (l.get_version)(&mut v) };
    if rc != SUCCESS {
        return Err(describe(l, rc));
    }
    Ok(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100))
}

/// A new unique id (rank 0 makes it; the rendezvous hands it to the others).
pub fn unique_id() -> Result<UniqueId, String> {
    let l = lib()?;
    let mut id = UniqueId { internal: [0; 128] };
    // SAFETY: a valid out pointer.
    let rc = unsafe { (l.get_unique_id)(&mut id) };
    if rc != SUCCESS {
        return Err(format!("ncclGetUniqueId: {}", describe(l, rc)));
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
    comm: Comm,
    rank: usize,
    world_size: usize,
    device: i32,
    timeout: Duration,
    aborted: std::sync::atomic::AtomicBool,
}

// SAFETY: an NCCL communicator may be used from any thread; calls are serialized by the plan
// (one run at a time per rank), and abort may come from another thread by NCCL's design.
unsafe impl Send for Communicator {}
// SAFETY: as above.
unsafe impl Sync for Communicator {}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Communicator(rank {} of {}, cuda:{})",
            self.rank, self.world_size, self.device
        )
    }
}

impl Communicator {
    /// Joins the communicator of `id` as `rank` of `world_size`, on CUDA device `device`; fails
    /// (and aborts) when the others do not join within `timeout`.
    pub fn new(
        id: &UniqueId,
        rank: usize,
        world_size: usize,
        device: i32,
        timeout: Duration,
    ) -> Result<Communicator, String> {
        let l = lib()?;
        if std::env::var("NCCL_COMM_BLOCKING").as_deref() == Ok("1") {
            return Err(
                "NCCL_COMM_BLOCKING=1 would make a dead rank hang the others forever; unset it"
                    .into(),
            );
        }
        thunder_executors::fusion::enter_device(device)?;
        let mut cfg = Config::non_blocking();
        let mut comm: Comm = std::ptr::null_mut();
        // SAFETY: valid pointers; the id is passed by value as NCCL expects.
        let rc = unsafe {
            (l.init_rank_config)(&mut comm, world_size as c_int, *id, rank as c_int, &mut cfg)
        };
        if rc != SUCCESS && rc != IN_PROGRESS {
            return Err(format!("ncclCommInitRankConfig: {}", describe(l, rc)));
        }
        let c = Communicator {
            comm,
            rank,
            world_size,
            device,
            timeout,
            aborted: Default::default(),
        };
        c.settle("joining the communicator")?;
        Ok(c)
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

    /// Waits until the communicator's pending operation is done; aborts it on an error or
    /// after the timeout.
    fn settle(&self, what: &str) -> Result<(), String> {
        let l = lib()?;
        let start = Instant::now();
        let deadline = start + self.timeout;
        loop {
            let mut state: NcclResult = SUCCESS;
            // SAFETY: a live communicator and a valid out pointer.
            let rc = unsafe { (l.get_async_error)(self.comm, &mut state) };
            if rc != SUCCESS {
                self.abort();
                return Err(format!("{what}: {}", describe(l, rc)));
            }
            match state {
                SUCCESS => return Ok(()),
                // Enqueuing usually finishes within microseconds: spin first (a sleep would
                // add its whole granularity to every collective's host time).
                IN_PROGRESS if start.elapsed() < Duration::from_millis(2) => std::hint::spin_loop(),
                IN_PROGRESS if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                IN_PROGRESS => {
                    self.abort();
                    return Err(format!(
                        "{what}: not done after {:.0} s (another rank died, hung or was never \
                         started); the communicator was aborted",
                        self.timeout.as_secs_f64()
                    ));
                }
                e => {
                    self.abort();
                    return Err(format!("{what}: {}", describe(l, e)));
                }
            }
        }
    }

    /// Whether the communicator was aborted (after a failure or a timeout).
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Aborts the communicator: NCCL kernels waiting for peers exit. Idempotent.
    pub fn abort(&self) {
        if !self.aborted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            if let Ok(l) = lib() {
                // SAFETY: a communicator that was created and not yet aborted.
                unsafe { (l.abort)(self.comm) };
            }
        }
    }

    fn enqueue(&self, what: &str, rc: NcclResult) -> Result<(), String> {
        let l = lib()?;
        match rc {
            SUCCESS => Ok(()),
            IN_PROGRESS => self.settle(what),
            e => {
                self.abort();
                Err(format!("{what}: {}", describe(l, e)))
            }
        }
    }

    fn alive(&self, what: &str) -> Result<&'static Lib, String> {
        if self.is_aborted() {
            return Err(format!(
                "{what}: the communicator was aborted after an earlier failure"
            ));
        }
        lib()
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
    ) -> Result<(), String> {
        let l = self.alive(what)?;
        let rc = (l.all_reduce)(send, recv, count, dtype, op as c_int, self.comm, stream);
        self.enqueue(what, rc)
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
    ) -> Result<(), String> {
        let l = self.alive(what)?;
        let rc = (l.all_gather)(send, recv, count, dtype, self.comm, stream);
        self.enqueue(what, rc)
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
    ) -> Result<(), String> {
        let l = self.alive(what)?;
        let rc = (l.reduce_scatter)(send, recv, count, dtype, op as c_int, self.comm, stream);
        self.enqueue(what, rc)
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
    ) -> Result<(), String> {
        let l = self.alive(what)?;
        let rc = (l.broadcast)(send, recv, count, dtype, root as c_int, self.comm, stream);
        self.enqueue(what, rc)
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        // Destroy may block on a broken peer; abort never does.
        self.abort();
    }
}
