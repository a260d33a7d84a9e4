//! A value of a region as an expression of an index: view ops change the index their operand
//! is read at, elementwise prims have a formula in CUDA C++ (rounded to 16-bit floats after every
//! op, as eager rounds).

use super::{compute_type, storage_type, GenError};
use crate::fusion::partition::Region;
use std::collections::{HashMap, HashSet};
use thunder_ir::ops::prims::PrimClass;
use thunder_ir::{Arg, Attr, BoundSymbol, DType, Op, PrimOp, TensorMeta, Trace, Value, ValueType};

/// A C literal of `x` in compute type `ty`.
fn float_lit(x: f64, ty: &str) -> String {
    let double = ty == "double";
    if x.is_nan() {
        return if double {
            "__longlong_as_double(0x7ff8000000000000LL)".into()
        } else {
            "__int_as_float(0x7fc00000)".into()
        };
    }
    if x.is_infinite() {
        let neg = x < 0.0;
        return match (double, neg) {
            (true, false) => "__longlong_as_double(0x7ff0000000000000LL)".into(),
            (true, true) => "__longlong_as_double(0xfff0000000000000ULL)".into(),
            (false, false) => "__int_as_float(0x7f800000)".into(),
            (false, true) => "__int_as_float(0xff800000)".into(),
        };
    }
    format!("(({ty}){x:e})")
}

fn literal(a: &Arg, ty: &str) -> Option<String> {
    Some(match a {
        Arg::Int(i) => {
            if ty == "float" || ty == "double" {
                float_lit(*i as f64, ty)
            } else {
                format!("(({ty}){i}LL)")
            }
        }
        Arg::Float(f) => float_lit(*f, ty),
        Arg::Bool(b) => format!("(({ty}){})", if *b { 1 } else { 0 }),
        _ => return None,
    })
}

/// A number attribute (a fill or padding value) as a C literal in compute type `ty`.
fn attr_literal(a: &Attr, ty: &str) -> Option<String> {
    match a {
        Attr::Float(f) => literal(&Arg::Float(*f), ty),
        Attr::Int(i) => literal(&Arg::Int(*i), ty),
        Attr::Bool(x) => literal(&Arg::Bool(*x), ty),
        _ => None,
    }
}

/// How the generator reaches region inputs: strided loads, or (vector variant) a register array.
#[derive(Clone)]
pub(super) enum InputAccess {
    Strided,
    /// `arr[e]` for the inputs read at the output's index.
    /// Only where the input is read at the home index (the element being computed); a read at
    /// another index (through a pad, a slice, a flip...) goes through the strides.
    Direct(HashMap<usize, String>, Vec<String>),
}

/// `idx` with the index of every size-1 dim of `t` replaced by `0`.
fn canonical_index(idx: &[String], t: &thunder_ir::TensorMeta) -> Vec<String> {
    idx.iter()
        .enumerate()
        .map(|(d, i)| {
            if t.shape.size(d) == 1 {
                "0".to_string()
            } else {
                i.clone()
            }
        })
        .collect()
}

pub(super) struct Gen<'a> {
    pub(super) trace: &'a Trace,
    pub(super) producer: HashMap<Value, &'a BoundSymbol>,
    input_pos: HashMap<Value, usize>,
    /// A number per value of the region (inputs first, then results in program order), used in
    /// the names of the kernel's variables instead of the trace's numbering: regions that
    /// compute the same thing on values of the same types (a model's layers) get the same
    /// source, which compiles once.
    ids: HashMap<Value, usize>,
    pub(super) idx: &'static str,
    tmp: usize,
}

/// A block of statements being built, with its memo of evaluated (value, index) pairs.
pub(super) struct Block {
    pub(super) code: String,
    pub(super) memo: HashMap<String, String>,
    pub(super) indent: usize,
}

impl Block {
    pub(super) fn new(indent: usize, memo: HashMap<String, String>) -> Self {
        Block {
            code: String::new(),
            memo,
            indent,
        }
    }
    /// Declares `const idx_t <prefix><d>` for the multi-index of linear index `lin` in `shape`;
    /// returns one name per dim (`0` for size-1 dims, which need no variable).
    pub(super) fn index(&mut self, prefix: &str, lin: &str, shape: &[usize]) -> Vec<String> {
        unravel(lin, shape)
            .into_iter()
            .enumerate()
            .map(|(d, e)| {
                if shape[d] == 1 {
                    return "0".to_string();
                }
                let n = format!("{prefix}{d}");
                self.line(&format!("const idx_t {n} = {e};"));
                n
            })
            .collect()
    }
    pub(super) fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.code.push_str("  ");
        }
        self.code.push_str(s);
        self.code.push('\n');
    }
}

