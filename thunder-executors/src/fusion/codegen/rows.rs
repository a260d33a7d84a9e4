//! Rows kernels: reductions over the trailing dims, one block per row, the row kept in
//! registers across the reductions; sums over the leading dims (column sums) accumulated across
//! the rows each block takes, added by a second kernel.

use super::columns::{column_workspace, columns_fin, COL_THREADS};
use super::expr::{
    dtype_of, non_tensor, red_init, reduced_dtype, shape_of, storage_of, tensor_of, Block, Gen,
    InputAccess,
};
use super::pointwise::{pointwise_entries, vec_type, vector_plan};
use super::{
    rows_launch_bounds, rows_vectors_per_thread, short_rows_launch_bounds, GenError, KernelEntry,
    Launch,
};
use crate::fusion::partition::{kind, leading_reduction, Kind, Region};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use thunder_ir::{BoundSymbol, DType, Op, Trace, Value};

/// Partials of a column sum over long rows (two blocks per SM of a 132-SM GPU); shorter rows
/// take 2x or 4x more, and a second stage over more than this many has more warps.
const BASE_SPLITS: usize = 264;

/// Blocks of a rows kernel that also sums columns (each writes one partial per column): a few
/// per SM of a large GPU, at most one per row. Short rows take narrow blocks (a warp for 256
/// columns), so more of them: otherwise each of a few warps per SM walks its rows one after
/// another, bound by memory latency. The same for a kernel's scalar and vector variants (they
/// share the second stage).
fn column_splits(rows: usize, cols: usize) -> usize {
    let most = if cols <= 256 {
        4 * BASE_SPLITS
    } else if cols <= 1024 {
        2 * BASE_SPLITS
    } else {
        BASE_SPLITS
    };
    rows.clamp(1, most)
}

/// Threads of the second stage of a column sum over `splits` partials: more warps for more
/// partials (each warp adds every so many).
fn fin_threads(splits: usize) -> usize {
    if splits > BASE_SPLITS {
        1024
    } else {
        COL_THREADS
    }
}

/// The entries of a rows region (see the module docs): the rows kernel (and its vector
/// variant), the second stage of its column sums if it has any, and pointwise kernels for its
/// outputs of other shapes.
#[allow(clippy::too_many_arguments)]
pub(super) fn rows_entries(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    full: &[usize],
    k: usize,
    name: &str,
) -> Result<Vec<KernelEntry>, GenError> {
    let trace = g.trace;
    let mut entries = Vec::new();
    let (rows, threads, blocks, others) =
        rows_kernel(g, source, ps, region, ops, full, k, name, (1, &[]))?;
    let all: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| shape_of(trace, region.outputs[j]) == *full)
        .collect();
    let cols: usize = full[full.len() - k..].iter().product();
    let (vector, direct) = vector_plan(trace, region, &all, full, ops);
    let vector = match vector {
        Some(w) if cols % w == 0 && !direct.is_empty() => {
            let vname = format!("{name}_vec");
            let (_, t, b, _) =
                rows_kernel(g, source, ps, region, ops, full, k, &vname, (w, &direct))?;
            Some((w, t, b))
        }
        _ => None,
    };
    // Column sums accumulated by the rows kernel: a second kernel adds the blocks'
    // partials.
    let sums: Vec<&BoundSymbol> = region
        .ops
        .iter()
        .map(|&i| &ops[i])
        .filter(|b| {
            matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction))
                && leading_reduction(trace, b).is_some()
        })
        .collect();
    let mut workspace = 0;
    let mut fin_entry = None;
    if !sums.is_empty() {
        let trail = &full[full.len() - k..];
        let (offsets, bytes) = column_workspace(g, &sums, blocks, cols);
        workspace = bytes;
        let per_column: Vec<usize> = (0..region.outputs.len())
            .filter(|&j| sums.iter().any(|b| b.outputs[0] == region.outputs[j]))
            .collect();
        let fin = format!("{name}_fin");
        let wps = format!("{ps}, unsigned char* __restrict__ ws");
        let fin_t = fin_threads(blocks);
        let tiles = columns_fin(
            g,
            source,
            &wps,
            region,
            (&sums, &offsets),
            (blocks, trail),
            &per_column,
            fin_t,
            &fin,
        )?;
        fin_entry = Some(KernelEntry {
            name: fin,
            outputs: per_column,
            launch: Launch::Columns {
                blocks: tiles,
                threads: fin_t as u32,
                workspace,
                contiguous: false,
            },
        });
    }
    // The column sums are the second stage's outputs, the other shapes the pointwise
    // kernels' below: each output has one writer.
    let by_fin: Vec<usize> = fin_entry
        .as_ref()
        .map(|e| e.outputs.clone())
        .unwrap_or_default();
    entries.push(KernelEntry {
        name: name.to_string(),
        outputs: (0..region.outputs.len())
            .filter(|j| !others.contains(j) && !by_fin.contains(j))
            .collect(),
        launch: Launch::Rows {
            rows,
            threads,
            blocks,
            vector,
            direct,
            workspace,
        },
    });
    entries.extend(fin_entry);
    // Outputs of other shapes (from the region's inputs alone): pointwise kernels of
    // their own, with a full grid and vector accesses, not a tail of the rows kernel,
    // whose blocks are as narrow as its rows.
    let tails = pointwise_entries(g, source, ps, region, ops, &others, &format!("{name}_o"))?;
    entries.extend(tails);
    Ok(entries)
}

