//! Extreme integers through the builder and the parser: sizes near `usize::MAX` and
//! `i64::MAX`, negative values, and arguments whose sums and products overflow. Every call is
//! `Ok` or a typed error, never a panic. Tests run in debug builds, where integer overflow
//! panics: an unchecked computation on these values fails here.

use proptest::prelude::*;
use thunder_ir::ops::prims::PrimOp;
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{
    parse_trace, Arg, Attr, DType, Device, IrError, TensorMeta, Trace, TraceBuilder, Value,
};

const I64_MAX: usize = i64::MAX as usize;

/// Small sizes too, so that some calls succeed and the next ones see their results.
fn extreme_usize() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 0usize..5,
        2 => prop::sample::select(vec![
            1 << 20,
            1 << 31,
            1 << 32,
            (1 << 32) + 1,
            1 << 40,
            1 << 62,
            I64_MAX - 1,
            I64_MAX,
            I64_MAX + 1,
            usize::MAX - 1,
            usize::MAX,
        ]),
        1 => any::<usize>(),
    ]
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => -3i64..5,
        2 => prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -(1 << 62),
            -(1 << 32),
            1 << 20,
            1 << 31,
            1 << 32,
            1 << 40,
            1 << 62,
            i64::MAX - 1,
            i64::MAX,
        ]),
        1 => any::<i64>(),
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            0.0,
            1.0,
            -1.0,
            0.5,
            9.2e18,
            9.3e18,
            -9.3e18,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NAN,
        ]),
        any::<f64>(),
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(extreme_usize(), 0..4)
}

fn ints() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(extreme_i64(), 0..4)
}

