//! Small realistic programs built with [`TraceBuilder`]: the Llama-2 MLP block, a causal
//! attention block with rotary position embeddings, a cross-entropy loss head and an AdamW step.
//! Used by the golden tests, the docs, the executors' tests and `thunder-bench`.

use crate::builder::TraceBuilder;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::ops::torch::SdpaOptions;
use crate::shape::MAX_NUMEL;
use crate::trace::Trace;
use crate::value::{TensorMeta, Value};

/// Sizes of the blocks below (Llama-2-7B's are the default).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaDims {
    /// Sequences per batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Model width.
    pub hidden: usize,
    /// Attention heads (query).
    pub heads: usize,
    /// Key/value heads (equal to `heads` without grouped-query attention).
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Vocabulary size (padded, as LitGPT pads it).
    pub vocab: usize,
    /// Parameter and activation dtype.
    pub dtype: DType,
    /// Device of every tensor.
    pub device: Device,
}

impl Default for LlamaDims {
    fn default() -> Self {
        LlamaDims {
            batch: 1,
            seq_len: 4096,
            hidden: 4096,
            heads: 32,
            kv_heads: 32,
            intermediate: 11008,
            vocab: 32000,
            dtype: DType::BF16,
            device: Device::Cuda(0),
        }
    }
}