/// The rows kernel: see the module docs. Returns (rows, threads, blocks, the region outputs it
/// does not write: those of other shapes, computed from the region's inputs alone).
#[allow(clippy::too_many_arguments)]
fn rows_kernel(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    full: &[usize],
    k: usize,
    name: &str,
    (vec, direct): (usize, &[usize]),
) -> Result<(usize, u32, usize, Vec<usize>), GenError> {
    let trace = g.trace;
    let n = full.len();
    let lead = &full[..n - k];
    let trail = &full[n - k..];
    let rows: usize = lead.iter().product();
    let cols: usize = trail.iter().product();
    // Scalar: about 4 columns per thread; vector: about `rows_vectors_per_thread()` vectors
    // per thread, at most 512 threads (a long row then takes more vectors per thread, which the
    // register budget of 128 per thread at 512 threads holds).
    let threads: usize = if vec > 1 {
        cols.div_ceil(rows_vectors_per_thread() * vec)
            .next_power_of_two()
            .clamp(32, 512)
    } else {
        cols.div_ceil(4).next_power_of_two().clamp(32, 1024)
    };
    let per_thread = cols.div_ceil(threads * vec).max(1);
    let stages = Stages::new(trace, region, ops);
    let column_outs: Vec<Value> = stages
        .column_sums
        .iter()
        .map(|(b, _)| b.outputs[0])
        .collect();
    let is_full = |v: Value| shape_of(trace, v) == full;
    let (cached, raw) = stages.cached(trace, region, ops, full, per_thread * vec);
    let raw = vec > 1 && raw;
    let cached = if raw { Vec::new() } else { cached };
    let access = direct_access(trace, region, direct, raw)?;
    let mut body = Block::new(2, HashMap::new());
    // Row index and the leading multi-index.
    let lead_names = body.index("r", "r", lead);
    for &v in &cached {
        let ty = g.cty(v);
        body.line(&format!("{ty} k{}[PT * VEC];", g.id(v)));
    }
    if raw {
        for &kk in direct {
            let t = tensor_of(trace, region.inputs[kk])?;
            let vt = vec_type(vec * t.dtype.itemsize());
            body.line(&format!("{vt} a{kk}[PT];"));
        }
    }
    // Reduced values (one per row) evaluated at the leading index; full values at (lead, trail).
    let reduced_shape = lead.to_vec();
    let out_full: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| is_full(region.outputs[j]))
        .collect();
    let out_reduced: Vec<usize> = (0..region.outputs.len())
        .filter(|&j| {
            shape_of(trace, region.outputs[j]) == reduced_shape
                && !is_full(region.outputs[j])
                && !column_outs.contains(&region.outputs[j])
        })
        .collect();
    let col_decls = column_sum_decls(g, &stages.column_sums)?;
    let plan = RowsPlan {
        region,
        trail,
        cols,
        vec,
        direct,
        raw,
        access,
        stages: &stages,
        cached,
        out_full,
        lead_names,
    };
    let mut state = RowsState {
        body,
        row_memo: HashMap::new(),
        loaded: false,
        smem_types: BTreeSet::new(),
    };
    for s in 0..=stages.max_stage {
        plan.stage(g, &mut state, s)?;
    }
    let RowsPlan {
        out_full,
        lead_names,
        ..
    } = plan;
    let RowsState {
        mut body,
        row_memo,
        smem_types,
        ..
    } = state;
    // Reduced outputs: thread 0 of the row.
    if !out_reduced.is_empty() {
        let mut blk = Block::new(body.indent + 1, row_memo.clone());
        for &j in &out_reduced {
            let o = region.outputs[j];
            let e = g.eval(&mut blk, o, &lead_names, &InputAccess::Strided)?;
            blk.line(&format!("st(&out{j}[r], {e});"));
        }
        body.line("if (threadIdx.x == 0) {");
        body.code.push_str(&blk.code);
        body.line("}");
    }
    body.line("__syncthreads();");
    // Outputs of other shapes are computed from region inputs alone (the partitioner allows no
    // other): the caller writes them with pointwise kernels.
    let others: Vec<usize> = (0..region.outputs.len())
        .filter(|j| {
            !out_full.contains(j)
                && !out_reduced.contains(j)
                && !column_outs.contains(&region.outputs[*j])
        })
        .collect();
    // With column sums the grid is fixed (each block writes its partials), the rows shared out.
    let column_sums = &stages.column_sums;
    let blocks = if column_sums.is_empty() {
        rows
    } else {
        column_splits(rows, cols)
    };
    let (kps, col_write) = column_sum_writes(g, ps, column_sums, blocks, cols);
    let mut decls = String::new();
    for ty in &smem_types {
        let _ = writeln!(decls, "  __shared__ {ty} {}[33];", smem_name(ty));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {lb} {name}({kps}) {{\n  const int PT = {per_thread};\n  const int VEC = {vec};\n{decls}{col_decls}  for (idx_t r = blockIdx.x; r < (idx_t){rows}; r += gridDim.x) {{\n{}  }}\n{col_write}}}",
        body.code,
        lb = if vec > 1 && per_thread == 1 && column_sums.is_empty() {
            short_rows_launch_bounds(threads)
        } else {
            rows_launch_bounds(threads)
        },
    );
    Ok((rows, threads as u32, blocks, others))
}

