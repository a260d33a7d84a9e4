//! Rematerialization across the forward/backward split: which forward values to save for the
//! backward and which to recompute there, chosen by a minimum cut (the approach of Lightning
//! Thunder and of functorch's min-cut partitioner).
//!
//! Every forward value `v` is an edge `v.in -> v.out` whose capacity is what saving it costs (its
//! bytes; the trace's inputs and outputs cost nothing, the caller keeps them anyway). A cheap op
//! (elementwise, reduction, shape, conversion; never random, indexing or a matmul) connects its operands'
//! `out` to its results' `in`, so the backward can recompute it from them; reductions count as
//! cheap too (memory-bound, like the elementwise ops they feed); every other op's results
//! hang from the source (only the forward can compute them). Values the backward reads connect to
//! the sink. A minimum source-sink cut crosses `v.in -> v.out` edges only: those values are saved,
//! and the backward recomputes the cheap ops between them and what it reads.

use std::collections::{HashMap, HashSet};
use thunder_ir::mincut::{FlowGraph, INF};
use thunder_ir::{BoundSymbol, Trace, Value};

/// Whether the backward may recompute `b` from its operands: the op's row of the op table says
/// `recompute` (elementwise, reductions, shape ops, conversions, constants, whole normalizations;
/// not random ops, matmuls, indexing, attention). Communication is never redone behind the user's
/// back (FSDP re-gathers explicitly): collectives have no row.
pub(crate) fn recomputable(b: &BoundSymbol) -> bool {
    b.op.info().is_some_and(|i| i.recompute)
}

/// The values to save and the forward ops (indices into `fwd`, in order) the backward recomputes,
/// given the forward ops, the values the backward reads (`needed`), and the trace's inputs and
/// outputs (free to save).
pub(crate) fn min_cut(
    joint: &Trace,
    fwd: &[BoundSymbol],
    needed: &[Value],
    free: &HashSet<Value>,
) -> (Vec<Value>, Vec<usize>) {
    let bytes = |v: Value| {
        joint
            .tensor(v)
            .map_or(0, |t| (t.shape.numel() * t.dtype.itemsize()) as u64)
    };
    // Nodes: 2 per forward value (in, out), then source and sink.
    let mut id: HashMap<Value, usize> = HashMap::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |v: Value, values: &mut Vec<Value>| {
        *id.entry(v).or_insert_with(|| {
            values.push(v);
            values.len() - 1
        })
    };
    for &v in &joint.inputs {
        add(v, &mut values);
    }
    let mut producer: HashMap<Value, usize> = HashMap::new();
    for (i, b) in fwd.iter().enumerate() {
        for v in b.inputs() {
            add(v, &mut values);
        }
        for &o in &b.outputs {
            add(o, &mut values);
            producer.insert(o, i);
        }
    }
    for &v in needed {
        add(v, &mut values);
    }
    let n = values.len();
    let (s, t) = (2 * n, 2 * n + 1);
    let mut g = FlowGraph::new(2 * n + 2);
    for (k, &v) in values.iter().enumerate() {
        let cost = if free.contains(&v) {
            0
        } else {
            bytes(v).max(1)
        };
        g.add_edge(2 * k, 2 * k + 1, cost);
        match producer.get(&v) {
            Some(&p) if recomputable(&fwd[p]) => {
                for u in fwd[p].inputs() {
                    g.add_edge(2 * id[&u] + 1, 2 * k, INF);
                }
            }
            // Computed by an op the backward must not redo, or an input of the trace.
            _ => g.add_edge(s, 2 * k, INF),
        }
    }
    for &v in needed {
        g.add_edge(2 * id[&v] + 1, t, INF);
    }
    // Of equal cuts the one nearest the backward: it recomputes the least.
    let side: Vec<bool> = g.min_cut(s, t).sink_side.iter().map(|&r| !r).collect();
    let saved: Vec<Value> = values
        .iter()
        .enumerate()
        .filter(|(k, _)| side[2 * k] && !side[2 * k + 1])
        .map(|(_, &v)| v)
        .collect();
    // What the backward recomputes: the cheap ops between the saved values and what it reads.
    // (A free value on the cut that nothing reads is not saved.)
    let saved_set: HashSet<Value> = saved.iter().copied().collect();
    let mut used: HashSet<Value> = HashSet::new();
    let mut recompute: HashSet<usize> = HashSet::new();
    let mut stack: Vec<Value> = needed.to_vec();
    let mut seen: HashSet<Value> = HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if saved_set.contains(&v) {
            used.insert(v);
            continue;
        }
        if let Some(&p) = producer.get(&v) {
            if recompute.insert(p) {
                stack.extend(fwd[p].inputs());
            }
        }
    }
    let mut recompute: Vec<usize> = recompute.into_iter().collect();
    recompute.sort_unstable();
    (
        saved.into_iter().filter(|v| used.contains(v)).collect(),
        recompute,
    )
}
