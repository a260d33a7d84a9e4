//! Opaque ATen operators: `prims.aten` calls any functional ATen operator by name, and
//! `prims.aten_vjp` is its reverse-mode derivative by ATen's own autograd formula.
//!
//! A program from PyTorch may call an operator thunder has no translation for (`torch.cummax`,
//! `torch.logcumsumexp`, ...). Rather than splitting the program there, the front end records the
//! ATen operator the call reaches, its non-tensor arguments and its outputs' metadata (which
//! PyTorch computed on fake tensors), and the trace calls it as one opaque op:
//!
//! ```text
//! (t1, t2) = prims.aten([t0], op="cummax.default", args="(T0, 1)", out="float32[4, 5], int64[4, 5]")
//! ```
//!
//! - `op` is the operator and its overload (`cummax.default`, `sort.stable`), as
//!   `torch.ops.aten.<op>` names it;
//! - `args` are the operator's arguments in schema order, every one of them (defaults filled in):
//!   `T<i>` is the i-th tensor operand, lists of them are `Tensor[]` (`None` inside for
//!   `Tensor?[]`), then `None`, `True`/`False`, ints, floats (`float('inf')` as traces print
//!   them), strings,
//!   lists of ints, `torch.<dtype>`, `torch.<memory format>` and `wrap(<number>)` (a number
//!   where the schema takes a tensor) ([`AtenArg`]);
//! - `out` is one entry per output: `dtype[sizes]` on the first operand's device, or `T<i>` for
//!   "like operand i" ([`AtenOut`]).
//!
//! Such an op is a fusion barrier, is never recomputed, has no JVP or batching rule (a typed
//! error), and its VJP is `prims.aten_vjp`: the executor runs the operator again with autograd on
//! and asks ATen for the gradients (`torch.autograd.grad`), so the derivative is PyTorch's own.
//! Its operands are the forward's tensor operands followed by the cotangents of the outputs listed
//! in `cts`; it returns the gradients of the operands listed in `wrt`.

use super::prims::ArgMeta;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::parser::Expr;
use crate::shape::Shape;
use crate::trace::Attr;
use crate::value::{TensorMeta, ValueType};
use std::fmt::Write as _;

/// One argument of an ATen call, in the operator's schema order.
#[derive(Debug, Clone, PartialEq)]
pub enum AtenArg {
    /// The tensor operand with this index.
    Tensor(usize),
    /// A list of tensor operands (`Tensor[]`); `None` entries for `Tensor?[]`.
    Tensors(Vec<Option<usize>>),
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (`rounding_mode='floor'`).
    Str(String),
    /// A list of ints.
    Ints(Vec<i64>),
    /// A dtype (`ScalarType`).
    DType(DType),
    /// A memory format, by its index in [`MEMORY_FORMATS`] (libtorch's `c10::MemoryFormat`).
    MemoryFormat(usize),
    /// A Python number where the schema takes a tensor (`mul.Tensor(x, 2.0)`): a 0-dim CPU
    /// tensor marked as a wrapped number, as PyTorch's argument parser makes it (it promotes as
    /// a number). Holds [`AtenArg::Int`], [`AtenArg::Float`] or [`AtenArg::Bool`].
    Wrapped(Box<AtenArg>),
}

/// The memory formats, in the order of libtorch's `c10::MemoryFormat`, as `torch` names them.
pub const MEMORY_FORMATS: [&str; 4] = [
    "contiguous_format",
    "preserve_format",
    "channels_last",
    "channels_last_3d",
];

/// One output of an ATen call.
#[derive(Debug, Clone, PartialEq)]
pub enum AtenOut {
    /// The same shape and dtype as the tensor operand with this index.
    Like(usize),
    /// This dtype and shape, on the first operand's device.
    Tensor(DType, Vec<usize>),
}

/// A parsed `prims.aten` call: the attributes `op`, `args` and `out`.
#[derive(Debug, Clone, PartialEq)]
pub struct AtenCall {
    /// The operator and overload (`cummax.default`).
    pub op: String,
    /// Its arguments.
    pub args: Vec<AtenArg>,
    /// Its outputs.
    pub outs: Vec<AtenOut>,
}

