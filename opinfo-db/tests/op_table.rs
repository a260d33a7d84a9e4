//! The op table (thunder-ir's `op.info()`) against the executors, on every op's samples: an op
//! marked `direct` has samples the torch executor claims whole and compiles (so the conformance
//! suite runs its libtorch kernel), and a prim marked `fuse` has samples the fusion executor
//! takes (whose kernels `tests/fusion_codegen.rs` compiles) while no other prim is taken. The grad
//! and autocast properties are checked against the transforms in thunder-transforms'
//! `tests/op_table.rs`.

use opinfo_db::conformance::SEED;
use opinfo_db::OpDb;
use thunder_executors::{Executor, TorchExecutor};
use thunder_ir::{DType, Device, Op, Trace};

/// The traces of an entry's samples on `device`, in float32 where the entry takes it and else in
/// its first listed dtype.
fn traces(entry: &opinfo_db::OpEntry, device: Device) -> Vec<Trace> {
    let kind = opinfo_db::DeviceKind::of(device);
    let dtypes = entry.dtypes(kind);
    let dtype = if dtypes.contains(&DType::F32) {
        DType::F32
    } else {
        match dtypes.first() {
            Some(&d) => d,
            None => return Vec::new(),
        }
    };
    entry
        .samples(device, dtype, SEED)
        .iter()
        .filter_map(|s| s.build_trace().ok())
        // A sample that is the identity (a reshape to the same shape) records no call.
        .filter(|tr| tr.bound_symbols.first().is_some_and(|b| b.op == entry.op))
        .collect()
}

#[test]
fn every_op_marked_direct_has_a_torch_executor_kernel() {
    let db = OpDb::builtin().expect("loads");
    let ex = TorchExecutor::new();
    let mut checked = 0;
    for entry in db.entries() {
        let Op::Torch(t) = entry.op else { continue };
        let claims_whole = |tr: &Trace| ex.claims(tr, &tr.bound_symbols[0]);
        for tr in traces(entry, Device::Cpu) {
            assert_eq!(
                claims_whole(&tr),
                t.info().direct,
                "{}: the torch executor's claim disagrees with the row's `direct`",
                entry.name
            );
            if t.info().direct {
                if let Err(e) = ex.compile(&tr, &tr.bound_symbols[0]) {
                    panic!(
                        "{} is marked `direct` but the torch executor has no kernel for it: {e}",
                        entry.name
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} samples of direct ops checked"
    );
}

#[test]
fn a_prims_fuse_flag_is_what_the_fusion_executor_takes() {
    use thunder_executors::fusion::fusible;
    let db = OpDb::builtin().expect("loads");
    let cuda = Device::Cuda(0);
    let (mut fused, mut refused) = (0, 0);
    for entry in db.entries() {
        let Op::Prim(p) = entry.op else { continue };
        // Fusion works on traces of CUDA tensors; building them needs no GPU.
        let traces = traces(entry, cuda);
        let takes = traces
            .iter()
            .filter(|tr| fusible(tr, &tr.bound_symbols[0]))
            .count();
        if p.info().fusible {
            assert!(
                takes > 0 || traces.is_empty(),
                "{} is marked `fuse` but the fusion executor takes none of its {} samples",
                entry.name,
                traces.len()
            );
            fused += 1;
        } else {
            assert_eq!(
                takes, 0,
                "{} is not marked `fuse` but the fusion executor takes it",
                entry.name
            );
            refused += 1;
        }
    }
    assert!(
        fused >= 60 && refused >= 10,
        "{fused} fusible, {refused} not"
    );
}
