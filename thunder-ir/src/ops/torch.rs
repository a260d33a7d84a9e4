//! Torch-level ops: the names PyTorch users know, each defined by a decomposition into prims
//! (and other torch-level ops), which the trace keeps as the bound symbol's subsymbols.
//!
//! The decompositions follow PyTorch's semantics: type promotion across tensors and numbers,
//! broadcasting, and, like Lightning Thunder, computation in float32 for 16-bit float inputs
//! (converted back to the result dtype at the end).

use super::info::{Autocast, OpInfo, TorchGrad};
use super::prims::{ints, PrimOp};
use super::{
    attr_bool, attr_float, attr_int, attr_ints, attr_opt_device, attr_opt_dtype, attr_opt_float,
    attr_opt_int, attr_opt_ints, attr_str, op_table, AttrKind as A, ParamKind as P, Signature,
};
use crate::builder::TraceBuilder;
use crate::device::Device;
use crate::dtype::{DType, NumberType};
use crate::error::{IrError, Result};
use crate::promotion::{elementwise_promotion, ElementwisePromotion as K, PromotionOperand};
use crate::shape::{broadcast_shapes, canonicalize_dim, canonicalize_dims, Shape};
use crate::trace::{Arg, Attr};
use crate::value::{Value, ValueType};

// The rows' shorthands: the family constructors of the op table.
const E: OpInfo = OpInfo::elementwise();
const R: OpInfo = OpInfo::reduction();
const IR: OpInfo = OpInfo::index_reduction();
const NN: OpInfo = OpInfo::nn();
const CO: OpInfo = OpInfo::composite();
const SH: OpInfo = OpInfo::shape();
const C: OpInfo = OpInfo::creation();
const WHOLE: TorchGrad = TorchGrad::Whole;
const LOWER: Autocast = Autocast::LowerPrecision;
const F32: Autocast = Autocast::Float32;

op_table! {
    /// A torch-level op. Each row declares the op's properties ([`OpInfo`]): its family, whether
    /// grad differentiates it whole (`grad(WHOLE)`) or through its decomposition, what autocast
    /// does with it, whether the torch executor calls libtorch for it by default (`direct`), and
    /// the PyTorch callables the Python front end translates into it (`pytorch`).
    pub enum TorchOp in "ltorch" {
        // unary elementwise
        Abs = "abs" => E.pytorch(&["torch.abs", "operator.abs", "torch.Tensor.abs"]),
        Neg = "neg" => E.pytorch(&["torch.neg", "operator.neg", "torch.Tensor.neg"]),
        Exp = "exp" => E.autocast(F32).pytorch(&["torch.exp", "torch.Tensor.exp"]),
        Expm1 = "expm1" => E.autocast(F32),
        Log = "log" => E.autocast(F32).pytorch(&["torch.log", "torch.Tensor.log"]),
        Log1p = "log1p" => E.autocast(F32),
        Log2 = "log2" => E,
        Sqrt = "sqrt" => E.pytorch(&["torch.sqrt", "torch.Tensor.sqrt"]),
        Rsqrt = "rsqrt" => E.autocast(F32).pytorch(&["torch.rsqrt", "torch.Tensor.rsqrt"]),
        Reciprocal = "reciprocal" => E.autocast(F32),
        Sin = "sin" => E.pytorch(&["torch.sin", "torch.Tensor.sin"]),
        Cos = "cos" => E.pytorch(&["torch.cos", "torch.Tensor.cos"]),
        Tan = "tan" => E,
        Tanh = "tanh" => E.pytorch(&["torch.tanh", "torch.Tensor.tanh"]),
        Erf = "erf" => E.pytorch(&["torch.erf", "torch.special.erf", "torch.Tensor.erf"]),
        Floor = "floor" => E,
        Ceil = "ceil" => E,
        Round = "round" => E,
        Trunc = "trunc" => E,
        Sign = "sign" => E,
        IsFinite = "isfinite" => E,
        BitwiseNot = "bitwise_not" => E,
        LogicalNot = "logical_not" => E,
        Sigmoid = "sigmoid" => E.direct().pytorch(&["torch.sigmoid", "torch.Tensor.sigmoid"]),
        Relu = "relu" => E.direct().pytorch(&["torch.relu", "torch.nn.functional.relu", "torch.Tensor.relu"]),
        Silu = "silu" => E.direct().pytorch(&["torch.nn.functional.silu"]),
        Gelu = "gelu" => E.direct().pytorch(&["torch.nn.functional.gelu"]),
        // binary elementwise
        Add = "add" => E.pytorch(&["torch.add", "operator.add", "torch.Tensor.add"]),
        Sub = "sub" => E.pytorch(&["torch.sub", "operator.sub", "torch.Tensor.sub"]),
        Mul = "mul" => E.pytorch(&["torch.mul", "operator.mul", "torch.Tensor.mul"]),
        Div = "div" => E.pytorch(&["torch.div", "torch.true_divide", "operator.truediv", "torch.Tensor.div"]),
        Pow = "pow" => E.autocast(F32).pytorch(&["torch.pow", "operator.pow", "torch.Tensor.pow"]),
        Remainder = "remainder" => E,
        Atan2 = "atan2" => E,
        Maximum = "maximum" => E,
        Minimum = "minimum" => E,
        Eq = "eq" => E,
        Ne = "ne" => E,
        Lt = "lt" => E,
        Le = "le" => E,
        Gt = "gt" => E,
        Ge = "ge" => E,
        BitwiseAnd = "bitwise_and" => E,
        BitwiseOr = "bitwise_or" => E,
        BitwiseXor = "bitwise_xor" => E,
        // selection
        Where = "where" => E.pytorch(&["torch.where"]),
        MaskedFill = "masked_fill" => E.pytorch(&["torch.masked_fill", "torch.Tensor.masked_fill"]),
        Clamp = "clamp" => E.pytorch(&["torch.clamp", "torch.clip", "torch.Tensor.clamp", "torch.Tensor.clip"]),
        // reductions
        Sum = "sum" => R.autocast(F32).pytorch(&["torch.sum", "torch.Tensor.sum"]),
        Mean = "mean" => R.autocast(F32).pytorch(&["torch.mean", "torch.Tensor.mean"]),
        Amax = "amax" => R.pytorch(&["torch.amax", "torch.Tensor.amax"]),
        Amin = "amin" => R,
        Var = "var" => R.autocast(F32),
        Std = "std" => R.autocast(F32),
        Argmax = "argmax" => IR,
        Argmin = "argmin" => IR,
        // nn
        Softmax = "softmax" => NN.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax"]),
        LogSoftmax = "log_softmax" => NN.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.log_softmax", "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax"]),
        CrossEntropy = "cross_entropy" => CO.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.nn.functional.cross_entropy"]),
        CrossEntropyBackward = "cross_entropy_backward" => CO.direct(),
        RmsNorm = "rms_norm" => NN.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.rms_norm", "torch.nn.functional.rms_norm"]),
        LayerNorm = "layer_norm" => NN.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.nn.functional.layer_norm"]),
        Dropout = "dropout" => NN.random().pytorch(&["torch.nn.functional.dropout"]),
        Embedding = "embedding" => NN.direct().pytorch(&["torch.nn.functional.embedding"]),
        Linear = "linear" => NN.autocast(LOWER).direct().pytorch(&["torch._C._nn.linear"]),
        Matmul = "matmul" => NN.autocast(LOWER).direct().pytorch(&["torch.matmul", "operator.matmul", "torch.Tensor.matmul"]),
        Bmm = "bmm" => NN.autocast(LOWER).direct(),
        ScaledDotProductAttention = "scaled_dot_product_attention" => NN.grad(WHOLE).autocast(LOWER).direct().pytorch(&["torch._C._nn.scaled_dot_product_attention"]),
        ScaledDotProductAttentionBackward = "scaled_dot_product_attention_backward" => NN.direct(),
        // shape
        Reshape = "reshape" => SH.direct().pytorch(&["torch.reshape", "torch.Tensor.reshape"]),
        View = "view" => SH.direct().pytorch(&["torch.Tensor.view"]),
        Permute = "permute" => SH.direct().pytorch(&["torch.permute", "torch.Tensor.permute"]),
        Transpose = "transpose" => SH.direct().pytorch(&["torch.transpose", "torch.Tensor.transpose"]),
        Unsqueeze = "unsqueeze" => SH.direct().pytorch(&["torch.unsqueeze", "torch.Tensor.unsqueeze"]),
        Squeeze = "squeeze" => SH.pytorch(&["torch.squeeze", "torch.Tensor.squeeze"]),
        Flatten = "flatten" => SH.pytorch(&["torch.flatten", "torch.Tensor.flatten"]),
        Expand = "expand" => SH.pytorch(&["torch.Tensor.expand"]),
        Split = "split" => SH.pytorch(&["torch.split", "torch.Tensor.split"]),
        Narrow = "narrow" => SH.pytorch(&["torch.narrow", "torch.Tensor.narrow"]),
        Cat = "cat" => SH.pytorch(&["torch.cat"]),
        Stack = "stack" => SH.pytorch(&["torch.stack"]),
        // optimizers
        Adamw = "adamw" => CO.direct(),
        // conversion and creation
        To = "to" => SH.direct().pytorch(&["torch.Tensor.to"]),
        Zeros = "zeros" => C,
        Ones = "ones" => C,
        Full = "full" => C,
        Arange = "arange" => C,
    }
}

impl TorchOp {
    /// The prim and promotion kind of a unary op that maps onto one prim.
    fn unary_prim(self) -> Option<(PrimOp, K)> {
        use TorchOp as T;
        Some(match self {
            T::Abs => (PrimOp::Abs, K::ComplexToFloat),
            T::Neg => (PrimOp::Neg, K::Default),
            T::Exp => (PrimOp::Exp, K::IntToFloat),
            T::Expm1 => (PrimOp::Expm1, K::IntToFloat),
            T::Log => (PrimOp::Log, K::IntToFloat),
            T::Log1p => (PrimOp::Log1p, K::IntToFloat),
            T::Log2 => (PrimOp::Log2, K::IntToFloat),
            T::Sqrt => (PrimOp::Sqrt, K::IntToFloat),
            T::Rsqrt => (PrimOp::Rsqrt, K::IntToFloat),
            T::Reciprocal => (PrimOp::Reciprocal, K::IntToFloat),
            T::Sin => (PrimOp::Sin, K::IntToFloat),
            T::Cos => (PrimOp::Cos, K::IntToFloat),
            T::Tan => (PrimOp::Tan, K::IntToFloat),
            T::Tanh => (PrimOp::Tanh, K::IntToFloat),
            T::Erf => (PrimOp::Erf, K::IntToFloat),
            T::Floor => (PrimOp::Floor, K::Default),
            T::Ceil => (PrimOp::Ceil, K::Default),
            T::Round => (PrimOp::Round, K::Default),
            T::Trunc => (PrimOp::Trunc, K::Default),
            T::Sign => (PrimOp::Sign, K::Default),
            T::IsFinite => (PrimOp::IsFinite, K::AlwaysBool),
            T::BitwiseNot => (PrimOp::BitwiseNot, K::Default),
            _ => return None,
        })
    }

