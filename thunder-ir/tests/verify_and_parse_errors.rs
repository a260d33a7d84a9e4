//! The verifier rejects broken traces, and the parser reports bad text with line and column.

use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{
    parse_trace, Arg, DType, IrError, TensorMeta, Trace, TraceBuilder, Value, ValueType,
};

fn mlp() -> Trace {
    programs::llama_mlp(&LlamaDims::tiny()).expect("builds")
}

fn verify_err(t: &Trace) -> String {
    match t.verify() {
        Err(IrError::Verify(m)) => m,
        other => panic!("expected a verifier error, got {other:?}"),
    }
}

#[test]
fn a_built_trace_verifies() {
    mlp().verify().expect("valid");
}

#[test]
fn use_before_definition() {
    let mut t = mlp();
    t.bound_symbols.swap(0, 2);
    let m = verify_err(&t);
    assert!(m.contains("is used before it is defined"), "{m}");
}

#[test]
fn defined_twice() {
    let mut t = mlp();
    let dup = t.bound_symbols[0].clone();
    t.bound_symbols.insert(1, dup);
    let m = verify_err(&t);
    assert!(m.contains("is defined twice"), "{m}");
}

#[test]
fn metadata_must_match_the_meta_function() {
    let mut t = mlp();
    let out = t.bound_symbols[0].outputs[0];
    if let ValueType::Tensor(m) = &mut t.values[out.index()].ty {
        m.dtype = DType::F16;
    }
    let m = verify_err(&t);
    assert!(m.contains("is recorded as \"cpu f16[2, 8, 48] requires_grad\" but ltorch.linear makes \"cpu f32[2, 8, 48] requires_grad\""), "{m}");
    // The same inside a decomposition, for a prim.
    let mut t = mlp();
    let silu = t
        .bound_symbols
        .iter()
        .position(|b| !b.subsymbols.is_empty() && b.subsymbols.len() > 2)
        .expect("silu");
    let inner = t.bound_symbols[silu].subsymbols[0].outputs[0];
    if let ValueType::Tensor(m) = &mut t.values[inner.index()].ty {
        m.shape = thunder_ir::Shape::new([1]);
    }
    let m = verify_err(&t);
    assert!(m.contains("but prims.neg makes"), "{m}");
}

#[test]
fn outputs_must_be_defined_at_top_level() {
    let mut t = mlp();
    let inner = t
        .bound_symbols
        .iter()
        .find(|b| b.subsymbols.len() > 2)
        .expect("decomposed op")
        .subsymbols[0]
        .outputs[0];
    t.outputs = vec![inner];
    let m = verify_err(&t);
    assert!(m.contains("is not defined at the top level"), "{m}");
}

#[test]
fn decomposition_must_define_the_parent_outputs() {
    let mut t = mlp();
    let i = t
        .bound_symbols
        .iter()
        .position(|b| b.subsymbols.len() > 2)
        .expect("decomposed op");
    t.bound_symbols[i].subsymbols.pop();
    let m = verify_err(&t);
    assert!(
        m.contains("is not defined by its decomposition") || m.contains("used before"),
        "{m}"
    );
}

#[test]
fn handles_and_names_are_checked() {
    let mut t = mlp();
    t.bound_symbols[0].args[0] = Arg::Value(Value(10_000));
    assert!(verify_err(&t).contains("outside the value table"));
    let mut t = mlp();
    t.values[1].name = "x".into();
    assert!(verify_err(&t).contains("is used by two values"));
    let mut t = mlp();
    t.values[0].name = "lambda".into();
    assert!(verify_err(&t).contains("invalid name"));
}

#[test]
fn builder_names_are_validated() {
    let mut b = TraceBuilder::new("f");
    let e = b.input("1x", TensorMeta::new(DType::F32, [2])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid name \"1x\": names start with a letter or '_'"
    );
    b.input("x", TensorMeta::new(DType::F32, [2])).unwrap();
    let e = b.input("x", TensorMeta::new(DType::F32, [2])).unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    // User names that look like temporaries do not collide with the builder's names.
    let mut b = TraceBuilder::new("f");
    let t0 = b.input("t0", TensorMeta::new(DType::F32, [2])).unwrap();
    let y = b.exp(t0).unwrap();
    let t = b.build(&[y]).unwrap();
    assert_ne!(t.name_of(t.outputs[0]), "t0");
}

