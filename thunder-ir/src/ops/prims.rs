//! The prim set and its meta functions.
//!
//! Prims are the contract with executors: every executor can be asked to run any of them, so
//! they are few, explicit and strict. Unlike torch-level ops they do no type promotion and no
//! broadcasting: tensor operands of an elementwise prim have one shape and one dtype (numbers may
//! be mixed in), and the torch-level layer inserts `broadcast_in_dim` and
//! `convert_element_type` where PyTorch would promote or broadcast implicitly.

use super::info::{Autocast, Family, OpInfo};
use super::{
    attr_bool, attr_device, attr_dtype, attr_float, attr_int, attr_int_lists, attr_ints,
    attr_opt_float, attr_opt_int, op_table, sizes, AttrKind as A, ParamKind as P, Signature,
};
use crate::device::Device;
use crate::dtype::{Category, DType, NumberType};
use crate::error::{IrError, Result};
use crate::shape::{canonicalize_dim, canonicalize_dims, Shape};
use crate::trace::Attr;
use crate::value::{TensorMeta, ValueType};

// The rows' shorthands: the family constructors of the op table.
const U: OpInfo = OpInfo::unary();
const B: OpInfo = OpInfo::binary();
const W: OpInfo = OpInfo::ternary();
const E: OpInfo = OpInfo::elementwise();
const SH: OpInfo = OpInfo::shape();
const R: OpInfo = OpInfo::reduction();
const IR: OpInfo = OpInfo::index_reduction();
const C: OpInfo = OpInfo::creation();
const IX: OpInfo = OpInfo::indexing();
const NN: OpInfo = OpInfo::nn();
const M: OpInfo = OpInfo::memory();
const LOWER: Autocast = Autocast::LowerPrecision;

op_table! {
    /// A primitive operation. Each row declares the prim's properties ([`OpInfo`]): its family
    /// and class, whether grad has a VJP rule (`vjp`), whether the fusion executor has a formula
    /// (`fuse`), what autocast does with it.
    pub enum PrimOp in "prims" {
        // unary elementwise
        Abs = "abs" => U.vjp().fuse().recompute(),
        Neg = "neg" => U.vjp().fuse().recompute(),
        Exp = "exp" => U.vjp().fuse().recompute(),
        Exp2 = "exp2" => U.vjp().fuse().recompute(),
        Expm1 = "expm1" => U.vjp().fuse().recompute(),
        Log = "log" => U.vjp().fuse().recompute(),
        Log1p = "log1p" => U.vjp().fuse().recompute(),
        Log2 = "log2" => U.vjp().fuse().recompute(),
        Log10 = "log10" => U.vjp().fuse().recompute(),
        Sqrt = "sqrt" => U.vjp().fuse().recompute(),
        Rsqrt = "rsqrt" => U.vjp().fuse().recompute(),
        Reciprocal = "reciprocal" => U.vjp().fuse().recompute(),
        Sin = "sin" => U.vjp().fuse().recompute(),
        Cos = "cos" => U.vjp().fuse().recompute(),
        Tan = "tan" => U.vjp().fuse().recompute(),
        Asin = "asin" => U.vjp().fuse().recompute(),
        Acos = "acos" => U.vjp().fuse().recompute(),
        Atan = "atan" => U.vjp().fuse().recompute(),
        Sinh = "sinh" => U.vjp().fuse().recompute(),
        Cosh = "cosh" => U.vjp().fuse().recompute(),
        Tanh = "tanh" => U.vjp().fuse().recompute(),
        Asinh = "asinh" => U.vjp().fuse().recompute(),
        Acosh = "acosh" => U.vjp().fuse().recompute(),
        Atanh = "atanh" => U.vjp().fuse().recompute(),
        Erf = "erf" => U.vjp().fuse().recompute(),
        Erfc = "erfc" => U.vjp().fuse().recompute(),
        Erfinv = "erfinv" => U.vjp().fuse().recompute(),
        Lgamma = "lgamma" => U.vjp().fuse().recompute(),
        Digamma = "digamma" => U.vjp().recompute(),
        Floor = "floor" => U.vjp().fuse().recompute(),
        Ceil = "ceil" => U.vjp().fuse().recompute(),
        Round = "round" => U.vjp().fuse().recompute(),
        Trunc = "trunc" => U.vjp().fuse().recompute(),
        Sign = "sign" => U.vjp().fuse().recompute(),
        Signbit = "signbit" => U.fuse().recompute(),
        IsFinite = "isfinite" => U.fuse().recompute(),
        BitwiseNot = "bitwise_not" => U.fuse().recompute(),
        Real = "real" => U.recompute(),
        Imag = "imag" => U.recompute(),
        Polygamma = "polygamma" => E.vjp(),
        // binary elementwise
        Add = "add" => B.vjp().fuse().recompute(),
        Sub = "sub" => B.vjp().fuse().recompute(),
        Mul = "mul" => B.vjp().fuse().recompute(),
        Div = "div" => B.vjp().fuse().recompute(),
        Remainder = "remainder" => B.vjp().fuse().recompute(),
        Fmod = "fmod" => B.vjp().fuse().recompute(),
        Pow = "pow" => B.vjp().fuse().recompute(),
        Atan2 = "atan2" => B.vjp().fuse().recompute(),
        Maximum = "maximum" => B.vjp().fuse().recompute(),
        Minimum = "minimum" => B.vjp().fuse().recompute(),
        Eq = "eq" => B.fuse().recompute(),
        Ne = "ne" => B.fuse().recompute(),
        Lt = "lt" => B.fuse().recompute(),
        Le = "le" => B.fuse().recompute(),
        Gt = "gt" => B.fuse().recompute(),
        Ge = "ge" => B.fuse().recompute(),
        BitwiseAnd = "bitwise_and" => B.fuse().recompute(),
        BitwiseOr = "bitwise_or" => B.fuse().recompute(),
        BitwiseXor = "bitwise_xor" => B.fuse().recompute(),
        ShiftLeft = "shift_left" => B.fuse().recompute(),
        ShiftRight = "shift_right" => B.fuse().recompute(),
        // ternary
        Where = "where" => W.vjp().fuse().recompute(),
        // data movement and shape
        ConvertElementType = "convert_element_type" => E.vjp().fuse().recompute(),
        DevicePut = "device_put" => SH.vjp(),
        BroadcastInDim = "broadcast_in_dim" => SH.vjp().fuse().recompute(),
        Reshape = "reshape" => SH.vjp().fuse().recompute(),
        Transpose = "transpose" => SH.vjp().fuse().recompute(),
        Slice = "slice" => SH.vjp().fuse().recompute(),
        Squeeze = "squeeze" => SH.vjp().fuse().recompute(),
        Cat = "cat" => SH.vjp().fuse(),
        Pad = "pad" => SH.vjp().fuse(),
        Flip = "flip" => SH.vjp().fuse(),
        // reductions
        Sum = "sum" => R.vjp().fuse().recompute(),
        Amax = "amax" => R.vjp().fuse().recompute(),
        Amin = "amin" => R.vjp().fuse().recompute(),
        Prod = "prod" => R.vjp().fuse().recompute(),
        Var = "var" => R.vjp().recompute(),
        Argmax = "argmax" => IR,
        Argmin = "argmin" => IR,
        // creation
        Full = "full" => C.fuse().recompute(),
        Iota = "iota" => C.fuse().recompute(),
        Uniform = "uniform" => C.random(),
        Randn = "randn" => C.random(),
        // indexing
        Take = "take" => IX.vjp(),
        TakeAlongAxis = "take_along_axis" => IX.vjp(),
        IndexAdd = "index_add" => IX.vjp(),
        ScatterAdd = "scatter_add" => IX.vjp(),
        Gather = "gather" => IX.vjp(),
        // linear algebra and nn
        Matmul = "matmul" => NN.vjp().autocast(LOWER),
        Linear = "linear" => NN.vjp().autocast(LOWER),
        Embedding = "embedding" => NN.vjp(),
        EmbeddingBackward = "embedding_backward" => NN.vjp(),
        // memory
        Copy_ = "copy_" => M,
        // ATen operators called by name (`super::aten`)
        Aten = "aten" => OpInfo::opaque().vjp(),
        AtenVjp = "aten_vjp" => OpInfo::opaque(),
    }
}

