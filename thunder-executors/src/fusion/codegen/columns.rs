//! Columns regions: reductions over the leading dims in two stages, partial results per range
//! of rows into a workspace, then combined per column in a fixed order (deterministic).

use super::expr::{non_tensor, red_init, reduced_dtype, Block, Gen, InputAccess};
use super::pointwise::pointwise_entries;
use super::{GenError, KernelEntry, Launch};
use crate::fusion::partition::{kind, Kind, Region};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use thunder_ir::{BoundSymbol, DType, Op, Trace, Value};

/// Threads of a columns stage.
pub(super) const COL_THREADS: usize = 256;
/// Blocks the first stage aims for (a few per SM of a large GPU).
const COL_TARGET_BLOCKS: usize = 1024;
/// Rows of a split at least (fewer splits for fewer rows).
const COL_MIN_ROWS: usize = 16;
/// Rows each thread of the first stage reads per loop iteration.
const COL_UNROLL: usize = 2;
/// Columns each thread of the first stage reduces.
const COL_PER_THREAD: usize = 4;

/// The two kernels of a columns region (see [`crate::fusion::Schedule::Columns`]): `<name>_part` reduces a
/// range of rows (a split) of 1024 columns per block (4 per thread) into the workspace;
/// `<name>_fin` combines the splits of 32 columns per block in a fixed order (its 8 warps take
/// every 8th split, then one warp adds their sums), then computes and writes the region's
/// outputs.
#[allow(clippy::too_many_arguments)]
pub(super) fn columns_kernels(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    full: &[usize],
    k: usize,
    name: &str,
) -> Result<Vec<KernelEntry>, GenError> {
    let (lead, trail) = (&full[..k], &full[k..]);
    let rows: usize = lead.iter().product();
    let cols: usize = trail.iter().product();
    let span = COL_THREADS * COL_PER_THREAD;
    let tiles = cols.div_ceil(span).max(1);
    let splits = COL_TARGET_BLOCKS
        .div_ceil(tiles)
        .clamp(1, rows.div_ceil(COL_MIN_ROWS).max(1));
    let per_split = rows.div_ceil(splits).max(1);
    let reductions: Vec<&BoundSymbol> = region
        .ops
        .iter()
        .map(|&i| &ops[i])
        .filter(|b| matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::Reduction)))
        .collect();
    let (offsets, workspace) = column_workspace(g, &reductions, splits, cols);
    let wps = format!("{ps}, unsigned char* __restrict__ ws");
    let body = part_body(g, &reductions, &offsets, (lead, trail), (tiles, per_split))?;
    let decls = "";
    let part = format!("{name}_part");
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({COL_THREADS}) {part}({wps}) {{\n{decls}{}}}",
        body.code
    );
    // The same for contiguous inputs (`<name>_part_vec`): their strides as constants, so the
    // index arithmetic folds.
    let fixed = contiguous_strides(g.trace, region);
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({COL_THREADS}) {part}_vec({wps}) {{\n{decls}{{\n{fixed}{}}}\n}}",
        body.code
    );
    // Stage 2: per column, the splits combined in order; then the outputs.
    let per_column = after_reductions(g, region, &reductions);
    let others: Vec<usize> = (0..region.outputs.len())
        .filter(|j| !per_column.contains(j))
        .collect();
    let fin = format!("{name}_fin");
    let col_tiles = columns_fin(
        g,
        source,
        &wps,
        region,
        (&reductions, &offsets),
        (splits, trail),
        &per_column,
        COL_THREADS,
        &fin,
    )?;
    let launch = |blocks: usize, contiguous: bool| Launch::Columns {
        blocks: blocks.clamp(1, 1 << 20),
        threads: COL_THREADS as u32,
        workspace,
        contiguous,
    };
    let mut entries = vec![
        KernelEntry {
            name: part,
            outputs: Vec::new(),
            launch: launch(tiles * splits, true),
        },
        KernelEntry {
            name: fin,
            outputs: per_column,
            launch: launch(col_tiles, false),
        },
    ];
    // The other outputs (from the region's inputs alone): pointwise kernels of their own.
    entries.extend(pointwise_entries(
        g,
        source,
        ps,
        region,
        ops,
        &others,
        &format!("{name}_o"),
    )?);
    Ok(entries)
}