    /// The prim, promotion kind and whether 16-bit floats are computed in float32, of a binary op
    /// that maps onto one prim.
    fn binary_prim(self) -> Option<(PrimOp, K, bool)> {
        use TorchOp as T;
        Some(match self {
            T::Add => (PrimOp::Add, K::Default, true),
            T::Sub => (PrimOp::Sub, K::Default, true),
            T::Mul => (PrimOp::Mul, K::Default, true),
            T::Div => (PrimOp::Div, K::IntToFloat, true),
            T::Pow => (PrimOp::Pow, K::Default, true),
            T::Remainder => (PrimOp::Remainder, K::Default, true),
            T::Atan2 => (PrimOp::Atan2, K::IntToFloat, true),
            T::Maximum => (PrimOp::Maximum, K::Default, false),
            T::Minimum => (PrimOp::Minimum, K::Default, false),
            T::Eq => (PrimOp::Eq, K::AlwaysBool, false),
            T::Ne => (PrimOp::Ne, K::AlwaysBool, false),
            T::Lt => (PrimOp::Lt, K::AlwaysBool, false),
            T::Le => (PrimOp::Le, K::AlwaysBool, false),
            T::Gt => (PrimOp::Gt, K::AlwaysBool, false),
            T::Ge => (PrimOp::Ge, K::AlwaysBool, false),
            T::BitwiseAnd => (PrimOp::BitwiseAnd, K::Default, false),
            T::BitwiseOr => (PrimOp::BitwiseOr, K::Default, false),
            T::BitwiseXor => (PrimOp::BitwiseXor, K::Default, false),
            _ => return None,
        })
    }

    /// Operands and attributes.
    pub fn signature(self) -> Signature {
        use TorchOp as T;
        let s = |operands, attrs| Signature {
            operands,
            attrs,
            num_outputs: Some(1),
        };
        if self.unary_prim().is_some()
            || matches!(self, T::LogicalNot | T::Sigmoid | T::Relu | T::Silu)
        {
            return s(&[("a", P::Tensor)], &[]);
        }
        if self.binary_prim().is_some() {
            if matches!(self, T::Add | T::Sub) {
                return s(
                    &[("a", P::TensorOrNumber), ("b", P::TensorOrNumber)],
                    &[("alpha", A::OptNumber)],
                );
            }
            if matches!(self, T::Maximum | T::Minimum) {
                // torch.maximum takes no Python numbers (clamp does).
                return s(&[("a", P::Tensor), ("b", P::Tensor)], &[]);
            }
            return s(&[("a", P::TensorOrNumber), ("b", P::TensorOrNumber)], &[]);
        }
        const REDUCE: &[(&str, A)] = &[
            ("dim", A::OptInts),
            ("keepdim", A::Bool),
            ("dtype", A::OptDType),
        ];
        const VAR: &[(&str, A)] = &[
            ("dim", A::OptInts),
            ("correction", A::Float),
            ("keepdim", A::Bool),
        ];
        const CREATE: &[(&str, A)] = &[
            ("shape", A::Ints),
            ("dtype", A::OptDType),
            ("device", A::OptDevice),
        ];
        match self {
            T::Gelu => s(&[("a", P::Tensor)], &[("approximate", A::Str)]),
            T::Where => s(
                &[
                    ("condition", P::Tensor),
                    ("a", P::TensorOrNumber),
                    ("b", P::TensorOrNumber),
                ],
                &[],
            ),
            T::MaskedFill => s(
                &[
                    ("a", P::Tensor),
                    ("mask", P::Tensor),
                    ("value", P::TensorOrNumber),
                ],
                &[],
            ),
            T::Clamp => s(
                &[("a", P::Tensor)],
                &[("min", A::OptNumber), ("max", A::OptNumber)],
            ),
            T::Sum | T::Mean => s(&[("a", P::Tensor)], REDUCE),
            T::Amax | T::Amin => s(
                &[("a", P::Tensor)],
                &[("dim", A::OptInts), ("keepdim", A::Bool)],
            ),
            T::Var | T::Std => s(&[("a", P::Tensor)], VAR),
            T::Argmax | T::Argmin => s(
                &[("a", P::Tensor)],
                &[("dim", A::OptInt), ("keepdim", A::Bool)],
            ),
            T::Softmax | T::LogSoftmax => s(
                &[("a", P::Tensor)],
                &[("dim", A::Int), ("dtype", A::OptDType)],
            ),
            T::CrossEntropy => s(
                &[("input", P::Tensor), ("target", P::Tensor)],
                &[
                    ("ignore_index", A::Int),
                    ("reduction", A::Str),
                    ("label_smoothing", A::Float),
                ],
            ),
            T::CrossEntropyBackward => s(
                &[
                    ("grad_out", P::Tensor),
                    ("input", P::Tensor),
                    ("target", P::Tensor),
                ],
                &[("ignore_index", A::Int), ("reduction", A::Str)],
            ),
            T::RmsNorm => s(
                &[("a", P::Tensor), ("weight", P::OptTensor)],
                &[("normalized_shape", A::Ints), ("eps", A::OptFloat)],
            ),
            T::LayerNorm => s(
                &[
                    ("a", P::Tensor),
                    ("weight", P::OptTensor),
                    ("bias", P::OptTensor),
                ],
                &[("normalized_shape", A::Ints), ("eps", A::Float)],
            ),
            T::Dropout => s(
                &[("a", P::Tensor)],
                &[("p", A::Float), ("training", A::Bool)],
            ),
            T::Embedding => s(
                &[("a", P::Tensor), ("weight", P::Tensor)],
                &[("padding_idx", A::OptInt)],
            ),
            T::Linear => s(
                &[("a", P::Tensor), ("w", P::Tensor), ("bias", P::OptTensor)],
                &[],
            ),
            T::Matmul | T::Bmm => s(&[("a", P::Tensor), ("b", P::Tensor)], &[]),
            T::ScaledDotProductAttention => s(
                &[
                    ("query", P::Tensor),
                    ("key", P::Tensor),
                    ("value", P::Tensor),
                    ("attn_mask", P::OptTensor),
                ],
                &[
                    ("dropout_p", A::Float),
                    ("is_causal", A::Bool),
                    ("scale", A::OptFloat),
                    ("enable_gqa", A::Bool),
                ],
            ),
            T::ScaledDotProductAttentionBackward => Signature {
                operands: &[
                    ("grad_out", P::Tensor),
                    ("query", P::Tensor),
                    ("key", P::Tensor),
                    ("value", P::Tensor),
                    ("attn_mask", P::OptTensor),
                ],
                attrs: &[
                    ("is_causal", A::Bool),
                    ("scale", A::OptFloat),
                    ("enable_gqa", A::Bool),
                ],
                num_outputs: Some(3),
            },
            T::Reshape | T::View | T::Expand => s(&[("a", P::Tensor)], &[("shape", A::Ints)]),
            T::Permute => s(&[("a", P::Tensor)], &[("dims", A::Ints)]),
            T::Transpose => s(&[("a", P::Tensor)], &[("dim0", A::Int), ("dim1", A::Int)]),
            T::Unsqueeze => s(&[("a", P::Tensor)], &[("dim", A::Int)]),
            T::Squeeze => s(&[("a", P::Tensor)], &[("dim", A::OptInts)]),
            T::Flatten => s(
                &[("a", P::Tensor)],
                &[("start_dim", A::Int), ("end_dim", A::Int)],
            ),
            T::Adamw => Signature {
                operands: &[
                    ("params", P::TensorList),
                    ("grads", P::TensorList),
                    ("exp_avgs", P::TensorList),
                    ("exp_avg_sqs", P::TensorList),
                    ("step", P::Tensor),
                ],
                attrs: &[
                    ("lr", A::Float),
                    ("beta1", A::Float),
                    ("beta2", A::Float),
                    ("eps", A::Float),
                    ("weight_decay", A::Float),
                    ("inplace", A::Bool),
                ],
                num_outputs: None,
            },
            T::Split => Signature {
                operands: &[("a", P::Tensor)],
                attrs: &[("split_size_or_sections", A::IntOrInts), ("dim", A::Int)],
                num_outputs: None,
            },
            T::Narrow => s(
                &[("a", P::Tensor)],
                &[("dim", A::Int), ("start", A::Int), ("length", A::Int)],
            ),
            T::Cat | T::Stack => s(&[("tensors", P::TensorList)], &[("dim", A::Int)]),
            T::To => s(
                &[("a", P::Tensor)],
                &[("dtype", A::OptDType), ("device", A::OptDevice)],
            ),
            T::Zeros | T::Ones => s(&[], CREATE),
            T::Full => s(
                &[],
                &[
                    ("shape", A::Ints),
                    ("fill_value", A::Number),
                    ("dtype", A::OptDType),
                    ("device", A::OptDevice),
                ],
            ),
            T::Arange => s(
                &[],
                &[
                    ("start", A::Number),
                    ("end", A::Number),
                    ("step", A::Number),
                    ("dtype", A::OptDType),
                    ("device", A::OptDevice),
                ],
            ),
            _ => s(&[], &[]),
        }
    }
}

/// Hyperparameters of [`TraceBuilder::adamw`], with `torch.optim.AdamW`'s defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwOptions {
    /// Learning rate (`>= 0`).
    pub lr: f64,
    /// Decay of the first moment (`0 <= beta1 < 1`).
    pub beta1: f64,
    /// Decay of the second moment (`0 <= beta2 < 1`).
    pub beta2: f64,
    /// Added to the denominator (`>= 0`).
    pub eps: f64,
    /// Decoupled weight decay (`>= 0`): each parameter is first scaled by `1 - lr * weight_decay`.
    pub weight_decay: f64,
    /// The inputs are donated: an executor may write the new parameters and moments into the
    /// buffers of `params`, `exp_avgs` and `exp_avg_sqs` (as PyTorch's `_fused_adamw_` does) and
    /// return those. The trace must not read them after the op, and the caller must take the
    /// results from the outputs (an executor may also return new tensors).
    pub inplace: bool,
}

impl Default for AdamwOptions {
    fn default() -> Self {
        AdamwOptions {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
            inplace: false,
        }
    }
}

/// What [`TraceBuilder::adamw`] returns: the updated state, one value per parameter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdamwUpdate {
    /// The new parameters.
    pub params: Vec<Value>,
    /// The new first moments.
    pub exp_avgs: Vec<Value>,
    /// The new second moments.
    pub exp_avg_sqs: Vec<Value>,
}

/// Options of [`TraceBuilder::scaled_dot_product_attention`], with PyTorch's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SdpaOptions {
    /// A boolean mask (true = attend) or an additive float mask, broadcastable to the scores.
    pub attn_mask: Option<Value>,
    /// Dropout probability on the attention weights.
    pub dropout_p: f64,
    /// Causal masking (top-left aligned, as PyTorch's).
    pub is_causal: bool,
    /// Softmax scale; `None` means `1/sqrt(head_dim)`.
    pub scale: Option<f64>,
    /// Grouped-query attention: key/value with fewer heads than query.
    pub enable_gqa: bool,
}

fn num_attr(a: impl Into<Arg>) -> Attr {
    match a.into() {
        Arg::Int(i) => Attr::Int(i),
        Arg::Float(f) => Attr::Float(f),
        Arg::Bool(b) => Attr::Bool(b),
        _ => Attr::None,
    }
}

fn opt_dims(dims: &[i64]) -> Attr {
    if dims.is_empty() {
        Attr::None
    } else {
        Attr::Ints(dims.to_vec())
    }
}

/// Sizes a Rust caller passes as `usize`, as the `int` list attribute they become; one beyond
/// i64 is an overflow error (an `as` cast would turn it negative and blame the wrong thing).
fn size_attr(op: TorchOp, arg: &str, sizes: &[usize]) -> Result<Attr> {
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

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Attr) -> Attr {
    v.map_or(Attr::None, f)
}