/// The coarse class of a prim, shared by its signature and meta function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimClass {
    /// One operand, elementwise.
    Unary,
    /// Two operands, elementwise.
    Binary,
    /// `where`.
    Ternary,
    /// Reductions over `dims`.
    Reduction,
    /// Everything else.
    Other,
}

impl PrimOp {
    /// The class of the prim (from its row of the op table).
    pub fn class(self) -> PrimClass {
        self.info().class
    }

    /// Operands and attributes.
    pub fn signature(self) -> Signature {
        use PrimOp::*;
        let s = |operands, attrs| Signature {
            operands,
            attrs,
            num_outputs: Some(1),
        };
        match self.class() {
            PrimClass::Unary => return s(&[("a", P::TensorOrNumber)], &[]),
            PrimClass::Binary => {
                return s(&[("a", P::TensorOrNumber), ("b", P::TensorOrNumber)], &[])
            }
            PrimClass::Ternary => {
                return s(
                    &[
                        ("pred", P::TensorOrNumber),
                        ("a", P::TensorOrNumber),
                        ("b", P::TensorOrNumber),
                    ],
                    &[],
                )
            }
            PrimClass::Reduction if self == Var => {
                return s(
                    &[("a", P::Tensor)],
                    &[("dims", A::Ints), ("correction", A::Float)],
                )
            }
            PrimClass::Reduction => return s(&[("a", P::Tensor)], &[("dims", A::Ints)]),
            PrimClass::Other => {}
        }
        match self {
            ConvertElementType => s(&[("a", P::TensorOrNumber)], &[("dtype", A::DType)]),
            DevicePut => s(&[("a", P::Tensor)], &[("device", A::Device)]),
            BroadcastInDim => s(
                &[("a", P::Tensor)],
                &[("shape", A::Ints), ("broadcast_dimensions", A::Ints)],
            ),
            Reshape => s(&[("a", P::Tensor)], &[("shape", A::Ints)]),
            Transpose => s(&[("a", P::Tensor)], &[("permutation", A::Ints)]),
            Slice => s(
                &[("a", P::Tensor)],
                &[
                    ("start_indices", A::Ints),
                    ("end_indices", A::Ints),
                    ("strides", A::Ints),
                ],
            ),
            Squeeze => s(&[("a", P::Tensor)], &[("dims", A::Ints)]),
            Cat => s(&[("tensors", P::TensorList)], &[("dim", A::Int)]),
            Pad => s(
                &[("a", P::Tensor)],
                &[
                    ("padding_value", A::Number),
                    ("padding_config", A::IntLists),
                ],
            ),
            Flip => s(&[("a", P::Tensor)], &[("dims", A::Ints)]),
            Argmax | Argmin => s(&[("a", P::Tensor)], &[("dim", A::OptInt)]),
            Full => s(
                &[],
                &[
                    ("shape", A::Ints),
                    ("fill_value", A::Number),
                    ("device", A::Device),
                    ("dtype", A::DType),
                ],
            ),
            Iota => s(
                &[],
                &[
                    ("length", A::Int),
                    ("start", A::Number),
                    ("step", A::Number),
                    ("device", A::Device),
                    ("dtype", A::DType),
                ],
            ),
            Uniform => s(
                &[],
                &[
                    ("shape", A::Ints),
                    ("minval", A::Float),
                    ("maxval", A::Float),
                    ("device", A::Device),
                    ("dtype", A::DType),
                ],
            ),
            Randn => s(
                &[],
                &[
                    ("shape", A::Ints),
                    ("device", A::Device),
                    ("dtype", A::DType),
                ],
            ),
            Polygamma => s(&[("a", P::Tensor)], &[("n", A::Int)]),
            Take | TakeAlongAxis | Gather => s(
                &[("a", P::Tensor), ("index", P::Tensor)],
                &[("dim", A::Int)],
            ),
            IndexAdd | ScatterAdd => s(
                &[("a", P::Tensor), ("index", P::Tensor), ("value", P::Tensor)],
                &[("dim", A::Int)],
            ),
            Matmul => s(&[("a", P::Tensor), ("b", P::Tensor)], &[]),
            Linear => s(
                &[("a", P::Tensor), ("w", P::Tensor), ("bias", P::OptTensor)],
                &[],
            ),
            Embedding => s(
                &[("a", P::Tensor), ("weight", P::Tensor)],
                &[
                    ("padding_idx", A::OptInt),
                    ("max_norm", A::OptFloat),
                    ("norm_type", A::Float),
                    ("scale_grad_by_freq", A::Bool),
                    ("sparse", A::Bool),
                ],
            ),
            EmbeddingBackward => s(
                &[("grad", P::Tensor), ("indices", P::Tensor)],
                &[
                    ("num_weights", A::Int),
                    ("padding_idx", A::OptInt),
                    ("scale_grad_by_freq", A::Bool),
                    ("sparse", A::Bool),
                ],
            ),
            Copy_ => s(&[("copy_from", P::Tensor), ("copy_to", P::Tensor)], &[]),
            Aten => Signature {
                operands: &[("tensors", P::TensorList)],
                attrs: &[("op", A::Str), ("args", A::Str), ("out", A::Str)],
                num_outputs: None,
            },
            AtenVjp => Signature {
                operands: &[("tensors", P::TensorList)],
                attrs: &[
                    ("op", A::Str),
                    ("args", A::Str),
                    ("out", A::Str),
                    ("cts", A::Ints),
                    ("wrt", A::Ints),
                ],
                num_outputs: None,
            },
            _ => s(&[], &[]),
        }
    }