/// One call with extreme arguments, applied to one of the values made so far.
#[derive(Debug, Clone)]
enum Step {
    Reshape(Vec<i64>),
    Expand(Vec<i64>),
    Narrow(i64, i64, i64),
    Split(i64, i64),
    SplitSections(Vec<i64>, i64),
    Flatten(i64, i64),
    Mean(Vec<i64>),
    Cat(usize, i64),
    Stack(usize, i64),
    Unsqueeze(i64),
    Transpose(i64, i64),
    Zeros(Vec<usize>),
    Full(Vec<usize>),
    Arange(f64, f64, f64),
    ArangeInt(i64, i64, i64),
    MaskedFill(f64),
    Slice(Vec<i64>, Vec<i64>, Vec<i64>),
    Pad(Vec<(i64, i64, i64)>),
    BroadcastInDim(Vec<i64>, Vec<i64>),
    PrimReshape(Vec<i64>),
    Iota(i64),
    Matmul,
    AllGather(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let i = extreme_i64;
    prop_oneof![
        ints().prop_map(Step::Reshape),
        ints().prop_map(Step::Expand),
        (i(), i(), i()).prop_map(|(d, s, l)| Step::Narrow(d, s, l)),
        (i(), i()).prop_map(|(s, d)| Step::Split(s, d)),
        (ints(), i()).prop_map(|(s, d)| Step::SplitSections(s, d)),
        (i(), i()).prop_map(|(s, e)| Step::Flatten(s, e)),
        ints().prop_map(Step::Mean),
        (1usize..6, i()).prop_map(|(k, d)| Step::Cat(k, d)),
        (1usize..4, i()).prop_map(|(k, d)| Step::Stack(k, d)),
        i().prop_map(Step::Unsqueeze),
        (i(), i()).prop_map(|(a, b)| Step::Transpose(a, b)),
        shape().prop_map(Step::Zeros),
        shape().prop_map(Step::Full),
        (extreme_f64(), extreme_f64(), extreme_f64()).prop_map(|(a, b, c)| Step::Arange(a, b, c)),
        (i(), i(), i()).prop_map(|(a, b, c)| Step::ArangeInt(a, b, c)),
        extreme_f64().prop_map(Step::MaskedFill),
        (ints(), ints(), ints()).prop_map(|(a, b, c)| Step::Slice(a, b, c)),
        prop::collection::vec((i(), i(), i()), 0..4).prop_map(Step::Pad),
        (ints(), ints()).prop_map(|(s, d)| Step::BroadcastInDim(s, d)),
        ints().prop_map(Step::PrimReshape),
        i().prop_map(Step::Iota),
        Just(Step::Matmul),
        extreme_usize().prop_map(Step::AllGather),
    ]
}

/// The inputs every program starts from: an extreme float tensor, an extreme int tensor and a
/// bool mask of its shape, and a small float tensor so that something always exists.
fn inputs(b: &mut TraceBuilder, x: &[usize], i: &[usize]) -> (Vec<Value>, Option<(Value, Value)>) {
    let mut values = Vec::new();
    let small = TensorMeta::new(DType::F32, [2, 3]);
    values.push(b.input("s", small).expect("a small input is fine"));
    if let Ok(v) = b.input("x", TensorMeta::new(DType::F32, x.to_vec())) {
        values.push(v);
    }
    let int_and_mask = b
        .input("i", TensorMeta::new(DType::I64, i.to_vec()))
        .and_then(|iv| Ok((iv, b.input("m", TensorMeta::new(DType::Bool, i.to_vec()))?)))
        .ok();
    (values, int_and_mask)
}

fn prim(b: &mut TraceBuilder, op: PrimOp, a: Option<Value>, attrs: Vec<Attr>) -> StepResult {
    let args = a.map(|a| vec![Arg::Value(a)]).unwrap_or_default();
    b.prim(op, args, attrs).map(|v| vec![v])
}

type StepResult = thunder_ir::Result<Vec<Value>>;

fn apply(b: &mut TraceBuilder, step: &Step, a: Value, im: Option<(Value, Value)>) -> StepResult {
    let one = |r: thunder_ir::Result<Value>| r.map(|v| vec![v]);
    let cpu = Attr::Device(Device::Cpu);
    match step {
        Step::Reshape(s) => one(b.reshape(a, s)),
        Step::Expand(s) => one(b.expand(a, s)),
        Step::Narrow(d, s, l) => one(b.narrow(a, *d, *s, *l)),
        Step::Split(s, d) => b.split(a, *s, *d),
        Step::SplitSections(s, d) => b.split_sections(a, s, *d),
        Step::Flatten(s, e) => one(b.flatten(a, *s, *e)),
        Step::Mean(dims) => one(b.mean(a, dims, false)),
        Step::Cat(k, d) => one(b.cat(&vec![a; *k], *d)),
        Step::Stack(k, d) => one(b.stack(&vec![a; *k], *d)),
        Step::Unsqueeze(d) => one(b.unsqueeze(a, *d)),
        Step::Transpose(x, y) => one(b.transpose(a, *x, *y)),
        Step::Zeros(s) => one(b.zeros(s, DType::F32, Device::Cpu)),
        Step::Full(s) => one(b.full(s, 1.5, None, Device::Cpu)),
        Step::Arange(s, e, st) => one(b.arange(*s, *e, *st, None, Device::Cpu)),
        Step::ArangeInt(s, e, st) => one(b.arange(*s, *e, *st, None, Device::Cpu)),
        Step::MaskedFill(f) => match im {
            Some((i, m)) => one(b.masked_fill(i, m, *f)),
            None => Ok(vec![]),
        },
        Step::Slice(s, e, st) => {
            let attrs = vec![
                Attr::Ints(s.clone()),
                Attr::Ints(e.clone()),
                Attr::Ints(st.clone()),
            ];
            prim(b, PrimOp::Slice, Some(a), attrs)
        }
        Step::Pad(c) => {
            let config = c.iter().map(|&(l, h, i)| vec![l, h, i]).collect();
            let attrs = vec![Attr::Float(0.0), Attr::IntLists(config)];
            prim(b, PrimOp::Pad, Some(a), attrs)
        }
        Step::BroadcastInDim(s, d) => {
            let attrs = vec![Attr::Ints(s.clone()), Attr::Ints(d.clone())];
            prim(b, PrimOp::BroadcastInDim, Some(a), attrs)
        }
        Step::PrimReshape(s) => prim(b, PrimOp::Reshape, Some(a), vec![Attr::Ints(s.clone())]),
        Step::Iota(n) => {
            let attrs = vec![
                Attr::Int(*n),
                Attr::Int(0),
                Attr::Int(1),
                cpu,
                Attr::DType(DType::I64),
            ];
            prim(b, PrimOp::Iota, None, attrs)
        }
        Step::Matmul => one(b.matmul(a, a)),
        Step::AllGather(w) => one(b.all_gather(a, *w, false)),
    }
}

/// Errors from the builder are about the arguments, never internal.
fn check_builder_error(e: &IrError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            e,
            IrError::InvalidArgument { .. }
                | IrError::Overflow { .. }
                | IrError::Broadcast { .. }
                | IrError::Promotion { .. }
        ),
        "unexpected error kind: {e:?}"
    );
    prop_assert!(!e.to_string().contains("internal"), "{e}");
    Ok(())
}

