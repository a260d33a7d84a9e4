//! NCCL on real GPUs (runs in the GPU bundle; needs 2 CUDA devices): each rank is a child
//! process of this test binary, one GPU each, meeting through the TCP rendezvous.
//!
//! - every collective against eager PyTorch on fresh random data (f32 and bf16);
//! - 10 SGD steps of a Llama block with batch 2 on one GPU against 2 GPUs with batch 1 each,
//!   for DDP, ZeRO-2 and ZeRO-3 (also keeping the last gathered buckets for the backward): the
//!   same losses, and the same parameters at the end (ZeRO-3's gathered from the shards);
//! - a rank that dies: the watchdog aborts the other's communicator in bounded time, and its
//!   next collective fails with an error naming the dead rank (the process is not ended);
//! - on one GPU (one rank): collectives from two threads at once on one communicator, then a
//!   poisoned communicator refuses every collective, wait and eager call with its reason.

mod common;

use common::{block_loss_on, random_inputs};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};
use thunder_distributed::nccl_executor::{communicator, NcclExecutor};
use thunder_distributed::{ddp_backward, fsdp, DdpOptions, DistEnv, FsdpOptions, Rendezvous, Zero};
use thunder_executors::{ExecutionPlan, Executor, TorchExecutor};
use thunder_ir::{DType, TensorMeta, Trace, TraceBuilder};

const STEPS: usize = 10;
const LR: f64 = 0.05;

fn plan(t: &Trace, execs: &[&dyn Executor]) -> ExecutionPlan {
    ExecutionPlan::compile(t, execs).unwrap_or_else(|e| panic!("{e}\n{}", t.to_python()))
}

fn run(p: &ExecutionPlan, ins: &[Tensor]) -> Vec<Tensor> {
    p.run_tensors(ins).unwrap_or_else(|e| {
        eprintln!("rank failed: {e}");
        std::process::exit(1)
    })
}

/// Every collective against what eager PyTorch computes from all ranks' data.
fn check_collectives(rank: usize, world: usize, nccl: &NcclExecutor) {
    let dev = Device::Cuda(rank);
    for (dtype, kind, tol) in [
        (DType::F32, Kind::Float, 1e-5),
        (DType::BF16, Kind::BFloat16, 2e-2),
    ] {
        let data = |r: usize| {
            tch::manual_seed(100 + r as i64);
            Tensor::randn([world as i64 * 3, 5], (Kind::Float, Device::Cpu)).to_kind(kind)
        };
        let all: Vec<Tensor> = (0..world).map(data).collect();
        let mut b = TraceBuilder::new("collectives");
        let x = b
            .input(
                "x",
                TensorMeta::new(dtype, [world * 3, 5]).on(thunder_ir::Device::Cuda(rank as _)),
            )
            .unwrap();
        let s = b.all_reduce(x, "sum", world, false).unwrap();
        let h = b.all_reduce(x, "avg", world, true).unwrap();
        let a = b.wait(h).unwrap();
        let g = b.all_gather(x, world, false).unwrap();
        let h = b.reduce_scatter(x, "sum", world, true).unwrap();
        let rs = b.wait(h).unwrap();
        let bc = b.broadcast(x, world - 1, world, false).unwrap();
        let t = b.build(&[s, a, g, rs, bc]).unwrap();
        let p = plan(&t, &[nccl, &TorchExecutor::new()]);
        let got = run(&p, &[all[rank].to_device(dev)]);
        let stacked = Tensor::stack(&all, 0).to_kind(Kind::Float);
        let sum = stacked.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        let want = [
            sum.shallow_clone(),
            &sum / world as f64,
            Tensor::cat(&all, 0).to_kind(Kind::Float),
            sum.narrow(0, rank as i64 * 3, 3),
            all[world - 1].to_kind(Kind::Float),
        ];
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = g.to_device(Device::Cpu).to_kind(Kind::Float);
            let d = (&g - w).abs().max().double_value(&[]);
            assert!(
                d <= tol * 8.0,
                "rank {rank} {dtype:?} output {i}: max |diff| {d}"
            );
        }
    }
}

/// SGD: `p -= lr * g`, in place.
fn sgd(params: &[Tensor], grads: &[Tensor]) {
    tch::no_grad(|| {
        for (p, g) in params.iter().zip(grads) {
            let mut p = p.shallow_clone();
            let _ = p.f_sub_(&(g * LR)).unwrap();
        }
    });
}

