//! Collective ops: meta functions, errors, printing and parsing, and the verifier's rules for
//! the handles of asynchronous collectives.

use thunder_ir::{parse_trace, DType, Device, TensorMeta, Trace, TraceBuilder, Value};

fn input(b: &mut TraceBuilder, name: &str, shape: &[usize]) -> Value {
    b.input(
        name,
        TensorMeta::new(DType::BF16, shape.to_vec()).on(Device::Cuda(0)),
    )
    .unwrap()
}

fn shape(t: &Trace, v: Value) -> Vec<usize> {
    t.tensor(v).unwrap().shape.sizes()
}

#[test]
fn collectives_compute_the_shapes_nccl_produces_and_round_trip_through_text() {
    let mut b = TraceBuilder::new("step");
    let shard = input(&mut b, "shard", &[3, 8]);
    let grad = input(&mut b, "grad", &[12, 8]);
    let full = b.all_gather(shard, 4, false).unwrap();
    let h = b.reduce_scatter(grad, "sum", 4, true).unwrap();
    let g_shard = b.wait(h).unwrap();
    let r = b.all_reduce(full, "avg", 4, false).unwrap();
    let bc = b.broadcast(r, 3, 4, false).unwrap();
    let t = b.build(&[bc, g_shard]).unwrap();
    assert_eq!(shape(&t, t.outputs[0]), [12, 8]);
    assert_eq!(shape(&t, t.outputs[1]), [3, 8]);
    let text = t.to_python();
    assert!(
        text.contains("import thunder.distributed.prims as dist"),
        "{text}"
    );
    assert!(
        text.contains("dist.reduce_scatter(grad, op=\"sum\", world_size=4, async_op=True)"),
        "{text}"
    );
    assert!(text.contains("dist.wait("), "{text}");
    let back = parse_trace(&text).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.to_python(), text);
    // Traces without collectives keep the old header.
    let mut b = TraceBuilder::new("f");
    let x = input(&mut b, "x", &[2]);
    let y = b.neg(x).unwrap();
    assert!(!b.build(&[y]).unwrap().to_python().contains("distributed"));
}

#[test]
fn bad_collectives_are_rejected_with_what_to_change() {
    let mut b = TraceBuilder::new("f");
    let x = input(&mut b, "x", &[6, 2]);
    let s = b
        .input("s", TensorMeta::new(DType::F32, Vec::<usize>::new()))
        .unwrap();
    let cases: Vec<(thunder_ir::Result<Value>, &str)> = vec![
        (
            b.reduce_scatter(x, "sum", 4, false),
            "dim 0 must divide by world_size=4 (pad it first)",
        ),
        (
            b.all_reduce(x, "prod", 2, false),
            "op=\"prod\" is not one of sum, avg, max, min",
        ),
        (
            b.all_reduce(x, "sum", 0, false),
            "world_size=0 must be at least 1",
        ),
        (
            b.broadcast(x, 2, 2, false),
            "root=2 is not a rank of a world of 2",
        ),
        (b.all_gather(s, 2, false), "a is a scalar"),
    ];
    for (r, want) in cases {
        let e = r.unwrap_err().to_string();
        assert!(e.contains(want), "{e} should say {want}");
        assert!(e.contains("dist."), "{e} should name the op");
    }
}

#[test]
fn the_handle_of_an_async_collective_goes_to_exactly_one_wait() {
    let ok = "\
def f(x):
  # x: \"cuda:0 f32[4]\"
  t0 = dist.all_reduce(x, op=\"sum\", world_size=2, async_op=True)  # t0: \"cuda:0 f32[4]\"
  t1 = dist.wait(t0)  # t1: \"cuda:0 f32[4]\"
  return (t1,)
";
    parse_trace(ok).unwrap();
    let read_early = ok.replace(
        "  t1 = dist.wait(t0)",
        "  t2 = prims.neg(t0)  # t2: \"cuda:0 f32[4]\"\n  t1 = dist.wait(t0)",
    );
    let e = parse_trace(&read_early).unwrap_err().to_string();
    assert!(e.contains("only dist.wait may read it"), "{e}");
    let returned = ok.replace("return (t1,)", "return (t1, t0)");
    let e = parse_trace(&returned).unwrap_err().to_string();
    assert!(e.contains("is returned; return its dist.wait"), "{e}");
    let never_waited = ok
        .replace("  t1 = dist.wait(t0)  # t1: \"cuda:0 f32[4]\"\n", "")
        .replace("return (t1,)", "return (x,)");
    let e = parse_trace(&never_waited).unwrap_err().to_string();
    assert!(e.contains("exactly one dist.wait, it goes to 0"), "{e}");
    // A synchronous collective's result is an ordinary tensor.
    let sync = ok
        .replace("async_op=True", "async_op=False")
        .replace("dist.wait(t0)", "prims.neg(t0)");
    parse_trace(&sync).unwrap();
}
