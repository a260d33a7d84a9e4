//! Loading: YAML text -> [`RawEntry`] (serde) -> validated [`OpEntry`] (checked against the op's
//! thunder-ir signature), with every error naming the file and line.
//!
//! serde_yaml gives positions only for its own errors, so the line of each entry is found in
//! the text: the `- name: X` lines, in order, are matched with the parsed entries.

use crate::entry::{
    parse_dtype, ArgSpec, AttrSpec, DTypeSpec, ErrorInput, OpEntry, SampleSpec, Skip,
    TensorTemplate, Tolerance, DTYPE_GROUPS, DTYPE_NAMES, UNDER_TEST,
};
use crate::error::{DbError, Location, Part, Result};
use crate::schema::{RawEntry, RawScalar, RawTensor, UniqueMap};
use serde_yaml::Value as Y;
use std::collections::{BTreeMap, HashSet};
use thunder_ir::ops::{AttrKind, ParamKind, Signature};
use thunder_ir::{Attr, DType, Device, Op, PrimOp, TorchOp};

/// Parses and validates one file. `file` is the name used in error messages.
///
/// Returns every semantic error of the file (as [`DbError::Multiple`] when there are several);
/// a syntax error stops at once.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<OpEntry>> {
    let raw: Vec<RawEntry> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str::<Option<Vec<RawEntry>>>(text)
            .map_err(|e| syntax_error(file, text, &e))?
            .unwrap_or_default()
    };
    let lines = entry_lines(text, &raw);
    let mut entries = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    for (r, line) in raw.iter().zip(lines) {
        let at = Location {
            file: file.to_string(),
            line,
        };
        match validate_entry(r, at) {
            Ok(e) => entries.push(e),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(entries),
        1 => Err(errors.remove(0)),
        _ => Err(DbError::Multiple(errors)),
    }
}

fn syntax_error(file: &str, text: &str, e: &serde_yaml::Error) -> DbError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.to_string();
    // serde_yaml appends " at line L column C"; the position is printed in front instead.
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    // serde_yaml starts with the path of the bad value (`.[3].samples[1].args: ...`); say which
    // entry `[3]` is.
    if let Some(rest) = message.strip_prefix(".[") {
        let index = rest.split(']').next().and_then(|n| n.parse::<usize>().ok());
        let name = index.and_then(|i| name_lines(text).into_iter().nth(i).map(|(_, n)| n));
        if let (Some(name), Some(close)) = (name, rest.find(']')) {
            let path = rest[close + 1..].trim_start_matches('.');
            message = if path.starts_with(':') {
                format!("{name}{path}")
            } else {
                format!("{name}: {path}")
            };
        }
    }
    DbError::Syntax {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// The `- name: X` lines of a file: 1-based line and name.
fn name_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.trim_start().strip_prefix('-')?.trim_start();
            let v = rest.strip_prefix("name:")?.trim();
            let v = v.split(" #").next().unwrap_or(v).trim();
            Some((i + 1, v.trim_matches(|c| c == '"' || c == '\'').to_string()))
        })
        .collect()
}

/// The 1-based line of each entry's `name:` key.
fn entry_lines(text: &str, raw: &[RawEntry]) -> Vec<usize> {
    let found = name_lines(text);
    if found.len() == raw.len() && found.iter().zip(raw).all(|((_, n), r)| *n == r.name) {
        return found.into_iter().map(|(l, _)| l).collect();
    }
    // Entries written in another style (flow mappings, name not first): look each name up.
    let mut used = HashSet::new();
    raw.iter()
        .map(|r| {
            text.lines()
                .enumerate()
                .find(|(i, l)| !used.contains(i) && l.contains(&r.name) && l.contains("name"))
                .map_or(0, |(i, _)| {
                    used.insert(i);
                    i + 1
                })
        })
        .collect()
}

/// Context for the errors of one part of one entry.
struct Ctx<'a> {
    at: &'a Location,
    op: &'a str,
    part: Part,
}

