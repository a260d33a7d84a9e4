//! Traces: a program over values, as a list of bound symbols.

use crate::device::Device;
use crate::dtype::DType;
use crate::ops::Op;
use crate::value::{TensorMeta, Value, ValueInfo, ValueType};
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

/// One call of an op in a trace: the op, its operands, its attributes, the values it defines,
/// and (for torch-level ops) the decomposition into more primitive bound symbols.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BoundSymbol {
    /// The op called.
    pub op: Op,
    /// Operands, in the op's signature order.
    pub args: Vec<Arg>,
    /// Attributes, in the op's signature order (one per attribute of the signature).
    pub attrs: Vec<Attr>,
    /// Values defined by this call.
    pub outputs: Vec<Value>,
    /// The decomposition: bound symbols that together compute `outputs` from `args`. Empty for
    /// prims.
    pub subsymbols: Vec<BoundSymbol>,
}

impl BoundSymbol {
    /// Values read by this call (its operands; subsymbols read nothing else from outside).
    pub fn inputs(&self) -> Vec<Value> {
        self.args.iter().flat_map(Arg::values).collect()
    }

    /// The same call with every value it mentions (operands, outputs, and those of its
    /// decomposition) replaced by `f(value)`.
    pub fn map_values(&self, f: &dyn Fn(Value) -> Value) -> BoundSymbol {
        BoundSymbol {
            op: self.op,
            args: self
                .args
                .iter()
                .map(|a| match a {
                    Arg::Value(v) => Arg::Value(f(*v)),
                    Arg::List(l) => Arg::List(l.iter().map(|v| f(*v)).collect()),
                    other => other.clone(),
                })
                .collect(),
            attrs: self.attrs.clone(),
            outputs: self.outputs.iter().map(|v| f(*v)).collect(),
            subsymbols: self.subsymbols.iter().map(|s| s.map_values(f)).collect(),
        }
    }
}

/// A program: named inputs, bound symbols in program order, outputs.
///
/// A trace owns the table of every value it mentions (inputs, outputs of top-level bound symbols
/// and of their subsymbols). It prints as Python with [`Trace::to_python`] and parses back with
/// [`crate::parse_trace`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trace {
    /// The function name the trace prints as.
    pub name: String,
    /// The value table, indexed by [`Value`].
    pub values: Vec<ValueInfo>,
    /// Function parameters, in order.
    pub inputs: Vec<Value>,
    /// Program order.
    pub bound_symbols: Vec<BoundSymbol>,
    /// Returned values.
    pub outputs: Vec<Value>,
}

impl Trace {
    /// Metadata of a value. Panics if `v` is not from this trace (handles come from the trace).
    pub fn info(&self, v: Value) -> &ValueInfo {
        &self.values[v.index()]
    }
    /// The printed name of a value; `<invalid>` for a handle from another trace (the verifier
    /// reports those), so that printing a damaged trace never panics.
    pub fn name_of(&self, v: Value) -> &str {
        self.values
            .get(v.index())
            .map_or("<invalid>", |i| i.name.as_str())
    }
    /// The type of a value.
    pub fn ty(&self, v: Value) -> &ValueType {
        &self.info(v).ty
    }
    /// The tensor metadata of a value, if it is a tensor.
    pub fn tensor(&self, v: Value) -> Option<&TensorMeta> {
        self.ty(v).as_tensor()
    }
    /// Looks a value up by its printed name.
    pub fn value_named(&self, name: &str) -> Option<Value> {
        self.values
            .iter()
            .position(|i| i.name == name)
            .map(|i| Value(i as u32))
    }
    /// Prints the trace as Python source (see [`crate::printer`]).
    pub fn to_python(&self) -> String {
        crate::printer::print_trace(self)
    }
    /// Checks the trace's invariants (see [`crate::verify`]).
    pub fn verify(&self) -> crate::Result<()> {
        crate::verify::verify(self)
    }
    /// The same program with values numbered in definition order (inputs first, then each
    /// value where it is defined, decompositions included) and values that nothing defines
    /// dropped. Traces from [`crate::TraceBuilder::build`] and [`crate::parse_trace`] are in
    /// this form, so two of them compare equal exactly when they are the same program.
    pub fn renumbered(&self) -> Trace {
        fn order(bs: &[BoundSymbol], seen: &mut Vec<Option<u32>>, next: &mut u32) {
            for b in bs {
                if b.subsymbols.is_empty() {
                    for &o in &b.outputs {
                        if let Some(slot) = seen.get_mut(o.index()) {
                            if slot.is_none() {
                                *slot = Some(*next);
                                *next += 1;
                            }
                        }
                    }
                } else {
                    order(&b.subsymbols, seen, next);
                }
            }
        }
        let mut map: Vec<Option<u32>> = vec![None; self.values.len()];
        let mut next = 0u32;
        for &i in &self.inputs {
            if let Some(slot) = map.get_mut(i.index()) {
                if slot.is_none() {
                    *slot = Some(next);
                    next += 1;
                }
            }
        }
        order(&self.bound_symbols, &mut map, &mut next);
        let mut values: Vec<Option<ValueInfo>> = vec![None; next as usize];
        for (old, new) in map.iter().enumerate() {
            if let Some(n) = new {
                values[*n as usize] = Some(self.values[old].clone());
            }
        }
        let m = |v: Value| map.get(v.index()).copied().flatten().map_or(v, Value);
        Trace {
            name: self.name.clone(),
            values: values.into_iter().flatten().collect(),
            inputs: self.inputs.iter().map(|v| m(*v)).collect(),
            bound_symbols: self
                .bound_symbols
                .iter()
                .map(|b| b.map_values(&m))
                .collect(),
            outputs: self.outputs.iter().map(|v| m(*v)).collect(),
        }
    }
    /// Every bound symbol, subsymbols included, depth first in program order.
    pub fn walk(&self) -> Vec<&BoundSymbol> {
        fn go<'a>(bs: &'a [BoundSymbol], out: &mut Vec<&'a BoundSymbol>) {
            for b in bs {
                out.push(b);
                go(&b.subsymbols, out);
            }
        }
        let mut out = Vec::new();
        go(&self.bound_symbols, &mut out);
        out
    }
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_python())
    }
}
