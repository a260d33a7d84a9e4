//! Compiling region kernels with NVRTC and launching them with the CUDA driver (feature `cuda`).
//!
//! - NVRTC and the CUDA headers are found at run time: `THUNDER_CUDA_HOME`, the PyTorch wheel's
//!   `nvidia/cu13` (next to the libtorch this process uses or was built with), `CUDA_HOME`,
//!   `/usr/local/cuda`. The wheel ships both, so kernels compile on machines without a GPU.
//! - PTX is cached in memory and on disk (`THUNDER_KERNEL_CACHE`, default
//!   `~/.cache/thunder-rs/kernels`), keyed by a hash of the source (which spells out the region,
//!   its shapes and dtypes) and the architecture, so a second process starts warm.
//! - Kernels run on PyTorch's current stream of the device (from libtorch's C shim), in the
//!   device's primary context (PyTorch's); outputs are allocated by libtorch, so its caching
//!   allocator owns them. Nothing synchronizes.

use super::codegen::{fusible as codegen_fusible, generate, Launch, RegionKernel};
use super::partition::Region;
use crate::convert;
use crate::executor::{Args, Executor, Fuser, KArg, Kernel, KernelError, Outputs, RtValue};
use crate::{Error, Result};
use cudarc::driver::{result as drv, sys as dsys};
use cudarc::nvrtc::{self, CompileOptions};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tch::Tensor;
use thunder_ir::{BoundSymbol, Trace, ValueType};

/// Where the CUDA headers are, once NVRTC is loaded.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The folder with `cuda_bf16.h`.
    pub include: PathBuf,
}

fn cuda_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(h) = std::env::var_os("THUNDER_CUDA_HOME") {
        roots.push(PathBuf::from(h));
    }
    let wheel = |torch_lib: &Path| torch_lib.join("../../nvidia/cu13");
    if let Some(p) = std::env::var_os("LD_LIBRARY_PATH") {
        for dir in std::env::split_paths(&p) {
            if dir.join("libtorch_cpu.so").exists() {
                roots.push(wheel(&dir));
            }
        }
    }
    let baked = env!("THUNDER_LIBTORCH_LIB_DIR");
    if !baked.is_empty() {
        roots.push(wheel(Path::new(baked)));
    }
    if let Some(h) = std::env::var_os("CUDA_HOME") {
        roots.push(PathBuf::from(h));
    }
    roots.push(PathBuf::from("/usr/local/cuda"));
    roots
}