fn parse_err(text: &str) -> (usize, String) {
    match parse_trace(text) {
        Err(IrError::Parse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

const GOOD: &str = r#"import thunder.core.prims as prims
def f(x):
  # x: "cpu f32[2, 3]"
  t0 = ltorch.exp(x)  # t0: "cpu f32[2, 3]"
    # t0 = prims.exp(x)
  return t0
"#;

#[test]
fn parser_accepts_hand_written_text() {
    let t = parse_trace(GOOD).expect("parses");
    assert_eq!(t.bound_symbols.len(), 1);
    // Without its decomposition the op's metadata comes from the decomposition run anew.
    let t2 = parse_trace(&GOOD.replace("    # t0 = prims.exp(x)\n", "")).expect("parses");
    assert_eq!(t2.tensor(t2.outputs[0]), t.tensor(t.outputs[0]));
    assert!(t2.bound_symbols[0].subsymbols.is_empty());
}

#[test]
fn parser_errors_name_the_line() {
    let (l, m) = parse_err(&GOOD.replace("ltorch.exp(x)", "ltorch.nope(x)"));
    assert_eq!((l, m.as_str()), (4, "unknown op ltorch.nope"));
    let (l, m) = parse_err(&GOOD.replace("prims.exp(x)", "prims.exp(y)"));
    assert_eq!(l, 5);
    assert!(m.contains("y is used before it is defined"), "{m}");
    let (l, m) = parse_err(&GOOD.replace("# t0: \"cpu f32[2, 3]\"", "# t0: \"cpu f16[2, 3]\""));
    assert_eq!(l, 4);
    assert!(
        m.contains("annotation says t0 is \"cpu f16[2, 3]\" but the op makes \"cpu f32[2, 3]\""),
        "{m}"
    );
    let (_, m) = parse_err(&GOOD.replace("  # x: \"cpu f32[2, 3]\"\n", ""));
    assert!(m.contains("parameter x has no type annotation"), "{m}");
    let (l, m) = parse_err(&GOOD.replace("ltorch.exp(x)", "ltorch.exp(x, 3)"));
    assert_eq!((l, m.as_str()), (4, "ltorch.exp takes 1 operands, got 2"));
    let (_, m) = parse_err(&GOOD.replace("  return t0\n", ""));
    assert!(m.contains("no return statement"), "{m}");
    let (l, m) = parse_err(&GOOD.replace("ltorch.exp(x)", "ltorch.exp(x"));
    assert_eq!(l, 4);
    assert!(m.contains("expected `)`"), "{m}");
    let (_, m) = parse_err("def f(x):\n  # x: \"cpu q32[2]\"\n  return x\n");
    assert!(m.contains("unknown dtype \"q32\""), "{m}");
    let (_, m) = parse_err("");
    assert!(m.contains("expected `def NAME(...):`"), "{m}");
    let (_, m) = parse_err("def f):x(\n");
    assert!(m.contains("expected `):` at the end of the def"), "{m}");
    let (_, m) = parse_err("def f(x:\n");
    assert!(m.contains("expected `):` at the end of the def"), "{m}");
    // Meta errors surface as parse errors on their line, with the op's message.
    let bad = "def f(x, w):\n  # x: \"cpu f32[4, 16]\"\n  # w: \"cpu f32[64, 32]\"\n  t0 = prims.linear(x, w, None)\n  return t0\n";
    let (l, m) = parse_err(bad);
    assert_eq!(l, 4);
    assert!(
        m.contains("weight has shape [64, 32] but input's last dim is 16"),
        "{m}"
    );
}

#[test]
fn torch_level_errors_name_the_torch_op() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [4, 16])).unwrap();
    let w = b.input("w", TensorMeta::new(DType::F32, [64, 32])).unwrap();
    let e = b.linear(x, w, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ltorch.linear: weight has shape [64, 32] but input's last dim is 16"
    );
    let e = b.reshape(x, &[5, -1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ltorch.reshape: shape [5, -1] is invalid for input of shape [4, 16] (64 elements)"
    );
    let e = b.rms_norm(x, &[8], None, None).unwrap_err();
    assert!(e.to_string().contains("normalized_shape=[8] must be non-empty and match the trailing dims of a, which has shape [4, 16]"), "{e}");
    let e = b.add(x, w).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ltorch.add: shapes [4, 16] and [64, 32] do not broadcast: dim 0 has sizes 4 and 64"
    );
    let t = b.input("t", TensorMeta::new(DType::I32, [4])).unwrap();
    let e = b.cross_entropy(x, t).unwrap_err();
    assert!(
        e.to_string()
            .contains("target must hold int64 class indices, got i32"),
        "{e}"
    );
    let e = b.gelu(x, "fast").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ltorch.gelu: approximate=\"fast\" must be \"none\" or \"tanh\""
    );
}

