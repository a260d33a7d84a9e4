//! grad of every differentiable op against PyTorch autograd, on every float64 sample on the CPU.
//! Ops that decompose into a prim without a VJP rule are listed (not failed); a floor on the
//! number of ops checked keeps coverage from going down.

use opinfo_db::conformance::{check_grad_case, survey};
use opinfo_db::OpDb;
use thunder_ir::DType;

/// Ops whose grad is checked today; raise it as rules are added.
const FLOOR: usize = 130;

#[test]
fn grad_of_every_differentiable_op_matches_autograd() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| e.differentiable && !e.random,
        &[DType::F64],
        check_grad_case,
    )
    .report("grad checked against autograd", FLOOR);
}
