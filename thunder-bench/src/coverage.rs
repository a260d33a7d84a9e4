//! `thunder-bench coverage`: opinfo-db's coverage report (op x {cpu, cuda} x {forward, grad, jvp,
//! vmap}; the content of `opinfo-db/COVERAGE.md` with `--markdown`). opinfo-db does not depend on
//! thunder-transforms, so the report asks [`ThunderTransforms`] which rules exist.

use opinfo_db::coverage;
use opinfo_db::OpDb;
use thunder_ir::{Trace, Value};

/// thunder-transforms as opinfo-db's coverage report asks of it: whether grad, jvp and vmap build
/// a case's trace (metadata only). thunder-transforms' tests have the same three
/// (`tests/support/mod.rs`), and their `tests/coverage.rs` keeps COVERAGE.md up to date; the test
/// below checks that this one gives the same document.
pub struct ThunderTransforms;

impl coverage::Transforms for ThunderTransforms {
    fn grad(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String> {
        thunder_transforms::grad(trace, wrt)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn jvp(&self, trace: &Trace, wrt: &[Value]) -> Result<(), String> {
        thunder_transforms::jvp(trace, wrt)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn vmap(&self, trace: &Trace, in_dims: &[Option<usize>], batch: usize) -> Result<(), String> {
        let options = thunder_transforms::VmapOptions {
            randomness: thunder_transforms::Randomness::Same,
            ..Default::default()
        };
        thunder_transforms::vmap_with(trace, in_dims, batch, &options)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The report: the Markdown document (`markdown`), or the table and the summary line.
pub fn report(db: &OpDb, markdown: bool) -> String {
    if markdown {
        coverage::markdown_document(db, &ThunderTransforms)
    } else {
        format!(
            "{}\n{}\n",
            coverage::table(db, false, &ThunderTransforms),
            coverage::summary(db)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `thunder-bench coverage --markdown` writes what thunder-transforms' test of COVERAGE.md
    /// expects (the two implementations of the three questions agree).
    #[test]
    fn the_markdown_report_is_coverage_md() {
        let db = OpDb::builtin().unwrap_or_else(|e| panic!("{e}"));
        let path = opinfo_db::package_dir().join("COVERAGE.md");
        let have =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            report(&db, true) == have,
            "`thunder-bench coverage --markdown` differs from {} (which thunder-transforms' \
             tests/coverage.rs keeps up to date)",
            path.display()
        );
    }
}
