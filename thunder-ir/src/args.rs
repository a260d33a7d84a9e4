//! The operands ([`Arg`]) and attributes ([`Attr`]) of a bound symbol, and typed accessors for
//! attributes that return errors, never panic (executors and passes use them on hand-built
//! traces too).

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// An operand of a bound symbol: a value of the trace, a Python literal, `None`, or a list of
/// tensor values (`cat`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Arg {
    /// A tensor or number value of the trace.
    Value(Value),
    /// An `int` literal.
    Int(i64),
    /// A `float` literal.
    Float(f64),
    /// A `bool` literal.
    Bool(bool),
    /// `None` (an absent optional tensor).
    None,
    /// A list of values.
    List(Vec<Value>),
}

/// A typed attribute of a bound symbol (printed as a keyword argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Attr {
    /// `None`.
    None,
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `bool`.
    Bool(bool),
    /// A string.
    Str(String),
    /// A list of ints (shapes, dims, permutations).
    Ints(Vec<i64>),
    /// A list of int lists (`pad`'s config).
    IntLists(Vec<Vec<i64>>),
    /// A dtype.
    DType(DType),
    /// A device.
    Device(Device),
}

// Floats compare and hash by their bits, so that NaN attributes survive a round trip and traces
// can key caches.
fn float_key(f: f64) -> u64 {
    f.to_bits()
}

impl PartialEq for Arg {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Arg::Value(a), Arg::Value(b)) => a == b,
            (Arg::Int(a), Arg::Int(b)) => a == b,
            (Arg::Float(a), Arg::Float(b)) => float_key(*a) == float_key(*b),
            (Arg::Bool(a), Arg::Bool(b)) => a == b,
            (Arg::None, Arg::None) => true,
            (Arg::List(a), Arg::List(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Arg {}
impl Hash for Arg {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Arg::Value(v) => v.hash(state),
            Arg::Int(i) => i.hash(state),
            Arg::Float(f) => float_key(*f).hash(state),
            Arg::Bool(b) => b.hash(state),
            Arg::None => {}
            Arg::List(l) => l.hash(state),
        }
    }
}

impl PartialEq for Attr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Attr::None, Attr::None) => true,
            (Attr::Int(a), Attr::Int(b)) => a == b,
            (Attr::Float(a), Attr::Float(b)) => float_key(*a) == float_key(*b),
            (Attr::Bool(a), Attr::Bool(b)) => a == b,
            (Attr::Str(a), Attr::Str(b)) => a == b,
            (Attr::Ints(a), Attr::Ints(b)) => a == b,
            (Attr::IntLists(a), Attr::IntLists(b)) => a == b,
            (Attr::DType(a), Attr::DType(b)) => a == b,
            (Attr::Device(a), Attr::Device(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Attr {}
impl Hash for Attr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Attr::None => {}
            Attr::Int(i) => i.hash(state),
            Attr::Float(f) => float_key(*f).hash(state),
            Attr::Bool(b) => b.hash(state),
            Attr::Str(s) => s.hash(state),
            Attr::Ints(v) => v.hash(state),
            Attr::IntLists(v) => v.hash(state),
            Attr::DType(d) => d.hash(state),
            Attr::Device(d) => d.hash(state),
        }
    }
}