pub(super) fn shape_of(trace: &Trace, v: Value) -> Vec<usize> {
    trace.tensor(v).map(|t| t.shape.sizes()).unwrap_or_default()
}

pub(super) fn dtype_of(trace: &Trace, v: Value) -> Option<DType> {
    trace.tensor(v).map(|t| t.dtype)
}

/// The metadata of `v`, which a kernel reads or writes as a tensor.
pub(super) fn tensor_of(trace: &Trace, v: Value) -> Result<&TensorMeta, GenError> {
    trace.tensor(v).ok_or(GenError::NotATensor { value: v })
}

/// The type a kernel stores `v`, a tensor of `dtype`, in.
pub(super) fn storage_of(v: Value, dtype: DType) -> Result<&'static str, GenError> {
    storage_type(dtype).ok_or(GenError::MissingDtype {
        value: v,
        dtype: Some(dtype),
    })
}

/// The dtype of `v`, the result of a reduction.
pub(super) fn reduced_dtype(trace: &Trace, v: Value) -> Result<DType, GenError> {
    dtype_of(trace, v).ok_or(GenError::MissingDtype {
        value: v,
        dtype: None,
    })
}

/// `b`'s operand is not a tensor; `what` names `b` in the message.
pub(super) fn non_tensor(b: &BoundSymbol, what: &'static str) -> GenError {
    GenError::NonTensorOperand { op: b.op, what }
}

/// An attribute of `op` has the wrong kind.
fn bad_attr(op: PrimOp, attr: &'static str) -> GenError {
    GenError::BadAttr { op, attr }
}

fn ints_attr(a: &Attr) -> Vec<i64> {
    match a {
        Attr::Ints(v) => v.clone(),
        _ => Vec::new(),
    }
}

/// `C` expressions for the multi-index of linear index `lin` in `shape`.
fn unravel(lin: &str, shape: &[usize]) -> Vec<String> {
    let mut out = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    let mut strides = vec![0usize; shape.len()];
    for d in (0..shape.len()).rev() {
        strides[d] = stride;
        stride *= shape[d].max(1);
    }
    for d in 0..shape.len() {
        out.push(if shape[d] == 1 {
            "0".to_string()
        } else if d == 0 {
            format!("(({lin}) / {})", strides[d])
        } else if strides[d] == 1 {
            format!("(({lin}) % {})", shape[d])
        } else {
            format!("((({lin}) / {}) % {})", strides[d], shape[d])
        });
    }
    out
}

fn ravel(idx: &[String], shape: &[usize]) -> String {
    if idx.is_empty() {
        return "0".into();
    }
    let mut s = String::new();
    for (d, i) in idx.iter().enumerate() {
        if d == 0 {
            s = i.clone();
        } else {
            s = format!("(({s}) * {} + {i})", shape[d]);
        }
    }
    s
}