impl LlamaDims {
    /// Tiny sizes for tests and CPU demos.
    pub fn tiny() -> Self {
        LlamaDims {
            batch: 2,
            seq_len: 8,
            hidden: 16,
            heads: 4,
            kv_heads: 2,
            intermediate: 48,
            vocab: 64,
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }
    fn t(&self, shape: &[usize]) -> TensorMeta {
        TensorMeta::new(self.dtype, shape.to_vec()).on(self.device)
    }
    fn param(&self, shape: &[usize]) -> TensorMeta {
        self.t(shape).with_grad(true)
    }
    fn head_dim(&self) -> usize {
        // `check` has made sure that heads > 0.
        self.hidden / self.heads
    }
    /// Rows of the fused qkv projection: `(heads + 2 * kv_heads) * head_dim`.
    fn qkv_out(&self) -> Option<usize> {
        self.kv_heads
            .checked_mul(2)?
            .checked_add(self.heads)?
            .checked_mul(self.head_dim())
    }
    /// Rejects sizes the blocks cannot be built from: no heads (a division by zero), or sizes
    /// beyond `i64` (they become `int` attributes). Once it passes, `heads * head_dim`,
    /// `kv_heads * head_dim` and every field fit in `i64`, so the casts below are exact; the
    /// builder checks the shapes made from them as usual.
    pub fn check(&self) -> Result<()> {
        const OP: &str = "programs::LlamaDims";
        if self.heads == 0 || self.kv_heads == 0 {
            return Err(IrError::invalid(
                OP,
                format!(
                    "heads={} and kv_heads={} must be at least 1",
                    self.heads, self.kv_heads
                ),
            ));
        }
        let fields = [
            ("batch", Some(self.batch)),
            ("seq_len", Some(self.seq_len)),
            ("hidden", Some(self.hidden)),
            ("intermediate", Some(self.intermediate)),
            ("vocab", Some(self.vocab)),
            ("(heads + 2 * kv_heads) * head_dim", self.qkv_out()),
        ];
        for (name, v) in fields {
            if v.is_none_or(|v| v > MAX_NUMEL) {
                return Err(IrError::overflow(
                    OP,
                    format!("{name} does not fit in i64 (dims {self:?})"),
                ));
            }
        }
        Ok(())
    }
}

/// Llama's SwiGLU MLP: `proj(silu(fc_1(x)) * fc_2(x))`, on `[batch, seq, hidden]`.
pub fn llama_mlp(d: &LlamaDims) -> Result<Trace> {
    d.check()?;
    let mut b = TraceBuilder::new("llama_mlp");
    let x = b.input("x", d.t(&[d.batch, d.seq_len, d.hidden]))?;
    let y = mlp_body(&mut b, d, x)?;
    b.build(&[y])
}

fn mlp_body(b: &mut TraceBuilder, d: &LlamaDims, x: Value) -> Result<Value> {
    let fc_1 = b.input("fc_1_weight", d.param(&[d.intermediate, d.hidden]))?;
    let fc_2 = b.input("fc_2_weight", d.param(&[d.intermediate, d.hidden]))?;
    let proj = b.input("proj_weight", d.param(&[d.hidden, d.intermediate]))?;
    mlp(b, x, fc_1, fc_2, proj)
}

/// Llama's SwiGLU MLP on `x` with the given weights: `proj(silu(fc_1(x)) * fc_2(x))`.
pub fn mlp(b: &mut TraceBuilder, x: Value, fc_1: Value, fc_2: Value, proj: Value) -> Result<Value> {
    let a = b.linear(x, fc_1, None)?;
    let g = b.linear(x, fc_2, None)?;
    let a = b.silu(a)?;
    let h = b.mul(a, g)?;
    b.linear(h, proj, None)
}

/// Rotary position embedding as LitGPT applies it: `x * cos + rotate_half(x) * sin`, with
/// `rotate_half(x) = cat(-x2, x1)` over the halves of the last dim.
pub fn apply_rope(b: &mut TraceBuilder, x: Value, cos: Value, sin: Value) -> Result<Value> {
    let sizes = b.tensor(x)?.shape.sizes();
    let Some(&last) = sizes.last() else {
        return Err(IrError::invalid(
            "programs::apply_rope",
            "x must have at least one dim",
        ));
    };
    // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
    let half = (last / 2) as i64;
    let x1 = b.narrow(x, -1, 0, half)?;
    let x2 = b.narrow(x, -1, half, half)?;
    let nx2 = b.neg(x2)?;
    let rotated = b.cat(&[nx2, x1], -1)?;
    let xc = b.mul(x, cos)?;
    let rs = b.mul(rotated, sin)?;
    let y = b.add(xc, rs)?;
    let dtype = b.tensor(x)?.dtype;
    b.to_dtype(y, dtype)
}

/// Causal self-attention with RoPE: qkv projection, split into heads, rotary embedding,
/// `scaled_dot_product_attention(is_causal=True)`, output projection.
pub fn llama_attention(d: &LlamaDims) -> Result<Trace> {
    d.check()?;
    let mut b = TraceBuilder::new("llama_attention");
    let x = b.input("x", d.t(&[d.batch, d.seq_len, d.hidden]))?;
    let hd = d.head_dim();
    let cos = b.input("cos", d.t(&[d.seq_len, hd]))?;
    let sin = b.input("sin", d.t(&[d.seq_len, hd]))?;
    let y = attention_body(&mut b, d, x, cos, sin)?;
    b.build(&[y])
}

fn attention_body(
    b: &mut TraceBuilder,
    d: &LlamaDims,
    x: Value,
    cos: Value,
    sin: Value,
) -> Result<Value> {
    let qkv_out = d.qkv_out().ok_or_else(|| {
        IrError::overflow(
            "programs::LlamaDims",
            "(heads + 2 * kv_heads) * head_dim does not fit",
        )
    })?;
    let attn_w = b.input("attn_weight", d.param(&[qkv_out, d.hidden]))?;
    let proj_w = b.input("attn_proj_weight", d.param(&[d.hidden, d.hidden]))?;
    attention(b, d, x, cos, sin, attn_w, proj_w)
}

/// Causal self-attention with RoPE on `x` (`[batch, seq, hidden]`) with the given weights: the
/// fused qkv projection `attn_w`, split into heads, rotary embedding of queries and keys,
/// `scaled_dot_product_attention(is_causal=True)` (grouped-query when `kv_heads < heads`), the
/// output projection `proj_w`.
pub fn attention(
    b: &mut TraceBuilder,
    d: &LlamaDims,
    x: Value,
    cos: Value,
    sin: Value,
    attn_w: Value,
    proj_w: Value,
) -> Result<Value> {
    d.check()?;
    let hd = d.head_dim();
    let (bs, t) = (d.batch as i64, d.seq_len as i64);
    let qkv = b.linear(x, attn_w, None)?;
    let parts = b.split_sections(
        qkv,
        &[
            (d.heads * hd) as i64,
            (d.kv_heads * hd) as i64,
            (d.kv_heads * hd) as i64,
        ],
        -1,
    )?;
    let mut heads = Vec::with_capacity(3);
    for (i, &p) in parts.iter().enumerate() {
        let n = if i == 0 { d.heads } else { d.kv_heads } as i64;
        let r = b.reshape(p, &[bs, t, n, hd as i64])?;
        heads.push(b.transpose(r, 1, 2)?);
    }
    let q = apply_rope(b, heads[0], cos, sin)?;
    let k = apply_rope(b, heads[1], cos, sin)?;
    let opts = SdpaOptions {
        is_causal: true,
        enable_gqa: d.kv_heads != d.heads,
        ..SdpaOptions::default()
    };
    let y = b.scaled_dot_product_attention(q, k, heads[2], &opts)?;
    let y = b.transpose(y, 1, 2)?;
    let y = b.reshape(y, &[bs, t, d.hidden as i64])?;
    b.linear(y, proj_w, None)
}

/// One Llama-2 transformer block: `x + attn(norm_1(x))`, then `h + mlp(norm_2(h))`.
pub fn llama_block(d: &LlamaDims) -> Result<Trace> {
    d.check()?;
    let mut b = TraceBuilder::new("llama_block");
    let x = b.input("x", d.t(&[d.batch, d.seq_len, d.hidden]))?;
    let hd = d.head_dim();
    let cos = b.input("cos", d.t(&[d.seq_len, hd]))?;
    let sin = b.input("sin", d.t(&[d.seq_len, hd]))?;
    let n1 = b.input("norm_1_weight", d.param(&[d.hidden]))?;
    let n2 = b.input("norm_2_weight", d.param(&[d.hidden]))?;
    let h = b.rms_norm(x, &[d.hidden], Some(n1), Some(1e-5))?;
    let a = attention_body(&mut b, d, h, cos, sin)?;
    let h = b.add(x, a)?;
    let m = b.rms_norm(h, &[d.hidden], Some(n2), Some(1e-5))?;
    let m = mlp_body(&mut b, d, m)?;
    let y = b.add(h, m)?;
    b.build(&[y])
}

/// The loss head: final norm, `lm_head`, cross entropy against next-token targets.
pub fn lm_head_loss(d: &LlamaDims) -> Result<Trace> {
    d.check()?;
    let mut b = TraceBuilder::new("lm_head_loss");
    let x = b.input("x", d.t(&[d.batch, d.seq_len, d.hidden]))?;
    let targets = b.input(
        "targets",
        TensorMeta::new(DType::I64, [d.batch, d.seq_len]).on(d.device),
    )?;
    let norm = b.input("ln_f_weight", d.param(&[d.hidden]))?;
    let head = b.input("lm_head_weight", d.param(&[d.vocab, d.hidden]))?;
    let h = b.rms_norm(x, &[d.hidden], Some(norm), Some(1e-5))?;
    let logits = b.linear(h, head, None)?;
    let logits = b.reshape(logits, &[-1, d.vocab as i64])?;
    let targets = b.reshape(targets, &[-1])?;
    let loss = b.cross_entropy(logits, targets)?;
    b.build(&[loss])
}

/// One AdamW step ([`TraceBuilder::adamw`]) over parameters of the given dtypes and shapes on
/// `device`: per parameter the inputs `p{i}`, `g{i}`, `m{i}`, `v{i}` (parameter, gradient, first
/// and second moment), then `step`, a 0-dim tensor of dtype `step`; the outputs are the new
/// parameters, then the new first moments, then the new second moments.
pub fn adamw_step(
    params: &[(DType, Vec<usize>)],
    step: DType,
    device: Device,
    options: &crate::ops::torch::AdamwOptions,
) -> Result<Trace> {
    let mut b = TraceBuilder::new("adamw_step");
    let mut cols: [Vec<Value>; 4] = Default::default();
    for (i, (dtype, shape)) in params.iter().enumerate() {
        for (col, what) in cols.iter_mut().zip(["p", "g", "m", "v"]) {
            let meta = TensorMeta::new(*dtype, shape.clone()).on(device);
            col.push(b.input(&format!("{what}{i}"), meta)?);
        }
    }
    let step = b.input(
        "step",
        TensorMeta::new(step, Vec::<usize>::new()).on(device),
    )?;
    let up = b.adamw(&cols[0], &cols[1], &cols[2], &cols[3], step, options)?;
    let outs: Vec<Value> = up
        .params
        .iter()
        .chain(&up.exp_avgs)
        .chain(&up.exp_avg_sqs)
        .copied()
        .collect();
    b.build(&outs)
}
