//! The torch executor: runs every prim, and a set of torch-level ops whole, through libtorch.
//!
//! Prims map onto ATen calls one by one. For a torch-level op the executor either calls the
//! libtorch op directly (`softmax`, `scaled_dot_product_attention` - libtorch's flash/efficient
//! attention on CUDA -, `cross_entropy`, `linear`, ...) or declines, and the claim pass runs the
//! decomposition instead. [`TorchExecutor::decomposing`] declines every torch-level op, which is how
//! the tests compare both paths.

use crate::convert::{device, kind};
use crate::executor::{Args, Executor, KArg, Kernel, KernelError, Outputs, RtValue};
use crate::{Error, Result};
use smallvec::smallvec;
use tch::{Scalar, Tensor};
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{
    Arg, Attr, BoundSymbol, DType, NumberType, Op, PrimOp, TorchOp, Trace, ValueType,
};

type KResult<T> = std::result::Result<T, KernelError>;

/// Runs prims and (optionally) torch-level ops through libtorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TorchExecutor {
    policy: Policy,
}

/// Which torch-level ops the torch executor calls directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// [`DIRECT_OPS`]: where one libtorch call beats the decomposition.
    Default,
    /// Every torch-level op: eager PyTorch, op by op.
    All,
    /// None: every torch-level op runs its decomposition.
    None,
}

impl Default for TorchExecutor {
    fn default() -> Self {
        TorchExecutor::new()
    }
}

/// Torch-level ops the torch executor runs with one libtorch call when `direct` is on.
pub const DIRECT_OPS: &[TorchOp] = &[
    TorchOp::Softmax,
    TorchOp::LogSoftmax,
    TorchOp::CrossEntropy,
    TorchOp::CrossEntropyBackward,
    TorchOp::ScaledDotProductAttention,
    TorchOp::ScaledDotProductAttentionBackward,
    TorchOp::Linear,
    TorchOp::Matmul,
    TorchOp::Bmm,
    TorchOp::Embedding,
    TorchOp::LayerNorm,
    TorchOp::RmsNorm,
    TorchOp::Gelu,
    TorchOp::Silu,
    TorchOp::Sigmoid,
    TorchOp::Relu,
    TorchOp::Reshape,
    TorchOp::View,
    TorchOp::Permute,
    TorchOp::Transpose,
    TorchOp::Unsqueeze,
    TorchOp::To,
    TorchOp::Adamw,
];

impl TorchExecutor {
    /// Runs the torch-level ops of [`DIRECT_OPS`] with their libtorch op, and prims.
    pub fn new() -> Self {
        TorchExecutor {
            policy: Policy::Default,
        }
    }
    /// Runs every torch-level op with its libtorch op: eager PyTorch, one ATen call per op. The
    /// conformance tests use it as the reference.
    pub fn eager() -> Self {
        TorchExecutor {
            policy: Policy::All,
        }
    }
    /// Runs prims only: every torch-level op goes through its decomposition.
    pub fn decomposing() -> Self {
        TorchExecutor {
            policy: Policy::None,
        }
    }
    /// Whether `op` is called directly (rather than decomposed) by this executor.
    pub fn runs_directly(&self, op: TorchOp) -> bool {
        match self.policy {
            Policy::Default => DIRECT_OPS.contains(&op),
            Policy::All => true,
            Policy::None => false,
        }
    }
}

impl Executor for TorchExecutor {
    fn name(&self) -> &'static str {
        match self.policy {
            Policy::Default => "torch",
            Policy::All => "torch-eager",
            Policy::None => "torch-prims",
        }
    }

    fn claims(&self, _trace: &Trace, bsym: &BoundSymbol) -> bool {
        match bsym.op {
            Op::Prim(p) => prim_supported(p, bsym),
            Op::Torch(t) => self.runs_directly(t),
            // A world of one rank: every collective is the identity. Larger worlds need a
            // communicator (thunder-distributed's NCCL executor).
            Op::Dist(d) => d == thunder_ir::DistOp::Wait || d.world_size(&bsym.attrs) == Some(1),
        }
    }

    fn compile(&self, trace: &Trace, bsym: &BoundSymbol) -> Result<Kernel> {
        let unsupported = |why: &str| Error::Compile {
            executor: self.name(),
            statement: thunder_ir::printer::statement(trace, bsym),
            message: why.to_string(),
        };
        match bsym.op {
            Op::Prim(p) => compile_prim(trace, p, bsym).map_err(|m| unsupported(&m)),
            Op::Torch(t) if self.claims(trace, bsym) => {
                compile_torch(trace, t, bsym).map_err(|m| unsupported(&m))
            }
            Op::Torch(_) => Err(unsupported("not claimed by this executor")),
            Op::Dist(_) if self.claims(trace, bsym) => {
                Ok(Box::new(|args| one(tensor(args, 0)?.shallow_clone())))
            }
            Op::Dist(_) => Err(unsupported(
                "a collective over several ranks needs a communicator (the NCCL executor)",
            )),
        }
    }
}

fn prim_supported(p: PrimOp, bsym: &BoundSymbol) -> bool {
    match p {
        // max_norm renormalizes the weight in place, which a functional trace cannot express.
        PrimOp::Embedding => matches!(bsym.attrs.get(1), Some(Attr::None)),
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Operand access.

/// Operand `i` as a tensor (shared with the fused executors).
pub(crate) fn tensor<'a>(args: &Args<'a>, i: usize) -> KResult<&'a Tensor> {
    match args.get(i)? {
        KArg::Value(RtValue::Tensor(t)) => Ok(t),
        other => Err(KernelError(format!(
            "operand {i} must be a tensor, got {other:?}"
        ))),
    }
}

fn opt_tensor<'a>(args: &Args<'a>, i: usize) -> KResult<Option<&'a Tensor>> {
    match args.get(i)? {
        KArg::None => Ok(None),
        _ => tensor(args, i).map(Some),
    }
}

/// Operand `i` as a list of tensors (shared with the fused executors).
pub(crate) fn tensor_list<'a>(args: &Args<'a>, i: usize) -> KResult<Vec<&'a Tensor>> {
    match args.get(i)? {
        KArg::List(items) => items
            .iter()
            .map(|v| {
                v.and_then(RtValue::as_tensor)
                    .ok_or_else(|| KernelError("a list operand holds a non-tensor".into()))
            })
            .collect(),
        other => Err(KernelError(format!(
            "operand {i} must be a list of tensors, got {other:?}"
        ))),
    }
}

/// A contiguous copy of `t` in new memory (even when `t` is contiguous).
pub(crate) fn contiguous_copy(t: &Tensor) -> KResult<Tensor> {
    let mut c = Tensor::f_empty(t.size(), (t.kind(), t.device()))?;
    c.f_copy_(t)?;
    Ok(c)
}

/// A `reduction` attribute (`"mean"`, `"sum"`, `"none"`) as libtorch's.
fn reduction(a: &Attr) -> std::result::Result<tch::Reduction, String> {
    match a {
        Attr::Str(s) if s == "mean" => Ok(tch::Reduction::Mean),
        Attr::Str(s) if s == "sum" => Ok(tch::Reduction::Sum),
        Attr::Str(s) if s == "none" => Ok(tch::Reduction::None),
        other => Err(format!("unknown reduction {other:?}")),
    }
}

