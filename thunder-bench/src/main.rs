//! `thunder-bench`: the thunder-rs harness. `thunder-bench llama2` trains a Llama-2 model
//! compiled and eager, `thunder-bench ops` times the memory-bound patterns of its step,
//! `thunder-bench trace` prints the traces of realistic programs built with thunder-ir,
//! `thunder-bench coverage` prints opinfo-db's coverage report (`opinfo-db/COVERAGE.md`).

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use thunder_bench::llama::{self, config::Config, Mode};
use thunder_bench::ops;
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Device, Trace};

#[derive(Parser)]
#[command(
    name = "thunder-bench",
    version,
    about = "thunder-rs benchmarks and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a Llama-2 model for a few steps in several modes (eager libtorch, thunder's compiled
    /// step) and compare: ms/step, tokens/s, TFLOP/s, MFU, peak memory, first-step time, and
    /// the losses step by step (the run fails if they diverge).
    Llama2(Box<Llama2Args>),
    /// Microbenchmarks of a Llama-2-7B training step's memory-bound patterns (RMSNorm, RoPE,
    /// SwiGLU, softmax, cross entropy; forward and backward; the AdamW step over every
    /// parameter): eager libtorch against thunder's fusion, cross-entropy and AdamW executors on
    /// cuda:0, with achieved bandwidth against the device's copy bandwidth.
    Ops {
        /// Tokens per step (batch x sequence).
        #[arg(long, default_value_t = 4096)]
        tokens: usize,
        /// Model width.
        #[arg(long, default_value_t = 4096)]
        hidden: usize,
        /// MLP width.
        #[arg(long, default_value_t = 11008)]
        intermediate: usize,
        /// Vocabulary size.
        #[arg(long, default_value_t = 32000)]
        vocab: usize,
        /// Attention heads.
        #[arg(long, default_value_t = 32)]
        heads: usize,
        /// Transformer blocks (the AdamW row updates the parameters of a Llama-2 model of these
        /// sizes: 32 blocks is Llama-2-7B's 6.7B parameters).
        #[arg(long, default_value_t = 32)]
        layers: usize,
        /// Run only the patterns whose name contains this text (case-insensitive), e.g.
        /// `--only softmax` or `--only "cross entropy"`.
        #[arg(long)]
        only: Option<String>,
    },
    /// Build a program with thunder-ir's TraceBuilder and print its trace as Python.
    Trace {
        /// Which program.
        #[arg(value_enum, default_value_t = Program::LlamaBlock)]
        program: Program,
        /// Model sizes: `llama2-7b` (Llama-2-7B's block: hidden 4096, 32 heads, seq 4096) or
        /// `tiny` (a few hundred parameters, grouped-query attention).
        #[arg(long, value_enum, default_value_t = Size::Llama27b)]
        size: Size,
        /// Print only the torch-level statements, without their decompositions into prims.
        #[arg(long)]
        no_decompositions: bool,
        /// Also parse the printed text back and check it gives the same trace.
        #[arg(long)]
        check_round_trip: bool,
    },
    /// Which ops the op database (opinfo-db) covers: op x {cpu, cuda} x {forward, grad, jvp,
    /// vmap}, grad, jvp and vmap counting the cases whose rules thunder-transforms has.
    Coverage {
        /// Print the Markdown document (the content of opinfo-db/COVERAGE.md) instead of a table.
        #[arg(long)]
        markdown: bool,
        /// Load the YAML files of this directory instead of the ones built into the binary.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Write the output to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct Llama2Args {
    /// The model: llama2-7b, llama2-13b, tiny-llama-1.1b, llama2-tiny, or auto (llama2-7b on a
    /// GPU, llama2-tiny on the CPU).
    #[arg(long, default_value = "auto")]
    model: String,
    /// Transformer blocks (overrides the model's).
    #[arg(long)]
    layers: Option<usize>,
    /// Model width.
    #[arg(long)]
    hidden: Option<usize>,
    /// Query heads.
    #[arg(long)]
    heads: Option<usize>,
    /// Key/value heads (grouped-query attention when fewer than the heads; defaults to the
    /// model's, or to --heads when that is given and the model has multi-head attention).
    #[arg(long)]
    kv_heads: Option<usize>,
    /// MLP width.
    #[arg(long)]
    intermediate: Option<usize>,
    /// Vocabulary size (padded to a multiple of 64, as LitGPT does).
    #[arg(long)]
    vocab: Option<usize>,
    /// Tokens per sequence (default: the model's block size; 4096 for Llama-2).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Sequences per step.
    #[arg(long, default_value_t = 1)]
    micro_batch: usize,
    /// bf16, f16, f32 or f64 (default: bf16 on a GPU, f32 on the CPU).
    #[arg(long)]
    dtype: Option<String>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The modes to run, in order: eager, thunder, thunder-graphs (the compiled step replayed
    /// from a CUDA graph).
    #[arg(long, default_value = "eager,thunder")]
    modes: String,
    /// Also run the compiled step from a CUDA graph (adds thunder-graphs to --modes).
    #[arg(long)]
    cuda_graphs: bool,
    /// The thunder mode's executors, highest priority first (torch is added last if missing):
    /// cross-entropy, adamw, fusion, torch.
    #[arg(long, default_value = "cross-entropy,adamw,fusion,torch")]
    executors: String,
    /// Timed steps per mode (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps after the first one.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Seed of the initial parameters and of the synthetic batch.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// AdamW's learning rate (constant; small enough that the synthetic fixed-batch run of
    /// Llama-2-7B trains smoothly in bf16, so that the modes' losses can be compared step by
    /// step: at 3e-4 the loss spikes from the second step and the trajectories part).
    #[arg(long, default_value_t = 3e-5)]
    lr: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every trace of the compiled step (Python) into this folder.
    #[arg(long)]
    print_traces: Option<PathBuf>,
    /// Data parallel: every GPU holds the model and trains on its own micro-batch; gradients
    /// are averaged (thunder: bucketed all-reduce overlapped with the backward).
    #[arg(long, conflicts_with = "fsdp")]
    ddp: bool,
    /// Fully sharded data parallel: parameters (ZeRO-3), gradients and AdamW state sharded
    /// over the GPUs.
    #[arg(long)]
    fsdp: bool,
    /// The ZeRO stage of --fsdp: 2 (gradients and optimizer state sharded) or 3 (parameters
    /// too).
    #[arg(long, requires = "fsdp", value_parser = clap::value_parser!(u8).range(2..=3))]
    zero: Option<u8>,
    /// Launch this many local processes, one GPU each (with --ddp or --fsdp). Under torchrun
    /// or SLURM (RANK/WORLD_SIZE or SLURM_PROCID set) each process is a rank instead.
    #[arg(long)]
    gpus: Option<usize>,
    /// With --gpus: skip the single-GPU thunder run that the scaling efficiency is measured
    /// against (for models that do not fit one GPU).
    #[arg(long)]
    no_baseline: bool,
    /// Megabytes of gradients (DDP) or parameters (FSDP) per collective (default: 25 for DDP,
    /// 64 for FSDP).
    #[arg(long)]
    bucket_mb: Option<f64>,
    /// FSDP ZeRO-3: how many buckets' all-gathers run ahead of the one in use (default 2).
    #[arg(long)]
    prefetch: Option<usize>,
    /// FSDP ZeRO-3: megabytes of parameters the forward keeps gathered for the backward (the
    /// last blocks), so the backward does not gather them again; more memory, less
    /// communication (default 0).
    #[arg(long)]
    keep_gathered_mb: Option<f64>,
    /// Seconds a rank waits for the others (rendezvous, NCCL setup, each collective) before it
    /// fails naming the rank that is missing: 1 to 86400 (a day).
    #[arg(
        long,
        default_value_t = 300,
        value_parser = clap::value_parser!(u64)
            .range(1..=thunder_distributed::timeout::MAX_TIMEOUT.as_secs())
    )]
    dist_timeout: u64,
    /// Time every instruction of the compiled step's first step and of one more step after the
    /// timed ones (each followed by a device synchronization), and write a summary into this
    /// folder (first_step.txt, step.txt).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// With --ddp/--fsdp: time every collective and every wait of the compiled step's last timed
    /// step (CUDA events), and write where the communication time goes into this folder
    /// (rank<N>.txt: time the compute stream stalled at waits, the communication stream's busy
    /// time, the longest stalls).
    #[arg(long)]
    comm_profile: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Program {
    /// Llama-2 SwiGLU MLP.
    LlamaMlp,
    /// Causal self-attention with RoPE.
    LlamaAttention,
    /// A whole transformer block (RMSNorm, attention, MLP, residuals).
    LlamaBlock,
    /// Final norm, lm_head and cross-entropy loss.
    LmHeadLoss,
}

