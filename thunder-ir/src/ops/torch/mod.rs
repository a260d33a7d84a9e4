//! Torch-level ops: the names PyTorch users know, each defined by a decomposition into prims
//! (and other torch-level ops), which the trace keeps as the bound symbol's subsymbols.
//!
//! The decompositions follow PyTorch's semantics: type promotion across tensors and numbers,
//! broadcasting, and, like Lightning Thunder, computation in float32 for 16-bit float inputs
//! (converted back to the result dtype at the end).
//!
//! Layout: this file holds the op table (one row per op, its properties) and the options of the
//! composite ops; `signature.rs` the operands and attributes; `builder.rs` the typed builder
//! methods; `lower.rs` the prim-level helpers the decompositions share; and one file per family
//! ([`Family`]) holds that family's decompositions: `elementwise.rs`,
//! `reduction.rs`, `shape.rs`, `nn.rs`, `composite.rs`, `creation.rs`.

use super::info::{Autocast, Family, OpInfo, TorchGrad};
use super::prims::{ints, PrimClass, PrimOp};
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
const U: OpInfo = OpInfo::unary();
const B: OpInfo = OpInfo::binary();
const E: OpInfo = OpInfo::elementwise();
const R: OpInfo = OpInfo::reduction();
const IR: OpInfo = OpInfo::index_reduction();
const NN: OpInfo = OpInfo::nn();
const CO: OpInfo = OpInfo::composite();
const SH: OpInfo = OpInfo::shape();
const IX: OpInfo = OpInfo::indexing();
const C: OpInfo = OpInfo::creation();
const WHOLE: TorchGrad = TorchGrad::Whole;
const LOWER: Autocast = Autocast::LowerPrecision;
const F32: Autocast = Autocast::Float32;

