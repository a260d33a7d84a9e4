//! Reads the Python text of [`crate::printer`] back into a [`Trace`].
//!
//! The accepted language is the printer's: a `def` whose body holds input annotations
//! (`# x: "cpu f32[2, 3]"`), statements `outs = prims.op(...)` / `outs = ltorch.op(...)` with an
//! optional trailing type annotation, decompositions as deeper-indented comment statements, and
//! one `return`. Anything else is a [`IrError::Parse`] naming the line and column.

use crate::builder::{arg_types, dist_types, prim_types, torch_output_types};
use crate::device::Device;
use crate::dtype::{DType, NumberType};
use crate::error::{IrError, Result};
use crate::ops::{AttrKind, Op, ParamKind};
use crate::shape::Shape;
use crate::trace::{Arg, Attr, BoundSymbol, Trace};
use crate::value::{check_name, TensorMeta, Value, ValueInfo, ValueType};
use std::collections::HashMap;

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
    Ok(ValueType::Tensor(TensorMeta {
        shape: Shape::new(sizes),
        dtype,
        device,
        requires_grad,
    }))
}

struct Parser {
    values: Vec<ValueInfo>,
    names: HashMap<String, Value>,
}

impl Parser {
    fn define(&mut self, name: &str, ty: ValueType, line: usize) -> Result<Value> {
        check_name(name).map_err(|m| perr(line, 1, &format!("invalid name {name:?}: {m}"), ""))?;
        if self.names.contains_key(name) {
            return Err(perr(line, 1, &format!("{name} is defined twice"), ""));
        }
        let v = Value(self.values.len() as u32);
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

    fn statement(
        &mut self,
        stmts: &[(usize, usize, String)],
        pos: &mut usize,
        depth: usize,
        line: usize,
        text: &str,
    ) -> Result<BoundSymbol> {
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
        let Expr::Call(fname, pos_args, kwargs) = call else {
            return Err(perr(
                line,
                eq + 4,
                "expected a call of prims.* or ltorch.*",
                text,
            ));
        };
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
        let types = arg_types(&self.values, &args)?;
        let has_children = stmts.get(*pos).is_some_and(|(d, _, _)| *d > depth);
        let outputs = match op {
            Op::Torch(_) if has_children => {
                let subsymbols = self.block(stmts, pos, depth + 1)?;
                let outputs: Vec<Value> = lhs
                    .iter()
                    .map(|n| self.lookup(n, line, text))
                    .collect::<Result<_>>()?;
                check_annotation(self, &outputs, annotation, line, text)?;
                return Ok(BoundSymbol {
                    op,
                    args,
                    attrs,
                    outputs,
                    subsymbols,
                });
            }
            Op::Torch(t) => torch_output_types(t, &types, &args, &attrs),
            Op::Prim(p) => {
                if has_children {
                    return Err(perr(line, 1, "prims have no decomposition", text));
                }
                prim_types(p, &types, &attrs)
            }
            Op::Dist(d) => {
                if has_children {
                    return Err(perr(line, 1, "collectives have no decomposition", text));
                }
                dist_types(d, &types, &attrs)
            }
        }
        .map_err(|e| perr(line, eq + 4, &e.to_string(), text))?;
        if outputs.len() != lhs.len() {
            return Err(perr(
                line,
                1,
                &format!(
                    "{qn} defines {} values but {} names are given",
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

/// The expressions trace text uses.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Name(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    Str(String),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Call(String, Vec<Expr>, Vec<(String, Expr)>),
}

struct Lexer<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, line: usize) -> Self {
        Lexer {
            s: text.as_bytes(),
            text,
            i: 0,
            line,
        }
    }
    fn err(&self, m: &str) -> IrError {
        perr(self.line, self.i + 1, m, self.text)
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
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }
    /// One expression spanning the whole input.
    fn expr_all(&mut self) -> Result<Expr> {
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
    fn seq(&mut self, close: u8) -> Result<Vec<Expr>> {
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
    fn expr(&mut self) -> Result<Expr> {
        match self.peek() {
            None => Err(self.err("expected an expression")),
            Some(b'[') => {
                self.i += 1;
                Ok(Expr::List(self.seq(b']')?))
            }
            Some(b'(') => {
                self.i += 1;
                let items = self.seq(b')')?;
                Ok(Expr::Tuple(items))
            }
            Some(b'"') | Some(b'\'') => Ok(Expr::Str(self.string()?)),
            Some(b'-') => {
                self.i += 1;
                match self.expr()? {
                    Expr::Int(i) => Ok(Expr::Int(-i)),
                    Expr::Float(f) => Ok(Expr::Float(-f)),
                    _ => Err(self.err("`-` applies only to numbers")),
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric()
                        || matches!(self.s[self.i], b'_' | b'.'))
                {
                    self.i += 1;
                }
                let name = self.text[start..self.i].to_string();
                match name.as_str() {
                    "None" => return Ok(Expr::None),
                    "True" => return Ok(Expr::Bool(true)),
                    "False" => return Ok(Expr::Bool(false)),
                    _ => {}
                }
                if self.peek() != Some(b'(') {
                    return Ok(Expr::Name(name));
                }
                self.i += 1;
                let mut args = Vec::new();
                let mut kwargs = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    // keyword?
                    let save = self.i;
                    self.ws();
                    let ks = self.i;
                    while self.i < self.s.len()
                        && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                    {
                        self.i += 1;
                    }
                    let key = self.text[ks..self.i].to_string();
                    self.ws();
                    if !key.is_empty()
                        && self.s.get(self.i) == Some(&b'=')
                        && self.s.get(self.i + 1) != Some(&b'=')
                    {
                        self.i += 1;
                        kwargs.push((key, self.expr()?));
                    } else {
                        self.i = save;
                        if !kwargs.is_empty() {
                            return Err(self.err("positional argument after keyword arguments"));
                        }
                        args.push(self.expr()?);
                    }
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                if name == "float" {
                    return match (args.as_slice(), kwargs.is_empty()) {
                        ([Expr::Str(s)], true) => match s.as_str() {
                            "inf" => Ok(Expr::Float(f64::INFINITY)),
                            "-inf" => Ok(Expr::Float(f64::NEG_INFINITY)),
                            "nan" => Ok(Expr::Float(f64::NAN)),
                            _ => Err(self.err("float() takes 'inf', '-inf' or 'nan' here")),
                        },
                        _ => Err(self.err("float() takes 'inf', '-inf' or 'nan' here")),
                    };
                }
                Ok(Expr::Call(name, args, kwargs))
            }
            Some(c) => Err(self.err(&format!("unexpected character `{}`", c as char))),
        }
    }
    fn number(&mut self) -> Result<Expr> {
        let start = self.i;
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
    fn string(&mut self) -> Result<String> {
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
