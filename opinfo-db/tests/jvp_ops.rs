//! jvp of every differentiable op, by the dot-product test against grad (itself checked against
//! PyTorch autograd): <J u, v> = <u, J^T v> on every float64 sample on the CPU. Ops without rules
//! are listed, not failed; a floor keeps the count from going down.

use opinfo_db::conformance::{check_jvp_case, survey};
use opinfo_db::OpDb;
use thunder_ir::DType;

/// Ops whose jvp is checked today; raise it as rules are added.
const FLOOR: usize = 130;

#[test]
fn jvp_of_every_differentiable_op_passes_the_dot_product_test() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| e.differentiable && !e.random,
        &[DType::F64],
        check_jvp_case,
    )
    .report("jvp checked by the dot-product test", FLOOR);
}
