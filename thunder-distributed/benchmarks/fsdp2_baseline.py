"""PyTorch FSDP2 (fully_shard) with and without torch.compile: the baseline that
`thunder-bench llama2 --fsdp --gpus N` is compared against, on the same GPUs.

    torchrun --nproc-per-node 2 thunder-distributed/benchmarks/fsdp2_baseline.py \
        --layers 32 --dim 4096 --heads 32 --hidden 11008 --seq 4096   # Llama-2-7B sizes

The model is the plain-PyTorch GPT of thunder-py/examples/train_gpt.py (RMSNorm, RoPE, causal
SDPA, SwiGLU; bf16 parameters, AdamW fused), each block wrapped with fully_shard, then the root.
Rank 0 prints tokens/s per GPU (median step after the warm-up) and peak memory per GPU.
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "thunder-py" / "examples"))
import train_gpt  # noqa: E402


def run(args, compiled):
    from torch.distributed.fsdp import fully_shard

    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if args.device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    torch.set_default_dtype(dtype)
    with torch.device("meta"):
        model = train_gpt.GPT(args.vocab, args.dim, args.layers, args.heads, args.seq, args.hidden)
    torch.set_default_dtype(torch.float32)
    for block in model.blocks:
        if compiled:
            block.compile()
        fully_shard(block)
    fully_shard(model)
    model.to_empty(device=dev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
        hd = args.dim // args.heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=dev).float() / hd))
        ang = torch.outer(torch.arange(args.seq, device=dev).float(), inv).repeat(1, 2)
        model.cos.copy_(ang.cos())
        model.sin.copy_(ang.sin())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=args.device == "cuda")
    g = torch.Generator().manual_seed(rank)
    data = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g).to(dev)
    idx, tgt = data[:, :-1], data[:, 1:]
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for step in range(args.warmup + args.steps):
        if args.device == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        loss = model(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if args.device == "cuda":
            torch.cuda.synchronize(dev)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if args.device == "cuda" else float("nan")
    if rank == 0:
        name = "FSDP2 + torch.compile" if compiled else "FSDP2 eager"
        card = torch.cuda.get_device_name(dev) if args.device == "cuda" else "CPU"
        print(f"{name:22} {world} x {card}: {args.batch * args.seq / step_s:9.0f} tokens/s per GPU, "
              f"{step_s * 1e3:8.1f} ms/step, peak {peak:6.2f} GiB per GPU, loss {loss.item():.4f}",
              flush=True)
    del model, opt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--hidden", type=int, default=11008)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    if "RANK" not in os.environ:
        p.error("run it under torchrun (e.g. torchrun --nproc-per-node 2 ...)")
    backend = "nccl" if a.device == "cuda" else "gloo"
    if a.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    for m in a.modes.split(","):
        run(a, compiled=(m.strip() == "compile"))
        if a.device == "cuda":
            torch.cuda.empty_cache()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