/// A Python number operand.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Num {
    fn scalar(self) -> Scalar {
        match self {
            Num::Int(i) => Scalar::int(i),
            Num::Float(f) => Scalar::float(f),
            Num::Bool(b) => Scalar::int(b as i64),
        }
    }
    /// A 0-dim CPU tensor holding the number with `dtype` (PyTorch treats 0-dim CPU tensors as
    /// scalars next to CUDA tensors, with no transfer).
    fn tensor(self, dtype: tch::Kind) -> KResult<Tensor> {
        Ok(Tensor::f_scalar_tensor(
            self.scalar(),
            (dtype, tch::Device::Cpu),
        )?)
    }
    fn natural_kind(self) -> tch::Kind {
        match self {
            Num::Int(_) => tch::Kind::Int64,
            Num::Float(_) => tch::Kind::Double,
            Num::Bool(_) => tch::Kind::Bool,
        }
    }
}

enum Operand<'a> {
    T(&'a Tensor),
    N(Num),
}

fn operand<'a>(args: &Args<'a>, i: usize) -> KResult<Operand<'a>> {
    Ok(match args.get(i)? {
        KArg::Value(RtValue::Tensor(t)) => Operand::T(t),
        KArg::Value(&RtValue::Int(v)) | KArg::Int(v) => Operand::N(Num::Int(v)),
        KArg::Value(&RtValue::Float(v)) | KArg::Float(v) => Operand::N(Num::Float(v)),
        KArg::Value(&RtValue::Bool(v)) | KArg::Bool(v) => Operand::N(Num::Bool(v)),
        other => {
            return Err(KernelError(format!(
                "operand {i} must be a tensor or a number, got {other:?}"
            )))
        }
    })
}

/// Reads a 0-dim tensor back as a number of `ty`.
fn to_number(t: &Tensor, ty: NumberType) -> KResult<RtValue> {
    Ok(match ty {
        NumberType::Bool => RtValue::Bool(t.f_int64_value(&[])? != 0),
        NumberType::Int => RtValue::Int(t.f_int64_value(&[])?),
        NumberType::Float | NumberType::Complex => RtValue::Float(t.f_double_value(&[])?),
    })
}

/// Whether a backward kernel computed through autograd (attention's, cross entropy's) builds
/// its gradients differentiably: only when grad mode is on and an input requires grad, as an
/// eager op would record a graph. A plan run as the backward of a `torch.autograd.Function`
/// (thunder.jit's) runs in no-grad mode with saved tensors that still require grad and belong
/// to the graph being differentiated: differentiating through them from inside that backward
/// crashed libtorch's engine (BERT's cross entropy, issue 20).
fn differentiable_backward(inputs: &[&Tensor]) -> bool {
    grad_mode_enabled() && inputs.iter().any(|t| t.requires_grad())
}

/// libtorch's thread-local grad mode (tch can set it but not read it).
fn grad_mode_enabled() -> bool {
    // SAFETY: `at_grad_set_enabled` sets the thread-local flag and returns the previous one;
    // it takes and returns plain ints. Setting it back leaves the state as it was.
    unsafe {
        let previous = torch_sys::at_grad_set_enabled(1);
        torch_sys::at_grad_set_enabled(previous);
        previous != 0
    }
}

fn one(t: Tensor) -> KResult<Outputs> {
    Ok(smallvec![RtValue::Tensor(t)])
}

fn ints(a: &Attr) -> std::result::Result<Vec<i64>, String> {
    match a {
        Attr::Ints(v) => Ok(v.clone()),
        other => Err(format!("expected a list of ints, got {other:?}")),
    }
}
fn int(a: &Attr) -> std::result::Result<i64, String> {
    match a {
        Attr::Int(v) => Ok(*v),
        other => Err(format!("expected an int, got {other:?}")),
    }
}
fn opt_int(a: &Attr) -> std::result::Result<Option<i64>, String> {
    match a {
        Attr::None => Ok(None),
        _ => int(a).map(Some),
    }
}
fn float(a: &Attr) -> std::result::Result<f64, String> {
    match a {
        Attr::Float(v) => Ok(*v),
        Attr::Int(v) => Ok(*v as f64),
        other => Err(format!("expected a float, got {other:?}")),
    }
}
fn opt_float(a: &Attr) -> std::result::Result<Option<f64>, String> {
    match a {
        Attr::None => Ok(None),
        _ => float(a).map(Some),
    }
}
fn boolean(a: &Attr) -> std::result::Result<bool, String> {
    match a {
        Attr::Bool(v) => Ok(*v),
        other => Err(format!("expected a bool, got {other:?}")),
    }
}
fn num_attr(a: &Attr) -> std::result::Result<Num, String> {
    match a {
        Attr::Int(v) => Ok(Num::Int(*v)),
        Attr::Float(v) => Ok(Num::Float(*v)),
        Attr::Bool(v) => Ok(Num::Bool(*v)),
        other => Err(format!("expected a number, got {other:?}")),
    }
}
fn dtype_attr(a: &Attr) -> std::result::Result<DType, String> {
    match a {
        Attr::DType(d) => Ok(*d),
        other => Err(format!("expected a dtype, got {other:?}")),
    }
}
fn opt_dtype_attr(a: &Attr) -> std::result::Result<Option<DType>, String> {
    match a {
        Attr::None => Ok(None),
        _ => dtype_attr(a).map(Some),
    }
}
fn device_attr(a: &Attr) -> std::result::Result<thunder_ir::Device, String> {
    match a {
        Attr::Device(d) => Ok(*d),
        other => Err(format!("expected a device, got {other:?}")),
    }
}

/// The type of output `i` of `bsym`.
fn out_ty(trace: &Trace, bsym: &BoundSymbol, i: usize) -> std::result::Result<ValueType, String> {
    let v = bsym
        .outputs
        .get(i)
        .ok_or("the bound symbol has no output")?;
    trace
        .values
        .get(v.index())
        .map(|i| i.ty.clone())
        .ok_or_else(|| "output outside the value table".to_string())
}