/// Loads NVRTC and finds the CUDA headers (once per process).
pub fn toolchain() -> std::result::Result<&'static Toolchain, String> {
    static TC: OnceLock<std::result::Result<Toolchain, String>> = OnceLock::new();
    TC.get_or_init(|| {
        let roots = cuda_roots();
        // SAFETY: loading a shared library runs its initializers; libnvrtc's are benign.
        let present = unsafe { nvrtc::sys::is_culib_present() };
        if !present {
            // Load it by path: a later dlopen by soname (cudarc's) finds the loaded library.
            let found = roots.iter().flat_map(|r| [r.join("lib"), r.join("lib64")]).find_map(|d| {
                let p = d.join("libnvrtc.so.13");
                // SAFETY: as above.
                unsafe { libloading::Library::new(&p) }.ok()
            });
            match found {
                Some(lib) => std::mem::forget(lib),
                None => {
                    return Err(format!(
                        "NVRTC (libnvrtc.so.13) was not found on the loader path or under {}; set THUNDER_CUDA_HOME to a CUDA 13 installation",
                        roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
        }
        // NVRTC opens its builtins library by name at the first compile: load it by path too.
        for d in roots.iter().flat_map(|r| [r.join("lib"), r.join("lib64")]) {
            let p = d.join("libnvrtc-builtins.so.13.0");
            if p.exists() {
                // SAFETY: as above.
                if let Ok(lib) = unsafe { libloading::Library::new(&p) } {
                    std::mem::forget(lib);
                    break;
                }
            }
        }
        let include = roots
            .iter()
            .map(|r| r.join("include"))
            .find(|d| d.join("cuda_bf16.h").exists())
            .ok_or_else(|| {
                format!(
                    "the CUDA headers (cuda_bf16.h) were not found under {}; set THUNDER_CUDA_HOME",
                    roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            })?;
        Ok(Toolchain { include })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// FNV-1a, stable across processes and machines (the disk cache's key).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn disk_cache() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("THUNDER_KERNEL_CACHE") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/thunder-rs/kernels"))
}

/// Compiles `source` to PTX for `arch` (`compute_90`), through the in-memory and disk caches.
/// A compile error carries NVRTC's log and the numbered source.
pub fn compile_ptx(source: &str, arch: &'static str) -> std::result::Result<String, String> {
    static MEM: OnceMap<u64, String> = OnceLock::new();
    let key = fnv1a(&[
        source.as_bytes(),
        arch.as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
    ]);
    // One cell per source: a second caller (another thread compiling the same source, such as
    // a region whose kernel the plan compiler started in the background) waits for the first.
    once_per_key(&MEM, key, || compile_ptx_uncached(source, arch, key))
}

/// Process-wide results computed once per key: the first caller of a key runs `init`, callers
/// of the same key meanwhile (other threads) wait for it, later ones get the stored result.
type OnceMap<K, V> = OnceLock<Mutex<HashMap<K, Arc<OnceLock<std::result::Result<V, String>>>>>>;

fn once_per_key<K: std::hash::Hash + Eq, V: Clone>(
    map: &OnceMap<K, V>,
    key: K,
    init: impl FnOnce() -> std::result::Result<V, String>,
) -> std::result::Result<V, String> {
    let cell = map
        .get_or_init(Default::default)
        .lock()
        .map_err(|e| e.to_string())?
        .entry(key)
        .or_default()
        .clone();
    cell.get_or_init(init).clone()
}

fn compile_ptx_uncached(
    source: &str,
    arch: &'static str,
    key: u64,
) -> std::result::Result<String, String> {
    let file = disk_cache().map(|d| d.join(format!("{key:016x}.ptx")));
    if let Some(f) = &file {
        if let Ok(p) = std::fs::read_to_string(f) {
            return Ok(p);
        }
    }
    let tc = toolchain()?;
    let opts = CompileOptions {
        arch: Some(arch),
        include_paths: vec![tc.include.display().to_string()],
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    let ptx = match nvrtc::compile_ptx_with_opts(source, opts) {
        Ok(p) => p.to_src(),
        Err(e) => {
            let log = match &e {
                nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
                other => format!("{other:?}"),
            };
            let numbered: String = source
                .lines()
                .enumerate()
                .map(|(i, l)| format!("{:4} {l}\n", i + 1))
                .collect();
            return Err(format!(
                "NVRTC could not compile a generated kernel:\n{log}\n--- source ---\n{numbered}"
            ));
        }
    };
    if let Some(f) = &file {
        // Best effort: a cache that cannot be written only costs a compile next time.
        if let Some(dir) = f.parent() {
            let _ = std::fs::create_dir_all(dir);
            let tmp = f.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &ptx).is_ok() {
                let _ = std::fs::rename(&tmp, f);
            }
        }
    }
    Ok(ptx)
}

/// The device's primary context (PyTorch's), made current on this thread.
pub fn enter_device(index: i32) -> std::result::Result<dsys::CUcontext, String> {
    static CTX: OnceLock<Mutex<HashMap<i32, usize>>> = OnceLock::new();
    let map = CTX.get_or_init(Default::default);
    let mut m = map.lock().map_err(|e| e.to_string())?;
    let ctx = match m.get(&index) {
        Some(&c) => c as dsys::CUcontext,
        None => {
            drv::init().map_err(|e| format!("cuInit: {e:?}"))?;
            let dev =
                drv::device::get(index).map_err(|e| format!("cuDeviceGet({index}): {e:?}"))?;
            // SAFETY: retaining the primary context of a valid device.
            let c = unsafe { drv::primary_ctx::retain(dev) }
                .map_err(|e| format!("cuDevicePrimaryCtxRetain: {e:?}"))?;
            m.insert(index, c as usize);
            c
        }
    };
    // SAFETY: a context retained above, never released.
    unsafe { drv::ctx::set_current(ctx) }.map_err(|e| format!("cuCtxSetCurrent: {e:?}"))?;
    Ok(ctx)
}

fn arch_of(index: i32) -> std::result::Result<&'static str, String> {
    static ARCH: OnceLock<Mutex<HashMap<i32, &'static str>>> = OnceLock::new();
    let map = ARCH.get_or_init(Default::default);
    let mut m = map.lock().map_err(|e| e.to_string())?;
    if let Some(a) = m.get(&index) {
        return Ok(a);
    }
    let dev = drv::device::get(index).map_err(|e| format!("cuDeviceGet: {e:?}"))?;
    let attr = |a| unsafe { drv::device::get_attribute(dev, a) };
    let major = attr(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .map_err(|e| format!("{e:?}"))?;
    let minor = attr(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .map_err(|e| format!("{e:?}"))?;
    let a: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    m.insert(index, a);
    Ok(a)
}

type StreamFn = unsafe extern "C" fn(i32, *mut *mut c_void) -> i32;

/// PyTorch's current stream on device `index` (libtorch_cuda's `aoti_torch_get_current_cuda_stream`).
pub fn current_stream(index: i32) -> std::result::Result<dsys::CUstream, String> {
    static F: OnceLock<std::result::Result<StreamFn, String>> = OnceLock::new();
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
                .map_err(|e| format!("libtorch_cuda is not loaded: {e}"))?;
            // SAFETY: as above.
            let f = unsafe { lib.get::<StreamFn>(NAME) }
                .map(|s| *s)
                .map_err(|e| {
                    format!("libtorch_cuda's aoti_torch_get_current_cuda_stream is not loaded: {e}")
                })?;
            std::mem::forget(lib);
            Ok(f)
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let mut s: *mut c_void = std::ptr::null_mut();
    // SAFETY: a valid out pointer.
    let rc = unsafe { f(index, &mut s) };
    if rc != 0 {
        return Err(format!(
            "aoti_torch_get_current_cuda_stream({index}) failed ({rc})"
        ));
    }
    Ok(s as dsys::CUstream)
}

/// CUDA C++ source compiled (through [`compile_ptx`]) and loaded once per device; the functions
/// are looked up by name, in the order given.
pub(crate) struct Module {
    source: String,
    names: Vec<String>,
    loaded: Mutex<HashMap<i32, Arc<Vec<usize>>>>,
}

impl Module {
    /// A module of `source` whose functions `names` the launches use.
    pub(crate) fn new(source: String, names: Vec<String>) -> Self {
        Module {
            source,
            names,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The functions (`CUfunction`s, in `names` order) on device `dev`, compiling and loading
    /// the module on first use. The device's context must be current ([`enter_device`]).
    pub(crate) fn functions(&self, dev: i32) -> std::result::Result<Arc<Vec<usize>>, String> {
        if let Some(l) = self.loaded.lock().map_err(|e| e.to_string())?.get(&dev) {
            return Ok(l.clone());
        }
        // Modules of the same source and names (a model's layers) load once per device: the
        // driver's PTX JIT is what loading costs.
        static LOADED: OnceMap<(u64, i32), Arc<Vec<usize>>> = OnceLock::new();
        let mut parts: Vec<&[u8]> = vec![self.source.as_bytes()];
        parts.extend(self.names.iter().map(|n| n.as_bytes()));
        let l = once_per_key(&LOADED, (fnv1a(&parts), dev), || self.load(dev))?;
        self.loaded
            .lock()
            .map_err(|e| e.to_string())?
            .insert(dev, l.clone());
        Ok(l)
    }

    /// Compiles the source and loads it on device `dev` (its context current).
    fn load(&self, dev: i32) -> std::result::Result<Arc<Vec<usize>>, String> {
        let arch = arch_of(dev)?;
        let ptx = compile_ptx(&self.source, arch)?;
        let c = CString::new(ptx).map_err(|e| e.to_string())?;
        // SAFETY: NUL-terminated PTX text, in the current (primary) context.
        let module = unsafe { drv::module::load_data(c.as_ptr() as *const c_void) }
            .map_err(|e| format!("cuModuleLoadData: {e:?}"))?;
        let funcs = self
            .names
            .iter()
            .map(|name| {
                let n = CString::new(name.as_str()).map_err(|e| e.to_string())?;
                // SAFETY: a module loaded above, never unloaded (kernels live as long as the
                // process).
                unsafe { drv::module::get_function(module, n) }
                    .map(|f| f as usize)
                    .map_err(|e| format!("cuModuleGetFunction({name}): {e:?}"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(Arc::new(funcs))
    }

    /// Starts compiling and loading the module for device `dev` on another thread, so that the
    /// first launch finds it ready (a plan's kernels then compile in parallel, not one by one
    /// during the first run). Errors are left for the first launch to report.
    /// Without a CUDA device (plans compiled for CUDA on a CPU machine, as tests do) it does
    /// nothing.
    pub(crate) fn prefetch(&self, dev: i32) {
        if !tch::Cuda::is_available() {
            return;
        }
        // The loaded functions land in the process-wide cache `functions` consults.
        let m = Module::new(self.source.clone(), self.names.clone());
        let _ = std::thread::Builder::new()
            .name("thunder-nvrtc".into())
            .spawn(move || {
                if enter_device(dev).is_ok() {
                    let _ = m.functions(dev);
                }
            });
    }
}

/// Launches `func` (from a [`Module`]) on `stream` with `params`, one 8-byte slot per kernel
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

struct CompiledRegion {
    kernel: RegionKernel,
    /// The device of the region's outputs (for regions without tensor inputs).
    device: Option<i32>,
    /// Per region input: `Some(rank)` for tensors, `None` for numbers.
    inputs: Vec<Option<usize>>,
    /// Per region output: shape and dtype.
    outputs: Vec<(Vec<i64>, tch::Kind)>,
    /// The kernels; per entry its scalar function, then its vector one if it has one.
    module: Module,
}

impl CompiledRegion {
    fn new(
        kernel: RegionKernel,
        device: Option<i32>,
        inputs: Vec<Option<usize>>,
        outputs: Vec<(Vec<i64>, tch::Kind)>,
    ) -> Self {
        let mut names = Vec::new();
        for e in &kernel.entries {
            names.push(e.name.clone());
            if Self::has_vector(&e.launch) {
                names.push(format!("{}_vec", e.name));
            }
        }
        let module = Module::new(kernel.source.clone(), names);
        if let Some(d) = device {
            module.prefetch(d);
        }
        CompiledRegion {
            kernel,
            device,
            inputs,
            outputs,
            module,
        }
    }

    fn has_vector(l: &Launch) -> bool {
        matches!(
            l,
            Launch::Pointwise {
                vector: Some(_),
                ..
            } | Launch::Rows {
                vector: Some(_),
                ..
            } | Launch::Columns {
                contiguous: true,
                ..
            }
        )
    }

    /// Per entry: the scalar function and the vector one (if any).
    fn load(&self, dev: i32) -> std::result::Result<Vec<(usize, Option<usize>)>, String> {
        let f = self.module.functions(dev)?;
        let mut it = f.iter().copied();
        let mut out = Vec::with_capacity(self.kernel.entries.len());
        for e in &self.kernel.entries {
            let scalar = it.next().ok_or("a region module lacks a function")?;
            let vector = if Self::has_vector(&e.launch) {
                Some(it.next().ok_or("a region module lacks a vector function")?)
            } else {
                None
            };
            out.push((scalar, vector));
        }
        Ok(out)
    }

    /// Whether a vector variant reading `w` elements per access may run: its `direct` inputs
    /// contiguous, and they and every output aligned to the access.
    fn vector_ok(&self, w: usize, direct: &[usize], tensors: &[Tensor], outs: &Outputs) -> bool {
        let aligned =
            |t: &Tensor| (t.data_ptr() as usize) % (w * t.kind().elt_size_in_bytes()) == 0;
        direct.iter().all(|&k| {
            tensors
                .get(input_tensor_pos(&self.inputs, k))
                .is_some_and(|t| t.is_contiguous() && aligned(t))
        }) && outs.iter().all(|o| o.as_tensor().is_some_and(aligned))
    }

    fn run(&self, args: &Args<'_>) -> std::result::Result<Outputs, KernelError> {
        // Parameters: 8-byte slots (the driver reads each argument's size from the kernel).
        let mut slots: Vec<u64> = Vec::with_capacity(4 * self.inputs.len() + self.outputs.len());
        let mut device: Option<i32> = None;
        let mut tensors: Vec<Tensor> = Vec::with_capacity(self.inputs.len());
        for (k, rank) in self.inputs.iter().enumerate() {
            match (args.get(k)?, rank) {
                (KArg::Value(RtValue::Tensor(t)), Some(r)) => {
                    let d = match t.device() {
                        tch::Device::Cuda(i) => i as i32,
                        other => {
                            return Err(KernelError(format!(
                                "fusion kernels run on CUDA tensors, input {k} is on {other:?}"
                            )))
                        }
                    };
                    if *device.get_or_insert(d) != d {
                        return Err(KernelError(
                            "a region's inputs are on different devices".into(),
                        ));
                    }
                    slots.push(t.data_ptr() as u64);
                    let st = t.stride();
                    if st.len() != *r {
                        return Err(KernelError(format!(
                            "input {k} has rank {} not {r}",
                            st.len()
                        )));
                    }
                    slots.extend(st.iter().map(|&s| s as u64));
                    tensors.push(t.shallow_clone());
                }
                (KArg::Value(RtValue::Int(i)), None) => slots.push(*i as u64),
                (KArg::Int(i), None) => slots.push(i as u64),
                (KArg::Value(RtValue::Float(f)), None) => slots.push(f.to_bits()),
                (KArg::Float(f), None) => slots.push(f.to_bits()),
                (KArg::Value(RtValue::Bool(b)), None) => slots.push(*b as u64),
                (KArg::Bool(b), None) => slots.push(b as u64),
                _ => return Err(KernelError(format!("region input {k} has the wrong kind"))),
            }
        }
        let dev = match device.or(self.device) {
            Some(d) => d,
            None => return Err(KernelError("a fusion region without CUDA tensors".into())),
        };
        enter_device(dev).map_err(KernelError)?;
        let funcs = self.load(dev).map_err(KernelError)?;
        let mut outs = Outputs::new();
        for (shape, kind) in &self.outputs {
            let t = Tensor::f_empty(shape.as_slice(), (*kind, tch::Device::Cuda(dev as usize)))?;
            slots.push(t.data_ptr() as u64);
            outs.push(RtValue::Tensor(t));
        }
        let stream = current_stream(dev).map_err(KernelError)?;
        // A columns region's partial results, shared by its two stages.
        let workspace = self
            .kernel
            .entries
            .iter()
            .filter_map(|e| match e.launch {
                Launch::Columns { workspace, .. } | Launch::Rows { workspace, .. }
                    if workspace > 0 =>
                {
                    Some(workspace)
                }
                _ => None,
            })
            .max()
            .map(|bytes| {
                Tensor::f_empty(
                    [bytes as i64],
                    (tch::Kind::Uint8, tch::Device::Cuda(dev as usize)),
                )
            })
            .transpose()?;
        let mut ws_slots: Vec<u64> = Vec::new();
        if let Some(ws) = &workspace {
            ws_slots = slots.clone();
            ws_slots.push(ws.data_ptr() as u64);
        }
        for (e, &(scalar, vector)) in self.kernel.entries.iter().zip(&funcs) {
            let (func, grid, block) = match &e.launch {
                Launch::Pointwise {
                    numel,
                    vector: vec,
                    direct,
                } => {
                    if *numel == 0 {
                        continue;
                    }
                    let use_vec = match (vec, vector) {
                        (Some(w), Some(_)) => self.vector_ok(*w, direct, &tensors, &outs),
                        _ => false,
                    };
                    let (f, n) = match (use_vec, vec, vector) {
                        (true, Some(w), Some(vf)) => (vf, numel / w),
                        _ => (scalar, *numel),
                    };
                    let threads = 256usize;
                    let blocks = n.div_ceil(threads).clamp(1, 1 << 20);
                    (f, blocks as u32, threads as u32)
                }
                Launch::Rows {
                    blocks,
                    threads,
                    vector: vinfo,
                    direct,
                    workspace,
                    ..
                } => {
                    if *blocks == 0 {
                        continue;
                    }
                    let use_vec = match (vinfo, vector) {
                        (Some((w, _, _)), Some(_)) => self.vector_ok(*w, direct, &tensors, &outs),
                        _ => false,
                    };
                    let (f, grid, block) = match (use_vec, vinfo, vector) {
                        (true, Some((_, t, b)), Some(vf)) => {
                            (vf, (*b).clamp(1, 1 << 20) as u32, *t)
                        }
                        _ => (scalar, (*blocks).clamp(1, 1 << 20) as u32, *threads),
                    };
                    if *workspace > 0 {
                        // SAFETY: as below; a rows kernel with column sums takes the workspace
                        // last, and its grid is the number of partials the workspace holds.
                        unsafe { launch(f, grid, block, stream, &mut ws_slots, &e.name) }?;
                        continue;
                    }
                    (f, grid, block)
                }
                Launch::Columns {
                    blocks, threads, ..
                } => {
                    // The variant for contiguous inputs when every tensor input is.
                    let f = match vector {
                        Some(vf) if tensors.iter().all(|t| t.is_contiguous()) => vf,
                        _ => scalar,
                    };
                    // SAFETY: as below; the columns stages take the workspace last.
                    unsafe {
                        launch(
                            f,
                            (*blocks).clamp(1, 1 << 20) as u32,
                            *threads,
                            stream,
                            &mut ws_slots,
                            &e.name,
                        )
                    }?;
                    continue;
                }
            };
            // SAFETY: the function takes exactly these parameters (generated together with it),
            // the pointers are live tensors of the right dtypes and shapes, and the launch is
            // ordered on PyTorch's stream with the ops that produce and consume them.
            unsafe { launch(func, grid, block, stream, &mut slots, &e.name) }?;
        }
        // Keep the inputs (and the workspace) alive until the launches are queued (libtorch's
        // allocator reuses memory only in stream order, so queued is enough).
        drop(tensors);
        drop(workspace);
        Ok(outs)
    }
}

/// The position among the tensor inputs of region input `k`.
fn input_tensor_pos(inputs: &[Option<usize>], k: usize) -> usize {
    inputs[..k].iter().filter(|r| r.is_some()).count()
}

/// The fusion executor: fusible prims on CUDA tensors become regions compiled into CUDA kernels.
/// Put it before the torch executor: `ExecutionPlan::compile(&trace, &[&FusionExecutor, &torch])`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FusionExecutor;

impl Executor for FusionExecutor {
    fn name(&self) -> &'static str {
        "fusion"
    }
    fn claims(&self, _trace: &Trace, _bsym: &BoundSymbol) -> bool {
        false
    }
    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        Err(Error::Compile {
            executor: "fusion",
            statement: thunder_ir::printer::statement(trace, bsym),
            message: "the fusion executor compiles regions, not single ops".into(),
        })
    }
    fn fuser(&self) -> Option<&dyn Fuser> {
        Some(self)
    }
}

impl Fuser for FusionExecutor {
    fn fusible(&self, trace: &Trace, bsym: &BoundSymbol) -> bool {
        let on_cuda = bsym
            .inputs()
            .iter()
            .chain(&bsym.outputs)
            .all(|&v| match trace.ty(v) {
                ValueType::Tensor(t) => t.device.is_cuda(),
                ValueType::Number(_) => true,
            });
        on_cuda && codegen_fusible(trace, bsym)
    }

    fn compile_region(
        &self,
        trace: &Trace,
        ops: &[BoundSymbol],
        region: &Region,
    ) -> Result<Kernel> {
        let gen = |name: &str| {
            generate(trace, ops, region, name).map_err(|m| Error::Compile {
                executor: "fusion",
                statement: format!("a region of {} ops", region.ops.len()),
                message: m,
            })
        };
        // Named by what it computes: regions alike (a model's layers) share one source, which
        // NVRTC compiles once (the PTX cache is keyed by source).
        let draft = gen("thunder_region")?;
        let name = format!("thunder_region_{:016x}", fnv1a(&[draft.source.as_bytes()]));
        let kernel = gen(&name)?;
        let inputs = region
            .inputs
            .iter()
            .map(|&v| trace.tensor(v).map(|t| t.rank()))
            .collect();
        let outputs = region
            .outputs
            .iter()
            .map(|&v| {
                let t = trace.tensor(v).ok_or_else(|| Error::Compile {
                    executor: "fusion",
                    statement: trace.name_of(v).to_string(),
                    message: "a region output that is not a tensor".into(),
                })?;
                Ok((
                    t.shape.sizes().iter().map(|&s| s as i64).collect(),
                    convert::kind(t.dtype),
                ))
            })
            .collect::<Result<_>>()?;
        let device = region
            .outputs
            .iter()
            .find_map(|&v| match trace.tensor(v).map(|t| t.device) {
                Some(thunder_ir::Device::Cuda(i)) => Some(i as i32),
                _ => None,
            });
        let compiled = Arc::new(CompiledRegion::new(kernel, device, inputs, outputs));
        Ok(Box::new(move |args: &Args<'_>| compiled.run(args)))
    }
}

/// The name of CUDA device `index` as the driver reports it (`NVIDIA H200`), if there is one.
pub fn device_name(index: i32) -> Option<String> {
    drv::init().ok()?;
    drv::device::get_name(drv::device::get(index).ok()?).ok()
}
