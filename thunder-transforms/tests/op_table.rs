//! The op table (thunder-ir's `op.info()`) against the transforms, on every op's samples from
//! opinfo-db: a prim's `vjp` is whether grad has a rule for it (and only ops the database calls
//! differentiable, as PyTorch does, have one), a torch-level op marked `grad(WHOLE)` has a
//! whole-op rule that grad uses on its samples (and no other op is kept whole), and autocast
//! casts each op's operands as its row's `autocast` says (the rows follow torch.autocast's CUDA
//! lists). A row that lies about a rule fails here.

use opinfo_db::conformance::SEED;
use opinfo_db::{DeviceKind, OpDb, OpEntry};
use thunder_ir::ops::info::{Autocast, TorchGrad};
use thunder_ir::{DType, Device, Op, Trace, Value};
use thunder_transforms::{autocast, grad, TransformError};

/// The one-op traces of `entry`'s samples on the CPU in `dtype` (those that build and call the
/// op: a sample that is the identity, a reshape to the same shape, records no call).
fn traces(entry: &OpEntry, dtype: DType) -> Vec<Trace> {
    entry
        .samples(Device::Cpu, dtype, SEED)
        .iter()
        .filter_map(|s| s.build_trace().ok())
        .filter(|tr| tr.bound_symbols.first().is_some_and(|b| b.op == entry.op))
        .collect()
}

/// The trace's floating tensor inputs.
fn float_inputs(tr: &Trace) -> Vec<Value> {
    tr.inputs
        .iter()
        .copied()
        .filter(|&v| tr.tensor(v).is_some_and(|t| t.dtype.is_float()))
        .collect()
}

/// Whether some output of `tr` is a floating tensor (something to differentiate).
fn float_output(tr: &Trace) -> bool {
    tr.outputs
        .iter()
        .any(|&v| tr.tensor(v).is_some_and(|t| t.dtype.is_float()))
}

/// The entry's dtype for these checks: float32 where listed, else its first CPU dtype.
fn dtype_of(entry: &OpEntry) -> Option<DType> {
    let dtypes = entry.dtypes(DeviceKind::Cpu);
    if dtypes.contains(&DType::F32) {
        Some(DType::F32)
    } else {
        dtypes.first().copied()
    }
}

#[test]
fn a_prims_vjp_flag_is_whether_grad_has_a_rule() {
    let db = OpDb::builtin().expect("loads");
    let (mut with_rule, mut without) = (0, 0);
    for entry in db.entries() {
        let Op::Prim(p) = entry.op else { continue };
        let vjp = p.info().vjp;
        // The database says what PyTorch differentiates; the row says what thunder has a rule
        // for. A rule for an op PyTorch does not differentiate is a lie; the other way round is
        // a gap (prims.real and prims.imag: grad refuses complex values), which the coverage
        // report lists.
        assert!(
            entry.differentiable || !vjp,
            "{}: the op table's row says vjp, opinfo-db says it is not differentiable",
            entry.name
        );
        let Some(dtype) = dtype_of(entry) else {
            continue;
        };
        for tr in traces(entry, dtype) {
            let wrt = float_inputs(&tr);
            if wrt.is_empty() || !float_output(&tr) {
                continue;
            }
            match grad(&tr, &wrt) {
                Ok(_) => assert!(
                    vjp,
                    "{}: grad has a rule but the row says no vjp",
                    entry.name
                ),
                Err(TransformError::NoRule { .. }) => {
                    assert!(
                        !vjp,
                        "{}: the row says vjp but grad has no rule",
                        entry.name
                    )
                }
                Err(e) => panic!("{}: grad failed: {e}", entry.name),
            }
            if vjp {
                with_rule += 1;
            } else {
                without += 1;
            }
        }
    }
    assert!(
        with_rule >= 200,
        "only {with_rule} samples of prims with a rule"
    );
    assert!(
        without >= 1,
        "no sample of a prim without a rule (copy_) was tried"
    );
}

#[test]
fn a_torch_ops_grad_whole_flag_is_whether_grad_keeps_it_whole() {
    let db = OpDb::builtin().expect("loads");
    let mut whole = Vec::new();
    for entry in db.entries() {
        let Op::Torch(t) = entry.op else { continue };
        if !entry.differentiable {
            continue;
        }
        let marked = t.info().grad == TorchGrad::Whole;
        let mut kept_any = false;
        for tr in traces(entry, DType::F32) {
            let wrt = float_inputs(&tr);
            if wrt.is_empty() || !float_output(&tr) {
                continue;
            }
            let g = grad(&tr, &wrt).unwrap_or_else(|e| panic!("{}: grad failed: {e}", entry.name));
            let kept = g.bound_symbols.iter().any(|b| b.op == entry.op);
            assert!(
                marked || !kept,
                "{}: grad kept the op whole but its row says grad through the decomposition",
                entry.name
            );
            kept_any |= kept;
        }
        // A rule may decline a call (attention with dropout), never every sample.
        assert_eq!(
            kept_any, marked,
            "{}: the row says grad(WHOLE) = {marked}, grad kept it whole on some sample: {kept_any}",
            entry.name
        );
        if marked {
            whole.push(entry.name.clone());
        }
    }
    assert!(whole.len() >= 6, "ops kept whole: {whole:?}");
}

#[test]
fn autocast_treats_each_op_as_its_row_says() {
    let db = OpDb::builtin().expect("loads");
    let mut checked = [0usize; 3];
    for entry in db.entries() {
        let Some(info) = entry.op.info() else {
            continue;
        };
        // Lower precision: float32 operands become bfloat16. Float32: bfloat16 operands become
        // float32. Follow: the operands stay as they are, whichever of the two they are.
        let (from, to) = match info.autocast {
            Autocast::LowerPrecision => (DType::F32, DType::BF16),
            Autocast::Float32 => (DType::BF16, DType::F32),
            Autocast::Follow => (DType::BF16, DType::BF16),
        };
        for tr in traces(entry, from) {
            let ins = float_inputs(&tr);
            if ins.is_empty() || ins.iter().any(|&v| tr.tensor(v).unwrap().dtype != from) {
                continue;
            }
            let Ok(out) = autocast(&tr, DType::BF16) else {
                continue;
            };
            let call = out
                .bound_symbols
                .iter()
                .find(|b| b.op == entry.op)
                .unwrap_or_else(|| panic!("{}: autocast dropped the op", entry.name));
            for v in call.inputs() {
                let Some(t) = out.tensor(v) else { continue };
                if t.dtype.is_float() {
                    assert_eq!(
                        t.dtype, to,
                        "{}: autocast gave it a {} operand, its row says {:?}",
                        entry.name, t.dtype, info.autocast
                    );
                }
            }
            checked[info.autocast as usize] += 1;
        }
    }
    assert!(
        checked.iter().all(|&n| n >= 4),
        "samples checked (follow, lower, float32): {checked:?}"
    );
}
