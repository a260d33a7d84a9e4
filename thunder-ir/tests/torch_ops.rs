//! Torch-level ops against PyTorch: the output dtype and shape of each case in
//! `tests/data/torch_ops.jsonl` (generated from torch 2.11 by `gen_torch_ops.py`), including
//! the cases where PyTorch raises and thunder must refuse too.

use serde_json::Value as J;
use thunder_ir::ops::AttrKind;
use thunder_ir::{Arg, Attr, DType, Op, TensorMeta, TorchOp, TraceBuilder, Value};

fn tensor(b: &mut TraceBuilder, k: &mut usize, spec: &J) -> Value {
    *k += 1;
    let dtype = DType::parse(spec["t"].as_str().expect("t")).expect("dtype");
    let shape: Vec<usize> = spec["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("size") as usize)
        .collect();
    b.input(&format!("a{k}"), TensorMeta::new(dtype, shape))
        .expect("input")
}

fn attr(kind: AttrKind, v: &J) -> Attr {
    match v {
        J::Null => Attr::None,
        J::Bool(b) => Attr::Bool(*b),
        J::Number(n) if n.is_i64() && !matches!(kind, AttrKind::Float | AttrKind::OptFloat) => {
            Attr::Int(n.as_i64().unwrap_or(0))
        }
        J::Number(n) => Attr::Float(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => match s.strip_prefix("dtype:") {
            Some(d) => Attr::DType(DType::parse(d).expect("dtype")),
            None => Attr::Str(s.clone()),
        },
        J::Array(items) => Attr::Ints(items.iter().map(|x| x.as_i64().expect("int")).collect()),
        J::Object(_) => panic!("objects are not attributes"),
    }
}

#[test]
fn torch_level_ops_match_pytorch_metadata() {
    let mut failures = Vec::new();
    let mut n = 0;
    for line in include_str!("data/torch_ops.jsonl").lines() {
        let case: J = serde_json::from_str(line).expect("json");
        let name = case["op"].as_str().expect("op");
        let op = TorchOp::from_name(name).unwrap_or_else(|| panic!("unknown op {name}"));
        let sig = op.signature();
        let mut b = TraceBuilder::new("case");
        let mut k = 0;
        let args: Vec<Arg> = case["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| match a {
                J::Null => Arg::None,
                J::Bool(v) => Arg::Bool(*v),
                J::Number(x) if x.is_i64() => Arg::Int(x.as_i64().unwrap_or(0)),
                J::Number(x) => Arg::Float(x.as_f64().unwrap_or(f64::NAN)),
                J::Array(ts) => Arg::List(ts.iter().map(|t| tensor(&mut b, &mut k, t)).collect()),
                t => Arg::Value(tensor(&mut b, &mut k, t)),
            })
            .collect();
        let attrs: Vec<Attr> = sig
            .attrs
            .iter()
            .map(|(an, kind)| attr(*kind, &case["attrs"][*an]))
            .collect();
        let got = b.call(Op::Torch(op), args, attrs);
        n += 1;
        match (&case["out"], got) {
            (J::String(_), Ok(vs)) => failures.push(format!(
                "{line}\n   torch raises, thunder gives {:?}",
                vs.iter()
                    .map(|v| b.tensor(*v).map(|t| t.to_string()))
                    .collect::<Vec<_>>()
            )),
            (J::String(_), Err(_)) => {}
            (want, Err(e)) => failures.push(format!(
                "{line}\n   torch gives {want}, thunder raises: {e}"
            )),
            (J::Array(want), Ok(vs)) => {
                let got: Vec<(String, Vec<usize>)> = vs
                    .iter()
                    .map(|v| {
                        let t = b.tensor(*v).expect("tensor output");
                        (t.dtype.short_name().to_string(), t.shape.sizes())
                    })
                    .collect();
                let want: Vec<(String, Vec<usize>)> = want
                    .iter()
                    .map(|w| {
                        (
                            w["dtype"].as_str().expect("dtype").to_string(),
                            w["shape"]
                                .as_array()
                                .expect("shape")
                                .iter()
                                .map(|x| x.as_u64().expect("size") as usize)
                                .collect(),
                        )
                    })
                    .collect();
                if got != want {
                    failures.push(format!("{line}\n   torch {want:?}, thunder {got:?}"));
                }
            }
            (other, _) => panic!("bad out {other}"),
        }
    }
    assert!(n > 200, "only {n} cases");
    assert!(
        failures.is_empty(),
        "{} of {n} cases disagree with PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
