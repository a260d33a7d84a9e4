//! jvp of every differentiable op, by the dot-product test against grad (itself checked against
//! PyTorch autograd): <J u, v> = <u, J^T v> on every float64 and float32 sample on the CPU; and against
//! central finite differences on each op's first float64 sample. An op without a rule fails.

mod support;

use opinfo_db::conformance::{survey, GradOutcome};
use opinfo_db::OpDb;
use support::{check_jvp_case, check_jvp_fd_case};
use thunder_ir::DType;

/// Ops whose jvp is checked today; raise it as rules are added.
const FLOOR: usize = 135;

#[test]
fn jvp_of_every_differentiable_op_passes_the_dot_product_test() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| e.differentiable,
        &[DType::F64, DType::F32],
        check_jvp_case,
    )
    .report("jvp checked by the dot-product test", FLOOR);
}

#[test]
fn jvp_matches_central_finite_differences() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| e.differentiable && !e.random,
        &[DType::F64],
        |e, s| {
            if s.index == 0 {
                check_jvp_fd_case(e, s)
            } else {
                Ok(GradOutcome::NotApplicable)
            }
        },
    )
    // Dropout is random, and two ops' first sample has nothing to perturb (their others do).
    .report("jvp checked against finite differences", FLOOR - 3);
}
