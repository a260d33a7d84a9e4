//! The pass manager: runs passes in order, verifies after each, keeps every intermediate trace.

use crate::{Result, TransformError};
use std::time::{Duration, Instant};
use thunder_ir::Trace;

/// A trace-to-trace transform.
pub trait Pass {
    /// A short name, shown in the pass history and in errors.
    fn name(&self) -> &str;
    /// Runs the pass.
    fn run(&self, trace: &Trace) -> Result<Trace>;
}

/// A pass made of a name and a function.
pub struct FnPass<F> {
    name: String,
    f: F,
}

impl<F: Fn(&Trace) -> Result<Trace>> Pass for FnPass<F> {
    fn name(&self) -> &str {
        &self.name
    }
    fn run(&self, trace: &Trace) -> Result<Trace> {
        (self.f)(trace)
    }
}

/// Makes a [`Pass`] from a function.
pub fn pass_fn<F: Fn(&Trace) -> Result<Trace>>(name: impl Into<String>, f: F) -> FnPass<F> {
    FnPass {
        name: name.into(),
        f,
    }
}

/// One step of a run: the trace after a pass, and how long the pass took.
#[derive(Debug, Clone)]
pub struct PassRecord {
    /// The pass (`"input"` for the trace the run started from).
    pub pass: String,
    /// The trace after it.
    pub trace: Trace,
    /// Time spent in the pass (not in the verifier).
    pub duration: Duration,
}

/// The traces of a run, in order: the input, then one per pass (what `thunder.last_traces` shows).
#[derive(Debug, Clone, Default)]
pub struct PassHistory {
    /// The records, the input first.
    pub records: Vec<PassRecord>,
}

impl PassHistory {
    /// The final trace.
    pub fn last(&self) -> Option<&Trace> {
        self.records.last().map(|r| &r.trace)
    }
    /// Every trace as Python, each under a header naming the pass and its time.
    pub fn to_python(&self) -> String {
        let mut s = String::new();
        for r in &self.records {
            s.push_str(&format!(
                "# ===== after {} ({:.3} ms) =====\n",
                r.pass,
                r.duration.as_secs_f64() * 1e3
            ));
            s.push_str(&r.trace.to_python());
            s.push('\n');
        }
        s
    }
}

/// Runs passes in order.
///
/// After every pass the verifier checks the trace (SSA, metadata consistency) when verification is
/// on: by default in debug builds and tests, and off in release builds, where passes are trusted.
/// A failing check names the pass that broke the trace.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    verify: bool,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager::new()
    }
}

impl PassManager {
    /// An empty pipeline, verifying after each pass in debug builds.
    pub fn new() -> Self {
        PassManager {
            passes: Vec::new(),
            verify: cfg!(debug_assertions),
        }
    }
    /// Adds a pass at the end.
    pub fn then(mut self, pass: impl Pass + 'static) -> Self {
        self.passes.push(Box::new(pass));
        self
    }
    /// Turns the verifier on or off for every pass.
    pub fn verify_each(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }
    /// The names of the passes, in order.
    pub fn names(&self) -> Vec<&str> {
        self.passes.iter().map(|p| p.name()).collect()
    }
    /// Runs every pass on `trace`, returning the history (the input trace first, the result last).
    pub fn run(&self, trace: &Trace) -> Result<PassHistory> {
        if self.verify {
            trace.verify()?;
        }
        let mut history = PassHistory {
            records: vec![PassRecord {
                pass: "input".into(),
                trace: trace.clone(),
                duration: Duration::ZERO,
            }],
        };
        for p in &self.passes {
            let current = history.last().unwrap_or(trace);
            let start = Instant::now();
            let next = p.run(current)?;
            let duration = start.elapsed();
            if self.verify {
                next.verify()
                    .map_err(|error| TransformError::InvalidOutput {
                        pass: p.name().to_string(),
                        error: Box::new(error),
                    })?;
            }
            history.records.push(PassRecord {
                pass: p.name().to_string(),
                trace: next,
                duration,
            });
        }
        Ok(history)
    }
}