    /// Whether the prim draws random numbers (never deduplicated or reordered by passes).
    pub fn is_random(self) -> bool {
        self.info().random
    }
    /// Whether the prim writes into an operand.
    pub fn is_inplace(self) -> bool {
        self.info().inplace
    }
}

/// An operand as meta functions see it.
#[derive(Debug, Clone, Copy)]
pub enum ArgMeta<'a> {
    /// A tensor.
    Tensor(&'a TensorMeta),
    /// A number value or literal.
    Number(NumberType),
    /// `None`.
    None,
}

/// Meta function of a prim: output types from operand types and attributes, or a typed error.
///
/// `args` has one entry per operand; a `TensorList` operand is passed as consecutive entries
/// (only `cat`, `aten` and `aten_vjp` have one, and they have no other operands).
///
/// Operand and output shapes must pass [`Shape::checked_numel`] (element counts within `i64`);
/// one that does not is an [`IrError::Overflow`].
pub fn meta(op: PrimOp, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<Vec<ValueType>> {
    let name = format!("prims.{}", op.name());
    let n = name.as_str();
    check_operand_shapes(n, args)?;
    match op {
        PrimOp::Aten => return super::aten::aten_meta(n, args, attrs),
        PrimOp::AtenVjp => return super::aten::aten_vjp_meta(n, args, attrs),
        _ => {}
    }
    let out = match op.class() {
        PrimClass::Unary => unary(op, n, args)?,
        PrimClass::Binary => binary(op, n, args)?,
        PrimClass::Ternary => ternary(n, args)?,
        PrimClass::Reduction => reduction(op, n, args, attrs)?,
        PrimClass::Other => other(op, n, args, attrs)?,
    };
    check_output_shape(n, &out)?;
    Ok(vec![out])
}

/// Operands made by a builder or a parser already pass; this is for direct callers, so that the
/// meta functions below may multiply and add operand sizes without overflow checks.
pub(crate) fn check_operand_shapes(op: &str, args: &[ArgMeta<'_>]) -> Result<()> {
    for (i, a) in args.iter().enumerate() {
        if let ArgMeta::Tensor(t) = a {
            t.shape.check_numel(op, &format!("operand {i} of shape"))?;
        }
    }
    Ok(())
}

/// Outputs are where sizes from attributes (`full`, `reshape`, `broadcast_in_dim`, `pad`) or
/// sums and products of operand sizes (`cat`, `matmul`) enter a trace: checking them here keeps
/// every shape of a trace within `i64` elements.
pub(crate) fn check_output_shape(op: &str, out: &ValueType) -> Result<()> {
    if let ValueType::Tensor(t) = out {
        t.shape.check_numel(op, "the result shape")?;
    }
    Ok(())
}

fn tensor<'a>(op: &str, args: &[ArgMeta<'a>], i: usize, arg: &str) -> Result<&'a TensorMeta> {
    match args.get(i) {
        Some(ArgMeta::Tensor(t)) => Ok(t),
        Some(ArgMeta::Number(n)) => Err(IrError::invalid(
            op,
            format!("{arg} must be a tensor, got a {n}"),
        )),
        _ => Err(IrError::invalid(op, format!("{arg} must be a tensor"))),
    }
}

fn out_tensor(shape: Shape, dtype: DType, device: Device) -> ValueType {
    ValueType::Tensor(TensorMeta {
        shape,
        dtype,
        device,
        requires_grad: false,
    })
}

fn like(t: &TensorMeta, dtype: DType) -> ValueType {
    out_tensor(t.shape.clone(), dtype, t.device)
}

fn require(op: &str, ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(IrError::invalid(op, msg()))
    }
}

fn same_device(op: &str, tensors: &[(&str, &TensorMeta)]) -> Result<()> {
    if let Some((first_name, first)) = tensors.first() {
        for (name, t) in &tensors[1..] {
            require(op, t.device == first.device, || {
                format!(
                    "{first_name} is on {} but {name} is on {}; move them to one device",
                    first.device, t.device
                )
            })?;
        }
    }
    Ok(())
}

