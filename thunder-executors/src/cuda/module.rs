//! Modules: CUDA C++ compiled (NVRTC) and loaded (the driver's PTX JIT) once per device.

use super::cache::{fnv1a, once_per_key, OnceMap};
use super::context::{arch_of, enter_device};
use super::nvrtc::compile_ptx;
use super::CudaError;
use cudarc::driver::result as drv;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

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
    pub(crate) fn functions(&self, dev: i32) -> Result<Arc<Vec<usize>>, CudaError> {
        if let Some(l) = self.loaded.lock()?.get(&dev) {
            return Ok(l.clone());
        }
        // Modules of the same source and names (a model's layers) load once per device: the
        // driver's PTX JIT is what loading costs.
        static LOADED: OnceMap<(u64, i32), Arc<Vec<usize>>> = OnceLock::new();
        let mut parts: Vec<&[u8]> = vec![self.source.as_bytes()];
        parts.extend(self.names.iter().map(|n| n.as_bytes()));
        let l = once_per_key(&LOADED, (fnv1a(&parts), dev), || self.load(dev))?;
        self.loaded.lock()?.insert(dev, l.clone());
        Ok(l)
    }

    /// Compiles the source and loads it on device `dev` (its context current).
    fn load(&self, dev: i32) -> Result<Arc<Vec<usize>>, CudaError> {
        let arch = arch_of(dev)?;
        let ptx = compile_ptx(&self.source, arch)?;
        let c = CString::new(ptx)?;
        // SAFETY: NUL-terminated PTX text, in the current (primary) context.
        let module = unsafe { drv::module::load_data(c.as_ptr() as *const c_void) }
            .map_err(CudaError::driver("cuModuleLoadData"))?;
        let funcs = self
            .names
            .iter()
            .map(|name| {
                let n = CString::new(name.as_str())?;
                // SAFETY: a module loaded above, never unloaded (kernels live as long as the
                // process).
                unsafe { drv::module::get_function(module, n) }
                    .map(|f| f as usize)
                    .map_err(CudaError::driver(format!("cuModuleGetFunction({name})")))
            })
            .collect::<Result<Vec<_>, CudaError>>()?;
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