impl Ctx<'_> {
    fn bad(&self, message: impl Into<String>) -> DbError {
        DbError::BadEntry {
            at: self.at.clone(),
            op: self.op.to_string(),
            part: self.part,
            message: message.into(),
        }
    }
    fn unknown_dtype(&self, name: &str) -> DbError {
        let mut expected: Vec<&str> = DTYPE_NAMES.to_vec();
        expected.extend(DTYPE_GROUPS.iter().map(|(g, _)| *g));
        DbError::UnknownDType {
            at: self.at.clone(),
            op: self.op.to_string(),
            part: self.part,
            name: name.to_string(),
            expected: expected.join(", "),
        }
    }
    fn dtype(&self, name: &str) -> Result<DType> {
        parse_dtype(name).ok_or_else(|| self.unknown_dtype(name))
    }
    /// A dtype list with groups expanded; repeats are errors.
    fn dtype_list(&self, names: &[String], what: &str) -> Result<Vec<DType>> {
        let mut out = Vec::new();
        for n in names {
            let ds: Vec<DType> = match DTYPE_GROUPS.iter().find(|(g, _)| g == n) {
                Some((_, ds)) => ds.to_vec(),
                None => vec![self.dtype(n)?],
            };
            for d in ds {
                if out.contains(&d) {
                    return Err(self.bad(format!("{what}: dtype {d} is listed twice")));
                }
                out.push(d);
            }
        }
        Ok(out)
    }
    fn operand(&self, index: usize, name: &'static str, message: impl Into<String>) -> DbError {
        DbError::BadOperand {
            at: self.at.clone(),
            op: self.op.to_string(),
            part: self.part,
            index,
            name,
            message: message.into(),
        }
    }
    fn attr(&self, attr: &str, message: impl Into<String>) -> DbError {
        DbError::BadAttr {
            at: self.at.clone(),
            op: self.op.to_string(),
            part: self.part,
            attr: attr.to_string(),
            message: message.into(),
        }
    }
}

