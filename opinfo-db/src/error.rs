//! The one error type of the crate: everything that can be wrong with the YAML files.
//!
//! Every error names the file and the line: syntax and type errors take the position serde_yaml
//! reports; semantic errors (an unknown op, an attribute the op's signature does not have, a bad
//! tensor spec) take the line of the entry's `- name:` key, and say which part of the entry
//! (`sample 2`, `error input 0`, `skip 1`) is wrong.

use std::fmt;
use thiserror::Error;

/// A position in a YAML file: `ops/nn.yaml:120`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file as it was named to the loader (`ops/nn.yaml` for the builtin files).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Which part of an entry an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The entry as a whole (its name, dtypes, tolerances).
    Entry,
    /// The entry's default `attrs`.
    DefaultAttrs,
    /// `samples[i]`.
    Sample(usize),
    /// `error_inputs[i]`.
    ErrorInput(usize),
    /// `skips[i]`.
    Skip(usize),
}

impl fmt::Display for Part {
    /// A prefix for messages: empty for the whole entry, `sample 2: ` for a sample.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Entry => Ok(()),
            Part::DefaultAttrs => f.write_str("attrs: "),
            Part::Sample(i) => write!(f, "sample {i}: "),
            Part::ErrorInput(i) => write!(f, "error input {i}: "),
            Part::Skip(i) => write!(f, "skip {i}: "),
        }
    }
}

/// What can go wrong while loading the op database.
#[derive(Debug, Error)]
pub enum DbError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// YAML that does not parse, or does not fit the schema (an unknown field, a string where a
    /// list belongs), as serde_yaml reports it.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_yaml's message, without its own position suffix.
        message: String,
    },
    /// `name` is not the qualified name of a thunder-ir op.
    #[error("{at}: unknown op \"{name}\"{hint}")]
    UnknownOp {
        /// Where the entry starts.
        at: Location,
        /// The name as written.
        name: String,
        /// A suggestion, starting with a space (` (did you mean "ltorch.softmax"?)`), or empty.
        hint: String,
    },
    /// Two entries for one op.
    #[error("{at}: {name}: duplicate entry (the first is at {first})")]
    DuplicateEntry {
        /// The second entry.
        at: Location,
        /// The op.
        name: String,
        /// The first entry.
        first: Location,
    },
    /// An attribute that the op's signature does not have.
    #[error("{at}: {op}: {part}unknown attribute \"{attr}\" ({op} takes {takes})")]
    UnknownAttr {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// The attribute as written.
        attr: String,
        /// The attributes the op takes, listed (`dim, dtype`), or `no attributes`.
        takes: String,
    },
    /// A required (non-optional) attribute was not given, in the sample nor in the entry's
    /// default `attrs`.
    #[error("{at}: {op}: {part}missing attribute \"{attr}\" ({kind}); only optional attributes default to None")]
    MissingAttr {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// The attribute.
        attr: String,
        /// What it must be (`an int`).
        kind: &'static str,
    },
    /// An attribute value of the wrong kind.
    #[error("{at}: {op}: {part}attribute \"{attr}\": {message}")]
    BadAttr {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// The attribute.
        attr: String,
        /// What is wrong.
        message: String,
    },
    /// A sample with more or fewer operands than the op's signature.
    #[error("{at}: {op}: {part}expected {expected} operands ({operands}), got {got}")]
    OperandCount {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// How many the signature has.
        expected: usize,
        /// How many were given.
        got: usize,
        /// The signature's operand names, listed, or `none`.
        operands: String,
    },
    /// An operand that does not fit its parameter (a number where a tensor is required, a bad
    /// tensor spec).
    #[error("{at}: {op}: {part}operand {index} ({name}): {message}")]
    BadOperand {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// 0-based operand position.
        index: usize,
        /// The signature's name for it.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A dtype name that is not one of the short names (or groups).
    #[error("{at}: {op}: {part}unknown dtype \"{name}\" (expected one of {expected})")]
    UnknownDType {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// The name as written.
        name: String,
        /// The accepted names, listed.
        expected: String,
    },
    /// Anything else that makes an entry unusable (no samples, a skip of a sample that does not
    /// exist, a negative tolerance, an empty domain).
    #[error("{at}: {op}: {part}{message}")]
    BadEntry {
        /// Where the entry starts.
        at: Location,
        /// The entry's op.
        op: String,
        /// Which part of the entry.
        part: Part,
        /// What is wrong.
        message: String,
    },
    /// Several errors, one per line, in file order.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Multiple(Vec<DbError>),
}

impl DbError {
    /// The single errors inside (itself unless it is [`DbError::Multiple`]).
    pub fn flatten(&self) -> Vec<&DbError> {
        match self {
            DbError::Multiple(v) => v.iter().flat_map(|e| e.flatten()).collect(),
            e => vec![e],
        }
    }
}

/// Result alias of the crate.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
