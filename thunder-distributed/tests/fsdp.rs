//! The FSDP transform: golden ZeRO-3 traces (gathers before first use, prefetched; gradient
//! reduce-scatters as buckets complete; padding where dim 0 does not divide), and CPU runs
//! with 2 and 3 loopback ranks whose gathered gradients equal a single process's full-batch
//! gradients, for ZeRO-2 and ZeRO-3. Re-bless with
//! `THUNDER_BLESS=1 cargo test -p thunder-distributed --test fsdp`.

mod common;

use common::{block_loss, check_golden, grads, random_inputs};
use std::time::Duration;
use tch::{Device, Kind, Tensor};
use thunder_distributed::loopback::LoopbackGroup;
use thunder_distributed::{fsdp, gather_parameters, shard_tensor, unshard, FsdpOptions, Zero};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::{DistOp, Op, Trace};

fn params(t: &Trace) -> Vec<usize> {
    (3..t.inputs.len()).collect()
}

fn count(t: &Trace, op: DistOp) -> usize {
    t.bound_symbols
        .iter()
        .filter(|b| b.op == Op::Dist(op))
        .count()
}

fn opts(world: usize, zero: Zero) -> FsdpOptions {
    FsdpOptions {
        world_size: world,
        zero,
        bucket_bytes: 4096,
        prefetch: 1,
    }
}

#[test]
fn zero3_gathers_before_first_use_and_scatters_gradients_as_buckets_complete() {
    let t = block_loss(1);
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[3..]).unwrap();
    let f = fsdp(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        &params(&t),
        &opts(3, Zero::Three),
    )
    .unwrap();
    check_golden("fsdp_zero3_forward", &f.forward);
    check_golden("fsdp_zero3_backward", &f.backward);
    // 16 rows over 3 ranks: shards of 6 rows, the last padded by 2.
    let norm = f.shards.iter().find(|s| s.name == "norm_1_weight").unwrap();
    assert_eq!((norm.rows, norm.shard_shape()), (6, vec![6]));
    let fwd = f.forward.to_python();
    assert!(fwd.contains("norm_1_weight_shard"), "{fwd}");
    assert!(count(&f.forward, DistOp::AllGather) >= 2, "{fwd}");
    assert_eq!(
        count(&f.forward, DistOp::AllGather),
        count(&f.forward, DistOp::Wait)
    );
    assert_eq!(count(&f.forward, DistOp::ReduceScatter), 0);
    // Every gradient is a shard.
    for (o, s) in f.backward.outputs.iter().zip(&f.shards) {
        assert_eq!(
            f.backward.tensor(*o).unwrap().shape.sizes(),
            s.shard_shape()
        );
    }
    let bwd = f.backward.to_python();
    assert!(
        bwd.contains("op=\"avg\", world_size=3, async_op=True"),
        "{bwd}"
    );
    assert!(count(&f.backward, DistOp::ReduceScatter) >= 2, "{bwd}");
    // The first gradient bucket is launched before the backward's last statement.
    let first_rs = f
        .backward
        .bound_symbols
        .iter()
        .position(|b| b.op == Op::Dist(DistOp::ReduceScatter))
        .unwrap();
    let last_wait = f
        .backward
        .bound_symbols
        .iter()
        .position(|b| b.op == Op::Dist(DistOp::Wait) && b.outputs[0] == f.backward.outputs[0])
        .unwrap_or(f.backward.bound_symbols.len());
    assert!(first_rs < last_wait);
}