/// A trace with one AdamW step over two parameters (bf16 and f32), optionally donating its
/// buffers, and optionally returning the old parameter `p0` as well.
fn adamw_trace(inplace: bool, also_return_p0: bool, read_p0_after: bool) -> Result<Trace, IrError> {
    use thunder_ir::AdamwOptions;
    let mut b = TraceBuilder::new("step");
    let mut state = Vec::new();
    for (i, (dt, shape)) in [(DType::BF16, vec![4, 3]), (DType::F32, vec![5])]
        .into_iter()
        .enumerate()
    {
        let mut four = Vec::new();
        for what in ["p", "g", "m", "v"] {
            four.push(b.input(&format!("{what}{i}"), TensorMeta::new(dt, shape.clone()))?);
        }
        state.push(four);
    }
    let step = b.input("step", TensorMeta::new(DType::F32, Vec::<usize>::new()))?;
    let col = |k: usize| state.iter().map(|s| s[k]).collect::<Vec<_>>();
    let o = AdamwOptions {
        inplace,
        ..AdamwOptions::default()
    };
    let up = b.adamw(&col(0), &col(1), &col(2), &col(3), step, &o)?;
    let mut outs: Vec<Value> = up
        .params
        .iter()
        .chain(&up.exp_avgs)
        .chain(&up.exp_avg_sqs)
        .copied()
        .collect();
    if read_p0_after {
        outs.push(b.sum(state[0][0], &[], false)?);
    }
    if also_return_p0 {
        outs.push(state[0][0]);
    }
    b.build(&outs)
}

#[test]
fn adamw_prints_parses_and_keeps_dtypes() {
    let t = adamw_trace(true, false, false).expect("builds");
    let text = t.to_python();
    assert!(text.contains("ltorch.adamw("), "{text}");
    let back = parse_trace(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.to_python(), text);
    let dtypes: Vec<DType> = t
        .outputs
        .iter()
        .map(|&v| match t.ty(v) {
            ValueType::Tensor(m) => m.dtype,
            other => panic!("{other:?}"),
        })
        .collect();
    use DType::{BF16, F32};
    assert_eq!(dtypes, [BF16, F32, BF16, F32, BF16, F32]);
}

/// `build` verifies, so a bad donation is refused there.
#[test]
fn donated_buffers_must_be_dead_after_the_op() {
    let m = match adamw_trace(true, false, true) {
        Err(IrError::Verify(m)) => m,
        other => panic!("expected a verifier error, got {other:?}"),
    };
    assert!(
        m.contains("p0 is read after the op that overwrites it"),
        "{m}"
    );
    assert!(m.contains("inplace=False"), "{m}");
    let m = match adamw_trace(true, true, false) {
        Err(IrError::Verify(m)) => m,
        other => panic!("expected a verifier error, got {other:?}"),
    };
    assert!(m.contains("p0 is also returned by the trace"), "{m}");
    // Without donation the same traces are fine.
    adamw_trace(false, true, true)
        .expect("builds")
        .verify()
        .expect("valid");
}

#[test]
fn adamw_rejects_mismatched_state_and_bad_hyperparameters() {
    use thunder_ir::AdamwOptions;
    let mut b = TraceBuilder::new("bad");
    let p = b.input("p", TensorMeta::new(DType::F32, vec![3])).unwrap();
    let g = b.input("g", TensorMeta::new(DType::F32, vec![4])).unwrap();
    let step = b
        .input("step", TensorMeta::new(DType::F32, Vec::<usize>::new()))
        .unwrap();
    let o = AdamwOptions::default();
    let e = b.adamw(&[p], &[g], &[p], &[p], step, &o).unwrap_err();
    assert!(e.to_string().contains("grads[0] (shape [4]"), "{e}");
    let e = b.adamw(&[p], &[p, p], &[p], &[p], step, &o).unwrap_err();
    assert!(
        e.to_string()
            .contains("grads has 2 tensors but params has 1"),
        "{e}"
    );
    let e = b.adamw(&[p], &[p], &[p], &[p], p, &o).unwrap_err();
    assert!(
        e.to_string()
            .contains("step must be a 0-dim floating tensor"),
        "{e}"
    );
    let bad = AdamwOptions { beta2: 1.0, ..o };
    let e = b.adamw(&[p], &[p], &[p], &[p], step, &bad).unwrap_err();
    assert!(e.to_string().contains("beta2 (must be in [0, 1))=1"), "{e}");
}