/// `where(pred, x, y)` with tensors or numbers (bool numbers as 0-dim bool tensors, since
/// libtorch has no bool Scalar); `kind` types a number-only result.
fn where_op(pred: &Tensor, x: Operand<'_>, y: Operand<'_>, kind: tch::Kind) -> KResult<Tensor> {
    let boolean = |o: &Operand<'_>| -> KResult<Option<Tensor>> {
        Ok(match o {
            Operand::N(n @ Num::Bool(_)) => Some(n.tensor(tch::Kind::Bool)?),
            _ => None,
        })
    };
    let (bx, by) = (boolean(&x)?, boolean(&y)?);
    let x = bx.as_ref().map_or(x, Operand::T);
    let y = by.as_ref().map_or(y, Operand::T);
    Ok(match (x, y) {
        (Operand::T(a), Operand::T(b)) => a.f_where_self(pred, b)?,
        (Operand::T(a), Operand::N(n)) => a.f_where_scalarother(pred, n.scalar())?,
        (Operand::N(n), Operand::T(b)) => Tensor::f_where_scalarself(pred, n.scalar(), b)?,
        (Operand::N(a), Operand::N(b)) => a.tensor(kind)?.f_where_self(pred, &b.tensor(kind)?)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Prims.

fn unary_tensor(op: PrimOp, a: &Tensor) -> KResult<Tensor> {
    use PrimOp::*;
    Ok(match op {
        Abs => a.f_abs()?,
        Neg => a.f_neg()?,
        Exp => a.f_exp()?,
        Exp2 => a.f_exp2()?,
        Expm1 => a.f_expm1()?,
        Log => a.f_log()?,
        Log1p => a.f_log1p()?,
        Log2 => a.f_log2()?,
        Log10 => a.f_log10()?,
        Sqrt => a.f_sqrt()?,
        Rsqrt => a.f_rsqrt()?,
        Reciprocal => a.f_reciprocal()?,
        Sin => a.f_sin()?,
        Cos => a.f_cos()?,
        Tan => a.f_tan()?,
        Asin => a.f_asin()?,
        Acos => a.f_acos()?,
        Atan => a.f_atan()?,
        Sinh => a.f_sinh()?,
        Cosh => a.f_cosh()?,
        Tanh => a.f_tanh()?,
        Asinh => a.f_asinh()?,
        Acosh => a.f_acosh()?,
        Atanh => a.f_atanh()?,
        Erf => a.f_erf()?,
        Erfc => a.f_erfc()?,
        Erfinv => a.f_erfinv()?,
        Lgamma => a.f_lgamma()?,
        Digamma => a.f_digamma()?,
        Floor => a.f_floor()?,
        Ceil => a.f_ceil()?,
        Round => a.f_round()?,
        Trunc => a.f_trunc()?,
        Sign => a.f_sign()?,
        Signbit => a.f_signbit()?,
        IsFinite => a.f_isfinite()?,
        BitwiseNot => a.f_bitwise_not()?,
        Real => a.f_real()?.f_contiguous()?,
        Imag => a.f_imag()?.f_contiguous()?,
        _ => return Err(KernelError(format!("{op:?} is not unary"))),
    })
}

fn binary_tensors(op: PrimOp, a: &Tensor, b: &Tensor) -> KResult<Tensor> {
    use PrimOp::*;
    let integer = || {
        crate::convert::dtype(a.kind())
            .is_some_and(|d| d.category() <= thunder_ir::Category::Integer)
    };
    Ok(match op {
        Add => a.f_add(b)?,
        Sub => a.f_sub(b)?,
        Mul => a.f_mul(b)?,
        // prims.div keeps the dtype: integer division truncates, as in C (ltorch.div converts
        // integers to float first, so true division never reaches here with integers).
        Div if integer() => a.f_div_tensor_mode(b, "trunc")?,
        Div => a.f_div(b)?,
        Remainder => a.f_remainder_tensor(b)?,
        Fmod => a.f_fmod_tensor(b)?,
        Pow => a.f_pow(b)?,
        Atan2 => a.f_atan2(b)?,
        Maximum => a.f_maximum(b)?,
        Minimum => a.f_minimum(b)?,
        Eq => a.f_eq_tensor(b)?,
        Ne => a.f_ne_tensor(b)?,
        Lt => a.f_lt_tensor(b)?,
        Le => a.f_le_tensor(b)?,
        Gt => a.f_gt_tensor(b)?,
        Ge => a.f_ge_tensor(b)?,
        BitwiseAnd => a.f_bitwise_and_tensor(b)?,
        BitwiseOr => a.f_bitwise_or_tensor(b)?,
        BitwiseXor => a.f_bitwise_xor_tensor(b)?,
        ShiftLeft => a.f_bitwise_left_shift(b)?,
        ShiftRight => a.f_bitwise_right_shift(b)?,
        _ => return Err(KernelError(format!("{op:?} is not binary"))),
    })
}

/// A binary prim of a tensor and a number. Uses libtorch's scalar overloads where they exist, so
/// that the number is a "wrapped number" (never changes the result dtype), as in eager PyTorch.
fn binary_tensor_number(op: PrimOp, a: &Tensor, n: Num, number_first: bool) -> KResult<Tensor> {
    use PrimOp::*;
    if let Num::Bool(_) = n {
        // libtorch has no bool Scalar: a 0-dim bool tensor is the one that never promotes.
        let nt = n.tensor(tch::Kind::Bool)?;
        return if number_first {
            binary_tensors(op, &nt, a)
        } else {
            binary_tensors(op, a, &nt)
        };
    }
    let s = n.scalar();
    let commutative = matches!(
        op,
        Add | Mul | Eq | Ne | BitwiseAnd | BitwiseOr | BitwiseXor | Maximum | Minimum
    );
    if !number_first || commutative {
        let direct = match op {
            Add => Some(a.f_add_scalar(s)),
            Mul => Some(a.f_mul_scalar(s)),
            Sub => Some(a.f_sub_scalar(s)),
            Div if crate::convert::dtype(a.kind()).is_some_and(|d| d.is_inexact()) => {
                Some(a.f_div_scalar(s))
            }
            Pow => Some(a.f_pow_tensor_scalar(s)),
            Remainder => Some(a.f_remainder(s)),
            Fmod => Some(a.f_fmod(s)),
            Eq => Some(a.f_eq(s)),
            Ne => Some(a.f_ne(s)),
            Lt => Some(a.f_lt(s)),
            Le => Some(a.f_le(s)),
            Gt => Some(a.f_gt(s)),
            Ge => Some(a.f_ge(s)),
            BitwiseAnd => Some(a.f_bitwise_and(s)),
            BitwiseOr => Some(a.f_bitwise_or(s)),
            BitwiseXor => Some(a.f_bitwise_xor(s)),
            ShiftLeft => Some(a.f_bitwise_left_shift_tensor_scalar(s)),
            ShiftRight => Some(a.f_bitwise_right_shift_tensor_scalar(s)),
            // clamp_min/max propagate NaN of the tensor, as maximum/minimum do.
            Maximum => Some(a.f_clamp_min(s)),
            Minimum => Some(a.f_clamp_max(s)),
            _ => None,
        };
        if let Some(r) = direct {
            return Ok(r?);
        }
    } else {
        let mirrored = match op {
            Sub => Some(a.f_rsub_scalar(s)),
            Pow => Some(Tensor::f_pow_scalar(s, a)),
            Lt => Some(a.f_gt(s)),
            Le => Some(a.f_ge(s)),
            Gt => Some(a.f_lt(s)),
            Ge => Some(a.f_le(s)),
            _ => None,
        };
        if let Some(r) = mirrored {
            return Ok(r?);
        }
    }
    // No scalar overload: a 0-dim CPU tensor of the tensor's dtype.
    let nt = n.tensor(a.kind())?;
    if number_first {
        binary_tensors(op, &nt, a)
    } else {
        binary_tensors(op, a, &nt)
    }
}

fn compile_prim(
    trace: &Trace,
    p: PrimOp,
    bsym: &BoundSymbol,
) -> std::result::Result<Kernel, String> {
    use PrimOp::*;
    let at = &bsym.attrs;
    let out0 = out_ty(trace, bsym, 0)?;
    let number_out = match &out0 {
        ValueType::Number(n) => Some(*n),
        ValueType::Tensor(_) => None,
    };
    match p.class() {
        PrimClass::Unary => {
            if matches!(out0, ValueType::Tensor(_)) {
                return Ok(Box::new(move |args| {
                    one(unary_tensor(p, tensor(args, 0)?)?)
                }));
            }
            return Ok(Box::new(move |args| match operand(args, 0)? {
                Operand::T(a) => one(unary_tensor(p, a)?),
                Operand::N(n) => {
                    let r = unary_tensor(p, &n.tensor(n.natural_kind())?)?;
                    Ok(smallvec![to_number(
                        &r,
                        number_out.unwrap_or(NumberType::Float)
                    )?])
                }
            }));
        }
        PrimClass::Binary => {
            let is_tensor = |a: &Arg| match a {
                Arg::Value(v) => trace
                    .values
                    .get(v.index())
                    .is_some_and(|i| i.ty.as_tensor().is_some()),
                _ => false,
            };
            if bsym.args.iter().all(is_tensor) {
                // The common case, without the number dispatch.
                return Ok(Box::new(move |args| {
                    one(binary_tensors(p, tensor(args, 0)?, tensor(args, 1)?)?)
                }));
            }
            return Ok(Box::new(move |args| {
                let r = match (operand(args, 0)?, operand(args, 1)?) {
                    (Operand::T(a), Operand::T(b)) => binary_tensors(p, a, b)?,
                    (Operand::T(a), Operand::N(n)) => binary_tensor_number(p, a, n, false)?,
                    (Operand::N(n), Operand::T(b)) => binary_tensor_number(p, b, n, true)?,
                    (Operand::N(x), Operand::N(y)) => {
                        let k = match number_out {
                            Some(NumberType::Bool) if !matches!(p, Eq | Ne | Lt | Le | Gt | Ge) => {
                                tch::Kind::Bool
                            }
                            _ if matches!((x, y), (Num::Float(_), _) | (_, Num::Float(_))) => {
                                tch::Kind::Double
                            }
                            _ if matches!((x, y), (Num::Int(_), _) | (_, Num::Int(_))) => {
                                tch::Kind::Int64
                            }
                            _ => tch::Kind::Bool,
                        };
                        let r = binary_tensors(p, &x.tensor(k)?, &y.tensor(k)?)?;
                        return Ok(smallvec![to_number(
                            &r,
                            number_out.unwrap_or(NumberType::Float)
                        )?]);
                    }
                };
                one(r)
            }));
        }
        PrimClass::Ternary => {
            return Ok(Box::new(move |args| {
                let pred = match operand(args, 0)? {
                    Operand::T(t) => t.shallow_clone(),
                    Operand::N(n) => n.tensor(tch::Kind::Bool)?,
                };
                let k = match &out0 {
                    ValueType::Tensor(t) => kind(t.dtype),
                    ValueType::Number(_) => tch::Kind::Double,
                };
                let r = where_op(&pred, operand(args, 1)?, operand(args, 2)?, k)?;
                if let Some(n) = number_out {
                    return Ok(smallvec![to_number(&r, n)?]);
                }
                one(r)
            }))
        }
        PrimClass::Reduction => {
            let dims = ints(&at[0])?;
            let out_kind = match &out0 {
                ValueType::Tensor(t) => kind(t.dtype),
                ValueType::Number(_) => return Err("a reduction returns a tensor".into()),
            };
            let correction = if p == Var { float(&at[1])? } else { 0.0 };
            return Ok(Box::new(move |args| {
                let a = tensor(args, 0)?;
                // An empty dim list reduces nothing for prims, but everything for ATen.
                if dims.is_empty() && !(p == Var && a.dim() == 0) {
                    return one(a.f_to_kind(out_kind)?);
                }
                one(match p {
                    Sum => a.f_sum_dim_intlist(dims.as_slice(), false, out_kind)?,
                    Amax => a.f_amax(dims.as_slice(), false)?,
                    Amin => a.f_amin(dims.as_slice(), false)?,
                    Prod => {
                        let mut sorted = dims.clone();
                        sorted.sort_unstable_by(|x, y| y.cmp(x));
                        let mut r = a.shallow_clone();
                        for d in sorted {
                            r = r.f_prod_dim_int(d, false, out_kind)?;
                        }
                        r
                    }
                    Var => a.f_var_correction(dims.as_slice(), Scalar::float(correction), false)?,
                    _ => return Err(KernelError(format!("{p:?} is not a reduction"))),
                })
            }));
        }
        PrimClass::Other => {}
    }
    Ok(match p {
        ConvertElementType => {
            let d = kind(dtype_attr(&at[0])?);
            Box::new(move |args| match operand(args, 0)? {
                Operand::T(a) => one(a.f_to_kind(d)?),
                Operand::N(n) => Ok(smallvec![to_number(
                    &n.tensor(n.natural_kind())?.f_to_kind(d)?,
                    number_out.unwrap_or(NumberType::Float)
                )?]),
            })
        }
        DevicePut => {
            let dev = device(device_attr(&at[0])?);
            Box::new(move |args| one(tensor(args, 0)?.f_to_device(dev)?))
        }
        BroadcastInDim => {
            let shape = ints(&at[0])?;
            let bdims = ints(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let a_shape = a.size();
                let mut view = vec![1i64; shape.len()];
                for (i, &d) in bdims.iter().enumerate() {
                    view[d as usize] = a_shape[i];
                }
                one(a
                    .f_reshape(view.as_slice())?
                    .f_expand(shape.as_slice(), false)?)
            })
        }
        Reshape => {
            let shape = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_reshape(shape.as_slice())?))
        }
        Transpose => {
            let perm = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_permute(perm.as_slice())?))
        }
        Slice => {
            let (start, end, strides) = (ints(&at[0])?, ints(&at[1])?, ints(&at[2])?);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let size = a.size();
                let mut r = a.shallow_clone();
                for d in 0..start.len() {
                    if start[d] != 0 || end[d] != size[d] || strides[d] != 1 {
                        r = r.f_slice(d as i64, start[d], end[d], strides[d])?;
                    }
                }
                one(r)
            })
        }
        Squeeze => {
            let dims = ints(&at[0])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if a.dim() == 0 {
                    a.shallow_clone()
                } else {
                    a.f_squeeze_dims(dims.as_slice())?
                })
            })
        }
        Cat => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(Tensor::f_cat(&tensor_list(args, 0)?, dim)?))
        }
        Pad => {
            let value = num_attr(&at[0])?;
            let config: Vec<Vec<i64>> = match &at[1] {
                Attr::IntLists(v) => v.clone(),
                other => return Err(format!("padding_config must be int lists, got {other:?}")),
            };
            Box::new(move |args| one(pad(tensor(args, 0)?, value, &config)?))
        }
        Flip => {
            let dims = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_flip(dims.as_slice())?))
        }
        Argmax | Argmin => {
            let dim = opt_int(&at[0])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if p == Argmax {
                    a.f_argmax(dim, false)?
                } else {
                    a.f_argmin(dim, false)?
                })
            })
        }
        Full => {
            let shape = ints(&at[0])?;
            let value = num_attr(&at[1])?;
            let dev = device(device_attr(&at[2])?);
            let k = kind(dtype_attr(&at[3])?);
            Box::new(move |_| one(Tensor::f_full(shape.as_slice(), value.scalar(), (k, dev))?))
        }
        Iota => {
            let len = int(&at[0])?;
            let (start, step) = (num_attr(&at[1])?, num_attr(&at[2])?);
            let dev = device(device_attr(&at[3])?);
            let k = kind(dtype_attr(&at[4])?);
            Box::new(move |_| {
                // start + i * step, computed in the target dtype like Lightning Thunder's iota.
                let i = Tensor::f_arange(Scalar::int(len), (k, dev))?;
                one(i
                    .f_mul_scalar(step.scalar())?
                    .f_add_scalar(start.scalar())?
                    .f_to_kind(k)?)
            })
        }
        Uniform => {
            let shape = ints(&at[0])?;
            let (lo, hi) = (float(&at[1])?, float(&at[2])?);
            let dev = device(device_attr(&at[3])?);
            let k = kind(dtype_attr(&at[4])?);
            Box::new(move |_| {
                let mut t = Tensor::f_empty(shape.as_slice(), (k, dev))?;
                let _ = t.f_uniform_(lo, hi)?;
                one(t)
            })
        }
        Randn => {
            let shape = ints(&at[0])?;
            let dev = device(device_attr(&at[1])?);
            let k = kind(dtype_attr(&at[2])?);
            Box::new(move |_| one(Tensor::f_randn(shape.as_slice(), (k, dev))?))
        }
        Take => {
            let dim = int(&at[0])?;
            let out_shape: Vec<i64> = match &out0 {
                ValueType::Tensor(t) => t.shape.sizes().iter().map(|&s| s as i64).collect(),
                ValueType::Number(_) => return Err("take returns a tensor".into()),
            };
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let idx = tensor(args, 1)?.f_reshape([-1i64].as_slice())?;
                let d = if dim < 0 {
                    dim + a.dim().max(1) as i64
                } else {
                    dim
                };
                let r = if a.dim() == 0 {
                    a.f_reshape([1i64].as_slice())?.f_index_select(0, &idx)?
                } else {
                    a.f_index_select(d, &idx)?
                };
                one(r.f_reshape(out_shape.as_slice())?)
            })
        }
        TakeAlongAxis | Gather => {
            let dim = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_gather(dim, tensor(args, 1)?, false)?))
        }
        IndexAdd => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_index_add(dim, tensor(args, 1)?, tensor(args, 2)?)?)
            })
        }
        ScatterAdd => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_scatter_add(dim, tensor(args, 1)?, tensor(args, 2)?)?)
            })
        }
        Matmul => Box::new(move |args| one(tensor(args, 0)?.f_matmul(tensor(args, 1)?)?)),
        Linear => Box::new(move |args| {
            one(tensor(args, 0)?.f_linear(tensor(args, 1)?, opt_tensor(args, 2)?)?)
        }),
        Embedding => {
            let padding_idx = opt_int(&at[0])?.unwrap_or(-1);
            if !matches!(at[1], Attr::None) {
                return Err(
                    "max_norm is not supported (it renormalizes the weight in place)".into(),
                );
            }
            let (sgf, sparse) = (boolean(&at[3])?, boolean(&at[4])?);
            Box::new(move |args| {
                one(Tensor::f_embedding(
                    tensor(args, 1)?,
                    tensor(args, 0)?,
                    padding_idx,
                    sgf,
                    sparse,
                )?)
            })
        }
        EmbeddingBackward => {
            let num = int(&at[0])?;
            let padding_idx = opt_int(&at[1])?.unwrap_or(-1);
            let (sgf, sparse) = (boolean(&at[2])?, boolean(&at[3])?);
            Box::new(move |args| {
                one(Tensor::f_embedding_backward(
                    tensor(args, 0)?,
                    tensor(args, 1)?,
                    num,
                    padding_idx,
                    sgf,
                    sparse,
                )?)
            })
        }
        Polygamma => {
            let order = int(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_polygamma(order)?))
        }
        Copy_ => Box::new(move |args| {
            let mut dst = tensor(args, 1)?.shallow_clone();
            dst.f_copy_(tensor(args, 0)?)?;
            one(dst)
        }),
        other => return Err(format!("no kernel for prims.{}", other.name())),
    })
}