/// The body of the first stage: thread t of a block takes the columns `tile * span + t + e *
/// THREADS` (e < COL_PER_THREAD) over the rows of the block's split, each reduction's partial
/// results written to the workspace at `offsets`.
fn part_body(
    g: &mut Gen,
    reductions: &[&BoundSymbol],
    offsets: &[usize],
    (lead, trail): (&[usize], &[usize]),
    (tiles, per_split): (usize, usize),
) -> Result<Block, GenError> {
    let rows: usize = lead.iter().product();
    let cols: usize = trail.iter().product();
    let span = COL_THREADS * COL_PER_THREAD;
    // Stage 1: thread t of a block takes the columns `tile * span + t + e * THREADS` (e <
    // COL_PER_THREAD: consecutive threads read consecutive columns of a row together, and what
    // depends on the row alone is computed once for the thread's columns) over the rows of the
    // block's split. Columns past the end read the last one and add nothing.
    let mut body = Block::new(1, HashMap::new());
    body.line(&format!(
        "const idx_t tile = (idx_t)blockIdx.x % {tiles}, split = (idx_t)blockIdx.x / {tiles};"
    ));
    body.line(&format!(
        "const idx_t rlo = split * {per_split}, rhi = min(rlo + {per_split}, (idx_t){rows});"
    ));
    let mut accs: Vec<Vec<String>> = Vec::new();
    for b in reductions {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, _) = red_init(b, ty)?;
        let mut per = Vec::new();
        for e in 0..COL_PER_THREAD {
            let a = format!("acc{}_{e}", g.id(o));
            body.line(&format!("{ty} {a} = {init};"));
            per.push(a);
        }
        accs.push(per);
    }
    for e in 0..COL_PER_THREAD {
        body.line(&format!(
            "const idx_t cu{e} = tile * {span} + threadIdx.x + {};",
            e * COL_THREADS
        ));
        body.line(&format!(
            "const idx_t cc{e} = cu{e} < {cols} ? cu{e} : {};",
            cols.max(1) - 1
        ));
    }
    // COL_UNROLL rows per iteration, their loads independent (several in flight per thread).
    body.line(&format!(
        "for (idx_t rb = rlo; rb < rhi; rb += {COL_UNROLL}) {{"
    ));
    body.line("  #pragma unroll");
    body.line(&format!("  for (int u = 0; u < {COL_UNROLL}; ++u) {{"));
    body.line("  const idx_t r = rb + u;");
    body.line("  if (r < rhi) {");
    let mut inner = Block::new(body.indent + 2, HashMap::new());
    let lead_idx = inner.index("r", "r", lead);
    for e in 0..COL_PER_THREAD {
        let mut idx = lead_idx.clone();
        idx.extend(inner.index(&format!("c{e}_"), &format!("cc{e}"), trail));
        for (b, per) in reductions.iter().zip(&accs) {
            let x = b.args[0].as_value().ok_or(non_tensor(b, "reduction"))?;
            let ty = g.cty(b.outputs[0]);
            let v = g.eval(&mut inner, x, &idx, &InputAccess::Strided)?;
            let (_, comb) = red_init(b, ty)?;
            let a = &per[e];
            inner.line(&format!(
                "if (cu{e} < {cols}) {a} = {comb}({a}, ({ty}){v});"
            ));
        }
    }
    body.code.push_str(&inner.code);
    body.line("  }");
    body.line("  }");
    body.line("}");
    for (j, (b, per)) in reductions.iter().zip(&accs).enumerate() {
        let ty = g.cty(b.outputs[0]);
        for (e, a) in per.iter().enumerate() {
            body.line(&format!(
                "if (cu{e} < {cols}) reinterpret_cast<{ty}*>(ws + {})[split * {cols} + cu{e}] = {a};",
                offsets[j]
            ));
        }
    }
    Ok(body)
}

/// The strides of the region's tensor inputs if contiguous, as constants (`s<k>_<d>`).
fn contiguous_strides(trace: &Trace, region: &Region) -> String {
    let mut fixed = String::new();
    for (k, &v) in region.inputs.iter().enumerate() {
        let Some(t) = trace.tensor(v) else { continue };
        let shape = t.shape.sizes();
        let mut stride = 1usize;
        let mut strides = vec![0usize; shape.len()];
        for d in (0..shape.len()).rev() {
            strides[d] = stride;
            stride *= shape[d].max(1);
        }
        for (d, st) in strides.iter().enumerate() {
            let _ = writeln!(fixed, "  const long long s{k}_{d} = {st}LL;");
        }
    }
    fixed
}

/// The region outputs computed after (from) the region's reductions, one value per column;
/// the others are computed from the region's inputs alone.
fn after_reductions(g: &Gen, region: &Region, reductions: &[&BoundSymbol]) -> Vec<usize> {
    let is_reduced_stage = |v: Value| -> bool {
        // Whether v depends on a reduction of the region (else it is computed from inputs).
        let mut stack = vec![v];
        let mut seen = HashSet::new();
        while let Some(u) = stack.pop() {
            if !seen.insert(u) {
                continue;
            }
            if reductions.iter().any(|b| b.outputs[0] == u) {
                return true;
            }
            if let Some(b) = g.producer.get(&u) {
                stack.extend(b.inputs());
            }
        }
        false
    };
    (0..region.outputs.len())
        .filter(|&j| is_reduced_stage(region.outputs[j]))
        .collect()
}

