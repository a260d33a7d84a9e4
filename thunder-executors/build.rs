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
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/shim.cpp")
        .include(&include)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .opt_level(2)
        .compile("thunder_shim");
}
