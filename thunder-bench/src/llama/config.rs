//! Llama-2 family configurations, as LitGPT defines them, with command-line overrides.

use super::BenchError;

/// One model of the Llama-2 architecture (RMSNorm, RoPE, multi-head or grouped-query attention,
/// SwiGLU MLP, untied `lm_head`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The configuration's name (`llama2-7b`, ...).
    pub name: String,
    /// Transformer blocks.
    pub layers: usize,
    /// Model width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` for multi-head attention, fewer for grouped-query attention).
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Vocabulary size before padding.
    pub vocab: usize,
    /// The padded vocabulary is the next multiple of this (LitGPT's `padding_multiple`).
    pub vocab_multiple: usize,
    /// Tokens per sequence used when `--seq-len` is not given (the model's block size).
    pub seq_len: usize,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
    /// RoPE base.
    pub rope_base: f64,
}

/// The named configurations.
pub const NAMES: [&str; 4] = ["llama2-7b", "llama2-13b", "tiny-llama-1.1b", "llama2-tiny"];

impl Config {
    /// The configuration called `name` (one of [`NAMES`]).
    pub fn named(name: &str) -> Result<Config, BenchError> {
        let c = |layers, hidden, heads, kv_heads, intermediate, seq_len| Config {
            name: name.to_string(),
            layers,
            hidden,
            heads,
            kv_heads,
            intermediate,
            vocab: 32000,
            vocab_multiple: 64,
            seq_len,
            norm_eps: 1e-5,
            rope_base: 10000.0,
        };
        Ok(match name {
            "llama2-7b" => c(32, 4096, 32, 32, 11008, 4096),
            "llama2-13b" => c(40, 5120, 40, 40, 13824, 4096),
            "tiny-llama-1.1b" => c(22, 2048, 32, 4, 5632, 2048),
            // A few layers, small width: a CPU runs a training step in milliseconds.
            "llama2-tiny" => Config {
                vocab: 500,
                ..c(2, 64, 4, 2, 176, 32)
            },
            _ => {
                return Err(BenchError::Usage(format!(
                    "unknown model {name:?}; the models are: {}",
                    NAMES.join(", ")
                )))
            }
        })
    }

    /// The vocabulary the embedding and `lm_head` have: `vocab` rounded up to a multiple of
    /// `vocab_multiple`, as LitGPT pads it (saturating; [`Config::validate`] refuses a vocabulary
    /// that big).
    pub fn padded_vocab(&self) -> usize {
        self.vocab
            .checked_next_multiple_of(self.vocab_multiple.max(1))
            .unwrap_or(usize::MAX)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Checks that the sizes make a model that libtorch can hold (every parameter's element count
    /// fits `int64`); the error says which flag to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Usage(m));
        check_shared_sizes(
            &[
                ("--layers", self.layers),
                ("--hidden", self.hidden),
                ("--heads", self.heads),
                ("--kv-heads", self.kv_heads),
                ("--intermediate", self.intermediate),
                ("--vocab", self.vocab),
            ],
            self.hidden,
            self.heads,
        )
        .map_err(BenchError::Usage)?;
        if self.layers > MAX_LAYERS {
            return bad(format!(
                "--layers {} is more than {MAX_LAYERS}: the step's traces grow with every block \
                 (Llama 3.1 405B has 126); give at most {MAX_LAYERS}",
                self.layers
            ));
        }
        if self.heads % self.kv_heads != 0 {
            return bad(format!(
                "--heads {} is not a multiple of --kv-heads {}: each key/value head must serve the same number of query heads",
                self.heads, self.kv_heads
            ));
        }
        if self.padded_vocab() > MAX_NUMEL {
            return bad(format!(
                "--vocab {} is too large: libtorch counts elements in int64; give at most {}",
                self.vocab,
                MAX_NUMEL / self.vocab_multiple.max(1) * self.vocab_multiple.max(1)
            ));
        }
        let (h, v, kv) = (
            self.hidden,
            self.padded_vocab(),
            self.kv_heads * self.head_dim(),
        );
        for (what, flags, n) in [
            ("the embedding", "--vocab or --hidden", v.checked_mul(h)),
            (
                "the qkv projection",
                "--hidden or --kv-heads",
                kv.checked_mul(2)
                    .and_then(|k| k.checked_add(h))
                    .and_then(|r| r.checked_mul(h)),
            ),
            (
                "an MLP weight",
                "--intermediate or --hidden",
                self.intermediate.checked_mul(h),
            ),
            (
                "the model",
                "--layers, --hidden, --intermediate or --vocab",
                self.checked_params(),
            ),
        ] {
            if n.is_none_or(|n| n > MAX_NUMEL) {
                return bad(format!(
                    "{what} would have more than {MAX_NUMEL} elements (libtorch counts them in \
                     int64): lower {flags}"
                ));
            }
        }
        Ok(())
    }

    /// Parameters, embedding included (saturating; [`Config::validate`] refuses a model whose
    /// count does not fit).
    pub fn params(&self) -> usize {
        self.checked_params().unwrap_or(usize::MAX)
    }

    /// Parameters without the token embedding (the `N` of the PaLM FLOP count; `lm_head` is in;
    /// saturating).
    pub fn params_without_embedding(&self) -> usize {
        self.checked_params_without_embedding()
            .unwrap_or(usize::MAX)
    }

    fn checked_params(&self) -> Option<usize> {
        self.checked_params_without_embedding()?
            .checked_add(self.padded_vocab().checked_mul(self.hidden)?)
    }

    fn checked_params_without_embedding(&self) -> Option<usize> {
        let w = |n: usize| n as u128;
        let (h, i) = (w(self.hidden), w(self.intermediate));
        let qkv = (w(self.heads) + 2 * w(self.kv_heads)).checked_mul(w(self.head_dim()))?;
        let block = (2 * h)
            .checked_add(qkv.checked_mul(h)?)?
            .checked_add(h.checked_mul(h)?)?
            .checked_add(h.checked_mul(i)?.checked_mul(3)?)?;
        let all = w(self.layers)
            .checked_mul(block)?
            .checked_add(h)?
            .checked_add(w(self.padded_vocab()).checked_mul(h)?)?;
        usize::try_from(all).ok()
    }

    /// Model FLOPs per token of a training step at sequence length `seq` (PaLM's convention:
    /// `6 N + 12 L H Q T`, `N` without the embedding).
    pub fn flops_per_token(&self, seq: usize) -> f64 {
        6.0 * self.params_without_embedding() as f64
            + 12.0 * self.layers as f64 * self.heads as f64 * self.head_dim() as f64 * seq as f64
    }
}

/// The most transformer blocks `--layers` takes.
pub const MAX_LAYERS: usize = 1024;

/// The checks of sizes that `llama2` and `ops` share: every size in `flags` at least 1, and a
/// `--hidden` that `--heads` divide into even head widths (RoPE rotates pairs). The message
/// names the flag to change.
pub(crate) fn check_shared_sizes(
    flags: &[(&str, usize)],
    hidden: usize,
    heads: usize,
) -> Result<(), String> {
    if let Some((flag, _)) = flags.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{flag} must be at least 1"));
    }
    if hidden % heads != 0 {
        return Err(format!(
            "--hidden {hidden} is not a multiple of --heads {heads}: choose a width that the heads divide"
        ));
    }
    let head_width = hidden / heads;
    if head_width % 2 != 0 {
        return Err(format!(
            "the head width --hidden/--heads = {head_width} is odd; RoPE needs an even head width"
        ));
    }
    Ok(())
}

