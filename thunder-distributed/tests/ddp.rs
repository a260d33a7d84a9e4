//! The DDP transform: golden traces (buckets launched as soon as their last gradient exists,
//! waits at the end), bucket planning, and a one-rank run equal to the plain backward.
//! Re-bless with `THUNDER_BLESS=1 cargo test -p thunder-distributed --test ddp`.

mod common;

use common::{block_loss, check_golden, grads, grads_with, random_inputs};

use tch::{Device as TDevice, Kind, Tensor};
use thunder_distributed::{accumulate_backward, broadcast_parameters, ddp_backward, DdpOptions};
use thunder_executors::{ExecutionPlan, TorchExecutor};
use thunder_ir::programs::{self, LlamaDims};
use thunder_ir::{DistOp, Op, Trace};

fn block_fb() -> thunder_transforms::ForwardBackward {
    let block = programs::llama_block(&LlamaDims::tiny()).unwrap();
    thunder_transforms::forward_backward(&block, &block.inputs[3..]).unwrap()
}

fn positions(t: &Trace, op: DistOp) -> Vec<usize> {
    t.bound_symbols
        .iter()
        .enumerate()
        .filter(|(_, b)| b.op == Op::Dist(op))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn gradients_are_all_reduced_in_buckets_as_soon_as_each_is_complete() {
    let fb = block_fb();
    let opts = DdpOptions {
        world_size: 2,
        bucket_bytes: 4096,
    };
    let t = ddp_backward(&fb.backward, &opts).unwrap();
    check_golden("ddp_llama_block_backward", &t);
    let reduces = positions(&t, DistOp::AllReduce);
    let waits = positions(&t, DistOp::Wait);
    assert!(
        reduces.len() >= 3,
        "expected several buckets:\n{}",
        t.to_python()
    );
    assert_eq!(reduces.len(), waits.len());
    // Every all-reduce is launched before the backward ends (it overlaps what follows), and
    // every wait comes after the last launch.
    assert!(reduces.last() < waits.first());
    assert!(
        reduces[0] < t.bound_symbols.len() / 2,
        "the first bucket should start early"
    );
    let text = t.to_python();
    assert!(
        text.contains("op=\"avg\", world_size=2, async_op=True"),
        "{text}"
    );
    // Outputs keep their shapes and order.
    for (a, b) in t.outputs.iter().zip(&fb.backward.outputs) {
        assert_eq!(
            t.tensor(*a).unwrap().shape,
            fb.backward.tensor(*b).unwrap().shape
        );
    }
}

#[test]
fn the_bucket_size_decides_how_many_all_reduces_there_are() {
    let fb = block_fb();
    let n_grads = fb.backward.outputs.len();
    let count = |bytes: usize| {
        let t = ddp_backward(
            &fb.backward,
            &DdpOptions {
                world_size: 4,
                bucket_bytes: bytes,
            },
        )
        .unwrap();
        positions(&t, DistOp::AllReduce).len()
    };
    assert_eq!(count(usize::MAX), 1, "one dtype, one device: one bucket");
    assert_eq!(count(1), n_grads, "each gradient alone");
    let mid = count(4096);
    assert!(mid > 1 && mid < n_grads, "{mid}");
    assert_eq!(DdpOptions::new(8).bucket_bytes, 25 << 20);
}

#[test]
fn on_one_rank_the_ddp_backward_gives_the_plain_gradients_exactly() {
    let fb = block_fb();
    let t = ddp_backward(
        &fb.backward,
        &DdpOptions {
            world_size: 1,
            bucket_bytes: 4096,
        },
    )
    .unwrap();
    tch::manual_seed(0);
    let ins: Vec<Tensor> = fb
        .backward
        .inputs
        .iter()
        .map(|&v| {
            let m = fb.backward.tensor(v).unwrap();
            let shape: Vec<i64> = m.shape.sizes().iter().map(|&s| s as i64).collect();
            Tensor::randn(shape.as_slice(), (Kind::Float, TDevice::Cpu))
        })
        .collect();
    let run = |t: &Trace| {
        ExecutionPlan::compile(t, &[&TorchExecutor::new()])
            .unwrap()
            .run_tensors(&ins)
            .unwrap()
    };
    let (plain, ddp) = (run(&fb.backward), run(&t));
    assert_eq!(plain.len(), ddp.len());
    for (a, b) in plain.iter().zip(&ddp) {
        assert_eq!(a.size(), b.size());
        assert!(a.equal(b), "gradients differ");
    }
}

#[test]
fn the_parameter_broadcast_copies_rank_zeros_values_into_each_parameter() {
    let block = programs::llama_block(&LlamaDims::tiny()).unwrap();
    let params: Vec<_> = block.inputs[3..]
        .iter()
        .map(|&v| {
            (
                block.name_of(v).to_string(),
                block.tensor(v).unwrap().clone(),
            )
        })
        .collect();
    let t = broadcast_parameters(&params, 8).unwrap();
    assert_eq!(positions(&t, DistOp::Broadcast).len(), params.len());
    let text = t.to_python();
    assert!(
        text.contains("dist.broadcast(attn_weight, root=0, world_size=8, async_op=True)"),
        "{text}"
    );
    assert!(text.contains("prims.copy_("), "{text}");
    assert!(t.outputs.is_empty());
}

#[test]
fn two_ranks_with_half_batches_get_the_full_batch_gradients() {
    let full = block_loss(2);
    let half = block_loss(1);
    let fb_full = thunder_transforms::forward_backward(&full, &full.inputs[3..]).unwrap();
    let fb_half = thunder_transforms::forward_backward(&half, &half.inputs[3..]).unwrap();
    let ddp = ddp_backward(
        &fb_half.backward,
        &DdpOptions {
            world_size: 2,
            bucket_bytes: 4096,
        },
    )
    .unwrap();
    let ins = random_inputs(&full, 1, TDevice::Cpu);
    let want = grads(
        &fb_full.forward,
        &fb_full.backward,
        &ins,
        &[&TorchExecutor::new()],
    );
    let group =
        thunder_distributed::loopback::LoopbackGroup::new(2, std::time::Duration::from_secs(60))
            .unwrap();
    let ranks: Vec<Vec<Tensor>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|r| {
                let mut mine: Vec<Tensor> = ins.iter().map(|t| t.shallow_clone()).collect();
                mine[0] = ins[0].narrow(0, r, 1).contiguous();
                let (fb_half, ddp, group) = (&fb_half, &ddp, &group);
                s.spawn(move || {
                    let lb = group.executor(r as usize);
                    grads(&fb_half.forward, ddp, &mine, &[&lb, &TorchExecutor::new()])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ranks[0].len(), want.len());
    for (i, w) in want.iter().enumerate() {
        assert!(ranks[0][i].equal(&ranks[1][i]), "rank gradients differ");
        let d = (&ranks[0][i] - w).abs().max().double_value(&[]);
        assert!(d < 1e-5, "gradient {i}: max |diff| {d}");
    }
}

#[test]
fn only_the_chosen_gradients_are_averaged() {
    let fb = block_fb();
    let opts = DdpOptions {
        world_size: 2,
        bucket_bytes: usize::MAX,
    };
    let t = thunder_distributed::ddp_backward_for(&fb.backward, &opts, &[0, 2]).unwrap();
    let reduces: Vec<_> = t
        .bound_symbols
        .iter()
        .filter(|b| b.op == Op::Dist(DistOp::AllReduce))
        .collect();
    assert_eq!(reduces.len(), 1, "one bucket");
    // It holds exactly the two chosen gradients.
    let numel = |tr: &Trace, v| tr.tensor(v).unwrap().shape.numel();
    let want =
        numel(&fb.backward, fb.backward.outputs[0]) + numel(&fb.backward, fb.backward.outputs[2]);
    assert_eq!(numel(&t, reduces[0].outputs[0]), want);
    let e = thunder_distributed::ddp_backward_for(&fb.backward, &opts, &[99])
        .unwrap_err()
        .to_string();
    assert!(e.contains("output 99 to reduce does not exist"), "{e}");
}

/// `no_sync`: 2 ranks, 2 micro-batches of one sample each; the first micro-step runs the plain
/// backward (no communication), the second the DDP backward of the accumulating one. The
/// averaged sums equal twice the 4-sample full-batch gradients (each micro-batch's loss is a
/// mean over its own sample).
#[test]
fn accumulating_without_sync_then_syncing_gives_the_summed_full_batch_gradients() {
    let full = block_loss(4);
    let one = block_loss(1);
    let fb_full = thunder_transforms::forward_backward(&full, &full.inputs[3..]).unwrap();
    let fb = thunder_transforms::forward_backward(&one, &one.inputs[3..]).unwrap();
    let n = fb.backward.outputs.len();
    let acc = accumulate_backward(&fb.backward, &(0..n).collect::<Vec<_>>()).unwrap();
    assert!(positions(&acc, DistOp::AllReduce).is_empty());
    assert_eq!(acc.inputs.len(), fb.backward.inputs.len() + n);
    let opts = DdpOptions {
        world_size: 2,
        bucket_bytes: 4096,
    };
    let sync = ddp_backward(&acc, &opts).unwrap();
    let plain_ddp = ddp_backward(&fb.backward, &opts).unwrap();
    assert_eq!(
        positions(&sync, DistOp::AllReduce).len(),
        positions(&plain_ddp, DistOp::AllReduce).len()
    );
    let ins = random_inputs(&full, 3, TDevice::Cpu);
    let want = grads(
        &fb_full.forward,
        &fb_full.backward,
        &ins,
        &[&TorchExecutor::new()],
    );
    let group =
        thunder_distributed::loopback::LoopbackGroup::new(2, std::time::Duration::from_secs(60))
            .unwrap();
    let ranks: Vec<Vec<Tensor>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2i64)
            .map(|r| {
                let micro: Vec<Vec<Tensor>> = (0..2)
                    .map(|j| {
                        let mut mine: Vec<Tensor> = ins.iter().map(|t| t.shallow_clone()).collect();
                        mine[0] = ins[0].narrow(0, 2 * r + j, 1).contiguous();
                        mine
                    })
                    .collect();
                let (fb, sync, group) = (&fb, &sync, &group);
                s.spawn(move || {
                    let lb = group.executor(r as usize);
                    let torch = TorchExecutor::new();
                    let micro = |j: usize| -> Vec<Tensor> {
                        micro[j].iter().map(|t| t.shallow_clone()).collect()
                    };
                    // Micro-step 1: local.
                    let first = grads(&fb.forward, &fb.backward, &micro(0), &[&torch]);
                    // Micro-step 2: accumulate and average.
                    grads_with(&fb.forward, sync, &micro(1), first, &[&lb, &torch])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, w) in want.iter().enumerate() {
        assert!(ranks[0][i].equal(&ranks[1][i]), "rank gradients differ");
        let d = (&ranks[0][i] - &(w * 2.0)).abs().max().double_value(&[]);
        assert!(d < 1e-5, "gradient {i}: max |diff| {d}");
    }
    let e = accumulate_backward(&fb.backward, &[n]).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}
