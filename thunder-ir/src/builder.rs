//! [`TraceBuilder`]: build traces from Rust code with calls that read like PyTorch.

use crate::dtype::NumberType;
use crate::error::{IrError, Result};
use crate::infer::{arg_types, dist_types, prim_types};
use crate::ops::prims::PrimOp;
use crate::ops::{torch, Op, TorchOp};
use crate::trace::{Arg, Attr, BoundSymbol, Trace};
use crate::value::{check_name, TensorMeta, Value, ValueInfo, ValueType};
use std::collections::HashSet;

/// Builds a [`Trace`] one call at a time.
///
/// Every call runs the op's meta function (prims) or decomposition (torch-level ops) at once, so
/// a bad argument is reported where it is passed, with the op and argument named. Methods for
/// torch-level ops (`linear`, `softmax`, `cross_entropy`, ...) are in [`crate::ops::torch`];
/// methods for prims start with `prim_` or are reached through [`TraceBuilder::prim`].
///
/// ```
/// use thunder_ir::{DType, TensorMeta, TraceBuilder};
///
/// let mut b = TraceBuilder::new("mlp");
/// let x = b.input("x", TensorMeta::new(DType::F32, [4, 16]))?;
/// let w = b.input("w", TensorMeta::new(DType::F32, [32, 16]))?;
/// let h = b.linear(x, w, None)?;
/// let y = b.relu(h)?;
/// let trace = b.build(&[y])?;
/// assert_eq!(trace.tensor(y).unwrap().shape.sizes(), vec![4, 32]);
/// # Ok::<(), thunder_ir::IrError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TraceBuilder {
    name: String,
    values: Vec<ValueInfo>,
    names: HashSet<String>,
    next_tmp: usize,
    inputs: Vec<Value>,
    /// `scopes[0]` is the top level; a torch-level call opens a scope for its decomposition.
    scopes: Vec<Vec<BoundSymbol>>,
}

impl TraceBuilder {
    /// Appends an already defined value to the inputs (the scratch builder of type inference).
    pub(crate) fn push_input(&mut self, v: Value) {
        self.inputs.push(v);
    }

    /// A builder for a function called `name` (a Python identifier).
    pub fn new(name: impl Into<String>) -> Self {
        TraceBuilder {
            name: name.into(),
            values: Vec::new(),
            names: HashSet::new(),
            next_tmp: 0,
            inputs: Vec::new(),
            scopes: vec![Vec::new()],
        }
    }

    /// Adds a tensor parameter. A shape whose element count does not fit in `i64` is an
    /// [`IrError::Overflow`].
    pub fn input(&mut self, name: &str, meta: TensorMeta) -> Result<Value> {
        // Every other tensor of the builder comes out of a meta function, which checks its
        // outputs the same way: so every shape the builder holds passes `checked_numel`.
        meta.shape
            .check_numel("TraceBuilder", &format!("input {name} of shape"))?;
        let v = self.define(name.to_string(), ValueType::Tensor(meta))?;
        self.inputs.push(v);
        Ok(v)
    }

    /// Adds a number parameter (a Python scalar known only at run time).
    pub fn number_input(&mut self, name: &str, ty: NumberType) -> Result<Value> {
        let v = self.define(name.to_string(), ValueType::Number(ty))?;
        self.inputs.push(v);
        Ok(v)
    }

    /// The type of a value made by this builder.
    pub fn ty(&self, v: Value) -> Result<&ValueType> {
        self.values
            .get(v.index())
            .map(|i| &i.ty)
            .ok_or(IrError::UnknownValue(v.0))
    }

    /// The tensor metadata of a value; an error naming `op` if it is not a tensor.
    pub fn tensor(&self, v: Value) -> Result<&TensorMeta> {
        match self.ty(v)? {
            ValueType::Tensor(t) => Ok(t),
            ValueType::Number(n) => Err(IrError::invalid(
                "TraceBuilder",
                format!("{} is a {n}, not a tensor", self.values[v.index()].name),
            )),
        }
    }

    /// The printed name of a value.
    pub fn name_of(&self, v: Value) -> Result<&str> {
        self.values
            .get(v.index())
            .map(|i| i.name.as_str())
            .ok_or(IrError::UnknownValue(v.0))
    }

    /// Declares `t`'s inputs (names and types) as inputs of this trace; returns the map from
    /// `t`'s values to the new ones (what a transform that rewrites `t` starts from).
    pub fn inputs_like(&mut self, t: &Trace) -> Result<std::collections::HashMap<Value, Value>> {
        let mut m = std::collections::HashMap::with_capacity(t.inputs.len());
        for &i in &t.inputs {
            let v = match t.ty(i) {
                ValueType::Tensor(meta) => self.input(t.name_of(i), meta.clone())?,
                ValueType::Number(n) => self.number_input(t.name_of(i), *n)?,
            };
            m.insert(i, v);
        }
        Ok(m)
    }

    /// Records `s` (a bound symbol of another trace) again, its operands renamed through `m`
    /// (`m` maps that trace's values to this one's); adds its outputs to `m` and returns them.
    pub fn replay(
        &mut self,
        s: &BoundSymbol,
        m: &mut std::collections::HashMap<Value, Value>,
    ) -> Result<Vec<Value>> {
        let mut args = Vec::with_capacity(s.args.len());
        for a in &s.args {
            let look = |v: &Value| m.get(v).copied().ok_or(IrError::UnknownValue(v.0));
            args.push(match a {
                Arg::Value(v) => Arg::Value(look(v)?),
                Arg::List(l) => Arg::List(l.iter().map(look).collect::<Result<_>>()?),
                other => other.clone(),
            });
        }
        let outs = self.call(s.op, args, s.attrs.clone())?;
        for (o, n) in s.outputs.iter().zip(&outs) {
            m.insert(*o, *n);
        }
        Ok(outs)
    }