/// `prims.pad`: interior padding by copying into a strided view of a filled buffer, then
/// low/high padding (negative values crop) with ATen's constant `pad`.
fn pad(a: &Tensor, value: Num, config: &[Vec<i64>]) -> KResult<Tensor> {
    let size = a.size();
    let x = if config.iter().any(|c| c[2] > 0) {
        let dilated: Vec<i64> = size
            .iter()
            .zip(config)
            .map(|(&s, c)| s + (s - 1).max(0) * c[2])
            .collect();
        let buf = Tensor::f_full(dilated.as_slice(), value.scalar(), (a.kind(), a.device()))?;
        let mut view = buf.shallow_clone();
        for (d, c) in config.iter().enumerate() {
            view = view.f_slice(d as i64, 0, dilated[d], c[2] + 1)?;
        }
        view.f_copy_(a)?;
        buf
    } else {
        a.shallow_clone()
    };
    // ATen takes (low, high) pairs from the last dim backwards.
    let pads: Vec<i64> = config.iter().rev().flat_map(|c| [c[0], c[1]]).collect();
    if pads.iter().all(|&p| p == 0) {
        return Ok(x);
    }
    let v = match value {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
        Num::Bool(b) => b as i64 as f64,
    };
    Ok(x.f_pad(pads.as_slice(), "constant", v)?)
}