/// The public, typed builder methods for torch-level ops.
impl TraceBuilder {
    fn t(&mut self, op: TorchOp, args: Vec<Arg>, attrs: Vec<Attr>) -> Result<Value> {
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

// ---------------------------------------------------------------------------------------------
// Prim-level helpers used by the decompositions.

impl TraceBuilder {
    fn p1(&mut self, op: PrimOp, a: impl Into<Arg>) -> Result<Value> {
        self.prim(op, vec![a.into()], vec![])
    }
    fn p2(&mut self, op: PrimOp, a: impl Into<Arg>, b: impl Into<Arg>) -> Result<Value> {
        self.prim(op, vec![a.into(), b.into()], vec![])
    }
    /// `convert_element_type` unless `a` already has `dtype`.
    fn convert(&mut self, a: Value, dtype: DType) -> Result<Value> {
        match self.ty(a)? {
            ValueType::Tensor(t) if t.dtype == dtype => Ok(a),
            _ => self.prim(
                PrimOp::ConvertElementType,
                vec![a.into()],
                vec![Attr::DType(dtype)],
            ),
        }
    }
    /// `broadcast_in_dim` to `shape`, aligning dims from the right, unless the shape already is.
    fn broadcast_to(&mut self, a: Value, shape: &Shape) -> Result<Value> {
        let t = self.tensor(a)?;
        if &t.shape == shape {
            return Ok(a);
        }
        let offset = shape.rank().saturating_sub(t.rank());
        self.prim(
            PrimOp::BroadcastInDim,
            vec![a.into()],
            vec![ints(shape.sizes()), ints((0..t.rank()).map(|i| i + offset))],
        )
    }
    /// Puts reduced dims back as size 1 (for `keepdim=True`).
    fn keepdim(&mut self, r: Value, full: &Shape, dims: &[usize]) -> Result<Value> {
        let shape: Vec<usize> = (0..full.rank())
            .map(|i| if dims.contains(&i) { 1 } else { full.size(i) })
            .collect();
        let kept = (0..full.rank()).filter(|i| !dims.contains(i));
        self.prim(
            PrimOp::BroadcastInDim,
            vec![r.into()],
            vec![ints(shape), ints(kept)],
        )
    }
    /// Broadcasts a reduction result back to the full shape (the reduced dims re-expanded).
    fn expand_reduced(&mut self, r: Value, full: &Shape, dims: &[usize]) -> Result<Value> {
        let kept = (0..full.rank()).filter(|i| !dims.contains(i));
        self.prim(
            PrimOp::BroadcastInDim,
            vec![r.into()],
            vec![ints(full.sizes()), ints(kept)],
        )
    }
    fn reduce(&mut self, op: PrimOp, a: Value, dims: &[usize]) -> Result<Value> {
        self.prim(op, vec![a.into()], vec![ints(dims.iter().copied())])
    }
    fn full_prim(
        &mut self,
        shape: &Shape,
        value: Attr,
        device: Device,
        dtype: DType,
    ) -> Result<Value> {
        self.prim(
            PrimOp::Full,
            vec![],
            vec![
                ints(shape.sizes()),
                value,
                Attr::Device(device),
                Attr::DType(dtype),
            ],
        )
    }
    fn operand(&self, a: &Arg) -> Result<PromotionOperand> {
        Ok(match a {
            Arg::Value(v) => match self.ty(*v)? {
                ValueType::Tensor(t) if t.rank() == 0 => PromotionOperand::ZeroDim(t.dtype),
                ValueType::Tensor(t) => PromotionOperand::Tensor(t.dtype),
                ValueType::Number(n) => PromotionOperand::Number(*n),
            },
            Arg::Int(_) => PromotionOperand::Number(NumberType::Int),
            Arg::Float(_) => PromotionOperand::Number(NumberType::Float),
            Arg::Bool(_) => PromotionOperand::Number(NumberType::Bool),
            _ => PromotionOperand::Number(NumberType::Int),
        })
    }
    /// The common broadcast shape and device of the tensor operands (`None` if there are none).
    fn common_shape(&self, op: &str, args: &[&Arg]) -> Result<Option<(Shape, Device)>> {
        let mut acc: Option<(Shape, Device, String)> = None;
        for a in args {
            if let Arg::Value(v) = a {
                if let ValueType::Tensor(t) = self.ty(*v)? {
                    acc = Some(match acc {
                        None => (t.shape.clone(), t.device, self.name_of(*v)?.to_string()),
                        Some((s, d, first)) => {
                            if d != t.device {
                                return Err(IrError::invalid(
                                    op,
                                    format!("{first} is on {d} but {} is on {}; move them to one device", self.name_of(*v)?, t.device),
                                ));
                            }
                            (broadcast_shapes(op, &s, &t.shape)?, d, first)
                        }
                    });
                }
            }
        }
        Ok(acc.map(|(s, d, _)| (s, d)))
    }
    /// Broadcasts and converts tensor operands; leaves numbers as they are.
    fn prepare(&mut self, args: &[&Arg], shape: Option<&Shape>, dtype: DType) -> Result<Vec<Arg>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(match a {
                Arg::Value(v) if matches!(self.ty(*v)?, ValueType::Tensor(_)) => {
                    let c = self.convert(*v, dtype)?;
                    match shape {
                        Some(s) => Arg::Value(self.broadcast_to(c, s)?),
                        None => Arg::Value(c),
                    }
                }
                other => (*other).clone(),
            });
        }
        Ok(out)
    }
    /// A promoted, broadcast elementwise prim call.
    fn elementwise(
        &mut self,
        op: &str,
        prim: PrimOp,
        args: &[&Arg],
        kind: K,
        upcast: bool,
    ) -> Result<Value> {
        let operands = args
            .iter()
            .map(|a| self.operand(a))
            .collect::<Result<Vec<_>>>()?;
        let pt = elementwise_promotion(op, &operands, kind)?;
        let comp = if upcast {
            pt.computation
        } else {
            promoted_input(pt.computation, &operands, op)?
        };
        let common = self.common_shape(op, args)?;
        let prepared = self.prepare(args, common.as_ref().map(|(s, _)| s), comp)?;
        let r = self.prim(prim, prepared, vec![])?;
        if kind == K::AlwaysBool {
            return Ok(r);
        }
        self.convert(r, pt.result)
    }
}

/// Without upcasting, the operands are converted to the promoted dtype itself (not float32).
fn promoted_input(computation: DType, operands: &[PromotionOperand], op: &str) -> Result<DType> {
    let promoted = crate::promotion::result_type(op, operands)?;
    Ok(if promoted.is_low_precision_float() {
        promoted
    } else {
        computation
    })
}

fn finfo_eps(d: DType) -> f64 {
    d.finfo_eps()
}