impl<'a> Gen<'a> {
    /// A generator for `region` (whose op indices refer to `ops`): its producers, its inputs'
    /// positions, the numbers of its values, and 64-bit index math when a tensor has 2^31
    /// elements or more.
    pub(super) fn new(trace: &'a Trace, ops: &'a [BoundSymbol], region: &Region) -> Self {
        let mut producer = HashMap::new();
        for &i in region.ops.iter().chain(&region.recompute) {
            for &o in &ops[i].outputs {
                producer.insert(o, &ops[i]);
            }
        }
        let input_pos: HashMap<Value, usize> = region
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &v)| (v, k))
            .collect();
        let big = region
            .inputs
            .iter()
            .chain(&region.outputs)
            .chain(
                region
                    .ops
                    .iter()
                    .chain(&region.recompute)
                    .flat_map(|&i| ops[i].outputs.iter()),
            )
            .filter_map(|&v| trace.tensor(v))
            .any(|t| t.shape.numel() >= (1usize << 31));
        let mut ids: HashMap<Value, usize> = input_pos.clone();
        let mut computed: Vec<usize> = region
            .ops
            .iter()
            .chain(&region.recompute)
            .copied()
            .collect();
        computed.sort_unstable();
        for i in computed {
            for &o in &ops[i].outputs {
                let n = ids.len();
                ids.entry(o).or_insert(n);
            }
        }
        Gen {
            trace,
            producer,
            input_pos,
            ids,
            idx: if big { "long long" } else { "int" },
            tmp: 0,
        }
    }

    /// The region's number for `v` (see [`Gen::ids`]).
    pub(super) fn id(&self, v: Value) -> usize {
        self.ids
            .get(&v)
            .copied()
            .unwrap_or(1_000_000 + v.0 as usize)
    }

    fn fresh(&mut self, p: &str) -> String {
        self.tmp += 1;
        format!("{p}{}", self.tmp)
    }

    /// The compute type of a value.
    pub(super) fn cty(&self, v: Value) -> &'static str {
        match self.trace.ty(v) {
            ValueType::Tensor(t) => compute_type(t.dtype),
            ValueType::Number(n) => match n {
                thunder_ir::NumberType::Int => "long long",
                thunder_ir::NumberType::Bool => "bool",
                _ => "double",
            },
        }
    }

    /// An operand as a `ty` expression: a literal, a number input, or a tensor evaluated at `idx`.
    fn operand(
        &mut self,
        blk: &mut Block,
        a: &Arg,
        idx: &[String],
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        if let Some(l) = literal(a, ty) {
            return Ok(l);
        }
        let v = a.as_value().ok_or(GenError::OperandNotAValue)?;
        let e = self.eval(blk, v, idx, acc)?;
        Ok(if self.cty(v) == ty {
            e
        } else {
            format!("(({ty}){e})")
        })
    }

    /// Statements computing `v` at `idx` (one expression per dim of `v`); returns its name.
    pub(super) fn eval(
        &mut self,
        blk: &mut Block,
        v: Value,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        // A size-1 dim has index 0, however it was reached (so that memo keys agree).
        let canon: Vec<String>;
        let idx: &[String] = match self.trace.tensor(v) {
            Some(t) if t.shape.dims().iter().any(|d| d.value() == 1) => {
                canon = canonical_index(idx, t);
                &canon
            }
            _ => idx,
        };
        let key = format!("{}@{}", v.0, idx.join(","));
        if let Some(n) = blk.memo.get(&key) {
            return Ok(n.clone());
        }
        let name = if let Some(&k) = self.input_pos.get(&v) {
            match self.trace.ty(v) {
                ValueType::Number(_) => format!("p{k}"),
                ValueType::Tensor(t) => {
                    let direct = match acc {
                        InputAccess::Direct(m, home)
                            if home.len() == idx.len() && canonical_index(home, t) == idx =>
                        {
                            m.get(&k).cloned()
                        }
                        _ => None,
                    };
                    let expr = match direct {
                        Some(d) => format!("tc({d})"),
                        None => {
                            let mut off = String::from("0");
                            for (d, i) in idx.iter().enumerate() {
                                if t.shape.size(d) != 1 {
                                    off = format!("{off} + (long long)({i}) * s{k}_{d}");
                                }
                            }
                            format!("tc(in{k}[{off}])")
                        }
                    };
                    let n = self.fresh("x");
                    blk.line(&format!("const {} {n} = {expr};", compute_type(t.dtype)));
                    n
                }
            }
        } else {
            let b = *self
                .producer
                .get(&v)
                .ok_or(GenError::Undefined { value: v })?;
            self.eval_op(blk, b, v, idx, acc)?
        };
        blk.memo.insert(key, name.clone());
        Ok(name)
    }

    /// Statements computing `v`, the result of `b`, at `idx`; returns its name.
    fn eval_op(
        &mut self,
        blk: &mut Block,
        b: &BoundSymbol,
        v: Value,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let Op::Prim(op) = b.op else {
            return Err(GenError::NotAPrim { op: b.op });
        };
        let out_dt = dtype_of(self.trace, v).ok_or(GenError::NumberOutput { value: v })?;
        let ty = compute_type(out_dt);
        // View ops: the operand at another index.
        if let Some(n) = self.eval_view(blk, op, b, v, idx, ty, acc)? {
            return Ok(n);
        }
        if op.class() == PrimClass::Reduction {
            return Err(GenError::ReductionOutsideRowLoop { op });
        }
        let expr = self.elementwise(blk, op, b, out_dt, idx, acc)?;
        let n = self.fresh("v");
        let rounded = match out_dt {
            DType::BF16 => format!("rnd_bf16({expr})"),
            DType::F16 => format!("rnd_f16({expr})"),
            _ => format!("({ty})({expr})"),
        };
        blk.line(&format!("const {ty} {n} = {rounded};"));
        Ok(n)
    }

    /// A view op's result at `idx` (its operand read at another index), or `None` when `op` is
    /// not a view op.
    #[allow(clippy::too_many_arguments)]
    fn eval_view(
        &mut self,
        blk: &mut Block,
        op: PrimOp,
        b: &BoundSymbol,
        v: Value,
        idx: &[String],
        ty: &str,
        acc: &InputAccess,
    ) -> Result<Option<String>, GenError> {
        if let Some((x, j)) = view_index(self.trace, op, b, idx)? {
            return self.eval(blk, x, &j, acc).map(Some);
        }
        match op {
            PrimOp::Reshape => self.eval_reshape(blk, b, v, idx, acc).map(Some),
            PrimOp::Pad => self.eval_pad(blk, b, idx, ty, acc).map(Some),
            PrimOp::Cat => self.eval_cat(blk, b, v, idx, ty, acc).map(Some),
            _ => Ok(None),
        }
    }

    /// `prims.reshape` at `idx`: its operand at the same linear index.
    fn eval_reshape(
        &mut self,
        blk: &mut Block,
        b: &BoundSymbol,
        v: Value,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let x = b.args.first().and_then(Arg::as_value);
        let x = x.ok_or(non_tensor(b, "reshape"))?;
        let xs = shape_of(self.trace, x);
        let lin = ravel(idx, &shape_of(self.trace, v));
        let n = self.fresh("l");
        blk.line(&format!("const {} {n} = {lin};", self.idx));
        self.eval(blk, x, &unravel(&n, &xs), acc)
    }

    /// `prims.pad` at `idx`: the padding value, or the operand where `idx` maps into it.
    fn eval_pad(
        &mut self,
        blk: &mut Block,
        b: &BoundSymbol,
        idx: &[String],
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let x = b.args.first().and_then(Arg::as_value);
        let x = x.ok_or(non_tensor(b, "pad"))?;
        let xs = shape_of(self.trace, x);
        let config: Vec<Vec<i64>> = match &b.attrs[1] {
            Attr::IntLists(c) => c.clone(),
            _ => return Err(bad_attr(PrimOp::Pad, "padding_config")),
        };
        let pad = attr_literal(&b.attrs[0], ty).ok_or(bad_attr(PrimOp::Pad, "padding_value"))?;
        let mut conds = Vec::new();
        let mut j = Vec::new();
        for (d, i) in idx.iter().enumerate() {
            let (lo, step) = (config[d][0], config[d][2] + 1);
            let p = format!("(({i}) - ({lo}))");
            conds.push(format!("{p} >= 0"));
            if step > 1 {
                conds.push(format!("{p} % {step} == 0"));
            }
            conds.push(format!("{p} / {step} < {}", xs[d]));
            j.push(if step > 1 {
                format!("({p} / {step})")
            } else {
                p
            });
        }
        self.select(blk, &conds, x, &j, &pad, ty, acc)
    }

    /// `prims.cat` at `idx`: the part that holds the index along the concatenated dim.
    fn eval_cat(
        &mut self,
        blk: &mut Block,
        b: &BoundSymbol,
        v: Value,
        idx: &[String],
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let Arg::List(parts) = &b.args[0] else {
            return Err(GenError::CatOfNonList);
        };
        let r = shape_of(self.trace, v).len() as i64;
        let dim = match &b.attrs[0] {
            Attr::Int(d) => (if *d < 0 { d + r } else { *d }) as usize,
            _ => 0,
        };
        let n = self.fresh("c");
        blk.line(&format!("{ty} {n};"));
        let mut offset = 0usize;
        for (pi, &x) in parts.iter().enumerate() {
            let size = shape_of(self.trace, x)[dim];
            let mut j = idx.to_vec();
            j[dim] = format!("(({}) - {offset})", idx[dim]);
            let cond = format!("({}) < {}", idx[dim], offset + size);
            let head = if pi == 0 {
                format!("if ({cond}) {{")
            } else if pi + 1 == parts.len() {
                "else {".to_string()
            } else {
                format!("else if ({cond}) {{")
            };
            blk.line(&head);
            let mut inner = Block::new(blk.indent + 1, blk.memo.clone());
            let e = self.eval(&mut inner, x, &j, acc)?;
            let cast = if self.cty(x) == ty {
                e
            } else {
                format!("(({ty}){e})")
            };
            inner.line(&format!("{n} = {cast};"));
            blk.code.push_str(&inner.code);
            blk.line("}");
            offset += size;
        }
        Ok(n)
    }

    /// The expression of an elementwise prim (a constant, a conversion, or a formula of its
    /// operands) at `idx`, before rounding to the output's dtype.
    fn elementwise(
        &mut self,
        blk: &mut Block,
        op: PrimOp,
        b: &BoundSymbol,
        out_dt: DType,
        idx: &[String],
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        use PrimOp::*;
        let ty = compute_type(out_dt);
        Ok(match op {
            Full => attr_literal(&b.attrs[1], ty).ok_or(bad_attr(op, "fill value"))?,
            Iota => {
                let num = |a: &Attr| match a {
                    Attr::Int(i) => literal(&Arg::Int(*i), ty),
                    Attr::Float(f) => literal(&Arg::Float(*f), ty),
                    _ => None,
                };
                let start = num(&b.attrs[1]).ok_or(bad_attr(op, "iota start"))?;
                let step = num(&b.attrs[2]).ok_or(bad_attr(op, "iota step"))?;
                format!("({start} + ({ty})({}) * {step})", idx[0])
            }
            ConvertElementType => {
                let x = b.args.first().and_then(Arg::as_value);
                let src = x.map(|x| self.cty(x)).unwrap_or("double");
                let e = self.operand(blk, &b.args[0], idx, src, acc)?;
                if out_dt == DType::Bool {
                    format!("({e} != 0)")
                } else {
                    format!("(({ty}){e})")
                }
            }
            _ => {
                let class = op.class();
                let operand_ty = self.operand_type(op, b, out_dt);
                if class == PrimClass::Ternary {
                    let p = self.operand(blk, &b.args[0], idx, "bool", acc)?;
                    let x = self.operand(blk, &b.args[1], idx, ty, acc)?;
                    let y = self.operand(blk, &b.args[2], idx, ty, acc)?;
                    format!("({p} ? {x} : {y})")
                } else if class == PrimClass::Unary {
                    let a = self.operand(blk, &b.args[0], idx, operand_ty, acc)?;
                    unary_formula(op, &a, operand_ty)?
                } else {
                    let x = self.operand(blk, &b.args[0], idx, operand_ty, acc)?;
                    let y = self.operand(blk, &b.args[1], idx, operand_ty, acc)?;
                    binary_formula(op, &x, &y, operand_ty)?
                }
            }
        })
    }

    /// The type an elementwise prim computes in: comparisons in their operands' type, the rest
    /// (and `where`) in the output's.
    fn operand_type(&self, op: PrimOp, b: &BoundSymbol, out_dt: DType) -> &'static str {
        use PrimOp::*;
        let ty = compute_type(out_dt);
        match op.class() {
            PrimClass::Ternary => ty,
            _ => {
                // Comparisons compute in the operands' type; the rest in the output's.
                if out_dt == DType::Bool
                    && !matches!(op, BitwiseAnd | BitwiseOr | BitwiseXor | BitwiseNot)
                {
                    b.args
                        .iter()
                        .filter_map(Arg::as_value)
                        .find_map(|x| dtype_of(self.trace, x))
                        .map(compute_type)
                        .unwrap_or(ty)
                } else {
                    ty
                }
            }
        }
    }

    /// `conds ? x(j) : other`, evaluating `x` only where `conds` hold (it may be out of bounds
    /// elsewhere).
    #[allow(clippy::too_many_arguments)]
    fn select(
        &mut self,
        blk: &mut Block,
        conds: &[String],
        x: Value,
        j: &[String],
        other: &str,
        ty: &str,
        acc: &InputAccess,
    ) -> Result<String, GenError> {
        let n = self.fresh("s");
        blk.line(&format!("{ty} {n} = {other};"));
        blk.line(&format!("if ({}) {{", conds.join(" && ")));
        let mut inner = Block::new(blk.indent + 1, blk.memo.clone());
        let e = self.eval(&mut inner, x, j, acc)?;
        let cast = if self.cty(x) == ty {
            e
        } else {
            format!("(({ty}){e})")
        };
        inner.line(&format!("{n} = {cast};"));
        blk.code.push_str(&inner.code);
        blk.line("}");
        Ok(n)
    }
}

