//! Golden backward traces: readable gradients are a feature. Re-bless with
//! `THUNDER_BLESS=1 cargo test -p thunder-transforms --test grad_golden`.
//! (Numerics are checked against PyTorch autograd in `tests/grad.rs`.)

use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{parse_trace, DType, Device, Trace};
use thunder_transforms::grad;

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn check(name: &str, t: &Trace) {
    let text = t.to_python();
    let path = package_dir()
        .join("tests/golden")
        .join(format!("{name}.py"));
    if std::env::var_os("THUNDER_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bless with THUNDER_BLESS=1", path.display()));
    assert!(
        want == text,
        "{} differs from the printed trace; re-bless with THUNDER_BLESS=1 if intended",
        path.display()
    );
    assert_eq!(&parse_trace(&want).expect("parses"), t);
}

fn wrt_params(t: &Trace) -> Vec<thunder_ir::Value> {
    t.inputs
        .iter()
        .copied()
        .filter(|&v| t.tensor(v).is_some_and(|m| m.requires_grad))
        .collect()
}

#[test]
fn grad_of_llama_mlp() {
    let t = programs::llama_mlp(&LlamaDims::tiny()).unwrap();
    check("grad_llama_mlp", &grad(&t, &wrt_params(&t)).unwrap());
}

#[test]
fn grad_of_cross_entropy_head() {
    let d = LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::tiny()
    };
    let t = programs::lm_head_loss(&d).unwrap();
    check(
        "grad_lm_head_cross_entropy",
        &grad(&t, &wrt_params(&t)).unwrap(),
    );
}

#[test]
fn grad_of_attention() {
    let t = programs::llama_attention(&LlamaDims::tiny()).unwrap();
    check(
        "grad_attention_rope_gqa",
        &grad(&t, &wrt_params(&t)).unwrap(),
    );
}

#[test]
fn forward_backward_of_llama_mlp() {
    let t = programs::llama_mlp(&LlamaDims::tiny()).unwrap();
    let fb = thunder_transforms::forward_backward(&t, &wrt_params(&t)).unwrap();
    check("forward_llama_mlp", &fb.forward);
    check("backward_llama_mlp", &fb.backward);
}
