//! Golden trace files: realistic programs printed as Python and compared exactly with the
//! checked-in text in `tests/golden/`. After an intended change, re-bless with
//! `THUNDER_BLESS=1 cargo test -p thunder-ir --test golden` and review the diff.

use std::path::PathBuf;
use std::process::Command;
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{parse_trace, DType, Device, Trace};

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn golden_dir() -> PathBuf {
    package_dir().join("tests").join("golden")
}

fn check(name: &str, trace: &Trace) {
    let text = trace.to_python();
    let path = golden_dir().join(format!("{name}.py"));
    if std::env::var_os("THUNDER_BLESS").is_some() {
        std::fs::write(&path, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run with THUNDER_BLESS=1 to create it",
            path.display()
        )
    });
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(text.lines().count()));
        panic!(
            "{} differs from the printed trace at line {}:\n  golden:  {}\n  printed: {}\nre-bless with THUNDER_BLESS=1 if the change is intended",
            path.display(),
            first + 1,
            want.lines().nth(first).unwrap_or("<end>"),
            text.lines().nth(first).unwrap_or("<end>")
        );
    }
    // The golden text is also a parser test: it reads back into the same trace.
    assert_eq!(
        &parse_trace(&want).unwrap_or_else(|e| panic!("{name}: {e}")),
        trace
    );
}

fn bf16_cuda_tiny() -> LlamaDims {
    LlamaDims {
        dtype: DType::BF16,
        device: Device::Cuda(0),
        ..LlamaDims::tiny()
    }
}

#[test]
fn llama2_7b_mlp() {
    check(
        "llama2_7b_mlp",
        &programs::llama_mlp(&LlamaDims::default()).expect("builds"),
    );
}

#[test]
fn attention_with_rope_and_gqa() {
    check(
        "attention_rope_gqa",
        &programs::llama_attention(&bf16_cuda_tiny()).expect("builds"),
    );
}

#[test]
fn lm_head_cross_entropy() {
    check(
        "lm_head_cross_entropy",
        &programs::lm_head_loss(&bf16_cuda_tiny()).expect("builds"),
    );
}

#[test]
fn llama_block_tiny_f32() {
    check(
        "llama_block_tiny",
        &programs::llama_block(&LlamaDims::tiny()).expect("builds"),
    );
}

/// Every golden file is valid Python, as CPython's own parser sees it. Skipped, saying so, when
/// no `python3` is on PATH (thunder-ir itself never needs Python).
#[test]
fn golden_files_are_valid_python() {
    let Ok(out) = Command::new("python3").arg("--version").output() else {
        eprintln!("python3 not found: skipping the CPython syntax check");
        return;
    };
    assert!(out.status.success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "py"));
    assert!(files.len() >= 4, "golden files missing: {files:?}");
    for f in files {
        let status = Command::new("python3")
            .args([
                "-c",
                "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])",
            ])
            .arg(&f)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "{} is not valid Python", f.display());
    }
}

#[test]
fn line_numbers_point_at_statements() {
    let t = programs::lm_head_loss(&bf16_cuda_tiny()).expect("builds");
    let (text, lines) = thunder_ir::printer::print_trace_with_lines(&t);
    let all: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), t.walk().len());
    for (path, line) in &lines {
        let mut bs = &t.bound_symbols[path[0]];
        for &j in &path[1..] {
            bs = &bs.subsymbols[j];
        }
        let printed = thunder_ir::printer::statement(&t, bs);
        assert!(
            all[line - 1].contains(&printed),
            "line {line}: {:?} does not hold {printed:?}",
            all[line - 1]
        );
    }
}
