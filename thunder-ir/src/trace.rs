//! Traces: a program over values, as a list of bound symbols.

pub use crate::args::{Arg, Attr};
use crate::ops::Op;
use crate::value::{TensorMeta, Value, ValueInfo, ValueType};
use serde::{Deserialize, Serialize};

/// How deep expressions and decompositions may nest in trace text (see the module docs).
///
/// Far above what the printer makes (2 levels of each), and low enough that parsing at the
/// limit fits a small thread stack: about 200 KiB in an optimized build, about 800 KiB in a
/// debug build, whose frames are larger.
pub const MAX_NESTING: usize = 256;

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
