//! Prints a trace as Python source.
//!
//! The text is valid Python: torch-level calls are statements, and the decomposition of each is
//! printed under it as comments, indented one level deeper per nesting level. Each top-level
//! statement carries the type of what it defines (`# t0: "cuda:0 bf16[2, 4096]"`). The parser
//! ([`crate::parser`]) reads this text back into the same trace.

use crate::trace::{Arg, Attr, BoundSymbol, Trace};
use crate::value::Value;
use std::fmt::Write;

/// Indentation of the function body.
pub(crate) const INDENT: usize = 2;

/// The trace as Python source.
pub fn print_trace(t: &Trace) -> String {
    print_trace_with_lines(t).0
}

/// The trace as Python source, and the 1-based line of every bound symbol, keyed by its path:
/// `[i]` for the i-th top-level bound symbol, `[i, j]` for the j-th subsymbol of that one, and so
/// on. Executors use it to point error messages at the trace line.
pub fn print_trace_with_lines(t: &Trace) -> (String, Vec<(Vec<usize>, usize)>) {
    let mut s = String::new();
    s.push_str("# Printed by thunder-rs (thunder-ir ");
    s.push_str(env!("CARGO_PKG_VERSION"));
    s.push_str(")\n");
    s.push_str("import thunder.core.prims as prims\nimport thunder.torch as ltorch\nfrom thunder.core import dtypes\n");
    if t.bound_symbols
        .iter()
        .any(|b| matches!(b.op, crate::Op::Dist(_)))
    {
        s.push_str("import thunder.distributed.prims as dist\n");
    }
    s.push('\n');
    let params: Vec<&str> = t.inputs.iter().map(|&v| t.name_of(v)).collect();
    let _ = writeln!(s, "def {}({}):", t.name, params.join(", "));
    let pad = " ".repeat(INDENT);
    for &v in &t.inputs {
        let _ = writeln!(s, "{pad}# {}: \"{}\"", t.name_of(v), ty(t, v));
    }
    let mut lines = Vec::new();
    // Line numbers are counted as lines are written: recounting the text would be quadratic.
    let mut line = s.lines().count();
    for (i, b) in t.bound_symbols.iter().enumerate() {
        line += 1;
        lines.push((vec![i], line));
        let _ = write!(s, "{pad}{}", statement(t, b));
        let ann: Vec<String> = b
            .outputs
            .iter()
            .map(|&o| format!("{}: \"{}\"", t.name_of(o), ty(t, o)))
            .collect();
        let _ = writeln!(s, "  # {}", ann.join(", "));
        print_subsymbols(
            t,
            &b.subsymbols,
            1,
            &mut s,
            &mut vec![i],
            &mut (&mut line, &mut lines),
        );
    }
    let _ = writeln!(s, "{pad}return {}", outputs(t, &t.outputs));
    (s, lines)
}

/// The annotation of a value; `?` for a handle outside the table, so a damaged trace still prints.
fn ty(t: &Trace, v: Value) -> String {
    t.values
        .get(v.index())
        .map_or_else(|| "?".to_string(), |i| i.ty.to_string())
}

fn print_subsymbols(
    t: &Trace,
    subs: &[BoundSymbol],
    depth: usize,
    s: &mut String,
    path: &mut Vec<usize>,
    lines: &mut (&mut usize, &mut Vec<(Vec<usize>, usize)>),
) {
    for (j, b) in subs.iter().enumerate() {
        path.push(j);
        *lines.0 += 1;
        lines.1.push((path.clone(), *lines.0));
        let _ = writeln!(
            s,
            "{}# {}",
            " ".repeat(INDENT * (depth + 1)),
            statement(t, b)
        );
        print_subsymbols(t, &b.subsymbols, depth + 1, s, path, lines);
        path.pop();
    }
}

fn outputs(t: &Trace, vs: &[Value]) -> String {
    match vs {
        [v] => t.name_of(*v).to_string(),
        _ => format!(
            "({})",
            vs.iter()
                .map(|&v| t.name_of(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One bound symbol as `outputs = module.op(operands, attr=value, ...)`.
pub fn statement(t: &Trace, b: &BoundSymbol) -> String {
    let lhs: Vec<&str> = b.outputs.iter().map(|&v| t.name_of(v)).collect();
    let mut parts: Vec<String> = b.args.iter().map(|a| arg(t, a)).collect();
    let sig = b.op.signature();
    for ((name, _), a) in sig.attrs.iter().zip(&b.attrs) {
        parts.push(format!("{name}={}", attr(a)));
    }
    format!(
        "{} = {}({})",
        lhs.join(", "),
        b.op.qualified_name(),
        parts.join(", ")
    )
}

fn arg(t: &Trace, a: &Arg) -> String {
    match a {
        Arg::Value(v) => t.name_of(*v).to_string(),
        Arg::Int(i) => i.to_string(),
        Arg::Float(f) => float(*f),
        Arg::Bool(b) => py_bool(*b).to_string(),
        Arg::None => "None".to_string(),
        Arg::List(l) => format!(
            "[{}]",
            l.iter()
                .map(|&v| t.name_of(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An attribute as a Python literal.
pub fn attr(a: &Attr) -> String {
    match a {
        Attr::None => "None".into(),
        Attr::Int(i) => i.to_string(),
        Attr::Float(f) => float(*f),
        Attr::Bool(b) => py_bool(*b).into(),
        Attr::Str(s) => string(s),
        Attr::Ints(v) => int_list(v),
        Attr::IntLists(v) => format!(
            "[{}]",
            v.iter().map(|l| int_list(l)).collect::<Vec<_>>().join(", ")
        ),
        Attr::DType(d) => format!("dtypes.{}", d.torch_name()),
        Attr::Device(d) => format!("\"{d}\""),
    }
}

fn int_list(v: &[i64]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A float as a Python expression that evaluates to exactly the same double.
pub fn float(f: f64) -> String {
    if f.is_nan() {
        "float('nan')".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "float('inf')"
        } else {
            "-float('inf')"
        }
        .into()
    } else {
        // Rust's Debug form is the shortest string that reads back to the same double, and it is
        // valid Python (`0.5`, `1e-6`, `2.0`).
        format!("{f:?}")
    }
}

/// A Python string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
