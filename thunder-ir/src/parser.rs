//! Reads the Python text of [`crate::printer`] back into a [`Trace`].
//!
//! The accepted language is the printer's: a `def` whose body holds input annotations
//! (`# x: "cpu f32[2, 3]"`), statements `outs = prims.op(...)` / `outs = ltorch.op(...)` with an
//! optional trailing type annotation, decompositions as deeper-indented comment statements, and
//! one `return`. Anything else is a [`IrError::Parse`] naming the line and column.
//!
//! Limits, so that no text can crash the process:
//! - Expressions (lists, tuples, calls, unary minus) nest at most [`MAX_NESTING`] levels, and
//!   decompositions at most [`MAX_NESTING`] levels below their statement. Deeper text is an
//!   [`IrError::TooDeep`], never a stack overflow. Printed traces nest expressions 2 levels
//!   (`padding_config=[[0, 1, 0]]`) and decompositions a handful.
//! - Integers are `int64`; shapes in annotations must have element counts within `int64`
//!   ([`crate::Shape::checked_numel`]). Meta functions check their arithmetic on sizes, so a
//!   huge size in an attribute is an error, not a wrapped or panicking computation.

use crate::device::Device;
use crate::dtype::{DType, NumberType};
use crate::error::{IrError, Result};
use crate::infer::{arg_types, dist_types, prim_types, torch_output_types};
use crate::ops::{AttrKind, Op, ParamKind};
use crate::shape::Shape;
use crate::trace::{Arg, Attr, BoundSymbol, Trace};
use crate::value::{check_name, TensorMeta, Value, ValueInfo, ValueType};
use std::collections::HashMap;

pub use crate::trace::MAX_NESTING;

/// Parses trace text (as printed by [`Trace::to_python`]) and verifies the result.
pub fn parse_trace(text: &str) -> Result<Trace> {
    let mut p = Parser {
        values: Vec::new(),
        names: HashMap::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Header: comments, imports and blank lines up to the `def`.
    let (name, params) = loop {
        let Some(line) = lines.get(i) else {
            return Err(perr(lines.len().max(1), 1, "expected `def NAME(...):`", ""));
        };
        let t = line.trim();
        i += 1;
        if t.is_empty() || t.starts_with('#') || t.starts_with("import ") || t.starts_with("from ")
        {
            continue;
        }
        break parse_def(t, i, line)?;
    };
    let mut input_types: HashMap<String, ValueType> = HashMap::new();
    // Statements as (depth, line number, text); depth 0 are real statements.
    let mut stmts: Vec<(usize, usize, String)> = Vec::new();
    let mut body_indent: Option<usize> = None;
    let mut ret: Option<(usize, String)> = None;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if ret.is_some() {
            return Err(perr(
                i,
                indent + 1,
                "nothing may follow the return statement",
                line,
            ));
        }
        let base = *body_indent.get_or_insert(indent);
        if indent < base || indent == 0 {
            return Err(perr(
                i,
                indent + 1,
                "expected an indented statement of the function body",
                line,
            ));
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.trim_start();
            let depth = (indent - base) / crate::printer::INDENT;
            if depth == 0 {
                // An input annotation before the first statement; other comments are free text.
                if stmts.is_empty() {
                    if let Some((n, ty)) = parse_annotation(c) {
                        let ty = parse_type(&ty).map_err(|m| perr(i, indent + 1, &m, line))?;
                        input_types.insert(n, ty);
                    }
                }
                continue;
            }
            if (indent - base) % crate::printer::INDENT != 0 {
                return Err(perr(
                    i,
                    indent + 1,
                    "decomposition comments are indented in steps of 2",
                    line,
                ));
            }
            if depth > MAX_NESTING {
                // The statements are parsed recursively, one level per depth.
                return Err(too_deep(i, indent + 1, "decompositions", line));
            }
            let Some(&(last_depth, _, _)) = stmts.last() else {
                return Err(perr(
                    i,
                    indent + 1,
                    "a decomposition comment must follow a statement",
                    line,
                ));
            };
            if depth > last_depth + 1 {
                return Err(perr(
                    i,
                    indent + 1,
                    "decomposition nested more than one level below the previous statement",
                    line,
                ));
            }
            stmts.push((depth, i, c.to_string()));
            continue;
        }
        if indent != base {
            return Err(perr(
                i,
                indent + 1,
                "statements of the body share one indentation",
                line,
            ));
        }
        if let Some(r) = t.strip_prefix("return") {
            ret = Some((i, r.trim().to_string()));
            continue;
        }
        stmts.push((0, i, t.to_string()));
    }
    let mut inputs = Vec::with_capacity(params.len());
    for prm in &params {
        let ty = input_types.remove(prm).ok_or_else(|| {
            perr(
                1,
                1,
                &format!("parameter {prm} has no type annotation (`# {prm}: \"cpu f32[2, 3]\"`)"),
                "",
            )
        })?;
        inputs.push(p.define(prm, ty, 1)?);
    }
    let mut pos = 0;
    let bound_symbols = p.block(&stmts, &mut pos, 0)?;
    let (rline, rtext) =
        ret.ok_or_else(|| perr(lines.len(), 1, "the function has no return statement", ""))?;
    let rexpr = Lexer::new(&rtext, rline).expr_all()?;
    let outs = match rexpr {
        Expr::Name(n) => vec![n],
        Expr::List(items) | Expr::Tuple(items) => items
            .into_iter()
            .map(|e| match e {
                Expr::Name(n) => Ok(n),
                _ => Err(perr(rline, 1, "return values must be names", &rtext)),
            })
            .collect::<Result<_>>()?,
        _ => return Err(perr(rline, 1, "return a name or a tuple of names", &rtext)),
    };
    let outputs = outs
        .iter()
        .map(|n| p.lookup(n, rline, &rtext))
        .collect::<Result<_>>()?;
    let trace = Trace {
        name,
        values: p.values,
        inputs,
        bound_symbols,
        outputs,
    };
    crate::verify::verify(&trace)?;
    Ok(trace)
}