/// How the vector variant reads each of its `direct` inputs at element `e` of a vector: from the
/// column loop's registers, or (`raw`) from the row's packed loads.
fn direct_access(
    trace: &Trace,
    region: &Region,
    direct: &[usize],
    raw: bool,
) -> Result<HashMap<usize, String>, GenError> {
    let mut access: HashMap<usize, String> = HashMap::new();
    for &kk in direct {
        let a = if raw {
            let t = tensor_of(trace, region.inputs[kk])?;
            let st = storage_of(region.inputs[kk], t.dtype)?;
            format!("reinterpret_cast<const {st}*>(&a{kk}[j])[e]")
        } else {
            format!("a{kk}[e]")
        };
        access.insert(kk, a);
    }
    Ok(access)
}

/// The stage of each value of a rows region (how many of the region's row reductions it depends
/// on), its row reductions, and its column sums (reductions over the leading dims, accumulated
/// across the block's rows) with the stage of their operands.
struct Stages<'b> {
    stage: HashMap<Value, usize>,
    reductions: Vec<&'b BoundSymbol>,
    column_sums: Vec<(&'b BoundSymbol, usize)>,
    max_stage: usize,
}

impl<'b> Stages<'b> {
    fn new(trace: &Trace, region: &Region, ops: &'b [BoundSymbol]) -> Self {
        let mut stage: HashMap<Value, usize> = HashMap::new();
        for &v in &region.inputs {
            stage.insert(v, 0);
        }
        // Recomputed ops read region inputs alone.
        for &i in &region.recompute {
            for &o in &ops[i].outputs {
                stage.insert(o, 0);
            }
        }
        let mut reductions: Vec<&BoundSymbol> = Vec::new();
        let mut column_sums: Vec<(&BoundSymbol, usize)> = Vec::new();
        for &i in &region.ops {
            let b = &ops[i];
            let s_in = b
                .inputs()
                .iter()
                .map(|v| stage.get(v).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            let is_red = matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction));
            if is_red && leading_reduction(trace, b).is_some() {
                column_sums.push((b, s_in));
                continue;
            }
            let s = if is_red { s_in + 1 } else { s_in };
            for &o in &b.outputs {
                stage.insert(o, s);
            }
            if is_red {
                reductions.push(b);
            }
        }
        let max_stage = stage.values().copied().max().unwrap_or(0);
        Stages {
            stage,
            reductions,
            column_sums,
            max_stage,
        }
    }

    /// Full values computed in one stage and used in a later one (kept in registers), and
    /// whether they would take more than 32 registers per thread at `per_thread` elements per
    /// thread.
    fn cached(
        &self,
        trace: &Trace,
        region: &Region,
        ops: &[BoundSymbol],
        full: &[usize],
        per_thread: usize,
    ) -> (Vec<Value>, bool) {
        let stage = &self.stage;
        let is_full = |v: Value| shape_of(trace, v) == full;
        let mut cached: Vec<Value> = Vec::new();
        let cache_if = |v: Value, user_stage: usize, cached: &mut Vec<Value>| {
            if is_full(v)
                && stage.get(&v).copied().unwrap_or(0) < user_stage
                && !cached.contains(&v)
            {
                cached.push(v);
            }
        };
        for &i in &region.ops {
            let b = &ops[i];
            let Some(&us) = stage.get(&b.outputs[0]) else {
                // A column sum: read in its operand's stage.
                continue;
            };
            let is_red = matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction));
            let us = if is_red { us - 1 } else { us };
            for v in b.inputs() {
                cache_if(v, us, &mut cached);
            }
        }
        // When those values would take more than 32 registers per thread, the vector variant
        // keeps the row's 16-byte loads of its direct inputs in registers instead (packed, 2
        // bytes per bf16 value) and recomputes what later stages need from them: caching the
        // float32 intermediates of a long row would take more registers than the kernel may use
        // (it would spill to memory, or run one block per SM).
        let cache_regs: usize = cached
            .iter()
            .map(|&v| per_thread * dtype_of(trace, v).map_or(1, |d| d.itemsize().div_ceil(4)))
            .sum();
        (cached, cache_regs > 32)
    }
}

