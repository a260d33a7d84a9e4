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
    /// The fusion region it runs in (an index into [`ClaimedTrace::regions`]), if any.
    pub region: Option<usize>,
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
    /// The fusion regions (filled by [`crate::ExecutionPlan::compile`]; their op indices refer
    /// to [`ClaimedTrace::ops`]).
    pub regions: Vec<crate::fusion::Region>,
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
        regions: Vec::new(),
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
        match choose(trace, b, executors) {
            Choice::Whole(e) => {
                let mut bsym = b.clone();
                bsym.subsymbols.clear();
                ops.push(ClaimedOp {
                    bsym,
                    executor: e,
                    line,
                    region: None,
                });
            }
            Choice::Descend => visit(trace, &b.subsymbols, executors, lines, path, ops)?,
            Choice::None if !b.subsymbols.is_empty() => {
                visit(trace, &b.subsymbols, executors, lines, path, ops)?
            }
            Choice::None => {
                return Err(Error::Unclaimed {
                    line,
                    statement: statement(trace, b),
                })
            }
        }
        path.pop();
    }
    Ok(())
}

enum Choice {
    /// This executor runs it whole (for a fusion executor: inside a region).
    Whole(usize),
    /// A fusion executor fuses every prim of its decomposition: descend into it.
    Descend,
    /// No executor takes it.
    None,
}

/// The first executor, in priority order, that runs `b` whole, or fuses it (a prim) or all of its
/// decomposition (a torch-level op).
fn choose(trace: &Trace, b: &BoundSymbol, executors: &[&dyn Executor]) -> Choice {
    for (i, e) in executors.iter().enumerate() {
        if e.claims(trace, b) {
            return Choice::Whole(i);
        }
        if let Some(f) = e.fuser() {
            match b.op {
                thunder_ir::Op::Prim(_) if f.fusible(trace, b) => return Choice::Whole(i),
                thunder_ir::Op::Torch(_) if all_fusible(trace, b, f) => return Choice::Descend,
                _ => {}
            }
        }
    }
    Choice::None
}

fn all_fusible(trace: &Trace, b: &BoundSymbol, f: &dyn crate::executor::Fuser) -> bool {
    !b.subsymbols.is_empty()
        && b.subsymbols.iter().all(|s| match s.op {
            thunder_ir::Op::Prim(_) => f.fusible(trace, s),
            thunder_ir::Op::Torch(_) => all_fusible(trace, s, f),
            thunder_ir::Op::Dist(_) => false,
        })
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
                if let Some(r) = self.ops[i].region {
                    out.push_str(&format!(" fusion{r}"));
                    if self.regions.get(r).is_some_and(|g| g.dead.contains(&i)) {
                        out.push_str(" (not needed there)");
                    }
                }
                // Regions that recompute it rather than reading it (rematerialization).
                for (r, g) in self.regions.iter().enumerate() {
                    if g.recompute.contains(&i) {
                        out.push_str(&format!(", recomputed in fusion{r}"));
                    }
                }
                out.push(']');
            }
            out.push('\n');
        }
        out
    }
}
