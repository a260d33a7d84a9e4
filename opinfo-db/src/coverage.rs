//! The coverage report: per op and device class, how many cases the database describes for the
//! forward conformance tests, and how many of those it plans and checks for grad, jvp and vmap.
//!
//! `run` counts the cases that thunder-transforms' surveys check: `tests/grad_ops.rs` (grad
//! against PyTorch autograd, float64, float32, bfloat16, float16), `tests/jvp_ops.rs` (the
//! dot-product test of jvp against grad, float64 and float32) and `tests/vmap_ops.rs` (vmap against
//! a loop over the batch, float32, int64, complex64): those whose rules all exist, less the
//! database's skips of the check (computed from metadata, so without libtorch). The tests fail on
//! any such case that differs; CUDA's run in the GPU bundle with `OPINFO_DEVICE=cuda`. `planned`
//! counts the cases the database describes for them: differentiable entries on floating and
//! complex dtypes for grad and jvp, every case for vmap. [`gaps`] says why the rest do not run.
//!
//! This crate does not depend on thunder-transforms: whether a rule exists is asked of a
//! [`Transforms`] that the caller gives. The implementation over thunder-transforms is in
//! thunder-bench (`thunder-bench coverage`, which prints the report and writes `COVERAGE.md`) and
//! in thunder-transforms' tests (`tests/coverage.rs`, which keeps `COVERAGE.md` up to date).

use crate::db::OpDb;
use crate::entry::OpEntry;
use crate::schema::DeviceKind;
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use thunder_ir::{Trace, Value};

