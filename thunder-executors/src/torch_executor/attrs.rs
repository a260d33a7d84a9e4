//! Attribute accessors at compile time (thunder-ir's own accessors are private to it, and
//! their messages differ).

use super::error::CompileError;
use super::operands::Num;
use super::CResult;
use thunder_ir::{Attr, BoundSymbol, DType, Trace, ValueType};

/// An attribute of another kind than `expected`.
fn wrong(expected: &'static str, got: &Attr) -> CompileError {
    CompileError::Attr {
        expected,
        got: got.clone(),
    }
}

/// A `reduction` attribute (`"mean"`, `"sum"`, `"none"`) as libtorch's.
pub(super) fn reduction(a: &Attr) -> CResult<tch::Reduction> {
    match a {
        Attr::Str(s) if s == "mean" => Ok(tch::Reduction::Mean),
        Attr::Str(s) if s == "sum" => Ok(tch::Reduction::Sum),
        Attr::Str(s) if s == "none" => Ok(tch::Reduction::None),
        other => Err(CompileError::Reduction(other.clone())),
    }
}

pub(super) fn ints(a: &Attr) -> CResult<Vec<i64>> {
    match a {
        Attr::Ints(v) => Ok(v.clone()),
        other => Err(wrong("a list of ints", other)),
    }
}

pub(super) fn int(a: &Attr) -> CResult<i64> {
    match a {
        Attr::Int(v) => Ok(*v),
        other => Err(wrong("an int", other)),
    }
}

pub(super) fn opt_int(a: &Attr) -> CResult<Option<i64>> {
    match a {
        Attr::None => Ok(None),
        _ => int(a).map(Some),
    }
}

pub(super) fn float(a: &Attr) -> CResult<f64> {
    match a {
        Attr::Float(v) => Ok(*v),
        Attr::Int(v) => Ok(*v as f64),
        other => Err(wrong("a float", other)),
    }
}

pub(super) fn opt_float(a: &Attr) -> CResult<Option<f64>> {
    match a {
        Attr::None => Ok(None),
        _ => float(a).map(Some),
    }
}

pub(super) fn boolean(a: &Attr) -> CResult<bool> {
    match a {
        Attr::Bool(v) => Ok(*v),
        other => Err(wrong("a bool", other)),
    }
}

pub(super) fn num_attr(a: &Attr) -> CResult<Num> {
    match a {
        Attr::Int(v) => Ok(Num::Int(*v)),
        Attr::Float(v) => Ok(Num::Float(*v)),
        Attr::Bool(v) => Ok(Num::Bool(*v)),
        other => Err(wrong("a number", other)),
    }
}

pub(super) fn dtype_attr(a: &Attr) -> CResult<DType> {
    match a {
        Attr::DType(d) => Ok(*d),
        other => Err(wrong("a dtype", other)),
    }
}

pub(super) fn opt_dtype_attr(a: &Attr) -> CResult<Option<DType>> {
    match a {
        Attr::None => Ok(None),
        _ => dtype_attr(a).map(Some),
    }
}

pub(super) fn device_attr(a: &Attr) -> CResult<thunder_ir::Device> {
    match a {
        Attr::Device(d) => Ok(*d),
        other => Err(wrong("a device", other)),
    }
}

pub(super) fn opt_dims(a: &Attr) -> CResult<Option<Vec<i64>>> {
    match a {
        Attr::None => Ok(None),
        Attr::Ints(v) if v.is_empty() => Ok(None),
        _ => ints(a).map(Some),
    }
}

pub(super) fn opt_num(a: &Attr) -> CResult<Option<Num>> {
    match a {
        Attr::None => Ok(None),
        _ => num_attr(a).map(Some),
    }
}

/// The type of output `i` of `bsym`.
pub(super) fn out_ty(trace: &Trace, bsym: &BoundSymbol, i: usize) -> CResult<ValueType> {
    let v = bsym.outputs.get(i).ok_or(CompileError::NoOutput)?;
    trace
        .values
        .get(v.index())
        .map(|i| i.ty.clone())
        .ok_or(CompileError::OutputOutsideTable)
}
