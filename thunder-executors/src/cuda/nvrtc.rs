//! NVRTC: finding the CUDA toolchain at run time and compiling CUDA C++ to PTX.
//!
//! NVRTC and the CUDA headers are found at run time: `THUNDER_CUDA_HOME`, the PyTorch wheel's
//! `nvidia/cu13` (next to the libtorch this process uses or was built with), `CUDA_HOME`,
//! `/usr/local/cuda`. The wheel ships both, so kernels compile on machines without a GPU.

use super::cache::{disk_cache, fnv1a, once_per_key, OnceMap};
use super::CudaError;
use cudarc::nvrtc::{self, CompileOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the CUDA headers are, once NVRTC is loaded.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The folder with `cuda_bf16.h`.
    pub include: PathBuf,
}

/// Where CUDA (NVRTC and the headers) may be, in order of preference.
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

/// The folders `roots`, comma-separated (what an error says was searched).
fn joined(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads NVRTC and finds the CUDA headers (once per process).
pub fn toolchain() -> Result<&'static Toolchain, CudaError> {
    static TC: OnceLock<Result<Toolchain, CudaError>> = OnceLock::new();
    TC.get_or_init(|| {
        let roots = cuda_roots();
        // SAFETY: loading a shared library runs its initializers; libnvrtc's are benign.
        let present = unsafe { nvrtc::sys::is_culib_present() };
        if !present {
            // Load it by path: a later dlopen by soname (cudarc's) finds the loaded library.
            let found = roots
                .iter()
                .flat_map(|r| [r.join("lib"), r.join("lib64")])
                .find_map(|d| {
                    let p = d.join("libnvrtc.so.13");
                    // SAFETY: as above.
                    unsafe { libloading::Library::new(&p) }.ok()
                });
            match found {
                Some(lib) => std::mem::forget(lib),
                None => {
                    return Err(CudaError::NvrtcNotFound {
                        searched: joined(&roots),
                    })
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
            .ok_or_else(|| CudaError::HeadersNotFound {
                searched: joined(&roots),
            })?;
        Ok(Toolchain { include })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Compiles `source` to PTX for `arch` (`compute_90`), through the in-memory and disk caches.
/// A compile error carries NVRTC's log and the numbered source.
pub fn compile_ptx(source: &str, arch: &'static str) -> Result<String, CudaError> {
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

fn compile_ptx_uncached(source: &str, arch: &'static str, key: u64) -> Result<String, CudaError> {
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
            return Err(CudaError::Compile {
                log,
                numbered_source: numbered,
            });
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