/// What every column loop of a rows kernel shares.
struct RowsPlan<'b> {
    region: &'b Region,
    trail: &'b [usize],
    cols: usize,
    /// Elements per access (1: the scalar kernel).
    vec: usize,
    /// Region inputs read with vector loads.
    direct: &'b [usize],
    /// Whether the row's packed loads stay in registers (instead of `cached` values).
    raw: bool,
    access: HashMap<usize, String>,
    stages: &'b Stages<'b>,
    /// Values kept in registers for later stages.
    cached: Vec<Value>,
    /// The region outputs of the full shape.
    out_full: Vec<usize>,
    /// The leading multi-index.
    lead_names: Vec<String>,
}

/// What the column loops of a rows kernel build up.
struct RowsState {
    body: Block,
    /// Row values (reduction results) by (value, index).
    row_memo: HashMap<String, String>,
    /// Whether the direct inputs were loaded (the first column loop loads them; later ones
    /// read the registers).
    loaded: bool,
    /// The types of the block reductions' shared memory.
    smem_types: BTreeSet<&'static str>,
}

impl RowsPlan<'_> {
    /// The loop over this thread's columns for stage `s` (reductions whose results are of stage
    /// `s + 1`, full outputs, values cached for later stages and column sums of stage `s`), then
    /// the block reductions.
    fn stage(&self, g: &mut Gen, st: &mut RowsState, s: usize) -> Result<(), GenError> {
        let (region, stage, cols) = (self.region, &self.stages.stage, self.cols);
        let roots_red: Vec<&BoundSymbol> = self
            .stages
            .reductions
            .iter()
            .copied()
            .filter(|b| stage[&b.outputs[0]] == s + 1)
            .collect();
        let full_outs: Vec<usize> = self
            .out_full
            .iter()
            .copied()
            .filter(|&j| stage[&region.outputs[j]] == s)
            .collect();
        let to_cache: Vec<Value> = self
            .cached
            .iter()
            .copied()
            .filter(|v| stage[v] == s)
            .collect();
        let cols_here: Vec<&BoundSymbol> = self
            .stages
            .column_sums
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(b, _)| *b)
            .collect();
        let mut accs = Vec::new();
        for b in &roots_red {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let (init, _) = red_init(b, ty)?;
            let a = format!("acc{}", g.id(o));
            st.body.line(&format!("{ty} {a} = {init};"));
            accs.push(a);
        }
        if roots_red.is_empty()
            && full_outs.is_empty()
            && to_cache.is_empty()
            && cols_here.is_empty()
        {
            return Ok(());
        }
        let body = &mut st.body;
        body.line("#pragma unroll");
        body.line("for (int j = 0; j < PT; ++j) {");
        body.line("  const idx_t cb = ((idx_t)threadIdx.x + (idx_t)j * blockDim.x) * VEC;");
        body.line(&format!("  if (cb < {cols}) {{"));
        if self.vec > 1 {
            self.vector_loads(g, body, &mut st.loaded, s)?;
        }
        body.line("    #pragma unroll");
        body.line("    for (int e = 0; e < VEC; ++e) {");
        body.line("    const idx_t c = cb + e;");
        let mut inner = Block::new(body.indent + 2, st.row_memo.clone());
        let mut idx_names = self.lead_names.clone();
        idx_names.extend(inner.index("c", "c", self.trail));
        let acc_mode = if self.vec > 1 {
            InputAccess::Direct(self.access.clone(), idx_names.clone())
        } else {
            InputAccess::Strided
        };
        // Cached values of earlier stages are read from registers.
        for &v in &self.cached {
            if stage[&v] < s {
                inner.memo.insert(
                    format!("{}@{}", v.0, idx_names.join(",")),
                    format!("k{}[j * VEC + e]", g.id(v)),
                );
            }
        }
        for (b, a) in roots_red.iter().zip(&accs) {
            let x = b.args[0].as_value().ok_or(non_tensor(b, "reduction"))?;
            let ty = g.cty(b.outputs[0]);
            let e = g.eval(&mut inner, x, &idx_names, &acc_mode)?;
            let (_, comb) = red_init(b, ty)?;
            inner.line(&format!("{a} = {comb}({a}, ({ty}){e});"));
        }
        for &v in &to_cache {
            let e = g.eval(&mut inner, v, &idx_names, &acc_mode)?;
            inner.line(&format!("k{}[j * VEC + e] = {e};", g.id(v)));
        }
        for b in &cols_here {
            let x = b.args[0].as_value().ok_or(non_tensor(b, "reduction"))?;
            let o = b.outputs[0];
            let ty = g.cty(o);
            let e = g.eval(&mut inner, x, &idx_names, &acc_mode)?;
            let (_, comb) = red_init(b, ty)?;
            inner.line(&format!(
                "cacc{0}[j * VEC + e] = {comb}(cacc{0}[j * VEC + e], ({ty}){e});",
                g.id(o)
            ));
        }
        for &j in &full_outs {
            let o = region.outputs[j];
            let e = g.eval(&mut inner, o, &idx_names, &acc_mode)?;
            if self.vec > 1 {
                inner.line(&format!("st(&w{j}[e], {e});"));
            } else {
                inner.line(&format!("st(&out{j}[(idx_t)r * {cols} + c], {e});"));
            }
        }
        body.code.push_str(&inner.code);
        body.line("    }");
        if self.vec > 1 {
            for &j in &full_outs {
                let t = tensor_of(g.trace, region.outputs[j])?;
                let vt = vec_type(self.vec * t.dtype.itemsize());
                body.line(&format!(
                    "    *reinterpret_cast<{vt}*>(out{j} + (idx_t)r * {cols} + cb) = *reinterpret_cast<const {vt}*>(w{j});"
                ));
            }
        }
        body.line("  }");
        body.line("}");
        self.block_reductions(g, st, &roots_red, &accs)
    }

    /// The vector variant's loads of the direct inputs at column `cb` (into registers for this
    /// column loop, or once into the row's packed registers when `raw`), and the vectors of the
    /// full outputs of stage `s`.
    fn vector_loads(
        &self,
        g: &Gen,
        body: &mut Block,
        loaded: &mut bool,
        s: usize,
    ) -> Result<(), GenError> {
        let (trace, region, cols, vec) = (g.trace, self.region, self.cols, self.vec);
        for &kk in self.direct {
            let t = tensor_of(trace, region.inputs[kk])?;
            let vt = vec_type(vec * t.dtype.itemsize());
            let src = format!("*reinterpret_cast<const {vt}*>(in{kk} + (idx_t)r * {cols} + cb)");
            if !self.raw {
                let st = storage_of(region.inputs[kk], t.dtype)?;
                body.line(&format!("    {st} a{kk}[VEC];"));
                body.line(&format!("    *reinterpret_cast<{vt}*>(a{kk}) = {src};"));
            } else if !*loaded {
                body.line(&format!("    a{kk}[j] = {src};"));
            }
        }
        *loaded = true;
        for &j in &self.out_full {
            if self.stages.stage[&region.outputs[j]] == s {
                let t = tensor_of(trace, region.outputs[j])?;
                let st = storage_of(region.outputs[j], t.dtype)?;
                body.line(&format!("    {st} w{j}[VEC];"));
            }
        }
        Ok(())
    }

    /// Block reductions of the stage's accumulators `accs`; their results are row values of
    /// the next stage.
    fn block_reductions(
        &self,
        g: &mut Gen,
        st: &mut RowsState,
        roots_red: &[&BoundSymbol],
        accs: &[String],
    ) -> Result<(), GenError> {
        for (b, a) in roots_red.iter().zip(accs) {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let (init, comb) = red_init(b, ty)?;
            st.smem_types.insert(ty);
            let sm = smem_name(ty);
            st.body
                .line(&format!("BLOCK_REDUCE({ty}, {comb}, {a}, {sm}, {init});"));
            let dt = reduced_dtype(g.trace, o)?;
            let rounded = match dt {
                DType::BF16 => format!("rnd_bf16({a})"),
                DType::F16 => format!("rnd_f16({a})"),
                _ => a.clone(),
            };
            let nm = format!("red{}", g.id(o));
            st.body.line(&format!("const {ty} {nm} = {rounded};"));
            st.row_memo
                .insert(format!("{}@{}", o.0, self.lead_names.join(",")), nm);
        }
        Ok(())
    }
}

