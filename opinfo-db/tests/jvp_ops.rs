//! jvp of every differentiable op, by the dot-product test against grad (itself checked against
//! PyTorch autograd): <J u, v> = <u, J^T v> on every float64 sample on the CPU. Ops without rules
//! are listed, not failed; a floor keeps the count from going down.

use opinfo_db::conformance::{check_jvp_case, GradOutcome, SEED};
use opinfo_db::OpDb;
use std::collections::BTreeMap;
use thunder_ir::{DType, Device};

#[test]
fn jvp_of_every_differentiable_op_passes_the_dot_product_test() {
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
            match check_jvp_case(e, &s) {
                Ok(GradOutcome::Passed) => *passed.entry(e.name.clone()).or_default() += 1,
                Ok(GradOutcome::NoRule(m)) => {
                    no_rule.insert(e.name.clone(), m);
                }
                Ok(_) => {}
                Err(m) => failures.push(format!("{s}\n    {m}")),
            }
        }
    }
    eprintln!(
        "jvp checked: {} ops, {} cases",
        passed.len(),
        passed.values().sum::<usize>()
    );
    for (op, why) in &no_rule {
        eprintln!("  no jvp yet: {op}: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} jvp cases fail the dot-product test:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed.len() >= FLOOR,
        "only {} ops checked, fewer than the floor {FLOOR}",
        passed.len()
    );
}

/// Ops whose jvp is checked today; raise it as rules are added.
const FLOOR: usize = 130;
