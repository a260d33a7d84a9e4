//! The FSDP transform: golden ZeRO-3 traces (gathers before first use, prefetched, parameters
//! as views of the gathered buckets; gradient reduce-scatters as buckets complete; padding
//! where a bucket does not divide by the world size), and CPU runs with 2 and 3 loopback ranks
//! whose gathered gradients equal a single process's full-batch gradients, for ZeRO-2 and
//! ZeRO-3. Re-bless with
//! `THUNDER_BLESS=1 cargo test -p thunder-distributed --test fsdp`.

mod common;

use common::{block_loss, check_golden, grads, random_inputs};
use std::time::Duration;
use tch::{Device, Kind, Tensor};
use thunder_distributed::loopback::LoopbackGroup;
use thunder_distributed::{fsdp, FsdpOptions, Zero};
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
        keep_gathered_bytes: 0,
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
    // The layout: every parameter in exactly one bucket, laid end to end; buckets within
    // 4096 bytes unless one parameter is larger; shards of ceil(numel / 3).
    let l = &f.layout;
    let mut seen = vec![0; l.params.len()];
    let mut padded = 0;
    for bk in &l.buckets {
        let mut off = 0;
        for (&p, &o) in bk.params.iter().zip(&bk.offsets) {
            seen[p] += 1;
            assert_eq!(o, off);
            off += l.params[p].numel();
        }
        assert_eq!(bk.numel, off);
        assert!(bk.numel * 4 <= 4096 || bk.params.len() == 1, "{bk:?}");
        assert_eq!(bk.shard_numel, bk.numel.div_ceil(3));
        padded += usize::from(bk.numel % 3 != 0);
    }
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    assert!(
        padded > 0,
        "no bucket needs padding: the test lost its point"
    );
    let fwd = f.forward.to_python();
    assert!(fwd.contains("bucket0_shard"), "{fwd}");
    assert!(count(&f.forward, DistOp::AllGather) >= 2, "{fwd}");
    assert_eq!(count(&f.forward, DistOp::AllGather), l.buckets.len());
    assert_eq!(
        count(&f.forward, DistOp::AllGather),
        count(&f.forward, DistOp::Wait)
    );
    assert_eq!(count(&f.forward, DistOp::ReduceScatter), 0);
    // Every gradient is a bucket shard.
    assert_eq!(f.backward.outputs.len(), l.buckets.len());
    for (o, bk) in f.backward.outputs.iter().zip(&l.buckets) {
        assert_eq!(
            f.backward.tensor(*o).unwrap().shape.sizes(),
            vec![bk.shard_numel]
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
    check_parity_with(&opts(world, zero));
}

fn check_parity_with(o: &FsdpOptions) {
    let (world, zero) = (o.world_size, o.zero);
    let full = block_loss(world);
    let one = block_loss(1);
    let fb_full = thunder_transforms::forward_backward(&full, &full.inputs[3..]).unwrap();
    let fb_one = thunder_transforms::forward_backward(&one, &one.inputs[3..]).unwrap();
    let f = fsdp(
        &fb_one.forward,
        &fb_one.backward,
        fb_one.num_saved,
        &params(&one),
        o,
    )
    .unwrap();
    let ins = random_inputs(&full, 7, Device::Cpu);
    let want = grads(
        &fb_full.forward,
        &fb_full.backward,
        &ins,
        &[&TorchExecutor::new()],
    );
    let group = LoopbackGroup::new(world, Duration::from_secs(60)).unwrap();
    let per_rank: Vec<Vec<Tensor>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..world)
            .map(|r| {
                let mut mine: Vec<Tensor> = ins.iter().map(|t| t.shallow_clone()).collect();
                mine[0] = ins[0].narrow(0, r as i64, 1).contiguous();
                if zero == Zero::Three {
                    mine.truncate(3);
                    mine.extend(f.layout.shard(&ins[3..], r));
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
    let got = f.layout.unshard(&per_rank);
    for (k, spec) in f.layout.params.iter().enumerate() {
        assert_eq!(got[k].size(), want[k].size(), "{}", spec.name);
        let d = (&got[k] - &want[k]).abs().max().double_value(&[]);
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
fn zero3_keeps_the_last_gathered_buckets_for_the_backward() {
    let t = block_loss(1);
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[3..]).unwrap();
    let gathers = |keep: usize| {
        let o = FsdpOptions {
            keep_gathered_bytes: keep,
            ..opts(2, Zero::Three)
        };
        let f = fsdp(&fb.forward, &fb.backward, fb.num_saved, &params(&t), &o).unwrap();
        (
            count(&f.forward, DistOp::AllGather),
            count(&f.backward, DistOp::AllGather),
        )
    };
    let (fwd, bwd) = gathers(0);
    assert_eq!(
        fwd, bwd,
        "without keeping, the backward gathers every bucket again"
    );
    // The last bucket (4096 bytes at most) kept: one gather fewer in the backward.
    assert_eq!(gathers(4096), (fwd, bwd - 1));
    // Everything kept: the backward gathers nothing.
    assert_eq!(gathers(usize::MAX), (fwd, 0));
    for keep in [4096, usize::MAX] {
        check_parity_with(&FsdpOptions {
            keep_gathered_bytes: keep,
            ..opts(2, Zero::Three)
        });
    }
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
    let gather = f.layout.gather_trace().unwrap();
    let fulls: Vec<Tensor> = f
        .layout
        .params
        .iter()
        .map(|s| {
            let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
            Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu))
        })
        .collect();
    let group = LoopbackGroup::new(world, Duration::from_secs(60)).unwrap();
    std::thread::scope(|s| {
        for r in 0..world {
            let (f, gather, group) = (&f, &gather, &group);
            let fulls: Vec<Tensor> = fulls.iter().map(|x| x.shallow_clone()).collect();
            s.spawn(move || {
                let mut ins: Vec<Tensor> = f.layout.shard(&fulls, r);
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
fn a_scalar_parameter_is_sharded_too() {
    // loss = sum(x * scale) + sum(w * w): a 0-dim parameter shares a bucket with a vector.
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
    let w = b
        .input(
            "w",
            thunder_ir::TensorMeta::new(thunder_ir::DType::F32, [2]).with_grad(true),
        )
        .unwrap();
    let y = b.mul(x, s).unwrap();
    let ww = b.mul(w, w).unwrap();
    let l1 = b.sum(y, &[], false).unwrap();
    let l2 = b.sum(ww, &[], false).unwrap();
    let l = b.add(l1, l2).unwrap();
    let t = b.build(&[l]).unwrap();
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[1..]).unwrap();
    let world = 2;
    let f = fsdp(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        &[1, 2],
        &opts(world, Zero::Three),
    )
    .unwrap();
    // Three elements over two ranks: one bucket, shards of 2, one element of padding.
    assert_eq!(f.layout.buckets.len(), 1);
    assert_eq!(f.layout.buckets[0].shard_numel, 2);
    let xs = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
    let full = [Tensor::from(0.5f32), Tensor::from_slice(&[3.0f32, -1.0])];
    let group = LoopbackGroup::new(world, Duration::from_secs(60)).unwrap();
    let per_rank: Vec<Vec<Tensor>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..world)
            .map(|r| {
                let mut ins = vec![xs.shallow_clone()];
                ins.extend(f.layout.shard(&full, r));
                let (f, group) = (&f, &group);
                sc.spawn(move || {
                    let lb = group.executor(r);
                    grads(&f.forward, &f.backward, &ins, &[&lb, &TorchExecutor::new()])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let got = f.layout.unshard(&per_rank);
    // Both ranks saw the same x: the averaged gradients are d/dscale = sum(x), d/dw = 2w.
    assert_eq!(got[0].size(), Vec::<i64>::new());
    assert_eq!(got[0].double_value(&[]), 10.0);
    assert!(got[1].equal(&Tensor::from_slice(&[6.0f32, -2.0])));
}

/// A model run as two traces that share one layout (as graph pieces do): piece A computes
/// `h = tanh(linear(x, w1))`, piece B `mean(linear(h, w2) * s)`. One bucket holds w1, w2 and s,
/// so each piece gathers it whole and returns its part of the bucket's gradient (zeros for
/// the other piece's parameters); B also returns h's gradient, which A's backward takes. On 2
/// loopback ranks with one sample each, the summed shard gradients unshard to the 2-sample
/// gradients of the unsplit model.
#[test]
fn pieces_sharing_a_layout_add_up_to_the_whole_models_gradients() {
    use thunder_distributed::{fsdp_with_layout, Layout, ParamSpec};
    use thunder_ir::{DType, TensorMeta, TraceBuilder};
    let f32 = |shape: &[usize]| TensorMeta::new(DType::F32, shape.to_vec());
    let piece_a = |batch: usize| {
        let mut b = TraceBuilder::new("a");
        let x = b.input("x", f32(&[batch, 4])).unwrap();
        let w1 = b.input("w1", f32(&[3, 4]).with_grad(true)).unwrap();
        let y = b.linear(x, w1, None).unwrap();
        let h = b.tanh(y).unwrap();
        b.build(&[h]).unwrap()
    };
    let piece_b = |batch: usize| {
        let mut b = TraceBuilder::new("b");
        let h = b.input("h", f32(&[batch, 3]).with_grad(true)).unwrap();
        let w2 = b.input("w2", f32(&[5, 3]).with_grad(true)).unwrap();
        let s = b.input("s", f32(&[5]).with_grad(true)).unwrap();
        let y = b.linear(h, w2, None).unwrap();
        let z = b.mul(y, s).unwrap();
        let l = b.mean(z, &[], false).unwrap();
        b.build(&[l]).unwrap()
    };
    // The whole model, for the reference gradients.
    let whole = {
        let mut b = TraceBuilder::new("whole");
        let x = b.input("x", f32(&[2, 4])).unwrap();
        let w1 = b.input("w1", f32(&[3, 4]).with_grad(true)).unwrap();
        let w2 = b.input("w2", f32(&[5, 3]).with_grad(true)).unwrap();
        let s = b.input("s", f32(&[5]).with_grad(true)).unwrap();
        let y = b.linear(x, w1, None).unwrap();
        let h = b.tanh(y).unwrap();
        let y2 = b.linear(h, w2, None).unwrap();
        let z = b.mul(y2, s).unwrap();
        let l = b.mean(z, &[], false).unwrap();
        b.build(&[l]).unwrap()
    };
    let fb_whole = thunder_transforms::forward_backward(&whole, &whole.inputs[1..]).unwrap();
    let ins = random_inputs(&whole, 5, Device::Cpu);
    let want = grads(
        &fb_whole.forward,
        &fb_whole.backward,
        &ins,
        &[&TorchExecutor::new()],
    );
    let spec = |name: &str, shape: &[usize]| ParamSpec {
        name: name.into(),
        shape: shape.to_vec(),
        dtype: DType::F32,
        device: thunder_ir::Device::Cpu,
    };
    let world = 2;
    let layout = Layout::new(
        world,
        vec![spec("w1", &[3, 4]), spec("w2", &[5, 3]), spec("s", &[5])],
        &[0, 1, 2],
        1 << 20,
    );
    assert_eq!(layout.buckets.len(), 1);
    let o = opts(world, Zero::Three);
    let (a, b) = (piece_a(1), piece_b(1));
    let fa = thunder_transforms::forward_backward(&a, &a.inputs[1..]).unwrap();
    let fb = thunder_transforms::forward_backward(&b, &b.inputs[..]).unwrap();
    let pa = fsdp_with_layout(
        &fa.forward,
        &fa.backward,
        fa.num_saved,
        &[1],
        &[(0, 0)],
        &layout,
        &o,
    )
    .unwrap();
    let pb = fsdp_with_layout(
        &fb.forward,
        &fb.backward,
        fb.num_saved,
        &[0, 1, 2],
        &[(1, 1), (2, 2)],
        &layout,
        &o,
    )
    .unwrap();
    assert_eq!(
        (pa.buckets.clone(), pa.inputs.clone(), pa.grads.clone()),
        (vec![0], vec![0], vec![])
    );
    assert_eq!(
        (pb.buckets.clone(), pb.inputs.clone(), pb.grads.clone()),
        (vec![0], vec![0], vec![0])
    );
    let group = LoopbackGroup::new(world, Duration::from_secs(60)).unwrap();
    let per_rank: Vec<Vec<Tensor>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..world)
            .map(|r| {
                let x = ins[0].narrow(0, r as i64, 1).contiguous();
                let shard = layout.shard(&ins[1..], r).remove(0);
                let (pa, pb, group) = (&pa, &pb, &group);
                sc.spawn(move || {
                    let lb = group.executor(r);
                    let torch = TorchExecutor::new();
                    let run = |t: &Trace, xs: &[Tensor]| {
                        ExecutionPlan::compile(t, &[&lb, &torch])
                            .unwrap()
                            .run_tensors(xs)
                            .unwrap()
                    };
                    let oa = run(&pa.forward, &[x, shard.shallow_clone()]);
                    let h = oa[0].shallow_clone();
                    let ob = run(&pb.forward, &[h, shard.shallow_clone()]);
                    let mut bin: Vec<Tensor> = ob[1..].iter().map(|t| t.shallow_clone()).collect();
                    bin.push(Tensor::from(1.0f32));
                    let gb = run(&pb.backward, &bin); // [dh, d(bucket 0 shard)]
                    let mut ain: Vec<Tensor> = oa[1..].iter().map(|t| t.shallow_clone()).collect();
                    ain.push(gb[0].shallow_clone());
                    let ga = run(&pa.backward, &ain); // [d(bucket 0 shard)]
                    vec![&ga[0] + &gb[1]]
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let got = layout.unshard(&per_rank);
    for (k, spec) in layout.params.iter().enumerate() {
        let d = (&got[k] - &want[k]).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{}: max |diff| {d}", spec.name);
    }
}
