//! Type inference: the output types of a bound symbol from its operands' types and attributes,
//! with the requires_grad rule. Prims run their meta functions; a torch-level op's output types
//! are those of its decomposition, run in a scratch [`TraceBuilder`] (so this module uses the
//! builder to decompose; the builder and the verifier use this module, not each other).

use crate::args::{Arg, Attr};
use crate::builder::TraceBuilder;
use crate::dtype::NumberType;
use crate::error::{IrError, Result};
use crate::ops::prims::{self, ArgMeta, PrimOp};
use crate::ops::{DistOp, Op, TorchOp};
use crate::value::{Value, ValueInfo, ValueType};

/// An operand's type, as the meta functions and the requires_grad rule see it.
#[derive(Debug, Clone)]
pub(crate) enum ArgType {
    Value(ValueType),
    Number(NumberType),
    None,
    List(Vec<ValueType>),
}

pub(crate) fn arg_types(values: &[ValueInfo], args: &[Arg]) -> Result<Vec<ArgType>> {
    let ty = |v: &Value| {
        values
            .get(v.index())
            .map(|i| i.ty.clone())
            .ok_or(IrError::UnknownValue(v.0))
    };
    args.iter()
        .map(|a| {
            Ok(match a {
                Arg::Value(v) => ArgType::Value(ty(v)?),
                Arg::Int(_) => ArgType::Number(NumberType::Int),
                Arg::Float(_) => ArgType::Number(NumberType::Float),
                Arg::Bool(_) => ArgType::Number(NumberType::Bool),
                Arg::None => ArgType::None,
                Arg::List(l) => ArgType::List(l.iter().map(ty).collect::<Result<_>>()?),
            })
        })
        .collect()
}

/// Runs a prim's meta function on operand types and applies the requires_grad rule: an output
/// requires grad when some tensor operand does and the output's dtype can carry a gradient.
pub(crate) fn prim_types(p: PrimOp, types: &[ArgType], attrs: &[Attr]) -> Result<Vec<ValueType>> {
    // Copying into a buffer (optimizer updates) is never differentiated.
    with_metas(types, !p.is_inplace(), |metas| prims::meta(p, metas, attrs))
}

/// [`prim_types`] for a collective.
pub(crate) fn dist_types(d: DistOp, types: &[ArgType], attrs: &[Attr]) -> Result<Vec<ValueType>> {
    with_metas(types, true, |metas| crate::ops::dist::meta(d, metas, attrs))
}

fn with_metas(
    types: &[ArgType],
    differentiable: bool,
    meta: impl FnOnce(&[ArgMeta<'_>]) -> Result<Vec<ValueType>>,
) -> Result<Vec<ValueType>> {
    let mut metas: Vec<ArgMeta<'_>> = Vec::new();
    let mut requires_grad = false;
    for t in types {
        match t {
            ArgType::Value(ValueType::Tensor(m)) => {
                requires_grad |= m.requires_grad;
                metas.push(ArgMeta::Tensor(m));
            }
            ArgType::Value(ValueType::Number(n)) | ArgType::Number(n) => {
                metas.push(ArgMeta::Number(*n))
            }
            ArgType::None => metas.push(ArgMeta::None),
            ArgType::List(l) => {
                for v in l {
                    match v {
                        ValueType::Tensor(m) => {
                            requires_grad |= m.requires_grad;
                            metas.push(ArgMeta::Tensor(m));
                        }
                        ValueType::Number(n) => metas.push(ArgMeta::Number(*n)),
                    }
                }
            }
        }
    }
    let mut out = meta(&metas)?;
    for ty in &mut out {
        if let ValueType::Tensor(t) = ty {
            t.requires_grad = differentiable && requires_grad && t.dtype.is_inexact();
        }
    }
    Ok(out)
}

/// Output types of a torch-level op on operands of the given types: the op is decomposed in a
/// scratch builder. Used by the parser (for ops printed without their decomposition) and the
/// verifier.
pub(crate) fn torch_output_types(
    op: TorchOp,
    types: &[ArgType],
    args: &[Arg],
    attrs: &[Attr],
) -> Result<Vec<ValueType>> {
    let mut b = TraceBuilder::new("meta");
    let mut scratch_args = Vec::with_capacity(args.len());
    let mut k = 0;
    let mut input = |b: &mut TraceBuilder, ty: &ValueType| -> Result<Value> {
        k += 1;
        let v = b.define(format!("a{k}"), ty.clone())?;
        b.push_input(v);
        Ok(v)
    };
    for (a, t) in args.iter().zip(types) {
        scratch_args.push(match (a, t) {
            (Arg::Value(_), ArgType::Value(ty)) => Arg::Value(input(&mut b, ty)?),
            (Arg::List(_), ArgType::List(tys)) => Arg::List(
                tys.iter()
                    .map(|ty| input(&mut b, ty))
                    .collect::<Result<_>>()?,
            ),
            (other, _) => other.clone(),
        });
    }
    let outs = b.call(Op::Torch(op), scratch_args, attrs.to_vec())?;
    outs.iter().map(|&v| b.ty(v).cloned()).collect()
}