/// What a successful call made is within range, as later arithmetic assumes.
fn check_made(b: &TraceBuilder, made: &[Value]) -> Result<(), TestCaseError> {
    for &v in made {
        if let Ok(t) = b.tensor(v) {
            prop_assert!(t.shape.checked_numel().is_some(), "{}", t.shape);
        }
    }
    Ok(())
}

fn round_trip(t: &Trace) -> Result<(), TestCaseError> {
    let text = t.to_python();
    let back = parse_trace(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    prop_assert_eq!(&back, t, "{}", text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_builder_takes_extreme_integers_without_panicking(
        x in shape(),
        i in shape(),
        steps in prop::collection::vec((any::<prop::sample::Index>(), step()), 1..8),
    ) {
        let mut b = TraceBuilder::new("f");
        let (mut values, int_and_mask) = inputs(&mut b, &x, &i);
        for (pick, step) in &steps {
            let a = values[pick.index(values.len())];
            match apply(&mut b, step, a, int_and_mask) {
                Ok(made) => {
                    check_made(&b, &made)?;
                    values.extend(made);
                }
                Err(e) => check_builder_error(&e)?,
            }
        }
        let last = values[values.len() - 1];
        let trace = b.build(&[last]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        round_trip(&trace)?;
    }

    #[test]
    fn the_parser_takes_extreme_integers_without_panicking(
        sizes in prop::collection::vec(extreme_usize(), 0..4),
        k in 0usize..TEMPLATES.len(),
        v in prop::collection::vec(extreme_i64(), 6),
    ) {
        let dims: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        let text = TEMPLATES[k]
            .replace("SIZES", &dims.join(", "))
            .replace("A", &v[0].to_string())
            .replace("B", &v[1].to_string())
            .replace("C", &v[2].to_string())
            .replace("D", &v[3].to_string())
            .replace("E", &v[4].to_string())
            .replace("F", &v[5].to_string());
        match parse_trace(&text) {
            Ok(t) => round_trip(&t)?,
            Err(e) => prop_assert!(matches!(e, IrError::Parse { .. }), "{e:?}"),
        }
    }
}

/// Statements with integers to fill in (`A`..`F`, and `SIZES` in the input's annotation).
const TEMPLATES: &[&str] = &[
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.reshape(x, shape=[A, B])\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.expand(x, shape=[A, B, C])\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.narrow(x, dim=A, start=B, length=C)\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = prims.slice(x, start_indices=[A, B], end_indices=[C, D], strides=[E, F])\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = prims.pad(x, padding_value=0.0, padding_config=[[A, B, C], [D, E, F]])\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = prims.broadcast_in_dim(x, shape=[A, B, C], broadcast_dimensions=[D, E])\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = prims.full(shape=[A, B], fill_value=1.0, device=\"cpu\", dtype=dtypes.float32)\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = prims.iota(length=A, start=B, step=C, device=\"cpu\", dtype=dtypes.int64)\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.cat([x, x, x, x], dim=A)\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0, t1 = ltorch.split(x, split_size_or_sections=[A, B], dim=C)\n  return t0, t1\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.arange(start=A, end=B, step=C, dtype=None, device=\"cpu\")\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = dist.all_gather(x, world_size=A, async_op=False)\n  return t0\n",
    "def f(x):\n  # x: \"cpu f32[SIZES]\"\n  t0 = ltorch.reshape(x, shape=[-A, --B, - -C])\n  return t0\n",
];

// -------------------------------------------------------------------------------------------
// Each place that computed with unchecked integers, once, with the error it gives now.

fn builder_with(shape: &[usize]) -> (TraceBuilder, Value) {
    let mut b = TraceBuilder::new("f");
    let x = b
        .input("x", TensorMeta::new(DType::F32, shape.to_vec()))
        .expect("input");
    (b, x)
}

fn overflow_in(r: thunder_ir::Result<impl std::fmt::Debug>, op: &str) -> String {
    match r {
        Err(IrError::Overflow { op: o, message }) if o == op => message,
        other => panic!("expected an overflow error of {op}, got {other:?}"),
    }
}

#[test]
fn inputs_whose_element_count_exceeds_i64_are_refused() {
    let mut b = TraceBuilder::new("f");
    let m = overflow_in(
        b.input("x", TensorMeta::new(DType::F32, [usize::MAX, 2])),
        "TraceBuilder",
    );
    assert!(m.starts_with("input x of shape [18446744073709551615, 2]: its sizes multiply to more than 9223372036854775807"), "{m}");
    // A 0 dim does not excuse the other sizes: products of some of them would still overflow.
    assert!(b
        .input("y", TensorMeta::new(DType::F32, [0, 1 << 32, 1 << 32]))
        .is_err());
    assert!(b
        .input("z", TensorMeta::new(DType::F32, [0, I64_MAX]))
        .is_ok());
    assert!(b
        .input("w", TensorMeta::new(DType::F32, [I64_MAX + 1]))
        .is_err());
}

#[test]
fn sums_and_products_of_sizes_are_checked() {
    let (mut b, x) = builder_with(&[1 << 62]);
    // 4 * 2^62 wraps usize to 0; 3 * 2^62 exceeds i64.
    let m = overflow_in(b.cat(&[x, x, x, x], 0), "ltorch.cat");
    assert!(m.contains("add up to more than"), "{m}");
    overflow_in(b.cat(&[x, x, x], 0), "ltorch.cat");
    let shape = vec![Attr::Ints(vec![i64::MAX, 4])];
    overflow_in(
        b.prim(PrimOp::Reshape, vec![x.into()], shape),
        "prims.reshape",
    );
    // The torch-level reshape checks its product already (the request cannot match).
    assert!(b.reshape(x, &[i64::MAX, 4]).is_err());
    overflow_in(b.all_gather(x, 1 << 40, false), "dist.all_gather");
    let (mut b, x) = builder_with(&[1 << 40, 1]);
    let w = b
        .input("w", TensorMeta::new(DType::F32, [1, 1 << 40]))
        .expect("input");
    overflow_in(b.matmul(x, w), "ltorch.matmul");
    overflow_in(b.expand(x, &[1 << 40, 1 << 40]), "prims.broadcast_in_dim");
    overflow_in(
        b.zeros(&[usize::MAX], DType::F32, Device::Cpu),
        "ltorch.zeros",
    );
    overflow_in(b.all_gather(x, usize::MAX, false), "dist.all_gather");
}

#[test]
fn slices_pads_and_narrows_with_extreme_arguments() {
    let (mut b, x) = builder_with(&[5]);
    // (end - start + stride - 1) / stride overflowed for a large stride.
    let attrs = vec![
        Attr::Ints(vec![0]),
        Attr::Ints(vec![5]),
        Attr::Ints(vec![i64::MAX]),
    ];
    let y = b
        .prim(PrimOp::Slice, vec![x.into()], attrs)
        .expect("one element");
    assert_eq!(b.tensor(y).expect("tensor").shape.sizes(), vec![1]);
    // start + length overflowed.
    let e = b.narrow(x, 0, 1, i64::MAX).unwrap_err();
    assert!(e.to_string().contains("exceeds dim 0 of size 5"), "{e}");
    // low + high + size + (size - 1) * interior overflowed.
    let pad = |b: &mut TraceBuilder, c: Vec<i64>| {
        let attrs = vec![Attr::Float(0.0), Attr::IntLists(vec![c])];
        b.prim(PrimOp::Pad, vec![x.into()], attrs)
    };
    overflow_in(pad(&mut b, vec![i64::MAX, 1, 0]), "prims.pad");
    overflow_in(pad(&mut b, vec![0, 0, i64::MAX]), "prims.pad");
    // A negative low padding may cancel a high one that alone would not fit.
    let y = pad(&mut b, vec![-(1 << 62), 1 << 62, 0]).expect("size 5");
    assert_eq!(b.tensor(y).expect("tensor").shape.sizes(), vec![5]);
}

#[test]
fn splits_are_counted_before_they_are_made() {
    let (mut b, x) = builder_with(&[1 << 40]);
    // Split size 1 asked for 2^40 slices (8 TiB of sections before the first was made).
    let e = b.split(x, 1, 0).unwrap_err();
    assert!(e.to_string().contains("more than the 65536"), "{e}");
    // The sections' sum overflowed.
    let e = b
        .split_sections(x, &[i64::MAX, i64::MAX, 2], 0)
        .unwrap_err();
    assert!(
        e.to_string().contains("must be non-negative and sum to"),
        "{e}"
    );
}

#[test]
fn floats_that_do_not_fit_an_integer_are_refused() {
    let mut b = TraceBuilder::new("f");
    overflow_in(
        b.arange(0.0, 1e300, 1.0, None, Device::Cpu),
        "ltorch.arange",
    );
    let i = b
        .input("i", TensorMeta::new(DType::I64, [2]))
        .expect("input");
    let m = b
        .input("m", TensorMeta::new(DType::Bool, [2]))
        .expect("input");
    for f in [1e300, -1e300, f64::NAN, f64::INFINITY, 9.3e18] {
        overflow_in(b.masked_fill(i, m, f), "ltorch.masked_fill");
    }
    b.masked_fill(i, m, -9.2e18).expect("fits");
}

#[test]
fn the_parser_refuses_sizes_beyond_i64() {
    let text = "def f(x):\n  # x: \"cpu f32[18446744073709551615, 2]\"\n  return x\n";
    match parse_trace(text) {
        Err(IrError::Parse { line, message, .. }) => {
            assert_eq!(line, 2);
            assert!(message.contains("integer overflow"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    // -(i64::MIN) does not fit.
    let text = "def f(x):\n  # x: \"cpu f32[2]\"\n  t0 = ltorch.narrow(x, dim=0, start=- -9223372036854775808, length=1)\n  return t0\n";
    let e = parse_trace(text).unwrap_err();
    assert!(e.to_string().contains("does not fit in int64"), "{e}");
}

#[test]
fn i64_min_reads_back() {
    let mut b = TraceBuilder::new("f");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [3, 4]))
        .expect("input");
    let t = b
        .input("t", TensorMeta::new(DType::I64, [3]))
        .expect("input");
    let y = b.cross_entropy_with(x, t, i64::MIN, "sum").expect("builds");
    let trace = b.build(&[y]).expect("builds");
    let text = trace.to_python();
    assert!(text.contains("ignore_index=-9223372036854775808"), "{text}");
    assert_eq!(parse_trace(&text).expect("parses"), trace);
}

#[test]
fn programs_refuse_dims_they_cannot_build() {
    let bad = [
        LlamaDims {
            heads: 0,
            ..LlamaDims::tiny()
        },
        LlamaDims {
            kv_heads: 0,
            ..LlamaDims::tiny()
        },
        LlamaDims {
            hidden: usize::MAX,
            heads: 1,
            ..LlamaDims::tiny()
        },
        LlamaDims {
            kv_heads: usize::MAX,
            ..LlamaDims::tiny()
        },
    ];
    for d in &bad {
        assert!(programs::llama_attention(d).is_err(), "{d:?}");
        assert!(programs::llama_block(d).is_err(), "{d:?}");
        assert!(programs::llama_mlp(d).is_err(), "{d:?}");
        assert!(programs::lm_head_loss(d).is_err(), "{d:?}");
    }
    let mut b = TraceBuilder::new("f");
    let s = b
        .input("s", TensorMeta::new(DType::F32, Vec::<usize>::new()))
        .expect("input");
    assert!(programs::apply_rope(&mut b, s, s, s).is_err());
}