fn perr(line: usize, column: usize, message: &str, text: &str) -> IrError {
    IrError::Parse {
        line,
        column,
        message: message.to_string(),
        text: text.trim_end().to_string(),
    }
}

fn too_deep(line: usize, column: usize, what: &str, text: &str) -> IrError {
    // Hostile lines are long: keep the start of the line, enough to find it.
    const EXCERPT: usize = 120;
    let text = match text.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.trim_end().to_string(),
    };
    IrError::TooDeep {
        line,
        column,
        what: what.to_string(),
        limit: MAX_NESTING,
        text,
    }
}

fn parse_def(t: &str, line: usize, raw: &str) -> Result<(String, Vec<String>)> {
    let rest = t
        .strip_prefix("def ")
        .ok_or_else(|| perr(line, 1, "expected `def NAME(...):`", raw))?;
    let open = rest
        .find('(')
        .ok_or_else(|| perr(line, 5, "expected `(` after the function name", raw))?;
    let close = rest
        .rfind("):")
        .filter(|&c| c > open)
        .ok_or_else(|| perr(line, t.len(), "expected `):` at the end of the def", raw))?;
    let name = rest[..open].trim().to_string();
    check_name(&name).map_err(|m| perr(line, 5, &format!("function name: {m}"), raw))?;
    let params: Vec<String> = rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok((name, params))
}

/// `name: "annotation"` -> (name, annotation)
fn parse_annotation(c: &str) -> Option<(String, String)> {
    let (n, rest) = c.split_once(':')?;
    let n = n.trim();
    check_name(n).ok()?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    Some((n.to_string(), inner.to_string()))
}

