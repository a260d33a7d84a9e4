//! The verifier: checks a trace's invariants.
//!
//! - every value has a valid, unique name, and every handle points into the value table;
//! - every tensor's shape has an element count within `i64` ([`crate::Shape::checked_numel`]),
//!   which the meta functions' arithmetic relies on;
//! - decompositions nest at most [`crate::trace::MAX_NESTING`] levels (checking, printing and
//!   renumbering recurse into them);
//! - SSA: each value is defined once (as an input or by one bound symbol), and used only after
//!   its definition; a decomposition may use values defined before its parent and inside it;
//! - the outputs of a torch-level op with a decomposition are defined by that decomposition;
//! - metadata agrees with the meta functions: the recorded type of each output equals what the
//!   prim's meta function (or the torch-level op's decomposition) computes from its operands;
//! - donated buffers (`adamw` with `inplace=True`) are distinct inputs of the trace that nothing
//!   reads after the op and the trace does not return;
//! - the handle an asynchronous collective returns goes to exactly one `dist.wait` and nowhere
//!   else (not an output, not another op's operand).

use crate::error::{IrError, Result};
use crate::infer::{arg_types, dist_types, prim_types, torch_output_types};
use crate::ops::Op;
use crate::trace::{BoundSymbol, Trace};
use crate::value::{check_name, Value, ValueType};
use std::collections::HashSet;

/// Checks `trace`; the first broken invariant is returned as [`IrError::Verify`].
pub fn verify(trace: &Trace) -> Result<()> {
    let mut names = HashSet::new();
    for (i, info) in trace.values.iter().enumerate() {
        check_name(&info.name).map_err(|m| {
            IrError::Verify(format!("value v{i} has invalid name {:?}: {m}", info.name))
        })?;
        if !names.insert(info.name.as_str()) {
            return Err(IrError::Verify(format!(
                "the name {} is used by two values",
                info.name
            )));
        }
        if let ValueType::Tensor(t) = &info.ty {
            // Before any meta function runs on it: they multiply sizes unchecked.
            if t.shape.checked_numel().is_none() {
                return Err(IrError::Verify(format!(
                    "{} has shape {}: its sizes multiply to more than i64::MAX",
                    info.name, t.shape
                )));
            }
        }
    }
    check_nesting(trace)?;
    check_name(&trace.name)
        .map_err(|m| IrError::Verify(format!("trace name {:?}: {m}", trace.name)))?;
    let mut v = Verifier {
        trace,
        defined: vec![false; trace.values.len()],
    };
    for &i in &trace.inputs {
        v.define(i, "the inputs")?;
    }
    let mut visible: HashSet<Value> = trace.inputs.iter().copied().collect();
    v.block(&trace.bound_symbols, &mut visible)?;
    for &o in &trace.outputs {
        v.check_handle(o)?;
        if !visible.contains(&o) {
            return Err(IrError::Verify(format!(
                "output {} is not defined at the top level",
                trace.name_of(o)
            )));
        }
    }
    check_donations(trace)?;
    check_async_handles(trace)
}

/// Decompositions at most [`MAX_NESTING`] deep, checked without recursion: a trace put together
/// by hand (its fields are public) could otherwise overflow the stack of the recursive checks.
fn check_nesting(trace: &Trace) -> Result<()> {
    use crate::trace::MAX_NESTING;
    let mut stack: Vec<(&[BoundSymbol], usize)> = vec![(&trace.bound_symbols, 0)];
    while let Some((bsyms, depth)) = stack.pop() {
        for b in bsyms.iter().filter(|b| !b.subsymbols.is_empty()) {
            if depth >= MAX_NESTING {
                return Err(IrError::Verify(format!(
                    "decompositions are nested more than {MAX_NESTING} levels deep, below `{}`",
                    crate::printer::statement(trace, b)
                )));
            }
            stack.push((&b.subsymbols, depth + 1));
        }
    }
    Ok(())
}

