//! Links libtorch (see `ci/build/torch_link.rs`); the extension module also finds it next to
//! itself in an installed environment (`site-packages/thunder/_C*.so` -> `site-packages/torch/lib`).

include!("../ci/build/torch_link.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../ci/build/torch_link.rs");
    link_libtorch();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
