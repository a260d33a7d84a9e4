"""PyTorch's own training step for the model shape `thunder-bench llama2` trains: eager,
torch.compile, and torch.compile's "reduce-overhead" mode (CUDA graphs) - the baselines of
`thunder-bench llama2 --cuda-graphs` (issue 10), run on the same GPU in the same device call.

    python thunder-bench/benchmarks/torch_step_baseline.py \\
        --layers 4 --dim 256 --heads 4 --hidden 688 --vocab 32000 --seq 512 --batch 8

The model is the plain-PyTorch GPT of thunder-py/examples/train_gpt.py (RMSNorm, RoPE, causal
SDPA, SwiGLU, untied lm_head; bf16 on a GPU), the optimizer fused AdamW. Each mode prints the
median step time (a synchronize after each step, after the warm-up), the host time per step
(before the synchronize) and the peak memory.
"""

import argparse
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "thunder-py" / "examples"))
import train_gpt  # noqa: E402


def run(args, mode, dev):
    torch.manual_seed(0)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = train_gpt.GPT(args.vocab, args.dim, args.layers, args.heads, args.seq, args.hidden)
    model = model.to(dev, dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=dev.type == "cuda")
    step_fn = model
    if mode == "compile":
        step_fn = torch.compile(model)
    elif mode == "reduce-overhead":
        step_fn = torch.compile(model, mode="reduce-overhead")
    idx, tgt = next(train_gpt.batches(1, args.batch, args.seq, args.vocab, dev))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, host = [], []
    for step in range(args.warmup + args.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        loss = step_fn(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        if step >= args.warmup:
            times.append(t2 - t0)
            host.append(t1 - t0)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch {mode:16} {card}: {statistics.median(times) * 1e3:8.3f} ms/step, host "
          f"{statistics.median(host) * 1e3:8.3f} ms/step, peak {peak:6.3f} GiB, loss {loss.item():.4f}",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--hidden", type=int, default=688)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--modes", default="eager,compile,reduce-overhead")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    dev = torch.device(a.device)
    for m in a.modes.split(","):
        m = m.strip()
        if m not in ("eager", "compile", "reduce-overhead"):
            p.error(f"unknown mode {m!r}: the modes are eager, compile, reduce-overhead")
        run(a, m, dev)


if __name__ == "__main__":
    main()