op_table! {
    /// A torch-level op. Each row declares the op's properties ([`OpInfo`]): its family (`U` and
    /// `B` are plain unary and binary elementwise ops, which take the standard signatures), the
    /// prim it lowers to with its type promotion when it is one prim (`prim(..)`, `upcast()`:
    /// 16-bit floats computed in float32), whether grad differentiates it whole (`grad(WHOLE)`)
    /// or through its decomposition, what autocast does with it, whether the torch executor
    /// calls libtorch for it by default (`direct`), and the PyTorch callables the Python front
    /// end translates into it (`pytorch`).
    pub enum TorchOp in "ltorch" {
        // unary elementwise
        Abs = "abs" => U.prim(PrimOp::Abs, K::ComplexToFloat).pytorch(&["torch.abs", "operator.abs", "torch.Tensor.abs", "torch.Tensor.__abs__"]),
        Neg = "neg" => U.prim(PrimOp::Neg, K::Default).pytorch(&["torch.neg", "operator.neg", "torch.Tensor.neg"]),
        Exp = "exp" => U.prim(PrimOp::Exp, K::IntToFloat).autocast(F32).pytorch(&["torch.exp", "torch.Tensor.exp"]),
        Expm1 = "expm1" => U.prim(PrimOp::Expm1, K::IntToFloat).autocast(F32).pytorch(&["torch.expm1", "torch.Tensor.expm1"]),
        Log = "log" => U.prim(PrimOp::Log, K::IntToFloat).autocast(F32).pytorch(&["torch.log", "torch.Tensor.log"]),
        Log1p = "log1p" => U.prim(PrimOp::Log1p, K::IntToFloat).autocast(F32).pytorch(&["torch.log1p", "torch.Tensor.log1p"]),
        Log2 = "log2" => U.prim(PrimOp::Log2, K::IntToFloat).pytorch(&["torch.log2", "torch.Tensor.log2"]),
        Sqrt = "sqrt" => U.prim(PrimOp::Sqrt, K::IntToFloat).pytorch(&["torch.sqrt", "torch.Tensor.sqrt"]),
        Rsqrt = "rsqrt" => U.prim(PrimOp::Rsqrt, K::IntToFloat).autocast(F32).pytorch(&["torch.rsqrt", "torch.Tensor.rsqrt"]),
        Reciprocal = "reciprocal" => U.prim(PrimOp::Reciprocal, K::IntToFloat).autocast(F32).pytorch(&["torch.reciprocal", "torch.Tensor.reciprocal"]),
        Sin = "sin" => U.prim(PrimOp::Sin, K::IntToFloat).pytorch(&["torch.sin", "torch.Tensor.sin"]),
        Cos = "cos" => U.prim(PrimOp::Cos, K::IntToFloat).pytorch(&["torch.cos", "torch.Tensor.cos"]),
        Tan = "tan" => U.prim(PrimOp::Tan, K::IntToFloat).pytorch(&["torch.tan", "torch.Tensor.tan"]),
        Tanh = "tanh" => U.prim(PrimOp::Tanh, K::IntToFloat).pytorch(&["torch.tanh", "torch.Tensor.tanh"]),
        Erf = "erf" => U.prim(PrimOp::Erf, K::IntToFloat).pytorch(&["torch.erf", "torch.special.erf", "torch.Tensor.erf"]),
        Floor = "floor" => U.prim(PrimOp::Floor, K::Default).pytorch(&["torch.floor", "torch.Tensor.floor"]),
        Ceil = "ceil" => U.prim(PrimOp::Ceil, K::Default).pytorch(&["torch.ceil", "torch.Tensor.ceil"]),
        Round = "round" => U.prim(PrimOp::Round, K::Default),
        Trunc = "trunc" => U.prim(PrimOp::Trunc, K::Default).pytorch(&["torch.trunc", "torch.Tensor.trunc"]),
        Sign = "sign" => U.prim(PrimOp::Sign, K::Default).pytorch(&["torch.sign", "torch.Tensor.sign"]),
        IsFinite = "isfinite" => U.prim(PrimOp::IsFinite, K::AlwaysBool).pytorch(&["torch.isfinite", "torch.Tensor.isfinite"]),
        BitwiseNot = "bitwise_not" => U.prim(PrimOp::BitwiseNot, K::Default).pytorch(&["torch.bitwise_not", "operator.invert", "torch.Tensor.bitwise_not", "torch.Tensor.__invert__"]),
        LogicalNot = "logical_not" => U.pytorch(&["torch.logical_not", "torch.Tensor.logical_not"]),
        Sigmoid = "sigmoid" => U.direct().pytorch(&["torch.sigmoid", "torch.Tensor.sigmoid"]),
        Relu = "relu" => U.direct().pytorch(&["torch.relu", "torch.nn.functional.relu", "torch.Tensor.relu"]),
        Silu = "silu" => U.direct().pytorch(&["torch.nn.functional.silu"]),
        Gelu = "gelu" => E.direct().pytorch(&["torch.nn.functional.gelu"]),
        // binary elementwise
        Add = "add" => B.prim(PrimOp::Add, K::Default).upcast().pytorch(&["torch.add", "operator.add", "torch.Tensor.add"]),
        Sub = "sub" => B.prim(PrimOp::Sub, K::Default).upcast().pytorch(&["torch.sub", "operator.sub", "torch.Tensor.sub"]),
        Mul = "mul" => B.prim(PrimOp::Mul, K::Default).upcast().pytorch(&["torch.mul", "operator.mul", "torch.Tensor.mul"]),
        Div = "div" => B.prim(PrimOp::Div, K::IntToFloat).upcast().pytorch(&["torch.div", "torch.true_divide", "operator.truediv", "torch.Tensor.div"]),
        Pow = "pow" => B.prim(PrimOp::Pow, K::Default).upcast().autocast(F32).pytorch(&["torch.pow", "operator.pow", "torch.Tensor.pow"]),
        Remainder = "remainder" => B.prim(PrimOp::Remainder, K::Default).upcast().pytorch(&["torch.remainder", "operator.mod", "torch.Tensor.remainder", "torch.Tensor.__mod__"]),
        Atan2 = "atan2" => B.prim(PrimOp::Atan2, K::IntToFloat).upcast().pytorch(&["torch.atan2", "torch.Tensor.atan2"]),
        Maximum = "maximum" => B.prim(PrimOp::Maximum, K::Default).tensors_only().pytorch(&["torch.maximum", "torch.Tensor.maximum"]),
        Minimum = "minimum" => B.prim(PrimOp::Minimum, K::Default).tensors_only().pytorch(&["torch.minimum", "torch.Tensor.minimum"]),
        Eq = "eq" => B.prim(PrimOp::Eq, K::AlwaysBool).pytorch(&["torch.eq", "operator.eq", "torch.Tensor.eq", "torch.Tensor.__eq__"]),
        Ne = "ne" => B.prim(PrimOp::Ne, K::AlwaysBool).pytorch(&["torch.ne", "operator.ne", "torch.Tensor.ne", "torch.Tensor.__ne__"]),
        Lt = "lt" => B.prim(PrimOp::Lt, K::AlwaysBool).pytorch(&["torch.lt", "operator.lt", "torch.Tensor.lt", "torch.Tensor.__lt__"]),
        Le = "le" => B.prim(PrimOp::Le, K::AlwaysBool).pytorch(&["torch.le", "operator.le", "torch.Tensor.le", "torch.Tensor.__le__"]),
        Gt = "gt" => B.prim(PrimOp::Gt, K::AlwaysBool).pytorch(&["torch.gt", "operator.gt", "torch.Tensor.gt", "torch.Tensor.__gt__"]),
        Ge = "ge" => B.prim(PrimOp::Ge, K::AlwaysBool).pytorch(&["torch.ge", "operator.ge", "torch.Tensor.ge", "torch.Tensor.__ge__"]),
        BitwiseAnd = "bitwise_and" => B.prim(PrimOp::BitwiseAnd, K::Default).pytorch(&["torch.bitwise_and", "operator.and_", "torch.Tensor.bitwise_and", "torch.Tensor.__and__"]),
        BitwiseOr = "bitwise_or" => B.prim(PrimOp::BitwiseOr, K::Default).pytorch(&["torch.bitwise_or", "operator.or_", "torch.Tensor.bitwise_or", "torch.Tensor.__or__"]),
        BitwiseXor = "bitwise_xor" => B.prim(PrimOp::BitwiseXor, K::Default).pytorch(&["torch.bitwise_xor", "operator.xor", "torch.Tensor.bitwise_xor", "torch.Tensor.__xor__"]),
        Logaddexp = "logaddexp" => B.tensors_only().pytorch(&["torch.logaddexp", "torch.Tensor.logaddexp"]),
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
        Cumsum = "cumsum" => IR.autocast(F32).pytorch(&["torch.cumsum", "torch.Tensor.cumsum"]),
        // nn
        Softmax = "softmax" => NN.recompute().grad(WHOLE).autocast(F32).direct().pytorch(&["torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax"]),
        LogSoftmax = "log_softmax" => NN.recompute().grad(WHOLE).autocast(F32).direct().pytorch(&["torch.log_softmax", "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax"]),
        CrossEntropy = "cross_entropy" => CO.grad(WHOLE).autocast(F32).direct().pytorch(&["torch.nn.functional.cross_entropy"]),
        CrossEntropyBackward = "cross_entropy_backward" => CO.direct(),
        RmsNorm = "rms_norm" => NN.recompute().grad(WHOLE).autocast(F32).direct().pytorch(&["torch.rms_norm", "torch.nn.functional.rms_norm"]),
        LayerNorm = "layer_norm" => NN.recompute().grad(WHOLE).autocast(F32).direct().pytorch(&["torch.nn.functional.layer_norm"]),
        Dropout = "dropout" => NN.random().pytorch(&["torch.nn.functional.dropout"]),
        Embedding = "embedding" => NN.direct().pytorch(&["torch.nn.functional.embedding"]),
        Linear = "linear" => NN.autocast(LOWER).direct().pytorch(&["torch._C._nn.linear"]),
        Matmul = "matmul" => NN.autocast(LOWER).direct().pytorch(&["torch.matmul", "operator.matmul", "torch.Tensor.matmul"]),
        Bmm = "bmm" => NN.autocast(LOWER).direct(),
        Addmm = "addmm" => NN.autocast(LOWER).direct().pytorch(&["torch.addmm", "torch.Tensor.addmm"]),
        Conv2d = "conv2d" => NN.autocast(LOWER).direct().pytorch(&["torch.conv2d", "torch.nn.functional.conv2d"]),
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
        Pad = "pad" => SH.pytorch(&["torch.nn.functional.pad", "torch._C._nn.pad"]),
        RepeatInterleave = "repeat_interleave" => SH.pytorch(&["torch.repeat_interleave", "torch.Tensor.repeat_interleave"]),
        Triu = "triu" => SH.pytorch(&["torch.triu", "torch.Tensor.triu"]),
        Tril = "tril" => SH.pytorch(&["torch.tril", "torch.Tensor.tril"]),
        Cat = "cat" => SH.pytorch(&["torch.cat"]),
        Stack = "stack" => SH.pytorch(&["torch.stack"]),
        // indexing
        Gather = "gather" => IX.pytorch(&["torch.gather", "torch.Tensor.gather"]),
        IndexSelect = "index_select" => IX.pytorch(&["torch.index_select", "torch.Tensor.index_select"]),
        // optimizers
        Adamw = "adamw" => CO.direct(),
        // conversion and creation
        To = "to" => SH.direct().pytorch(&["torch.Tensor.to"]),
        Zeros = "zeros" => C.pytorch(&["torch.zeros"]),
        Ones = "ones" => C.pytorch(&["torch.ones"]),
        Full = "full" => C.pytorch(&["torch.full"]),
        Arange = "arange" => C.pytorch(&["torch.arange"]),
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

mod builder;
mod composite;
mod creation;
mod elementwise;
mod indexing;
mod lower;
mod nn;
mod reduction;
mod shape;
mod signature;

use lower::*;
pub use shape::MAX_SPLIT_OUTPUTS;

/// Operand `i` of `op` as a tensor value, or an error naming the operand.
fn tensor_arg(b: &TraceBuilder, op: TorchOp, n: &str, args: &[Arg], i: usize) -> Result<Value> {
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
}

/// A family's decomposition was asked for an op of another family: the op table and the family
/// files disagree (a bug of thunder-ir, reported rather than a panic).
fn not_in_family(op: TorchOp, n: &str) -> IrError {
    IrError::invalid(
        n,
        format!(
            "internal error: no decomposition of {} in the {} family's file",
            op.name(),
            op.info().family.name()
        ),
    )
}

/// Runs the decomposition of `op` on `args`/`attrs` in `b`, returning the op's outputs: the
/// file of the op's family (its row of the op table) has it.
pub(crate) fn decompose(
    b: &mut TraceBuilder,
    op: TorchOp,
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<Value>> {
    let qn = format!("ltorch.{}", op.name());
    let n = qn.as_str();
    match op.info().family {
        Family::Elementwise => elementwise::decompose(b, op, n, args, attrs),
        Family::Reduction => reduction::decompose(b, op, n, args, attrs),
        Family::Shape => shape::decompose(b, op, n, args, attrs),
        Family::Nn => nn::decompose(b, op, n, args, attrs),
        Family::Composite => composite::decompose(b, op, n, args, attrs),
        Family::Creation => creation::decompose(b, op, n, args, attrs),
        Family::Indexing => indexing::decompose(b, op, n, args, attrs),
        Family::Memory | Family::Opaque => Err(not_in_family(op, n)),
    }
}
