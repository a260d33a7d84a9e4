//! Printer/parser round trip over random traces: print, parse, and get the same trace back
//! (and the same text when printed again).

use proptest::prelude::*;
use thunder_ir::ops::prims::PrimOp;
use thunder_ir::{
    parse_trace, Arg, Attr, DType, Device, SdpaOptions, TensorMeta, TorchOp, Trace, TraceBuilder,
    Value,
};

const DTYPES: [DType; 5] = [DType::F32, DType::BF16, DType::I64, DType::Bool, DType::F64];
const SHAPES: [&[usize]; 6] = [&[2, 3], &[3], &[], &[2, 1, 3], &[1, 4, 2, 3], &[0, 3]];
const FLOATS: [f64; 7] = [
    0.5,
    -2.0,
    1e-6,
    3.0e20,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
];

/// One step of a random program: an op selector and a few numbers it interprets.
#[derive(Debug, Clone)]
struct Step {
    op: u8,
    a: usize,
    b: usize,
    k: i64,
    f: usize,
}

fn step() -> impl Strategy<Value = Step> {
    (
        any::<u8>(),
        any::<usize>(),
        any::<usize>(),
        -3i64..4,
        0usize..FLOATS.len(),
    )
        .prop_map(|(op, a, b, k, f)| Step { op, a, b, k, f })
}

fn program() -> impl Strategy<Value = (Vec<(usize, usize, bool)>, Vec<Step>)> {
    (
        prop::collection::vec((0..DTYPES.len(), 0..SHAPES.len(), any::<bool>()), 1..4),
        prop::collection::vec(step(), 1..40),
    )
}

/// Runs the steps; a step whose op rejects its random operands is skipped (the builder is
/// unchanged by a failed call), so every trace built is valid.
fn build(inputs: &[(usize, usize, bool)], steps: &[Step]) -> Trace {
    let mut b = TraceBuilder::new("random_program");
    let mut pool: Vec<Value> = Vec::new();
    for (i, &(d, s, rg)) in inputs.iter().enumerate() {
        let dev = if i == 2 { Device::Cuda(1) } else { Device::Cpu };
        let meta = TensorMeta::new(DTYPES[d], SHAPES[s].to_vec())
            .on(dev)
            .with_grad(rg && DTYPES[d].is_float());
        pool.push(b.input(&format!("in{i}"), meta).expect("input"));
    }
    for s in steps {
        let x = pool[s.a % pool.len()];
        let y = pool[s.b % pool.len()];
        let fl = FLOATS[s.f];
        let k = s.k;
        let unary = [
            TorchOp::Exp,
            TorchOp::Neg,
            TorchOp::Abs,
            TorchOp::Sigmoid,
            TorchOp::Relu,
            TorchOp::Silu,
            TorchOp::Log,
            TorchOp::Floor,
            TorchOp::IsFinite,
            TorchOp::LogicalNot,
        ];
        let binary = [
            TorchOp::Add,
            TorchOp::Sub,
            TorchOp::Mul,
            TorchOp::Div,
            TorchOp::Eq,
            TorchOp::Lt,
            TorchOp::Maximum,
            TorchOp::Pow,
            TorchOp::BitwiseAnd,
        ];
        let r: Result<Vec<Value>, _> = match s.op % 30 {
            0 => b.unary(unary[s.b % unary.len()], x).map(|v| vec![v]),
            1 => b.binary(binary[s.f % binary.len()], x, y).map(|v| vec![v]),
            2 => b.binary(binary[s.a % binary.len()], x, fl).map(|v| vec![v]),
            3 => b.binary(binary[s.b % binary.len()], k, x).map(|v| vec![v]),
            4 => b.sum(x, &[k], k > 0).map(|v| vec![v]),
            5 => b.mean(x, &[], k % 2 == 0).map(|v| vec![v]),
            6 => b.amax(x, &[k], true).map(|v| vec![v]),
            7 => b.var(x, &[k], 1.0, false).map(|v| vec![v]),
            8 => b
                .argmax(x, if k < 0 { None } else { Some(k) }, k == 1)
                .map(|v| vec![v]),
            9 => b.softmax(x, k).map(|v| vec![v]),
            10 => b.log_softmax(x, k).map(|v| vec![v]),
            11 => b.reshape(x, &[-1]).map(|v| vec![v]),
            12 => b.transpose(x, k, 0).map(|v| vec![v]),
            13 => b.unsqueeze(x, k).map(|v| vec![v]),
            14 => b.squeeze(x, None).map(|v| vec![v]),
            15 => b.flatten(x, 0, k).map(|v| vec![v]),
            16 => b.split(x, k.max(1), 0),
            17 => b.narrow(x, 0, 0, k.max(0)).map(|v| vec![v]),
            18 => b.cat(&[x, y], k).map(|v| vec![v]),
            19 => b.to_dtype(x, DTYPES[s.b % DTYPES.len()]).map(|v| vec![v]),
            20 => b.matmul(x, y).map(|v| vec![v]),
            21 => b.where_(x, y, fl).map(|v| vec![v]),
            22 => b.full(&[2, 3], fl, None, Device::Cpu).map(|v| vec![v]),
            23 => b
                .arange(0, k + 3, 1, None, Device::Cuda(1))
                .map(|v| vec![v]),
            24 => b.dropout(x, 0.25, true).map(|v| vec![v]),
            25 => {
                let last = b
                    .tensor(x)
                    .map(|t| t.shape.sizes().last().copied().unwrap_or(0))
                    .unwrap_or(0);
                if k > 0 {
                    b.rms_norm(x, &[last], None, None).map(|v| vec![v])
                } else {
                    b.layer_norm(x, &[last], None, None, 1e-5).map(|v| vec![v])
                }
            }
            26 => b
                .scaled_dot_product_attention(
                    x,
                    x,
                    x,
                    &SdpaOptions {
                        is_causal: k > 0,
                        ..Default::default()
                    },
                )
                .map(|v| vec![v]),
            27 => b
                .prim(
                    PrimOp::ConvertElementType,
                    vec![x.into()],
                    vec![Attr::DType(DTYPES[s.f % DTYPES.len()])],
                )
                .map(|v| vec![v]),
            28 => b
                .prim(PrimOp::Mul, vec![x.into(), Arg::Float(fl)], vec![])
                .map(|v| vec![v]),
            _ => b
                .gelu(x, if k > 0 { "tanh" } else { "none" })
                .map(|v| vec![v]),
        };
        if let Ok(vs) = r {
            pool.extend(vs);
        }
    }
    let outs: Vec<Value> = pool.iter().rev().take(2).copied().collect();
    b.build(&outs)
        .expect("a trace made of successful calls verifies")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_gives_the_same_trace((inputs, steps) in program()) {
        let trace = build(&inputs, &steps);
        let text = trace.to_python();
        let back = parse_trace(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &trace, "{}", text);
        prop_assert_eq!(back.to_python(), text);
    }
}