/// Training on one GPU with the full batch: losses and final parameters.
fn reference(ins: &[Tensor], dev: thunder_ir::Device, world: usize) -> (Vec<f64>, Vec<Tensor>) {
    let t = block_loss_on(world, dev);
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[3..]).unwrap();
    let (fp, bp) = (
        plan(&fb.forward, &[&TorchExecutor::new()]),
        plan(&fb.backward, &[&TorchExecutor::new()]),
    );
    let params: Vec<Tensor> = ins[3..].iter().map(|p| p.copy()).collect();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let mut args: Vec<Tensor> = ins[..3].iter().map(|t| t.shallow_clone()).collect();
        args.extend(params.iter().map(|p| p.shallow_clone()));
        let out = run(&fp, &args);
        losses.push(out[0].double_value(&[]));
        let mut bin: Vec<Tensor> = out[1..].iter().map(|t| t.shallow_clone()).collect();
        bin.push(Tensor::from(1.0f32).to_device(out[0].device()));
        sgd(&params, &run(&bp, &bin));
    }
    (losses, params)
}

fn train(
    mode: &str,
    rank: usize,
    world: usize,
    ins: &[Tensor],
    nccl: &NcclExecutor,
    rdv: &mut Rendezvous,
) -> (Vec<f64>, Vec<Tensor>) {
    let dev = thunder_ir::Device::Cuda(rank as _);
    let t = block_loss_on(1, dev);
    let fb = thunder_transforms::forward_backward(&t, &t.inputs[3..]).unwrap();
    let params: Vec<usize> = (3..t.inputs.len()).collect();
    let torch = TorchExecutor::new();
    let execs: [&dyn Executor; 2] = [nccl, &torch];
    let x = ins[0].narrow(0, rank as i64, 1).contiguous();
    let mut losses = Vec::new();
    let (fwd, bwd, layout, zero) = match mode {
        "ddp" => {
            let b = ddp_backward(
                &fb.backward,
                &DdpOptions {
                    world_size: world,
                    bucket_bytes: 4096,
                },
            )
            .unwrap();
            (fb.forward.clone(), b, None, None)
        }
        z => {
            let zero = if z == "zero2" { Zero::Two } else { Zero::Three };
            let o = FsdpOptions {
                world_size: world,
                zero,
                bucket_bytes: 4096,
                prefetch: 2,
                // "zero3-keep": the last buckets stay gathered for the backward.
                keep_gathered_bytes: if z == "zero3-keep" { 8192 } else { 0 },
            };
            let f = fsdp(&fb.forward, &fb.backward, fb.num_saved, &params, &o).unwrap();
            (f.forward, f.backward, Some(f.layout), Some(zero))
        }
    };
    let (fp, bp) = (plan(&fwd, &execs), plan(&bwd, &execs));
    let full: Vec<Tensor> = ins[3..].iter().map(|p| p.copy()).collect();
    let mine: Vec<Tensor> = match &layout {
        Some(l) => l.shard(&full, rank),
        None => Vec::new(),
    };
    let gather = layout
        .as_ref()
        .map(|l| plan(&l.gather_trace().unwrap(), &execs));
    for step in 0..STEPS {
        let mut args = vec![
            x.shallow_clone(),
            ins[1].shallow_clone(),
            ins[2].shallow_clone(),
        ];
        if zero == Some(Zero::Three) {
            args.extend(mine.iter().map(|p| p.shallow_clone()));
        } else {
            args.extend(full.iter().map(|p| p.shallow_clone()));
        }
        let out = run(&fp, &args);
        let local = out[0].double_value(&[]);
        let all = rdv
            .all_gather(&local.to_le_bytes(), &format!("the loss of step {step}"))
            .unwrap();
        losses.push(
            all.iter()
                .map(|b| f64::from_le_bytes(b[..8].try_into().unwrap()))
                .sum::<f64>()
                / world as f64,
        );
        let mut bin: Vec<Tensor> = out[1..].iter().map(|t| t.shallow_clone()).collect();
        bin.push(Tensor::from(1.0f32).to_device(out[0].device()));
        let grads = run(&bp, &bin);
        if layout.is_some() {
            sgd(&mine, &grads);
            if zero == Some(Zero::Two) {
                let mut gin: Vec<Tensor> = mine.iter().map(|t| t.shallow_clone()).collect();
                gin.extend(full.iter().map(|t| t.shallow_clone()));
                run(gather.as_ref().unwrap(), &gin);
            }
        } else {
            sgd(&full, &grads);
        }
    }
    if zero == Some(Zero::Three) {
        // The parameters, gathered from the shards.
        let mut gin: Vec<Tensor> = mine.iter().map(|t| t.shallow_clone()).collect();
        gin.extend(full.iter().map(|t| t.shallow_clone()));
        run(gather.as_ref().unwrap(), &gin);
    }
    (losses, full)
}