/// Handles of asynchronous collectives: each read by exactly one `dist.wait`, by nothing else.
fn check_async_handles(trace: &Trace) -> Result<()> {
    use crate::ops::DistOp;
    let mut handles: std::collections::HashMap<Value, (String, usize)> = Default::default();
    let mut all = Vec::new();
    fn flatten<'a>(bs: &'a [BoundSymbol], out: &mut Vec<&'a BoundSymbol>) {
        for b in bs {
            out.push(b);
            flatten(&b.subsymbols, out);
        }
    }
    flatten(&trace.bound_symbols, &mut all);
    for b in &all {
        if let Op::Dist(d) = b.op {
            if d.is_async(&b.attrs) {
                for &o in &b.outputs {
                    handles.insert(o, (crate::printer::statement(trace, b), 0));
                }
            }
        }
    }
    if handles.is_empty() {
        return Ok(());
    }
    for b in &all {
        for v in b.inputs() {
            if let Some((stmt, waits)) = handles.get_mut(&v) {
                if b.op != Op::Dist(DistOp::Wait) {
                    return Err(IrError::Verify(format!(
                        "{} is the handle of an asynchronous `{stmt}`: only dist.wait may read it, \
                         but `{}` does",
                        trace.name_of(v),
                        crate::printer::statement(trace, b)
                    )));
                }
                *waits += 1;
            }
        }
    }
    for &o in &trace.outputs {
        if let Some((stmt, _)) = handles.get(&o) {
            return Err(IrError::Verify(format!(
                "{} is the handle of an asynchronous `{stmt}` and is returned; return its dist.wait",
                trace.name_of(o)
            )));
        }
    }
    let mut unwaited: Vec<_> = handles.iter().filter(|(_, (_, n))| *n != 1).collect();
    unwaited.sort_by_key(|(v, _)| v.0);
    if let Some((v, (stmt, n))) = unwaited.first() {
        return Err(IrError::Verify(format!(
            "{} is the handle of an asynchronous `{stmt}`: it must go to exactly one dist.wait, \
             it goes to {n}",
            trace.name_of(**v)
        )));
    }
    Ok(())
}