#[test]
fn random_programs_are_not_trivial() {
    // The generator must exercise decompositions, not only fail every step.
    let steps: Vec<Step> = (0..30)
        .map(|i| Step {
            op: i as u8,
            a: i,
            b: i * 7,
            k: (i % 4) as i64 - 1,
            f: i % FLOATS.len(),
        })
        .collect();
    let t = build(&[(0, 0, true), (1, 3, false), (2, 1, false)], &steps);
    assert!(
        t.bound_symbols.len() >= 15,
        "only {} statements:\n{}",
        t.bound_symbols.len(),
        t.to_python()
    );
    assert!(t.walk().len() > t.bound_symbols.len() * 2);
    assert_eq!(parse_trace(&t.to_python()).expect("parses"), t);
}

/// Damaged trace text is reported as an error, never a panic: the parser reads files.
mod damaged_text {
    use super::*;

    fn golden() -> String {
        let d = thunder_ir::programs::LlamaDims {
            dtype: DType::BF16,
            device: Device::Cuda(0),
            ..thunder_ir::programs::LlamaDims::tiny()
        };
        thunder_ir::programs::lm_head_loss(&d)
            .expect("builds")
            .to_python()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn mutated_text_parses_or_errors(edits in prop::collection::vec((any::<usize>(), 0u8..4, any::<char>()), 1..6)) {
            let mut text: Vec<char> = golden().chars().collect();
            for (pos, kind, c) in edits {
                let i = pos % (text.len() + 1);
                match kind {
                    0 if i < text.len() => { text.remove(i); }
                    1 => text.insert(i, c),
                    2 if i < text.len() => text[i] = c,
                    _ => text.truncate(i),
                }
            }
            let s: String = text.into_iter().collect();
            // Either outcome is fine; a panic fails the test.
            if let Ok(t) = parse_trace(&s) {
                prop_assert!(t.verify().is_ok());
            }
        }

        #[test]
        fn arbitrary_text_parses_or_errors(s in "(def f\\(x\\):\n)?[ -~\n]{0,200}") {
            let _ = parse_trace(&s);
        }
    }
}
