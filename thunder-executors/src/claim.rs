//! The claim pass: decides which executor runs each bound symbol.

use crate::executor::Executor;
use crate::{Error, Result};
use std::collections::HashMap;
use thunder_ir::printer::{print_trace_with_lines, statement};
use thunder_ir::{BoundSymbol, Trace};

/// One bound symbol of a claimed trace, with the executor that runs it.
#[derive(Debug, Clone)]
pub struct ClaimedOp {
    /// The bound symbol (a top-level one, or one found inside a decomposition).
    pub bsym: BoundSymbol,
    /// Index into the executor list.
    pub executor: usize,
    /// Its 1-based line in the original trace's printed text.
    pub line: usize,
}

/// A trace after the claim pass: a flat list of bound symbols in program order, each with its
/// executor. Torch-level ops that no executor claimed were replaced by their decompositions.
#[derive(Debug, Clone)]
pub struct ClaimedTrace {
    /// The original trace (its value table serves the claimed ops too).
    pub trace: Trace,
    /// The ops to run, in order.
    pub ops: Vec<ClaimedOp>,
    /// The executors' names, indexed by [`ClaimedOp::executor`].
    pub executor_names: Vec<&'static str>,
}

/// Assigns every bound symbol of `trace` to the first executor of `executors` that claims it,
/// descending into the decomposition of torch-level ops that none claims.
pub fn claim(trace: &Trace, executors: &[&dyn Executor]) -> Result<ClaimedTrace> {
    let (_, lines) = print_trace_with_lines(trace);
    let lines: HashMap<Vec<usize>, usize> = lines.into_iter().collect();
    let mut ops = Vec::new();
    let mut path = Vec::new();
    visit(
        trace,
        &trace.bound_symbols,
        executors,
        &lines,
        &mut path,
        &mut ops,
    )?;
    Ok(ClaimedTrace {
        trace: trace.clone(),
        ops,
        executor_names: executors.iter().map(|e| e.name()).collect(),
    })
}

fn visit(
    trace: &Trace,
    bsyms: &[BoundSymbol],
    executors: &[&dyn Executor],
    lines: &HashMap<Vec<usize>, usize>,
    path: &mut Vec<usize>,
    ops: &mut Vec<ClaimedOp>,
) -> Result<()> {
    for (i, b) in bsyms.iter().enumerate() {
        path.push(i);
        let line = lines.get(path.as_slice()).copied().unwrap_or(0);
        if let Some(e) = executors.iter().position(|e| e.claims(trace, b)) {
            let mut bsym = b.clone();
            bsym.subsymbols.clear();
            ops.push(ClaimedOp {
                bsym,
                executor: e,
                line,
            });
        } else if !b.subsymbols.is_empty() {
            visit(trace, &b.subsymbols, executors, lines, path, ops)?;
        } else {
            return Err(Error::Unclaimed {
                line,
                statement: statement(trace, b),
            });
        }
        path.pop();
    }
    Ok(())
}

impl ClaimedTrace {
    /// The claimed trace as Python: one statement per op, each annotated with its executor.
    pub fn to_python(&self) -> String {
        let mut flat = self.trace.clone();
        flat.bound_symbols = self.ops.iter().map(|o| o.bsym.clone()).collect();
        let (text, lines) = print_trace_with_lines(&flat);
        let by_line: HashMap<usize, usize> = lines.iter().map(|(p, l)| (*l, p[0])).collect();
        let mut out = String::with_capacity(text.len() + 16 * self.ops.len());
        for (n, line) in text.lines().enumerate() {
            out.push_str(line);
            if let Some(&i) = by_line.get(&(n + 1)) {
                out.push_str(" [");
                out.push_str(self.executor_names[self.ops[i].executor]);
                out.push(']');
            }
            out.push('\n');
        }
        out
    }
}
