//! A lower bound of a training run's peak memory from its sizes alone, checked against the
//! device's free memory ([`crate::memory`]) before any tensor is made: a run that cannot fit is
//! refused with what to lower, instead of being killed by the OS (on the CPU) or failing midway.
//!
//! The bound counts only what must be live at once, so a run it refuses cannot fit (one it lets
//! through may still run out, with the usual out-of-memory error):
//! - the parameters and both AdamW moments (in the parameters' dtype), the whole run;
//! - the batch: token ids and targets (int64), the RoPE tables;
//! - the larger of the gradients (all live when the backward ends) and the activations saved for
//!   the backward with the logits (all live when it starts).
//!
//! What a mode saves, per block and token (`H` the width, `K` the key/value width, `I` the MLP
//! width):
//! - eager (libtorch autograd): `7H + 2K + 4I`: both norms' inputs, the inputs of the qkv, output
//!   and MLP projections, the query, the attention output, key and value, SiLU's input and output,
//!   the up projection and the product; then the last hidden state and its norm, the log-softmax
//!   and, for a moment beside it, the logits.
//! - thunder (its rematerialization): `4H + 2K + 2I`; then the last hidden state and the logits.
//!   A test checks this against the tensors the forward trace returns for the backward.
//!
//! FSDP: thunder's gradients and AdamW state are divided by the ranks, and under ZeRO-3 its
//! parameters too; the eager mode keeps replicas. Not counted: libtorch's workspaces and caching
//! allocator, temporaries of single ops, CUDA graph pools, the batch's construction on the host,
//! the process itself.

use super::config::Config;
use super::{Mode, Options};
use crate::memory::{bytes, largest, NotEnoughMemory, Room};
use thunder_ir::{DType, Device};

/// How the parameters and optimizer state are spread over data-parallel ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Every rank holds everything: one device, DDP, and the eager mode of any run.
    Replicated,
    /// FSDP ZeRO-2 over this many ranks: gradients and AdamW state sharded.
    Zero2(usize),
    /// FSDP ZeRO-3 over this many ranks: parameters too.
    Zero3(usize),
}

/// What one mode needs at least, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// The mode.
    pub mode: Mode,
    /// The parameters (this rank's shards under ZeRO-3).
    pub parameters: f64,
    /// Their gradients.
    pub gradients: f64,
    /// AdamW's two moments.
    pub optimizer: f64,
    /// The activations saved for the backward, the logits' excepted.
    pub activations: f64,
    /// The logits and the cross entropy's tensors of the same size.
    pub logits: f64,
    /// Token ids, targets and the RoPE tables.
    pub batch: f64,
}

impl Need {
    /// The peak: parameters, AdamW state and batch throughout, with the larger of the gradients
    /// and the saved activations with the logits.
    pub fn peak(&self) -> f64 {
        self.parameters
            + self.optimizer
            + self.batch
            + self.gradients.max(self.activations + self.logits)
    }

    /// The parts, for an error message.
    pub fn breakdown(&self) -> String {
        format!(
            "parameters {}, gradients {}, AdamW state {}, activations saved for the backward {}, \
             logits and cross entropy {}, batch {}",
            bytes(self.parameters),
            bytes(self.gradients),
            bytes(self.optimizer),
            bytes(self.activations),
            bytes(self.logits),
            bytes(self.batch)
        )
    }
}