// ---------------------------------------------------------------------------------------------
// Torch-level ops run whole.

fn compile_torch(
    trace: &Trace,
    t: TorchOp,
    bsym: &BoundSymbol,
) -> std::result::Result<Kernel, String> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let out0 = out_ty(trace, bsym, 0)?;
    let out_shape: Vec<i64> = match &out0 {
        ValueType::Tensor(m) => m.shape.sizes().iter().map(|&s| s as i64).collect(),
        ValueType::Number(_) => Vec::new(),
    };
    let out_kind = match &out0 {
        ValueType::Tensor(m) => kind(m.dtype),
        ValueType::Number(_) => tch::Kind::Float,
    };
    Ok(match t {
        T::Softmax | T::LogSoftmax => {
            let dim = int(&at[0])?;
            let dt = opt_dtype_attr(&at[1])?.map(kind);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Softmax {
                    a.f_softmax(dim, dt)?
                } else {
                    a.f_log_softmax(dim, dt)?
                })
            })
        }
        T::CrossEntropy => {
            let ignore_index = int(&at[0])?;
            let reduction = reduction(&at[1])?;
            let smoothing = float(&at[2])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_cross_entropy_loss::<&Tensor>(
                    tensor(args, 1)?,
                    None,
                    reduction,
                    ignore_index,
                    smoothing,
                )?)
            })
        }
        T::CrossEntropyBackward => {
            // PyTorch's own backward (log_softmax and nll_loss backwards), through autograd: the
            // forward is rerun on a detached leaf and differentiated with `grad_out`.
            let ignore_index = int(&at[0])?;
            let reduction = reduction(&at[1])?;
            Box::new(move |args| {
                let g = tensor(args, 0)?;
                let x = tensor(args, 1)?;
                let create_graph = differentiable_backward(&[g, x]);
                let leaf = if create_graph && x.requires_grad() {
                    x.shallow_clone()
                } else {
                    x.detach().set_requires_grad(true)
                };
                let grads = tch::with_grad(|| -> KResult<Vec<Tensor>> {
                    let loss = leaf.f_cross_entropy_loss::<&Tensor>(
                        tensor(args, 2)?,
                        None,
                        reduction,
                        ignore_index,
                        0.0,
                    )?;
                    let l = loss.f_mul(g)?.f_sum(loss.kind())?;
                    Ok(Tensor::f_run_backward(
                        &[l],
                        &[&leaf],
                        create_graph,
                        create_graph,
                    )?)
                })?;
                Ok(grads.into_iter().map(RtValue::Tensor).collect())
            })
        }
        T::Adamw => adamw_kernel(at)?,
        T::ScaledDotProductAttention => {
            let (dropout_p, is_causal, scale, gqa) = (
                float(&at[0])?,
                boolean(&at[1])?,
                opt_float(&at[2])?,
                boolean(&at[3])?,
            );
            Box::new(move |args| {
                one(Tensor::f_scaled_dot_product_attention(
                    tensor(args, 0)?,
                    tensor(args, 1)?,
                    tensor(args, 2)?,
                    opt_tensor(args, 3)?,
                    dropout_p,
                    is_causal,
                    scale,
                    gqa,
                )?)
            })
        }
        T::ScaledDotProductAttentionBackward => {
            // libtorch's own attention backward (flash or memory-efficient on CUDA where they
            // apply), reached through autograd: the forward is rerun on detached leaves, then
            // differentiated with `grad_out` as the output's gradient.
            let (is_causal, scale, gqa) = (boolean(&at[0])?, opt_float(&at[1])?, boolean(&at[2])?);
            Box::new(move |args| {
                let g = tensor(args, 0)?;
                // Inputs that already require grad stay in their graph, and the gradients are
                // built differentiably then (a double backward through eager PyTorch), when
                // grad mode is on (see `differentiable_backward`).
                let inputs = (0..4)
                    .map(|i| tensor(args, i))
                    .collect::<KResult<Vec<_>>>()?;
                let create_graph = differentiable_backward(&inputs);
                // Without a mask or grouped-query attention on CUDA: the fused kernel's own
                // backward, called directly (no autograd graph, no kernels for `out * g`).
                if !create_graph && !gqa && opt_tensor(args, 4)?.is_none() && g.device().is_cuda() {
                    let (q, k, v) = (tensor(args, 1)?, tensor(args, 2)?, tensor(args, 3)?);
                    if let Some(grads) = crate::shim::sdpa_backward(g, q, k, v, is_causal, scale)? {
                        return Ok(grads.into_iter().map(RtValue::Tensor).collect());
                    }
                }
                let leaves: Vec<Tensor> = (1..4)
                    .map(|i| {
                        let t = tensor(args, i)?;
                        Ok(if create_graph && t.requires_grad() {
                            t.shallow_clone()
                        } else {
                            t.detach().set_requires_grad(true)
                        })
                    })
                    .collect::<KResult<_>>()?;
                let grads = tch::with_grad(|| -> KResult<Vec<Tensor>> {
                    // A differentiable backward needs the math path: the fused kernels'
                    // backwards have no derivative.
                    let out = if create_graph {
                        Tensor::f_internal_scaled_dot_product_attention_math(
                            &leaves[0],
                            &leaves[1],
                            &leaves[2],
                            opt_tensor(args, 4)?,
                            0.0,
                            is_causal,
                            None,
                            scale,
                            gqa,
                        )?
                        .0
                    } else {
                        Tensor::f_scaled_dot_product_attention(
                            &leaves[0],
                            &leaves[1],
                            &leaves[2],
                            opt_tensor(args, 4)?,
                            0.0,
                            is_causal,
                            scale,
                            gqa,
                        )?
                    };
                    let loss = out.f_mul(g)?.f_sum(out.kind())?;
                    let refs: Vec<&Tensor> = leaves.iter().collect();
                    Ok(Tensor::f_run_backward(
                        &[loss],
                        &refs,
                        create_graph,
                        create_graph,
                    )?)
                })?;
                Ok(grads.into_iter().map(RtValue::Tensor).collect())
            })
        }
        T::Linear => Box::new(move |args| {
            one(tensor(args, 0)?.f_linear(tensor(args, 1)?, opt_tensor(args, 2)?)?)
        }),
        T::Matmul => Box::new(move |args| one(tensor(args, 0)?.f_matmul(tensor(args, 1)?)?)),
        T::Bmm => Box::new(move |args| one(tensor(args, 0)?.f_bmm(tensor(args, 1)?)?)),
        T::Embedding => {
            let padding_idx = opt_int(&at[0])?.unwrap_or(-1);
            Box::new(move |args| {
                one(Tensor::f_embedding(
                    tensor(args, 1)?,
                    tensor(args, 0)?,
                    padding_idx,
                    false,
                    false,
                )?)
            })
        }
        T::LayerNorm => {
            let ns = ints(&at[0])?;
            let eps = float(&at[1])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_layer_norm(
                    ns.as_slice(),
                    opt_tensor(args, 1)?,
                    opt_tensor(args, 2)?,
                    eps,
                    true,
                )?)
            })
        }
        T::RmsNorm => {
            let ns = ints(&at[0])?;
            let eps = opt_float(&at[1])?;
            Box::new(move |args| {
                one(tensor(args, 0)?.f_rms_norm(ns.as_slice(), opt_tensor(args, 1)?, eps)?)
            })
        }
        T::Gelu => {
            let approximate = match &at[0] {
                Attr::Str(s) => s.clone(),
                other => return Err(format!("approximate must be a string, got {other:?}")),
            };
            Box::new(move |args| one(tensor(args, 0)?.f_gelu(&approximate)?))
        }
        T::Silu => Box::new(move |args| one(tensor(args, 0)?.f_silu()?)),
        T::Sigmoid => {
            Box::new(move |args| one(tensor(args, 0)?.f_sigmoid()?.f_to_kind(out_kind)?))
        }
        T::Relu => Box::new(move |args| one(tensor(args, 0)?.f_relu()?)),
        // Shape ops: the output shape is known from the trace, so -1 and dim wrapping are resolved.
        T::Reshape | T::View | T::Unsqueeze => {
            Box::new(move |args| one(tensor(args, 0)?.f_reshape(out_shape.as_slice())?))
        }
        T::Permute => {
            let dims = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_permute(dims.as_slice())?))
        }
        T::Transpose => {
            let (d0, d1) = (int(&at[0])?, int(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_transpose(d0, d1)?))
        }
        T::To => {
            let dt = opt_dtype_attr(&at[0])?.map(kind);
            let dev = match &at[1] {
                Attr::None => None,
                a => Some(device(device_attr(a)?)),
            };
            Box::new(move |args| {
                let mut r = tensor(args, 0)?.shallow_clone();
                if let Some(d) = dev {
                    r = r.f_to_device(d)?;
                }
                if let Some(k) = dt {
                    r = r.f_to_kind(k)?;
                }
                one(r)
            })
        }
        _ => return compile_torch_eager(t, bsym, out0, out_shape, out_kind),
    })
}