/// What the report asks of the transforms: whether each builds its trace for a case, that is
/// whether every rule the case needs exists. Building is metadata only (no libtorch runs). Each
/// method returns the transform's error message when it refuses.
pub trait Transforms {
    /// `grad` of `trace` with respect to `wrt`.
    fn grad(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String>;
    /// `jvp` of `trace` with respect to `wrt`.
    fn jvp(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String>;
    /// `vmap` of `trace` over a batch of `batch` examples with `in_dims`, random ops with the same
    /// random numbers for every example (thunder-transforms' `Randomness::Same`: the vmap survey
    /// checks random ops under both policies, and the default policy refuses them).
    fn vmap(&self, trace: &Trace, in_dims: &[Option<usize>], batch: usize) -> Result<(), String>;
}

/// Case counts of one op on one device class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Forward cases: samples x listed dtypes, skipped ones not counted.
    pub forward: usize,
    /// Skipped forward cases.
    pub skipped: usize,
    /// Grad cases that the grad survey checks (every rule they need exists).
    pub grad_run: usize,
    /// Grad cases planned: forward cases of a differentiable op with an inexact dtype.
    pub grad_planned: usize,
    /// Jvp cases that the jvp survey checks (the dot-product test).
    pub jvp_run: usize,
    /// Jvp cases planned (as grad).
    pub jvp_planned: usize,
    /// Vmap cases that the vmap survey checks.
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

/// Counts of one entry on one device class (`transforms` say which rules exist).
pub fn counts(e: &OpEntry, device: DeviceKind, transforms: &dyn Transforms) -> Counts {
    Counts {
        grad_run: grad_checked(e, false, device, transforms),
        jvp_run: grad_checked(e, true, device, transforms),
        vmap_run: vmap_checked(e, device, transforms),
        ..planned(e, device)
    }
}

/// What the database describes for one entry on one device class: the forward, skipped and
/// planned counts of [`counts`], with every `run` count 0 (no transform asked).
pub fn planned(e: &OpEntry, device: DeviceKind) -> Counts {
    let mut c = Counts::default();
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
pub fn rows(db: &OpDb, transforms: &dyn Transforms) -> (Vec<Row>, Row) {
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
                cpu: counts(e, DeviceKind::Cpu, transforms),
                cuda: counts(e, DeviceKind::Cuda, transforms),
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
pub fn table(db: &OpDb, markdown: bool, transforms: &dyn Transforms) -> String {
    let (rows, total) = rows(db, transforms);
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
    let (mut cpu, mut cuda) = (Counts::default(), Counts::default());
    for e in db.entries() {
        cpu.add(&planned(e, DeviceKind::Cpu));
        cuda.add(&planned(e, DeviceKind::Cuda));
    }
    let samples: usize = db.entries().iter().map(|e| e.samples.len()).sum();
    let errors: usize = db.entries().iter().map(|e| e.error_inputs.len()).sum();
    format!(
        "{} ops, {} samples, {} error inputs; forward cases: {} cpu + {} cuda = {} ({} skipped)",
        db.entries().len(),
        samples,
        errors,
        cpu.forward,
        cuda.forward,
        cpu.forward + cuda.forward,
        cpu.skipped + cuda.skipped,
    )
}

const LEGEND: &str = "\
forward: cases the database describes (samples x listed dtypes; skipped cases are counted apart). \
`cargo test -p opinfo-db` builds the one-op trace of each; they are the cases that the \
conformance tests run through thunder-executors and compare against eager libtorch.

grad, jvp, vmap: `run/planned`. cpu grad `run`: the float64, float32, bfloat16 and float16 cases \
whose gradient thunder-transforms' `tests/grad_ops.rs` compares with PyTorch autograd (16-bit \
ones with the float64 re-check); cpu jvp `run`: the float64 and float32 cases of the dot-product test of jvp against \
grad (`tests/jvp_ops.rs`, which also compares each op's first float64 case with central finite \
differences); cpu vmap `run`: the float32, int64 and complex64 cases compared with a loop over \
the batch (`tests/vmap_ops.rs`; float32 and complex64 cases beyond the tolerance pass when the \
batched result is no farther from the loop in float64 than the loop itself). A case counts when every rule it needs exists; the tests fail on \
any case that then differs. cuda: the same tests with `OPINFO_DEVICE=cuda`, which the GPU bundle \
runs (`make gpu-bundle`, then `bundle/run-tests.sh` on a GPU machine; CI has no GPU): the same \
counts on cuda:0 (the latest run, on an NVIDIA H100, passed them all but one vmap case of \
attention in float32, before that re-check existed). `planned` counts the cases \
the database describes for them (grad and jvp: differentiable ops on floating and complex \
dtypes; vmap: every case; random ops are checked by shape, dtype, finiteness and whether examples \
share their numbers, with both of `torch.func.vmap`'s randomness policies); the list under the \
table says why the rest do not run.";

/// The whole `COVERAGE.md` document (generated; `OPINFO_BLESS=1 cargo test -p thunder-transforms
/// --test coverage` rewrites it).
pub fn markdown_document(db: &OpDb, transforms: &dyn Transforms) -> String {
    format!(
        "# opinfo-db coverage\n\n\
         Generated by `cargo run -p thunder-bench -- coverage --markdown`; do not edit. \
         `OPINFO_BLESS=1 cargo test -p thunder-transforms --test coverage` regenerates it, and a \
         test fails when it is out of date.\n\n\
         {}.\n\n{LEGEND}\n\n{}\n\n## What is not checked, and why\n\n{}\n",
        summary(db),
        table(db, true, transforms),
        gaps(db, transforms).join("\n")
    )
}

/// The cases that thunder-transforms' `tests/grad_ops.rs` (grad against PyTorch autograd,
/// float64, float32, bfloat16 and float16) or, with `jvp`, `tests/jvp_ops.rs` (the dot-product
/// test of jvp against grad, float64 and float32) check: those with a floating input and output
/// for which `transforms` build the traces (every rule the op needs exists), less the database's
/// skips of the check. Building is metadata only, so this needs no libtorch.
fn grad_checked(e: &OpEntry, jvp: bool, kind: DeviceKind, transforms: &dyn Transforms) -> usize {
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
        .filter(|s| grad_builds(s, jvp, transforms).is_ok())
        .count()
}

/// Whether grad (and, with `jvp`, jvp) of a sample's trace builds; `Err` says why not (`Ok(false)`:
/// nothing to differentiate).
fn grad_builds(s: &crate::Sample, jvp: bool, transforms: &dyn Transforms) -> Result<bool, String> {
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
    transforms.grad(&t, &wrt)?;
    if jvp {
        transforms.jvp(&t, &wrt)?;
    }
    Ok(true)
}

/// The dtypes thunder-transforms' `tests/vmap_ops.rs` runs.
const VMAP_DTYPES: [thunder_ir::DType; 3] = [
    thunder_ir::DType::F32,
    thunder_ir::DType::I64,
    thunder_ir::DType::C64,
];

/// The float32, int64 and complex64 cases that thunder-transforms' `tests/vmap_ops.rs` compares
/// with a loop over the batch: those whose batching rules all exist (metadata only, like
/// [`grad_checked`]). The in_dims are the test's: see [`crate::conformance::vmap_in_dims`].
fn vmap_checked(e: &OpEntry, kind: DeviceKind, transforms: &dyn Transforms) -> usize {
    let device = kind.device();
    VMAP_DTYPES
        .into_iter()
        .filter(|&d| e.supports(device, d))
        .flat_map(|d| e.samples(device, d, crate::conformance::SEED))
        .filter(|s| e.skip_for(kind, s.dtype, s.index).is_none())
        .filter(|s| vmap_builds(s, transforms).is_ok())
        .count()
}

fn vmap_builds(s: &crate::Sample, transforms: &dyn Transforms) -> Result<(), String> {
    let t = s.build_trace().map_err(|e| e.to_string())?;
    if t.outputs.is_empty() || t.outputs.iter().any(|&o| t.tensor(o).is_none()) {
        return Err("an output is not a tensor".into());
    }
    let in_dims = crate::conformance::vmap_in_dims(s);
    transforms.vmap(&t, &in_dims, 3)
}

/// One line per op and transform that the table shows unchecked (`0/planned`), with the reason;
/// and the ops the database marks not differentiable.
pub fn gaps(db: &OpDb, transforms: &dyn Transforms) -> Vec<String> {
    use thunder_ir::Device;
    let mut out = Vec::new();
    for e in db.entries() {
        let c = counts(e, DeviceKind::Cpu, transforms);
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
                    .find_map(|s| vmap_builds(s, transforms).err())
                    .unwrap_or_else(|| "no float32, int64 or complex64 case".into())
            } else {
                samples(&[thunder_ir::DType::F64, thunder_ir::DType::F32])
                    .iter()
                    .find_map(|s| grad_builds(s, what == "jvp", transforms).err())
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
         in-place `copy_`, the VJP of an ATen call `aten_vjp`), so no grad or jvp: {}",
        not_diff.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    //! What the database describes. The whole report, with thunder-transforms answering which
    //! rules exist, and COVERAGE.md are tested by thunder-transforms' `tests/coverage.rs`; here a
    //! stand-in has no rule at all.
    use super::*;

    /// Transforms without a single rule.
    struct NoRules;

    impl Transforms for NoRules {
        fn grad(&self, _: &Trace, _: &[Value]) -> Result<(), String> {
            Err("no grad rules".into())
        }

        fn jvp(&self, _: &Trace, _: &[Value]) -> Result<(), String> {
            Err("no jvp rules".into())
        }

        fn vmap(&self, _: &Trace, _: &[Option<usize>], _: usize) -> Result<(), String> {
            Err("no vmap rules".into())
        }
    }

    #[test]
    fn skipped_cases_are_reported_and_counted_apart() {
        let text = "\
- name: ltorch.exp
  torch: torch.exp
  dtypes: {cpu: [f32, bf16], cuda: [f32, bf16]}
  differentiable: true
  samples:
    - args: [{shape: [2]}]
    - args: [{shape: []}]
  skips:
    - {device: cuda, dtype: bf16, reason: a known difference}
    - {sample: 1, dtype: f32, reason: another}
";
        let db = OpDb::from_sources([("ops/x.yaml", text)]).unwrap_or_else(|e| panic!("{e}"));
        let e = db.by_name("ltorch.exp").expect("exp");
        let cuda: Vec<_> = e.cases(DeviceKind::Cuda.device(), 0);
        let skipped: Vec<String> = cuda
            .iter()
            .filter_map(|(s, k)| k.map(|k| format!("{} {}", s.id(), k.reason)))
            .collect();
        assert_eq!(
            skipped,
            [
                "ltorch.exp/1/cuda:0/f32 another",
                "ltorch.exp/0/cuda:0/bf16 a known difference",
                "ltorch.exp/1/cuda:0/bf16 a known difference",
            ]
        );
        let c = planned(e, DeviceKind::Cuda);
        assert_eq!((c.forward, c.skipped), (1, 3));
        assert_eq!(counts(e, DeviceKind::Cuda, &NoRules), c);
        let c = planned(e, DeviceKind::Cpu);
        assert_eq!((c.forward, c.skipped), (3, 1));
        assert!(table(&db, false, &NoRules).contains("1 (3 skipped)"));
        // Without rules nothing runs, and every planned column is listed with the reason.
        let gaps = gaps(&db, &NoRules);
        assert!(
            gaps.iter()
                .any(|g| g == "- `ltorch.exp` grad: no grad rules"),
            "{gaps:#?}"
        );
    }
}