/// Parses an annotation: `cuda:0 bf16[2, 4096]` (optionally ` requires_grad`) or a number type.
pub fn parse_type(s: &str) -> std::result::Result<ValueType, String> {
    let s = s.trim();
    if let Some(n) = NumberType::parse(s) {
        return Ok(ValueType::Number(n));
    }
    let mut words = s.split_whitespace();
    let dev = words.next().ok_or("empty type annotation")?;
    let device: Device = dev
        .parse()
        .map_err(|e: crate::device::ParseDeviceError| e.to_string())?;
    let rest: Vec<&str> = words.collect();
    let mut joined = rest.join(" ");
    let requires_grad = joined.ends_with(" requires_grad");
    if requires_grad {
        joined.truncate(joined.len() - " requires_grad".len());
    }
    let open = joined
        .find('[')
        .ok_or_else(|| format!("expected DTYPE[SIZES] in {s:?}"))?;
    let dtype = DType::parse(&joined[..open])
        .ok_or_else(|| format!("unknown dtype {:?}", &joined[..open]))?;
    let sizes = joined[open..]
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("expected [SIZES] in {s:?}"))?;
    let sizes: Vec<usize> = if sizes.trim().is_empty() {
        Vec::new()
    } else {
        sizes
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad size {x:?} in {s:?}"))
            })
            .collect::<std::result::Result<_, _>>()?
    };
    let shape = Shape::new(sizes);
    // Every other shape of a parsed trace comes out of a meta function, which checks the same.
    shape
        .check_numel("parser", "the annotation's shape")
        .map_err(|e| e.to_string())?;
    Ok(ValueType::Tensor(TensorMeta {
        shape,
        dtype,
        device,
        requires_grad,
    }))
}

struct Parser {
    values: Vec<ValueInfo>,
    names: HashMap<String, Value>,
}

/// A statement's call, read and checked against the op's signature, before its outputs are
/// defined.
struct Call<'t> {
    op: Op,
    args: Vec<Arg>,
    attrs: Vec<Attr>,
    /// The names the statement assigns.
    lhs: Vec<String>,
    /// The trailing `# name: "type"` comment.
    annotation: Option<&'t str>,
    /// Where the call starts, for errors.
    column: usize,
}

impl Parser {
    fn define(&mut self, name: &str, ty: ValueType, line: usize) -> Result<Value> {
        check_name(name).map_err(|m| perr(line, 1, &format!("invalid name {name:?}: {m}"), ""))?;
        if self.names.contains_key(name) {
            return Err(perr(line, 1, &format!("{name} is defined twice"), ""));
        }
        let v = crate::builder::value_handle(self.values.len())
            .map_err(|e| perr(line, 1, &e.to_string(), ""))?;
        self.values.push(ValueInfo {
            name: name.to_string(),
            ty,
        });
        self.names.insert(name.to_string(), v);
        Ok(v)
    }

    fn lookup(&self, name: &str, line: usize, text: &str) -> Result<Value> {
        self.names.get(name).copied().ok_or_else(|| {
            perr(
                line,
                1,
                &format!("{name} is used before it is defined"),
                text,
            )
        })
    }

    /// Parses the statements at `depth` starting at `pos`, with their nested decompositions.
    fn block(
        &mut self,
        stmts: &[(usize, usize, String)],
        pos: &mut usize,
        depth: usize,
    ) -> Result<Vec<BoundSymbol>> {
        let mut out = Vec::new();
        while let Some((d, line, text)) = stmts.get(*pos) {
            if *d < depth {
                break;
            }
            *pos += 1;
            out.push(self.statement(stmts, pos, depth, *line, text)?);
        }
        Ok(out)
    }

    /// One statement and its decomposition. The recursion (through [`Parser::block`]) keeps
    /// small frames: reading the call and defining its outputs happen in other functions.
    fn statement(
        &mut self,
        stmts: &[(usize, usize, String)],
        pos: &mut usize,
        depth: usize,
        line: usize,
        text: &str,
    ) -> Result<BoundSymbol> {
        let call = self.read_call(line, text)?;
        let has_children = stmts.get(*pos).is_some_and(|(d, _, _)| *d > depth);
        if !has_children {
            return self.finish_statement(call, line, text);
        }
        let Op::Torch(_) = call.op else {
            let what = match call.op {
                Op::Prim(_) => "prims have no decomposition",
                _ => "collectives have no decomposition",
            };
            return Err(perr(line, 1, what, text));
        };
        // Decompositions nest at most MAX_NESTING deep (checked as statements were collected).
        let subsymbols = self.block(stmts, pos, depth + 1)?;
        self.finish_decomposed(call, subsymbols, line, text)
    }