/// The body of a rank (a child process).
#[test]
fn nccl_child() {
    let Ok(mode) = std::env::var("THUNDER_NCCL_CHILD") else {
        return;
    };
    let env = DistEnv::from_env().unwrap().expect("launcher variables");
    let (rank, world) = (env.rank, env.world_size);
    let mut rdv = Rendezvous::connect(&env, Duration::from_secs(60)).unwrap();
    let comm = communicator(&mut rdv, env.local_rank as i32, Duration::from_secs(15)).unwrap();
    let nccl = NcclExecutor::new(Arc::clone(&comm)).unwrap();
    nccl.watch_peers(rdv.liveness());
    if mode == "die" {
        if rank == 1 {
            std::process::exit(3);
        }
        // Rank 0 goes on into a collective that rank 1 never joins.
        std::thread::sleep(Duration::from_millis(500));
        let mut b = TraceBuilder::new("lonely");
        let x = b
            .input(
                "x",
                TensorMeta::new(DType::F32, [4]).on(thunder_ir::Device::Cuda(rank as _)),
            )
            .unwrap();
        let y = b.all_reduce(x, "sum", world, false).unwrap();
        let t = b.build(&[y]).unwrap();
        let p = plan(&t, &[&nccl, &TorchExecutor::new()]);
        let liveness = rdv.liveness();
        let ones = || Tensor::ones([4], (Kind::Float, Device::Cuda(rank)));
        match p.run_tensors(&[ones()]) {
            Ok(out) => {
                // Enqueued. Reading the result waits until the watchdog aborts the
                // communicator (its kernels then stop waiting for rank 1; the value is
                // undefined); the process goes on, and the next collective must fail.
                if let Err(e) = out[0]
                    .f_sum(Kind::Float)
                    .and_then(|s| s.f_double_value(&[]))
                {
                    eprintln!("rank 0: reading the aborted collective's output failed: {e}");
                    std::process::exit(4);
                }
                assert!(comm.is_aborted(), "the result came without an abort");
                match p.run_tensors(&[ones()]) {
                    Ok(_) => {
                        eprintln!("rank 0: a collective ran on the aborted communicator");
                        std::process::exit(2);
                    }
                    Err(e) => {
                        eprintln!("rank 0 failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
            Err(e) => {
                let gone: Vec<String> = liveness
                    .gone()
                    .iter()
                    .map(|r| format!("rank {r} is gone"))
                    .collect();
                eprintln!("rank 0 failed: {e}; {}", gone.join(", "));
                std::process::exit(1);
            }
        }
    }
    check_collectives(rank, world, &nccl);
    let dev = thunder_ir::Device::Cuda(rank as _);
    let full = block_loss_on(world, dev);
    let ins = random_inputs(&full, 11, Device::Cuda(rank));
    let (want_losses, want_params) = reference(&ins, dev, world);
    for m in ["ddp", "zero2", "zero3", "zero3-keep"] {
        let (losses, params) = train(m, rank, world, &ins, &nccl, &mut rdv);
        for (i, (a, b)) in losses.iter().zip(&want_losses).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                "{m} step {i}: loss {a}, one GPU {b}"
            );
        }
        for (k, (p, w)) in params.iter().zip(&want_params).enumerate() {
            let d = (p - w).abs().max().double_value(&[]);
            assert!(d < 1e-4, "{m}: parameter {k} differs from one GPU's by {d}");
        }
        assert!(
            want_losses[STEPS - 1] < want_losses[0],
            "the loss did not go down: {want_losses:?}"
        );
        eprintln!(
            "rank {rank}: {m}: {STEPS} steps, losses {:?} match one GPU's",
            losses
        );
    }
}

fn spawn(rank: usize, world: usize, port: u16, mode: &str, token: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "nccl_child", "--nocapture", "--test-threads=1"])
        .env("THUNDER_NCCL_CHILD", mode)
        .env(thunder_distributed::token::TOKEN_VAR, token)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("NCCL_NVLS_ENABLE", "0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gpus() -> usize {
    if !tch::Cuda::is_available() {
        return 0;
    }
    tch::Cuda::device_count() as usize
}

#[test]
fn two_gpus_match_one_for_ddp_zero2_and_zero3() {
    if gpus() < 2 {
        eprintln!("fewer than 2 CUDA devices: this test runs in the GPU bundle on a 2-GPU machine");
        return;
    }
    let port = free_port();
    let token = thunder_distributed::token::random_secret().unwrap();
    let kids: Vec<_> = (0..2).map(|r| spawn(r, 2, port, "train", &token)).collect();
    for (r, k) in kids.into_iter().enumerate() {
        let out = k.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        eprintln!("--- rank {r}:\n{log}");
        assert!(out.status.success(), "rank {r} failed");
    }
}

#[test]
fn a_dead_rank_ends_the_others_in_bounded_time_with_its_number() {
    if gpus() < 2 {
        eprintln!("fewer than 2 CUDA devices: this test runs in the GPU bundle on a 2-GPU machine");
        return;
    }
    let port = free_port();
    let t0 = Instant::now();
    let token = thunder_distributed::token::random_secret().unwrap();
    let kids: Vec<_> = (0..2).map(|r| spawn(r, 2, port, "die", &token)).collect();
    let mut outs: Vec<_> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap())
        .collect();
    let elapsed = t0.elapsed();
    let zero = outs.remove(0);
    let log = String::from_utf8_lossy(&zero.stderr);
    eprintln!("rank 0 after {elapsed:?}:\n{log}");
    assert_eq!(zero.status.code(), Some(1), "rank 0 should fail");
    assert!(elapsed < Duration::from_secs(90), "{elapsed:?}");
    assert!(
        log.contains("rank 1"),
        "rank 0's error should name rank 1:\n{log}"
    );
    // An error of the next collective (Error::Poisoned, which Python raises), not an exit
    // from the watchdog.
    assert!(
        log.lines().any(|l| l.starts_with("rank 0 failed: ")
            && l.contains("aborted")
            && l.contains("rank 1 is gone")),
        "rank 0's next collective should fail with the watchdog's reason:\n{log}"
    );
}