/// The unary ATen call of a torch-level op (PyTorch's own promotion included).
fn torch_unary(t: TorchOp, a: &Tensor) -> KResult<Tensor> {
    use TorchOp as T;
    Ok(match t {
        T::Abs => a.f_abs()?,
        T::Neg => a.f_neg()?,
        T::Exp => a.f_exp()?,
        T::Expm1 => a.f_expm1()?,
        T::Log => a.f_log()?,
        T::Log1p => a.f_log1p()?,
        T::Log2 => a.f_log2()?,
        T::Sqrt => a.f_sqrt()?,
        T::Rsqrt => a.f_rsqrt()?,
        T::Reciprocal => a.f_reciprocal()?,
        T::Sin => a.f_sin()?,
        T::Cos => a.f_cos()?,
        T::Tan => a.f_tan()?,
        T::Tanh => a.f_tanh()?,
        T::Erf => a.f_erf()?,
        T::Floor => a.f_floor()?,
        T::Ceil => a.f_ceil()?,
        T::Round => a.f_round()?,
        T::Trunc => a.f_trunc()?,
        T::Sign => a.f_sign()?,
        T::IsFinite => a.f_isfinite()?,
        T::BitwiseNot => a.f_bitwise_not()?,
        T::LogicalNot => a.f_logical_not()?,
        _ => return Err(KernelError(format!("ltorch.{} is not unary", t.name()))),
    })
}

