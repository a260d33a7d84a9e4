//! `thunder-bench`: the thunder-rs harness.
//!
//! Today it prints traces of realistic programs built with thunder-ir (`thunder-bench trace
//! llama-block`); the Llama-2 training benchmark (issue 6) will be added as `thunder-bench llama2`.

mod ops;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
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
        Command::Ops {
            tokens,
            hidden,
            intermediate,
            vocab,
            heads,
            layers,
            only,
        } => {
            if hidden % heads != 0 {
                return Err(
                    format!("--hidden {hidden} must be a multiple of --heads {heads}").into(),
                );
            }
            let sizes = ops::Sizes {
                tokens,
                hidden,
                intermediate,
                vocab,
                heads,
                layers,
            };
            let (rows, copy) = ops::run(&sizes, only.as_deref())?;
            let device = thunder_executors::fusion::device_name(0)
                .map_or_else(|| "cuda:0".to_string(), |n| format!("{n} (cuda:0)"));
            println!("{}", ops::table(&rows, copy, &device));
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
                print!("{}", without_decompositions(&trace));
            } else {
                print!("{text}");
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
    }
    Ok(())
}

fn without_decompositions(t: &Trace) -> String {
    let mut flat = t.clone();
    for b in &mut flat.bound_symbols {
        b.subsymbols.clear();
    }
    flat.to_python()
}
