//! Rematerialization between the regions of one trace, by minimum cut: see [`rematerialize`].

use super::{kind_of, Kind, Region, Schedule};
use std::collections::{HashMap, HashSet};
use thunder_ir::mincut::{FlowGraph, INF};
use thunder_ir::{BoundSymbol, Op, PrimOp, Trace, Value};

/// Most ops one consumer's cut looks back through (the flow graph has two nodes per value of
/// these ops): a bound on plan compile time, never on what gets fused.
const MAX_RECOMPUTE_OPS: usize = 64;

/// Rematerialization between the regions of one trace, by minimum cut (Lightning Thunder's
/// approach). For each region `c`, in order, the values it reads that other regions compute with
/// elementwise and view ops may instead be recomputed inside `c` from what those ops read, back
/// to any frontier: a flow graph has an edge `u.in -> u.out` per value `u`, whose capacity is
/// what making `u` an input of `c` costs in memory traffic (reading it, where a broadcast reads
/// what it broadcasts; plus writing it, when its producer writes it for `c` alone or would have
/// to export it; nothing for what `c` reads anyway; no cut through values computed nowhere any
/// more). Ops connect their operands' `out` to their results' `in`, the frontier hangs from the
/// source, the values `c` reads from other regions go to the sink. When the minimum cut costs
/// less than passing those values as they are, `c` reads the values on the cut and recomputes
/// the ops after them (`Region::recompute`); producers export what the cut needs of theirs
/// (small values only, such as a row's statistic) and drop what nobody needs any more
/// (`Region::dead`). Recomputed ops are computed from `c`'s inputs alone, so every schedule can
/// read them at any index.
pub(super) fn rematerialize(trace: &Trace, ops: &[BoundSymbol], regions: &mut [Region]) {
    let mut producer: HashMap<Value, usize> = HashMap::new();
    for (i, b) in ops.iter().enumerate() {
        for &o in &b.outputs {
            producer.insert(o, i);
        }
    }
    for c in 0..regions.len() {
        let cut = Cut::new(trace, ops, &producer, regions, c);
        if cut.candidates.is_empty() {
            continue;
        }
        let pulled = cut.pulled();
        let Some((read, recompute)) = cut.solve(regions, &pulled) else {
            continue;
        };
        cut.apply(regions, &read, recompute);
    }
}

/// Whether op `i` may be recomputed in another region: an elementwise or view op.
fn recomputable(ops: &[BoundSymbol], i: usize) -> bool {
    matches!(kind_of(&ops[i]), Some(Kind::Elementwise | Kind::View))
}

/// What the cut of one consumer region `c` looks at: the other regions' ops and what is read.
struct Cut<'a> {
    trace: &'a Trace,
    ops: &'a [BoundSymbol],
    producer: &'a HashMap<Value, usize>,
    c: usize,
    /// Which region computes each op (views that run outside belong to none).
    owner: HashMap<usize, usize>,
    /// Ops that run nowhere.
    dead: HashSet<usize>,
    /// Values units other than `c` read.
    read_elsewhere: HashSet<Value>,
    /// The values `c` reads that other regions compute with elementwise and view ops.
    candidates: Vec<Value>,
}

