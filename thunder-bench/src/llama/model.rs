//! The Llama-2 model as a thunder-ir trace (LitGPT's `GPT` with a Llama config), and the
//! parameter list both modes share.

use super::config::Config;
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DType, Device, TensorMeta, Trace, TraceBuilder, Value};

/// One parameter: a Python-identifier name (LitGPT's dotted name with `_`) and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// `wte`, `h0_norm_1`, ..., `ln_f`, `lm_head`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// How it is initialized.
    pub init: Init,
}

/// Parameter initialization (deterministic from the seed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All ones (norm weights).
    Ones,
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
}

/// The parameters in the order the loss trace takes them (after its 4 data inputs).
pub fn param_specs(c: &Config) -> Vec<ParamSpec> {
    let (h, hd, v) = (c.hidden, c.head_dim(), c.padded_vocab());
    let std = 0.02;
    // Output projections are scaled down with depth (GPT-2's scheme).
    let proj_std = std / (2.0 * c.layers as f64).sqrt();
    let p = |name: String, shape: Vec<usize>, init: Init| ParamSpec { name, shape, init };
    let mut out = vec![p("wte".into(), vec![v, h], Init::Normal(std))];
    for i in 0..c.layers {
        out.push(p(format!("h{i}_norm_1"), vec![h], Init::Ones));
        out.push(p(
            format!("h{i}_attn"),
            vec![(c.heads + 2 * c.kv_heads) * hd, h],
            Init::Normal(std),
        ));
        out.push(p(
            format!("h{i}_attn_proj"),
            vec![h, h],
            Init::Normal(proj_std),
        ));
        out.push(p(format!("h{i}_norm_2"), vec![h], Init::Ones));
        out.push(p(
            format!("h{i}_fc_1"),
            vec![c.intermediate, h],
            Init::Normal(std),
        ));
        out.push(p(
            format!("h{i}_fc_2"),
            vec![c.intermediate, h],
            Init::Normal(std),
        ));
        out.push(p(
            format!("h{i}_proj"),
            vec![h, c.intermediate],
            Init::Normal(proj_std),
        ));
    }
    out.push(p("ln_f".into(), vec![h], Init::Ones));
    out.push(p("lm_head".into(), vec![v, h], Init::Normal(std)));
    out
}

/// Inputs of the loss trace before the parameters: `idx`, `targets` (int64 `[batch, seq]`),
/// `cos`, `sin` (`[seq, head_dim]`, the model dtype).
pub const DATA_INPUTS: usize = 4;

/// The training loss as a trace: `cross_entropy(lm_head(ln_f(blocks(wte[idx]))), targets)`.
/// Inputs: [`DATA_INPUTS`], then [`param_specs`] in order. Output: the mean loss (0-dim, the
/// model dtype).
pub fn loss_trace(
    c: &Config,
    batch: usize,
    seq: usize,
    dtype: DType,
    device: Device,
) -> thunder_ir::Result<Trace> {
    let mut b = TraceBuilder::new("llama_loss");
    let t = |s: &[usize]| TensorMeta::new(dtype, s.to_vec()).on(device);
    let ids = |s: &[usize]| TensorMeta::new(DType::I64, s.to_vec()).on(device);
    let hd = c.head_dim();
    let idx = b.input("idx", ids(&[batch, seq]))?;
    let targets = b.input("targets", ids(&[batch, seq]))?;
    let cos = b.input("cos", t(&[seq, hd]))?;
    let sin = b.input("sin", t(&[seq, hd]))?;
    let mut params: Vec<Value> = Vec::new();
    for p in param_specs(c) {
        params.push(b.input(&p.name, t(&p.shape).with_grad(true))?);
    }
    let mut it = params.iter().copied();
    let mut next = || it.next().expect("param_specs and loss_trace agree");
    let wte = next();
    let mut x = b.embedding(idx, wte)?;
    let dims = LlamaDims {
        batch,
        seq_len: seq,
        hidden: c.hidden,
        heads: c.heads,
        kv_heads: c.kv_heads,
        intermediate: c.intermediate,
        vocab: c.padded_vocab(),
        dtype,
        device,
    };
    for _ in 0..c.layers {
        let (n1, attn_w, proj_w, n2, fc_1, fc_2, proj) =
            (next(), next(), next(), next(), next(), next(), next());
        // Attention.
        let h = b.rms_norm(x, &[c.hidden], Some(n1), Some(c.norm_eps))?;
        let a = programs::attention(&mut b, &dims, h, cos, sin, attn_w, proj_w)?;
        x = b.add(x, a)?;
        // MLP.
        let m = b.rms_norm(x, &[c.hidden], Some(n2), Some(c.norm_eps))?;
        let m = programs::mlp(&mut b, m, fc_1, fc_2, proj)?;
        x = b.add(x, m)?;
    }
    let ln_f = next();
    let head = next();
    let x = b.rms_norm(x, &[c.hidden], Some(ln_f), Some(c.norm_eps))?;
    let logits = b.linear(x, head, None)?;
    let logits = b.reshape(logits, &[-1, c.padded_vocab() as i64])?;
    let targets = b.reshape(targets, &[-1])?;
    let loss = b.cross_entropy(logits, targets)?;
    b.build(&[loss])
}
