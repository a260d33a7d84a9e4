//! The coverage report: per op and device class, how many cases the database describes for the
//! forward conformance tests, and how many of those it plans and checks for grad, jvp and vmap.
//!
//! `run` counts the cases that `tests/grad_ops.rs` (grad against PyTorch autograd, float64,
//! float32, bfloat16, float16), `tests/jvp_ops.rs` (the dot-product test of jvp against grad,
//! float64 and float32) and `tests/vmap_ops.rs` (vmap against a loop over the batch, float32,
//! int64, complex64) check: those whose rules all exist, less the database's skips of the check
//! (computed from metadata, so without libtorch). The tests fail on any such case that differs;
//! CUDA's run in the GPU bundle with `OPINFO_DEVICE=cuda`. `planned` counts the cases the database
//! describes for them: differentiable entries on floating and complex dtypes for grad and jvp,
//! every case for vmap. [`gaps`] says why the rest do not run.

use crate::db::OpDb;
use crate::entry::OpEntry;
use crate::schema::DeviceKind;
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

/// Case counts of one op on one device class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Forward cases: samples x listed dtypes, skipped ones not counted.
    pub forward: usize,
    /// Skipped forward cases.
    pub skipped: usize,
    /// Grad cases that run today (always 0: no grad transform yet).
    pub grad_run: usize,
    /// Grad cases planned: forward cases of a differentiable op with an inexact dtype.
    pub grad_planned: usize,
    /// Jvp cases that run today (always 0).
    pub jvp_run: usize,
    /// Jvp cases planned (as grad).
    pub jvp_planned: usize,
    /// Vmap cases that run today (always 0).
    pub vmap_run: usize,
    /// Vmap cases planned: every forward case.
    pub vmap_planned: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.forward += o.forward;
        self.skipped += o.skipped;
        self.grad_run += o.grad_run;
        self.grad_planned += o.grad_planned;
        self.jvp_run += o.jvp_run;
        self.jvp_planned += o.jvp_planned;
        self.vmap_run += o.vmap_run;
        self.vmap_planned += o.vmap_planned;
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Qualified op name.
    pub op: String,
    /// File category (`nn`).
    pub category: String,
    /// Counts on the CPU.
    pub cpu: Counts,
    /// Counts on CUDA.
    pub cuda: Counts,
}

/// Counts of one entry on one device class.
pub fn counts(e: &OpEntry, device: DeviceKind) -> Counts {
    let mut c = Counts {
        grad_run: grad_checked(e, false, device),
        jvp_run: grad_checked(e, true, device),
        vmap_run: vmap_checked(e, device),
        ..Counts::default()
    };
    for &dtype in e.dtypes(device) {
        for (i, s) in e.samples.iter().enumerate() {
            if !s.applies_to(dtype) {
                continue;
            }
            if e.skip_for(device, dtype, i).is_some() {
                c.skipped += 1;
                continue;
            }
            c.forward += 1;
            if e.differentiable && dtype.is_inexact() {
                c.grad_planned += 1;
                c.jvp_planned += 1;
            }
            c.vmap_planned += 1;
        }
    }
    c
}

/// The rows of the report, in database order, and the totals.
pub fn rows(db: &OpDb) -> (Vec<Row>, Row) {
    let mut total = Row {
        op: "total".into(),
        category: String::new(),
        cpu: Counts::default(),
        cuda: Counts::default(),
    };
    let rows: Vec<Row> = db
        .entries()
        .iter()
        .map(|e| {
            let r = Row {
                op: e.name.clone(),
                category: e.category().to_string(),
                cpu: counts(e, DeviceKind::Cpu),
                cuda: counts(e, DeviceKind::Cuda),
            };
            total.cpu.add(&r.cpu);
            total.cuda.add(&r.cuda);
            r
        })
        .collect();
    (rows, total)
}

fn cells(r: &Row) -> Vec<Cell> {
    let mut v = vec![Cell::new(&r.op), Cell::new(&r.category)];
    for c in [&r.cpu, &r.cuda] {
        let fwd = if c.skipped > 0 {
            format!("{} ({} skipped)", c.forward, c.skipped)
        } else {
            c.forward.to_string()
        };
        v.push(Cell::new(fwd).set_alignment(CellAlignment::Right));
        for (run, planned) in [
            (c.grad_run, c.grad_planned),
            (c.jvp_run, c.jvp_planned),
            (c.vmap_run, c.vmap_planned),
        ] {
            v.push(Cell::new(format!("{run}/{planned}")).set_alignment(CellAlignment::Right));
        }
    }
    v
}