const UNARY: &[TorchOp] = &[
    TorchOp::Abs,
    TorchOp::Neg,
    TorchOp::Exp,
    TorchOp::Expm1,
    TorchOp::Log,
    TorchOp::Log1p,
    TorchOp::Log2,
    TorchOp::Sqrt,
    TorchOp::Rsqrt,
    TorchOp::Reciprocal,
    TorchOp::Sin,
    TorchOp::Cos,
    TorchOp::Tan,
    TorchOp::Tanh,
    TorchOp::Erf,
    TorchOp::Floor,
    TorchOp::Ceil,
    TorchOp::Round,
    TorchOp::Trunc,
    TorchOp::Sign,
    TorchOp::IsFinite,
    TorchOp::BitwiseNot,
    TorchOp::LogicalNot,
];

/// The prim whose ATen call has the semantics of a binary torch-level op (ATen promotes and
/// broadcasts by itself).
fn binary_as_prim(t: TorchOp) -> Option<PrimOp> {
    use TorchOp as T;
    Some(match t {
        T::Add => PrimOp::Add,
        T::Sub => PrimOp::Sub,
        T::Mul => PrimOp::Mul,
        T::Pow => PrimOp::Pow,
        T::Remainder => PrimOp::Remainder,
        T::Atan2 => PrimOp::Atan2,
        T::Maximum => PrimOp::Maximum,
        T::Minimum => PrimOp::Minimum,
        T::Eq => PrimOp::Eq,
        T::Ne => PrimOp::Ne,
        T::Lt => PrimOp::Lt,
        T::Le => PrimOp::Le,
        T::Gt => PrimOp::Gt,
        T::Ge => PrimOp::Ge,
        T::BitwiseAnd => PrimOp::BitwiseAnd,
        T::BitwiseOr => PrimOp::BitwiseOr,
        T::BitwiseXor => PrimOp::BitwiseXor,
        _ => return None,
    })
}

fn opt_dims(a: &Attr) -> std::result::Result<Option<Vec<i64>>, String> {
    match a {
        Attr::None => Ok(None),
        Attr::Ints(v) if v.is_empty() => Ok(None),
        _ => ints(a).map(Some),
    }
}

fn num_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
        Num::Bool(b) => b as i64 as f64,
    }
}

fn opt_num(a: &Attr) -> std::result::Result<Option<Num>, String> {
    match a {
        Attr::None => Ok(None),
        _ => num_attr(a).map(Some),
    }
}

/// A binary torch-level op on two operands, as ATen computes it.
fn torch_binary(
    t: TorchOp,
    x: Operand<'_>,
    y: Operand<'_>,
    number_out: Option<NumberType>,
) -> KResult<RtValue> {
    let prim = binary_as_prim(t).unwrap_or(PrimOp::Add);
    let r = match (t, x, y) {
        // True division whatever the dtypes (ATen's div promotes integers to float).
        (TorchOp::Div, Operand::T(a), Operand::T(b)) => a.f_div(b)?,
        (TorchOp::Div, Operand::T(a), Operand::N(n)) => a.f_div_scalar(n.scalar())?,
        (TorchOp::Div, Operand::N(n), Operand::T(b)) => {
            let k = if crate::convert::dtype(b.kind()).is_some_and(|d| d.is_inexact()) {
                b.kind()
            } else {
                tch::Kind::Float
            };
            n.tensor(k)?.f_div(b)?
        }
        (_, Operand::T(a), Operand::T(b)) => binary_tensors(prim, a, b)?,
        (_, Operand::T(a), Operand::N(n)) => binary_tensor_number(prim, a, n, false)?,
        (_, Operand::N(n), Operand::T(b)) => binary_tensor_number(prim, b, n, true)?,
        (_, Operand::N(a), Operand::N(b)) => {
            let (ta, tb) = (a.tensor(a.natural_kind())?, b.tensor(b.natural_kind())?);
            let r = if t == TorchOp::Div {
                ta.f_div(&tb)?
            } else {
                binary_tensors(prim, &ta, &tb)?
            };
            return to_number(&r, number_out.unwrap_or(NumberType::Float));
        }
    };
    Ok(RtValue::Tensor(r))
}

/// Eager kernels for the torch-level ops outside [`DIRECT_OPS`] (used by
/// [`TorchExecutor::eager`]): each is the ATen call PyTorch makes for it.
/// `ltorch.adamw` through `torch._fused_adamw_` (one call per dtype). Donated (`inplace`)
/// contiguous buffers are updated in place and returned; otherwise the step works on copies.
fn adamw_kernel(at: &[Attr]) -> std::result::Result<Kernel, String> {
    let h = crate::shim::AdamwHyper {
        lr: float(&at[0])?,
        beta1: float(&at[1])?,
        beta2: float(&at[2])?,
        eps: float(&at[3])?,
        weight_decay: float(&at[4])?,
    };
    let inplace = boolean(&at[5])?;
    Ok(Box::new(move |args| {
        let lists = [
            tensor_list(args, 0)?,
            tensor_list(args, 1)?,
            tensor_list(args, 2)?,
            tensor_list(args, 3)?,
        ];
        let step = tensor(args, 4)?;
        // The buffers the step writes: the donated tensors themselves when contiguous, else
        // contiguous copies (copied back below when donated).
        let mut work: [Vec<Tensor>; 3] = Default::default();
        for (k, w) in [0usize, 2, 3].into_iter().zip(work.iter_mut()) {
            for t in &lists[k] {
                w.push(if inplace && t.is_contiguous() {
                    t.shallow_clone()
                } else {
                    contiguous_copy(t)?
                });
            }
        }
        let grads: Vec<Tensor> = lists[1]
            .iter()
            .map(|g| g.f_contiguous())
            .collect::<Result<_, _>>()?;
        let mut kinds: Vec<tch::Kind> = Vec::new();
        for p in &lists[0] {
            if !kinds.contains(&p.kind()) {
                kinds.push(p.kind());
            }
        }
        for kd in kinds {
            let idx: Vec<usize> = (0..lists[0].len())
                .filter(|&i| lists[0][i].kind() == kd)
                .collect();
            fn pick<'a>(ts: &'a [Tensor], idx: &[usize]) -> Vec<&'a Tensor> {
                idx.iter().map(|&i| &ts[i]).collect()
            }
            crate::shim::fused_adamw_(
                &pick(&work[0], &idx),
                &pick(&grads, &idx),
                &pick(&work[1], &idx),
                &pick(&work[2], &idx),
                step,
                h,
            )?;
        }
        let mut out = Outputs::new();
        for (k, w) in [0usize, 2, 3].into_iter().zip(work) {
            for (t, new) in lists[k].iter().zip(w) {
                if inplace {
                    if new.data_ptr() != t.data_ptr() {
                        t.shallow_clone().f_copy_(&new)?;
                    }
                    out.push(RtValue::Tensor(t.shallow_clone()));
                } else {
                    out.push(RtValue::Tensor(new));
                }
            }
        }
        Ok(out)
    }))
}