/// What `mode` needs at least to train `c` on `micro_batch` sequences of `seq` tokens in
/// `dtype`. Computed in floating point: no size overflows it.
pub fn need(
    c: &Config,
    micro_batch: usize,
    seq: usize,
    dtype: DType,
    mode: Mode,
    sharding: Sharding,
) -> Need {
    let n = |x: usize| x as f64;
    let s = n(dtype.itemsize());
    let (h, i, v, hd) = (
        n(c.hidden),
        n(c.intermediate),
        n(c.padded_vocab()),
        n(c.head_dim()),
    );
    let kv = n(c.kv_heads) * hd;
    let tokens = n(micro_batch) * n(seq);
    let params = n(c.params()) * s;
    let (p_div, g_div) = match (mode, sharding) {
        (Mode::Eager, _) | (_, Sharding::Replicated) => (1.0, 1.0),
        (_, Sharding::Zero2(w)) => (1.0, n(w.max(1))),
        (_, Sharding::Zero3(w)) => (n(w.max(1)), n(w.max(1))),
    };
    let (per_block, last, logits) = match mode {
        Mode::Eager => (7.0 * h + 2.0 * kv + 4.0 * i, 2.0 * h, 2.0 * v),
        Mode::Thunder | Mode::ThunderGraphs => (4.0 * h + 2.0 * kv + 2.0 * i, h, v),
    };
    Need {
        mode,
        parameters: params / p_div,
        gradients: params / g_div,
        optimizer: 2.0 * params / g_div,
        activations: tokens * (n(c.layers) * per_block + last) * s,
        logits: tokens * logits * s,
        batch: 2.0 * tokens * 8.0 + 2.0 * n(seq) * hd * s,
    }
}

/// The need of the mode of `modes` that needs the most (they run one after the other).
fn worst(
    c: &Config,
    micro_batch: usize,
    seq: usize,
    dtype: DType,
    modes: &[Mode],
    sharding: Sharding,
) -> Option<Need> {
    modes
        .iter()
        .map(|&m| need(c, micro_batch, seq, dtype, m, sharding))
        .max_by(|a, b| a.peak().total_cmp(&b.peak()))
}

/// The need of the run `o` (its most demanding mode).
pub fn run_need(o: &Options, sharding: Sharding) -> Option<Need> {
    worst(
        &o.config,
        o.micro_batch,
        o.seq_len,
        o.dtype,
        &o.modes,
        sharding,
    )
}

/// Refuses the run `o` when it needs more than `room`, saying what to lower and to what.
pub fn check(o: &Options, sharding: Sharding, room: &Room) -> Result<(), Box<NotEnoughMemory>> {
    let Some(n) = run_need(o, sharding) else {
        return Ok(());
    };
    if n.peak() <= room.bytes as f64 {
        return Ok(());
    }
    let device = match o.device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
    };
    Err(Box::new(NotEnoughMemory {
        device,
        what: format!(
            "{} (micro-batch {}, seq {}, {}) in {} mode",
            o.config.name,
            o.micro_batch,
            o.seq_len,
            o.dtype,
            n.mode.name()
        ),
        need: n.peak(),
        breakdown: n.breakdown(),
        room: room.clone(),
        advice: advice(o, sharding, room.bytes as f64),
    }))
}

