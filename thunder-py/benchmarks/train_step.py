"""The training step of LitGPT's GPT (Llama-2-7B by default) under PyTorch eager,
`torch.compile`, `thunder.jit` and `thunder.jit(cuda_graphs=True)`, and optionally
`thunder-bench llama2` on the same architecture, all in one invocation on one card, so that
every ratio in the table comes from one run (issue 23).

    python thunder-py/benchmarks/train_step.py [--layers 32] [--seq 4096] [--batch 1]
        [--modes eager,compile,thunder,thunder-graphs] [--thunder-bench target/release/thunder-bench]
        [--steps 10] [--warmup 2] [--json FILE]

Each mode runs in a process of its own (its peak memory is its own, and an out-of-memory mode
does not end the others): random bf16 weights (seed 0, the same in every mode), the model and
its loss (cross entropy) compiled together, fused AdamW at a constant small learning rate,
the same batch every step. The first step (compilation included) is timed apart; then
`--warmup` untimed steps; then the median of `--steps` steps, each ended by a synchronize.
Before any time is reported, every mode's losses are checked against eager's step by step
(bf16: within 2e-2 relative, float32: 1e-4); a mode that disagrees is marked MISMATCH and the
script exits with status 1. Peak memory is the caching allocator's peak of live tensors over
the whole mode (parameters, gradients and AdamW's state included).

On the CPU (no GPU) it runs in float32, for trying it with small sizes:
    python thunder-py/benchmarks/train_step.py --layers 2 --hidden 64 --heads 4 \\
        --intermediate 128 --vocab 256 --seq 32 --modes eager,thunder --steps 2 --warmup 1
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("eager", "compile", "thunder", "thunder-graphs")


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, help="model width (default: Llama-2-7B's 4096)")
    p.add_argument("--heads", type=int, help="attention heads (default: 32)")
    p.add_argument("--intermediate", type=int, help="MLP width (default: 11008)")
    p.add_argument("--vocab", type=int, help="vocabulary (default: 32000)")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--thunder-bench", metavar="PATH",
                   help="also run `PATH llama2` on the same architecture (its eager, thunder and "
                        "thunder-graphs modes)")
    p.add_argument("--json", help="write every mode's measurements here")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    bad = [m for m in a.modes.split(",") if m not in MODES]
    if bad:
        p.error(f"unknown mode {bad[0]!r}; the modes are: {', '.join(MODES)}")
    for name in ("layers", "seq", "batch", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    return a


def _config(a):
    from litgpt import Config

    over = {"n_layer": a.layers, "block_size": a.seq}
    if a.hidden:
        over["n_embd"] = a.hidden
    if a.heads:
        over.update(n_head=a.heads, n_query_groups=a.heads)
    if a.intermediate:
        over["intermediate_size"] = a.intermediate
    if a.vocab:
        over.update(vocab_size=a.vocab, padded_vocab_size=a.vocab)
    return Config.from_name("Llama-2-7b-hf", **over)


def _child(a):
    """One mode: prints its measurements as one JSON line."""
    import torch
    import torch.nn.functional as F
    from litgpt import GPT

    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    cfg = _config(a)

    class Step(torch.nn.Module):
        """The model and its loss, compiled together."""

        def __init__(self):
            super().__init__()
            self.gpt = GPT(cfg)

        def forward(self, idx, tgt):
            logits = self.gpt(idx)
            return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1))

    torch.manual_seed(0)
    with dev:
        model = Step().to(dtype)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, cfg.padded_vocab_size, (a.batch, a.seq + 1), generator=g).to(dev)
    idx, tgt = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, fused=cuda)
    if a.child == "eager":
        step_fn = model
    elif a.child == "compile":
        step_fn = torch.compile(model)
    else:
        import thunder

        step_fn = thunder.jit(model, cuda_graphs=a.child == "thunder-graphs")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    losses, times = [], []
    for k in range(1 + a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss = step_fn(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(loss.detach().float().item())
    timed = times[1 + a.warmup:]
    ms = statistics.median(timed) * 1e3
    out = {
        "mode": a.child, "card": torch.cuda.get_device_name() if cuda else "CPU",
        "dtype": str(dtype).removeprefix("torch."), "ms_per_step": ms,
        "tokens_per_s": a.batch * a.seq / (ms / 1e3), "first_step_s": times[0],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "losses": losses,
    }
    if a.child.startswith("thunder"):
        import thunder

        s = thunder.compile_stats(step_fn)
        out["pieces"] = [s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]]
        out["unsupported"] = s["unsupported"]
    print("RESULT " + json.dumps(out), flush=True)


def _run_child(mode, argv):
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--child", mode]
    print(f"==> {mode}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"mode": mode, "error": f"exit {p.returncode}: {tail[-300:]}"}


def _thunder_bench(path, a, cfg):
    """`thunder-bench llama2` on the same architecture: its modes as rows."""
    with tempfile.TemporaryDirectory() as d:
        report = os.path.join(d, "report.json")
        cmd = [path, "llama2", "--model", "llama2-7b", "--layers", str(a.layers),
               "--hidden", str(cfg.n_embd), "--heads", str(cfg.n_head),
               "--intermediate", str(cfg.intermediate_size), "--vocab", str(cfg.padded_vocab_size),
               "--seq-len", str(a.seq), "--micro-batch", str(a.batch), "--steps", str(a.steps),
               "--warmup", str(a.warmup), "--lr", str(a.lr), "--modes", "eager,thunder",
               "--cuda-graphs", "--json", report]
        print("==> " + " ".join(cmd), file=sys.stderr, flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(report):
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            return [{"mode": "thunder-bench", "error": f"exit {p.returncode}: {tail[-300:]}"}]
        with open(report) as f:
            r = json.load(f)
    rows = []
    diffs = {str(mode).lower(): d for mode, d in r.get("max_loss_diff", [])}
    for m in r["modes"]:
        peak = m.get("peak_memory_bytes")
        rows.append({
            "mode": f"thunder-bench {m['mode'].lower()}", "card": r["device"], "dtype": r["dtype"],
            "ms_per_step": m["ms_per_step"], "tokens_per_s": m["tokens_per_s"],
            "first_step_s": m["first_step_s"], "peak_gib": peak / 2**30 if peak else None,
            # thunder-bench's own model and batch: its losses are compared among its modes
            # (its own check, against its eager mode).
            "losses": None, "bench_loss_diff": diffs.get(m["mode"].lower()),
        })
    return rows


def _table(rows, eager):
    base = next((r for r in rows if r["mode"] == "compile" and "error" not in r), None)
    rtol = 2e-2 if eager and eager.get("dtype") == "bfloat16" else 1e-4
    lines = ["| mode | ms/step | tokens/s | first step s | peak GiB | vs torch.compile | "
             "worst loss rel. diff vs eager |", "|---|---:|---:|---:|---:|---:|---:|"]
    ok = True
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['error']} | | | | | |")
            ok = False
            continue
        diff = ""
        if r.get("bench_loss_diff") is not None:
            diff = f"{r['bench_loss_diff']:.2e} (abs., vs its eager)"
        if eager and r.get("losses") is not None and r is not eager:
            worst = max(abs(x - y) / max(abs(y), 1e-12)
                        for x, y in zip(r["losses"], eager["losses"]))
            diff = f"{worst:.2e}" + (" MISMATCH" if worst > rtol else "")
            ok &= worst <= rtol
        ratio = f"{base['ms_per_step'] / r['ms_per_step']:.3f}x" if base else ""
        peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['mode']} | {r['ms_per_step']:.1f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['first_step_s']:.1f} | {peak} | {ratio} | {diff} |")
    return "\n".join(lines), ok


def main():
    a = _args()
    if a.child:
        _child(a)
        return
    argv = [x for x in sys.argv[1:]]
    rows = [_run_child(m, argv) for m in a.modes.split(",")]
    if a.thunder_bench:
        rows += _thunder_bench(a.thunder_bench, a, _config(a))
    eager = next((r for r in rows if r["mode"] == "eager" and "error" not in r), None)
    card = next((r["card"] for r in rows if "card" in r), "?")
    table, ok = _table(rows, eager)
    print(f"LitGPT GPT (Llama-2-7B config, {a.layers} layers), seq {a.seq}, batch {a.batch}, "
          f"fused AdamW, {a.steps} timed steps after {a.warmup} warm-up; card: {card}")
    print(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
