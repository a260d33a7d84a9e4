//! The public, typed builder methods of the torch-level ops.

use super::*;

pub(super) fn num_attr(a: impl Into<Arg>) -> Attr {
    match a.into() {
        Arg::Int(i) => Attr::Int(i),
        Arg::Float(f) => Attr::Float(f),
        Arg::Bool(b) => Attr::Bool(b),
        _ => Attr::None,
    }
}

pub(super) fn opt_dims(dims: &[i64]) -> Attr {
    if dims.is_empty() {
        Attr::None
    } else {
        Attr::Ints(dims.to_vec())
    }
}

/// Sizes a Rust caller passes as `usize`, as the `int` list attribute they become; one beyond
/// i64 is an overflow error (an `as` cast would turn it negative and blame the wrong thing).
pub(super) fn size_attr(op: TorchOp, arg: &str, sizes: &[usize]) -> Result<Attr> {
    sizes
        .iter()
        .map(|&x| {
            i64::try_from(x).map_err(|_| {
                IrError::overflow(
                    format!("ltorch.{}", op.name()),
                    format!("{arg}={sizes:?} has a size {x} beyond i64::MAX"),
                )
            })
        })
        .collect::<Result<_>>()
        .map(Attr::Ints)
}

pub(super) fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Attr) -> Attr {
    v.map_or(Attr::None, f)
}

/// The public, typed builder methods for torch-level ops.
impl TraceBuilder {
    pub(super) fn t(&mut self, op: TorchOp, args: Vec<Arg>, attrs: Vec<Attr>) -> Result<Value> {
        self.torch1(op, args, attrs)
    }