impl<'a> Cut<'a> {
    fn new(
        trace: &'a Trace,
        ops: &'a [BoundSymbol],
        producer: &'a HashMap<Value, usize>,
        regions: &[Region],
        c: usize,
    ) -> Self {
        // Which region computes each op (views that run outside belong to none), which ops run
        // nowhere, and which values units other than `c` read.
        let mut owner: HashMap<usize, usize> = HashMap::new();
        let mut dead: HashSet<usize> = HashSet::new();
        let mut in_region: HashSet<usize> = HashSet::new();
        let mut read_elsewhere: HashSet<Value> = trace.outputs.iter().copied().collect();
        for (r, reg) in regions.iter().enumerate() {
            for &i in &reg.ops {
                if !reg.outside.contains(&i) {
                    owner.insert(i, r);
                }
            }
            dead.extend(reg.dead.iter().copied());
            in_region.extend(reg.ops.iter().chain(&reg.dead).copied());
            for &i in &reg.outside {
                read_elsewhere.extend(ops[i].inputs());
            }
            if r != c {
                read_elsewhere.extend(reg.inputs.iter().copied());
            }
        }
        for (i, b) in ops.iter().enumerate() {
            if !in_region.contains(&i) {
                read_elsewhere.extend(b.inputs());
            }
        }
        let candidates: Vec<Value> = regions[c]
            .inputs
            .iter()
            .copied()
            .filter(|v| {
                producer.get(v).is_some_and(|&p| {
                    owner.get(&p).is_some_and(|&g| g != c) && recomputable(ops, p)
                })
            })
            .collect();
        Cut {
            trace,
            ops,
            producer,
            c,
            owner,
            dead,
            read_elsewhere,
            candidates,
        }
    }

    /// The ops `c` could recompute: back from the candidates through elementwise and view ops
    /// of other regions (and ops no region runs any more).
    fn pulled(&self) -> Vec<usize> {
        let (ops, c) = (self.ops, self.c);
        let mut pulled: Vec<usize> = Vec::new();
        let mut stack: Vec<Value> = self.candidates.clone();
        let mut seen: HashSet<Value> = HashSet::new();
        while let Some(u) = stack.pop() {
            if !seen.insert(u) || pulled.len() >= MAX_RECOMPUTE_OPS {
                continue;
            }
            if let Some(&i) = self.producer.get(&u) {
                let other = self.owner.get(&i).is_some_and(|&g| g != c) || self.dead.contains(&i);
                if other && recomputable(ops, i) && !pulled.contains(&i) {
                    pulled.push(i);
                    stack.extend(ops[i].inputs());
                }
            }
        }
        pulled
    }

    /// Bytes a kernel reads for `u`: a broadcast reads its operand.
    fn read_bytes(&self, mut u: Value) -> u64 {
        loop {
            match self.producer.get(&u).map(|&i| &self.ops[i]) {
                Some(b) if b.op == Op::Prim(PrimOp::BroadcastInDim) => match b.args[0].as_value() {
                    Some(x) => u = x,
                    None => return 0,
                },
                _ => return bytes(self.trace, u) as u64,
            }
        }
    }

    /// What making `u` an input of `c` costs in memory traffic (see [`rematerialize`]).
    fn cost(&self, regions: &[Region], u: Value) -> u64 {
        let (trace, ops, c) = (self.trace, self.ops, self.c);
        let p = self.producer.get(&u).copied();
        if p.is_some_and(|i| self.dead.contains(&i)) {
            return INF; // computed nowhere any more
        }
        if regions[c].inputs.contains(&u) && !self.candidates.contains(&u) {
            return 0; // read anyway
        }
        let write = match p.and_then(|i| self.owner.get(&i).map(|&h| (i, h))) {
            Some((_, h)) if h == c => return 0,
            Some(_) if self.read_elsewhere.contains(&u) => 0,
            Some((i, h))
                if regions[h].outputs.contains(&u) || exportable(trace, ops, &regions[h], i, u) =>
            {
                bytes(trace, u) as u64
            }
            Some(_) => return INF,
            None => 0,
        };
        self.read_bytes(u).saturating_add(write)
    }

