//! vmap of every op against a loop over the batch (float32 and int64 samples on the CPU), with
//! batched, shared and last-dim-batched inputs. Ops without a batching rule are listed, not failed;
//! a floor keeps the count from going down.

use opinfo_db::conformance::{check_vmap_case, GradOutcome, SEED};
use opinfo_db::OpDb;
use std::collections::BTreeMap;
use thunder_ir::{DType, Device};

#[test]
fn vmap_of_every_op_matches_a_loop_over_the_batch() {
    let db = OpDb::builtin().expect("loads");
    let mut passed: BTreeMap<String, usize> = BTreeMap::new();
    let mut no_rule: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in db.entries().iter().filter(|e| !e.random) {
        for dtype in [DType::F32, DType::I64] {
            if !e.supports(Device::Cpu, dtype) {
                continue;
            }
            for s in e.samples(Device::Cpu, dtype, SEED) {
                if e.skip_for(opinfo_db::DeviceKind::of(Device::Cpu), dtype, s.index)
                    .is_some()
                {
                    continue;
                }
                match check_vmap_case(e, &s) {
                    Ok(GradOutcome::Passed) => *passed.entry(e.name.clone()).or_default() += 1,
                    Ok(GradOutcome::NoRule(m)) => {
                        no_rule.insert(e.name.clone(), m);
                    }
                    Ok(_) => {}
                    Err(m) => failures.push(format!("{s}\n    {m}")),
                }
            }
        }
    }
    eprintln!(
        "vmap checked: {} ops, {} cases",
        passed.len(),
        passed.values().sum::<usize>()
    );
    for (op, why) in &no_rule {
        eprintln!("  no vmap yet: {op}: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} vmap cases differ from the loop:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed.len() >= FLOOR,
        "only {} ops checked, fewer than the floor {FLOOR}",
        passed.len()
    );
}

/// Ops whose vmap is checked today; raise it as rules are added.
const FLOOR: usize = 166;