/// Resolves one `-1` in a requested shape, as `reshape`/`view` do.
fn infer_shape(op: &str, requested: &[i64], numel: usize, given: &Shape) -> Result<Vec<usize>> {
    let bad = || {
        IrError::invalid(
            op,
            format!("shape {requested:?} is invalid for input of shape {given} ({numel} elements)"),
        )
    };
    let mut infer = None;
    let mut known: usize = 1;
    for (i, &s) in requested.iter().enumerate() {
        match s {
            -1 if infer.is_none() => infer = Some(i),
            -1 => {
                return Err(IrError::invalid(
                    op,
                    format!("shape {requested:?} has more than one -1"),
                ))
            }
            s if s < 0 => return Err(bad()),
            s => known = known.checked_mul(s as usize).ok_or_else(bad)?,
        }
    }
    let mut out: Vec<usize> = requested.iter().map(|&s| s.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || numel % known != 0 {
            return Err(bad());
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(bad());
    }
    Ok(out)
}

/// Runs the decomposition of `op` on `args`/`attrs` in `b`, returning the op's outputs.
pub(crate) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    use TorchOp as T;
    let qn = format!("ltorch.{}", op.name());
    let n = qn.as_str();
    let tensor_arg = |b: &TraceBuilder, i: usize| -> Result<Value> {
        match args.get(i) {
            Some(Arg::Value(v)) if b.tensor(*v).is_ok() => Ok(*v),
            _ => Err(IrError::invalid(
                n,
                format!(
                    "{} must be a tensor",
                    op.signature().operands.get(i).map_or("operand", |o| o.0)
                ),
            )),
        }
    };
    if let Some((prim, kind)) = op.unary_prim() {
        let a = tensor_arg(b, 0)?;
        let t = b.tensor(a)?.clone();
        let rounding = matches!(op, T::Floor | T::Ceil | T::Round | T::Trunc);
        if rounding && t.dtype.is_bool() {
            return Err(IrError::invalid(n, "a must not be a bool tensor"));
        }
        if rounding && t.dtype.is_integer() {
            // PyTorch returns integer input unchanged.
            return Ok(vec![a]);
        }
        let pt = elementwise_promotion(n, &[b.operand(&args[0])?], kind)?;
        let x = b.convert(a, pt.computation)?;
        let y = b.p1(prim, x)?;
        return Ok(vec![b.convert(y, pt.result)?]);
    }
    if let Some((prim, kind, upcast)) = op.binary_prim() {
        let mut rhs = args[1].clone();
        if matches!(op, T::Add | T::Sub) {
            if let Some(alpha) = attrs.first().filter(|a| **a != Attr::None) {
                let alpha_arg = match alpha {
                    Attr::Int(i) => Arg::Int(*i),
                    Attr::Float(f) => Arg::Float(*f),
                    Attr::Bool(v) => Arg::Bool(*v),
                    _ => Arg::None,
                };
                rhs = Arg::Value(b.t(T::Mul, vec![rhs, alpha_arg], vec![])?);
            }
        }
        return Ok(vec![b.elementwise(
            n,
            prim,
            &[&args[0], &rhs],
            kind,
            upcast,
        )?]);
    }
    let out = match op {
        T::LogicalNot => {
            let a = tensor_arg(b, 0)?;
            let zero = if b.tensor(a)?.dtype.is_bool() {
                Arg::Bool(false)
            } else {
                Arg::Int(0)
            };
            b.elementwise(n, PrimOp::Eq, &[&args[0], &zero], K::AlwaysBool, false)?
        }
        T::Sigmoid | T::Silu => {
            let a = tensor_arg(b, 0)?;
            let d = b.tensor(a)?.dtype;
            if op == T::Silu && !d.is_inexact() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating dtype, got {d}"),
                ));
            }
            let pt = elementwise_promotion(n, &[b.operand(&args[0])?], K::IntToFloat)?;
            let x = b.convert(a, pt.computation)?;
            let e = b.p1(PrimOp::Neg, x)?;
            let e = b.p1(PrimOp::Exp, e)?;
            let d = b.p2(PrimOp::Add, e, 1.0)?;
            let mut y = b.p1(PrimOp::Reciprocal, d)?;
            if op == T::Silu {
                y = b.p2(PrimOp::Mul, x, y)?;
            }
            b.convert(y, pt.result)?
        }
        T::Relu => {
            let a = tensor_arg(b, 0)?;
            let d = b.tensor(a)?.dtype;
            if d.is_bool() || d.is_complex() {
                return Err(IrError::invalid(
                    n,
                    format!("a must be a real numeric tensor, got {d}"),
                ));
            }
            // maximum propagates NaN, as torch.relu does.
            let zero = if d.is_float() {
                Arg::Float(0.0)
            } else {
                Arg::Int(0)
            };
            b.p2(PrimOp::Maximum, a, zero)?
        }
        T::Gelu => {
            let a = tensor_arg(b, 0)?;
            let approximate = attr_str(n, attrs, 0)?;
            let pt = elementwise_promotion(n, &[b.operand(&args[0])?], K::IntToFloat)?;
            let x = b.convert(a, pt.computation)?;
            let inner = match approximate {
                "none" => {
                    let s = b.p2(PrimOp::Mul, x, std::f64::consts::FRAC_1_SQRT_2)?;
                    b.p1(PrimOp::Erf, s)?
                }
                "tanh" => {
                    let x2 = b.p2(PrimOp::Mul, x, x)?;
                    let x3 = b.p2(PrimOp::Mul, x2, x)?;
                    let c = b.p2(PrimOp::Mul, x3, 0.044715)?;
                    let s = b.p2(PrimOp::Add, x, c)?;
                    let s = b.p2(PrimOp::Mul, s, (2.0 / std::f64::consts::PI).sqrt())?;
                    b.p1(PrimOp::Tanh, s)?
                }
                other => {
                    return Err(IrError::invalid(
                        n,
                        format!("approximate={other:?} must be \"none\" or \"tanh\""),
                    ))
                }
            };
            let one_plus = b.p2(PrimOp::Add, inner, 1.0)?;
            let half_x = b.p2(PrimOp::Mul, x, 0.5)?;
            let y = b.p2(PrimOp::Mul, half_x, one_plus)?;
            b.convert(y, pt.result)?
        }
        T::Where => {
            let c = tensor_arg(b, 0)?;
            let cd = b.tensor(c)?.dtype;
            if !cd.is_bool() {
                return Err(IrError::invalid(
                    n,
                    format!("condition must be a bool tensor, got {cd}"),
                ));
            }
            let operands = [b.operand(&args[1])?, b.operand(&args[2])?];
            let pt = elementwise_promotion(n, &operands, K::Default)?;
            let common = b.common_shape(n, &[&args[0], &args[1], &args[2]])?;
            let shape = common.as_ref().map(|(s, _)| s);
            let cond = match shape {
                Some(s) => b.broadcast_to(c, s)?,
                None => c,
            };
            let ab = b.prepare(&[&args[1], &args[2]], shape, pt.result)?;
            b.prim(
                PrimOp::Where,
                vec![cond.into(), ab[0].clone(), ab[1].clone()],
                vec![],
            )?
        }
        T::MaskedFill => {
            let a = tensor_arg(b, 0)?;
            let mask = tensor_arg(b, 1)?;
            let (at, mt) = (b.tensor(a)?.clone(), b.tensor(mask)?.clone());
            if !mt.dtype.is_bool() {
                return Err(IrError::invalid(
                    n,
                    format!("mask must be a bool tensor, got {}", mt.dtype),
                ));
            }
            let shape = broadcast_shapes(n, &at.shape, &mt.shape)?;
            if shape != at.shape {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "mask of shape {} does not broadcast to a's shape {}",
                        mt.shape, at.shape
                    ),
                ));
            }
            let value = match &args[2] {
                Arg::Value(v) => match b.ty(*v)?.clone() {
                    ValueType::Tensor(vt) => {
                        if vt.rank() != 0 {
                            return Err(IrError::invalid(
                                n,
                                format!(
                                    "value must be a number or a 0-dim tensor, got shape {}",
                                    vt.shape
                                ),
                            ));
                        }
                        let c = b.convert(*v, at.dtype)?;
                        Arg::Value(b.broadcast_to(c, &at.shape)?)
                    }
                    ValueType::Number(_) => {
                        let c = b.prim(
                            PrimOp::ConvertElementType,
                            vec![Arg::Value(*v)],
                            vec![Attr::DType(at.dtype)],
                        )?;
                        Arg::Value(c)
                    }
                },
                // A literal is cast to a's dtype, as PyTorch does.
                Arg::Float(f) if at.dtype.is_bool() => Arg::Bool(*f != 0.0),
                Arg::Float(f) if at.dtype.is_integer() => Arg::Int(float_to_int(n, *f)?),
                Arg::Int(i) if at.dtype.is_bool() => Arg::Bool(*i != 0),
                other => other.clone(),
            };
            let m = b.broadcast_to(mask, &at.shape)?;
            b.prim(PrimOp::Where, vec![m.into(), value, a.into()], vec![])?
        }
        T::Clamp => {
            let a = tensor_arg(b, 0)?;
            let to_arg = |x: &Attr| match x {
                Attr::Int(i) => Some(Arg::Int(*i)),
                Attr::Float(f) => Some(Arg::Float(*f)),
                Attr::Bool(v) => Some(Arg::Bool(*v)),
                _ => None,
            };
            let (lo, hi) = (
                attrs.first().and_then(to_arg),
                attrs.get(1).and_then(to_arg),
            );
            if lo.is_none() && hi.is_none() {
                return Err(IrError::invalid(
                    n,
                    "at least one of min and max must not be None",
                ));
            }
            let mut ops = vec![b.operand(&args[0])?];
            for x in lo.iter().chain(hi.iter()) {
                ops.push(b.operand(x)?);
            }
            let pt = elementwise_promotion(n, &ops, K::Default)?;
            let mut y = b.convert(a, pt.result)?;
            if let Some(lo) = lo {
                y = b.prim(PrimOp::Maximum, vec![y.into(), lo], vec![])?;
            }
            if let Some(hi) = hi {
                y = b.prim(PrimOp::Minimum, vec![y.into(), hi], vec![])?;
            }
            y
        }
        T::Sum | T::Mean => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let keepdim = attr_bool(n, attrs, 1)?;
            let result = match attr_opt_dtype(n, attrs, 2)? {
                Some(d) => d,
                None if t.dtype.category() <= crate::Category::Integer => {
                    if op == T::Mean {
                        return Err(IrError::invalid(
                            n,
                            format!("could not infer output dtype: a has dtype {}, pass a floating dtype", t.dtype),
                        ));
                    }
                    DType::I64
                }
                None => t.dtype,
            };
            let comp = if result.is_low_precision_float() {
                DType::F32
            } else {
                result
            };
            let x = b.convert(a, comp)?;
            let mut s = b.reduce(PrimOp::Sum, x, &dims)?;
            if op == T::Mean {
                // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
                let count: usize = dims.iter().map(|&d| t.shape.size(d)).product();
                s = b.p2(PrimOp::Div, s, count as f64)?;
            }
            if keepdim {
                s = b.keepdim(s, &t.shape, &dims)?;
            }
            b.convert(s, result)?
        }
        T::Amax | T::Amin => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let prim = if op == T::Amax {
                PrimOp::Amax
            } else {
                PrimOp::Amin
            };
            let mut r = b.reduce(prim, a, &dims)?;
            if attr_bool(n, attrs, 1)? {
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            r
        }
        T::Var | T::Std => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if !t.dtype.is_inexact() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating or complex dtype, got {}", t.dtype),
                ));
            }
            let dims = reduction_dims(n, attr_opt_ints(n, attrs, 0)?, t.rank())?;
            let correction = attr_float(n, attrs, 1)?;
            let comp = if t.dtype.is_low_precision_float() {
                DType::F32
            } else {
                t.dtype
            };
            let x = b.convert(a, comp)?;
            let mut r = b.prim(
                PrimOp::Var,
                vec![x.into()],
                vec![ints(dims.iter().copied()), Attr::Float(correction)],
            )?;
            if op == T::Std {
                r = b.p1(PrimOp::Sqrt, r)?;
            }
            if attr_bool(n, attrs, 2)? {
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            b.convert(r, t.dtype.to_real())?
        }
        T::Argmax | T::Argmin => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dim = attr_opt_int(n, attrs, 0)?;
            let prim = if op == T::Argmax {
                PrimOp::Argmax
            } else {
                PrimOp::Argmin
            };
            let mut r = b.prim(
                prim,
                vec![a.into()],
                vec![dim.map_or(Attr::None, Attr::Int)],
            )?;
            if attr_bool(n, attrs, 1)? {
                let dims = match dim {
                    Some(d) => vec![canonicalize_dim(n, "dim", d, t.rank())?],
                    None => (0..t.rank()).collect(),
                };
                r = b.keepdim(r, &t.shape, &dims)?;
            }
            r
        }
        T::Softmax | T::LogSoftmax => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if !t.dtype.is_float() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating dtype, got {}", t.dtype),
                ));
            }
            let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
            let result = attr_opt_dtype(n, attrs, 1)?.unwrap_or(t.dtype);
            let comp = if result.is_low_precision_float() {
                DType::F32
            } else {
                result
            };
            let x = b.convert(a, comp)?;
            // Over a 0-dim tensor the reduction is over nothing.
            let dims: Vec<usize> = if t.rank() == 0 { vec![] } else { vec![d] };
            let m = b.reduce(PrimOp::Amax, x, &dims)?;
            let mb = b.expand_reduced(m, &t.shape, &dims)?;
            let s = b.p2(PrimOp::Sub, x, mb)?;
            let e = b.p1(PrimOp::Exp, s)?;
            let z = b.reduce(PrimOp::Sum, e, &dims)?;
            let y = if op == T::Softmax {
                let zb = b.expand_reduced(z, &t.shape, &dims)?;
                b.p2(PrimOp::Div, e, zb)?
            } else {
                let lz = b.p1(PrimOp::Log, z)?;
                let lzb = b.expand_reduced(lz, &t.shape, &dims)?;
                b.p2(PrimOp::Sub, s, lzb)?
            };
            b.convert(y, result)?
        }
        T::CrossEntropy => cross_entropy(b, n, tensor_arg(b, 0)?, tensor_arg(b, 1)?, attrs)?,
        T::CrossEntropyBackward => cross_entropy_backward(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?, tensor_arg(b, 2)?],
            attrs,
        )?,
        T::RmsNorm | T::LayerNorm => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let ns = attr_ints(n, attrs, 0)?;
            let k = ns.len();
            let matches = k <= t.rank()
                && ns
                    .iter()
                    .zip(&t.shape.sizes()[t.rank() - k..])
                    .all(|(&x, &y)| x == y as i64);
            if k == 0 || !matches {
                return Err(IrError::invalid(
                    n,
                    format!("normalized_shape={ns:?} must be non-empty and match the trailing dims of a, which has shape {}", t.shape),
                ));
            }
            if !t.dtype.is_float() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating dtype, got {}", t.dtype),
                ));
            }
            let eps = if op == T::RmsNorm {
                attr_opt_float(n, attrs, 1)?.unwrap_or_else(|| finfo_eps(t.dtype))
            } else {
                attr_float(n, attrs, 1)?
            };
            let dims: Vec<usize> = (t.rank() - k..t.rank()).collect();
            // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
            let count: usize = dims.iter().map(|&d| t.shape.size(d)).product();
            let comp = if t.dtype.is_low_precision_float() {
                DType::F32
            } else {
                t.dtype
            };
            let x = b.convert(a, comp)?;
            let mut y = if op == T::RmsNorm {
                let sq = b.p2(PrimOp::Mul, x, x)?;
                let ms = b.reduce(PrimOp::Sum, sq, &dims)?;
                let ms = b.p2(PrimOp::Div, ms, count as f64)?;
                let ms = b.p2(PrimOp::Add, ms, eps)?;
                let r = b.p1(PrimOp::Rsqrt, ms)?;
                let rb = b.expand_reduced(r, &t.shape, &dims)?;
                b.p2(PrimOp::Mul, x, rb)?
            } else {
                let s = b.reduce(PrimOp::Sum, x, &dims)?;
                let mean = b.p2(PrimOp::Div, s, count as f64)?;
                let mb = b.expand_reduced(mean, &t.shape, &dims)?;
                let c = b.p2(PrimOp::Sub, x, mb)?;
                let var = b.prim(
                    PrimOp::Var,
                    vec![x.into()],
                    vec![ints(dims.iter().copied()), Attr::Float(0.0)],
                )?;
                let ve = b.p2(PrimOp::Add, var, eps)?;
                let r = b.p1(PrimOp::Rsqrt, ve)?;
                let rb = b.expand_reduced(r, &t.shape, &dims)?;
                b.p2(PrimOp::Mul, c, rb)?
            };
            let affine = if op == T::RmsNorm {
                vec![(1, PrimOp::Mul)]
            } else {
                vec![(1, PrimOp::Mul), (2, PrimOp::Add)]
            };
            for (i, prim) in affine {
                if let Arg::Value(w) = args[i] {
                    let wt = b.tensor(w)?.clone();
                    if wt.shape.sizes() != t.shape.sizes()[t.rank() - k..] {
                        let which = op.signature().operands[i].0;
                        return Err(IrError::invalid(
                            n,
                            format!(
                                "{which} has shape {} but normalized_shape is {ns:?}",
                                wt.shape
                            ),
                        ));
                    }
                    let wc = b.convert(w, comp)?;
                    let wb = b.broadcast_to(wc, &t.shape)?;
                    y = b.p2(prim, y, wb)?;
                }
            }
            b.convert(y, t.dtype)?
        }
        T::Dropout => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let p = attr_float(n, attrs, 0)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(IrError::invalid(
                    n,
                    format!("p={p} must be between 0 and 1"),
                ));
            }
            if !attr_bool(n, attrs, 1)? || p == 0.0 {
                return Ok(vec![a]);
            }
            if !t.dtype.is_float() {
                return Err(IrError::invalid(
                    n,
                    format!("a must have a floating dtype, got {}", t.dtype),
                ));
            }
            if p == 1.0 {
                return Ok(vec![b.full_prim(
                    &t.shape,
                    Attr::Float(0.0),
                    t.device,
                    t.dtype,
                )?]);
            }
            let comp = if t.dtype.is_low_precision_float() {
                DType::F32
            } else {
                t.dtype
            };
            let u = b.prim(
                PrimOp::Uniform,
                vec![],
                vec![
                    ints(t.shape.sizes()),
                    Attr::Float(0.0),
                    Attr::Float(1.0),
                    Attr::Device(t.device),
                    Attr::DType(comp),
                ],
            )?;
            let keep = b.p2(PrimOp::Lt, u, 1.0 - p)?;
            let x = b.convert(a, comp)?;
            let scaled = b.p2(PrimOp::Mul, x, 1.0 / (1.0 - p))?;
            let y = b.prim(
                PrimOp::Where,
                vec![keep.into(), scaled.into(), Arg::Float(0.0)],
                vec![],
            )?;
            b.convert(y, t.dtype)?
        }
        T::Embedding => {
            let a = tensor_arg(b, 0)?;
            let w = tensor_arg(b, 1)?;
            let padding_idx = attr_opt_int(n, attrs, 0)?;
            b.prim(
                PrimOp::Embedding,
                vec![a.into(), w.into()],
                vec![
                    padding_idx.map_or(Attr::None, Attr::Int),
                    Attr::None,
                    Attr::Float(2.0),
                    Attr::Bool(false),
                    Attr::Bool(false),
                ],
            )
            .map_err(|e| rename(e, n))?
        }
        T::Linear => {
            let (a, w) = (tensor_arg(b, 0)?, tensor_arg(b, 1)?);
            b.prim(
                PrimOp::Linear,
                vec![a.into(), w.into(), args[2].clone()],
                vec![],
            )
            .map_err(|e| rename(e, n))?
        }
        T::Matmul | T::Bmm => {
            let (x, y) = (tensor_arg(b, 0)?, tensor_arg(b, 1)?);
            if op == T::Bmm {
                let (xs, ys) = (b.tensor(x)?.shape.clone(), b.tensor(y)?.shape.clone());
                if xs.rank() != 3 || ys.rank() != 3 || xs.size(0) != ys.size(0) {
                    return Err(IrError::invalid(n, format!("a and b must be 3-D with the same batch size, got shapes {xs} and {ys}")));
                }
            }
            b.p2(PrimOp::Matmul, x, y).map_err(|e| rename(e, n))?
        }
        T::ScaledDotProductAttention => sdpa(
            b,
            n,
            [tensor_arg(b, 0)?, tensor_arg(b, 1)?, tensor_arg(b, 2)?],
            &args[3],
            attrs,
        )?,
        T::ScaledDotProductAttentionBackward => {
            return sdpa_backward(
                b,
                n,
                tensor_arg(b, 0)?,
                [tensor_arg(b, 1)?, tensor_arg(b, 2)?, tensor_arg(b, 3)?],
                &args[4],
                attrs,
            )
        }
        T::Reshape | T::View => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let shape = infer_shape(n, attr_ints(n, attrs, 0)?, t.shape.numel(), &t.shape)?;
            if shape == t.shape.sizes() {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Reshape, vec![a.into()], vec![ints(shape)])?
        }
        T::Permute | T::Transpose => {
            let a = tensor_arg(b, 0)?;
            let r = b.tensor(a)?.rank();
            let perm: Vec<usize> = if op == T::Permute {
                let dims = attr_ints(n, attrs, 0)?;
                if dims.len() != r {
                    return Err(IrError::invalid(
                        n,
                        format!("dims={dims:?} must list each of the {r} dims of a once"),
                    ));
                }
                canonicalize_dims(n, "dims", dims, r)?
            } else {
                let d0 = canonicalize_dim(n, "dim0", attr_int(n, attrs, 0)?, r)?;
                let d1 = canonicalize_dim(n, "dim1", attr_int(n, attrs, 1)?, r)?;
                let mut p: Vec<usize> = (0..r).collect();
                if r > 0 {
                    p.swap(d0, d1);
                }
                p
            };
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Transpose, vec![a.into()], vec![ints(perm)])?
        }
        T::Unsqueeze => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank() + 1)?;
            let mut shape = t.shape.sizes();
            shape.insert(d, 1);
            let kept = (0..t.rank() + 1).filter(|&i| i != d);
            b.prim(
                PrimOp::BroadcastInDim,
                vec![a.into()],
                vec![ints(shape), ints(kept)],
            )?
        }
        T::Squeeze => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let dims: Vec<usize> = match attr_opt_ints(n, attrs, 0)? {
                Some(ds) => canonicalize_dims(n, "dim", ds, t.rank())?,
                None => (0..t.rank()).collect(),
            };
            let dims: Vec<usize> = dims
                .into_iter()
                .filter(|&d| t.rank() > 0 && t.shape.size(d) == 1)
                .collect();
            if dims.is_empty() {
                return Ok(vec![a]);
            }
            b.prim(PrimOp::Squeeze, vec![a.into()], vec![ints(dims)])?
        }
        T::Flatten => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if t.rank() == 0 {
                return Ok(vec![b.prim(
                    PrimOp::Reshape,
                    vec![a.into()],
                    vec![ints([1])],
                )?]);
            }
            let s = canonicalize_dim(n, "start_dim", attr_int(n, attrs, 0)?, t.rank())?;
            let e = canonicalize_dim(n, "end_dim", attr_int(n, attrs, 1)?, t.rank())?;
            if s > e {
                return Err(IrError::invalid(
                    n,
                    format!("start_dim ({s}) must not come after end_dim ({e})"),
                ));
            }
            if s == e {
                return Ok(vec![a]);
            }
            let sz = t.shape.sizes();
            let mut shape = sz[..s].to_vec();
            // A sub-product of a builder's shape cannot overflow (`Shape::checked_numel`).
            shape.push(sz[s..=e].iter().product());
            shape.extend_from_slice(&sz[e + 1..]);
            b.prim(PrimOp::Reshape, vec![a.into()], vec![ints(shape)])?
        }
        T::Expand => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            let req = attr_ints(n, attrs, 0)?;
            if req.len() < t.rank() {
                return Err(IrError::invalid(
                    n,
                    format!("shape {req:?} has fewer dims than a's shape {}", t.shape),
                ));
            }
            let offset = req.len() - t.rank();
            let mut shape = Vec::with_capacity(req.len());
            for (i, &r) in req.iter().enumerate() {
                let have = if i >= offset {
                    Some(t.shape.size(i - offset))
                } else {
                    None
                };
                shape.push(match (r, have) {
                    (-1, Some(h)) => h,
                    (r, Some(h)) if r >= 0 && (h == r as usize || h == 1) => r as usize,
                    (r, None) if r >= 0 => r as usize,
                    _ => {
                        return Err(IrError::invalid(
                            n,
                            format!(
                                "a of shape {} cannot be expanded to {req:?} (dim {i})",
                                t.shape
                            ),
                        ))
                    }
                });
            }
            b.broadcast_to(a, &Shape::new(shape))?
        }
        T::Split => return split(b, n, tensor_arg(b, 0)?, attrs),
        T::Adamw => return adamw(b, n, args, attrs),
        T::Narrow => {
            let a = tensor_arg(b, 0)?;
            let t = b.tensor(a)?.clone();
            if t.rank() == 0 {
                return Err(IrError::invalid(n, "a 0-dim tensor cannot be narrowed"));
            }
            let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, t.rank())?;
            // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
            let size = t.shape.size(d) as i64;
            let mut start = attr_int(n, attrs, 1)?;
            if start < 0 {
                start += size;
            }
            let len = attr_int(n, attrs, 2)?;
            // A sum that overflows i64 exceeds the size as well.
            let end = start.checked_add(len).filter(|&e| e <= size);
            let Some(end) = end.filter(|_| start >= 0 && len >= 0) else {
                return Err(IrError::invalid(
                    n,
                    format!("start ({start}) + length ({len}) exceeds dim {d} of size {size}"),
                ));
            };
            slice_dim(b, a, &t.shape, d, start, end)?
        }
        T::Cat | T::Stack => {
            let tensors = match &args[0] {
                Arg::List(l) => l.clone(),
                _ => return Err(IrError::invalid(n, "tensors must be a list of tensors")),
            };
            let mut operands = Vec::with_capacity(tensors.len());
            for &v in &tensors {
                operands.push(PromotionOperand::Tensor(b.tensor(v)?.dtype));
            }
            let dtype = crate::promotion::result_type(n, &operands)?;
            let mut parts = Vec::with_capacity(tensors.len());
            for &v in &tensors {
                let c = b.convert(v, dtype)?;
                parts.push(if op == T::Stack {
                    let dim = attr_int(n, attrs, 0)?;
                    b.t(T::Unsqueeze, vec![c.into()], vec![Attr::Int(dim)])?
                } else {
                    c
                });
            }
            b.prim(PrimOp::Cat, vec![Arg::List(parts)], vec![attrs[0].clone()])
                .map_err(|e| rename(e, n))?
        }
        T::To => {
            let a = tensor_arg(b, 0)?;
            let mut y = a;
            if let Some(dev) = attr_opt_device(n, attrs, 1)? {
                if b.tensor(a)?.device != dev {
                    y = b.prim(PrimOp::DevicePut, vec![y.into()], vec![Attr::Device(dev)])?;
                }
            }
            if let Some(d) = attr_opt_dtype(n, attrs, 0)? {
                y = b.convert(y, d)?;
            }
            y
        }
        T::Zeros | T::Ones | T::Full => {
            let shape = Shape::new(super::sizes(n, "shape", attr_ints(n, attrs, 0)?)?);
            let (value, dt_i, dev_i) = match op {
                T::Zeros => (Attr::Int(0), 1, 2),
                T::Ones => (Attr::Int(1), 1, 2),
                _ => (attrs[1].clone(), 2, 3),
            };
            let dtype = match attr_opt_dtype(n, attrs, dt_i)? {
                Some(d) => d,
                None if op == T::Full => match value {
                    Attr::Bool(_) => DType::Bool,
                    Attr::Int(_) => DType::I64,
                    _ => DType::F32,
                },
                None => DType::F32,
            };
            let device = attr_opt_device(n, attrs, dev_i)?.unwrap_or(Device::Cpu);
            b.full_prim(&shape, value, device, dtype)?
        }
        T::Arange => {
            let (s, e, st) = (
                attr_float(n, attrs, 0)?,
                attr_float(n, attrs, 1)?,
                attr_float(n, attrs, 2)?,
            );
            if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
                return Err(IrError::invalid(
                    n,
                    format!("start={s}, end={e}, step={st}: step must be non-zero and all finite"),
                ));
            }
            let len = ((e - s) / st).ceil().max(0.0);
            // `as` saturates: a longer range would silently become i64::MAX elements.
            if len >= crate::shape::MAX_NUMEL as f64 {
                return Err(IrError::overflow(
                    n,
                    format!(
                        "start={s}, end={e}, step={st} make {len} elements, more than i64::MAX"
                    ),
                ));
            }
            let len = len as i64;
            let all_int = attrs[..3].iter().all(|a| matches!(a, Attr::Int(_)));
            let dtype = attr_opt_dtype(n, attrs, 3)?.unwrap_or(if all_int {
                DType::I64
            } else {
                DType::F32
            });
            let device = attr_opt_device(n, attrs, 4)?.unwrap_or(Device::Cpu);
            b.prim(
                PrimOp::Iota,
                vec![],
                vec![
                    Attr::Int(len),
                    attrs[0].clone(),
                    attrs[2].clone(),
                    Attr::Device(device),
                    Attr::DType(dtype),
                ],
            )?
        }
        _ => return Err(IrError::invalid(n, "internal: no decomposition")),
    };
    Ok(vec![out])
}