    /// `torch.abs`
    pub fn abs(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Abs, vec![a.into()], vec![])
    }
    /// `torch.neg`
    pub fn neg(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Neg, vec![a.into()], vec![])
    }
    /// `torch.exp`
    pub fn exp(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Exp, vec![a.into()], vec![])
    }
    /// `torch.log`
    pub fn log(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Log, vec![a.into()], vec![])
    }
    /// `torch.sqrt`
    pub fn sqrt(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Sqrt, vec![a.into()], vec![])
    }
    /// `torch.rsqrt`
    pub fn rsqrt(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Rsqrt, vec![a.into()], vec![])
    }
    /// `torch.sin`
    pub fn sin(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Sin, vec![a.into()], vec![])
    }
    /// `torch.cos`
    pub fn cos(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Cos, vec![a.into()], vec![])
    }
    /// `torch.tanh`
    pub fn tanh(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Tanh, vec![a.into()], vec![])
    }
    /// `torch.erf`
    pub fn erf(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Erf, vec![a.into()], vec![])
    }
    /// `torch.sigmoid`
    pub fn sigmoid(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Sigmoid, vec![a.into()], vec![])
    }
    /// `torch.relu`
    pub fn relu(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Relu, vec![a.into()], vec![])
    }
    /// `torch.nn.functional.silu`
    pub fn silu(&mut self, a: Value) -> Result<Value> {
        self.t(TorchOp::Silu, vec![a.into()], vec![])
    }
    /// `torch.nn.functional.gelu`; `approximate` is `"none"` or `"tanh"`.
    pub fn gelu(&mut self, a: Value, approximate: &str) -> Result<Value> {
        self.t(
            TorchOp::Gelu,
            vec![a.into()],
            vec![Attr::Str(approximate.into())],
        )
    }
    /// Any unary torch-level op by its enum (`TorchOp::Log1p`, ...).
    pub fn unary(&mut self, op: TorchOp, a: Value) -> Result<Value> {
        self.t(op, vec![a.into()], vec![])
    }
    /// Any binary torch-level op by its enum (`TorchOp::Atan2`, ...), without `alpha`.
    pub fn binary(&mut self, op: TorchOp, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        let attrs = if matches!(op, TorchOp::Add | TorchOp::Sub) {
            vec![Attr::None]
        } else {
            vec![]
        };
        self.t(op, vec![a.into(), b.into()], attrs)
    }
    /// `torch.add(a, b)`
    pub fn add(&mut self, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.binary(TorchOp::Add, a, b)
    }
    /// `torch.sub(a, b)`
    pub fn sub(&mut self, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.binary(TorchOp::Sub, a, b)
    }
    /// `torch.mul(a, b)`
    pub fn mul(&mut self, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.binary(TorchOp::Mul, a, b)
    }
    /// `torch.div(a, b)` (true division)
    pub fn div(&mut self, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.binary(TorchOp::Div, a, b)
    }
    /// `torch.pow(a, b)`
    pub fn pow(&mut self, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.binary(TorchOp::Pow, a, b)
    }
    /// `torch.where(condition, a, b)`
    pub fn where_(
        &mut self,
        condition: Value,
        a: impl Into<Arg>,
        b: impl Into<Arg>,
    ) -> Result<Value> {
        self.t(
            TorchOp::Where,
            vec![condition.into(), a.into(), b.into()],
            vec![],
        )
    }
    /// `a.masked_fill(mask, value)`
    pub fn masked_fill(&mut self, a: Value, mask: Value, value: impl Into<Arg>) -> Result<Value> {
        self.t(
            TorchOp::MaskedFill,
            vec![a.into(), mask.into(), value.into()],
            vec![],
        )
    }
    /// `torch.clamp(a, min, max)`
    pub fn clamp(&mut self, a: Value, min: Option<f64>, max: Option<f64>) -> Result<Value> {
        self.t(
            TorchOp::Clamp,
            vec![a.into()],
            vec![opt(min, Attr::Float), opt(max, Attr::Float)],
        )
    }
    /// `torch.sum(a, dim, keepdim)`; an empty `dims` reduces every dim.
    pub fn sum(&mut self, a: Value, dims: &[i64], keepdim: bool) -> Result<Value> {
        self.t(
            TorchOp::Sum,
            vec![a.into()],
            vec![opt_dims(dims), Attr::Bool(keepdim), Attr::None],
        )
    }
    /// `torch.mean(a, dim, keepdim)`; an empty `dims` reduces every dim.
    pub fn mean(&mut self, a: Value, dims: &[i64], keepdim: bool) -> Result<Value> {
        self.t(
            TorchOp::Mean,
            vec![a.into()],
            vec![opt_dims(dims), Attr::Bool(keepdim), Attr::None],
        )
    }
    /// `torch.amax(a, dim, keepdim)`; an empty `dims` reduces every dim.
    pub fn amax(&mut self, a: Value, dims: &[i64], keepdim: bool) -> Result<Value> {
        self.t(
            TorchOp::Amax,
            vec![a.into()],
            vec![opt_dims(dims), Attr::Bool(keepdim)],
        )
    }
    /// `torch.var(a, dim, correction=, keepdim)`
    pub fn var(&mut self, a: Value, dims: &[i64], correction: f64, keepdim: bool) -> Result<Value> {
        self.t(
            TorchOp::Var,
            vec![a.into()],
            vec![opt_dims(dims), Attr::Float(correction), Attr::Bool(keepdim)],
        )
    }
    /// `torch.argmax(a, dim, keepdim)`
    pub fn argmax(&mut self, a: Value, dim: Option<i64>, keepdim: bool) -> Result<Value> {
        self.t(
            TorchOp::Argmax,
            vec![a.into()],
            vec![opt(dim, Attr::Int), Attr::Bool(keepdim)],
        )
    }
    /// `torch.softmax(a, dim)`
    pub fn softmax(&mut self, a: Value, dim: i64) -> Result<Value> {
        self.t(
            TorchOp::Softmax,
            vec![a.into()],
            vec![Attr::Int(dim), Attr::None],
        )
    }
    /// `torch.log_softmax(a, dim)`
    pub fn log_softmax(&mut self, a: Value, dim: i64) -> Result<Value> {
        self.t(
            TorchOp::LogSoftmax,
            vec![a.into()],
            vec![Attr::Int(dim), Attr::None],
        )
    }
    /// `torch.nn.functional.cross_entropy(input, target)` with class-index targets, mean reduction
    /// and `ignore_index=-100`.
    pub fn cross_entropy(&mut self, input: Value, target: Value) -> Result<Value> {
        self.cross_entropy_with(input, target, -100, "mean")
    }
    /// `cross_entropy` with `ignore_index` and `reduction` (`"mean"`, `"sum"` or `"none"`).
    pub fn cross_entropy_with(
        &mut self,
        input: Value,
        target: Value,
        ignore_index: i64,
        reduction: &str,
    ) -> Result<Value> {
        self.t(
            TorchOp::CrossEntropy,
            vec![input.into(), target.into()],
            vec![
                Attr::Int(ignore_index),
                Attr::Str(reduction.into()),
                Attr::Float(0.0),
            ],
        )
    }
    /// The gradient of `cross_entropy(input, target)` (no label smoothing) with respect to
    /// `input`, from the loss's gradient `g` (0-d for the `"mean"` and `"sum"` reductions, one
    /// value per row for `"none"`): `(softmax(input) - onehot(target)) * weight of the row`. One op
    /// that an executor may run whole (a fused kernel that never stores the softmax); its
    /// decomposition recomputes the softmax from `input`.
    pub fn cross_entropy_backward(
        &mut self,
        g: Value,
        input: Value,
        target: Value,
        ignore_index: i64,
        reduction: &str,
    ) -> Result<Value> {
        self.t(
            TorchOp::CrossEntropyBackward,
            vec![g.into(), input.into(), target.into()],
            vec![Attr::Int(ignore_index), Attr::Str(reduction.into())],
        )
    }
    /// One AdamW step over a list of parameters (`torch.optim.AdamW`, the update of PyTorch's
    /// `_fused_adamw_`): for each parameter `p` with gradient `g` and moments `m`, `v`,
    /// `p *= 1 - lr * wd; m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g;
    /// p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)`, computed in float32
    /// for 16-bit parameters. `step` is a 0-dim float tensor (float32, as PyTorch keeps it) on the
    /// parameters' device holding the step number, already counted (1 on the first step), so a
    /// new step needs no new trace.
    /// All parameters share one device; each parameter's gradient and moments have its shape and
    /// dtype. One op, so an executor can update every parameter with one multi-tensor kernel.
    pub fn adamw(
        &mut self,
        params: &[Value],
        grads: &[Value],
        exp_avgs: &[Value],
        exp_avg_sqs: &[Value],
        step: Value,
        o: &AdamwOptions,
    ) -> Result<AdamwUpdate> {
        let outs = self.call(
            crate::Op::Torch(TorchOp::Adamw),
            vec![
                Arg::List(params.to_vec()),
                Arg::List(grads.to_vec()),
                Arg::List(exp_avgs.to_vec()),
                Arg::List(exp_avg_sqs.to_vec()),
                step.into(),
            ],
            vec![
                Attr::Float(o.lr),
                Attr::Float(o.beta1),
                Attr::Float(o.beta2),
                Attr::Float(o.eps),
                Attr::Float(o.weight_decay),
                Attr::Bool(o.inplace),
            ],
        )?;
        let n = params.len();
        Ok(AdamwUpdate {
            params: outs[..n].to_vec(),
            exp_avgs: outs[n..2 * n].to_vec(),
            exp_avg_sqs: outs[2 * n..].to_vec(),
        })
    }
    /// `torch.nn.functional.rms_norm(a, normalized_shape, weight, eps)`
    pub fn rms_norm(
        &mut self,
        a: Value,
        normalized_shape: &[usize],
        weight: Option<Value>,
        eps: Option<f64>,
    ) -> Result<Value> {
        self.t(
            TorchOp::RmsNorm,
            vec![a.into(), weight.into()],
            vec![
                size_attr(TorchOp::RmsNorm, "normalized_shape", normalized_shape)?,
                opt(eps, Attr::Float),
            ],
        )
    }
    /// `torch.nn.functional.layer_norm(a, normalized_shape, weight, bias, eps)`
    pub fn layer_norm(
        &mut self,
        a: Value,
        normalized_shape: &[usize],
        weight: Option<Value>,
        bias: Option<Value>,
        eps: f64,
    ) -> Result<Value> {
        self.t(
            TorchOp::LayerNorm,
            vec![a.into(), weight.into(), bias.into()],
            vec![
                size_attr(TorchOp::LayerNorm, "normalized_shape", normalized_shape)?,
                Attr::Float(eps),
            ],
        )
    }
    /// `torch.nn.functional.dropout(a, p, training)`; the identity when not training or `p == 0`.
    pub fn dropout(&mut self, a: Value, p: f64, training: bool) -> Result<Value> {
        self.t(
            TorchOp::Dropout,
            vec![a.into()],
            vec![Attr::Float(p), Attr::Bool(training)],
        )
    }
    /// `torch.nn.functional.embedding(indices, weight)`
    pub fn embedding(&mut self, indices: Value, weight: Value) -> Result<Value> {
        self.t(
            TorchOp::Embedding,
            vec![indices.into(), weight.into()],
            vec![Attr::None],
        )
    }
    /// `torch.nn.functional.linear(a, w, bias)`
    pub fn linear(&mut self, a: Value, w: Value, bias: Option<Value>) -> Result<Value> {
        self.t(
            TorchOp::Linear,
            vec![a.into(), w.into(), bias.into()],
            vec![],
        )
    }
    /// `torch.matmul(a, b)`
    pub fn matmul(&mut self, a: Value, b: Value) -> Result<Value> {
        self.t(TorchOp::Matmul, vec![a.into(), b.into()], vec![])
    }
    /// `torch.bmm(a, b)`
    pub fn bmm(&mut self, a: Value, b: Value) -> Result<Value> {
        self.t(TorchOp::Bmm, vec![a.into(), b.into()], vec![])
    }
    /// The gradients `(d query, d key, d value)` of attention without dropout from the output's
    /// gradient `g` (`o.dropout_p` must be 0): the backward as one op, which an executor may run
    /// whole (the torch executor runs libtorch's attention backward).
    pub fn scaled_dot_product_attention_backward(
        &mut self,
        g: Value,
        q: Value,
        k: Value,
        v: Value,
        o: &SdpaOptions,
    ) -> Result<[Value; 3]> {
        if o.dropout_p != 0.0 {
            return Err(IrError::invalid(
                crate::ops::Op::Torch(TorchOp::ScaledDotProductAttentionBackward).qualified_name(),
                format!("dropout_p={} must be 0: the backward of attention with dropout needs its mask, so it is differentiated through its decomposition", o.dropout_p),
            ));
        }
        let outs = self.call(
            crate::ops::Op::Torch(TorchOp::ScaledDotProductAttentionBackward),
            vec![g.into(), q.into(), k.into(), v.into(), o.attn_mask.into()],
            vec![
                Attr::Bool(o.is_causal),
                opt(o.scale, Attr::Float),
                Attr::Bool(o.enable_gqa),
            ],
        )?;
        Ok([outs[0], outs[1], outs[2]])
    }
    /// `torch.nn.functional.scaled_dot_product_attention(query, key, value, ...)`
    pub fn scaled_dot_product_attention(
        &mut self,
        q: Value,
        k: Value,
        v: Value,
        o: &SdpaOptions,
    ) -> Result<Value> {
        self.t(
            TorchOp::ScaledDotProductAttention,
            vec![q.into(), k.into(), v.into(), o.attn_mask.into()],
            vec![
                Attr::Float(o.dropout_p),
                Attr::Bool(o.is_causal),
                opt(o.scale, Attr::Float),
                Attr::Bool(o.enable_gqa),
            ],
        )
    }
    /// `a.reshape(shape)`; one entry may be `-1`.
    pub fn reshape(&mut self, a: Value, shape: &[i64]) -> Result<Value> {
        self.t(
            TorchOp::Reshape,
            vec![a.into()],
            vec![Attr::Ints(shape.to_vec())],
        )
    }
    /// `a.view(shape)`; one entry may be `-1`.
    pub fn view(&mut self, a: Value, shape: &[i64]) -> Result<Value> {
        self.t(
            TorchOp::View,
            vec![a.into()],
            vec![Attr::Ints(shape.to_vec())],
        )
    }
    /// `a.permute(dims)`
    pub fn permute(&mut self, a: Value, dims: &[i64]) -> Result<Value> {
        self.t(
            TorchOp::Permute,
            vec![a.into()],
            vec![Attr::Ints(dims.to_vec())],
        )
    }
    /// `a.transpose(dim0, dim1)`
    pub fn transpose(&mut self, a: Value, dim0: i64, dim1: i64) -> Result<Value> {
        self.t(
            TorchOp::Transpose,
            vec![a.into()],
            vec![Attr::Int(dim0), Attr::Int(dim1)],
        )
    }
    /// `a.unsqueeze(dim)`
    pub fn unsqueeze(&mut self, a: Value, dim: i64) -> Result<Value> {
        self.t(TorchOp::Unsqueeze, vec![a.into()], vec![Attr::Int(dim)])
    }
    /// `a.squeeze(dims)`; `None` squeezes every size-1 dim.
    pub fn squeeze(&mut self, a: Value, dims: Option<&[i64]>) -> Result<Value> {
        self.t(
            TorchOp::Squeeze,
            vec![a.into()],
            vec![opt(dims, |d| Attr::Ints(d.to_vec()))],
        )
    }
    /// `a.flatten(start_dim, end_dim)`
    pub fn flatten(&mut self, a: Value, start_dim: i64, end_dim: i64) -> Result<Value> {
        self.t(
            TorchOp::Flatten,
            vec![a.into()],
            vec![Attr::Int(start_dim), Attr::Int(end_dim)],
        )
    }
    /// `a.expand(shape)`; `-1` keeps a size.
    pub fn expand(&mut self, a: Value, shape: &[i64]) -> Result<Value> {
        self.t(
            TorchOp::Expand,
            vec![a.into()],
            vec![Attr::Ints(shape.to_vec())],
        )
    }
    /// `torch.split(a, split_size, dim)`: chunks of `split_size` (the last may be smaller).
    pub fn split(&mut self, a: Value, split_size: i64, dim: i64) -> Result<Vec<Value>> {
        self.call(
            crate::Op::Torch(TorchOp::Split),
            vec![a.into()],
            vec![Attr::Int(split_size), Attr::Int(dim)],
        )
    }
    /// `torch.split(a, sections, dim)` with explicit section sizes.
    pub fn split_sections(&mut self, a: Value, sections: &[i64], dim: i64) -> Result<Vec<Value>> {
        self.call(
            crate::Op::Torch(TorchOp::Split),
            vec![a.into()],
            vec![Attr::Ints(sections.to_vec()), Attr::Int(dim)],
        )
    }
    /// `a.narrow(dim, start, length)`
    pub fn narrow(&mut self, a: Value, dim: i64, start: i64, length: i64) -> Result<Value> {
        self.t(
            TorchOp::Narrow,
            vec![a.into()],
            vec![Attr::Int(dim), Attr::Int(start), Attr::Int(length)],
        )
    }
    /// `torch.cat(tensors, dim)`
    pub fn cat(&mut self, tensors: &[Value], dim: i64) -> Result<Value> {
        self.t(
            TorchOp::Cat,
            vec![Arg::List(tensors.to_vec())],
            vec![Attr::Int(dim)],
        )
    }
    /// `torch.stack(tensors, dim)`
    pub fn stack(&mut self, tensors: &[Value], dim: i64) -> Result<Value> {
        self.t(
            TorchOp::Stack,
            vec![Arg::List(tensors.to_vec())],
            vec![Attr::Int(dim)],
        )
    }
    /// `a.to(dtype)`
    pub fn to_dtype(&mut self, a: Value, dtype: DType) -> Result<Value> {
        self.t(
            TorchOp::To,
            vec![a.into()],
            vec![Attr::DType(dtype), Attr::None],
        )
    }
    /// `a.to(device)`
    pub fn to_device(&mut self, a: Value, device: Device) -> Result<Value> {
        self.t(
            TorchOp::To,
            vec![a.into()],
            vec![Attr::None, Attr::Device(device)],
        )
    }
    /// `torch.zeros(shape, dtype=, device=)`
    pub fn zeros(&mut self, shape: &[usize], dtype: DType, device: Device) -> Result<Value> {
        self.t(
            TorchOp::Zeros,
            vec![],
            vec![
                size_attr(TorchOp::Zeros, "shape", shape)?,
                Attr::DType(dtype),
                Attr::Device(device),
            ],
        )
    }
    /// `torch.ones(shape, dtype=, device=)`
    pub fn ones(&mut self, shape: &[usize], dtype: DType, device: Device) -> Result<Value> {
        self.t(
            TorchOp::Ones,
            vec![],
            vec![
                size_attr(TorchOp::Ones, "shape", shape)?,
                Attr::DType(dtype),
                Attr::Device(device),
            ],
        )
    }
    /// `torch.full(shape, fill_value, dtype=, device=)`; `dtype=None` infers it from the value.
    pub fn full(
        &mut self,
        shape: &[usize],
        fill_value: impl Into<Arg>,
        dtype: Option<DType>,
        device: Device,
    ) -> Result<Value> {
        self.t(
            TorchOp::Full,
            vec![],
            vec![
                size_attr(TorchOp::Full, "shape", shape)?,
                num_attr(fill_value),
                opt(dtype, Attr::DType),
                Attr::Device(device),
            ],
        )
    }
    /// `torch.arange(start, end, step, dtype=, device=)`
    pub fn arange(
        &mut self,
        start: impl Into<Arg>,
        end: impl Into<Arg>,
        step: impl Into<Arg>,
        dtype: Option<DType>,
        device: Device,
    ) -> Result<Value> {
        self.t(
            TorchOp::Arange,
            vec![],
            vec![
                num_attr(start),
                num_attr(end),
                num_attr(step),
                opt(dtype, Attr::DType),
                Attr::Device(device),
            ],
        )
    }
}