    /// The minimum cut over the `pulled` ops: when it costs less than passing the candidates as
    /// they are, the values on the cut (which `c` reads) and the ops after them (which `c`
    /// recomputes).
    fn solve(&self, regions: &[Region], pulled: &[usize]) -> Option<(Vec<Value>, Vec<usize>)> {
        let (ops, producer, candidates) = (self.ops, self.producer, &self.candidates);
        let pulled_set: HashSet<usize> = pulled.iter().copied().collect();
        // Two nodes per value, then the source and the sink.
        // (Candidates first: the walk may have stopped before reaching their producers.)
        let mut values: Vec<Value> = Vec::new();
        let mut id: HashMap<Value, usize> = HashMap::new();
        let pulled_values = pulled.iter().flat_map(|&i| {
            ops[i]
                .inputs()
                .into_iter()
                .chain(ops[i].outputs.iter().copied())
        });
        for v in candidates.iter().copied().chain(pulled_values) {
            id.entry(v).or_insert_with(|| {
                values.push(v);
                values.len() - 1
            });
        }
        let n = values.len();
        let (s, t) = (2 * n, 2 * n + 1);
        let mut g = FlowGraph::new(2 * n + 2);
        for (k, &v) in values.iter().enumerate() {
            g.add_edge(2 * k, 2 * k + 1, self.cost(regions, v));
            match producer.get(&v) {
                Some(&p) if pulled_set.contains(&p) => {
                    for u in ops[p].inputs() {
                        g.add_edge(2 * id[&u] + 1, 2 * k, INF);
                    }
                }
                _ => g.add_edge(s, 2 * k, INF),
            }
        }
        for v in candidates {
            g.add_edge(2 * id[v] + 1, t, INF);
        }
        let passing: u64 = candidates.iter().map(|&v| self.cost(regions, v)).sum();
        let cut = g.min_cut(s, t);
        if cut.flow >= passing {
            return None;
        }
        // Of equal cuts the one nearest `c`: it recomputes the least.
        let side: Vec<bool> = cut.sink_side.iter().map(|&r| !r).collect();
        // Back from the candidates: the values on the cut are read, the ops after them are
        // recomputed (every value reached is on the sink's side of the cut).
        let mut read: Vec<Value> = Vec::new();
        let mut recompute: Vec<usize> = Vec::new();
        let mut stack: Vec<Value> = candidates.clone();
        let mut seen: HashSet<Value> = HashSet::new();
        while let Some(u) = stack.pop() {
            if !seen.insert(u) {
                continue;
            }
            let k = id[&u];
            if side[2 * k] {
                read.push(u);
            } else if let Some(&p) = producer.get(&u).filter(|p| pulled_set.contains(p)) {
                if !recompute.contains(&p) {
                    recompute.push(p);
                    stack.extend(ops[p].inputs());
                }
            }
        }
        Some((read, recompute))
    }

    /// `c` reads `read` and recomputes `recompute`; the producers of what it reads export it,
    /// and what nobody needs any more goes ([`clean_up`]).
    fn apply(&self, regions: &mut [Region], read: &[Value], recompute: Vec<usize>) {
        let (ops, c) = (self.ops, self.c);
        let reg = &mut regions[c];
        reg.recompute.extend(recompute);
        reg.recompute.sort_unstable();
        reg.recompute.dedup();
        for &u in read {
            if !reg.inputs.contains(&u) {
                reg.inputs.push(u);
            }
        }
        for &u in read {
            if let Some(&h) = self.producer.get(&u).and_then(|i| self.owner.get(i)) {
                if h != c && !regions[h].outputs.contains(&u) {
                    regions[h].outputs.push(u);
                }
            }
        }
        // The candidates `c` now recomputes leave its inputs (the clean-up below removes them,
        // and whatever nobody needs any more).
        let recomputed: HashSet<Value> = regions[c]
            .recompute
            .iter()
            .flat_map(|&i| ops[i].outputs.iter().copied())
            .collect();
        regions[c].inputs.retain(|u| !recomputed.contains(u));
        clean_up(self.trace, ops, regions);
    }
}

fn bytes(trace: &Trace, v: Value) -> usize {
    trace
        .tensor(v)
        .map_or(0, |t| t.shape.numel() * t.dtype.itemsize())
}