/// `f` truncated to an integer, as PyTorch casts a fill value; an error where `as` would
/// saturate (out of the i64 range) or make 0 of NaN.
fn float_to_int(op: &str, f: f64) -> Result<i64> {
    let t = f.trunc();
    // 2^63, exact in f64 (as is -2^63): the range check is exact too.
    let limit = -(i64::MIN as f64);
    if t.is_nan() || !(-limit..limit).contains(&t) {
        return Err(IrError::overflow(
            op,
            format!("value={f} cannot be converted to int64 without overflow"),
        ));
    }
    Ok(t as i64)
}

/// Reports a prim's error under the torch-level op's name, which is what the user called.
fn rename(e: IrError, op: &str) -> IrError {
    match e {
        IrError::InvalidArgument { message, .. } => IrError::InvalidArgument {
            op: op.to_string(),
            message,
        },
        IrError::Overflow { message, .. } => IrError::Overflow {
            op: op.to_string(),
            message,
        },
        other => other,
    }
}

fn reduction_dims(op: &str, dims: Option<&[i64]>, rank: usize) -> Result<Vec<usize>> {
    match dims {
        None | Some([]) => Ok((0..rank).collect()),
        Some(ds) => {
            let c = canonicalize_dims(op, "dim", ds, rank)?;
            // Reducing dim 0 of a 0-dim tensor reduces nothing.
            Ok(if rank == 0 { vec![] } else { c })
        }
    }
}