/// The table: op x {cpu, cuda} x {forward, grad, jvp, vmap}, with a totals row. `markdown`
/// selects a Markdown table instead of box drawing.
pub fn table(db: &OpDb, markdown: bool) -> String {
    let (rows, total) = rows(db);
    let mut t = Table::new();
    t.load_preset(if markdown {
        presets::ASCII_MARKDOWN
    } else {
        presets::UTF8_FULL_CONDENSED
    })
    .set_content_arrangement(ContentArrangement::Disabled)
    .set_header(vec![
        "op",
        "file",
        "cpu forward",
        "cpu grad",
        "cpu jvp",
        "cpu vmap",
        "cuda forward",
        "cuda grad",
        "cuda jvp",
        "cuda vmap",
    ]);
    for r in &rows {
        t.add_row(cells(r));
    }
    t.add_row(cells(&total));
    t.to_string()
}

/// A summary line: entries, samples, cases.
pub fn summary(db: &OpDb) -> String {
    let (_, total) = rows(db);
    let samples: usize = db.entries().iter().map(|e| e.samples.len()).sum();
    let errors: usize = db.entries().iter().map(|e| e.error_inputs.len()).sum();
    format!(
        "{} ops, {} samples, {} error inputs; forward cases: {} cpu + {} cuda = {} ({} skipped)",
        db.entries().len(),
        samples,
        errors,
        total.cpu.forward,
        total.cuda.forward,
        total.cpu.forward + total.cuda.forward,
        total.cpu.skipped + total.cuda.skipped,
    )
}

const LEGEND: &str = "\
forward: cases the database describes (samples x listed dtypes; skipped cases are counted apart). \
`cargo test -p opinfo-db` builds the one-op trace of each; they are the cases that the \
conformance tests run through thunder-executors and compare against eager libtorch.

grad, jvp, vmap: `run/planned`. cpu grad `run`: the float64, float32, bfloat16 and float16 cases \
whose gradient `tests/grad_ops.rs` compares with PyTorch autograd (16-bit ones with the float64 \
re-check); cpu jvp `run`: the float64 and float32 cases of the dot-product test of jvp against \
grad (`tests/jvp_ops.rs`, which also compares each op's first float64 case with central finite \
differences); cpu vmap `run`: the float32, int64 and complex64 cases compared with a loop over \
the batch (`tests/vmap_ops.rs`). A case counts when every rule it needs exists; the tests fail on \
any case that then differs. cuda: the same tests with `OPINFO_DEVICE=cuda`, which the GPU bundle \
runs (`make gpu-bundle`, then `bundle/run-tests.sh` on a GPU machine; CI has no GPU): the same \
counts on cuda:0 (the latest run, on an NVIDIA H200, passed them all). `planned` counts the cases \
the database describes for them (grad and jvp: differentiable ops on floating and complex \
dtypes; vmap: every case; random ops are checked by shape, dtype, finiteness and whether examples \
share their numbers, with both of `torch.func.vmap`'s randomness policies); the list under the \
table says why the rest do not run.";

/// The whole `COVERAGE.md` document (generated; `OPINFO_BLESS=1 cargo test -p opinfo-db`
/// rewrites it).
pub fn markdown_document(db: &OpDb) -> String {
    format!(
        "# opinfo-db coverage\n\n\
         Generated by `cargo run -p opinfo-db --bin opinfo-coverage -- --markdown`; \
         do not edit. `OPINFO_BLESS=1 cargo test -p opinfo-db` regenerates it, and a test fails \
         when it is out of date.\n\n\
         {}.\n\n{LEGEND}\n\n{}\n\n## What is not checked, and why\n\n{}\n",
        summary(db),
        table(db, true),
        gaps(db).join("\n")
    )
}

/// The CPU cases that `tests/grad_ops.rs` (grad against PyTorch autograd, float64, float32,
/// bfloat16 and float16) or, with `jvp`, `tests/jvp_ops.rs` (the dot-product test of jvp against
/// grad, float64 and float32) check: those with a floating input and output for which
/// thunder-transforms builds the traces (every rule the op needs exists), less the database's
/// skips of the check. Building is metadata only, so this needs no libtorch.
fn grad_checked(e: &OpEntry, jvp: bool, kind: DeviceKind) -> usize {
    use thunder_ir::DType;
    let device = kind.device();
    if !e.differentiable {
        return 0;
    }
    let dtypes: &[DType] = if jvp {
        &[DType::F64, DType::F32]
    } else {
        &[DType::F64, DType::F32, DType::BF16, DType::F16]
    };
    let what = if jvp { "jvp" } else { "grad" };
    dtypes
        .iter()
        .filter(|&&d| e.supports(device, d))
        .flat_map(|&d| e.samples(device, d, crate::conformance::SEED))
        .filter(|s| e.transform_skip(what, kind, s.dtype, s.index).is_none())
        .filter(|s| grad_builds(s, jvp).is_ok())
        .count()
}

