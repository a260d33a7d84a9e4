//! Gives this crate's integration tests (`tests/*.rs`, which link libtorch through the
//! dev-dependencies tch, thunder-executors and opinfo-db) a run path to libtorch, as
//! `ci/build/torch_link.rs` does for the crates that depend on libtorch, so that `cargo test`
//! needs no `LD_LIBRARY_PATH`; and links `libtorch_cuda` with `--no-as-needed`, without which
//! libtorch never registers its CUDA backend (see that file).
//!
//! The library does not depend on libtorch, and nothing here touches it: the arguments are
//! `rustc-link-arg-tests` (integration tests only, never the library or its dependents), and this
//! script does nothing when `LIBTORCH` is unset (a build without libtorch, or libtorch found some
//! other way: then the tests need `LD_LIBRARY_PATH`). It cannot take the folder from torch-sys
//! (`DEP_TCH_LIBTORCH_LIB`): cargo hands a build script the `links` metadata of normal
//! dependencies only, and libtorch must stay out of those. So it reads the variables torch-sys
//! reads: `LIBTORCH_LIB` (or `LIBTORCH`) + `/lib`; `.cargo/config.toml` sets `LIBTORCH`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    let Some(root) = ["LIBTORCH_LIB", "LIBTORCH"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|s| !s.is_empty()))
    else {
        return;
    };
    let dir = PathBuf::from(root).join("lib");
    let torch_cpu = dir.join("libtorch_cpu.so");
    println!("cargo:rerun-if-changed={}", torch_cpu.display());
    if !torch_cpu.exists() {
        // Not a libtorch to point at (tch's own build says what is wrong, when the tests build).
        return;
    }
    let lib = dir.display();
    println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{lib}");
    if dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-tests=-L{lib}");
        println!("cargo:rustc-link-arg-tests=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-tests=-ltorch_cuda");
        println!("cargo:rustc-link-arg-tests=-Wl,--as-needed");
    }
}