/// The operand of an index-mapping view op (broadcast, transpose, squeeze, slice, flip) and the
/// index it is read at for the op's result at `idx`; `None` for other ops.
fn view_index(
    trace: &Trace,
    op: PrimOp,
    b: &BoundSymbol,
    idx: &[String],
) -> Result<Option<(Value, Vec<String>)>, GenError> {
    use PrimOp::*;
    let arg_v = |i: usize| b.args.get(i).and_then(Arg::as_value);
    Ok(Some(match op {
        BroadcastInDim => {
            let x = arg_v(0).ok_or(non_tensor(b, "broadcast"))?;
            let xs = shape_of(trace, x);
            let bd = ints_attr(&b.attrs[1]);
            let j: Vec<String> = xs
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    if s == 1 {
                        "0".into()
                    } else {
                        idx[bd[i] as usize].clone()
                    }
                })
                .collect();
            (x, j)
        }
        Transpose => {
            let x = arg_v(0).ok_or(non_tensor(b, "transpose"))?;
            let perm = ints_attr(&b.attrs[0]);
            let mut j = vec![String::new(); perm.len()];
            for (o, &p) in perm.iter().enumerate() {
                j[p as usize] = idx[o].clone();
            }
            (x, j)
        }
        Squeeze => {
            let x = arg_v(0).ok_or(non_tensor(b, "squeeze"))?;
            let xs = shape_of(trace, x);
            let r = xs.len() as i64;
            let dims: HashSet<usize> = ints_attr(&b.attrs[0])
                .iter()
                .map(|&d| if d < 0 { d + r } else { d } as usize)
                .collect();
            let mut it = idx.iter();
            let j: Vec<String> = (0..xs.len())
                .map(|d| {
                    if dims.contains(&d) {
                        "0".to_string()
                    } else {
                        it.next().cloned().unwrap_or_else(|| "0".into())
                    }
                })
                .collect();
            (x, j)
        }
        Slice => {
            let x = arg_v(0).ok_or(non_tensor(b, "slice"))?;
            let start = ints_attr(&b.attrs[0]);
            let strides = ints_attr(&b.attrs[2]);
            let j: Vec<String> = idx
                .iter()
                .enumerate()
                .map(|(d, i)| format!("({} + ({i}) * {})", start[d], strides[d]))
                .collect();
            (x, j)
        }
        Flip => {
            let x = arg_v(0).ok_or(non_tensor(b, "flip"))?;
            let xs = shape_of(trace, x);
            let r = xs.len() as i64;
            let dims: HashSet<usize> = ints_attr(&b.attrs[0])
                .iter()
                .map(|&d| if d < 0 { d + r } else { d } as usize)
                .collect();
            let j: Vec<String> = idx
                .iter()
                .enumerate()
                .map(|(d, i)| {
                    if dims.contains(&d) {
                        format!("({} - ({i}))", xs[d] as i64 - 1)
                    } else {
                        i.clone()
                    }
                })
                .collect();
            (x, j)
        }
        _ => return Ok(None),
    }))
}

