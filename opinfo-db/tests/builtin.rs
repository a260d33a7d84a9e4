//! The builtin database against thunder-ir: it loads, covers every op, every sample builds its
//! one-op trace, every error input is rejected as listed, samples are deterministic, and the
//! proptest strategies produce buildable cases.

use opinfo_db::{all_ops, DeviceKind, OpDb, Sample, SampleArg};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use thunder_ir::{Attr, Device, ValueType};

/// The package folder, read at run time: cargo sets `CARGO_MANIFEST_DIR` for the tests it
/// runs, and the GPU bundle's `run-tests.sh` sets it for binaries built on another machine,
/// whose build-time path does not exist there. The build-time path is the fallback.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn db() -> OpDb {
    match OpDb::builtin() {
        Ok(db) => db,
        Err(e) => panic!("the builtin op database does not load:\n{e}"),
    }
}

#[test]
fn builtin_database_loads_from_the_embedded_files_and_from_the_directory() {
    let builtin = db();
    let dir = OpDb::load_dir(package_dir().join("ops")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(builtin.entries().len(), dir.entries().len());
    for a in builtin.entries() {
        let b = dir
            .get(a.op)
            .unwrap_or_else(|| panic!("{} is not in the directory", a.name));
        assert_eq!(a.samples, b.samples, "{}", a.name);
        assert_eq!(a.error_inputs, b.error_inputs, "{}", a.name);
        assert_eq!(a.location.line, b.location.line, "{}", a.name);
        assert!(a.location.file.starts_with("ops/"), "{}", a.location);
        assert!(
            b.location.file.ends_with(&a.location.file),
            "{} vs {}",
            b.location,
            a.location
        );
    }
}

#[test]
fn every_thunder_ir_op_has_an_entry() {
    let db = db();
    let missing: Vec<String> = db
        .missing_ops()
        .iter()
        .map(|o| o.qualified_name())
        .collect();
    assert!(
        missing.is_empty(),
        "{} ops of thunder-ir have no entry in opinfo-db/ops/*.yaml:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
    assert_eq!(db.entries().len(), all_ops().count());
    assert!(db.entries().len() >= 120);
}

/// Checks what a built trace says about its outputs: there is one, and tensors stay on the
/// device under test unless the sample moves them (a `device` attribute).
fn check_outputs(s: &Sample, trace: &thunder_ir::Trace) -> Result<(), String> {
    if trace.outputs.is_empty() {
        return Err("the trace has no output".into());
    }
    let moves = s
        .attrs
        .iter()
        .any(|a| matches!(a, Attr::Device(d) if *d != s.device));
    for &o in &trace.outputs {
        if let ValueType::Tensor(t) = trace.ty(o) {
            if t.device != s.device && !moves {
                return Err(format!("output {} is on {}", trace.name_of(o), t.device));
            }
        }
    }
    Ok(())
}

#[test]
fn every_sample_of_every_entry_builds_its_trace_for_every_listed_dtype() {
    let db = db();
    let mut failures = Vec::new();
    let mut built = 0;
    let mut skipped = 0;
    for e in db.entries() {
        for kind in DeviceKind::ALL {
            for (s, skip) in e.cases(kind.device(), 0) {
                if skip.is_some() {
                    skipped += 1;
                    continue;
                }
                match s.build_trace() {
                    Ok(t) => match check_outputs(&s, &t) {
                        Ok(()) => built += 1,
                        Err(m) => {
                            failures.push(format!("{} ({}): {s}\n    {m}", e.location, e.name))
                        }
                    },
                    Err(err) => {
                        failures.push(format!("{} ({}): {s}\n    {err}", e.location, e.name))
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases do not build (fix the YAML or add a skip with the reason):\n{}",
        failures.len(),
        failures.len() + built,
        failures.join("\n")
    );
    println!("{built} cases built, {skipped} skipped");
    assert!(built >= 500, "only {built} cases");
}

#[test]
fn every_error_input_is_rejected_with_the_listed_error() {
    let db = db();
    let mut failures = Vec::new();
    let mut n = 0;
    for e in db.entries() {
        for (s, ei) in e.error_samples(Device::Cpu, 0) {
            n += 1;
            match s.build_trace() {
                Ok(_) => failures.push(format!(
                    "{} ({}): error input {}: {s}\n    built a trace; expected {} containing {:?}",
                    e.location,
                    e.name,
                    s.index,
                    ei.error.name(),
                    ei.message
                )),
                Err(err) => {
                    if !ei.error.matches(&err) || !err.to_string().contains(&ei.message) {
                        failures.push(format!(
                            "{} ({}): error input {}: {s}\n    expected {} containing {:?}, got {err:?}",
                            e.location,
                            e.name,
                            s.index,
                            ei.error.name(),
                            ei.message
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} error inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 100, "only {n} error inputs");
}

#[test]
fn samples_are_deterministic_from_the_seed() {
    let db = db();
    for e in db.entries() {
        for &d in &e.cpu_dtypes {
            let a = e.samples(Device::Cpu, d, 7);
            assert_eq!(a, e.samples(Device::Cpu, d, 7), "{}", e.name);
            let seeds = |v: &[Sample]| -> Vec<u64> {
                v.iter()
                    .flat_map(|s| s.tensors().into_iter().map(|t| t.seed))
                    .collect()
            };
            let other = e.samples(Device::Cpu, d, 8);
            if !seeds(&a).is_empty() {
                assert_ne!(
                    seeds(&a),
                    seeds(&other),
                    "{}: the seed changes nothing",
                    e.name
                );
            }
            // Every tensor of a case has its own seed.
            let mut all = seeds(&a);
            let n = all.len();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), n, "{}: two tensors share a seed", e.name);
        }
    }
    // The derivation is fixed: a seed means the same tensors on every machine and release.
    let softmax = db.by_name("ltorch.softmax").expect("softmax");
    let s = &softmax.samples(Device::Cpu, thunder_ir::DType::F32, 0)[0];
    match &s.args[0] {
        SampleArg::Tensor(t) => assert_eq!(t.seed, opinfo_db::sample::mix(s.seed, 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn samples_resolve_dtypes_devices_and_scalars() {
    let db = db();
    let add = db.by_name("prims.add").expect("prims.add");
    let cuda = Device::Cuda(0);
    for d in [
        thunder_ir::DType::F32,
        thunder_ir::DType::I32,
        thunder_ir::DType::Bool,
    ] {
        for s in add.samples(cuda, d, 1) {
            for t in s.tensors() {
                assert_eq!((t.dtype, t.device), (d, cuda), "{s}");
            }
            for a in &s.args {
                let ok = match a {
                    SampleArg::Int(_) => d.is_integer(),
                    SampleArg::Bool(_) => d.is_bool(),
                    SampleArg::Float(_) => d.is_float(),
                    _ => true,
                };
                assert!(ok, "{s}: a number literal of the wrong type");
            }
        }
    }
}

#[test]
fn proptest_strategies_give_buildable_cases() {
    let db = db();
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut failures = Vec::new();
    let mut n = 0;
    let mut reshaped = 0;
    for e in db.entries() {
        for &d in &e.cpu_dtypes {
            let Some(strategy) = e.strategy(Device::Cpu, d) else {
                continue;
            };
            let listed = e.samples(Device::Cpu, d, 0);
            for _ in 0..12 {
                let s = match strategy.new_tree(&mut runner) {
                    Ok(tree) => tree.current(),
                    Err(r) => panic!("{}: {r}", e.name),
                };
                n += 1;
                if e.skip_for(DeviceKind::Cpu, d, s.index).is_some() {
                    continue;
                }
                if !listed.iter().any(|l| {
                    l.tensors()
                        .iter()
                        .map(|t| &t.shape)
                        .eq(s.tensors().iter().map(|t| &t.shape))
                }) {
                    reshaped += 1;
                }
                if let Err(err) = s.build_trace() {
                    failures.push(format!("{}: {s}\n    {err}", e.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} generated cases do not build:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        reshaped > n / 4,
        "only {reshaped} of {n} cases got new shapes"
    );
}