impl AtenCall {
    /// Reads the first three attributes of a `prims.aten` or `prims.aten_vjp` call.
    pub fn from_attrs(attrs: &[Attr]) -> Result<AtenCall> {
        let get = |i: usize, name: &str| match attrs.get(i) {
            Some(Attr::Str(s)) => Ok(s.as_str()),
            _ => Err(IrError::invalid(
                "prims.aten",
                format!("{name} must be a string"),
            )),
        };
        let op = get(0, "op")?;
        let ok_name = !op.is_empty()
            && op
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !ok_name || op.starts_with('.') || op.matches('.').count() > 1 {
            return Err(IrError::invalid(
                "prims.aten",
                format!(
                    "op={op:?} is not an ATen operator name (`name.overload`, as `cummax.default`)"
                ),
            ));
        }
        Ok(AtenCall {
            op: op.to_string(),
            args: parse_args(get(1, "args")?)?,
            outs: parse_outs(get(2, "out")?)?,
        })
    }

    /// The attributes `op`, `args` and `out` of this call.
    pub fn attrs(&self) -> Vec<Attr> {
        vec![
            Attr::Str(self.op.clone()),
            Attr::Str(print_args(&self.args)),
            Attr::Str(print_outs(&self.outs)),
        ]
    }

    /// The operator's name and overload: `("cummax", "default")`; an overload of `default` is
    /// the empty one, as the dispatcher names it.
    pub fn name_and_overload(&self) -> (&str, &str) {
        match self.op.split_once('.') {
            Some((n, "default")) => (n, ""),
            Some((n, o)) => (n, o),
            None => (self.op.as_str(), ""),
        }
    }

    /// The tensor operands the arguments refer to, each checked against `n` operands; every
    /// operand must be referred to.
    fn check_refs(&self, n: usize) -> Result<()> {
        let mut seen = vec![false; n];
        let mut mark = |i: usize| -> Result<()> {
            match seen.get_mut(i) {
                Some(s) => {
                    *s = true;
                    Ok(())
                }
                None => Err(IrError::invalid(
                    "prims.aten",
                    format!("args refer to T{i} but the call has {n} tensor operands"),
                )),
            }
        };
        for a in &self.args {
            match a {
                AtenArg::Tensor(i) => mark(*i)?,
                AtenArg::Tensors(l) => {
                    for i in l.iter().flatten() {
                        mark(*i)?;
                    }
                }
                _ => {}
            }
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(IrError::invalid(
                "prims.aten",
                format!("tensor operand {i} is not an argument (no T{i} in args)"),
            ));
        }
        Ok(())
    }

    /// The outputs' metadata, given the tensor operands.
    pub fn out_metas(&self, tensors: &[&TensorMeta]) -> Result<Vec<TensorMeta>> {
        let first = tensors.first().ok_or_else(|| {
            IrError::invalid(
                "prims.aten",
                "an ATen call needs at least one tensor operand",
            )
        })?;
        if self.outs.is_empty() {
            return Err(IrError::invalid(
                "prims.aten",
                "out must name at least one output",
            ));
        }
        self.outs
            .iter()
            .map(|o| {
                let m = match o {
                    AtenOut::Like(i) => {
                        let t = tensors.get(*i).ok_or_else(|| {
                            IrError::invalid(
                                "prims.aten",
                                format!(
                                    "out refers to T{i} but the call has {} tensor operands",
                                    tensors.len()
                                ),
                            )
                        })?;
                        TensorMeta::new(t.dtype, t.shape.clone()).on(t.device)
                    }
                    AtenOut::Tensor(d, s) => {
                        TensorMeta::new(*d, Shape::new(s.iter().copied())).on(first.device)
                    }
                };
                m.shape.check_numel("prims.aten", "an output shape")?;
                Ok(m)
            })
            .collect()
    }
}

