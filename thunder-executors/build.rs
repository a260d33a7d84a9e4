//! Links libtorch into this crate's binaries and tests so that they run without `LD_LIBRARY_PATH`
//! and see CUDA on GPU machines: see `ci/build/torch_link.rs`, shared with the other crates that
//! link tch. Also compiles `csrc/shim.cpp`, the C ABI over the libtorch entry points tch lacks,
//! against the headers of the same libtorch.

include!("../ci/build/torch_link.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../ci/build/torch_link.rs");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Some(lib_dir) = link_libtorch() else {
        // No libtorch (torch-sys' doc-only builds): nothing links, so the shim is not needed.
        return;
    };
    let root = lib_dir.parent().unwrap_or(&lib_dir).to_path_buf();
    let include = root.join("include");
    if !include.join("ATen/ops/_fused_adamw.h").exists() {
        panic!(
            "no libtorch headers in {} (next to the libtorch torch-sys reported): the shim needs \
             the PyTorch wheel's include folder; run ci/bootstrap-env.sh (or `make env`)",
            include.display()
        );
    }
    // The same C++ ABI as libtorch (torch-sys reads the same variable; PyTorch 2.11 wheels use
    // the new ABI).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    // The CUDA runtime headers (ATen/cuda includes them): the wheel's, or the toolkit's.
    let cuda_include = [
        std::fs::canonicalize(&root)
            .ok()
            .and_then(|t| t.parent().map(|sp| sp.join("nvidia/cu13/include"))),
        std::env::var_os("CUDA_HOME").map(|h| std::path::PathBuf::from(h).join("include")),
        Some(std::path::PathBuf::from("/usr/local/cuda/include")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt/host_config.h").exists())
    .unwrap_or_else(|| {
        panic!(
            "no complete CUDA runtime headers (cuda_runtime_api.h and crt/host_config.h) next to \
             the PyTorch wheel ({}), in $CUDA_HOME/include or /usr/local/cuda/include: the \
             shim's CUDA graph functions include them. `make env` installs them into its \
             environment; into another one: pip install nvidia-cuda-crt==13.0.88",
            root.display()
        )
    });
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    // The shim calls into c10_cuda and torch_cuda (CUDA graphs, streams); every binary that links
    // this crate needs them.
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/shim.cpp")
        .include(&include)
        .include(&cuda_include)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .opt_level(2)
        .compile("thunder_shim");
}
