//! `thunder-bench llama2` as a test: the compiled step trains like the eager one.
//!
//! - On the CPU (CI): `llama2-tiny` in float32, compiled and eager losses agree step by step over
//!   5 steps; the compiled step's loss goes down over 20 steps on the fixed batch.
//! - On a GPU (the GPU bundle): the same parity in bf16 with every executor.

use thunder_bench::llama::{self, config::Config, BenchError, Mode, Options};
use thunder_ir::{DType, Device};

fn options(device: Device, dtype: DType, modes: Vec<Mode>, steps: usize) -> Options {
    Options {
        config: Config::named("llama2-tiny").unwrap(),
        micro_batch: 2,
        seq_len: 32,
        dtype,
        device,
        modes,
        executors: llama::EXECUTORS.iter().map(|s| s.to_string()).collect(),
        steps,
        warmup: 0,
        seed: 7,
        lr: 3e-3,
        print_traces: None,
        progress: false,
        profile: None,
        comm_profile: None,
    }
}

fn parity(device: Device, dtype: DType) {
    let o = options(device, dtype, vec![Mode::Eager, Mode::Thunder], 4);
    let r = llama::run(&o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.modes.len(), 2);
    let (eager, thunder) = (&r.modes[0].losses, &r.modes[1].losses);
    assert_eq!(eager.len(), 5, "first step + 4 timed");
    let (atol, rtol) = llama::loss_tolerance(dtype);
    for (s, (a, b)) in thunder.iter().zip(eager).enumerate() {
        eprintln!("step {}: eager {b:.6}, thunder {a:.6}", s + 1);
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "step {}: eager {b}, thunder {a}\n{}",
            s + 1,
            r.table()
        );
    }
    // The parameters moved: the losses are not all equal.
    assert!(eager[4] < eager[0], "{eager:?}");
    r.check_losses(dtype).unwrap();
}

#[test]
fn compiled_and_eager_losses_agree_step_by_step_on_the_cpu() {
    parity(Device::Cpu, DType::F32);
}

#[test]
fn compiled_and_eager_losses_agree_step_by_step_on_cuda_in_bf16() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: this test runs in the GPU bundle");
        return;
    }
    parity(Device::Cuda(0), DType::BF16);
}

#[test]
fn the_compiled_step_lowers_the_loss_on_a_fixed_batch() {
    let o = options(Device::Cpu, DType::F32, vec![Mode::Thunder], 19);
    let r = llama::run(&o).unwrap_or_else(|e| panic!("{e}"));
    let l = &r.modes[0].losses;
    assert_eq!(l.len(), 20);
    eprintln!("losses: {l:?}");
    assert!(
        l[19] < 0.8 * l[0],
        "the loss did not go down over 20 steps: {l:?}"
    );
    // It goes down on most steps, not by accident once.
    let down = l.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(down >= 15, "{l:?}");
}

