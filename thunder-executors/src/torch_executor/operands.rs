//! Operand access at run time: tensors, lists and numbers as the kernels read them.

use super::KResult;
use crate::executor::{Args, KArg, KernelError, Outputs, RtValue};
use smallvec::smallvec;
use tch::{Scalar, Tensor};
use thunder_ir::NumberType;

/// Operand `i` as a tensor (shared with the fused executors).
pub(crate) fn tensor<'a>(args: &Args<'a>, i: usize) -> KResult<&'a Tensor> {
    match args.get(i)? {
        KArg::Value(RtValue::Tensor(t)) => Ok(t),
        other => Err(KernelError(format!(
            "operand {i} must be a tensor, got {other:?}"
        ))),
    }
}

/// Operand `i` as a tensor, or `None`.
pub(super) fn opt_tensor<'a>(args: &Args<'a>, i: usize) -> KResult<Option<&'a Tensor>> {
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

/// A Python number operand.
#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Num {
    pub(super) fn scalar(self) -> Scalar {
        match self {
            Num::Int(i) => Scalar::int(i),
            Num::Float(f) => Scalar::float(f),
            Num::Bool(b) => Scalar::int(b as i64),
        }
    }
    /// A 0-dim CPU tensor holding the number with `dtype` (PyTorch treats 0-dim CPU tensors as
    /// scalars next to CUDA tensors, with no transfer).
    pub(super) fn tensor(self, dtype: tch::Kind) -> KResult<Tensor> {
        Ok(Tensor::f_scalar_tensor(
            self.scalar(),
            (dtype, tch::Device::Cpu),
        )?)
    }
    pub(super) fn natural_kind(self) -> tch::Kind {
        match self {
            Num::Int(_) => tch::Kind::Int64,
            Num::Float(_) => tch::Kind::Double,
            Num::Bool(_) => tch::Kind::Bool,
        }
    }
}

/// A tensor or number operand.
pub(super) enum Operand<'a> {
    /// A tensor.
    T(&'a Tensor),
    /// A number.
    N(Num),
}

/// Operand `i` as a tensor or a number.
pub(super) fn operand<'a>(args: &Args<'a>, i: usize) -> KResult<Operand<'a>> {
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
pub(super) fn to_number(t: &Tensor, ty: NumberType) -> KResult<RtValue> {
    Ok(match ty {
        NumberType::Bool => RtValue::Bool(t.f_int64_value(&[])? != 0),
        NumberType::Int => RtValue::Int(t.f_int64_value(&[])?),
        NumberType::Float | NumberType::Complex => RtValue::Float(t.f_double_value(&[])?),
    })
}

/// The number as a float.
pub(super) fn num_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
        Num::Bool(b) => b as i64 as f64,
    }
}

/// A kernel's one tensor output.
pub(super) fn one(t: Tensor) -> KResult<Outputs> {
    Ok(smallvec![RtValue::Tensor(t)])
}