/// The most elements of one tensor (libtorch counts them in `int64`).
pub const MAX_NUMEL: usize = i64::MAX as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama2_7b_has_its_parameter_count() {
        let c = Config::named("llama2-7b").unwrap();
        // 6,738,415,616 with the embedding (Llama-2-7B's published size).
        assert_eq!(c.params(), 6_738_415_616);
        c.validate().unwrap();
        for n in NAMES {
            Config::named(n).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn bad_sizes_say_which_flag_to_change() {
        let mut c = Config::named("llama2-tiny").unwrap();
        c.heads = 5;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("--hidden 64 is not a multiple of --heads 5"),
            "{e}"
        );
        let e = Config::named("llama3").unwrap_err().to_string();
        assert!(
            e.contains("unknown model") && e.contains("llama2-7b"),
            "{e}"
        );
    }

    #[test]
    fn zero_absurd_and_overflowing_sizes_say_which_flag_to_change() {
        let tiny = || Config::named("llama2-tiny").unwrap();
        /// A change to the tiny model and the error it must give.
        type Case = (fn(&mut Config), &'static str);
        let cases: [Case; 9] = [
            (|c| c.heads = 0, "--heads must be at least 1"),
            (|c| c.kv_heads = 0, "--kv-heads must be at least 1"),
            (|c| c.layers = 0, "--layers must be at least 1"),
            (
                |c| c.layers = 1_000_000,
                "--layers 1000000 is more than 1024",
            ),
            (
                |c| c.kv_heads = 3,
                "--heads 4 is not a multiple of --kv-heads 3",
            ),
            (
                |c| c.hidden = 68,
                "the head width --hidden/--heads = 17 is odd",
            ),
            (
                |c| c.vocab = usize::MAX,
                "--vocab 18446744073709551615 is too large",
            ),
            (
                |c| c.hidden = 1 << 56,
                "the embedding would have more than 9223372036854775807 elements",
            ),
            (
                |c| c.intermediate = 1 << 60,
                "an MLP weight would have more than 9223372036854775807 elements",
            ),
        ];
        for (change, want) in cases {
            let mut c = tiny();
            change(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in: {e}");
            assert!(!e.contains('\n'), "{e}");
            // The counts a report prints saturate instead of overflowing.
            let _ = (c.params(), c.flops_per_token(usize::MAX), c.padded_vocab());
        }
        let mut c = tiny();
        c.layers = 1024;
        c.intermediate = 1 << 50;
        c.hidden = 1 << 12;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("lower --layers, --hidden, --intermediate or --vocab"),
            "{e}"
        );
    }

    #[test]
    fn the_vocabulary_is_padded_like_litgpt() {
        let mut c = Config::named("llama2-tiny").unwrap();
        assert_eq!(c.padded_vocab(), 512);
        c.vocab = 512;
        assert_eq!(c.padded_vocab(), 512);
    }
}