#[derive(Clone, Copy, ValueEnum)]
enum Size {
    /// Llama-2-7B dimensions, bf16 on cuda:0.
    #[value(name = "llama2-7b")]
    Llama27b,
    /// Tiny f32 dimensions on the CPU.
    Tiny,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("thunder-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Llama2(a) => llama2(*a)?,
        Command::Ops {
            tokens,
            hidden,
            intermediate,
            vocab,
            heads,
            layers,
            only,
        } => {
            // (Sizes are checked by `ops::run`, before any work: `Sizes::validate`.)
            let sizes = ops::Sizes {
                tokens,
                hidden,
                intermediate,
                vocab,
                heads,
                layers,
            };
            let (rows, copy) = ops::run(&sizes, only.as_deref())?;
            let device = thunder_executors::cuda::device_name(0)
                .map_or_else(|| "cuda:0".to_string(), |n| format!("{n} (cuda:0)"));
            thunder_bench::out(&format!("{}\n", ops::table(&rows, copy, &device)))?;
        }
        Command::Trace {
            program,
            size,
            no_decompositions,
            check_round_trip,
        } => {
            let dims = match size {
                Size::Llama27b => LlamaDims {
                    batch: 1,
                    dtype: DType::BF16,
                    device: Device::Cuda(0),
                    ..LlamaDims::default()
                },
                Size::Tiny => LlamaDims::tiny(),
            };
            let trace = match program {
                Program::LlamaMlp => programs::llama_mlp(&dims)?,
                Program::LlamaAttention => programs::llama_attention(&dims)?,
                Program::LlamaBlock => programs::llama_block(&dims)?,
                Program::LmHeadLoss => programs::lm_head_loss(&dims)?,
            };
            let text = trace.to_python();
            if check_round_trip {
                let back = thunder_ir::parse_trace(&text)?;
                if back != trace {
                    return Err("the printed trace parsed back into a different trace".into());
                }
                eprintln!("round trip: the printed text parses back into the same trace");
            }
            if no_decompositions {
                thunder_bench::out(&without_decompositions(&trace))?;
            } else {
                thunder_bench::out(&text)?;
            }
            let n_prims = trace
                .walk()
                .iter()
                .filter(|b| matches!(b.op, thunder_ir::Op::Prim(_)))
                .count();
            eprintln!(
                "{}: {} torch-level statements, {} prims in their decompositions, {} values",
                trace.name,
                trace.bound_symbols.len(),
                n_prims,
                trace.values.len()
            );
        }
        Command::Coverage {
            markdown,
            dir,
            output,
        } => coverage(markdown, dir, output)?,
    }
    Ok(())
}