fn slice_dim(
    b: &mut TraceBuilder,
    a: Value,
    shape: &Shape,
    d: usize,
    start: i64,
    end: i64,
) -> Result<Value> {
    let mut starts = vec![0i64; shape.rank()];
    let mut ends: Vec<i64> = shape.sizes().iter().map(|&s| s as i64).collect();
    starts[d] = start;
    ends[d] = end;
    b.prim(
        PrimOp::Slice,
        vec![a.into()],
        vec![
            Attr::Ints(starts),
            Attr::Ints(ends),
            Attr::Ints(vec![1; shape.rank()]),
        ],
    )
}

/// The operands of `adamw` checked: the four lists (each parameter's gradient and moments match
/// it) and the step. Returns the lists.
pub(crate) fn adamw_operands(n: &str, b: &TraceBuilder, args: &[Arg]) -> Result<[Vec<Value>; 4]> {
    const NAMES: [&str; 4] = ["params", "grads", "exp_avgs", "exp_avg_sqs"];
    let mut lists: [Vec<Value>; 4] = Default::default();
    for (k, list) in lists.iter_mut().enumerate() {
        *list = match args.get(k) {
            Some(Arg::List(l)) => l.clone(),
            _ => {
                return Err(IrError::invalid(
                    n,
                    format!("{} must be a list of tensors", NAMES[k]),
                ))
            }
        };
    }
    let count = lists[0].len();
    for (k, l) in lists.iter().enumerate().skip(1) {
        if l.len() != count {
            return Err(IrError::invalid(
                n,
                format!(
                    "{} has {} tensors but params has {count}: pass one per parameter",
                    NAMES[k],
                    l.len()
                ),
            ));
        }
    }
    let step = match args.get(4) {
        Some(Arg::Value(v)) if b.tensor(*v).is_ok() => b.tensor(*v)?.clone(),
        _ => return Err(IrError::invalid(n, "step must be a tensor")),
    };
    let p0 = b.tensor(lists[0][0])?.clone();
    if step.rank() != 0 || !step.dtype.is_float() || step.device != p0.device {
        return Err(IrError::invalid(
            n,
            format!(
                "step must be a 0-dim floating tensor (float32, as PyTorch keeps it) on the parameters' device {}, got shape {}, dtype {}, device {}",
                p0.device, step.shape, step.dtype, step.device
            ),
        ));
    }
    for i in 0..count {
        let p = b.tensor(lists[0][i])?.clone();
        if !p.dtype.is_float() {
            return Err(IrError::invalid(
                n,
                format!("params[{i}] must have a floating dtype, got {}", p.dtype),
            ));
        }
        if p.device != p0.device {
            return Err(IrError::invalid(
                n,
                format!(
                    "params[{i}] is on {} but params[0] on {}: every parameter must be on one device",
                    p.device, p0.device
                ),
            ));
        }
        for (k, l) in lists.iter().enumerate().skip(1) {
            let t = b.tensor(l[i])?;
            if t.shape != p.shape || t.dtype != p.dtype || t.device != p.device {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "{}[{i}] (shape {}, {}, {}) must match params[{i}] (shape {}, {}, {})",
                        NAMES[k], t.shape, t.dtype, t.device, p.shape, p.dtype, p.device
                    ),
                ));
            }
        }
    }
    Ok(lists)
}

/// `adamw`: see [`TraceBuilder::adamw`]. The bias corrections are computed once from `step`, then
/// each parameter's update, in float32 for 16-bit parameters.
fn adamw(b: &mut TraceBuilder, n: &str, args: &[Arg], attrs: &[Attr]) -> Result<Vec<Value>> {
    let [params, grads, ms, vs] = adamw_operands(n, b, args)?;
    let step = match &args[4] {
        Arg::Value(v) => *v,
        _ => return Err(IrError::invalid(n, "step must be a tensor")),
    };
    let [lr, beta1, beta2, eps, wd] = [0, 1, 2, 3, 4].map(|i| attr_float(n, attrs, i));
    let (lr, beta1, beta2, eps, wd) = (lr?, beta1?, beta2?, eps?, wd?);
    attr_bool(n, attrs, 5)?;
    let bad = |what: &str, v: f64| {
        Err(IrError::invalid(
            n,
            format!("{what}={v} is out of range, as torch.optim.AdamW would reject it"),
        ))
    };
    if !(0.0..=f64::INFINITY).contains(&lr) {
        return bad("lr (must be >= 0)", lr);
    }
    if !(0.0..1.0).contains(&beta1) {
        return bad("beta1 (must be in [0, 1))", beta1);
    }
    if !(0.0..1.0).contains(&beta2) {
        return bad("beta2 (must be in [0, 1))", beta2);
    }
    if !(0.0..=f64::INFINITY).contains(&eps) {
        return bad("eps (must be >= 0)", eps);
    }
    if !(0.0..=f64::INFINITY).contains(&wd) {
        return bad("weight_decay (must be >= 0)", wd);
    }
    // Per computation dtype (float32, or float64 for float64 parameters): the step size and
    // sqrt(1 - beta2^step), as 0-dim tensors.
    let mut scalars: Vec<(DType, Value, Value)> = Vec::new();
    let mut new_p = Vec::with_capacity(params.len());
    let mut new_m = Vec::with_capacity(params.len());
    let mut new_v = Vec::with_capacity(params.len());
    for i in 0..params.len() {
        let pt = b.tensor(params[i])?.clone();
        let comp = if pt.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let (step_size, bc2_sqrt) = match scalars.iter().find(|s| s.0 == comp) {
            Some(&(_, a, c)) => (a, c),
            None => {
                let s = b.convert(step, comp)?;
                let p1 = b.p2(PrimOp::Pow, beta1, s)?;
                let bc1 = b.p2(PrimOp::Sub, 1.0, p1)?;
                let step_size = b.p2(PrimOp::Div, lr, bc1)?;
                let p2 = b.p2(PrimOp::Pow, beta2, s)?;
                let bc2 = b.p2(PrimOp::Sub, 1.0, p2)?;
                let bc2_sqrt = b.p1(PrimOp::Sqrt, bc2)?;
                scalars.push((comp, step_size, bc2_sqrt));
                (step_size, bc2_sqrt)
            }
        };
        let p = b.convert(params[i], comp)?;
        let g = b.convert(grads[i], comp)?;
        let m = b.convert(ms[i], comp)?;
        let v = b.convert(vs[i], comp)?;
        let p = if wd != 0.0 {
            b.p2(PrimOp::Mul, p, 1.0 - lr * wd)?
        } else {
            p
        };
        let m1 = b.p2(PrimOp::Mul, m, beta1)?;
        let g1 = b.p2(PrimOp::Mul, g, 1.0 - beta1)?;
        let m = b.p2(PrimOp::Add, m1, g1)?;
        let v1 = b.p2(PrimOp::Mul, v, beta2)?;
        let gg = b.p2(PrimOp::Mul, g, g)?;
        let g2 = b.p2(PrimOp::Mul, gg, 1.0 - beta2)?;
        let v = b.p2(PrimOp::Add, v1, g2)?;
        let sq = b.p1(PrimOp::Sqrt, v)?;
        let bc = b.broadcast_to(bc2_sqrt, &pt.shape)?;
        let d = b.p2(PrimOp::Div, sq, bc)?;
        let denom = b.p2(PrimOp::Add, d, eps)?;
        let ss = b.broadcast_to(step_size, &pt.shape)?;
        let upd = b.p2(PrimOp::Mul, ss, m)?;
        let upd = b.p2(PrimOp::Div, upd, denom)?;
        let p = b.p2(PrimOp::Sub, p, upd)?;
        new_p.push(b.convert(p, pt.dtype)?);
        new_m.push(b.convert(m, pt.dtype)?);
        new_v.push(b.convert(v, pt.dtype)?);
    }
    new_p.extend(new_m);
    new_p.extend(new_v);
    Ok(new_p)
}

