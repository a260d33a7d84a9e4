//! vmap of every op against a loop over the batch (float32, int64 and complex64 samples), with
//! batched, shared and last-dim-batched inputs; random ops under both randomness policies. An op
//! without a batching rule fails; a floor keeps the count from going down.

mod support;

use opinfo_db::conformance::survey;
use opinfo_db::OpDb;
use support::check_vmap_case;
use thunder_ir::DType;

/// Ops whose vmap is checked today; raise it as rules are added.
const FLOOR: usize = 178;

#[test]
fn vmap_of_every_op_matches_a_loop_over_the_batch() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |_| true,
        &[DType::F32, DType::I64, DType::C64],
        check_vmap_case,
    )
    .report("vmap checked against a loop", FLOOR);
}