/// The formula of a unary prim of `a`, computed in `operand_ty`.
fn unary_formula(op: PrimOp, a: &str, operand_ty: &str) -> Result<String, GenError> {
    use PrimOp::*;
    let f = |name: &str| {
        if operand_ty == "float" {
            format!("{name}f")
        } else {
            name.to_string()
        }
    };
    Ok(match op {
        Abs => format!("absv({a})"),
        Neg => format!("(-{a})"),
        Exp => format!("{}({a})", f("exp")),
        Exp2 => format!("{}({a})", f("exp2")),
        Expm1 => format!("{}({a})", f("expm1")),
        Log => format!("{}({a})", f("log")),
        Log1p => format!("{}({a})", f("log1p")),
        Log2 => format!("{}({a})", f("log2")),
        Log10 => format!("{}({a})", f("log10")),
        Sqrt => format!("{}({a})", f("sqrt")),
        Rsqrt => format!("{}({a})", f("rsqrt")),
        Reciprocal => format!("(({operand_ty})1 / {a})"),
        Sin => format!("{}({a})", f("sin")),
        Cos => format!("{}({a})", f("cos")),
        Tan => format!("{}({a})", f("tan")),
        Asin => format!("{}({a})", f("asin")),
        Acos => format!("{}({a})", f("acos")),
        Atan => format!("{}({a})", f("atan")),
        Sinh => format!("{}({a})", f("sinh")),
        Cosh => format!("{}({a})", f("cosh")),
        Tanh => format!("{}({a})", f("tanh")),
        Asinh => format!("{}({a})", f("asinh")),
        Acosh => format!("{}({a})", f("acosh")),
        Atanh => format!("{}({a})", f("atanh")),
        Erf => format!("{}({a})", f("erf")),
        Erfc => format!("{}({a})", f("erfc")),
        Erfinv => format!("{}({a})", f("erfinv")),
        Lgamma => format!("{}({a})", f("lgamma")),
        Floor => format!("{}({a})", f("floor")),
        Ceil => format!("{}({a})", f("ceil")),
        Round => format!("{}({a})", f("rint")),
        Trunc => format!("{}({a})", f("trunc")),
        Sign => format!("sgn({a})"),
        Signbit => {
            if operand_ty == "float" || operand_ty == "double" {
                format!("(signbit({a}) != 0)")
            } else {
                format!("({a} < 0)")
            }
        }
        IsFinite => {
            if operand_ty == "float" || operand_ty == "double" {
                format!("(isfinite({a}) != 0)")
            } else {
                "true".into()
            }
        }
        BitwiseNot => {
            if operand_ty == "bool" {
                format!("(!{a})")
            } else {
                format!("(~{a})")
            }
        }
        other => return Err(GenError::NoFormula { op: other }),
    })
}