#[test]
fn bad_options_give_one_line_errors_that_say_what_to_change() {
    let mut o = options(Device::Cpu, DType::F32, vec![Mode::Thunder], 1);
    o.executors = vec!["nvfuser".into()];
    let e = llama::run(&o).unwrap_err().to_string();
    assert!(
        e.contains("unknown executor \"nvfuser\"")
            && e.contains("cross-entropy, adamw, fusion, torch"),
        "{e}"
    );
    let mut o = options(Device::Cpu, DType::F32, vec![Mode::Thunder], 1);
    o.config.heads = 3;
    let e = llama::run(&o).unwrap_err().to_string();
    assert!(
        e.contains("--hidden 64 is not a multiple of --heads 3"),
        "{e}"
    );
    let n = tch::Cuda::device_count();
    let e = llama::parse_device(&format!("cuda:{n}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--device cuda:"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = Mode::parse_list("eager,graphs").unwrap_err().to_string();
    assert!(e.contains("unknown mode \"graphs\""), "{e}");
    let e = llama::parse_dtype("int8").unwrap_err().to_string();
    assert!(e.contains("bf16, f16, f32 or f64"), "{e}");
    assert!(matches!(
        Config::named("llama-3"),
        Err(BenchError::Usage(_))
    ));
}

#[test]
fn diverging_losses_fail_the_run() {
    let o = options(Device::Cpu, DType::F32, vec![Mode::Eager, Mode::Thunder], 1);
    let mut r = llama::run(&o).unwrap_or_else(|e| panic!("{e}"));
    r.check_losses(DType::F32).unwrap();
    r.modes[1].losses[1] += 0.1;
    let e = r.check_losses(DType::F32).unwrap_err().to_string();
    assert!(e.contains("the losses diverge at step 2"), "{e}");
}

/// The layers of a model compile to the same kernels: an 8-layer step has no more distinct
/// kernel sources than a 4-layer one (only the first and last layers differ from the middle
/// ones), so NVRTC's work does not grow with depth.
#[test]
fn every_layer_shares_the_first_layers_kernels() {
    use thunder_executors::fusion::generate;
    use thunder_executors::{ExecutionPlan, FusionExecutor, TorchExecutor};
    let distinct = |layers: usize| {
        let mut c = Config::named("llama2-tiny").unwrap();
        c.layers = layers;
        let t = llama::model::loss_trace(&c, 2, 32, DType::BF16, Device::Cuda(0)).unwrap();
        let wrt = t.inputs[llama::model::DATA_INPUTS..].to_vec();
        let fb = thunder_transforms::forward_backward(&t, &wrt).unwrap();
        let mut sources = std::collections::HashSet::new();
        let mut regions = 0;
        for tr in [&fb.forward, &fb.backward] {
            let p = ExecutionPlan::compile(tr, &[&FusionExecutor, &TorchExecutor::new()])
                .unwrap_or_else(|e| panic!("{e}"));
            let claimed = p.claimed();
            let ops: Vec<_> = claimed.ops.iter().map(|o| o.bsym.clone()).collect();
            for r in claimed.regions.iter().filter(|r| !r.ops.is_empty()) {
                regions += 1;
                let k = generate(&claimed.trace, &ops, r, "k").unwrap();
                sources.insert(k.source);
            }
        }
        (regions, sources.len())
    };
    let (r4, s4) = distinct(4);
    let (r8, s8) = distinct(8);
    eprintln!("4 layers: {r4} regions, {s4} sources; 8 layers: {r8} regions, {s8} sources");
    assert!(r8 > 3 * r4 / 2, "{r4} {r8}");
    assert!(s8 <= s4, "4 layers: {s4} kernel sources, 8 layers: {s8}");
}

/// The thunder-bench binary: cargo's, or `THUNDER_BENCH_EXE` where the test binary travelled
/// without its build folder (the GPU bundle sets it to its own copy).
fn bench_exe() -> std::path::PathBuf {
    let exe = std::env::var_os("THUNDER_BENCH_EXE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_thunder-bench").into());
    assert!(
        exe.is_file(),
        "{} does not exist: build it (cargo build -p thunder-bench), or set THUNDER_BENCH_EXE",
        exe.display()
    );
    exe
}

/// `thunder-bench llama2 ARGS` with `env`: (success, stderr).
fn bench(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut all = vec!["llama2"];
    all.extend_from_slice(args);
    bench_command(&all, env)
}

/// `thunder-bench ARGS` (a subcommand first) with `env`: (success, stderr).
fn bench_command(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = std::process::Command::new(bench_exe());
    c.args(args);
    for v in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "SLURM_PROCID",
        "THUNDER_BENCH_ROLE",
    ] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn distributed_options_that_cannot_work_are_one_line_errors() {
    let n = tch::Cuda::device_count();
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        (
            vec!["--fsdp".into()],
            vec![],
            "--ddp/--fsdp without --gpus needs a launcher (torchrun, SLURM); add --gpus N".into(),
        ),
        (
            vec!["--gpus".into(), "2".into()],
            vec![],
            "--gpus needs --ddp or --fsdp".into(),
        ),
        (
            vec!["--comm-profile".into(), "prof".into()],
            vec![],
            "--comm-profile times collectives: add --ddp or --fsdp".into(),
        ),
        (
            vec!["--ddp".into(), "--gpus".into(), (n + 1).to_string()],
            vec![],
            format!("this machine has {n} CUDA devices"),
        ),
        (
            vec![],
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "2"),
                ("LOCAL_RANK", "0"),
                ("MASTER_ADDR", "localhost"),
                ("MASTER_PORT", "29511"),
            ],
            "add --ddp or --fsdp, or unset them".into(),
        ),
        (
            vec!["--ddp".into()],
            vec![("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")],
            "MASTER_ADDR is not set".into(),
        ),
    ];
    for (args, env, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, err) = bench(&a, &env);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(&want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // clap's own checks.
    let (ok, err) = bench(&["--zero", "3"], &[]);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(!ok && err.contains("--fsdp"), "{err}");
    let (ok, err) = bench(&["--ddp", "--fsdp"], &[]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

/// `--cuda-graphs` adds the thunder-graphs mode. On the CPU it runs uncaptured and says why;
/// on a GPU (the GPU bundle) the step is captured and replayed, with the same losses as the
/// uncaptured compiled step.
#[test]
fn cuda_graphs_mode_runs_and_matches_the_compiled_step() {
    let device = if tch::Cuda::is_available() {
        "cuda"
    } else {
        "cpu"
    };
    let dir = std::env::temp_dir().join(format!("thunder-graphs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let json_arg = json.to_str().unwrap();
    let (ok, err) = bench(
        &[
            "--model",
            "llama2-tiny",
            "--device",
            device,
            "--steps",
            "4",
            "--warmup",
            "1",
            "--modes",
            "thunder",
            "--cuda-graphs",
            "--json",
            json_arg,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(
        err.contains("thunder-graphs: the step runs uncaptured: it is on the CPU"),
        device == "cpu",
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let modes = report["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(names, ["thunder", "thunder-graphs"]);
    // The same kernels in the same order: the same losses, bit for bit.
    assert_eq!(modes[0]["losses"], modes[1]["losses"], "{report}");
    let (ok, err) = bench(&["--modes", "thunder,graphs"], &[]);
    assert!(!ok && err.contains("thunder-graphs"), "{err}");
}

/// Asserts that `thunder-bench ARGS` fails with one line on stderr that contains `want`, and
/// does not panic.
fn refused(args: &[&str], want: &str) -> String {
    let (ok, err) = bench_command(args, &[]);
    assert!(!ok, "{args:?} should fail: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: want {want:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    err
}

/// Sizes that make no model, or none libtorch can hold, are one-line errors naming the flag,
/// before any work (`--vocab 18446744073709551615` used to panic on an overflow).
#[test]
fn llama2_sizes_that_cannot_work_name_the_flag_to_change() {
    let max = usize::MAX.to_string();
    let i64_max = i64::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--heads", "0"], "--heads must be at least 1"),
        (vec!["--kv-heads", "0"], "--kv-heads must be at least 1"),
        (vec!["--layers", "0"], "--layers must be at least 1"),
        (vec!["--layers", "5000"], "--layers 5000 is more than 1024"),
        (
            vec!["--micro-batch", "0"],
            "--micro-batch must be at least 1",
        ),
        (vec!["--seq-len", "0"], "--seq-len must be at least 1"),
        (vec!["--steps", "0"], "--steps must be at least 1"),
        (
            vec!["--vocab", &max],
            "--vocab 18446744073709551615 is too large",
        ),
        (
            vec![
                "--hidden",
                "4611686018427387904",
                "--heads",
                "2",
                "--kv-heads",
                "2",
            ],
            "lower --vocab or --hidden",
        ),
        (
            vec!["--seq-len", &i64_max],
            "lower --seq-len or --micro-batch",
        ),
        (
            vec!["--micro-batch", &max, "--seq-len", "2"],
            "lower --seq-len or --micro-batch",
        ),
        (
            vec!["--steps", &max, "--warmup", "1"],
            "add up to more steps",
        ),
        (vec!["--lr", "NaN"], "--lr NaN is not a learning rate"),
        (vec!["--lr", "inf"], "--lr inf is not a learning rate"),
        (vec!["--device", "cuda:4294967296"], "is not a device"),
    ];
    for (args, want) in cases {
        let mut all = vec!["llama2", "--model", "llama2-tiny"];
        if !args.contains(&"--device") {
            all.extend(["--device", "cpu"]);
        }
        all.extend(args);
        refused(&all, want);
    }
}

/// `thunder-bench ops` checks its sizes before anything else (CUDA included): `--heads 0` used
/// to panic on a division by zero.
#[test]
fn ops_sizes_that_cannot_work_name_the_flag_to_change() {
    let max = usize::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--heads", "0"], "--heads must be at least 1"),
        (vec!["--tokens", "0"], "--tokens must be at least 1"),
        (vec!["--hidden", "0"], "--hidden must be at least 1"),
        (vec!["--layers", "0"], "--layers must be at least 1"),
        (
            vec!["--layers", "100000"],
            "--layers 100000 is more than 1024",
        ),
        (vec!["--hidden", "4095"], "--heads 32"),
        (
            vec!["--hidden", "4160", "--heads", "64"],
            "RoPE needs an even head width",
        ),
        (vec!["--tokens", &max], "lower --tokens or --hidden"),
        (
            vec!["--vocab", "4611686018427387904"],
            "lower --tokens or --vocab",
        ),
        (
            vec!["--intermediate", &max],
            "lower --tokens or --intermediate",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["ops"];
        all.extend(args);
        refused(&all, want);
    }
}

/// A run that cannot fit the device is refused before it makes a tensor, with the estimate, the
/// free memory and the flag to lower: `--seq-len 100000000` used to be killed by the OS without
/// a word. Its estimate (over 700 GiB) exceeds any test machine's memory.
#[test]
fn a_run_that_cannot_fit_is_refused_before_it_starts() {
    let t0 = std::time::Instant::now();
    let err = refused(
        &[
            "llama2",
            "--model",
            "llama2-tiny",
            "--device",
            "cpu",
            "--seq-len",
            "100000000",
        ],
        "not enough memory on cpu: llama2-tiny (micro-batch 1, seq 100000000, f32)",
    );
    for want in [
        "needs at least",
        "GiB is free",
        "lower --seq-len to at most",
    ] {
        assert!(err.contains(want), "{err}");
    }
    assert!(t0.elapsed().as_secs() < 60, "{:?}", t0.elapsed());
    // The default CPU run's estimate lets it through (the other tests run it).
    let o = options(Device::Cpu, DType::F32, vec![Mode::Eager, Mode::Thunder], 1);
    llama::check_memory(&o, None).unwrap();
}