/// Which flags to lower, to what, for the run `o` to fit `room` bytes.
fn advice(o: &Options, sharding: Sharding, room: f64) -> String {
    let fits_with = |c: &Config, mb: usize, seq: usize, dtype: DType, modes: &[Mode]| {
        worst(c, mb, seq, dtype, modes, sharding).is_none_or(|n| n.peak() <= room)
    };
    let fits =
        |c: &Config, mb: usize, seq: usize, dtype: DType| fits_with(c, mb, seq, dtype, &o.modes);
    let c = &o.config;
    let (mb, seq, dtype) = (o.micro_batch, o.seq_len, o.dtype);
    let mut ways = Vec::new();
    if let Some(t) = largest(seq, |t| fits(c, mb, t, dtype)) {
        ways.push(format!("lower --seq-len to at most {t}"));
    }
    if let Some(b) = largest(mb, |b| fits(c, b, seq, dtype)) {
        ways.push(format!("lower --micro-batch to at most {b}"));
    }
    if let Some(l) = largest(c.layers, |l| {
        let mut c = c.clone();
        c.layers = l;
        fits(&c, mb, seq, dtype)
    }) {
        ways.push(format!("lower --layers to at most {l}"));
    }
    if dtype.itemsize() > 2 && fits(c, mb, seq, DType::BF16) {
        ways.push("use --dtype bf16".into());
    }
    // The eager mode needs more than the compiled one, and is never sharded.
    for &m in o.modes.iter().filter(|_| o.modes.len() > 1) {
        let others: Vec<Mode> = o.modes.iter().copied().filter(|&x| x != m).collect();
        if fits_with(c, mb, seq, dtype, &others) {
            ways.push(format!("leave {} out of --modes", m.name()));
        }
    }
    if ways.is_empty() {
        let mut out = "even one sequence of one token does not fit: choose a smaller --model (or \
                       lower --layers, --hidden, --intermediate, --vocab)"
            .to_string();
        if matches!(o.device, Device::Cuda(_)) && sharding == Sharding::Replicated {
            out.push_str(", or shard it over GPUs with --fsdp --gpus N --modes thunder");
        }
        return out;
    }
    ways.join(", or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llama::model;

    const GIB: f64 = (1u64 << 30) as f64;

    fn options(name: &str, micro_batch: usize, seq: usize, dtype: DType) -> Options {
        Options {
            config: Config::named(name).unwrap(),
            micro_batch,
            seq_len: seq,
            dtype,
            device: Device::Cpu,
            modes: vec![Mode::Eager, Mode::Thunder],
            executors: vec![],
            steps: 1,
            warmup: 0,
            seed: 0,
            lr: 1e-3,
            print_traces: None,
            progress: false,
            profile: None,
            comm_profile: None,
        }
    }

    fn room(gb: f64) -> Room {
        Room {
            bytes: (gb * 1e9) as u64,
            source: "test".into(),
        }
    }

    /// Llama-2-7B, seq 4096, micro-batch 1, bf16: at least the parameters, gradients and both
    /// moments (4 x 6.7e9 x 2 bytes), and at most what an H200 measured (the README: eager peak
    /// 59.28 GiB, thunder 51.74 GiB).
    #[test]
    fn llama2_7b_at_seq_4096_in_bf16_needs_a_plausible_amount() {
        let c = Config::named("llama2-7b").unwrap();
        let r = Sharding::Replicated;
        let eager = need(&c, 1, 4096, DType::BF16, Mode::Eager, r);
        let thunder = need(&c, 1, 4096, DType::BF16, Mode::Thunder, r);
        let state = 4.0 * 6.738e9 * 2.0;
        for (n, measured) in [(eager, 59.28), (thunder, 51.74)] {
            eprintln!("{:?}: {:.2} GiB: {}", n.mode, n.peak() / GIB, n.breakdown());
            assert!(n.peak() >= state, "{n:?}");
            assert!(n.peak() <= measured * GIB, "{n:?}");
            assert!(n.peak() >= 0.9 * measured * GIB, "{n:?}");
        }
        assert!(eager.activations > thunder.activations);
        // A small Llama the README measured too (eager 1.07 GiB, thunder 0.77 GiB).
        let mut s = c.clone();
        (s.layers, s.hidden, s.heads, s.kv_heads, s.intermediate) = (4, 256, 4, 4, 688);
        for (mode, measured) in [(Mode::Eager, 1.07), (Mode::Thunder, 0.77)] {
            let n = need(&s, 8, 512, DType::BF16, mode, r);
            assert!(n.peak() <= measured * GIB, "{n:?}");
        }
        // FSDP divides thunder's state by the ranks, not eager's.
        let z3 = need(&c, 1, 4096, DType::BF16, Mode::Thunder, Sharding::Zero3(8));
        assert!((z3.parameters * 8.0 - thunder.parameters).abs() < 1.0);
        let z2 = need(&c, 1, 4096, DType::BF16, Mode::Thunder, Sharding::Zero2(8));
        assert_eq!(z2.parameters, thunder.parameters);
        assert!((z2.optimizer * 8.0 - thunder.optimizer).abs() < 1.0);
        let e = need(&c, 1, 4096, DType::BF16, Mode::Eager, Sharding::Zero3(8));
        assert_eq!(e, eager);
    }

    /// The thunder mode's activations and logits are no more than what the forward trace
    /// really returns for the backward (so the bound stays a lower bound if the
    /// rematerialization changes), and not far below it.
    #[test]
    fn the_compiled_steps_saved_tensors_are_counted_from_below() {
        let mut cases = Vec::new();
        for (name, layers, seq, mb) in [
            ("llama2-tiny", 2, 32, 2),
            ("llama2-7b", 2, 64, 1),
            ("tiny-llama-1.1b", 2, 64, 2),
        ] {
            let mut c = Config::named(name).unwrap();
            c.layers = layers;
            cases.push((c, seq, mb));
        }
        for (c, seq, mb) in cases {
            let t = model::loss_trace(&c, mb, seq, DType::BF16, Device::Cuda(0)).unwrap();
            let wrt = t.inputs[model::DATA_INPUTS..].to_vec();
            let fb = thunder_transforms::forward_backward(&t, &wrt).unwrap();
            let f = &fb.forward;
            let saved: usize = f.outputs[1..]
                .iter()
                .filter(|v| !f.inputs.contains(v))
                .filter_map(|&v| f.tensor(v))
                .map(|m| m.shape.numel() * m.dtype.itemsize())
                .sum();
            let n = need(
                &c,
                mb,
                seq,
                DType::BF16,
                Mode::Thunder,
                Sharding::Replicated,
            );
            let counted = n.activations + n.logits;
            eprintln!("{}: counted {counted}, saved {saved}", c.name);
            assert!(counted <= saved as f64, "{}: {counted} > {saved}", c.name);
            assert!(
                counted >= 0.8 * saved as f64,
                "{}: {counted} {saved}",
                c.name
            );
        }
    }

    #[test]
    fn a_hundred_million_tokens_of_llama2_tiny_do_not_fit_24_gb() {
        let o = options("llama2-tiny", 1, 100_000_000, DType::F32);
        let e = check(&o, Sharding::Replicated, &room(24.0)).unwrap_err();
        let m = e.to_string();
        eprintln!("{m}");
        assert!(m.contains("not enough memory on cpu"), "{m}");
        assert!(
            m.contains("llama2-tiny (micro-batch 1, seq 100000000, f32)"),
            "{m}"
        );
        assert!(m.contains("22.4 GiB is free (test)"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        // The advice is a sequence length that fits, and no more.
        let t: usize = m
            .split("--seq-len to at most ")
            .nth(1)
            .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{m}"));
        let fits = |seq| {
            let mut o = o.clone();
            o.seq_len = seq;
            check(&o, Sharding::Replicated, &room(24.0)).is_ok()
        };
        assert!(fits(t) && !fits(t + 1), "{t}");
        // Half the bytes, when that is enough.
        let o = options("llama2-tiny", 1, 1_000_000, DType::F32);
        let m = check(&o, Sharding::Replicated, &room(10.0))
            .unwrap_err()
            .to_string();
        assert!(m.contains(", or use --dtype bf16"), "{m}");
        // The default run fits easily.
        let o = options("llama2-tiny", 1, 32, DType::F32);
        check(&o, Sharding::Replicated, &room(1.0)).unwrap();
    }

    #[test]
    fn a_run_that_fits_without_eager_says_so() {
        // Llama-2-7B at seq 4096 (58 GiB eager, 50 GiB thunder) on 55 GB: thunder alone fits.
        let o = options("llama2-7b", 1, 4096, DType::BF16);
        let m = check(&o, Sharding::Replicated, &room(55.0 * 1.0737))
            .unwrap_err()
            .to_string();
        assert!(m.contains("in eager mode"), "{m}");
        assert!(m.contains(", or leave eager out of --modes"), "{m}");
        assert!(!m.contains("leave thunder out"), "{m}");
        // FSDP shards the compiled mode only: eager must go.
        let mut o = options("llama2-13b", 1, 4096, DType::BF16);
        o.device = Device::Cuda(0);
        let m = check(&o, Sharding::Zero3(8), &room(80.0))
            .unwrap_err()
            .to_string();
        assert!(m.contains("leave eager out of --modes"), "{m}");
    }

    #[test]
    fn a_model_too_big_for_the_device_says_to_choose_a_smaller_one() {
        let mut o = options("llama2-13b", 1, 4096, DType::BF16);
        let m = check(&o, Sharding::Replicated, &room(24.0))
            .unwrap_err()
            .to_string();
        assert!(m.contains("--layers to at most"), "{m}");
        o.config.layers = 1;
        o.config.vocab = 1 << 30;
        o.device = Device::Cuda(0);
        let m = check(&o, Sharding::Replicated, &room(24.0))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("choose a smaller --model") && m.contains("--fsdp --gpus N"),
            "{m}"
        );
    }
}
