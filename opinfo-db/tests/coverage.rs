//! COVERAGE.md is generated from the database and must be up to date.
//! `OPINFO_BLESS=1 cargo test -p opinfo-db --test coverage` rewrites it.

use opinfo_db::{coverage, DeviceKind, OpDb};

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

#[test]
fn coverage_md_is_up_to_date() {
    let db = OpDb::builtin().unwrap_or_else(|e| panic!("{e}"));
    let want = coverage::markdown_document(&db);
    let path = package_dir().join("COVERAGE.md");
    if std::env::var_os("OPINFO_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: regenerate it with\n    OPINFO_BLESS=1 cargo test -p opinfo-db --test coverage",
        path.display()
    );
}

#[test]
fn the_report_counts_what_the_database_holds() {
    let db = OpDb::builtin().unwrap_or_else(|e| panic!("{e}"));
    let (rows, total) = coverage::rows(&db);
    assert_eq!(rows.len(), db.entries().len());
    let cases: usize = db
        .entries()
        .iter()
        .map(|e| {
            e.cases(DeviceKind::Cpu.device(), 0)
                .iter()
                .filter(|(_, s)| s.is_none())
                .count()
        })
        .sum();
    assert_eq!(total.cpu.forward, cases);
    // Nothing claims to run that the database does not plan.
    for c in [&total.cpu, &total.cuda] {
        assert!(c.grad_run > 0 && c.grad_run <= c.grad_planned);
        assert!(c.jvp_run > 0 && c.jvp_run <= c.grad_run);
        assert!(c.vmap_run > 0 && c.vmap_run <= c.vmap_planned);
    }
    assert!(total.cpu.vmap_run > 0 && total.cpu.vmap_run <= total.cpu.vmap_planned);
    assert!(total.cpu.grad_run > 0 && total.cpu.grad_run <= total.cpu.grad_planned);
    assert!(total.cpu.jvp_run > 0 && total.cpu.jvp_run <= total.cpu.grad_run);
    let relu = rows.iter().find(|r| r.op == "ltorch.relu").expect("relu");
    assert!(relu.cpu.grad_run > 0, "relu's gradient is checked");
    // Every differentiable op with a floating dtype has its grad and jvp checked, every
    // non-random op its vmap; what is left is listed with a reason.
    for (e, r) in db.entries().iter().zip(&rows) {
        let floating = e.dtypes(DeviceKind::Cpu).iter().any(|d| d.is_float());
        if e.differentiable && floating {
            assert!(
                r.cpu.grad_run > 0 && r.cpu.jvp_run > 0,
                "{}: {:?}",
                e.name,
                r.cpu
            );
        }
        assert!(r.cpu.vmap_run > 0, "{}: {:?}", e.name, r.cpu);
    }
    let gaps = coverage::gaps(&db);
    assert!(
        gaps.iter()
            .any(|g| g.starts_with("- `prims.real` grad: complex dtypes only")),
        "{gaps:#?}"
    );
    assert!(
        !gaps.iter().any(|g| g.contains("prims.digamma")),
        "{gaps:#?}"
    );
    assert!(total.cpu.grad_planned > 0 && total.cpu.grad_planned < total.cpu.forward);
    let random = rows.iter().find(|r| r.op == "prims.randn").expect("randn");
    assert!(random.cpu.vmap_run > 0 && random.cpu.grad_planned == 0);
    let text = coverage::table(&db, false);
    assert!(text.contains("ltorch.softmax") && text.contains("cuda vmap"));
    let md = coverage::table(&db, true);
    assert!(
        md.lines().nth(1).is_some_and(|l| l.starts_with("|-")),
        "{md}"
    );
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
    let c = coverage::counts(e, DeviceKind::Cuda);
    assert_eq!((c.forward, c.skipped), (1, 3));
    let c = coverage::counts(e, DeviceKind::Cpu);
    assert_eq!((c.forward, c.skipped), (3, 1));
    assert!(coverage::table(&db, false).contains("1 (3 skipped)"));
}
