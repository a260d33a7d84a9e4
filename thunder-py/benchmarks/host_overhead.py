"""Host overhead per call on a cache hit: `(a + b) * a - b` on small CUDA tensors, eager PyTorch
against `thunder.jit` and `torch.compile`, all measured in this run on the same GPU.

    python thunder-py/benchmarks/host_overhead.py [--calls 2000] [--repeats 25] [--json FILE]

Each figure is the median over `--repeats` rounds of the wall time of `--calls` back-to-back
calls (followed by one synchronize), divided by `--calls`. Results are checked against eager
first.
"""

import argparse
import json
import statistics
import time

import torch

import thunder


def f(a, b):
    return (a + b) * a - b


def per_call_us(fn, a, b, calls, repeats):
    for _ in range(50):
        fn(a, b)
    torch.cuda.synchronize()
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(a, b)
        torch.cuda.synchronize()
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(rounds)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--size", type=int, default=16, help="the tensors are size x size")
    p.add_argument("--no-inductor", action="store_true", help="skip torch.compile")
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    if not torch.cuda.is_available():
        p.error("needs a CUDA device")
    x = torch.randn(a.size, a.size, device="cuda")
    y = torch.randn(a.size, a.size, device="cuda")
    fns = {"eager": f, "thunder.jit": thunder.jit(f)}
    if not a.no_inductor:
        fns["torch.compile"] = torch.compile(f)
    want = f(x, y)
    for name, fn in fns.items():
        torch.testing.assert_close(fn(x, y), want, msg=name)
    # Interleave the measurements so drift affects every variant alike.
    samples = {name: [] for name in fns}
    for _ in range(3):
        for name, fn in fns.items():
            samples[name].append(per_call_us(fn, x, y, a.calls, a.repeats))
    res = {name: statistics.median(v) for name, v in samples.items()}
    stats = thunder.compile_stats(fns["thunder.jit"])
    assert stats["compiles"] == 1 and stats["compiled_graphs"] == 1, stats
    card = torch.cuda.get_device_name()
    print(f"host overhead per call, (a + b) * a - b on {a.size}x{a.size} f32, {card}")
    for name, us in res.items():
        print(f"  {name:14} {us:7.1f} us  ({us / res['eager']:.2f}x eager)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"card": card, "us_per_call": res}, fh, indent=1)


if __name__ == "__main__":
    main()