/// One rank on one GPU (any GPU machine): collectives run, also from two threads at once on one
/// communicator (the enqueue lock); once the communicator is poisoned (what the watchdog does),
/// a plan's collectives and waits and an eager call fail with the reason instead of running.
#[test]
fn one_rank_enqueues_from_two_threads_then_a_poisoned_communicator_refuses_everything() {
    use thunder_distributed::nccl::{nccl_dtype, unique_id, Communicator, RedOp};
    if gpus() < 1 {
        eprintln!("no CUDA device: this test runs in the GPU bundle");
        return;
    }
    let id = unique_id().unwrap();
    let comm = Arc::new(Communicator::new(&id, 0, 1, 0, Duration::from_secs(30)).unwrap());
    let nccl = NcclExecutor::new(Arc::clone(&comm)).unwrap();
    let dev = thunder_ir::Device::Cuda(0);
    let mut b = TraceBuilder::new("one_rank");
    let x = b
        .input("x", TensorMeta::new(DType::F32, [64]).on(dev))
        .unwrap();
    let s = b.all_reduce(x, "sum", 1, false).unwrap();
    let h = b.all_reduce(x, "avg", 1, true).unwrap();
    let a = b.wait(h).unwrap();
    let g = b.all_gather(x, 1, false).unwrap();
    let t = b.build(&[s, a, g]).unwrap();
    let check = |p: &ExecutionPlan, seed: f64| {
        let x = Tensor::arange(64, (Kind::Float, Device::Cuda(0))) + seed;
        let out = p.run_tensors(&[x.shallow_clone()]).unwrap();
        for (i, o) in out.iter().enumerate() {
            let d = (o - &x).abs().max().double_value(&[]);
            assert_eq!(d, 0.0, "output {i} of seed {seed}");
        }
    };
    std::thread::scope(|sc| {
        for th in 0..2 {
            let (nccl, t) = (nccl.clone(), &t);
            sc.spawn(move || {
                let p = plan(t, &[&nccl, &TorchExecutor::new()]);
                for i in 0..200 {
                    check(&p, (th * 1000 + i) as f64);
                }
            });
        }
    });
    let p = plan(&t, &[&nccl, &TorchExecutor::new()]);
    check(&p, 0.5);
    assert!(!comm.is_aborted());

    comm.poison("rank 0 of 1: a test: rank 1 is gone");
    let x = Tensor::ones([64], (Kind::Float, Device::Cuda(0)));
    let e = p.run_tensors(&[x.shallow_clone()]).unwrap_err().to_string();
    assert!(
        e.contains("the NCCL communicator was aborted earlier and cannot be used again")
            && e.contains("a test: rank 1 is gone"),
        "{e}"
    );
    let stream = thunder_executors::cuda::current_stream(0).unwrap();
    // SAFETY: refused before anything is enqueued.
    let e = unsafe {
        comm.all_reduce(
            x.data_ptr(),
            x.data_ptr(),
            64,
            nccl_dtype(DType::F32).unwrap(),
            RedOp::Sum,
            stream as *mut std::ffi::c_void,
            "an eager all-reduce",
        )
    }
    .unwrap_err();
    assert!(
        matches!(e, thunder_distributed::Error::Poisoned { .. }),
        "{e}"
    );
}