impl From<Value> for Arg {
    fn from(v: Value) -> Self {
        Arg::Value(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Float(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<Option<Value>> for Arg {
    fn from(v: Option<Value>) -> Self {
        v.map_or(Arg::None, Arg::Value)
    }
}

impl Arg {
    /// The value, if this operand is one.
    pub fn as_value(&self) -> Option<Value> {
        match self {
            Arg::Value(v) => Some(*v),
            _ => None,
        }
    }
    /// Every value this operand refers to.
    pub fn values(&self) -> Vec<Value> {
        match self {
            Arg::Value(v) => vec![*v],
            Arg::List(l) => l.clone(),
            _ => Vec::new(),
        }
    }
}

// Accessors for attributes whose kind the signature check has already established. They still
// return errors instead of panicking, so that a hand-built bound symbol cannot crash a meta
// function or an executor: `op` names the op in the error, `i` is the attribute's position.
fn wrong(op: &str, i: usize, want: &str) -> IrError {
    IrError::invalid(op, format!("attribute #{i} must be {want}"))
}
/// Attribute `i` of `a` as int (`op` names the op in the error).
pub fn attr_int(op: &str, a: &[Attr], i: usize) -> Result<i64> {
    match a.get(i) {
        Some(Attr::Int(v)) => Ok(*v),
        _ => Err(wrong(op, i, "an int")),
    }
}
/// Attribute `i` of `a` as optional int (`op` names the op in the error).
pub fn attr_opt_int(op: &str, a: &[Attr], i: usize) -> Result<Option<i64>> {
    match a.get(i) {
        Some(Attr::Int(v)) => Ok(Some(*v)),
        Some(Attr::None) => Ok(None),
        _ => Err(wrong(op, i, "an int or None")),
    }
}
/// Attribute `i` of `a` as float (`op` names the op in the error).
pub fn attr_float(op: &str, a: &[Attr], i: usize) -> Result<f64> {
    match a.get(i) {
        Some(Attr::Float(v)) => Ok(*v),
        Some(Attr::Int(v)) => Ok(*v as f64),
        _ => Err(wrong(op, i, "a float")),
    }
}
/// Attribute `i` of `a` as optional float (`op` names the op in the error).
pub fn attr_opt_float(op: &str, a: &[Attr], i: usize) -> Result<Option<f64>> {
    match a.get(i) {
        Some(Attr::None) => Ok(None),
        _ => attr_float(op, a, i).map(Some),
    }
}
/// Attribute `i` of `a` as bool (`op` names the op in the error).
pub fn attr_bool(op: &str, a: &[Attr], i: usize) -> Result<bool> {
    match a.get(i) {
        Some(Attr::Bool(v)) => Ok(*v),
        _ => Err(wrong(op, i, "a bool")),
    }
}
/// Attribute `i` of `a` as str (`op` names the op in the error).
pub fn attr_str<'a>(op: &str, a: &'a [Attr], i: usize) -> Result<&'a str> {
    match a.get(i) {
        Some(Attr::Str(v)) => Ok(v),
        _ => Err(wrong(op, i, "a string")),
    }
}
/// Attribute `i` of `a` as ints (`op` names the op in the error).
pub fn attr_ints<'a>(op: &str, a: &'a [Attr], i: usize) -> Result<&'a [i64]> {
    match a.get(i) {
        Some(Attr::Ints(v)) => Ok(v),
        _ => Err(wrong(op, i, "a list of ints")),
    }
}
/// Attribute `i` of `a` as optional ints (`op` names the op in the error).
pub fn attr_opt_ints<'a>(op: &str, a: &'a [Attr], i: usize) -> Result<Option<&'a [i64]>> {
    match a.get(i) {
        Some(Attr::None) => Ok(None),
        _ => attr_ints(op, a, i).map(Some),
    }
}
/// Attribute `i` of `a` as int lists (`op` names the op in the error).
pub fn attr_int_lists<'a>(op: &str, a: &'a [Attr], i: usize) -> Result<&'a [Vec<i64>]> {
    match a.get(i) {
        Some(Attr::IntLists(v)) => Ok(v),
        _ => Err(wrong(op, i, "a list of int lists")),
    }
}
/// Attribute `i` of `a` as dtype (`op` names the op in the error).
pub fn attr_dtype(op: &str, a: &[Attr], i: usize) -> Result<DType> {
    match a.get(i) {
        Some(Attr::DType(v)) => Ok(*v),
        _ => Err(wrong(op, i, "a dtype")),
    }
}
/// Attribute `i` of `a` as optional dtype (`op` names the op in the error).
pub fn attr_opt_dtype(op: &str, a: &[Attr], i: usize) -> Result<Option<DType>> {
    match a.get(i) {
        Some(Attr::None) => Ok(None),
        _ => attr_dtype(op, a, i).map(Some),
    }
}
/// Attribute `i` of `a` as device (`op` names the op in the error).
pub fn attr_device(op: &str, a: &[Attr], i: usize) -> Result<Device> {
    match a.get(i) {
        Some(Attr::Device(v)) => Ok(*v),
        _ => Err(wrong(op, i, "a device")),
    }
}
/// Attribute `i` of `a` as optional device (`op` names the op in the error).
pub fn attr_opt_device(op: &str, a: &[Attr], i: usize) -> Result<Option<Device>> {
    match a.get(i) {
        Some(Attr::None) => Ok(None),
        _ => attr_device(op, a, i).map(Some),
    }
}
