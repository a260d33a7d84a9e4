//! opinfo-db's COVERAGE.md, whose grad, jvp and vmap columns ask thunder-transforms which rules
//! exist, is generated from the database and must be up to date.
//! `OPINFO_BLESS=1 cargo test -p thunder-transforms --test coverage` rewrites it.

mod support;

use opinfo_db::{coverage, DeviceKind, OpDb};
use support::ThunderTransforms;

#[test]
fn coverage_md_is_up_to_date() {
    let db = OpDb::builtin().unwrap_or_else(|e| panic!("{e}"));
    let want = coverage::markdown_document(&db, &ThunderTransforms);
    // opinfo-db's folder, found at run time (see `opinfo_db::package_dir`).
    let path = opinfo_db::package_dir().join("COVERAGE.md");
    if std::env::var_os("OPINFO_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: regenerate it with\n    OPINFO_BLESS=1 cargo test -p thunder-transforms --test coverage",
        path.display()
    );
}

#[test]
fn the_report_counts_what_the_database_holds() {
    let db = OpDb::builtin().unwrap_or_else(|e| panic!("{e}"));
    let (rows, total) = coverage::rows(&db, &ThunderTransforms);
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
    let gaps = coverage::gaps(&db, &ThunderTransforms);
    // Every differentiable op with a floating dtype has its grad and jvp checked, every op its
    // vmap, except where the database expects the transform to refuse the op (`no_rule`): then
    // none of its cases runs, and the list under the table says why. What else is left is
    // listed with a reason.
    for (e, r) in db.entries().iter().zip(&rows) {
        let floating = e.dtypes(DeviceKind::Cpu).iter().any(|d| d.is_float());
        let checked = |transform: &str, run: usize| match e.expected_no_rule(transform) {
            None => run > 0,
            Some(_) => {
                run == 0
                    && gaps
                        .iter()
                        .any(|g| g.starts_with(&format!("- `{}` {transform}: ", e.name)))
            }
        };
        if e.differentiable && floating {
            assert!(
                checked("grad", r.cpu.grad_run) && checked("jvp", r.cpu.jvp_run),
                "{}: {:?}",
                e.name,
                r.cpu
            );
        }
        assert!(checked("vmap", r.cpu.vmap_run), "{}: {:?}", e.name, r.cpu);
    }
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
    let text = coverage::table(&db, false, &ThunderTransforms);
    assert!(text.contains("ltorch.softmax") && text.contains("cuda vmap"));
    let md = coverage::table(&db, true, &ThunderTransforms);
    assert!(
        md.lines().nth(1).is_some_and(|l| l.starts_with("|-")),
        "{md}"
    );
}