    /// `NAMES = module.op(operands, attr=...)  # annotation`, read and checked against the op's
    /// signature.
    #[inline(never)]
    fn read_call<'t>(&self, line: usize, text: &'t str) -> Result<Call<'t>> {
        // Split off a trailing annotation comment.
        let (code, annotation) = match find_comment(text) {
            Some(k) => (&text[..k], Some(text[k + 1..].trim())),
            None => (text, None),
        };
        let eq = code
            .find(" = ")
            .ok_or_else(|| perr(line, 1, "expected `NAMES = module.op(...)`", text))?;
        let lhs: Vec<String> = code[..eq]
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut lx = Lexer::new(&code[eq + 3..], line);
        let call = lx.expr_all()?;
        let Expr::Call(call) = call else {
            return Err(perr(
                line,
                eq + 4,
                "expected a call of prims.* or ltorch.*",
                text,
            ));
        };
        let (fname, pos_args, kwargs) = *call;
        let op = Op::from_qualified_name(&fname)
            .ok_or_else(|| perr(line, eq + 4, &format!("unknown op {fname}"), text))?;
        let sig = op.signature();
        let qn = op.qualified_name();
        if pos_args.len() != sig.operands.len() {
            return Err(perr(
                line,
                eq + 4,
                &format!(
                    "{qn} takes {} operands, got {}",
                    sig.operands.len(),
                    pos_args.len()
                ),
                text,
            ));
        }
        let mut args = Vec::with_capacity(pos_args.len());
        for ((pname, kind), e) in sig.operands.iter().zip(pos_args) {
            args.push(
                self.operand(*kind, e)
                    .map_err(|m| perr(line, eq + 4, &format!("{qn}: {pname}: {m}"), text))?,
            );
        }
        let mut kw: HashMap<String, Expr> = kwargs.into_iter().collect();
        let mut attrs = Vec::with_capacity(sig.attrs.len());
        for (aname, kind) in sig.attrs {
            let e = kw.remove(*aname).ok_or_else(|| {
                perr(
                    line,
                    eq + 4,
                    &format!("{qn}: missing attribute {aname}="),
                    text,
                )
            })?;
            attrs.push(
                attr(*kind, e)
                    .map_err(|m| perr(line, eq + 4, &format!("{qn}: {aname}: {m}"), text))?,
            );
        }
        if let Some(k) = kw.keys().next() {
            return Err(perr(
                line,
                eq + 4,
                &format!("{qn} has no attribute {k}"),
                text,
            ));
        }
        Ok(Call {
            op,
            args,
            attrs,
            lhs,
            annotation,
            column: eq + 4,
        })
    }

    /// A statement without a decomposition: its outputs' types come from the meta function
    /// (or the decomposition, run anew for a torch-level op).
    #[inline(never)]
    fn finish_statement(&mut self, call: Call<'_>, line: usize, text: &str) -> Result<BoundSymbol> {
        let Call {
            op,
            args,
            attrs,
            lhs,
            annotation,
            column,
        } = call;
        let types = arg_types(&self.values, &args)?;
        let outputs = match op {
            Op::Torch(t) => torch_output_types(t, &types, &args, &attrs),
            Op::Prim(p) => prim_types(p, &types, &attrs),
            Op::Dist(d) => dist_types(d, &types, &attrs),
        }
        .map_err(|e| perr(line, column, &e.to_string(), text))?;
        if outputs.len() != lhs.len() {
            return Err(perr(
                line,
                1,
                &format!(
                    "{} defines {} values but {} names are given",
                    op.qualified_name(),
                    outputs.len(),
                    lhs.len()
                ),
                text,
            ));
        }
        let outputs = lhs
            .iter()
            .zip(outputs)
            .map(|(n, ty)| self.define(n, ty, line))
            .collect::<Result<Vec<_>>>()?;
        check_annotation(self, &outputs, annotation, line, text)?;
        Ok(BoundSymbol {
            op,
            args,
            attrs,
            outputs,
            subsymbols: Vec::new(),
        })
    }

    /// A torch-level statement with its decomposition, which has defined its outputs.
    #[inline(never)]
    fn finish_decomposed(
        &mut self,
        call: Call<'_>,
        subsymbols: Vec<BoundSymbol>,
        line: usize,
        text: &str,
    ) -> Result<BoundSymbol> {
        let outputs: Vec<Value> = call
            .lhs
            .iter()
            .map(|n| self.lookup(n, line, text))
            .collect::<Result<_>>()?;
        check_annotation(self, &outputs, call.annotation, line, text)?;
        Ok(BoundSymbol {
            op: call.op,
            args: call.args,
            attrs: call.attrs,
            outputs,
            subsymbols,
        })
    }

    fn operand(&self, kind: ParamKind, e: Expr) -> std::result::Result<Arg, String> {
        let value = |n: &str| {
            self.names
                .get(n)
                .copied()
                .ok_or_else(|| format!("{n} is used before it is defined"))
        };
        match (kind, e) {
            (ParamKind::OptTensor, Expr::None) => Ok(Arg::None),
            (
                ParamKind::Tensor | ParamKind::OptTensor | ParamKind::TensorOrNumber,
                Expr::Name(n),
            ) => Ok(Arg::Value(value(&n)?)),
            (ParamKind::TensorOrNumber, Expr::Int(i)) => Ok(Arg::Int(i)),
            (ParamKind::TensorOrNumber, Expr::Float(f)) => Ok(Arg::Float(f)),
            (ParamKind::TensorOrNumber, Expr::Bool(b)) => Ok(Arg::Bool(b)),
            (ParamKind::TensorList, Expr::List(items) | Expr::Tuple(items)) => items
                .into_iter()
                .map(|x| match x {
                    Expr::Name(n) => value(&n),
                    other => Err(format!("expected a tensor name, got {other:?}")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Arg::List),
            (k, e) => Err(format!("expected {k:?}, got {e:?}")),
        }
    }
}

fn check_annotation(
    p: &Parser,
    outputs: &[Value],
    annotation: Option<&str>,
    line: usize,
    text: &str,
) -> Result<()> {
    let Some(ann) = annotation else { return Ok(()) };
    for part in split_annotations(ann) {
        let Some((n, ty)) = parse_annotation(&part) else {
            return Err(perr(
                line,
                1,
                &format!("cannot read the annotation {part:?}"),
                text,
            ));
        };
        let ty = parse_type(&ty).map_err(|m| perr(line, 1, &m, text))?;
        let Some(&v) = outputs.iter().find(|&&v| p.values[v.index()].name == n) else {
            return Err(perr(
                line,
                1,
                &format!("annotation names {n}, which this statement does not define"),
                text,
            ));
        };
        let actual = &p.values[v.index()].ty;
        if *actual != ty {
            return Err(perr(
                line,
                1,
                &format!("annotation says {n} is \"{ty}\" but the op makes \"{actual}\""),
                text,
            ));
        }
    }
    Ok(())
}

/// Splits `a: "x", b: "y"` at commas outside quotes.
fn split_annotations(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_str = !in_str;
                cur.push(c);
            }
            ',' if !in_str => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out.into_iter().map(|x| x.trim().to_string()).collect()
}