/// The most pieces `split` may make: each is a value and a statement of the trace. Far above
/// real use (heads, chunks of a fused projection), far below what would exhaust memory.
pub const MAX_SPLIT_OUTPUTS: usize = 1 << 16;

fn split(b: &mut TraceBuilder, n: &str, a: Value, attrs: &[Attr]) -> Result<Vec<Value>> {
    let t = b.tensor(a)?.clone();
    let d = canonicalize_dim(n, "dim", attr_int(n, attrs, 1)?, t.rank())?;
    if t.rank() == 0 {
        return Err(IrError::invalid(n, "a 0-dim tensor cannot be split"));
    }
    // Exact: the builder's sizes are at most i64::MAX (`Shape::checked_numel`).
    let size = t.shape.size(d) as i64;
    let too_many = |count: i64| {
        IrError::invalid(
            n,
            format!("splitting dim {d} of size {size} makes {count} pieces, more than the {MAX_SPLIT_OUTPUTS} a trace allows"),
        )
    };
    let sections: Vec<i64> = match &attrs[0] {
        Attr::Int(s) if *s > 0 => {
            // Counted before the list is made: split size 1 of a huge dim would exhaust memory.
            let count = size / s + i64::from(size % s != 0 || size == 0);
            if count > MAX_SPLIT_OUTPUTS as i64 {
                return Err(too_many(count));
            }
            let mut v = vec![*s; (size / s) as usize];
            if size % s != 0 || size == 0 {
                v.push(size % s);
            }
            v
        }
        Attr::Int(s) => {
            return Err(IrError::invalid(
                n,
                format!("split_size_or_sections={s} must be positive"),
            ))
        }
        Attr::Ints(v) => {
            if v.len() > MAX_SPLIT_OUTPUTS {
                return Err(too_many(v.len() as i64));
            }
            let sum = v.iter().try_fold(0i64, |acc, &x| acc.checked_add(x));
            if v.iter().any(|&x| x < 0) || sum != Some(size) {
                return Err(IrError::invalid(
                    n,
                    format!("split_size_or_sections={v:?} must be non-negative and sum to {size}, the size of dim {d}"),
                ));
            }
            v.clone()
        }
        other => {
            return Err(IrError::invalid(
                n,
                format!("split_size_or_sections must be an int or a list of ints, got {other:?}"),
            ))
        }
    };
    let mut out = Vec::with_capacity(sections.len());
    let mut start = 0;
    for s in sections {
        out.push(slice_dim(b, a, &t.shape, d, start, start + s)?);
        start += s;
    }
    Ok(out)
}

fn cross_entropy(
    b: &mut TraceBuilder,
    n: &str,
    input: Value,
    target: Value,
    attrs: &[Attr],
) -> Result<Value> {
    let it = b.tensor(input)?.clone();
    let tt = b.tensor(target)?.clone();
    let ignore_index = attr_int(n, attrs, 0)?;
    let reduction = attr_str(n, attrs, 1)?.to_string();
    let label_smoothing = attr_float(n, attrs, 2)?;
    if !matches!(reduction.as_str(), "mean" | "sum" | "none") {
        return Err(IrError::invalid(
            n,
            format!("reduction={reduction:?} must be \"mean\", \"sum\" or \"none\""),
        ));
    }
    if label_smoothing != 0.0 {
        return Err(IrError::invalid(
            n,
            format!("label_smoothing={label_smoothing} is not supported yet (only 0.0)"),
        ));
    }
    let (rows, classes) = cross_entropy_operands(n, &it, &tt)?;
    let (x, tgt) = if it.rank() == 1 {
        (
            b.prim(
                PrimOp::Reshape,
                vec![input.into()],
                vec![ints([1, classes])],
            )?,
            b.prim(PrimOp::Reshape, vec![target.into()], vec![ints([1])])?,
        )
    } else {
        (input, target)
    };
    let comp = if it.dtype.is_low_precision_float() {
        DType::F32
    } else {
        it.dtype
    };
    let xc = b.convert(x, comp)?;
    let logp = b.t(
        TorchOp::LogSoftmax,
        vec![xc.into()],
        vec![Attr::Int(1), Attr::None],
    )?;
    let col = b.prim(
        PrimOp::BroadcastInDim,
        vec![tgt.into()],
        vec![ints([rows, 1]), ints([0])],
    )?;
    let valid = b.p2(PrimOp::Ne, col, ignore_index)?;
    let safe = b.prim(
        PrimOp::Where,
        vec![valid.into(), col.into(), Arg::Int(0)],
        vec![],
    )?;
    let picked = b.prim(
        PrimOp::TakeAlongAxis,
        vec![logp.into(), safe.into()],
        vec![Attr::Int(1)],
    )?;
    let nll = b.p1(PrimOp::Neg, picked)?;
    let nll = b.prim(
        PrimOp::Where,
        vec![valid.into(), nll.into(), Arg::Float(0.0)],
        vec![],
    )?;
    let nll = b.prim(PrimOp::Reshape, vec![nll.into()], vec![ints([rows])])?;
    let y = match reduction.as_str() {
        "none" if it.rank() == 1 => b.prim(PrimOp::Reshape, vec![nll.into()], vec![ints([])])?,
        "none" => nll,
        "sum" => b.reduce(PrimOp::Sum, nll, &[0])?,
        _ => {
            let total = b.reduce(PrimOp::Sum, nll, &[0])?;
            let vf = b.convert(valid, comp)?;
            let count = b.reduce(PrimOp::Sum, vf, &[0, 1])?;
            b.p2(PrimOp::Div, total, count)?
        }
    };
    b.convert(y, it.dtype)
}

/// Checks `cross_entropy`'s input and target (shapes `[N, C]` and `[N]`, or `[C]` and `[]`) and
/// returns `(rows, classes)`.
fn cross_entropy_operands(
    n: &str,
    it: &crate::value::TensorMeta,
    tt: &crate::value::TensorMeta,
) -> Result<(usize, usize)> {
    if !it.dtype.is_float() {
        return Err(IrError::invalid(
            n,
            format!("input must have a floating dtype, got {}", it.dtype),
        ));
    }
    if tt.dtype != DType::I64 {
        return Err(IrError::invalid(
            n,
            format!("target must hold int64 class indices, got {} (class-probability targets are not supported yet)", tt.dtype),
        ));
    }
    let ok = match it.rank() {
        2 => tt.rank() == 1 && tt.shape.size(0) == it.shape.size(0),
        1 => tt.rank() == 0,
        _ => false,
    };
    if !ok {
        return Err(IrError::invalid(
            n,
            format!(
                "input of shape {} and target of shape {} must be [N, C] and [N], or [C] and []",
                it.shape, tt.shape
            ),
        ));
    }
    Ok(if it.rank() == 2 {
        (it.shape.size(0), it.shape.size(1))
    } else {
        (1, it.shape.size(0))
    })
}

/// `cross_entropy_backward(g, input, target)`: `(softmax(x) - onehot(target)) * w` per row, `w`
/// the row's cotangent, zero for ignored rows, divided by the number of counted rows for the mean.
fn cross_entropy_backward(
    b: &mut TraceBuilder,
    n: &str,
    [g, input, target]: [Value; 3],
    attrs: &[Attr],
) -> Result<Value> {
    let it = b.tensor(input)?.clone();
    let tt = b.tensor(target)?.clone();
    let gt = b.tensor(g)?.clone();
    let ignore_index = attr_int(n, attrs, 0)?;
    let reduction = attr_str(n, attrs, 1)?.to_string();
    let (rows, classes) = cross_entropy_operands(n, &it, &tt)?;
    let g_shape: Vec<usize> = match reduction.as_str() {
        "mean" | "sum" => vec![],
        "none" => tt.shape.sizes().to_vec(),
        other => {
            return Err(IrError::invalid(
                n,
                format!("reduction={other:?} must be \"mean\", \"sum\" or \"none\""),
            ))
        }
    };
    if gt.shape.sizes() != g_shape.as_slice() || !gt.dtype.is_float() {
        return Err(IrError::invalid(
            n,
            format!(
                "grad_out of shape {} and dtype {} must be a floating tensor of the loss's shape {:?}",
                gt.shape, gt.dtype, g_shape
            ),
        ));
    }
    let comp = if it.dtype.is_low_precision_float() {
        DType::F32
    } else {
        it.dtype
    };
    let rc = [rows, classes];
    let expand = |b: &mut TraceBuilder, v: Value, dims: &[usize]| {
        b.prim(
            PrimOp::BroadcastInDim,
            vec![v.into()],
            vec![ints(rc), ints(dims.iter().copied())],
        )
    };
    // The softmax of the logits, recomputed.
    let x = b.prim(PrimOp::Reshape, vec![input.into()], vec![ints(rc)])?;
    let x = b.convert(x, comp)?;
    let mx = b.prim(PrimOp::Amax, vec![x.into()], vec![ints([1])])?;
    let mxb = expand(b, mx, &[0])?;
    let s = b.p2(PrimOp::Sub, x, mxb)?;
    let e = b.p1(PrimOp::Exp, s)?;
    let z = b.reduce(PrimOp::Sum, e, &[1])?;
    let zb = expand(b, z, &[0])?;
    let probs = b.p2(PrimOp::Div, e, zb)?;
    // Each row's weight.
    let t1 = b.prim(PrimOp::Reshape, vec![target.into()], vec![ints([rows])])?;
    let valid = b.p2(PrimOp::Ne, t1, ignore_index)?;
    let vf = b.convert(valid, comp)?;
    let gc = b.convert(g, comp)?;
    let w = if reduction == "none" {
        let g1 = b.prim(PrimOp::Reshape, vec![gc.into()], vec![ints([rows])])?;
        b.p2(PrimOp::Mul, g1, vf)?
    } else {
        let gb = b.prim(
            PrimOp::BroadcastInDim,
            vec![gc.into()],
            vec![ints([rows]), ints([0usize; 0])],
        )?;
        let w = b.p2(PrimOp::Mul, gb, vf)?;
        if reduction == "mean" {
            // Divided by the number of counted rows, at least 1: when every row is ignored the
            // gradient is 0 (as PyTorch's), and its own derivatives stay finite.
            let count = b.reduce(PrimOp::Sum, vf, &[0])?;
            let count = b.p2(PrimOp::Maximum, count, 1.0)?;
            let cb = b.prim(
                PrimOp::BroadcastInDim,
                vec![count.into()],
                vec![ints([rows]), ints([0usize; 0])],
            )?;
            b.p2(PrimOp::Div, w, cb)?
        } else {
            w
        }
    };
    let iota = b.prim(
        PrimOp::Iota,
        vec![],
        vec![
            Attr::Int(classes as i64),
            Attr::Int(0),
            Attr::Int(1),
            Attr::Device(it.device),
            Attr::DType(DType::I64),
        ],
    )?;
    let cols = expand(b, iota, &[1])?;
    let tb = expand(b, t1, &[0])?;
    let hit = b.p2(PrimOp::Eq, cols, tb)?;
    let onehot = b.convert(hit, comp)?;
    let wb = expand(b, w, &[0])?;
    let pw = b.p2(PrimOp::Mul, probs, wb)?;
    let ow = b.p2(PrimOp::Mul, onehot, wb)?;
    let gx = b.p2(PrimOp::Sub, pw, ow)?;
    let gx = b.prim(
        PrimOp::Reshape,
        vec![gx.into()],
        vec![ints(it.shape.sizes().iter().copied())],
    )?;
    b.convert(gx, it.dtype)
}