/// The operands an op may overwrite: `adamw` with `inplace=True` donates its parameters and
/// moments.
pub(crate) fn donated_operands(b: &BoundSymbol) -> Vec<Value> {
    use crate::ops::TorchOp;
    use crate::trace::{Arg, Attr};
    match (b.op, b.attrs.get(5)) {
        (Op::Torch(TorchOp::Adamw), Some(Attr::Bool(true))) => [0, 2, 3]
            .iter()
            .filter_map(|&k| match b.args.get(k) {
                Some(Arg::List(l)) => Some(l.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

fn check_donations(trace: &Trace) -> Result<()> {
    let inputs: HashSet<Value> = trace.inputs.iter().copied().collect();
    let outputs: HashSet<Value> = trace.outputs.iter().copied().collect();
    for (i, b) in trace.bound_symbols.iter().enumerate() {
        let donated = donated_operands(b);
        if donated.is_empty() {
            continue;
        }
        let here = || crate::printer::statement(trace, b);
        let mut seen = HashSet::new();
        for &v in &donated {
            let name = trace.name_of(v);
            let why = if !inputs.contains(&v) {
                Some("is not an input of the trace (only the caller's buffers may be donated)")
            } else if !seen.insert(v) {
                Some("is donated twice")
            } else if outputs.contains(&v) {
                Some("is also returned by the trace")
            } else if b.inputs().iter().filter(|&&u| u == v).count() > 1 {
                Some("is also read by the same op as a gradient or step")
            } else if trace.bound_symbols[i + 1..]
                .iter()
                .any(|later| later.inputs().contains(&v))
            {
                Some("is read after the op that overwrites it")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(IrError::Verify(format!(
                    "{name} {why}, in `{}`; build the op with inplace=False to keep it",
                    here()
                )));
            }
        }
    }
    Ok(())
}

struct Verifier<'a> {
    trace: &'a Trace,
    defined: Vec<bool>,
}

impl Verifier<'_> {
    fn check_handle(&self, v: Value) -> Result<()> {
        if v.index() < self.trace.values.len() {
            Ok(())
        } else {
            Err(IrError::Verify(format!(
                "handle v{} is outside the value table ({} values)",
                v.0,
                self.trace.values.len()
            )))
        }
    }

    fn define(&mut self, v: Value, by: &str) -> Result<()> {
        self.check_handle(v)?;
        if std::mem::replace(&mut self.defined[v.index()], true) {
            return Err(IrError::Verify(format!(
                "{} is defined twice (again by {by})",
                self.trace.name_of(v)
            )));
        }
        Ok(())
    }

    fn block(&mut self, bsyms: &[BoundSymbol], visible: &mut HashSet<Value>) -> Result<()> {
        for b in bsyms {
            self.bound_symbol(b, visible)?;
        }
        Ok(())
    }

    /// One bound symbol and its decomposition. The recursion (through [`Verifier::block`])
    /// keeps small frames: the checks of the op itself happen in [`Verifier::check_op`].
    fn bound_symbol(&mut self, b: &BoundSymbol, visible: &mut HashSet<Value>) -> Result<()> {
        self.check_op(b, visible)?;
        if b.subsymbols.is_empty() {
            for &o in &b.outputs {
                self.define(o, &b.op.qualified_name())?;
            }
        } else {
            // Decompositions nest at most MAX_NESTING deep (`check_nesting`).
            let mut inner = visible.clone();
            self.block(&b.subsymbols, &mut inner)?;
            self.check_decomposed_outputs(b, &inner, visible)?;
        }
        for b2 in &b.outputs {
            visible.insert(*b2);
        }
        // Values a decomposition defines internally stay local to it.
        Ok(())
    }

    /// The op's handles, operands, attributes and output types.
    #[inline(never)]
    fn check_op(&self, b: &BoundSymbol, visible: &HashSet<Value>) -> Result<()> {
        let t = self.trace;
        let qn = b.op.qualified_name();
        // Every handle first: the error messages below print the statement, which names them all.
        for v in b.inputs().into_iter().chain(b.outputs.iter().copied()) {
            self.check_handle(v)?;
        }
        let here = || crate::printer::statement(t, b);
        for v in b.inputs() {
            if !visible.contains(&v) {
                return Err(IrError::Verify(format!(
                    "{} is used before it is defined, in `{}`",
                    t.name_of(v),
                    here()
                )));
            }
        }
        let sig = b.op.signature();
        sig.check_operands(b.op, &b.args)
            .map_err(|e| IrError::Verify(format!("{e}, in `{}`", here())))?;
        sig.check_attrs(b.op, &b.attrs)
            .map_err(|e| IrError::Verify(format!("{e}, in `{}`", here())))?;
        if let Some(n) = sig.num_outputs {
            if b.outputs.len() != n {
                return Err(IrError::Verify(format!(
                    "{qn} defines {n} values, not {}, in `{}`",
                    b.outputs.len(),
                    here()
                )));
            }
        }
        let types = arg_types(&t.values, &b.args)?;
        let expected = match b.op {
            Op::Prim(p) => {
                if !b.subsymbols.is_empty() {
                    return Err(IrError::Verify(format!(
                        "prim {qn} has a decomposition, in `{}`",
                        here()
                    )));
                }
                prim_types(p, &types, &b.attrs)
            }
            Op::Torch(op) => torch_output_types(op, &types, &b.args, &b.attrs),
            Op::Dist(d) => {
                if !b.subsymbols.is_empty() {
                    return Err(IrError::Verify(format!(
                        "collective {qn} has a decomposition, in `{}`",
                        here()
                    )));
                }
                dist_types(d, &types, &b.attrs)
            }
        }
        .map_err(|e| IrError::Verify(format!("{e}, in `{}`", here())))?;
        if expected.len() != b.outputs.len() {
            return Err(IrError::Verify(format!(
                "{qn} should define {} values but defines {}, in `{}`",
                expected.len(),
                b.outputs.len(),
                here()
            )));
        }
        for (&o, e) in b.outputs.iter().zip(&expected) {
            if t.ty(o) != e {
                return Err(IrError::Verify(format!(
                    "{} is recorded as \"{}\" but {qn} makes \"{e}\", in `{}`",
                    t.name_of(o),
                    t.ty(o),
                    here()
                )));
            }
        }
        Ok(())
    }

    /// The outputs of a torch-level op are defined by its decomposition, not before it.
    #[inline(never)]
    fn check_decomposed_outputs(
        &self,
        b: &BoundSymbol,
        inner: &HashSet<Value>,
        visible: &HashSet<Value>,
    ) -> Result<()> {
        for &o in &b.outputs {
            if !inner.contains(&o) || visible.contains(&o) {
                return Err(IrError::Verify(format!(
                    "output {} of {} is not defined by its decomposition, in `{}`",
                    self.trace.name_of(o),
                    b.op.qualified_name(),
                    crate::printer::statement(self.trace, b)
                )));
            }
        }
        Ok(())
    }
}