/// `thunder-bench coverage`.
fn coverage(
    markdown: bool,
    dir: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = match &dir {
        Some(d) => opinfo_db::OpDb::load_dir(d),
        None => opinfo_db::OpDb::builtin(),
    }
    .map_err(|e| format!("the op database does not load:\n{e}"))?;
    let text = thunder_bench::coverage::report(&db, markdown);
    match &output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => thunder_bench::out(&text)?,
    }
    let missing = db.missing_ops();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|o| o.qualified_name()).collect();
        eprintln!(
            "warning: {} ops of thunder-ir have no entry: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// The roles a `thunder-bench llama2` process plays in a `--gpus N` run.
const ROLE_VAR: &str = "THUNDER_BENCH_ROLE";
const OUT_VAR: &str = "THUNDER_BENCH_OUT";

fn llama2(a: Llama2Args) -> Result<(), Box<dyn std::error::Error>> {
    use thunder_bench::llama::dist::{Dist, Parallel};
    let parallel = match (a.ddp, a.fsdp, a.zero) {
        (true, _, _) => Some(Parallel::Ddp),
        (_, true, Some(2)) => Some(Parallel::Fsdp(thunder_distributed::Zero::Two)),
        (_, true, _) => Some(Parallel::Fsdp(thunder_distributed::Zero::Three)),
        _ => None,
    };
    if a.bucket_mb.is_some_and(|m| m.is_nan() || m <= 0.0) {
        return Err("--bucket-mb must be positive".into());
    }
    if a.keep_gathered_mb.is_some_and(|m| m.is_nan() || m < 0.0) {
        return Err("--keep-gathered-mb must be 0 or more".into());
    }
    if a.comm_profile.is_some() && parallel.is_none() {
        return Err("--comm-profile times collectives: add --ddp or --fsdp (and --gpus N)".into());
    }
    let role = std::env::var(ROLE_VAR).unwrap_or_default();
    let env = thunder_distributed::DistEnv::from_env()?;
    if role.is_empty() && env.is_none() {
        if let Some(n) = a.gpus.filter(|_| parallel.is_some()) {
            return launch(&a, n);
        }
        if a.gpus.is_some() {
            return Err("--gpus needs --ddp or --fsdp".into());
        }
    }
    let parallel = if role == "baseline" { None } else { parallel };
    let env = if role == "baseline" { None } else { env };
    if env.is_some() && parallel.is_none() {
        return Err("RANK/WORLD_SIZE (torchrun) or SLURM_PROCID are set: add --ddp or --fsdp, or unset them".into());
    }
    if parallel.is_some() && env.is_none() {
        return Err(
            "--ddp/--fsdp without --gpus needs a launcher (torchrun, SLURM); add --gpus N".into(),
        );
    }
    let device = match &env {
        Some(e) => {
            let d = llama::parse_device(&format!("cuda:{}", e.local_rank))
                .map_err(|err| format!("rank {} (LOCAL_RANK {}): {err}", e.rank, e.local_rank))?;
            d
        }
        None => llama::parse_device(&a.device)?,
    };
    let dist = match (&env, parallel) {
        (Some(e), Some(p)) => {
            let mut d = Dist::join(p, e, std::time::Duration::from_secs(a.dist_timeout))?;
            d.bucket_bytes = a.bucket_mb.map(|m| (m * (1 << 20) as f64) as usize);
            d.prefetch = a.prefetch;
            d.keep_gathered_bytes = a
                .keep_gathered_mb
                .map(|m| (m * (1u64 << 20) as f64) as usize);
            Some(d)
        }
        _ => None,
    };
    let name = match (a.model.as_str(), device) {
        ("auto", Device::Cpu) => "llama2-tiny",
        ("auto", Device::Cuda(_)) => "llama2-7b",
        (n, _) => n,
    };
    let mut config = Config::named(name)?;
    let mha = config.kv_heads == config.heads;
    if let Some(v) = a.layers {
        config.layers = v;
    }
    if let Some(v) = a.hidden {
        config.hidden = v;
    }
    if let Some(v) = a.heads {
        config.heads = v;
        if mha {
            config.kv_heads = v;
        }
    }
    if let Some(v) = a.kv_heads {
        config.kv_heads = v;
    }
    if let Some(v) = a.intermediate {
        config.intermediate = v;
    }
    if let Some(v) = a.vocab {
        config.vocab = v;
    }
    let dtype = match (&a.dtype, device) {
        (Some(d), _) => llama::parse_dtype(d)?,
        (None, Device::Cpu) => DType::F32,
        (None, Device::Cuda(_)) => DType::BF16,
    };
    let mut opts = llama::Options {
        seq_len: a.seq_len.unwrap_or(config.seq_len),
        config,
        micro_batch: a.micro_batch,
        dtype,
        device,
        modes: {
            let mut modes = Mode::parse_list(&a.modes)?;
            if a.cuda_graphs && !modes.contains(&Mode::ThunderGraphs) {
                modes.push(Mode::ThunderGraphs);
            }
            modes
        },
        executors: a
            .executors
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        steps: a.steps,
        warmup: a.warmup,
        seed: a.seed,
        lr: a.lr,
        print_traces: a.print_traces,
        profile: a.profile,
        comm_profile: a.comm_profile,
        progress: std::io::stderr().is_terminal() && dist.as_ref().is_none_or(|d| d.rank == 0),
    };
    if role == "baseline" {
        opts.modes = vec![Mode::Thunder];
    }
    let report = llama::run_with(&opts, dist.as_ref())?;
    let rank0 = dist.as_ref().is_none_or(|d| d.rank == 0);
    if rank0 && role != "baseline" {
        thunder_bench::out(&format!("{}\n", report.table()))?;
    }
    if let Some(path) = std::env::var_os(OUT_VAR).filter(|_| rank0) {
        std::fs::write(&path, report.to_json())
            .map_err(|e| format!("writing {}: {e}", PathBuf::from(&path).display()))?;
    }
    if let Some(path) = a.json.as_ref().filter(|_| rank0 && role != "baseline") {
        std::fs::write(path, report.to_json())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(dir) = &opts.print_traces {
        eprintln!("traces of the compiled step written to {}", dir.display());
    }
    report.check_losses(dtype)?;
    Ok(())
}

/// `--gpus N`: the single-GPU thunder baseline (unless `--no-baseline`), then `n` ranks, each
/// a child process of this binary with torchrun's variables; then the scaling table.
fn launch(a: &Llama2Args, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use std::process::Command;
    let have = tch::Cuda::device_count() as usize;
    if n == 0 || n > have {
        return Err(
            format!("--gpus {n}: this machine has {have} CUDA devices; give 1..={have}").into(),
        );
    }
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::env::temp_dir().join(format!("thunder-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let read = |p: &std::path::Path| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let mut baseline = None;
    if !a.no_baseline {
        eprintln!("thunder-bench: the single-GPU thunder run (the scaling baseline) on cuda:0");
        let out = dir.join("baseline.json");
        let st = Command::new(&exe)
            .args(&args)
            .env(ROLE_VAR, "baseline")
            .env(OUT_VAR, &out)
            .env("CUDA_VISIBLE_DEVICES", first_visible_device())
            .stdout(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            return Err(
                "the single-GPU baseline failed (see above); --no-baseline skips it".into(),
            );
        }
        baseline = read(&out);
    }
    let port = match std::env::var("MASTER_PORT") {
        Ok(p) => p,
        Err(_) => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
            .to_string(),
    };
    eprintln!(
        "thunder-bench: {n} ranks on cuda:0..{}, rendezvous at 127.0.0.1:{port}",
        n - 1
    );
    // The ranks' rendezvous admits only processes that know this secret (a caller's own wins).
    use thunder_distributed::token::{random_secret, TOKEN_VAR};
    let token = match std::env::var(TOKEN_VAR) {
        Ok(t) => t,
        Err(_) => random_secret()?,
    };
    let out = dir.join("rank0.json");
    let mut kids = Vec::with_capacity(n);
    for r in 0..n {
        kids.push(
            Command::new(&exe)
                .args(&args)
                .env(ROLE_VAR, "rank")
                .env(TOKEN_VAR, &token)
                .env(OUT_VAR, &out)
                .env("RANK", r.to_string())
                .env("WORLD_SIZE", n.to_string())
                .env("LOCAL_RANK", r.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .spawn()?,
        );
    }
    let mut failed = Vec::new();
    for (r, mut k) in kids.into_iter().enumerate() {
        let st = k.wait()?;
        if !st.success() {
            failed.push(format!("rank {r} {st}"));
        }
    }
    if !failed.is_empty() {
        return Err(format!("{} (their messages are above)", failed.join(", ")).into());
    }
    if let (Some(b), Some(d)) = (baseline, read(&out)) {
        thunder_bench::out(&format!("{}\n", scaling_table(&b, &d, n)))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The first device of `CUDA_VISIBLE_DEVICES` (or 0), for the single-GPU baseline.
fn first_visible_device() -> String {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').next().map(str::to_string))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "0".into())
}

/// Tokens/s per GPU against the single-GPU thunder run.
fn scaling_table(base: &serde_json::Value, dist: &serde_json::Value, n: usize) -> String {
    let tok = |r: &serde_json::Value, mode: &str| {
        r["modes"].as_array()?.iter().find(|m| m["mode"] == mode)?["tokens_per_s"].as_f64()
    };
    let one = tok(base, "thunder");
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "mode",
        "GPUs",
        "tokens/s per GPU",
        "tokens/s total",
        "scaling efficiency",
    ]);
    if let Some(x) = one {
        t.add_row(vec![
            "thunder".into(),
            "1".into(),
            format!("{x:.0}"),
            format!("{x:.0}"),
            "-".into(),
        ]);
    }
    for mode in ["eager", "thunder"] {
        if let Some(x) = tok(dist, mode) {
            let eff = one.map_or_else(|| "-".into(), |o| format!("{:.1}%", 100.0 * x / o));
            t.add_row(vec![
                mode.to_string(),
                n.to_string(),
                format!("{x:.0}"),
                format!("{:.0}", x * n as f64),
                eff,
            ]);
        }
    }
    format!("scaling against the single-GPU thunder run (same per-GPU micro-batch):\n{t}")
}

fn without_decompositions(t: &Trace) -> String {
    let mut flat = t.clone();
    for b in &mut flat.bound_symbols {
        b.subsymbols.clear();
    }
    flat.to_python()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_timeout_takes_1_to_86400_seconds_and_nothing_else() {
        let parse = |v: &str| Cli::try_parse_from(["thunder-bench", "llama2", "--dist-timeout", v]);
        for bad in [
            "0",
            "86401",
            "18446744073709551615",
            "1e30",
            "inf",
            "NaN",
            "-1",
            "0.5",
        ] {
            assert!(parse(bad).is_err(), "--dist-timeout {bad} was accepted");
        }
        for good in ["1", "300", "86400"] {
            assert!(parse(good).is_ok(), "--dist-timeout {good} was refused");
        }
    }
}
