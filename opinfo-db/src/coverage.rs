//! The coverage report: per op and device class, how many cases the database describes for the
//! forward conformance tests, and how many it plans for grad, jvp and vmap.
//!
//! The grad and jvp columns count, on the CPU, the float64 cases that `tests/grad_ops.rs` (grad
//! against PyTorch autograd) and `tests/jvp_ops.rs` (the dot-product test of jvp against grad)
//! check, and the vmap column the float32 and int64 cases that `tests/vmap_ops.rs` compares with a
//! loop over the batch; CUDA cases say `0/N`: none run, N planned (the cases the database already describes for them:
//! differentiable entries on floating and complex dtypes for grad and jvp, every non-random case
//! for vmap).

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
    /// Vmap cases planned: non-random forward cases.
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
    let mut c = Counts::default();
    if device == DeviceKind::Cpu {
        c.grad_run = grad_checked(e, false);
        c.jvp_run = grad_checked(e, true);
        c.vmap_run = vmap_checked(e);
    }
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
            if !e.random {
                c.vmap_planned += 1;
            }
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

grad, jvp, vmap: `run/planned`. cpu grad `run`: the float64 cases whose gradient \
`tests/grad_ops.rs` compares with PyTorch autograd (every VJP rule the op needs exists); cpu jvp \
`run`: the float64 cases of the dot-product test of jvp against grad (`tests/jvp_ops.rs`); cpu \
vmap `run`: the float32 and int64 cases compared with a loop over the batch (`tests/vmap_ops.rs`). \
No cuda grad, jvp or vmap case runs yet. `planned` counts the cases the \
database describes for them (grad and jvp: differentiable ops on floating and complex dtypes; \
vmap: every non-random case).";

/// The whole `COVERAGE.md` document (generated; `OPINFO_BLESS=1 cargo test -p opinfo-db`
/// rewrites it).
pub fn markdown_document(db: &OpDb) -> String {
    format!(
        "# opinfo-db coverage\n\n\
         Generated by `cargo run -p opinfo-db --bin opinfo-coverage -- --markdown`; \
         do not edit. `OPINFO_BLESS=1 cargo test -p opinfo-db` regenerates it, and a test fails \
         when it is out of date.\n\n\
         {}.\n\n{LEGEND}\n\n{}\n",
        summary(db),
        table(db, true)
    )
}

/// The CPU float64 cases that `tests/grad_ops.rs` (grad against PyTorch autograd) or, with `jvp`,
/// `tests/jvp_ops.rs` (the dot-product test of jvp against grad) check: those with a floating
/// input and output for which thunder-transforms builds the traces (every rule the op needs
/// exists). Building is metadata only, so this needs no libtorch.
fn grad_checked(e: &OpEntry, jvp: bool) -> usize {
    use thunder_ir::{DType, Device};
    if !e.differentiable || e.random || !e.supports(Device::Cpu, DType::F64) {
        return 0;
    }
    e.samples(Device::Cpu, DType::F64, crate::conformance::SEED)
        .iter()
        .filter(|s| e.skip_for(DeviceKind::Cpu, DType::F64, s.index).is_none())
        .filter(|s| {
            let Ok(t) = s.build_trace() else { return false };
            let wrt: Vec<_> = t
                .inputs
                .iter()
                .copied()
                .filter(|&v| t.tensor(v).is_some_and(|m| m.dtype.is_float()))
                .collect();
            let float_out = t
                .outputs
                .iter()
                .any(|&o| t.tensor(o).is_some_and(|m| m.dtype.is_float()));
            let empty = wrt
                .iter()
                .any(|&w| t.tensor(w).is_some_and(|m| m.shape.numel() == 0));
            let grad_ok = thunder_transforms::grad(&t, &wrt).is_ok();
            !wrt.is_empty()
                && float_out
                && grad_ok
                && (!jvp || (!empty && thunder_transforms::jvp(&t, &wrt).is_ok()))
        })
        .count()
}

/// The CPU float32 and int64 cases that `tests/vmap_ops.rs` compares with a loop over the batch:
/// those whose batching rules all exist (metadata only, like [`grad_checked`]). The in_dims are
/// the test's: see `conformance::check_vmap_case`.
fn vmap_checked(e: &OpEntry) -> usize {
    use thunder_ir::{DType, Device};
    if e.random {
        return 0;
    }
    [DType::F32, DType::I64]
        .into_iter()
        .filter(|&d| e.supports(Device::Cpu, d))
        .flat_map(|d| e.samples(Device::Cpu, d, crate::conformance::SEED))
        .filter(|s| e.skip_for(DeviceKind::Cpu, s.dtype, s.index).is_none())
        .filter(|s| {
            let Ok(t) = s.build_trace() else { return false };
            if t.outputs.is_empty() || t.outputs.iter().any(|&o| t.tensor(o).is_none()) {
                return false;
            }
            let in_dims = crate::conformance::vmap_in_dims(s);
            thunder_transforms::vmap(&t, &in_dims, 3).is_ok()
        })
        .count()
}