/// Byte index of a `#` outside string literals.
fn find_comment(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return Some(i),
            None => {}
        }
    }
    None
}

fn attr(kind: AttrKind, e: Expr) -> std::result::Result<Attr, String> {
    use AttrKind as K;
    let ints = |items: Vec<Expr>| -> std::result::Result<Vec<i64>, String> {
        items
            .into_iter()
            .map(|x| {
                if let Expr::Int(i) = x {
                    Ok(i)
                } else {
                    Err(format!("expected an int, got {x:?}"))
                }
            })
            .collect()
    };
    let a = match e {
        Expr::None => Attr::None,
        Expr::Int(i) => Attr::Int(i),
        Expr::Float(f) => Attr::Float(f),
        Expr::Bool(b) => Attr::Bool(b),
        Expr::Str(s) if matches!(kind, K::Device | K::OptDevice) => Attr::Device(
            s.parse()
                .map_err(|e: crate::device::ParseDeviceError| e.to_string())?,
        ),
        Expr::Str(s) => Attr::Str(s),
        Expr::Name(n) if matches!(kind, K::DType | K::OptDType) => {
            Attr::DType(DType::parse(&n).ok_or_else(|| format!("unknown dtype {n}"))?)
        }
        Expr::List(items) | Expr::Tuple(items) if kind == K::IntLists => Attr::IntLists(
            items
                .into_iter()
                .map(|x| match x {
                    Expr::List(l) | Expr::Tuple(l) => ints(l),
                    other => Err(format!("expected a list of ints, got {other:?}")),
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        Expr::List(items) | Expr::Tuple(items) => Attr::Ints(ints(items)?),
        other => return Err(format!("expected {}, got {other:?}", kind.describe())),
    };
    // An int literal where a float is expected widens, as in Python.
    let a = match (kind, a) {
        (K::Float | K::OptFloat, Attr::Int(i)) => Attr::Float(i as f64),
        (_, a) => a,
    };
    if kind.accepts(&a) {
        Ok(a)
    } else {
        Err(format!("expected {}, got {a:?}", kind.describe()))
    }
}

/// One Python expression of the kinds trace text uses (a whole input), for the other readers
/// of Python literals in thunder-ir (`ops::aten`'s `args` text).
pub(crate) fn parse_expr(text: &str) -> Result<Expr> {
    Lexer::new(text, 1).expr_all()
}

/// The expressions trace text uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Name(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    Str(String),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    /// Boxed: a small `Expr` keeps the lexer's recursive frames small.
    Call(Box<CallExpr>),
}

/// A call's name, positional arguments and keyword arguments.
pub(crate) type CallExpr = (String, Vec<Expr>, Vec<(String, Expr)>);

/// The lexer's errors, boxed for the same reason.
type LexResult<T> = std::result::Result<T, Box<IrError>>;

struct Lexer<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    line: usize,
    /// How many expressions enclose the one being read; at most [`MAX_NESTING`].
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, line: usize) -> Self {
        Lexer {
            s: text.as_bytes(),
            text,
            i: 0,
            line,
            depth: 0,
        }
    }
    fn err(&self, m: &str) -> Box<IrError> {
        Box::new(perr(self.line, self.i + 1, m, self.text))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> LexResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }
    /// One expression spanning the whole input.
    fn expr_all(&mut self) -> Result<Expr> {
        self.expr_all_boxed().map_err(|e| *e)
    }
    fn expr_all_boxed(&mut self) -> LexResult<Expr> {
        let e = self.expr()?;
        // A bare tuple `a, b` (return statements).
        let e = if self.peek() == Some(b',') {
            let mut items = vec![e];
            while self.eat(b',') {
                if self.peek().is_none() {
                    break;
                }
                items.push(self.expr()?);
            }
            Expr::Tuple(items)
        } else {
            e
        };
        if self.peek().is_some() {
            return Err(self.err("unexpected text after the expression"));
        }
        Ok(e)
    }
    fn seq(&mut self, close: u8) -> LexResult<Vec<Expr>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.expr()?);
            if !self.eat(b',') {
                self.expect(close)?;
                return Ok(items);
            }
        }
    }
    /// Every recursion of the lexer (list and tuple items, call arguments, the operand of a
    /// unary minus) comes through here, so this one counter bounds the stack it uses.
    ///
    /// The functions of the recursion (`expr`, `expr_inner`, `seq`, `negation`, `call`) keep
    /// their frames small, leaving error messages and leaf tokens to other functions, so that
    /// [`MAX_NESTING`] levels fit a small stack in debug builds too.
    fn expr(&mut self) -> LexResult<Expr> {
        if self.depth >= MAX_NESTING {
            return Err(self.too_deep());
        }
        self.depth += 1;
        let e = match self.peek() {
            Some(b'[') => {
                self.i += 1;
                self.seq(b']').map(Expr::List)
            }
            Some(b'(') => {
                self.i += 1;
                self.seq(b')').map(Expr::Tuple)
            }
            Some(b'-') => self.negation(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => match self.name() {
                Expr::Name(name) if self.peek() == Some(b'(') => {
                    self.i += 1;
                    self.call(name)
                }
                other => Ok(other),
            },
            _ => self.leaf(),
        };
        self.depth -= 1;
        e
    }
    #[inline(never)]
    fn too_deep(&self) -> Box<IrError> {
        Box::new(too_deep(
            self.line,
            self.i + 1,
            "expressions ([...], (...), calls, unary minus)",
            self.text,
        ))
    }
    /// `-x`, at a `-`.
    fn negation(&mut self) -> LexResult<Expr> {
        let sign = self.i;
        self.i += 1;
        if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            // Read with its sign, a literal can be i64::MIN, whose magnitude is no i64.
            return self.number(sign);
        }
        let e = self.expr()?;
        self.negate(e)
    }
    #[inline(never)]
    fn negate(&self, e: Expr) -> LexResult<Expr> {
        match e {
            Expr::Int(i) => i
                .checked_neg()
                .map(Expr::Int)
                .ok_or_else(|| self.err(&format!("-({i}) does not fit in int64"))),
            Expr::Float(f) => Ok(Expr::Float(-f)),
            _ => Err(self.err("`-` applies only to numbers")),
        }
    }
    /// A name, or `None`, `True`, `False`.
    #[inline(never)]
    fn name(&mut self) -> Expr {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.'))
        {
            self.i += 1;
        }
        match &self.text[start..self.i] {
            "None" => Expr::None,
            "True" => Expr::Bool(true),
            "False" => Expr::Bool(false),
            name => Expr::Name(name.to_string()),
        }
    }
    /// A number or a string, which nest nothing.
    #[inline(never)]
    fn leaf(&mut self) -> LexResult<Expr> {
        match self.peek() {
            None => Err(self.err("expected an expression")),
            Some(b'"') | Some(b'\'') => Ok(Expr::Str(self.string()?)),
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(self.i),
            Some(c) => Err(self.err(&format!("unexpected character `{}`", c as char))),
        }
    }
    /// The arguments of a call of `name`, after its `(`.
    fn call(&mut self, name: String) -> LexResult<Expr> {
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        loop {
            if self.eat(b')') {
                break;
            }
            match self.keyword() {
                Some(key) => kwargs.push((key, self.expr()?)),
                None if kwargs.is_empty() => args.push(self.expr()?),
                None => return Err(self.err("positional argument after keyword arguments")),
            }
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        self.finish_call(name, args, kwargs)
    }
    /// `KEY=` (not `==`) and the key, or nothing read.
    #[inline(never)]
    fn keyword(&mut self) -> Option<String> {
        let save = self.i;
        self.ws();
        let ks = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        let key = &self.text[ks..self.i];
        self.ws();
        if !key.is_empty()
            && self.s.get(self.i) == Some(&b'=')
            && self.s.get(self.i + 1) != Some(&b'=')
        {
            self.i += 1;
            Some(key.to_string())
        } else {
            self.i = save;
            None
        }
    }
    #[inline(never)]
    fn finish_call(
        &self,
        name: String,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    ) -> LexResult<Expr> {
        if name != "float" {
            return Ok(Expr::Call(Box::new((name, args, kwargs))));
        }
        match (args.as_slice(), kwargs.is_empty()) {
            ([Expr::Str(s)], true) => match s.as_str() {
                "inf" => Ok(Expr::Float(f64::INFINITY)),
                "-inf" => Ok(Expr::Float(f64::NEG_INFINITY)),
                "nan" => Ok(Expr::Float(f64::NAN)),
                _ => Err(self.err("float() takes 'inf', '-inf' or 'nan' here")),
            },
            _ => Err(self.err("float() takes 'inf', '-inf' or 'nan' here")),
        }
    }
    /// A number literal from `start` (its sign, if any) on; digits start at `self.i`.
    fn number(&mut self, start: usize) -> LexResult<Expr> {
        let mut is_float = false;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c.is_ascii_digit() || c == b'_' {
                self.i += 1;
            } else if c == b'.' || c == b'e' || c == b'E' {
                is_float = true;
                self.i += 1;
                if (c == b'e' || c == b'E') && matches!(self.s.get(self.i), Some(b'+') | Some(b'-'))
                {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
        let t = self.text[start..self.i].replace('_', "");
        if is_float {
            t.parse::<f64>()
                .map(Expr::Float)
                .map_err(|_| self.err(&format!("bad float {t:?}")))
        } else {
            t.parse::<i64>()
                .map(Expr::Int)
                .map_err(|_| self.err(&format!("bad int {t:?}")))
        }
    }
    fn string(&mut self) -> LexResult<String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = String::new();
        let mut chars = self.text[self.i..].char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                c if c as u32 == q as u32 => {
                    self.i += k + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 'x')) => {
                        let h: String = (0..2)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        let v =
                            u32::from_str_radix(&h, 16).map_err(|_| self.err("bad \\x escape"))?;
                        out.push(char::from_u32(v).ok_or_else(|| self.err("bad \\x escape"))?);
                    }
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.err("unterminated string"))
    }
}
