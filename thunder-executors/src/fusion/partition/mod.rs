//! Grouping fusible ops into regions by data flow.
//!
//! Ops are visited in program order. A fusible op joins the region of one of its producers (or of
//! the most recent region) when
//! - the region's schedule can take it ([`Schedule`]: pointwise regions take any elementwise or
//!   indexing op; a rows region takes reductions over the same trailing dims of the same shape,
//!   elementwise ops on that shape or on the reduced one, broadcasts from the reduced shape back,
//!   and sums over exactly the leading dims that nothing in the region reads (column sums the
//!   kernel accumulates across rows); a columns region takes reductions over the same leading
//!   dims of values computed from its inputs, and elementwise ops on their results), and
//! - joining creates no cycle: none of the op's operands from outside the region depends on the
//!   region.
//!
//! Otherwise it starts a region of its own. Regions without any computation (only reshapes,
//! transposes, broadcasts) are dropped: libtorch runs those as views, for free. A view op whose
//! result is also needed outside its region stays outside too, so that no region copies a view
//! out.

mod remat;

use remat::rematerialize;
use std::collections::{HashMap, HashSet};
use thunder_ir::ops::info::Family;
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Attr, BoundSymbol, Op, PrimOp, Trace, Value};

/// The kernel schedule a region needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Elementwise and indexing ops only: one thread per output element.
    Pointwise,
    /// Reductions over the trailing `k` dims of tensors of shape `full`: one block per row (the
    /// leading dims), the row kept in registers across the reductions.
    Rows {
        /// The shape the reductions read.
        full: Vec<usize>,
        /// How many trailing dims they reduce.
        k: usize,
    },
    /// Reductions over the leading `k` dims of tensors of shape `full` (column sums, such as a
    /// norm weight's gradient), in two stages: blocks of 1024 columns (4 per thread) each
    /// reduce a range of rows to partial results, then one thread per column combines the
    /// partials in a fixed order (deterministic, no atomics) and computes what follows from
    /// them.
    Columns {
        /// The shape the reductions read.
        full: Vec<usize>,
        /// How many leading dims they reduce (fewer than all).
        k: usize,
    },
}

/// A group of ops compiled into one kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Indices of the region's ops in the op list, in program order.
    pub ops: Vec<usize>,
    /// Values the region reads from outside (tensors and numbers), in order of first use.
    pub inputs: Vec<Value>,
    /// Values the region defines that are needed outside (by later ops or as trace outputs).
    pub outputs: Vec<Value>,
    /// The schedule its kernel uses.
    pub schedule: Schedule,
    /// View ops of the region whose results are needed outside it too: the plan also runs them
    /// outside, on the torch executor (as views), instead of the kernel copying them out.
    pub outside: Vec<usize>,
    /// Ops of other regions this one recomputes from their inputs rather than reading their
    /// results (rematerialization: see [`partition`]), in program order.
    pub recompute: Vec<usize>,
    /// Ops of this region whose results nothing needs any more, since the regions that read
    /// them recompute them: the plan runs them nowhere. A region may be left with dead ops only
    /// (no `ops`): it runs nothing.
    pub dead: Vec<usize>,
}

/// What a prim is to the partitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Computes elementwise (including conversions, `where`, constants).
    Elementwise,
    /// Reads its operands at other indices: broadcast, reshape, transpose, slice, ...
    View,
    /// A sum/amax/amin/prod.
    Reduction,
}

/// The fusion kind of a prim (from its row of the op table), or `None` when the fusion executor
/// does not take it (the row is not `fuse`).
pub(crate) fn kind(op: PrimOp) -> Option<Kind> {
    let info = op.info();
    if !info.fusible {
        return None;
    }
    Some(match (info.class, info.family) {
        (PrimClass::Reduction, _) => Kind::Reduction,
        (_, Family::Shape) => Kind::View,
        _ => Kind::Elementwise,
    })
}