/// The formula of a binary prim of `x` and `y`, computed in `operand_ty`.
fn binary_formula(op: PrimOp, x: &str, y: &str, operand_ty: &str) -> Result<String, GenError> {
    use PrimOp::*;
    let f = |name: &str| {
        if operand_ty == "float" {
            format!("{name}f")
        } else {
            name.to_string()
        }
    };
    Ok(match op {
        Add => format!("({x} + {y})"),
        Sub => format!("({x} - {y})"),
        Mul => format!("({x} * {y})"),
        Div => format!("({x} / {y})"),
        Remainder => format!("py_rem({x}, {y})"),
        Fmod => format!("c_fmod({x}, {y})"),
        Pow => format!("{}({x}, {y})", f("pow")),
        Atan2 => format!("{}({x}, {y})", f("atan2")),
        Maximum => format!("nan_max({x}, {y})"),
        Minimum => format!("nan_min({x}, {y})"),
        Eq => format!("({x} == {y})"),
        Ne => format!("({x} != {y})"),
        Lt => format!("({x} < {y})"),
        Le => format!("({x} <= {y})"),
        Gt => format!("({x} > {y})"),
        Ge => format!("({x} >= {y})"),
        BitwiseAnd => format!("({x} & {y})"),
        BitwiseOr => format!("({x} | {y})"),
        BitwiseXor => format!("({x} ^ {y})"),
        ShiftLeft => format!("({x} << {y})"),
        ShiftRight => format!("({x} >> {y})"),
        other => return Err(GenError::NoFormula { op: other }),
    })
}

/// The identity and the combining function of a reduction in type `ty`.
pub(super) fn red_init(b: &BoundSymbol, ty: &str) -> Result<(String, &'static str), GenError> {
    let Op::Prim(op) = b.op else {
        return Err(GenError::NotAReduction { op: b.op });
    };
    let float = ty == "float" || ty == "double";
    Ok(match op {
        PrimOp::Sum => (format!("(({ty})0)"), "red_sum"),
        PrimOp::Prod => (format!("(({ty})1)"), "red_prod"),
        PrimOp::Amax => (
            if float {
                float_lit(f64::NEG_INFINITY, ty)
            } else if ty == "int" {
                "(-2147483647 - 1)".to_string()
            } else {
                "(-9223372036854775807LL - 1)".to_string()
            },
            "red_max",
        ),
        PrimOp::Amin => (
            if float {
                float_lit(f64::INFINITY, ty)
            } else if ty == "int" {
                "2147483647".to_string()
            } else {
                "9223372036854775807LL".to_string()
            },
            "red_min",
        ),
        other => return Err(GenError::NotFusibleReduction { op: other }),
    })
}