/// Whether region `r` can write `u`, the result of its op `i`, as a new output: a value its
/// kernel computes at the indices it writes (any shape of a pointwise region's outputs; a rows
/// region's full or reduced shape; a columns region's values after its reductions), not a view.
fn exportable(trace: &Trace, ops: &[BoundSymbol], r: &Region, i: usize, u: Value) -> bool {
    if !r.ops.contains(&i) || kind_of(&ops[i]) == Some(Kind::View) {
        return false;
    }
    let Some(shape) = trace.tensor(u).map(|t| t.shape.sizes()) else {
        return false;
    };
    match &r.schedule {
        Schedule::Pointwise => r
            .outputs
            .iter()
            .any(|&o| trace.tensor(o).is_some_and(|t| t.shape.sizes() == shape)),
        Schedule::Rows { full, k } => shape == *full || shape[..] == full[..full.len() - k],
        Schedule::Columns { full, k } => shape[..] == full[*k..],
    }
}

/// Outputs nothing reads any more (their readers recompute them) go, with the ops that only
/// computed them and the inputs only those read; until nothing changes. A region may be left
/// without ops (all of them recomputed elsewhere or not needed): it stays, with its dead ops, and
/// the plan runs nothing for it. A columns or rows region left without reductions becomes
/// pointwise.
fn clean_up(trace: &Trace, ops: &[BoundSymbol], regions: &mut [Region]) {
    loop {
        let mut needed: HashSet<Value> = trace.outputs.iter().copied().collect();
        for r in regions.iter() {
            needed.extend(r.inputs.iter().copied());
            for &i in &r.outside {
                needed.extend(ops[i].inputs());
            }
        }
        let in_region: HashSet<usize> = regions
            .iter()
            .flat_map(|r| r.ops.iter().chain(&r.dead).copied())
            .collect();
        for (i, b) in ops.iter().enumerate() {
            if !in_region.contains(&i) {
                needed.extend(b.inputs());
            }
        }
        let mut changed = false;
        for r in regions.iter_mut() {
            let before = (r.outputs.len(), r.ops.len(), r.inputs.len());
            r.outputs.retain(|o| needed.contains(o));
            drop_dead_ops(ops, r);
            let defined: HashSet<Value> = r
                .ops
                .iter()
                .chain(&r.recompute)
                .flat_map(|&i| ops[i].outputs.iter().copied())
                .collect();
            let read: HashSet<Value> = r
                .ops
                .iter()
                .chain(&r.recompute)
                .flat_map(|&i| ops[i].inputs())
                .filter(|u| !defined.contains(u))
                .collect();
            r.inputs.retain(|u| read.contains(u));
            // Recomputed ops the region no longer reads.
            let mut live: HashSet<Value> = r.ops.iter().flat_map(|&i| ops[i].inputs()).collect();
            let mut keep = Vec::new();
            for &i in r.recompute.iter().rev() {
                if ops[i].outputs.iter().any(|o| live.contains(o)) {
                    live.extend(ops[i].inputs());
                    keep.push(i);
                }
            }
            keep.reverse();
            changed |= keep.len() != r.recompute.len();
            r.recompute = keep;
            if matches!(r.schedule, Schedule::Columns { .. } | Schedule::Rows { .. })
                && !r
                    .ops
                    .iter()
                    .any(|&i| kind_of(&ops[i]) == Some(Kind::Reduction))
            {
                r.schedule = Schedule::Pointwise;
            }
            changed |= before != (r.outputs.len(), r.ops.len(), r.inputs.len());
        }
        if !changed {
            break;
        }
    }
}

/// Moves the ops of `r` whose results neither its outputs nor its other ops need to `r.dead`.
fn drop_dead_ops(ops: &[BoundSymbol], r: &mut Region) {
    let mut live: HashSet<Value> = r.outputs.iter().copied().collect();
    for &i in &r.outside {
        live.extend(ops[i].inputs());
        live.extend(ops[i].outputs.iter().copied());
    }
    let mut keep = Vec::with_capacity(r.ops.len());
    for &i in r.ops.iter().rev() {
        if ops[i].outputs.iter().any(|o| live.contains(o)) {
            live.extend(ops[i].inputs());
            keep.push(i);
        } else {
            r.dead.push(i);
        }
    }
    keep.reverse();
    r.ops = keep;
    r.dead.sort_unstable();
}