/// Suggests the qualified name closest to a wrong one.
fn op_hint(name: &str) -> String {
    let all = PrimOp::ALL
        .iter()
        .map(|p| Op::Prim(*p))
        .chain(TorchOp::ALL.iter().map(|t| Op::Torch(*t)))
        .map(|o| o.qualified_name());
    let base = name.rsplit('.').next().unwrap_or(name);
    let candidates: Vec<String> = all.filter(|q| q.rsplit('.').next() == Some(base)).collect();
    if !candidates.is_empty() {
        return format!(
            " (did you mean {}?)",
            candidates
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    if !name.starts_with("prims.") && !name.starts_with("ltorch.") {
        return " (names are qualified: prims.NAME or ltorch.NAME)".into();
    }
    String::new()
}

fn validate_entry(r: &RawEntry, at: Location) -> Result<OpEntry> {
    let op = Op::from_qualified_name(&r.name).ok_or_else(|| DbError::UnknownOp {
        at: at.clone(),
        name: r.name.clone(),
        hint: op_hint(&r.name),
    })?;
    let name = op.qualified_name();
    let sig = op.signature();
    let cx = Ctx {
        at: &at,
        op: &name,
        part: Part::Entry,
    };
    if r.torch.trim().is_empty() {
        return Err(cx.bad("torch must name the PyTorch reference"));
    }
    let cpu_dtypes = cx.dtype_list(&r.dtypes.cpu, "dtypes.cpu")?;
    let cuda_dtypes = cx.dtype_list(&r.dtypes.cuda, "dtypes.cuda")?;
    if cpu_dtypes.is_empty() && cuda_dtypes.is_empty() {
        return Err(cx.bad("dtypes lists no dtype for cpu nor cuda"));
    }
    if r.samples.is_empty() {
        return Err(cx.bad("an entry needs at least one sample"));
    }
    let mut tolerances = BTreeMap::new();
    for (k, t) in r.tolerances.iter() {
        let d = cx.dtype(k)?;
        if !(t.atol >= 0.0 && t.rtol >= 0.0 && t.atol.is_finite() && t.rtol.is_finite()) {
            return Err(cx.bad(format!(
                "tolerances.{k}: atol ({}) and rtol ({}) must be finite and >= 0",
                t.atol, t.rtol
            )));
        }
        tolerances.insert(
            d,
            Tolerance {
                atol: t.atol,
                rtol: t.rtol,
            },
        );
    }
    let defaults_cx = Ctx {
        part: Part::DefaultAttrs,
        ..cx
    };
    check_attr_names(&defaults_cx, &sig, &r.attrs)?;
    let all_dtypes: Vec<DType> = cpu_dtypes
        .iter()
        .chain(&cuda_dtypes)
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut samples = Vec::with_capacity(r.samples.len());
    for (i, s) in r.samples.iter().enumerate() {
        let scx = Ctx {
            part: Part::Sample(i),
            ..cx
        };
        let mut spec = sample_spec(&scx, &sig, &s.args, &r.attrs, &s.attrs)?;
        if let Some(ds) = &s.dtypes {
            let ds = scx.dtype_list(ds, "dtypes")?;
            if let Some(d) = ds.iter().find(|d| !all_dtypes.contains(d)) {
                return Err(scx.bad(format!(
                    "dtypes: {d} is not among the entry's dtypes, so the sample would never run"
                )));
            }
            spec.dtypes = Some(ds);
        }
        spec.note = s.note.clone();
        samples.push(spec);
    }
    let mut error_inputs = Vec::with_capacity(r.error_inputs.len());
    for (i, e) in r.error_inputs.iter().enumerate() {
        let ecx = Ctx {
            part: Part::ErrorInput(i),
            ..cx
        };
        let sample = sample_spec(&ecx, &sig, &e.args, &r.attrs, &e.attrs)?;
        let dtype = match &e.dtype {
            Some(d) => ecx.dtype(d)?,
            None => *cpu_dtypes
                .first()
                .or(cuda_dtypes.first())
                .ok_or_else(|| ecx.bad("no dtype to run the error input with"))?,
        };
        if e.message.is_empty() {
            return Err(ecx.bad("message must not be empty"));
        }
        error_inputs.push(ErrorInput {
            sample,
            dtype,
            error: e.error,
            message: e.message.clone(),
        });
    }
    let mut skips = Vec::with_capacity(r.skips.len());
    for (i, s) in r.skips.iter().enumerate() {
        let kcx = Ctx {
            part: Part::Skip(i),
            ..cx
        };
        if let Some(k) = s.sample {
            if k >= samples.len() {
                return Err(kcx.bad(format!(
                    "sample {k} does not exist (the entry has {} samples)",
                    samples.len()
                )));
            }
        }
        if s.reason.trim().is_empty() {
            return Err(kcx.bad("a skip needs a reason"));
        }
        if let Some(t) = s.transform.as_deref() {
            if !["grad", "jvp", "vmap"].contains(&t) {
                return Err(kcx.bad(format!(
                    "transform: {t:?} is not one of \"grad\", \"jvp\", \"vmap\""
                )));
            }
        }
        skips.push(Skip {
            device: s.device,
            dtype: s.dtype.as_deref().map(|d| kcx.dtype(d)).transpose()?,
            sample: s.sample,
            transform: s.transform.clone(),
            reason: s.reason.clone(),
        });
    }
    let mut no_rule = BTreeMap::new();
    for (t, text) in r.no_rule.iter() {
        if !["grad", "jvp", "vmap"].contains(&t.as_str()) {
            return Err(cx.bad(format!(
                "no_rule: {t:?} is not one of \"grad\", \"jvp\", \"vmap\""
            )));
        }
        if t != "vmap" && !r.differentiable {
            return Err(cx.bad(format!(
                "no_rule.{t}: the op is not differentiable, so {t} is never asked"
            )));
        }
        if text.trim().is_empty() {
            return Err(cx.bad(format!(
                "no_rule.{t} must give a substring of the transform's refusal"
            )));
        }
        no_rule.insert(t.clone(), text.clone());
    }
    Ok(OpEntry {
        name,
        op,
        torch: r.torch.clone(),
        cpu_dtypes,
        cuda_dtypes,
        differentiable: r.differentiable,
        random: r.random,
        samples,
        tolerances,
        error_inputs,
        skips,
        no_rule,
        note: r.note.clone(),
        location: at,
    })
}

fn list_names(names: impl Iterator<Item = &'static str>, none: &str) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(", ")
    }
}

fn check_attr_names(cx: &Ctx<'_>, sig: &Signature, attrs: &UniqueMap<Y>) -> Result<()> {
    for k in attrs.keys() {
        if !sig.attrs.iter().any(|(n, _)| n == k) {
            return Err(DbError::UnknownAttr {
                at: cx.at.clone(),
                op: cx.op.to_string(),
                part: cx.part,
                attr: k.clone(),
                takes: list_names(sig.attrs.iter().map(|(n, _)| *n), "no attributes"),
            });
        }
    }
    Ok(())
}

fn sample_spec(
    cx: &Ctx<'_>,
    sig: &Signature,
    args: &[Y],
    defaults: &UniqueMap<Y>,
    attrs: &UniqueMap<Y>,
) -> Result<SampleSpec> {
    if args.len() != sig.operands.len() {
        return Err(DbError::OperandCount {
            at: cx.at.clone(),
            op: cx.op.to_string(),
            part: cx.part,
            expected: sig.operands.len(),
            got: args.len(),
            operands: list_names(sig.operands.iter().map(|(n, _)| *n), "none"),
        });
    }
    let args = sig
        .operands
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, ((name, kind), v))| arg_spec(cx, i, name, *kind, v))
        .collect::<Result<Vec<_>>>()?;
    check_attr_names(cx, sig, attrs)?;
    let mut out = Vec::with_capacity(sig.attrs.len());
    for (name, kind) in sig.attrs {
        let v = attrs.get(*name).or_else(|| defaults.get(*name));
        out.push(match v {
            Some(v) => attr_spec(cx, name, *kind, v)?,
            None if is_optional(*kind) => AttrSpec::Fixed(Attr::None),
            None => {
                return Err(DbError::MissingAttr {
                    at: cx.at.clone(),
                    op: cx.op.to_string(),
                    part: cx.part,
                    attr: name.to_string(),
                    kind: kind.describe(),
                })
            }
        });
    }
    Ok(SampleSpec {
        args,
        attrs: out,
        dtypes: None,
        note: None,
    })
}

