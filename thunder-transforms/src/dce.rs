//! Dead-code elimination.

use crate::Result;
use std::collections::HashSet;
use thunder_ir::{BoundSymbol, Op, Trace, Value};

/// Whether a bound symbol writes into an operand (`copy_`, or a torch-level op whose decomposition
/// does): such calls are kept even when nothing reads their outputs.
pub fn has_side_effects(b: &BoundSymbol) -> bool {
    match b.op {
        Op::Prim(p) => p.is_inplace(),
        Op::Torch(_) => b.subsymbols.iter().any(has_side_effects),
        // Every rank runs the same trace through the same passes: an unused collective is
        // dropped on all of them alike.
        Op::Dist(_) => false,
    }
}

/// Whether a bound symbol draws random numbers (itself or in its decomposition).
pub fn is_random(b: &BoundSymbol) -> bool {
    match b.op {
        Op::Prim(p) => p.is_random(),
        Op::Torch(_) => b.subsymbols.iter().any(is_random),
        Op::Dist(_) => false,
    }
}

/// Removes the top-level bound symbols whose outputs nothing needs: neither the trace's outputs
/// nor a kept bound symbol reads them. Calls with side effects are kept. The inputs stay as they
/// are (the signature does not change); decompositions are left alone.
///
/// An unused random op is removed too, as in PyTorch's own graph passes: the values the kept random
/// ops draw may then differ from the original program's.
pub fn dce(trace: &Trace) -> Result<Trace> {
    let mut needed: HashSet<Value> = trace.outputs.iter().copied().collect();
    let mut keep = vec![false; trace.bound_symbols.len()];
    for (i, b) in trace.bound_symbols.iter().enumerate().rev() {
        if has_side_effects(b) || b.outputs.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(b.inputs());
        }
    }
    let mut t = trace.clone();
    t.bound_symbols = trace
        .bound_symbols
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(b, _)| b.clone())
        .collect();
    Ok(t.renumbered())
}