/// Full-batch gradients in one process against `world` loopback ranks with one sample each.
fn check_parity(world: usize, zero: Zero) {
    let full = block_loss(world);
    let one = block_loss(1);
    let fb_full = thunder_transforms::forward_backward(&full, &full.inputs[3..]).unwrap();
    let fb_one = thunder_transforms::forward_backward(&one, &one.inputs[3..]).unwrap();
    let f = fsdp(
        &fb_one.forward,
        &fb_one.backward,
        fb_one.num_saved,
        &params(&one),
        &opts(world, zero),
    )
    .unwrap();
    let ins = random_inputs(&full, 7, Device::Cpu);
    let want = grads(
        &fb_full.forward,
        &fb_full.backward,
        &ins,
        &[&TorchExecutor::new()],
    );
    let group = LoopbackGroup::new(world, Duration::from_secs(60));
    let per_rank: Vec<Vec<Tensor>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..world)
            .map(|r| {
                let mut mine: Vec<Tensor> = ins.iter().map(|t| t.shallow_clone()).collect();
                mine[0] = ins[0].narrow(0, r as i64, 1).contiguous();
                if zero == Zero::Three {
                    for (k, spec) in f.shards.iter().enumerate() {
                        mine[3 + k] = shard_tensor(&ins[3 + k], spec, r);
                    }
                }
                let (f, group) = (&f, &group);
                s.spawn(move || {
                    let lb = group.executor(r);
                    grads(
                        &f.forward,
                        &f.backward,
                        &mine,
                        &[&lb, &TorchExecutor::new()],
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, spec) in f.shards.iter().enumerate() {
        let shards: Vec<Tensor> = per_rank.iter().map(|g| g[k].shallow_clone()).collect();
        let got = unshard(&shards, spec);
        assert_eq!(got.size(), want[k].size(), "{}", spec.name);
        let d = (&got - &want[k]).abs().max().double_value(&[]);
        assert!(
            d < 1e-5,
            "{} (world {world}, {zero:?}): max |diff| {d}",
            spec.name
        );
    }
}

#[test]
fn zero3_on_two_and_three_ranks_gives_the_full_batch_gradients() {
    check_parity(2, Zero::Three);
    check_parity(3, Zero::Three);
}

#[test]
fn zero2_on_two_and_three_ranks_gives_the_full_batch_gradients() {
    check_parity(2, Zero::Two);
    check_parity(3, Zero::Two);
}

#[test]
fn zero2_gathers_updated_shards_into_the_full_parameters() {
    let t = block_loss(1);
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[3..]).unwrap();
    let world = 3;
    let f = fsdp(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        &params(&t),
        &opts(world, Zero::Two),
    )
    .unwrap();
    assert_eq!(f.forward, fb.forward, "ZeRO-2 keeps the forward");
    let gather = gather_parameters(&f.shards, &opts(world, Zero::Two)).unwrap();
    let fulls: Vec<Tensor> = f
        .shards
        .iter()
        .map(|s| {
            let shape: Vec<i64> = s.full_shape.iter().map(|&d| d as i64).collect();
            Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu))
        })
        .collect();
    let group = LoopbackGroup::new(world, Duration::from_secs(60));
    std::thread::scope(|s| {
        for r in 0..world {
            let (f, gather, group) = (&f, &gather, &group);
            let fulls: Vec<Tensor> = fulls.iter().map(|x| x.shallow_clone()).collect();
            s.spawn(move || {
                let mut ins: Vec<Tensor> = f
                    .shards
                    .iter()
                    .zip(&fulls)
                    .map(|(sp, x)| shard_tensor(x, sp, r))
                    .collect();
                let bufs: Vec<Tensor> = fulls.iter().map(|x| x.zeros_like()).collect();
                ins.extend(bufs.iter().map(|b| b.shallow_clone()));
                let lb = group.executor(r);
                ExecutionPlan::compile(gather, &[&lb, &TorchExecutor::new()])
                    .unwrap()
                    .run_tensors(&ins)
                    .unwrap();
                for (b, x) in bufs.iter().zip(&fulls) {
                    assert!(b.equal(x), "rank {r}: gathered parameter differs");
                }
            });
        }
    });
}

#[test]
fn a_scalar_parameter_is_refused_with_the_reason() {
    let mut b = thunder_ir::TraceBuilder::new("f");
    let x = b
        .input(
            "x",
            thunder_ir::TensorMeta::new(thunder_ir::DType::F32, [4]),
        )
        .unwrap();
    let s = b
        .input(
            "scale",
            thunder_ir::TensorMeta::new(thunder_ir::DType::F32, Vec::<usize>::new())
                .with_grad(true),
        )
        .unwrap();
    let y = b.mul(x, s).unwrap();
    let l = b.sum(y, &[], false).unwrap();
    let t = b.build(&[l]).unwrap();
    let fb = thunder_transforms::forward_backward(&t, &[t.inputs[1]]).unwrap();
    let e = fsdp(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        &[1],
        &opts(2, Zero::Three),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter scale has shape []: FSDP shards along dim 0, which it lacks"
    );
}
