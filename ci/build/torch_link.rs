// Shared by the build scripts of the crates whose binaries and tests link libtorch (included with
// `include!`): thunder-executors and opinfo-db so far; thunder-bench, thunder-py and
// thunder-distributed will include it when they link tch.
//
// torch-sys (tch's FFI crate, `links = "tch"`) tells the build scripts of the crates that depend on
// it directly where libtorch lives, as `DEP_TCH_LIBTORCH_LIB`; each including crate depends on
// torch-sys for that alone. With that folder this adds two link arguments:
//
// - `-Wl,-rpath,<lib dir>`: torch-sys adds `-L` but no run path, so without it every binary needs
//   `LD_LIBRARY_PATH` to find `libtorch.so`. The linker writes it as RUNPATH, which `LD_LIBRARY_PATH`
//   still overrides: that is how `ci/gpu-bundle.sh` runs these binaries on another machine.
// - `-Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed`, when the folder has `libtorch_cuda.so`: no
//   symbol of libtorch_cuda is referenced, so under rustc's default `--as-needed` the linker drops it,
//   libtorch never registers its CUDA backend, and `tch::Cuda::is_available()` is false on a GPU
//   machine.
//
// `cargo:rustc-link-arg` applies to the including package's own binaries, tests, benches and
// examples only; it does not propagate to dependents, hence one include per crate. Doc tests get
// neither: a doc test that calls into libtorch must be `no_run`.
//
// It also bakes the folder into the crate as `THUNDER_LIBTORCH_LIB_DIR`.

/// Emits the link arguments described above; returns the libtorch lib folder, if torch-sys gave one.
#[allow(dead_code)]
fn link_libtorch() -> Option<std::path::PathBuf> {
    let lib_dir = match std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            // torch-sys with its `doc-only` feature (docs.rs) links nothing and reports no folder.
            println!(
                "cargo:warning=torch-sys reported no libtorch folder (DEP_TCH_LIBTORCH_LIB); \
                 binaries will need LD_LIBRARY_PATH"
            );
            println!("cargo:rustc-env=THUNDER_LIBTORCH_LIB_DIR=");
            return None;
        }
    };
    let lib = lib_dir.display();
    // torch-sys reruns only when its variables change, so after `make clean-env` (or a moved
    // cache) a build gets this far with the folder gone; say why here, not as a linker error.
    let torch_cpu = lib_dir.join("libtorch_cpu.so");
    println!("cargo:rerun-if-changed={}", torch_cpu.display());
    if !torch_cpu.exists() {
        panic!(
            "no libtorch in {lib} (the folder torch-sys reported): run ci/bootstrap-env.sh \
             (or `make env`) to make the .libtorch link to the pinned PyTorch wheel"
        );
    }
    println!("cargo:rustc-env=THUNDER_LIBTORCH_LIB_DIR={lib}");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if lib_dir.join("libtorch_cuda.so").exists() {
        // The -L for -ltorch_cuda comes from torch-sys' rustc-link-search.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    Some(lib_dir)
}
