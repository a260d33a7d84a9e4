//! Pointwise kernels: one thread per output element, evaluated from the region's inputs at its
//! index; a vector variant takes 16-byte accesses where the layout allows.

use super::expr::{shape_of, storage_of, tensor_of, Block, Gen, InputAccess};
use super::{GenError, KernelEntry, Launch};
use crate::fusion::partition::{kind, Kind, Region};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use thunder_ir::{BoundSymbol, Op, Trace, Value};

/// Pointwise kernels for the region outputs `outs`, one per output shape (`<prefix>_<i>`, with a
/// vector variant where it pays), evaluated from the region's inputs at each output index.
pub(super) fn pointwise_entries(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    ops: &[BoundSymbol],
    outs: &[usize],
    prefix: &str,
) -> Result<Vec<KernelEntry>, GenError> {
    let trace = g.trace;
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    for &j in outs {
        let s = shape_of(trace, region.outputs[j]);
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    let mut entries = Vec::with_capacity(shapes.len());
    for (si, shape) in shapes.iter().enumerate() {
        let these: Vec<usize> = outs
            .iter()
            .copied()
            .filter(|&j| shape_of(trace, region.outputs[j]) == *shape)
            .collect();
        let ename = format!("{prefix}_{si}");
        let numel: usize = shape.iter().product();
        pointwise(g, source, ps, region, &these, shape, &ename)?;
        let (vector, direct) = vector_plan(trace, region, &these, shape, ops);
        if let Some(vec) = vector {
            pointwise_vec(g, source, ps, region, &these, shape, &ename, vec, &direct)?;
        }
        entries.push(KernelEntry {
            name: ename,
            outputs: these,
            launch: Launch::Pointwise {
                numel,
                vector,
                direct,
            },
        });
    }
    Ok(entries)
}

#[allow(clippy::too_many_arguments)]
fn pointwise(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ename: &str,
) -> Result<(), GenError> {
    let numel: usize = shape.iter().product();
    let mut blk = Block::new(2, HashMap::new());
    let idx_names = blk.index("i", "i", shape);
    for &k in outs {
        let o = region.outputs[k];
        let v = g.eval(&mut blk, o, &idx_names, &InputAccess::Strided)?;
        blk.line(&format!("st(&out{k}[i], {v});"));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {ename}({ps}) {{\n  for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (idx_t){numel}; i += (idx_t)gridDim.x * blockDim.x) {{\n{}  }}\n}}",
        blk.code
    );
    Ok(())
}

/// The vector width of a pointwise kernel and the inputs it reads directly (same shape as the
/// output, used only at the output's own index), or `None` when a vector variant does not pay.
pub(super) fn vector_plan(
    trace: &Trace,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ops: &[BoundSymbol],
) -> (Option<usize>, Vec<usize>) {
    let numel: usize = shape.iter().product();
    // Inputs read by a view op go through their index map; the others, of the output's shape,
    // are read at the output's index.
    let viewed: HashSet<Value> = region
        .ops
        .iter()
        .chain(&region.recompute)
        .map(|&i| &ops[i])
        .filter(|b| matches!(b.op, Op::Prim(p) if kind(p) == Some(Kind::View)))
        .flat_map(|b| b.inputs())
        .collect();
    let direct: Vec<usize> = region
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            trace.tensor(**v).is_some_and(|t| t.shape.sizes() == shape) && !viewed.contains(v)
        })
        .map(|(k, _)| k)
        .collect();
    let widest = direct
        .iter()
        .map(|&k| region.inputs[k])
        .chain(outs.iter().map(|&k| region.outputs[k]))
        .filter_map(|v| trace.tensor(v).map(|t| t.dtype.itemsize()))
        .max()
        .unwrap_or(1);
    let vec = (16 / widest).max(1);
    if vec < 2 || numel % vec != 0 || numel < vec * 256 {
        return (None, direct);
    }
    (Some(vec), direct)
}

pub(super) fn vec_type(bytes: usize) -> &'static str {
    match bytes {
        16 => "uint4",
        8 => "uint2",
        4 => "unsigned int",
        2 => "unsigned short",
        _ => "unsigned char",
    }
}

#[allow(clippy::too_many_arguments)]
fn pointwise_vec(
    g: &mut Gen,
    source: &mut String,
    ps: &str,
    region: &Region,
    outs: &[usize],
    shape: &[usize],
    ename: &str,
    vec: usize,
    direct: &[usize],
) -> Result<(), GenError> {
    let numel: usize = shape.iter().product();
    let mut blk = Block::new(2, HashMap::new());
    blk.line("const idx_t base = i * VEC;");
    let mut access = HashMap::new();
    for &k in direct {
        let t = tensor_of(g.trace, region.inputs[k])?;
        let st = storage_of(region.inputs[k], t.dtype)?;
        let bytes = vec * t.dtype.itemsize();
        blk.line(&format!("{st} a{k}[VEC];"));
        blk.line(&format!(
            "*reinterpret_cast<{}*>(a{k}) = *reinterpret_cast<const {}*>(in{k} + base);",
            vec_type(bytes),
            vec_type(bytes)
        ));
        access.insert(k, format!("a{k}[e]"));
    }
    for &k in outs {
        let t = tensor_of(g.trace, region.outputs[k])?;
        let st = storage_of(region.outputs[k], t.dtype)?;
        blk.line(&format!("{st} r{k}[VEC];"));
    }
    blk.line("#pragma unroll");
    blk.line("for (int e = 0; e < VEC; ++e) {");
    let mut inner = Block::new(3, HashMap::new());
    let idx_names = inner.index("i", "(base + e)", shape);
    let acc = InputAccess::Direct(access, idx_names.clone());
    for &k in outs {
        let o = region.outputs[k];
        let v = g.eval(&mut inner, o, &idx_names, &acc)?;
        inner.line(&format!("st(&r{k}[e], {v});"));
    }
    blk.code.push_str(&inner.code);
    blk.line("}");
    for &k in outs {
        let t = tensor_of(g.trace, region.outputs[k])?;
        let bytes = vec * t.dtype.itemsize();
        blk.line(&format!(
            "*reinterpret_cast<{}*>(out{k} + base) = *reinterpret_cast<const {}*>(r{k});",
            vec_type(bytes),
            vec_type(bytes)
        ));
    }
    let _ = writeln!(
        source,
        "extern \"C\" __global__ void {ename}_vec({ps}) {{\n  const int VEC = {vec};\n  for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (idx_t){}; i += (idx_t)gridDim.x * blockDim.x) {{\n{}  }}\n}}",
        numel / vec,
        blk.code
    );
    Ok(())
}
