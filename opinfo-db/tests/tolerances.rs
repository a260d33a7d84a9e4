//! Comparisons take the tolerance of the compared value's dtype, not of the sample's: atan2 of
//! int64 inputs gives float32, and a result one ulp off (a batched kernel against the
//! per-sample one, on a CPU whose SIMD width makes libtorch pick another kernel) must pass by
//! the float32 rule. This failed every run of the vmap survey on an AMD EPYC host without
//! AVX-512 when the int64 samples were compared exactly (issue 20).

use opinfo_db::conformance::{compared_dtype, excess_over_tolerance};
use opinfo_db::{OpDb, Tolerance};
use tch::{Kind, Tensor};
use thunder_executors::RtValue;
use thunder_ir::{DType, Device};

fn first_sample(db: &OpDb, op: &str, dtype: DType) -> opinfo_db::Sample {
    let entry = db.by_name(op).expect("in the database");
    entry
        .samples(Device::Cpu, dtype, 1)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{op} has a {dtype} sample"))
}

#[test]
fn a_float_result_of_integer_inputs_is_compared_as_a_float() {
    let db = OpDb::builtin().expect("loads");
    let sample = first_sample(&db, "ltorch.atan2", DType::I64);
    assert_eq!(sample.dtype, DType::I64);
    let trace = sample.build_trace().expect("builds");
    let dtype = compared_dtype(trace.ty(trace.outputs[0]), &trace);
    assert_eq!(dtype, DType::F32, "atan2 of int64 gives float32");
    let entry = db.by_name("ltorch.atan2").expect("in the database");
    let tol = entry.tolerance(dtype);
    assert_eq!(tol, Tolerance::default_for(DType::F32));

    // The case seen: 2.384e-7 apart (one float32 ulp at 2.0).
    let want = Tensor::from_slice(&[2.0f32, -1.25, 0.5]);
    let one_ulp = Tensor::from_slice(&[2.0f32 + 2.384e-7, -1.25, 0.5]);
    let (excess, maxd) = excess_over_tolerance(
        tol,
        1.0,
        &RtValue::Tensor(one_ulp),
        &RtValue::Tensor(want.shallow_clone()),
    )
    .unwrap();
    assert!(
        maxd > 0.0 && excess == 0.0,
        "one ulp passes ({maxd:e}, {excess:e})"
    );
    // ... and a real difference does not.
    let off = Tensor::from_slice(&[2.001f32, -1.25, 0.5]);
    let (excess, _) =
        excess_over_tolerance(tol, 1.0, &RtValue::Tensor(off), &RtValue::Tensor(want)).unwrap();
    assert!(excess > 0.0, "1e-3 off fails");
}

#[test]
fn integer_and_bool_results_are_compared_exactly() {
    let db = OpDb::builtin().expect("loads");
    for op in ["ltorch.add", "ltorch.eq"] {
        let sample = first_sample(&db, op, DType::I64);
        let trace = sample.build_trace().expect("builds");
        let dtype = compared_dtype(trace.ty(trace.outputs[0]), &trace);
        assert!(!dtype.is_float(), "{op}: {dtype}");
        let tol = db.by_name(op).unwrap().tolerance(dtype);
        let want = Tensor::from_slice(&[3i64, 4]);
        let got = &want + Tensor::from_slice(&[1i64, 0]);
        let (excess, _) = excess_over_tolerance(
            tol,
            10.0,
            &RtValue::Tensor(got.to_kind(Kind::Int64)),
            &RtValue::Tensor(want),
        )
        .unwrap();
        assert!(excess > 0.0, "{op}: an int64 result one off fails");
    }
}