/// The shape a reduction reads and the sorted dims it reduces.
fn reduced_dims(trace: &Trace, b: &BoundSymbol) -> Option<(Vec<usize>, Vec<usize>)> {
    let x = b.args.first()?.as_value()?;
    let shape = trace.tensor(x)?.shape.sizes();
    let n = shape.len();
    let mut dims: Vec<usize> = match b.attrs.first()? {
        Attr::Ints(d) => d
            .iter()
            .map(|&d| if d < 0 { d + n as i64 } else { d } as usize)
            .collect(),
        _ => return None,
    };
    dims.sort_unstable();
    dims.dedup();
    Some((shape, dims))
}

/// The shape a reduction reads and how many trailing dims it reduces, or `None` when its dims
/// are not the trailing ones.
pub(crate) fn trailing_reduction(trace: &Trace, b: &BoundSymbol) -> Option<(Vec<usize>, usize)> {
    let (shape, dims) = reduced_dims(trace, b)?;
    let (n, k) = (shape.len(), dims.len());
    (k > 0 && dims.iter().copied().eq(n - k..n)).then_some((shape, k))
}

/// The shape a reduction reads and how many leading dims it reduces, or `None` when its dims
/// are not the leading ones (or are all of them: that is a trailing reduction too).
pub(crate) fn leading_reduction(trace: &Trace, b: &BoundSymbol) -> Option<(Vec<usize>, usize)> {
    let (shape, dims) = reduced_dims(trace, b)?;
    let (n, k) = (shape.len(), dims.len());
    (k > 0 && k < n && dims.iter().copied().eq(0..k)).then_some((shape, k))
}

fn out_shape(trace: &Trace, b: &BoundSymbol) -> Option<Vec<usize>> {
    Some(trace.tensor(*b.outputs.first()?)?.shape.sizes())
}

/// Whether `b` fits a region with schedule `s` whose members define `defined`, of which `leaf`
/// are computed from region inputs alone (without reductions: they can be read at any index).
/// `column_sums`: the results of every reduction over leading dims among the ops.
fn fits(
    trace: &Trace,
    b: &BoundSymbol,
    s: &Schedule,
    (defined, leaf): (&HashSet<Value>, &HashSet<Value>),
    column_sums: &HashSet<Value>,
) -> bool {
    let Op::Prim(op) = b.op else { return false };
    let Some(k) = kind(op) else { return false };
    // A column sum inside a rows region is one of its outputs: nothing in the region reads it.
    if matches!(s, Schedule::Rows { .. })
        && b.inputs()
            .iter()
            .any(|v| defined.contains(v) && column_sums.contains(v))
    {
        return false;
    }
    let from_inputs = b
        .inputs()
        .iter()
        .all(|v| !defined.contains(v) || leaf.contains(v));
    let (full, nk) = match s {
        Schedule::Pointwise => return k != Kind::Reduction,
        Schedule::Columns { full, k: nk } => {
            let Some(shape) = out_shape(trace, b) else {
                return false;
            };
            return match k {
                // Over values computed from the region's inputs alone (at any row).
                Kind::Reduction => {
                    from_inputs
                        && leading_reduction(trace, b)
                            .is_some_and(|(f, kk)| &f == full && kk == *nk)
                }
                _ if from_inputs => true,
                // After the reductions: one value per column.
                Kind::Elementwise => shape == full[*nk..],
                Kind::View => false,
            };
        }
        Schedule::Rows { full, k: nk } => (full, nk),
    };
    let reduced = &full[..full.len() - nk];
    let Some(shape) = out_shape(trace, b) else {
        return false;
    };
    match k {
        // Over the trailing dims (per row), or over exactly the leading ones (a column sum the
        // rows kernel accumulates across the rows each block takes).
        Kind::Reduction => {
            trailing_reduction(trace, b).is_some_and(|(f, kk)| &f == full && kk == *nk)
                || leading_reduction(trace, b)
                    .is_some_and(|(f, kk)| &f == full && kk == full.len() - nk)
        }
        // Computed from region inputs alone: any shape (read through its index map).
        _ if from_inputs => true,
        Kind::Elementwise => shape == *full || shape == reduced,
        Kind::View => {
            // Of computed values only the reduced-to-full broadcast.
            op == PrimOp::BroadcastInDim
                && shape == *full
                && b.args[0]
                    .as_value()
                    .and_then(|v| trace.tensor(v))
                    .is_some_and(|t| t.shape.sizes() == reduced)
                && matches!(&b.attrs[1], Attr::Ints(d) if d.iter().copied().eq(0..reduced.len() as i64))
        }
    }
}