/// The tensor operands of a call as metas (a `TensorList` arrives as consecutive entries).
fn tensors<'a>(n: &str, args: &[ArgMeta<'a>]) -> Result<Vec<&'a TensorMeta>> {
    args.iter()
        .map(|a| match a {
            ArgMeta::Tensor(t) => Ok(*t),
            _ => Err(IrError::invalid(n, "tensors must all be tensors")),
        })
        .collect()
}

fn one_device(n: &str, ts: &[&TensorMeta]) -> Result<Device> {
    let d = ts.first().map_or(Device::Cpu, |t| t.device);
    if let Some(t) = ts.iter().find(|t| t.device != d) {
        return Err(IrError::invalid(
            n,
            format!(
                "operands on {d} and {}: an ATen call here runs on one device",
                t.device
            ),
        ));
    }
    Ok(d)
}

/// The meta function of `prims.aten`: its outputs as `out` says.
pub(crate) fn aten_meta(n: &str, args: &[ArgMeta<'_>], attrs: &[Attr]) -> Result<Vec<ValueType>> {
    let ts = tensors(n, args)?;
    one_device(n, &ts)?;
    let call = AtenCall::from_attrs(attrs)?;
    call.check_refs(ts.len())?;
    Ok(call
        .out_metas(&ts)?
        .into_iter()
        .map(ValueType::Tensor)
        .collect())
}

/// The attributes `cts` and `wrt` of a `prims.aten_vjp` call.
pub fn vjp_indices(attrs: &[Attr]) -> Result<(Vec<usize>, Vec<usize>)> {
    let get = |i: usize, name: &str| -> Result<Vec<usize>> {
        let v = match attrs.get(i) {
            Some(Attr::Ints(v)) => v,
            _ => {
                return Err(IrError::invalid(
                    "prims.aten_vjp",
                    format!("{name} must be a list of ints"),
                ))
            }
        };
        let out: Vec<usize> = v
            .iter()
            .map(|&x| usize::try_from(x))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                IrError::invalid(
                    "prims.aten_vjp",
                    format!("{name}={v:?} has a negative index"),
                )
            })?;
        if out.is_empty() || out.windows(2).any(|w| w[0] >= w[1]) {
            return Err(IrError::invalid(
                "prims.aten_vjp",
                format!("{name}={v:?} must be a non-empty increasing list"),
            ));
        }
        Ok(out)
    };
    Ok((get(3, "cts")?, get(4, "wrt")?))
}

/// The meta function of `prims.aten_vjp`: one gradient per operand listed in `wrt`, like it.
pub(crate) fn aten_vjp_meta(
    n: &str,
    args: &[ArgMeta<'_>],
    attrs: &[Attr],
) -> Result<Vec<ValueType>> {
    let ts = tensors(n, args)?;
    one_device(n, &ts)?;
    let call = AtenCall::from_attrs(attrs)?;
    let (cts, wrt) = vjp_indices(attrs)?;
    let n_primals = ts
        .len()
        .checked_sub(cts.len())
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            IrError::invalid(
                n,
                format!(
                "{} tensors for {} cotangents: the operands are the primals, then the cotangents",
                ts.len(),
                cts.len()
            ),
            )
        })?;
    let (primals, cotangents) = ts.split_at(n_primals);
    call.check_refs(n_primals)?;
    let outs = call.out_metas(primals)?;
    for (&c, g) in cts.iter().zip(cotangents) {
        let o = outs.get(c).ok_or_else(|| {
            IrError::invalid(n, format!("cts names output {c} of {}", outs.len()))
        })?;
        if !o.dtype.is_float() || o.dtype != g.dtype || o.shape != g.shape {
            return Err(IrError::invalid(
                n,
                format!(
                    "the cotangent of output {c} is {} {}, the output {} {} (a floating output's cotangent is like it)",
                    g.dtype, g.shape, o.dtype, o.shape
                ),
            ));
        }
    }
    wrt.iter()
        .map(|&w| {
            let p = primals.get(w).ok_or_else(|| {
                IrError::invalid(n, format!("wrt names operand {w} of {n_primals}"))
            })?;
            if !p.dtype.is_float() {
                return Err(IrError::invalid(
                    n,
                    format!(
                        "wrt names operand {w} of dtype {}, which has no gradient",
                        p.dtype
                    ),
                ));
            }
            Ok(ValueType::Tensor(
                TensorMeta::new(p.dtype, p.shape.clone()).on(p.device),
            ))
        })
        .collect()
}

