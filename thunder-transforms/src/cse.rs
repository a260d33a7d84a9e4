//! Common-subexpression elimination.

use crate::dce::{has_side_effects, is_random};
use crate::Result;
use std::collections::HashMap;
use thunder_ir::{Arg, Attr, Op, Trace, Value};

fn subst(v: Value, map: &HashMap<Value, Value>) -> Value {
    map.get(&v).copied().unwrap_or(v)
}

/// Replaces each top-level bound symbol that repeats an earlier one (same op, same operands after
/// earlier replacements, same attributes) by the earlier one's outputs. Random ops and ops with
/// side effects are never merged. Metadata needs no check: equal op, operands and attributes give
/// equal metadata, since meta functions are deterministic.
pub fn cse(trace: &Trace) -> Result<Trace> {
    let mut map: HashMap<Value, Value> = HashMap::new();
    let mut seen: HashMap<(Op, Vec<Arg>, Vec<Attr>), Vec<Value>> = HashMap::new();
    let mut kept = Vec::with_capacity(trace.bound_symbols.len());
    for b in &trace.bound_symbols {
        // Earlier replacements apply to the operands (outputs are never in the map).
        let b = b.map_values(&|v| subst(v, &map));
        if is_random(&b) || has_side_effects(&b) {
            kept.push(b);
            continue;
        }
        let key = (b.op, b.args.clone(), b.attrs.clone());
        if let Some(prev) = seen.get(&key) {
            for (o, p) in b.outputs.iter().zip(prev) {
                map.insert(*o, *p);
            }
            continue;
        }
        seen.insert(key, b.outputs.clone());
        kept.push(b);
    }
    let mut t = trace.clone();
    t.bound_symbols = kept;
    t.outputs = trace.outputs.iter().map(|v| subst(*v, &map)).collect();
    Ok(t.renumbered())
}