/// Whether `b` is computed from region inputs alone (given the group's `defined` and `leaf`).
fn is_leaf(b: &BoundSymbol, defined: &HashSet<Value>, leaf: &HashSet<Value>) -> bool {
    kind_of(b) != Some(Kind::Reduction)
        && b.inputs()
            .iter()
            .all(|v| !defined.contains(v) || leaf.contains(v))
}

/// Groups the ops `is_fusible` accepts into regions (see the module docs). `ops` are the claimed
/// trace's bound symbols in program order; `outputs` the trace's outputs.
pub fn partition(
    trace: &Trace,
    ops: &[BoundSymbol],
    is_fusible: impl Fn(usize) -> bool,
) -> Vec<Region> {
    let mut producer: HashMap<Value, usize> = HashMap::new();
    for (i, b) in ops.iter().enumerate() {
        for &o in &b.outputs {
            producer.insert(o, i);
        }
    }
    let groups = Groups::new(trace, ops, &producer, is_fusible);
    let used_outside = groups.used_outside(trace, ops, &producer);
    let mut regions = Vec::new();
    for (g, ms) in groups.members.into_iter().enumerate() {
        regions.extend(region_of(
            ops,
            ms,
            &used_outside[g],
            groups.schedules[g].clone(),
        ));
    }
    rematerialize(trace, ops, &mut regions);
    regions
}

/// Fusible ops grouped in program order (see the module docs): each op's group, and per group
/// its schedule and members.
struct Groups {
    group: Vec<Option<usize>>,
    schedules: Vec<Schedule>,
    members: Vec<Vec<usize>>,
}

impl Groups {
    /// Groups the ops `is_fusible` accepts; `producer`: the op computing each value.
    fn new(
        trace: &Trace,
        ops: &[BoundSymbol],
        producer: &HashMap<Value, usize>,
        is_fusible: impl Fn(usize) -> bool,
    ) -> Self {
        let n = ops.len();
        let column_sums: HashSet<Value> = ops
            .iter()
            .filter(|b| {
                kind_of(b) == Some(Kind::Reduction) && leading_reduction(trace, b).is_some()
            })
            .flat_map(|b| b.outputs.iter().copied())
            .collect();
        // group[i]: the group of op i.
        let mut group: Vec<Option<usize>> = vec![None; n];
        let mut schedules: Vec<Schedule> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut defined: Vec<HashSet<Value>> = Vec::new();
        let mut leaves: Vec<HashSet<Value>> = Vec::new();
        for i in 0..n {
            let b = &ops[i];
            if !is_fusible(i) {
                continue;
            }
            let producers: Vec<usize> = {
                let mut p: Vec<usize> = b
                    .inputs()
                    .iter()
                    .filter_map(|v| producer.get(v).copied())
                    .collect();
                p.sort_unstable();
                p.dedup();
                p
            };
            // Candidates: the producers' groups, latest first, then the latest group.
            let mut cands: Vec<usize> = producers.iter().rev().filter_map(|&p| group[p]).collect();
            // (Joining a group the op does not read from only while the group is small: horizontal
            // fusion of many independent ops makes kernels slow to compile and to run.)
            if let Some(last) = members.len().checked_sub(1) {
                if members[last].len() < MAX_HORIZONTAL_OPS {
                    cands.push(last);
                }
            }
            let mut seen = HashSet::new();
            cands.retain(|g| seen.insert(*g));
            let mut joined = None;
            for g in cands {
                // Joining must not make a cycle of regions: no operand from outside g may depend on
                // g, with groups taken as the single kernels they become.
                let outside: Vec<usize> = producers
                    .iter()
                    .copied()
                    .filter(|&p| group[p] != Some(g))
                    .collect();
                if depends_on(g, outside, ops, producer, &group, &members) {
                    continue;
                }
                if let Some(s) = merged_schedule(
                    trace,
                    ops,
                    &members[g],
                    &schedules[g],
                    b,
                    (&defined[g], &leaves[g]),
                    &column_sums,
                ) {
                    schedules[g] = s;
                    joined = Some(g);
                    break;
                }
            }
            let g = joined.unwrap_or_else(|| {
                members.push(Vec::new());
                defined.push(HashSet::new());
                leaves.push(HashSet::new());
                schedules.push(match kind_of(b) {
                    Some(Kind::Reduction) => {
                        match (trailing_reduction(trace, b), leading_reduction(trace, b)) {
                            (Some((full, k)), _) => Schedule::Rows { full, k },
                            (None, Some((full, k))) => Schedule::Columns { full, k },
                            (None, None) => Schedule::Pointwise,
                        }
                    }
                    _ => Schedule::Pointwise,
                });
                members.len() - 1
            });
            group[i] = Some(g);
            members[g].push(i);
            if is_leaf(b, &defined[g], &leaves[g]) {
                leaves[g].extend(b.outputs.iter().copied());
            }
            defined[g].extend(b.outputs.iter().copied());
        }
        Groups {
            group,
            schedules,
            members,
        }
    }