    /// Finishes the trace, returning `outputs`, and checks it with the verifier.
    ///
    /// Value handles are renumbered in definition order (see [`Trace::renumbered`]): look values
    /// of the built trace up by name ([`Trace::value_named`]) or through its inputs and outputs.
    pub fn build(mut self, outputs: &[Value]) -> Result<Trace> {
        for &o in outputs {
            self.ty(o)?;
        }
        let bound_symbols = self.scopes.swap_remove(0);
        let trace = Trace {
            name: self.name,
            values: self.values,
            inputs: self.inputs,
            bound_symbols,
            outputs: outputs.to_vec(),
        };
        // Inputs may be declared between calls; number values in definition order.
        let trace = trace.renumbered();
        trace.verify()?;
        Ok(trace)
    }

    /// Records a call of any op. Torch-level ops run their decomposition, recorded as the new
    /// bound symbol's subsymbols. On error nothing is recorded.
    pub fn call(&mut self, op: Op, args: Vec<Arg>, attrs: Vec<Attr>) -> Result<Vec<Value>> {
        let mark = self.values.len();
        let depth = self.scopes.len();
        let result = self.call_inner(op, args, attrs);
        if result.is_err() {
            // Forget whatever the failed call defined, so the builder stays usable.
            for info in self.values.drain(mark..) {
                self.names.remove(&info.name);
            }
            self.scopes.truncate(depth);
        }
        result
    }

    fn call_inner(&mut self, op: Op, args: Vec<Arg>, attrs: Vec<Attr>) -> Result<Vec<Value>> {
        let sig = op.signature();
        sig.check_operands(op, &args)?;
        sig.check_attrs(op, &attrs)?;
        for a in &args {
            for v in a.values() {
                self.ty(v)?;
            }
        }
        match op {
            Op::Prim(_) | Op::Dist(_) => {
                let types = arg_types(&self.values, &args)?;
                let tys = match op {
                    Op::Prim(p) => prim_types(p, &types, &attrs)?,
                    Op::Dist(d) => dist_types(d, &types, &attrs)?,
                    Op::Torch(_) => unreachable!(),
                };
                let outputs = tys
                    .into_iter()
                    .map(|ty| {
                        let name = self.fresh_name();
                        self.define(name, ty)
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.push(BoundSymbol {
                    op,
                    args,
                    attrs,
                    outputs: outputs.clone(),
                    subsymbols: Vec::new(),
                });
                Ok(outputs)
            }
            Op::Torch(t) => {
                let mark = self.values.len();
                self.scopes.push(Vec::new());
                let outputs = torch::decompose(self, t, &args, &attrs)?;
                let subsymbols = self.scopes.pop().unwrap_or_default();
                let fresh = |v: &Value| v.index() >= mark;
                if subsymbols.is_empty() && !outputs.iter().any(fresh) {
                    // The op is the identity here (e.g. `to` the same dtype): PyTorch returns the
                    // input itself, and so does the trace, without recording anything.
                    return Ok(outputs);
                }
                if let Some(v) = outputs.iter().find(|v| !fresh(v)) {
                    return Err(IrError::invalid(
                        op.qualified_name(),
                        format!(
                            "internal: the decomposition returns {} unchanged next to new values",
                            self.values[v.index()].name
                        ),
                    ));
                }
                self.push(BoundSymbol {
                    op,
                    args,
                    attrs,
                    outputs: outputs.clone(),
                    subsymbols,
                });
                Ok(outputs)
            }
        }
    }

    /// Records a prim with one output.
    pub fn prim(&mut self, op: PrimOp, args: Vec<Arg>, attrs: Vec<Attr>) -> Result<Value> {
        let out = self.call(Op::Prim(op), args, attrs)?;
        out.first()
            .copied()
            .ok_or_else(|| IrError::invalid(Op::Prim(op).qualified_name(), "internal: no output"))
    }

    /// Records a torch-level op with one output.
    pub(crate) fn torch1(
        &mut self,
        op: TorchOp,
        args: Vec<Arg>,
        attrs: Vec<Attr>,
    ) -> Result<Value> {
        let out = self.call(Op::Torch(op), args, attrs)?;
        out.first()
            .copied()
            .ok_or_else(|| IrError::invalid(Op::Torch(op).qualified_name(), "internal: no output"))
    }

    fn push(&mut self, b: BoundSymbol) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(b);
        }
    }

    fn fresh_name(&mut self) -> String {
        loop {
            let n = format!("t{}", self.next_tmp);
            self.next_tmp += 1;
            if !self.names.contains(&n) {
                return n;
            }
        }
    }

    pub(crate) fn define(&mut self, name: String, ty: ValueType) -> Result<Value> {
        check_name(&name).map_err(|reason| IrError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        if !self.names.insert(name.clone()) {
            return Err(IrError::InvalidName {
                name,
                reason: "it is already used in this trace".into(),
            });
        }
        let v = value_handle(self.values.len())?;
        self.values.push(ValueInfo { name, ty });
        Ok(v)
    }
}

/// The handle of the value at `index` of a value table; handles are `u32`.
pub(crate) fn value_handle(index: usize) -> Result<Value> {
    u32::try_from(index).map(Value).map_err(|_| {
        IrError::overflow(
            "TraceBuilder",
            format!("a trace holds at most {} values", u32::MAX),
        )
    })
}