/// Whether grad (and, with `jvp`, jvp) of a sample's trace builds; `Err` says why not (`Ok(false)`:
/// nothing to differentiate).
fn grad_builds(s: &crate::Sample, jvp: bool) -> Result<bool, String> {
    let t = s.build_trace().map_err(|e| e.to_string())?;
    let wrt = crate::conformance::float_inputs(&t);
    let float_out = t
        .outputs
        .iter()
        .any(|&o| t.tensor(o).is_some_and(|m| m.dtype.is_float()));
    let empty = wrt
        .iter()
        .any(|&w| t.tensor(w).is_some_and(|m| m.shape.numel() == 0));
    if wrt.is_empty() || !float_out || (jvp && empty) {
        return Err("nothing to differentiate".into());
    }
    thunder_transforms::grad(&t, &wrt).map_err(|e| e.to_string())?;
    if jvp {
        thunder_transforms::jvp(&t, &wrt).map_err(|e| e.to_string())?;
    }
    Ok(true)
}

/// The dtypes `tests/vmap_ops.rs` runs.
const VMAP_DTYPES: [thunder_ir::DType; 3] = [
    thunder_ir::DType::F32,
    thunder_ir::DType::I64,
    thunder_ir::DType::C64,
];

/// The CPU float32, int64 and complex64 cases that `tests/vmap_ops.rs` compares with a loop over
/// the batch: those whose batching rules all exist (metadata only, like [`grad_checked`]). The
/// in_dims are the test's: see `conformance::check_vmap_case`.
fn vmap_checked(e: &OpEntry, kind: DeviceKind) -> usize {
    let device = kind.device();
    VMAP_DTYPES
        .into_iter()
        .filter(|&d| e.supports(device, d))
        .flat_map(|d| e.samples(device, d, crate::conformance::SEED))
        .filter(|s| e.skip_for(kind, s.dtype, s.index).is_none())
        .filter(|s| vmap_builds(s).is_ok())
        .count()
}

fn vmap_builds(s: &crate::Sample) -> Result<(), String> {
    let t = s.build_trace().map_err(|e| e.to_string())?;
    if t.outputs.is_empty() || t.outputs.iter().any(|&o| t.tensor(o).is_none()) {
        return Err("an output is not a tensor".into());
    }
    let in_dims = crate::conformance::vmap_in_dims(s);
    // Random ops are checked with both randomness policies; the default refuses them.
    let options = thunder_transforms::VmapOptions {
        randomness: thunder_transforms::Randomness::Same,
        ..Default::default()
    };
    thunder_transforms::vmap_with(&t, &in_dims, 3, &options)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One line per op and transform that the table shows unchecked (`0/planned`), with the reason;
/// and the ops the database marks not differentiable.
pub fn gaps(db: &OpDb) -> Vec<String> {
    use thunder_ir::Device;
    let mut out = Vec::new();
    for e in db.entries() {
        let c = counts(e, DeviceKind::Cpu);
        let samples = |dtypes: &[thunder_ir::DType]| -> Vec<crate::Sample> {
            dtypes
                .iter()
                .filter(|&&d| e.supports(Device::Cpu, d))
                .flat_map(|&d| e.samples(Device::Cpu, d, crate::conformance::SEED))
                .collect()
        };
        let floating = e.dtypes(DeviceKind::Cpu).iter().any(|d| d.is_float());
        for (what, run, planned) in [
            ("grad", c.grad_run, c.grad_planned),
            ("jvp", c.jvp_run, c.jvp_planned),
            ("vmap", c.vmap_run, c.vmap_planned),
        ] {
            if run > 0 || planned == 0 {
                continue;
            }
            let reason = if what != "vmap" && !floating {
                "complex dtypes only: grad and jvp refuse complex tensors (their rules are written \
                 for real values; PyTorch's conjugate Wirtinger convention needs conj in each)"
                    .to_string()
            } else if what == "vmap" {
                samples(&VMAP_DTYPES)
                    .iter()
                    .find_map(|s| vmap_builds(s).err())
                    .unwrap_or_else(|| "no float32, int64 or complex64 case".into())
            } else {
                samples(&[thunder_ir::DType::F64, thunder_ir::DType::F32])
                    .iter()
                    .find_map(|s| grad_builds(s, what == "jvp").err())
                    .unwrap_or_else(|| "no float64 or float32 case".into())
            };
            out.push(format!("- `{}` {what}: {reason}", e.name));
        }
    }
    let complex_ops = db
        .entries()
        .iter()
        .filter(|e| {
            e.differentiable
                && e.dtypes(DeviceKind::Cpu).iter().any(|d| d.is_complex())
                && e.dtypes(DeviceKind::Cpu).iter().any(|d| d.is_float())
        })
        .count();
    out.push(format!(
        "- the complex cases of the {complex_ops} differentiable ops that also take floating \
         dtypes (why their grad and jvp columns show fewer than planned): grad and jvp refuse \
         complex tensors, as above; 16-bit float cases are not in the jvp test (float64 and float32 \
         are)"
    ));
    let not_diff: Vec<String> = db
        .entries()
        .iter()
        .filter(|e| !e.differentiable)
        .map(|e| format!("`{}`", e.name))
        .collect();
    out.push(format!(
        "- not differentiable (`differentiable: false`: integer or bool results, creation ops, \
         in-place `copy_`), so no grad or jvp: {}",
        not_diff.join(", ")
    ));
    out
}
