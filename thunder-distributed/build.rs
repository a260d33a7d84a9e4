//! Links libtorch into the test binaries and the NCCL executor (see `ci/build/torch_link.rs`).

include!("../ci/build/torch_link.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../ci/build/torch_link.rs");
    link_libtorch();
}
