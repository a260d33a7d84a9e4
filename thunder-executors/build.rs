//! Links libtorch into this crate's binaries and tests so that they run without `LD_LIBRARY_PATH`
//! and see CUDA on GPU machines: see `ci/build/torch_link.rs`, shared with the other crates that
//! link tch.

include!("../ci/build/torch_link.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../ci/build/torch_link.rs");
    link_libtorch();
}
