//! [`OpDb`]: every entry of the database, loaded from a directory or from the files built into
//! the crate.

use crate::entry::OpEntry;
use crate::error::{DbError, Result};
use crate::load::{check_duplicates, parse_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thunder_ir::{Op, PrimOp, TorchOp};

/// The YAML files of the database as built into the crate: `(name, text)`, named as in error
/// messages (`ops/nn.yaml`).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "ops/elementwise.yaml",
        include_str!("../ops/elementwise.yaml"),
    ),
    (
        "ops/reductions.yaml",
        include_str!("../ops/reductions.yaml"),
    ),
    ("ops/shape.yaml", include_str!("../ops/shape.yaml")),
    ("ops/indexing.yaml", include_str!("../ops/indexing.yaml")),
    ("ops/nn.yaml", include_str!("../ops/nn.yaml")),
    ("ops/linalg.yaml", include_str!("../ops/linalg.yaml")),
    ("ops/creation.yaml", include_str!("../ops/creation.yaml")),
    ("ops/optim.yaml", include_str!("../ops/optim.yaml")),
    ("ops/opaque.yaml", include_str!("../ops/opaque.yaml")),
];

/// The op database: one [`OpEntry`] per op, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct OpDb {
    entries: Vec<OpEntry>,
    by_op: BTreeMap<Op, usize>,
}

impl OpDb {
    /// The database built into the crate (the files of `opinfo-db/ops/` at build time), so that
    /// tests do not depend on the working directory.
    pub fn builtin() -> Result<OpDb> {
        OpDb::from_sources(BUILTIN_FILES.iter().copied())
    }

    /// Loads every `*.yaml` file of `dir`, in name order. Errors name files as `dir/file.yaml`.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<OpDb> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| DbError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut paths = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let p = e.map_err(|e| io(dir, e))?.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                paths.push(p);
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            files.push((p.display().to_string(), text));
        }
        OpDb::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// Loads files given as `(name, text)`; `name` is used in error messages. Every file is
    /// checked and all errors are returned together.
    pub fn from_sources<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<OpDb> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (name, text) in files {
            match parse_file(name, text) {
                Ok(es) => entries.extend(es),
                Err(DbError::Multiple(es)) => errors.extend(es),
                Err(e) => errors.push(e),
            }
        }
        errors.extend(check_duplicates(&entries));
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(DbError::Multiple(errors)),
        }
        let by_op = entries.iter().enumerate().map(|(i, e)| (e.op, i)).collect();
        Ok(OpDb { entries, by_op })
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[OpEntry] {
        &self.entries
    }

    /// The entry of an op.
    pub fn get(&self, op: Op) -> Option<&OpEntry> {
        self.by_op.get(&op).map(|&i| &self.entries[i])
    }

    /// The entry of a qualified op name (`ltorch.softmax`).
    pub fn by_name(&self, name: &str) -> Option<&OpEntry> {
        Op::from_qualified_name(name).and_then(|op| self.get(op))
    }

    /// The ops of thunder-ir (every [`PrimOp::ALL`] and [`TorchOp::ALL`]) without an entry.
    pub fn missing_ops(&self) -> Vec<Op> {
        all_ops()
            .filter(|op| !self.by_op.contains_key(op))
            .collect()
    }
}

/// Every op thunder-ir defines: prims first, then torch-level ops.
pub fn all_ops() -> impl Iterator<Item = Op> {
    PrimOp::ALL
        .iter()
        .map(|&p| Op::Prim(p))
        .chain(TorchOp::ALL.iter().map(|&t| Op::Torch(t)))
}

/// The opinfo-db package folder (`ops/`, `COVERAGE.md`), for the tests of this crate and of
/// others (thunder-transforms' coverage test) that read its files at run time:
///
/// 1. `OPINFO_DB_DIR`, when set;
/// 2. else from the run-time `CARGO_MANIFEST_DIR`, which cargo sets for the tests it runs and the
///    GPU bundle's `run-tests.sh` sets for binaries built on another machine: that folder when it
///    is opinfo-db's, else its sibling `opinfo-db` (a test of another crate of the workspace);
/// 3. else the folder this crate was built from.
///
/// A folder counts as opinfo-db's when it holds the first of [`BUILTIN_FILES`].
pub fn package_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPINFO_DB_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let is_ours = |d: &Path| d.join(BUILTIN_FILES[0].0).is_file();
    if let Some(here) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) {
        let sibling = here.join("..").join("opinfo-db");
        for d in [here, sibling] {
            if is_ours(&d) {
                return d;
            }
        }
    }
    env!("CARGO_MANIFEST_DIR").into()
}