// ---- the `args` and `out` strings ----

/// Prints arguments as `args` reads them: `(T0, 1, None, [2, 3], 'floor', torch.float32)`.
pub fn print_args(args: &[AtenArg]) -> String {
    let mut s = String::from("(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        match a {
            AtenArg::Tensor(i) => {
                let _ = write!(s, "T{i}");
            }
            AtenArg::Tensors(l) => {
                s.push('[');
                for (k, t) in l.iter().enumerate() {
                    if k > 0 {
                        s.push_str(", ");
                    }
                    match t {
                        Some(i) => {
                            let _ = write!(s, "T{i}");
                        }
                        None => s.push_str("None"),
                    }
                }
                s.push(']');
            }
            AtenArg::None => s.push_str("None"),
            AtenArg::Bool(b) => s.push_str(if *b { "True" } else { "False" }),
            AtenArg::Int(v) => {
                let _ = write!(s, "{v}");
            }
            AtenArg::Float(f) => s.push_str(&crate::printer::float(*f)),
            AtenArg::Str(t) => s.push_str(&crate::printer::string(t)),
            AtenArg::Ints(v) => {
                let _ = write!(
                    s,
                    "[{}]",
                    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            AtenArg::DType(d) => {
                let _ = write!(s, "torch.{}", d.torch_name());
            }
            AtenArg::MemoryFormat(m) => {
                let _ = write!(s, "torch.{}", MEMORY_FORMATS.get(*m).unwrap_or(&"?"));
            }
            AtenArg::Wrapped(n) => {
                let inner = print_args(std::slice::from_ref(n));
                let _ = write!(s, "wrap({})", &inner[1..inner.len() - 2]);
            }
        }
    }
    if args.len() == 1 {
        s.push(',');
    }
    s.push(')');
    s
}

/// Prints outputs as `out` reads them: `float32[4, 5], T0`.
pub fn print_outs(outs: &[AtenOut]) -> String {
    outs.iter()
        .map(|o| match o {
            AtenOut::Like(i) => format!("T{i}"),
            AtenOut::Tensor(d, s) => format!(
                "{}[{}]",
                d.torch_name(),
                s.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad(what: &str, text: &str, why: impl std::fmt::Display) -> IrError {
    IrError::invalid("prims.aten", format!("{what}={text:?}: {why}"))
}

/// Parses `args` (see [`print_args`]): a Python tuple, read by the trace parser's expression
/// reader.
pub fn parse_args(text: &str) -> Result<Vec<AtenArg>> {
    let items = match crate::parser::parse_expr(text) {
        Ok(Expr::Tuple(items)) => items,
        Ok(other) => return Err(bad("args", text, format!("not a tuple: {other:?}"))),
        Err(e) => return Err(bad("args", text, e)),
    };
    items
        .into_iter()
        .map(|e| arg(e).map_err(|why| bad("args", text, why)))
        .collect()
}

/// One argument of the `args` tuple.
fn arg(e: Expr) -> std::result::Result<AtenArg, String> {
    Ok(match e {
        Expr::List(items) if items.iter().any(|x| tensor_ref(x).is_some()) => AtenArg::Tensors(
            items
                .into_iter()
                .map(|x| match (tensor_ref(&x), x) {
                    (Some(i), _) => Ok(Some(i)),
                    (None, Expr::None) => Ok(None),
                    (None, other) => Err(format!("{other:?} in a list of tensors")),
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        Expr::List(items) => AtenArg::Ints(
            items
                .into_iter()
                .map(|x| match x {
                    Expr::Int(i) => Ok(i),
                    other => Err(format!(
                        "{other:?} in a list (lists are of ints or of tensors)"
                    )),
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        Expr::Call(c) if c.0 == "wrap" && c.2.is_empty() && c.1.len() == 1 => {
            match arg(c.1.into_iter().next().unwrap_or(Expr::None))? {
                n @ (AtenArg::Int(_) | AtenArg::Float(_) | AtenArg::Bool(_)) => {
                    AtenArg::Wrapped(Box::new(n))
                }
                other => return Err(format!("wrap({other:?}) must wrap a number")),
            }
        }
        Expr::None => AtenArg::None,
        Expr::Bool(b) => AtenArg::Bool(b),
        Expr::Int(i) => AtenArg::Int(i),
        Expr::Float(f) => AtenArg::Float(f),
        Expr::Str(s) => AtenArg::Str(s),
        ref x if tensor_ref(x).is_some() => AtenArg::Tensor(tensor_ref(x).unwrap_or_default()),
        Expr::Name(n) if n.starts_with("torch.") => {
            match MEMORY_FORMATS.iter().position(|m| n[6..] == **m) {
                Some(m) => AtenArg::MemoryFormat(m),
                None => AtenArg::DType(DType::parse(&n).ok_or(format!("cannot read {n:?}"))?),
            }
        }
        other => return Err(format!("cannot read {other:?}")),
    })
}

/// The operand index of `T<i>`.
fn tensor_ref(e: &Expr) -> Option<usize> {
    match e {
        Expr::Name(n) => n.strip_prefix('T').and_then(|i| i.parse().ok()),
        _ => None,
    }
}

/// Parses `out` (see [`print_outs`]).
pub fn parse_outs(text: &str) -> Result<Vec<AtenOut>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            let i = r[..end]
                .parse()
                .map_err(|_| bad("out", text, "T must be followed by an operand index"))?;
            out.push(AtenOut::Like(i));
            rest = r[end..].trim_start();
        } else {
            let open = rest
                .find('[')
                .ok_or_else(|| bad("out", text, "expected dtype[sizes] or T<i>"))?;
            let close = rest[open..]
                .find(']')
                .map(|c| open + c)
                .ok_or_else(|| bad("out", text, "an unclosed ["))?;
            let dtype = DType::parse(rest[..open].trim())
                .ok_or_else(|| bad("out", text, format!("unknown dtype {:?}", &rest[..open])))?;
            let inner = rest[open + 1..close].trim();
            let sizes = if inner.is_empty() {
                Vec::new()
            } else {
                inner
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad("out", text, "sizes must be non-negative ints"))?
            };
            out.push(AtenOut::Tensor(dtype, sizes));
            rest = rest[close + 1..].trim_start();
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(bad("out", text, "outputs are separated by commas")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_print_and_parse_back() {
        let args = vec![
            AtenArg::Tensor(0),
            AtenArg::Int(-3),
            AtenArg::Float(1e-5),
            AtenArg::Float(f64::NEG_INFINITY),
            AtenArg::None,
            AtenArg::Bool(true),
            AtenArg::Str("it's".into()),
            AtenArg::Ints(vec![2, -1]),
            AtenArg::Ints(vec![]),
            AtenArg::Tensors(vec![Some(1), None]),
            AtenArg::DType(DType::BF16),
            AtenArg::MemoryFormat(2),
            AtenArg::Wrapped(Box::new(AtenArg::Float(0.5))),
            AtenArg::Wrapped(Box::new(AtenArg::Int(-2))),
        ];
        let text = print_args(&args);
        assert_eq!(
            text,
            r#"(T0, -3, 1e-5, -float('inf'), None, True, "it's", [2, -1], [], [T1, None], torch.bfloat16, torch.channels_last, wrap(0.5), wrap(-2))"#
        );
        assert_eq!(parse_args(&text).unwrap(), args);
        assert_eq!(parse_args("(T0,)").unwrap(), vec![AtenArg::Tensor(0)]);
        assert_eq!(print_args(&[AtenArg::Float(2.0)]), "(2.0,)");
        // What Python's side writes too: single quotes, and infinities as the printer does.
        assert_eq!(
            parse_args("(T0, 'it\\'s', float('inf'))").unwrap(),
            vec![
                AtenArg::Tensor(0),
                AtenArg::Str("it's".into()),
                AtenArg::Float(f64::INFINITY)
            ]
        );
        let nan = parse_args("(float('nan'),)").unwrap();
        assert!(matches!(nan[0], AtenArg::Float(f) if f.is_nan()));
    }

    #[test]
    fn bad_args_and_outs_are_errors_that_quote_the_text() {
        for bad in [
            "T0",
            "(T0",
            "(Tx)",
            "([1, 'a'])",
            "(T0) x",
            "('open)",
            "(1,,)",
            "(torch.nope)",
        ] {
            let e = parse_args(bad).unwrap_err().to_string();
            assert!(e.contains("args="), "{bad}: {e}");
        }
        for bad in [
            "float32[2",
            "floaty[2]",
            "float32[-1]",
            "Tx",
            "float32[2] T0",
        ] {
            let e = parse_outs(bad).unwrap_err().to_string();
            assert!(e.contains("out="), "{bad}: {e}");
        }
        assert_eq!(
            parse_outs("float32[4, 5], int64[], T1").unwrap(),
            vec![
                AtenOut::Tensor(DType::F32, vec![4, 5]),
                AtenOut::Tensor(DType::I64, vec![]),
                AtenOut::Like(1)
            ]
        );
    }

    #[test]
    fn a_trace_with_aten_calls_prints_parses_back_and_checks_its_operands() {
        use crate::{Arg, Op, PrimOp, TraceBuilder};
        let mut b = TraceBuilder::new("f");
        let x = b
            .input("x", TensorMeta::new(DType::F32, [4usize, 5]))
            .unwrap();
        let call = AtenCall {
            op: "cummax.default".into(),
            args: vec![AtenArg::Tensor(0), AtenArg::Int(1)],
            outs: vec![AtenOut::Like(0), AtenOut::Tensor(DType::I64, vec![4, 5])],
        };
        let outs = b
            .call(
                Op::Prim(PrimOp::Aten),
                vec![Arg::List(vec![x])],
                call.attrs(),
            )
            .unwrap();
        assert_eq!(outs.len(), 2);
        assert_eq!(b.tensor(outs[1]).unwrap().dtype, DType::I64);
        let mut attrs = call.attrs();
        attrs.push(Attr::Ints(vec![0]));
        attrs.push(Attr::Ints(vec![0]));
        let g = b
            .call(
                Op::Prim(PrimOp::AtenVjp),
                vec![Arg::List(vec![x, outs[0]])],
                attrs.clone(),
            )
            .unwrap();
        let t = b.build(&[outs[0], outs[1], g[0]]).unwrap();
        let text = t.to_python();
        assert!(
            text.contains(
                r#"prims.aten([x], op="cummax.default", args="(T0, 1)", out="T0, int64[4, 5]")"#
            ),
            "{text}"
        );
        assert_eq!(crate::parse_trace(&text).unwrap(), t);
        // A cotangent unlike its output, an integer output's cotangent, a reference to no operand.
        let mut b2 = TraceBuilder::new("g");
        let x = b2
            .input("x", TensorMeta::new(DType::F32, [4usize, 5]))
            .unwrap();
        let y = b2
            .input("y", TensorMeta::new(DType::F32, [5usize]))
            .unwrap();
        let e = b2
            .call(
                Op::Prim(PrimOp::AtenVjp),
                vec![Arg::List(vec![x, y])],
                attrs,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("the cotangent of output 0"), "{e}");
        let mut bad = call.attrs();
        bad.extend([Attr::Ints(vec![1]), Attr::Ints(vec![0])]);
        let e = b2
            .call(Op::Prim(PrimOp::AtenVjp), vec![Arg::List(vec![x, x])], bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("like it"), "{e}");
        let e = b2
            .call(
                Op::Prim(PrimOp::Aten),
                vec![Arg::List(vec![x, y])],
                call.attrs(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("tensor operand 1 is not an argument"), "{e}");
    }
}