    /// Per group, the values it defines that ops outside it or the trace's outputs read.
    fn used_outside(
        &self,
        trace: &Trace,
        ops: &[BoundSymbol],
        producer: &HashMap<Value, usize>,
    ) -> Vec<HashSet<Value>> {
        let (group, members) = (&self.group, &self.members);
        let mut used_outside: Vec<HashSet<Value>> = vec![HashSet::new(); members.len()];
        for (i, b) in ops.iter().enumerate() {
            for v in b.inputs() {
                if let Some(&p) = producer.get(&v) {
                    if let Some(g) = group[p] {
                        if group[i] != Some(g) {
                            used_outside[g].insert(v);
                        }
                    }
                }
            }
        }
        for &o in &trace.outputs {
            if let Some(g) = producer.get(&o).and_then(|&p| group[p]) {
                used_outside[g].insert(o);
            }
        }
        used_outside
    }
}

/// The region that group `ms` (with `schedule`) becomes, given what is needed of it outside
/// (`used_outside`): view ops no other member reads leave it (the torch executor makes them
/// views), and views needed outside run outside too. `None` when nothing but views is left.
fn region_of(
    ops: &[BoundSymbol],
    ms: Vec<usize>,
    used_outside: &HashSet<Value>,
    schedule: Schedule,
) -> Option<Region> {
    let is_view = |i: usize| kind_of(&ops[i]) == Some(Kind::View);
    // View ops no other member reads leave the region (the torch executor makes them views).
    let mut ops_in = ms.clone();
    loop {
        let before = ops_in.len();
        let snapshot = ops_in.clone();
        ops_in.retain(|&i| {
            !is_view(i)
                || ops[i].outputs.iter().any(|o| {
                    snapshot
                        .iter()
                        .any(|&j| j != i && ops[j].inputs().contains(o))
                })
        });
        if ops_in.len() == before {
            break;
        }
    }
    if !ops_in.iter().any(|&i| !is_view(i)) {
        return None;
    }
    // What is needed from the region: by later ops, the trace's outputs, and the views that
    // left it. A view needed outside runs outside too, so what it reads is needed as well.
    let mut need: HashSet<Value> = used_outside.clone();
    for &i in ms.iter().filter(|i| !ops_in.contains(i)) {
        need.extend(ops[i].inputs());
    }
    let mut outside: Vec<usize> = Vec::new();
    loop {
        let mut changed = false;
        for &i in &ops_in {
            if is_view(i)
                && !outside.contains(&i)
                && ops[i].outputs.iter().any(|o| need.contains(o))
            {
                outside.push(i);
                need.extend(ops[i].inputs());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    outside.sort_unstable();
    let defined: HashSet<Value> = ops_in
        .iter()
        .flat_map(|&i| ops[i].outputs.iter().copied())
        .collect();
    let mut inputs = Vec::new();
    let mut seen = HashSet::new();
    for &i in &ops_in {
        for v in ops[i].inputs() {
            if !defined.contains(&v) && seen.insert(v) {
                inputs.push(v);
            }
        }
    }
    let mut outputs = Vec::new();
    for &i in &ops_in {
        if is_view(i) {
            continue;
        }
        for &o in &ops[i].outputs {
            if need.contains(&o) {
                outputs.push(o);
            }
        }
    }
    Some(Region {
        ops: ops_in,
        inputs,
        outputs,
        schedule,
        outside,
        recompute: Vec::new(),
        dead: Vec::new(),
    })
}

/// Most ops a group may have for an op that reads nothing of it to join it.
const MAX_HORIZONTAL_OPS: usize = 64;

fn kind_of(b: &BoundSymbol) -> Option<Kind> {
    match b.op {
        Op::Prim(p) => kind(p),
        Op::Torch(_) | Op::Dist(_) => None,
    }
}

/// Whether any of the ops `start` depends on group `g` (through ops and whole groups).
fn depends_on(
    g: usize,
    start: Vec<usize>,
    ops: &[BoundSymbol],
    producer: &HashMap<Value, usize>,
    group: &[Option<usize>],
    members: &[Vec<usize>],
) -> bool {
    let mut stack = start;
    let mut seen_ops: HashSet<usize> = HashSet::new();
    let mut seen_groups: HashSet<usize> = HashSet::new();
    while let Some(op) = stack.pop() {
        let unit: Vec<usize> = match group[op] {
            Some(h) if h == g => return true,
            Some(h) => {
                if !seen_groups.insert(h) {
                    continue;
                }
                members[h].clone()
            }
            None => {
                if !seen_ops.insert(op) {
                    continue;
                }
                vec![op]
            }
        };
        for m in unit {
            for v in ops[m].inputs() {
                if let Some(&p) = producer.get(&v) {
                    stack.push(p);
                }
            }
        }
    }
    false
}

/// The schedule of group `ms` (schedule `s`) with `b` added, if it fits.
fn merged_schedule(
    trace: &Trace,
    ops: &[BoundSymbol],
    ms: &[usize],
    s: &Schedule,
    b: &BoundSymbol,
    (defined, leaf): (&HashSet<Value>, &HashSet<Value>),
    column_sums: &HashSet<Value>,
) -> Option<Schedule> {
    if fits(trace, b, s, (defined, leaf), column_sums) {
        return Some(s.clone());
    }
    // A pointwise group meeting its first reduction becomes a rows (or columns) group if every
    // member fits.
    if *s != Schedule::Pointwise || kind_of(b) != Some(Kind::Reduction) {
        return None;
    }
    let rows = match (trailing_reduction(trace, b), leading_reduction(trace, b)) {
        (Some((full, k)), _) => Schedule::Rows { full, k },
        (None, Some((full, k))) => Schedule::Columns { full, k },
        (None, None) => return None,
    };
    let mut seen: HashSet<Value> = HashSet::new();
    let mut seen_leaf: HashSet<Value> = HashSet::new();
    for &j in ms {
        if !fits(trace, &ops[j], &rows, (&seen, &seen_leaf), column_sums) {
            return None;
        }
        if is_leaf(&ops[j], &seen, &seen_leaf) {
            seen_leaf.extend(ops[j].outputs.iter().copied());
        }
        seen.extend(ops[j].outputs.iter().copied());
    }
    fits(trace, b, &rows, (defined, leaf), column_sums).then_some(rows)
}