fn compile_torch_eager(
    t: TorchOp,
    bsym: &BoundSymbol,
    out0: ValueType,
    out_shape: Vec<i64>,
    out_kind: tch::Kind,
) -> std::result::Result<Kernel, String> {
    use TorchOp as T;
    let at = &bsym.attrs;
    let number_out = match &out0 {
        ValueType::Number(n) => Some(*n),
        ValueType::Tensor(_) => None,
    };
    let out_device = match &out0 {
        ValueType::Tensor(m) => device(m.device),
        ValueType::Number(_) => tch::Device::Cpu,
    };
    if UNARY.contains(&t) {
        return Ok(Box::new(move |args| one(torch_unary(t, tensor(args, 0)?)?)));
    }
    if t == T::Div || binary_as_prim(t).is_some() {
        let alpha = match (t, at.first()) {
            (T::Add | T::Sub, Some(a)) if !matches!(a, Attr::None) => Some(num_attr(a)?),
            _ => None,
        };
        return Ok(Box::new(move |args| {
            let (x, y) = (operand(args, 0)?, operand(args, 1)?);
            // alpha scales the second operand first (ATen fuses it; the difference is rounding).
            let scaled;
            let y = match (alpha, y) {
                (Some(al), Operand::T(b)) => {
                    scaled = b.f_mul_scalar(al.scalar())?;
                    Operand::T(&scaled)
                }
                (Some(al), Operand::N(n)) => Operand::N(match (n, al) {
                    (Num::Int(a), Num::Int(b)) => Num::Int(a * b),
                    (n, al) => Num::Float(num_f64(n) * num_f64(al)),
                }),
                (None, y) => y,
            };
            Ok(smallvec![torch_binary(t, x, y, number_out)?])
        }));
    }
    Ok(match t {
        T::Where => Box::new(move |args| {
            one(where_op(
                tensor(args, 0)?,
                operand(args, 1)?,
                operand(args, 2)?,
                out_kind,
            )?)
        }),
        T::MaskedFill => Box::new(move |args| {
            let (a, m) = (tensor(args, 0)?, tensor(args, 1)?);
            one(match operand(args, 2)? {
                Operand::T(v) => a.f_masked_fill_tensor(m, v)?,
                Operand::N(n @ Num::Bool(_)) => {
                    a.f_masked_fill_tensor(m, &n.tensor(tch::Kind::Bool)?)?
                }
                Operand::N(n) => a.f_masked_fill(m, n.scalar())?,
            })
        }),
        T::Clamp => {
            let (lo, hi) = (opt_num(&at[0])?, opt_num(&at[1])?);
            Box::new(move |args| {
                let mut r = tensor(args, 0)?.shallow_clone();
                if let Some(lo) = lo {
                    r = r.f_clamp_min(lo.scalar())?;
                }
                if let Some(hi) = hi {
                    r = r.f_clamp_max(hi.scalar())?;
                }
                one(r)
            })
        }
        T::Sum | T::Mean => {
            let dims = opt_dims(&at[0])?;
            let keepdim = boolean(&at[1])?;
            let dt = opt_dtype_attr(&at[2])?.map(kind);
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let d = dims.as_deref();
                one(if t == T::Sum {
                    a.f_sum_dim_intlist(d, keepdim, dt)?
                } else {
                    a.f_mean_dim(d, keepdim, dt)?
                })
            })
        }
        T::Amax | T::Amin => {
            let dims = opt_dims(&at[0])?.unwrap_or_default();
            let keepdim = boolean(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Amax {
                    a.f_amax(dims.as_slice(), keepdim)?
                } else {
                    a.f_amin(dims.as_slice(), keepdim)?
                })
            })
        }
        T::Var | T::Std => {
            let dims = opt_dims(&at[0])?;
            let correction = float(&at[1])?;
            let keepdim = boolean(&at[2])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                let d = dims.as_deref();
                let c = Scalar::float(correction);
                one(if t == T::Var {
                    a.f_var_correction(d, c, keepdim)?
                } else {
                    a.f_std_correction(d, c, keepdim)?
                })
            })
        }
        T::Argmax | T::Argmin => {
            let dim = opt_int(&at[0])?;
            let keepdim = boolean(&at[1])?;
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(if t == T::Argmax {
                    a.f_argmax(dim, keepdim)?
                } else {
                    a.f_argmin(dim, keepdim)?
                })
            })
        }
        T::Dropout => {
            let (p, training) = (float(&at[0])?, boolean(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_dropout(p, training)?))
        }
        T::Flatten => {
            let (s, e) = (int(&at[0])?, int(&at[1])?);
            Box::new(move |args| one(tensor(args, 0)?.f_flatten(s, e)?))
        }
        T::Squeeze => {
            let dims = match &at[0] {
                Attr::None => None,
                a => Some(ints(a)?),
            };
            Box::new(move |args| {
                let a = tensor(args, 0)?;
                one(match &dims {
                    None => a.f_squeeze()?,
                    Some(d) => a.f_squeeze_dims(d.as_slice())?,
                })
            })
        }
        T::Expand => {
            let shape = ints(&at[0])?;
            Box::new(move |args| one(tensor(args, 0)?.f_expand(shape.as_slice(), false)?))
        }
        T::Split => {
            let dim = int(&at[1])?;
            match &at[0] {
                Attr::Int(size) => {
                    let size = *size;
                    Box::new(move |args| {
                        Ok(tensor(args, 0)?
                            .f_split(size, dim)?
                            .into_iter()
                            .map(RtValue::Tensor)
                            .collect())
                    })
                }
                Attr::Ints(sections) => {
                    let sections = sections.clone();
                    Box::new(move |args| {
                        Ok(tensor(args, 0)?
                            .f_split_with_sizes(sections.as_slice(), dim)?
                            .into_iter()
                            .map(RtValue::Tensor)
                            .collect())
                    })
                }
                other => {
                    return Err(format!(
                        "split_size_or_sections must be an int or ints, got {other:?}"
                    ))
                }
            }
        }
        T::Narrow => {
            let (dim, start, len) = (int(&at[0])?, int(&at[1])?, int(&at[2])?);
            Box::new(move |args| one(tensor(args, 0)?.f_narrow(dim, start, len)?))
        }
        T::Cat | T::Stack => {
            let dim = int(&at[0])?;
            Box::new(move |args| {
                let ts = tensor_list(args, 0)?;
                one(if t == T::Cat {
                    Tensor::f_cat(&ts, dim)?
                } else {
                    Tensor::f_stack(&ts, dim)?
                })
            })
        }
        // Creation: PyTorch's dtype and device inference is in the decomposition (and checked
        // against PyTorch in thunder-ir's tests); the kernel creates what the trace says.
        T::Zeros => Box::new(move |_| {
            one(Tensor::f_zeros(
                out_shape.as_slice(),
                (out_kind, out_device),
            )?)
        }),
        T::Ones => Box::new(move |_| {
            one(Tensor::f_ones(
                out_shape.as_slice(),
                (out_kind, out_device),
            )?)
        }),
        T::Full => {
            let value = num_attr(&at[1])?;
            Box::new(move |_| {
                one(Tensor::f_full(
                    out_shape.as_slice(),
                    value.scalar(),
                    (out_kind, out_device),
                )?)
            })
        }
        T::Arange => {
            let (start, end, step) = (num_attr(&at[0])?, num_attr(&at[1])?, num_attr(&at[2])?);
            Box::new(move |_| {
                one(Tensor::f_arange_start_step(
                    start.scalar(),
                    end.scalar(),
                    step.scalar(),
                    (out_kind, out_device),
                )?)
            })
        }
        other => return Err(format!("ltorch.{} has no direct kernel", other.name())),
    })
}
