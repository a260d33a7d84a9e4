//! grad of every differentiable op against PyTorch autograd, on every float64, float32, bfloat16 and
//! float16 sample on the CPU (16-bit gradients that miss autograd's within the tolerance pass only if they
//! are no farther from float64 autograd than eager's). An op without a rule fails; a floor on
//! the number of ops checked keeps coverage from going down.

mod support;

use opinfo_db::conformance::survey;
use opinfo_db::OpDb;
use support::check_grad_case;
use thunder_ir::DType;

/// Ops whose grad is checked today; raise it as rules are added.
const FLOOR: usize = 135;

#[test]
fn grad_of_every_differentiable_op_matches_autograd() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| e.differentiable,
        &[DType::F64, DType::F32, DType::BF16, DType::F16],
        check_grad_case,
    )
    .report("grad checked against autograd", FLOOR);
}
