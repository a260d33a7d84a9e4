//! vmap of every op against a loop over the batch (float32 and int64 samples on the CPU), with
//! batched, shared and last-dim-batched inputs. Ops without a batching rule are listed, not failed;
//! a floor keeps the count from going down.

use opinfo_db::conformance::{check_vmap_case, survey};
use opinfo_db::OpDb;
use thunder_ir::DType;

/// Ops whose vmap is checked today; raise it as rules are added.
const FLOOR: usize = 174;

#[test]
fn vmap_of_every_op_matches_a_loop_over_the_batch() {
    let db = OpDb::builtin().expect("loads");
    survey(
        &db,
        |e| !e.random,
        &[DType::F32, DType::I64, DType::C64],
        check_vmap_case,
    )
    .report("vmap checked against a loop", FLOOR);
}