/// What the forward and the backward of attention share: the checked operands, key and value
/// with their heads repeated for grouped-query attention, all in the computation dtype, and the
/// attention weights `softmax(q k^T * scale + mask)`.
struct SdpaParts {
    q: Value,
    k: Value,
    v: Value,
    attn: Value,
    scale: f64,
    comp: DType,
    /// The query's, key's and value's metadata.
    metas: [crate::value::TensorMeta; 3],
    /// Query heads per key/value head (1 without grouped-query attention).
    group: usize,
}

/// [`SdpaParts`]; `flags` are `is_causal`, `scale` and `enable_gqa`.
fn sdpa_parts(
    b: &mut TraceBuilder,
    n: &str,
    qkv: [Value; 3],
    mask: &Arg,
    flags: (bool, Option<f64>, bool),
) -> Result<SdpaParts> {
    let [q, k, v] = qkv;
    let (is_causal, scale, enable_gqa) = flags;
    let (qt, kt, vt) = (
        b.tensor(q)?.clone(),
        b.tensor(k)?.clone(),
        b.tensor(v)?.clone(),
    );
    if qt.rank() < 2 || kt.rank() != qt.rank() || vt.rank() != qt.rank() {
        return Err(IrError::invalid(
            n,
            format!("query, key and value must have the same rank (at least 2), got shapes {}, {} and {}", qt.shape, kt.shape, vt.shape),
        ));
    }
    if !qt.dtype.is_float() || kt.dtype != qt.dtype || vt.dtype != qt.dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "query, key and value must share one floating dtype, got {}, {} and {}",
                qt.dtype, kt.dtype, vt.dtype
            ),
        ));
    }
    let r = qt.rank();
    let e = qt.shape.size(r - 1);
    if kt.shape.size(r - 1) != e || kt.shape.size(r - 2) != vt.shape.size(r - 2) {
        return Err(IrError::invalid(
            n,
            format!(
                "key {} must have query's head dim {e} and as many positions as value {}",
                kt.shape, vt.shape
            ),
        ));
    }
    if is_causal && !matches!(mask, Arg::None) {
        return Err(IrError::invalid(
            n,
            "attn_mask and is_causal=True cannot be used together",
        ));
    }
    let (mut k, mut v) = (k, v);
    let mut group = 1;
    if r >= 3 {
        let (hq, hk) = (qt.shape.size(r - 3), kt.shape.size(r - 3));
        if hq != hk {
            if !enable_gqa || hk == 0 || hq % hk != 0 || vt.shape.size(r - 3) != hk {
                return Err(IrError::invalid(
                    n,
                    format!("query has {hq} heads but key/value have {hk}: pass enable_gqa=True with a query head count that is a multiple"),
                ));
            }
            group = hq / hk;
            // Repeat each key/value head hq/hk times (repeat_interleave along the head dim).
            for x in [&mut k, &mut v] {
                let s = b.tensor(*x)?.shape.sizes();
                let mut expanded = s[..r - 2].to_vec();
                expanded.insert(r - 2, hq / hk);
                expanded.extend_from_slice(&s[r - 2..]);
                let bdims = (0..r).map(|i| if i < r - 2 { i } else { i + 1 });
                let bx = b.prim(
                    PrimOp::BroadcastInDim,
                    vec![(*x).into()],
                    vec![ints(expanded), ints(bdims)],
                )?;
                let mut target = s.clone();
                target[r - 3] = hq;
                *x = b.prim(PrimOp::Reshape, vec![bx.into()], vec![ints(target)])?;
            }
        }
    }
    let (l, s) = (qt.shape.size(r - 2), kt.shape.size(r - 2));
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 1, r - 2);
    // 16-bit inputs are computed in float32 throughout (both matmuls, the softmax), as
    // PyTorch's attention kernels accumulate, and rounded once at the end.
    let comp = if qt.dtype.is_low_precision_float() {
        DType::F32
    } else {
        qt.dtype
    };
    let (q, k, v) = (
        b.convert(q, comp)?,
        b.convert(k, comp)?,
        b.convert(v, comp)?,
    );
    let k_t = b.prim(PrimOp::Transpose, vec![k.into()], vec![ints(perm)])?;
    let scores = b.p2(PrimOp::Matmul, q, k_t).map_err(|e| rename(e, n))?;
    let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
    let mut scores = b.p2(PrimOp::Mul, scores, scale)?;
    let score_shape = b.tensor(scores)?.shape.clone();
    if is_causal {
        let ls = Shape::new([l, s]);
        let row = b.prim(
            PrimOp::Iota,
            vec![],
            vec![
                Attr::Int(l as i64),
                Attr::Int(0),
                Attr::Int(1),
                Attr::Device(qt.device),
                Attr::DType(DType::I64),
            ],
        )?;
        let col = b.prim(
            PrimOp::Iota,
            vec![],
            vec![
                Attr::Int(s as i64),
                Attr::Int(0),
                Attr::Int(1),
                Attr::Device(qt.device),
                Attr::DType(DType::I64),
            ],
        )?;
        let row = b.prim(
            PrimOp::BroadcastInDim,
            vec![row.into()],
            vec![ints(ls.sizes()), ints([0])],
        )?;
        let col = b.prim(
            PrimOp::BroadcastInDim,
            vec![col.into()],
            vec![ints(ls.sizes()), ints([1])],
        )?;
        let keep = b.p2(PrimOp::Ge, row, col)?;
        let keep = b.broadcast_to(keep, &score_shape)?;
        scores = b.prim(
            PrimOp::Where,
            vec![keep.into(), scores.into(), Arg::Float(f64::NEG_INFINITY)],
            vec![],
        )?;
    } else if let Arg::Value(m) = mask {
        let mt = b.tensor(*m)?.clone();
        let shape = broadcast_shapes(n, &mt.shape, &score_shape)?;
        if shape != score_shape {
            return Err(IrError::invalid(
                n,
                format!(
                    "attn_mask of shape {} does not broadcast to the scores' shape {score_shape}",
                    mt.shape
                ),
            ));
        }
        let mb = b.broadcast_to(*m, &score_shape)?;
        scores = if mt.dtype.is_bool() {
            b.prim(
                PrimOp::Where,
                vec![mb.into(), scores.into(), Arg::Float(f64::NEG_INFINITY)],
                vec![],
            )?
        } else {
            let mf = b.convert(mb, comp)?;
            b.p2(PrimOp::Add, scores, mf)?
        };
    }
    let attn = b.t(
        TorchOp::Softmax,
        vec![scores.into()],
        vec![Attr::Int(-1), Attr::None],
    )?;
    Ok(SdpaParts {
        q,
        k,
        v,
        attn,
        scale,
        comp,
        metas: [qt, kt, vt],
        group,
    })
}

fn sdpa(
    b: &mut TraceBuilder,
    n: &str,
    qkv: [Value; 3],
    mask: &Arg,
    attrs: &[Attr],
) -> Result<Value> {
    let dropout_p = attr_float(n, attrs, 0)?;
    let flags = (
        attr_bool(n, attrs, 1)?,
        attr_opt_float(n, attrs, 2)?,
        attr_bool(n, attrs, 3)?,
    );
    let SdpaParts { v, attn, metas, .. } = sdpa_parts(b, n, qkv, mask, flags)?;
    let mut attn = attn;
    if dropout_p > 0.0 {
        attn = b.t(
            TorchOp::Dropout,
            vec![attn.into()],
            vec![Attr::Float(dropout_p), Attr::Bool(true)],
        )?;
    }
    let out = b.p2(PrimOp::Matmul, attn, v).map_err(|e| rename(e, n))?;
    b.convert(out, metas[0].dtype)
}

/// The backward of attention without dropout, as one op (an executor may run it whole, as
/// flash attention's backward): gradients of query, key and value from the output's gradient,
/// with the attention weights recomputed from the saved query and key.
fn sdpa_backward(
    b: &mut TraceBuilder,
    n: &str,
    grad_out: Value,
    qkv: [Value; 3],
    mask: &Arg,
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    let flags = (
        attr_bool(n, attrs, 0)?,
        attr_opt_float(n, attrs, 1)?,
        attr_bool(n, attrs, 2)?,
    );
    let SdpaParts {
        q,
        k,
        v,
        attn,
        scale,
        comp,
        metas,
        group,
    } = sdpa_parts(b, n, qkv, mask, flags)?;
    let gt = b.tensor(grad_out)?.clone();
    let r = metas[0].rank();
    let mut want = metas[0].shape.sizes();
    want[r - 1] = metas[2].shape.size(r - 1);
    if gt.shape.sizes() != want || gt.dtype != metas[0].dtype {
        return Err(IrError::invalid(
            n,
            format!(
                "grad_out is {} {} but the attention output is {} {}",
                gt.dtype,
                gt.shape,
                metas[0].dtype,
                Shape::new(want)
            ),
        ));
    }
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 1, r - 2);
    let tr = |b: &mut TraceBuilder, x: Value| -> Result<Value> {
        b.prim(PrimOp::Transpose, vec![x.into()], vec![ints(perm.clone())])
    };
    let g = b.convert(grad_out, comp)?;
    // dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP)); dQ = dS K scale; dK = dS^T Q scale.
    let attn_t = tr(b, attn)?;
    let dv = b.p2(PrimOp::Matmul, attn_t, g)?;
    let v_t = tr(b, v)?;
    let dp = b.p2(PrimOp::Matmul, g, v_t)?;
    let pdp = b.p2(PrimOp::Mul, attn, dp)?;
    let delta = b.reduce(PrimOp::Sum, pdp, &[r - 1])?;
    let pshape = b.tensor(attn)?.shape.clone();
    let delta = b.expand_reduced(delta, &pshape, &[r - 1])?;
    let centered = b.p2(PrimOp::Sub, dp, delta)?;
    let ds = b.p2(PrimOp::Mul, attn, centered)?;
    let dq = b.p2(PrimOp::Matmul, ds, k)?;
    let dq = b.p2(PrimOp::Mul, dq, scale)?;
    let ds_t = tr(b, ds)?;
    let dk = b.p2(PrimOp::Matmul, ds_t, q)?;
    let dk = b.p2(PrimOp::Mul, dk, scale)?;
    // Grouped-query attention: each key/value head served `group` query heads; sum their parts.
    let (dk, dv) = if group > 1 {
        let mut out = Vec::with_capacity(2);
        for (x, meta) in [(dk, &metas[1]), (dv, &metas[2])] {
            let s = b.tensor(x)?.shape.sizes();
            let mut split = s[..r - 3].to_vec();
            split.extend([meta.shape.size(r - 3), group]);
            split.extend_from_slice(&s[r - 2..]);
            let x = b.prim(PrimOp::Reshape, vec![x.into()], vec![ints(split)])?;
            out.push(b.reduce(PrimOp::Sum, x, &[r - 2])?);
        }
        (out[0], out[1])
    } else {
        (dk, dv)
    };
    Ok(vec![
        b.convert(dq, metas[0].dtype)?,
        b.convert(dk, metas[1].dtype)?,
        b.convert(dv, metas[2].dtype)?,
    ])
}