/// Which dtype categories a unary prim accepts, and its result dtype.
fn unary_rule(op: PrimOp, d: DType) -> std::result::Result<DType, &'static str> {
    use PrimOp::*;
    let c = d.category();
    match op {
        Abs => match c {
            Category::Bool => Err("a numeric dtype"),
            _ => Ok(d.to_real()),
        },
        Neg => (c != Category::Bool)
            .then_some(d)
            .ok_or("a numeric dtype (use logical_not for bool)"),
        Exp | Expm1 | Log | Log1p | Log2 | Log10 | Sqrt | Rsqrt | Reciprocal | Sin | Cos | Tan
        | Asin | Acos | Atan | Sinh | Cosh | Tanh | Asinh | Acosh | Atanh | Exp2 => d
            .is_inexact()
            .then_some(d)
            .ok_or("a floating or complex dtype"),
        Erf | Erfc | Erfinv | Lgamma | Digamma | Floor | Ceil | Round | Trunc | Signbit => {
            let r = if op == Signbit { DType::Bool } else { d };
            d.is_float().then_some(r).ok_or("a floating dtype")
        }
        Sign => (c == Category::Integer || c == Category::Float)
            .then_some(d)
            .ok_or("an integer or floating dtype"),
        IsFinite => Ok(DType::Bool),
        BitwiseNot => (c <= Category::Integer)
            .then_some(d)
            .ok_or("a bool or integer dtype"),
        Real | Imag => d.is_complex().then(|| d.to_real()).ok_or("a complex dtype"),
        _ => Err("(not a unary prim)"),
    }
}