fn is_optional(k: AttrKind) -> bool {
    use AttrKind as K;
    matches!(
        k,
        K::OptInt | K::OptFloat | K::OptNumber | K::OptInts | K::OptDType | K::OptDevice
    )
}

/// A short description of a YAML value for messages.
fn describe(v: &Y) -> String {
    match v {
        Y::Null => "null".into(),
        Y::Bool(b) => format!("the bool {b}"),
        Y::Number(n) => format!("the number {n}"),
        Y::String(s) => format!("the string {s:?}"),
        Y::Sequence(_) => "a list".into(),
        Y::Mapping(_) => "a mapping".into(),
        Y::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn arg_spec(cx: &Ctx<'_>, i: usize, name: &'static str, kind: ParamKind, v: &Y) -> Result<ArgSpec> {
    let want = match kind {
        ParamKind::Tensor => "a tensor spec ({shape: [...]})",
        ParamKind::OptTensor => "a tensor spec ({shape: [...]}) or null",
        ParamKind::TensorOrNumber => "a tensor spec ({shape: [...]}), a number or {scalar: x}",
        ParamKind::TensorList => "a non-empty list of tensor specs",
    };
    let wrong = || cx.operand(i, name, format!("must be {want}, got {}", describe(v)));
    let tensor = |v: &Y| tensor_template(cx, i, name, v);
    match (kind, v) {
        (ParamKind::TensorOrNumber, Y::Mapping(m)) if m.contains_key("scalar") => {
            let s: RawScalar = serde_yaml::from_value(v.clone())
                .map_err(|e| cx.operand(i, name, format!("bad scalar: {e}")))?;
            Ok(ArgSpec::Scalar(s.scalar))
        }
        (ParamKind::Tensor | ParamKind::OptTensor | ParamKind::TensorOrNumber, Y::Mapping(_)) => {
            Ok(ArgSpec::Tensor(tensor(v)?))
        }
        (ParamKind::OptTensor, Y::Null) => Ok(ArgSpec::None),
        (ParamKind::TensorOrNumber, Y::Bool(b)) => Ok(ArgSpec::Bool(*b)),
        (ParamKind::TensorOrNumber, Y::Number(n)) => Ok(match n.as_i64() {
            Some(k) => ArgSpec::Int(k),
            None => ArgSpec::Float(n.as_f64().ok_or_else(wrong)?),
        }),
        (ParamKind::TensorList, Y::Sequence(items)) if !items.is_empty() => Ok(ArgSpec::List(
            items.iter().map(tensor).collect::<Result<_>>()?,
        )),
        _ => Err(wrong()),
    }
}

fn tensor_template(cx: &Ctx<'_>, i: usize, name: &'static str, v: &Y) -> Result<TensorTemplate> {
    let t: RawTensor = serde_yaml::from_value(v.clone())
        .map_err(|e| cx.operand(i, name, format!("bad tensor spec: {e}")))?;
    let dtype = match t.dtype.as_deref() {
        None | Some(UNDER_TEST) => DTypeSpec::UnderTest,
        Some(d) => DTypeSpec::Fixed(cx.dtype(d)?),
    };
    let shape = t
        .shape
        .iter()
        .map(|&s| {
            usize::try_from(s)
                .ok()
                .filter(|&s| s <= 1 << 20)
                .ok_or_else(|| cx.operand(i, name, format!("size {s} is too large")))
        })
        .collect::<Result<Vec<_>>>()?;
    // Samples are small on purpose; a typo such as `[20000, 20000]` should not reach an executor.
    const MAX_NUMEL: usize = 1 << 24;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .filter(|&n| n <= MAX_NUMEL);
    if numel.is_none() {
        return Err(cx.operand(
            i,
            name,
            format!("shape {shape:?} has more than {MAX_NUMEL} elements; keep samples small"),
        ));
    }
    let domain = match t.domain {
        None => None,
        Some([lo, hi]) if lo.is_finite() && hi.is_finite() && lo < hi => Some((lo, hi)),
        Some([lo, hi]) => {
            return Err(cx.operand(
                i,
                name,
                format!("domain [{lo}, {hi}] must be finite with lo < hi"),
            ))
        }
    };
    if t.noncontiguous && shape.is_empty() {
        return Err(cx.operand(
            i,
            name,
            "a 0-dim tensor cannot be noncontiguous (give it at least one dim)",
        ));
    }
    Ok(TensorTemplate {
        shape,
        dtype,
        domain,
        noncontiguous: t.noncontiguous,
    })
}

fn int_of(v: &Y) -> Option<i64> {
    match v {
        Y::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn ints_of(v: &Y) -> Option<Vec<i64>> {
    match v {
        Y::Sequence(items) => items.iter().map(int_of).collect(),
        _ => None,
    }
}

fn attr_spec(cx: &Ctx<'_>, name: &str, kind: AttrKind, v: &Y) -> Result<AttrSpec> {
    use AttrKind as K;
    let wrong = || {
        let extra = match kind {
            K::DType | K::OptDType => " (a short dtype name such as f32, or under_test)",
            K::Device | K::OptDevice => " (cpu, cuda, cuda:N, or under_test)",
            _ => "",
        };
        cx.attr(
            name,
            format!("must be {}{extra}, got {}", kind.describe(), describe(v)),
        )
    };
    if matches!(v, Y::Null) {
        return if is_optional(kind) {
            Ok(AttrSpec::Fixed(Attr::None))
        } else {
            Err(wrong())
        };
    }
    let a = match kind {
        K::Int | K::OptInt => Attr::Int(int_of(v).ok_or_else(wrong)?),
        K::Float | K::OptFloat => match v {
            Y::Number(n) => Attr::Float(n.as_f64().ok_or_else(wrong)?),
            _ => return Err(wrong()),
        },
        K::Number | K::OptNumber => match v {
            Y::Bool(b) => Attr::Bool(*b),
            Y::Number(n) => match n.as_i64() {
                Some(k) => Attr::Int(k),
                None => Attr::Float(n.as_f64().ok_or_else(wrong)?),
            },
            _ => return Err(wrong()),
        },
        K::Bool => match v {
            Y::Bool(b) => Attr::Bool(*b),
            _ => return Err(wrong()),
        },
        K::Str => match v {
            Y::String(s) => Attr::Str(s.clone()),
            _ => return Err(wrong()),
        },
        K::Ints | K::OptInts => Attr::Ints(ints_of(v).ok_or_else(wrong)?),
        K::IntOrInts => match int_of(v) {
            Some(k) => Attr::Int(k),
            None => Attr::Ints(ints_of(v).ok_or_else(wrong)?),
        },
        K::IntLists => match v {
            Y::Sequence(items) => Attr::IntLists(
                items
                    .iter()
                    .map(ints_of)
                    .collect::<Option<_>>()
                    .ok_or_else(wrong)?,
            ),
            _ => return Err(wrong()),
        },
        K::DType | K::OptDType => match v {
            Y::String(s) if s == UNDER_TEST => return Ok(AttrSpec::DTypeUnderTest),
            Y::String(s) => Attr::DType(cx.dtype(s)?),
            _ => return Err(wrong()),
        },
        K::Device | K::OptDevice => match v {
            Y::String(s) if s == UNDER_TEST => return Ok(AttrSpec::DeviceUnderTest),
            Y::String(s) => Attr::Device(s.parse::<Device>().map_err(|_| wrong())?),
            _ => return Err(wrong()),
        },
    };
    Ok(AttrSpec::Fixed(a))
}

/// Checks that no op appears twice across `entries` (in load order).
pub(crate) fn check_duplicates(entries: &[OpEntry]) -> Vec<DbError> {
    let mut first: BTreeMap<Op, &Location> = BTreeMap::new();
    let mut errors = Vec::new();
    for e in entries {
        match first.get(&e.op) {
            Some(f) => errors.push(DbError::DuplicateEntry {
                at: e.location.clone(),
                name: e.name.clone(),
                first: (*f).clone(),
            }),
            None => {
                first.insert(e.op, &e.location);
            }
        }
    }
    errors
}
