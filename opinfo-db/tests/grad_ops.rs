//! grad of every differentiable op against PyTorch autograd, on every float64 sample on the CPU.
//! Ops that decompose into a prim without a VJP rule are listed (not failed); a floor on the
//! number of ops checked keeps coverage from going down.

use opinfo_db::conformance::{check_grad_case, GradOutcome, SEED};
use opinfo_db::OpDb;
use std::collections::BTreeMap;
use thunder_ir::{DType, Device};

#[test]
fn grad_of_every_differentiable_op_matches_autograd() {
    let db = OpDb::builtin().expect("loads");
    let mut passed: BTreeMap<String, usize> = BTreeMap::new();
    let mut no_rule: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in db
        .entries()
        .iter()
        .filter(|e| e.differentiable && !e.random)
    {
        if !e.supports(Device::Cpu, DType::F64) {
            continue;
        }
        for s in e.samples(Device::Cpu, DType::F64, SEED) {
            if e.skip_for(opinfo_db::DeviceKind::of(Device::Cpu), DType::F64, s.index)
                .is_some()
            {
                continue;
            }
            match check_grad_case(e, &s) {
                Ok(GradOutcome::Passed) => *passed.entry(e.name.clone()).or_default() += 1,
                Ok(GradOutcome::NoRule(m)) => {
                    no_rule.insert(e.name.clone(), m);
                }
                Ok(GradOutcome::NotApplicable) => {}
                Ok(GradOutcome::NoReference(m)) => eprintln!("  no autograd reference: {s}: {m}"),
                Err(m) => failures.push(format!("{s}\n    {m}")),
            }
        }
    }
    eprintln!(
        "grad checked against autograd: {} ops, {} cases",
        passed.len(),
        passed.values().sum::<usize>()
    );
    for (op, why) in &no_rule {
        eprintln!("  no grad yet: {op}: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} grad cases differ from autograd:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed.len() >= FLOOR,
        "only {} ops checked, fewer than the floor {FLOOR}",
        passed.len()
    );
}

/// Ops whose grad is checked today; raise it as rules are added.
const FLOOR: usize = 130;