/// Column sums: per thread one accumulator per column it takes, across the block's rows.
fn column_sum_decls(g: &Gen, column_sums: &[(&BoundSymbol, usize)]) -> Result<String, GenError> {
    let mut col_decls = String::new();
    for (b, _) in column_sums {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, _) = red_init(b, ty)?;
        let _ = writeln!(
            col_decls,
            "  {ty} cacc{}[PT * VEC];\n  #pragma unroll\n  for (int q = 0; q < PT * VEC; ++q) cacc{}[q] = {init};",
            g.id(o), g.id(o)
        );
    }
    Ok(col_decls)
}

/// The rows kernel's parameters (with the workspace when it sums columns) and the code that
/// writes each block's column partials to the workspace.
fn column_sum_writes(
    g: &Gen,
    ps: &str,
    column_sums: &[(&BoundSymbol, usize)],
    blocks: usize,
    cols: usize,
) -> (String, String) {
    let mut col_write = String::new();
    let mut kps = ps.to_string();
    if !column_sums.is_empty() {
        let sums: Vec<&BoundSymbol> = column_sums.iter().map(|(b, _)| *b).collect();
        let (offsets, _) = column_workspace(g, &sums, blocks, cols);
        kps.push_str(", unsigned char* __restrict__ ws");
        col_write.push_str("  #pragma unroll\n  for (int j = 0; j < PT; ++j) {\n    const idx_t cb = ((idx_t)threadIdx.x + (idx_t)j * blockDim.x) * VEC;\n    #pragma unroll\n    for (int e = 0; e < VEC; ++e) {\n");
        for (b, off) in sums.iter().zip(&offsets) {
            let o = b.outputs[0];
            let ty = g.cty(o);
            let _ = writeln!(
                col_write,
                "      if (cb + e < {cols}) reinterpret_cast<{ty}*>(ws + {off})[(idx_t)blockIdx.x * {cols} + cb + e] = cacc{}[j * VEC + e];",
                g.id(o)
            );
        }
        col_write.push_str("    }\n  }\n");
    }
    (kps, col_write)
}

fn smem_name(ty: &str) -> String {
    format!("sm_{}", ty.replace(' ', "_"))
}
