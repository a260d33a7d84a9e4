//! jvp and vmap of a trace with a collective: a typed error naming the collective (they used to
//! skip it, leaving its outputs undefined: "unknown value v2: it was not created by this trace
//! builder", which names nothing the user wrote).

use thunder_ir::{DType, TensorMeta, TraceBuilder};
use thunder_transforms::{jvp, vmap, TransformError};

#[test]
fn jvp_and_vmap_refuse_a_collective_with_a_typed_error() {
    let mut b = TraceBuilder::new("f");
    let x = b.input("x", TensorMeta::new(DType::F32, [4])).unwrap();
    let y = b.exp(x).unwrap();
    let r = b.all_reduce(y, "sum", 2, false).unwrap();
    let z = b.mul(r, 2.0).unwrap();
    let t = b.build(&[z]).unwrap();
    for e in [
        jvp(&t, &[t.inputs[0]]).unwrap_err(),
        vmap(&t, &[Some(0)], 3).unwrap_err(),
    ] {
        match &e {
            TransformError::NoRule { op, reason, .. } => {
                assert_eq!(op, "dist.all_reduce");
                assert!(reason.contains("collectives are not transformed"), "{e}");
            }
            other => panic!("expected NoRule, got {other}"),
        }
    }
}