/// The second stage of a columns reduction (`fin`, see [`columns_kernels`]): per block 32
/// columns; its `threads / 32` warps each add every so many of the `splits` partials of
/// `reductions` (at `offsets` in the workspace), then warp 0 adds the warps' sums (a fixed
/// order) and writes the outputs `per_column` computed from them. Returns the blocks that cover
/// the columns.
#[allow(clippy::too_many_arguments)]
pub(super) fn columns_fin(
    g: &mut Gen,
    source: &mut String,
    wps: &str,
    region: &Region,
    (reductions, offsets): (&[&BoundSymbol], &[usize]),
    (splits, trail): (usize, &[usize]),
    per_column: &[usize],
    threads: usize,
    fin: &str,
) -> Result<usize, GenError> {
    let trace = g.trace;
    let cols: usize = trail.iter().product();
    // Per block 32 columns; its warps each add every so many splits, then warp 0 adds their
    // sums (a fixed order: deterministic) and computes the column's outputs.
    let warps = threads / 32;
    let col_tiles = cols.div_ceil(32).max(1);
    let mut fin_decls = String::new();
    let mut gather = Block::new(2, HashMap::new());
    gather.line("const idx_t cq = cb * 32 + lane;");
    gather.line(&format!(
        "const idx_t cr = cq < {cols} ? cq : {};",
        cols.max(1) - 1
    ));
    let mut body = Block::new(3, HashMap::new());
    body.line("const idx_t c = cq;");
    let cidx = body.index("c", "c", trail);
    for (j, b) in reductions.iter().enumerate() {
        let o = b.outputs[0];
        let ty = g.cty(o);
        let (init, comb) = red_init(b, ty)?;
        let _ = writeln!(fin_decls, "  __shared__ {ty} fs{j}[{warps}][32];");
        let a = format!("part{}", g.id(o));
        gather.line(&format!("{ty} {a} = {init};"));
        gather.line(&format!(
            "for (int s = wy; s < {splits}; s += {warps}) {a} = {comb}({a}, reinterpret_cast<const {ty}*>(ws + {})[(idx_t)s * {cols} + cr]);",
            offsets[j]
        ));
        gather.line(&format!("fs{j}[wy][lane] = {a};"));
        let a = format!("red{}", g.id(o));
        body.line(&format!("{ty} {a} = fs{j}[0][lane];"));
        body.line(&format!(
            "for (int w = 1; w < {warps}; ++w) {a} = {comb}({a}, fs{j}[w][lane]);"
        ));
        let dt = reduced_dtype(trace, o)?;
        let rounded = match dt {
            DType::BF16 => format!("rnd_bf16({a})"),
            DType::F16 => format!("rnd_f16({a})"),
            _ => a.clone(),
        };
        let nm = format!("rr{}", g.id(o));
        body.line(&format!("const {ty} {nm} = {rounded};"));
        body.memo.insert(format!("{}@{}", o.0, cidx.join(",")), nm);
    }
    for &j in per_column {
        let o = region.outputs[j];
        let e = g.eval(&mut body, o, &cidx, &InputAccess::Strided)?;
        body.line(&format!("st(&out{j}[c], {e});"));
    }
    gather.line("__syncthreads();");
    gather.line(&format!("if (wy == 0 && cq < {cols}) {{"));
    gather.code.push_str(&body.code);
    gather.line("}");
    gather.line("__syncthreads();");
    let body = gather;
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void __launch_bounds__({threads}) {fin}({wps}) {{\n{fin_decls}  const int lane = threadIdx.x & 31, wy = threadIdx.x >> 5;\n  for (idx_t cb = blockIdx.x; cb < (idx_t){col_tiles}; cb += gridDim.x) {{\n{}  }}\n}}",
        body.code
    );
    Ok(col_tiles)
}

/// Where the partials of each column reduction go in the workspace (per reduction `splits` x
/// `cols` values of its compute type, 16-byte aligned), and the workspace's bytes.
pub(super) fn column_workspace(
    g: &Gen,
    reductions: &[&BoundSymbol],
    splits: usize,
    cols: usize,
) -> (Vec<usize>, usize) {
    let mut offsets = Vec::with_capacity(reductions.len());
    let mut workspace = 0usize;
    for b in reductions {
        let size = match g.cty(b.outputs[0]) {
            "double" | "long long" => 8,
            _ => 4,
        };
        offsets.push(workspace);
        workspace += (splits * cols * size).div_ceil(16) * 16;
    }
    (offsets, workspace)
}