fn unary(op: PrimOp, n: &str, args: &[ArgMeta<'_>]) -> Result<ValueType> {
    match args.first() {
        Some(ArgMeta::Tensor(t)) => {
            let d = unary_rule(op, t.dtype).map_err(|want| {
                IrError::invalid(n, format!("a must have {want}, got {}", t.dtype))
            })?;
            Ok(like(t, d))
        }
        Some(ArgMeta::Number(num)) => {
            let d = unary_rule(op, num.default_dtype())
                .map_err(|want| IrError::invalid(n, format!("a must have {want}, got a {num}")))?;
            Ok(ValueType::Number(NumberType::of_dtype(d)))
        }
        _ => Err(IrError::invalid(n, "a must be a tensor or a number")),
    }
}

/// Binary and ternary elementwise prims: tensors share shape, dtype and device; numbers may be
/// mixed in if their category does not exceed the tensors'. Returns the common tensor (if any).
fn elementwise_operands<'a>(
    n: &str,
    names: &[&str],
    args: &[ArgMeta<'a>],
) -> Result<(Option<&'a TensorMeta>, Option<NumberType>)> {
    let mut first: Option<(&str, &TensorMeta)> = None;
    let mut number: Option<NumberType> = None;
    for (name, a) in names.iter().zip(args) {
        match a {
            ArgMeta::Tensor(t) => {
                if let Some((fname, f)) = first {
                    require(n, t.shape == f.shape, || {
                        format!("{fname} has shape {} but {name} has shape {}; prims do not broadcast (use broadcast_in_dim)", f.shape, t.shape)
                    })?;
                    require(n, t.dtype == f.dtype, || {
                        format!("{fname} has dtype {} but {name} has dtype {}; prims do not promote (use convert_element_type)", f.dtype, t.dtype)
                    })?;
                    same_device(n, &[(fname, f), (name, t)])?;
                } else {
                    first = Some((name, t));
                }
            }
            ArgMeta::Number(k) => number = Some(number.map_or(*k, |m| m.max(*k))),
            ArgMeta::None => {
                return Err(IrError::invalid(
                    n,
                    format!("{name} must be a tensor or a number, got None"),
                ))
            }
        }
    }
    if let (Some((_, t)), Some(k)) = (first, number) {
        require(n, k.category() <= t.dtype.category(), || {
            format!(
                "a {k} operand cannot be combined with a {} tensor without promotion",
                t.dtype
            )
        })?;
    }
    Ok((first.map(|(_, t)| t), number))
}

fn binary(op: PrimOp, n: &str, args: &[ArgMeta<'_>]) -> Result<ValueType> {
    use PrimOp::*;
    let (t, num) = elementwise_operands(n, &["a", "b"], args)?;
    let d = match (t, num) {
        (Some(t), _) => t.dtype,
        (None, Some(k)) => k.default_dtype(),
        (None, None) => return Err(IrError::invalid(n, "expected two operands")),
    };
    let c = d.category();
    let ok = match op {
        BitwiseAnd | BitwiseOr | BitwiseXor => c <= Category::Integer,
        ShiftLeft | ShiftRight => c == Category::Integer,
        Remainder | Fmod | Maximum | Minimum | Lt | Le | Gt | Ge => c != Category::Complex,
        Atan2 => c == Category::Float,
        Add | Sub | Mul | Div | Pow => c != Category::Bool || matches!(op, Add | Mul | Pow),
        _ => true,
    };
    require(n, ok, || format!("operands of dtype {d} are not supported"))?;
    let rd = if matches!(op, Eq | Ne | Lt | Le | Gt | Ge) {
        DType::Bool
    } else {
        d
    };
    Ok(match t {
        Some(t) => like(t, rd),
        None => ValueType::Number(NumberType::of_dtype(rd)),
    })
}

fn ternary(n: &str, args: &[ArgMeta<'_>]) -> Result<ValueType> {
    let pred_ok = match args.first() {
        Some(ArgMeta::Tensor(t)) => t.dtype == DType::Bool,
        Some(ArgMeta::Number(k)) => *k == NumberType::Bool,
        _ => false,
    };
    require(n, pred_ok, || {
        "pred must be a bool tensor or a bool".to_string()
    })?;
    // Shapes and devices of all three agree; dtypes only of a and b.
    let shape_src = args.iter().find_map(|a| match a {
        ArgMeta::Tensor(t) => Some(*t),
        _ => None,
    });
    let (t, num) = elementwise_operands(n, &["a", "b"], &args[1..])?;
    if let Some(s) = shape_src {
        for (name, a) in ["pred", "a", "b"].iter().zip(args) {
            if let ArgMeta::Tensor(x) = a {
                require(n, x.shape == s.shape, || {
                    format!("{name} has shape {} but another operand has shape {}; prims do not broadcast", x.shape, s.shape)
                })?;
                require(n, x.device == s.device, || {
                    format!(
                        "{name} is on {} but another operand is on {}",
                        x.device, s.device
                    )
                })?;
            }
        }
    }
    let d = match (t, num) {
        (Some(t), _) => t.dtype,
        (None, Some(k)) => k.default_dtype(),
        (None, None) => return Err(IrError::invalid(n, "a and b must be tensors or numbers")),
    };
    Ok(match shape_src {
        Some(s) => out_tensor(s.shape.clone(), d, s.device),
        None => ValueType::Number(NumberType::of_dtype(d)),
    })
}

fn reduction(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    let a = tensor(n, args, 0, "a")?;
    let dims = canonicalize_dims(n, "dims", attr_ints(n, attrs, 0)?, a.rank())?;
    let shape = Shape(
        a.shape
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !dims.contains(i))
            .map(|(_, d)| *d)
            .collect(),
    );
    let d = match op {
        PrimOp::Var => {
            attr_float(n, attrs, 1)?;
            require(n, a.dtype.is_inexact(), || {
                format!("a must have a floating or complex dtype, got {}", a.dtype)
            })?;
            a.dtype.to_real()
        }
        PrimOp::Amax | PrimOp::Amin => {
            require(n, !a.dtype.is_complex(), || {
                format!("a must not be complex, got {}", a.dtype)
            })?;
            a.dtype
        }
        _ => a.dtype,
    };
    Ok(out_tensor(shape, d, a.device))
}

/// The meta function of a prim of class [`PrimClass::Other`], by its family (its row of the op
/// table).
fn other(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op.info().family {
        Family::Elementwise => elementwise_meta(op, n, args, attrs),
        Family::Shape if matches!(op, Slice | Cat | Pad | Flip) => slicing_meta(op, n, args, attrs),
        Family::Shape => layout_meta(op, n, args, attrs),
        Family::Reduction => index_reduction_meta(op, n, args, attrs),
        Family::Creation => creation_meta(op, n, args, attrs),
        Family::Indexing => indexing_meta(op, n, args, attrs),
        Family::Nn => nn_meta(op, n, args, attrs),
        Family::Memory => memory_meta(op, n, args, attrs),
        Family::Composite | Family::Opaque => {
            Err(IrError::invalid(n, "internal: op has no meta function"))
        }
    }
}

/// Elementwise prims of their own signature: `convert_element_type`, `polygamma`.
fn elementwise_meta(
    op: PrimOp,
    n: &str,
    args: &[ArgMeta<'_>],
    attrs: &[Attr],
) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        ConvertElementType => {
            let d = attr_dtype(n, attrs, 0)?;
            match args.first() {
                Some(ArgMeta::Tensor(t)) => Ok(like(t, d)),
                Some(ArgMeta::Number(_)) => Ok(ValueType::Number(NumberType::of_dtype(d))),
                _ => Err(IrError::invalid(n, "a must be a tensor or a number")),
            }
        }
        Polygamma => {
            let a = tensor(n, args, 0, "a")?;
            require(n, a.dtype.is_float(), || {
                format!("a must have a floating dtype, got {}", a.dtype)
            })?;
            let order = attr_int(n, attrs, 0)?;
            require(n, order >= 0, || format!("n={order} must be >= 0"))?;
            Ok(like(a, a.dtype))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// Layout: `device_put`, `broadcast_in_dim`, `reshape`, `transpose`, `squeeze`.
fn layout_meta(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        DevicePut => {
            let a = tensor(n, args, 0, "a")?;
            Ok(out_tensor(
                a.shape.clone(),
                a.dtype,
                attr_device(n, attrs, 0)?,
            ))
        }
        BroadcastInDim => {
            let a = tensor(n, args, 0, "a")?;
            let shape = sizes(n, "shape", attr_ints(n, attrs, 0)?)?;
            let bdims = attr_ints(n, attrs, 1)?;
            require(n, bdims.len() == a.rank(), || {
                format!(
                    "broadcast_dimensions={bdims:?} must have one entry per dim of a (rank {})",
                    a.rank()
                )
            })?;
            let mut prev: i64 = -1;
            for (i, &bd) in bdims.iter().enumerate() {
                require(n, bd > prev && (bd as usize) < shape.len(), || {
                    format!("broadcast_dimensions={bdims:?} must be strictly increasing dims of the result shape {shape:?}")
                })?;
                prev = bd;
                let (src, dst) = (a.shape.size(i), shape[bd as usize]);
                require(n, src == dst || src == 1, || {
                    format!("a has size {src} in dim {i}, which cannot broadcast to size {dst} in dim {bd} of {shape:?}")
                })?;
            }
            Ok(out_tensor(Shape::new(shape), a.dtype, a.device))
        }
        Reshape => {
            let a = tensor(n, args, 0, "a")?;
            let shape = Shape::new(sizes(n, "shape", attr_ints(n, attrs, 0)?)?);
            let numel = shape.check_numel(n, "the requested shape")?;
            require(n, numel == a.shape.numel(), || {
                format!(
                    "shape {shape} has {numel} elements but a has shape {} with {}",
                    a.shape,
                    a.shape.numel()
                )
            })?;
            Ok(out_tensor(shape, a.dtype, a.device))
        }
        Transpose => {
            let a = tensor(n, args, 0, "a")?;
            let perm = attr_ints(n, attrs, 0)?;
            let mut seen = vec![false; a.rank()];
            let valid = perm.len() == a.rank()
                && perm.iter().all(|&p| {
                    let ok = p >= 0 && (p as usize) < a.rank() && !seen[p as usize];
                    if ok {
                        seen[p as usize] = true;
                    }
                    ok
                });
            require(n, valid, || {
                format!(
                    "permutation={perm:?} is not a permutation of the {} dims of a",
                    a.rank()
                )
            })?;
            let shape = Shape(perm.iter().map(|&p| a.shape.dims()[p as usize]).collect());
            Ok(out_tensor(shape, a.dtype, a.device))
        }
        Squeeze => {
            let a = tensor(n, args, 0, "a")?;
            let dims = canonicalize_dims(n, "dims", attr_ints(n, attrs, 0)?, a.rank())?;
            for &d in &dims {
                require(n, a.rank() == 0 || a.shape.size(d) == 1, || {
                    format!(
                        "dim {d} of a has size {}, only size-1 dims can be squeezed",
                        a.shape.size(d)
                    )
                })?;
            }
            let shape = Shape(
                a.shape
                    .dims()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !dims.contains(i))
                    .map(|(_, d)| *d)
                    .collect(),
            );
            Ok(out_tensor(shape, a.dtype, a.device))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// Slicing and joining: `slice`, `cat`, `pad`, `flip`.
fn slicing_meta(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Slice => {
            let a = tensor(n, args, 0, "a")?;
            let (start, end, strides) = (
                attr_ints(n, attrs, 0)?,
                attr_ints(n, attrs, 1)?,
                attr_ints(n, attrs, 2)?,
            );
            require(
                n,
                start.len() == a.rank() && end.len() == a.rank() && strides.len() == a.rank(),
                || {
                    format!("start_indices, end_indices and strides need one entry per dim of a (rank {})", a.rank())
                },
            )?;
            let mut shape = Vec::with_capacity(a.rank());
            for i in 0..a.rank() {
                let (s, e, st, size) = (start[i], end[i], strides[i], a.shape.size(i));
                let ok = 0 <= s && s <= e && usize::try_from(e).is_ok_and(|e| e <= size) && st >= 1;
                require(n, ok, || {
                    format!("dim {i}: need 0 <= start ({s}) <= end ({e}) <= size ({size}) and stride ({st}) >= 1")
                })?;
                // 0 <= s <= e and st >= 1: the casts are exact, and rounding up by division
                // (not `e - s + st - 1`) cannot overflow for any stride.
                shape.push(((e - s) as u64).div_ceil(st as u64) as usize);
            }
            Ok(out_tensor(Shape::new(shape), a.dtype, a.device))
        }
        Cat => {
            let ts: Vec<&TensorMeta> = args
                .iter()
                .map(|a| match a {
                    ArgMeta::Tensor(t) => Ok(*t),
                    _ => Err(IrError::invalid(n, "tensors must all be tensors")),
                })
                .collect::<Result<_>>()?;
            let first = ts
                .first()
                .ok_or_else(|| IrError::invalid(n, "tensors must not be empty"))?;
            require(n, first.rank() > 0, || {
                "zero-dim tensors cannot be concatenated".into()
            })?;
            let dim = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, first.rank())?;
            let mut total: usize = 0;
            for (i, t) in ts.iter().enumerate() {
                require(n, t.rank() == first.rank(), || {
                    format!(
                        "tensors[{i}] has rank {} but tensors[0] has rank {}",
                        t.rank(),
                        first.rank()
                    )
                })?;
                require(n, t.dtype == first.dtype, || {
                    format!(
                        "tensors[{i}] has dtype {} but tensors[0] has {}; prims do not promote",
                        t.dtype, first.dtype
                    )
                })?;
                require(n, t.device == first.device, || {
                    format!(
                        "tensors[{i}] is on {} but tensors[0] is on {}",
                        t.device, first.device
                    )
                })?;
                for d in 0..t.rank() {
                    require(
                        n,
                        d == dim || t.shape.size(d) == first.shape.size(d),
                        || {
                            format!("tensors[{i}] has shape {} but tensors[0] has shape {}; they may differ only in dim {dim}", t.shape, first.shape)
                        },
                    )?;
                }
                total = total.checked_add(t.shape.size(dim)).ok_or_else(|| {
                    IrError::overflow(
                        n,
                        format!(
                            "the sizes of dim {dim} of the tensors add up to more than {}",
                            usize::MAX
                        ),
                    )
                })?;
            }
            let mut shape = first.shape.sizes();
            shape[dim] = total;
            Ok(out_tensor(Shape::new(shape), first.dtype, first.device))
        }
        Pad => {
            let a = tensor(n, args, 0, "a")?;
            let config = attr_int_lists(n, attrs, 1)?;
            require(
                n,
                config.len() == a.rank() && config.iter().all(|c| c.len() == 3),
                || {
                    format!("padding_config needs one (low, high, interior) triple per dim of a (rank {})", a.rank())
                },
            )?;
            let mut shape = Vec::with_capacity(a.rank());
            for (i, c) in config.iter().enumerate() {
                let size = a.shape.size(i);
                require(n, c[2] >= 0, || {
                    format!("dim {i}: interior padding {} must be >= 0", c[2])
                })?;
                let s = padded_size(size, c[0], c[1], c[2]).ok_or_else(|| {
                    IrError::overflow(
                        n,
                        format!("dim {i}: padding {c:?} of size {size} makes a size beyond i64"),
                    )
                })?;
                require(n, s >= 0, || {
                    format!("dim {i}: padding {c:?} makes a negative size")
                })?;
                shape.push(s as usize);
            }
            Ok(out_tensor(Shape::new(shape), a.dtype, a.device))
        }
        Flip => {
            let a = tensor(n, args, 0, "a")?;
            canonicalize_dims(n, "dims", attr_ints(n, attrs, 0)?, a.rank())?;
            Ok(like(a, a.dtype))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// `argmax`, `argmin`.
fn index_reduction_meta(
    op: PrimOp,
    n: &str,
    args: &[ArgMeta<'_>],
    attrs: &[Attr],
) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Argmax | Argmin => {
            let a = tensor(n, args, 0, "a")?;
            require(n, !a.dtype.is_complex() && !a.dtype.is_bool(), || {
                format!("a must be real and not bool, got {}", a.dtype)
            })?;
            let shape = match attr_opt_int(n, attrs, 0)? {
                None => Shape::scalar(),
                Some(d) => {
                    let d = canonicalize_dim(n, "dim", d, a.rank())?;
                    Shape(
                        a.shape
                            .dims()
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != d)
                            .map(|(_, x)| *x)
                            .collect(),
                    )
                }
            };
            Ok(out_tensor(shape, DType::I64, a.device))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// Creation: `full`, `iota`, `uniform`, `randn`.
fn creation_meta(op: PrimOp, n: &str, _args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Full => {
            let shape = sizes(n, "shape", attr_ints(n, attrs, 0)?)?;
            Ok(out_tensor(
                Shape::new(shape),
                attr_dtype(n, attrs, 3)?,
                attr_device(n, attrs, 2)?,
            ))
        }
        Iota => {
            let len = attr_int(n, attrs, 0)?;
            require(n, len >= 0, || format!("length={len} must be >= 0"))?;
            let d = attr_dtype(n, attrs, 4)?;
            require(n, d.is_integer() || d.is_float(), || {
                format!("dtype must be an integer or floating dtype, got {d}")
            })?;
            Ok(out_tensor(
                Shape::new([len as usize]),
                d,
                attr_device(n, attrs, 3)?,
            ))
        }
        Uniform | Randn => {
            let shape = sizes(n, "shape", attr_ints(n, attrs, 0)?)?;
            let (dev_i, dt_i) = if op == Uniform { (3, 4) } else { (1, 2) };
            let d = attr_dtype(n, attrs, dt_i)?;
            require(n, d.is_float() && !d.is_fp8(), || {
                format!("dtype must be a floating dtype, got {d}")
            })?;
            Ok(out_tensor(
                Shape::new(shape),
                d,
                attr_device(n, attrs, dev_i)?,
            ))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// Indexing: `take`, `take_along_axis`, `gather`, `index_add`, `scatter_add`.
fn indexing_meta(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Take | TakeAlongAxis | Gather => {
            let a = tensor(n, args, 0, "a")?;
            let index = tensor(n, args, 1, "index")?;
            require(n, index.dtype.is_integer(), || {
                format!("index must have an integer dtype, got {}", index.dtype)
            })?;
            same_device(n, &[("a", a), ("index", index)])?;
            let dim = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, a.rank())?;
            let shape = if op == Take {
                require(n, index.rank() <= 1, || {
                    format!("index must have rank 0 or 1, got shape {}", index.shape)
                })?;
                let mut s: Vec<_> = a.shape.dims()[..dim].to_vec();
                s.extend(index.shape.dims().iter().copied());
                s.extend(a.shape.dims().iter().skip(dim + 1).copied());
                Shape(s)
            } else {
                require(n, index.rank() == a.rank(), || {
                    format!(
                        "index has rank {} but a has rank {}; they must match",
                        index.rank(),
                        a.rank()
                    )
                })?;
                for d in 0..a.rank() {
                    let (i, s) = (index.shape.size(d), a.shape.size(d));
                    let ok = d == dim || if op == Gather { i <= s } else { i == s };
                    require(n, ok, || {
                        format!("index has shape {} and a has shape {}: they must agree outside dim {dim}", index.shape, a.shape)
                    })?;
                }
                index.shape.clone()
            };
            Ok(out_tensor(shape, a.dtype, a.device))
        }
        IndexAdd | ScatterAdd => {
            let a = tensor(n, args, 0, "a")?;
            let index = tensor(n, args, 1, "index")?;
            let value = tensor(n, args, 2, "value")?;
            same_device(n, &[("a", a), ("index", index), ("value", value)])?;
            require(n, index.dtype.is_integer(), || {
                format!("index must have an integer dtype, got {}", index.dtype)
            })?;
            require(n, value.dtype == a.dtype, || {
                format!("value has dtype {} but a has {}", value.dtype, a.dtype)
            })?;
            let dim = canonicalize_dim(n, "dim", attr_int(n, attrs, 0)?, a.rank())?;
            require(n, value.rank() == a.rank(), || {
                format!(
                    "value has rank {} but a has rank {}",
                    value.rank(),
                    a.rank()
                )
            })?;
            if op == IndexAdd {
                require(n, index.rank() == 1, || {
                    format!("index must have rank 1, got shape {}", index.shape)
                })?;
                for d in 0..a.rank() {
                    let want = if d == dim {
                        index.shape.size(0)
                    } else {
                        a.shape.size(d)
                    };
                    require(n, value.shape.size(d) == want, || {
                        format!(
                            "value has shape {} but needs size {want} in dim {d} (a {}, index {})",
                            value.shape, a.shape, index.shape
                        )
                    })?;
                }
            } else {
                require(n, index.rank() == a.rank(), || {
                    format!(
                        "index has rank {} but a has rank {}",
                        index.rank(),
                        a.rank()
                    )
                })?;
                for d in 0..a.rank() {
                    let i = index.shape.size(d);
                    require(
                        n,
                        i <= value.shape.size(d) && (d == dim || i <= a.shape.size(d)),
                        || {
                            format!("index has shape {}, which exceeds value {} or a {} outside dim {dim}", index.shape, value.shape, a.shape)
                        },
                    )?;
                }
            }
            Ok(like(a, a.dtype))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// Matrix products and embeddings.
fn nn_meta(op: PrimOp, n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Matmul => {
            let a = tensor(n, args, 0, "a")?;
            let b = tensor(n, args, 1, "b")?;
            same_device(n, &[("a", a), ("b", b)])?;
            require(n, a.dtype == b.dtype, || {
                format!(
                    "a has dtype {} but b has dtype {}; they must match",
                    a.dtype, b.dtype
                )
            })?;
            require(n, !a.dtype.is_bool(), || {
                "bool tensors cannot be multiplied".to_string()
            })?;
            Ok(out_tensor(
                matmul_shape(n, &a.shape, &b.shape)?,
                a.dtype,
                a.device,
            ))
        }
        Linear => {
            let a = tensor(n, args, 0, "a")?;
            let w = tensor(n, args, 1, "w")?;
            let shape = linear_shape(n, a, w, args.get(2))?;
            Ok(out_tensor(shape, a.dtype, a.device))
        }
        Embedding => {
            let a = tensor(n, args, 0, "a")?;
            let w = tensor(n, args, 1, "weight")?;
            same_device(n, &[("a", a), ("weight", w)])?;
            require(n, a.dtype.is_integer(), || {
                format!(
                    "a (the indices) must have an integer dtype, got {}",
                    a.dtype
                )
            })?;
            require(n, w.rank() == 2, || {
                format!(
                    "weight must have rank 2 [num_embeddings, dim], got shape {}",
                    w.shape
                )
            })?;
            attr_opt_int(n, attrs, 0)?;
            attr_opt_float(n, attrs, 1)?;
            attr_float(n, attrs, 2)?;
            attr_bool(n, attrs, 3)?;
            attr_bool(n, attrs, 4)?;
            let mut s = a.shape.sizes();
            s.push(w.shape.size(1));
            Ok(out_tensor(Shape::new(s), w.dtype, w.device))
        }
        EmbeddingBackward => {
            let g = tensor(n, args, 0, "grad")?;
            let idx = tensor(n, args, 1, "indices")?;
            same_device(n, &[("grad", g), ("indices", idx)])?;
            require(n, idx.dtype.is_integer(), || {
                format!("indices must have an integer dtype, got {}", idx.dtype)
            })?;
            require(
                n,
                g.rank() == idx.rank() + 1 && g.shape.dims()[..idx.rank()] == *idx.shape.dims(),
                || {
                    format!(
                        "grad has shape {} but indices {} need grad of shape indices.shape + [dim]",
                        g.shape, idx.shape
                    )
                },
            )?;
            let num = attr_int(n, attrs, 0)?;
            require(n, num >= 0, || format!("num_weights={num} must be >= 0"))?;
            let dim = g.shape.size(g.rank() - 1);
            Ok(out_tensor(
                Shape::new([num as usize, dim]),
                g.dtype,
                g.device,
            ))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// `copy_`.
fn memory_meta(op: PrimOp, n: &str, args: &[ArgMeta<'_>], _attrs: &[Attr]) -> Result<ValueType> {
    use PrimOp::*;
    match op {
        Copy_ => {
            let src = tensor(n, args, 0, "copy_from")?;
            let dst = tensor(n, args, 1, "copy_to")?;
            require(n, src.shape == dst.shape, || {
                format!(
                    "copy_from has shape {} but copy_to has shape {}",
                    src.shape, dst.shape
                )
            })?;
            require(n, src.device == dst.device, || {
                format!(
                    "copy_from is on {} but copy_to is on {}",
                    src.device, dst.device
                )
            })?;
            Ok(like(dst, dst.dtype))
        }
        _ => Err(IrError::invalid(n, "internal: op has no meta function")),
    }
}

/// `low + high + size + (size - 1) * interior`, the size of a padded dim; `None` when it
/// does not fit in `i64`.
fn padded_size(size: usize, low: i64, high: i64, interior: i64) -> Option<i64> {
    // In i128 every term and the sum are exact (|gaps| < 2^126, the rest < 2^64), so a
    // negative `low` may cancel a large `high` without a false overflow on the way.
    let size = i128::try_from(size).ok()?;
    let gaps = (size - 1).max(0) * i128::from(interior);
    i64::try_from(i128::from(low) + i128::from(high) + size + gaps).ok()
}

/// Output shape of `torch.matmul(a, b)`, with its 1-D and batched broadcasting rules.
pub fn matmul_shape(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    let (ra, rb) = (a.rank(), b.rank());
    if ra == 0 || rb == 0 {
        return Err(IrError::invalid(
            op,
            format!("both operands need at least one dim, got shapes {a} and {b}"),
        ));
    }
    let k_a = a.size(ra - 1);
    let k_b = if rb == 1 { b.size(0) } else { b.size(rb - 2) };
    if k_a != k_b {
        return Err(IrError::invalid(
            op,
            format!("a has shape {a} and b has shape {b}: a's last dim ({k_a}) must equal b's {} dim ({k_b})",
                if rb == 1 { "only" } else { "second-to-last" }),
        ));
    }
    let batch_a = Shape::new(a.sizes()[..ra.saturating_sub(2)].to_vec());
    let batch_b = Shape::new(b.sizes()[..rb.saturating_sub(2)].to_vec());
    let mut out = crate::shape::broadcast_shapes(op, &batch_a, &batch_b)?.sizes();
    if ra >= 2 {
        out.push(a.size(ra - 2));
    }
    if rb >= 2 {
        out.push(b.size(rb - 1));
    }
    Ok(Shape::new(out))
}

/// Output shape of `torch.nn.functional.linear(a, w, bias)`, with the checks torch makes.
pub fn linear_shape(
    op: &str,
    a: &TensorMeta,
    w: &TensorMeta,
    bias: Option<&ArgMeta<'_>>,
) -> Result<Shape> {
    same_device(op, &[("input", a), ("weight", w)])?;
    require(op, a.rank() >= 1, || {
        "input must have at least one dim".to_string()
    })?;
    require(op, w.rank() == 1 || w.rank() == 2, || {
        format!("weight must have rank 1 or 2, got shape {}", w.shape)
    })?;
    require(op, a.dtype == w.dtype, || {
        format!(
            "input has dtype {} but weight has dtype {}; they must match",
            a.dtype, w.dtype
        )
    })?;
    let k = a.shape.size(a.rank() - 1);
    let w_in = w.shape.size(w.rank() - 1);
    require(op, k == w_in, || {
        format!("weight has shape {} but input's last dim is {k}", w.shape)
    })?;
    let mut out = a.shape.sizes();
    out.pop();
    if w.rank() == 2 {
        out.push(w.shape.size(0));
    }
    if let Some(ArgMeta::Tensor(b)) = bias {
        same_device(op, &[("input", a), ("bias", b)])?;
        require(op, b.dtype == a.dtype, || {
            format!("bias has dtype {} but input has dtype {}", b.dtype, a.dtype)
        })?;
        let out_features = if w.rank() == 2 { w.shape.size(0) } else { 1 };
        require(
            op,
            b.rank() <= 1 && (b.rank() == 0 || b.shape.size(0) == out_features),
            || {
                format!(
                    "bias has shape {} but weight {} needs bias of shape [{out_features}]",
                    b.shape, w.shape
                )
            },
        )?;
    }
    Ok(Shape::new(out))
}

/// The attribute list of a prim, for building calls: `dims=[..]` of reductions and similar.
/// Only for dims and for sizes of a builder's shapes, which fit in i64 (`Shape::checked_numel`):
/// sizes a caller passes go through a checked conversion instead.
pub(crate) fn ints(v: impl IntoIterator<Item = usize>) -> Attr {
    Attr::Ints(v.into_iter().map(|x| x as i64).collect())
}
