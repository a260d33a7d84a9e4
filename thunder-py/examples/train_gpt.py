"""Trains a small GPT-style model with and without `thunder.jit` and prints tokens/s for both.

    python thunder-py/examples/train_gpt.py                    # CUDA if there is one
    python thunder-py/examples/train_gpt.py --device cpu --steps 5 --layers 2 --dim 64

The model is plain PyTorch (embedding, RMSNorm, RoPE, causal attention through
`F.scaled_dot_product_attention`, a SwiGLU MLP, cross entropy). Both runs start from the same
weights and see the same batches, so their losses should agree step by step; the script checks
that and reports the largest difference.
"""

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h.to(x.dtype) * self.weight


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = RMSNorm(dim)
        self.mlp = MLP(dim, hidden)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, vocab=256, dim=128, layers=2, heads=4, max_seq=256, hidden=None):
        super().__init__()
        hidden = hidden or 4 * dim * 2 // 3
        self.wte = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        hd = dim // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(max_seq).float(), inv).repeat(1, 2)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, idx, targets):
        t = idx.shape[1]
        cos, sin = self.cos[:t].to(self.wte.weight.dtype), self.sin[:t].to(self.wte.weight.dtype)
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def batches(n, batch, seq, vocab, device, seed=0):
    """`n` batches of sequences that count up from a random start (modulo `vocab`), with a
    random token in every eighth place: a pattern a small model learns within a few steps."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        start = torch.randint(0, vocab, (batch, 1), generator=g)
        data = (start + torch.arange(seq + 1)) % vocab
        noise = torch.randint(0, vocab, data.shape, generator=g)
        data = torch.where(torch.arange(seq + 1) % 8 == 7, noise, data)
        yield data[:, :-1].to(device), data[:, 1:].to(device)


def train(model, steps, batch, seq, vocab, device, lr=1e-3):
    """Trains `model` for `steps` steps with AdamW; returns the losses and seconds per step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses, times = [], []
    for idx, tgt in batches(steps, batch, seq, vocab, device):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = model(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return losses, times


def run(device="cpu", steps=20, batch=4, seq=64, vocab=256, dim=128, layers=2, heads=4,
        dtype=torch.float32, warmup=3, seed=0, lr=1e-3):
    """Trains the same model eagerly and with `thunder.jit`; returns both results."""
    import thunder

    device = torch.device(device)
    torch.manual_seed(seed)
    eager = GPT(vocab, dim, layers, heads, max_seq=seq).to(device=device, dtype=dtype)
    jitted = thunder.jit(copy.deepcopy(eager))
    out = {}
    for name, model in (("eager", eager), ("thunder", jitted)):
        losses, times = train(model, steps, batch, seq, vocab, device, lr)
        step_s = statistics.median(times[warmup:] if len(times) > warmup else times)
        out[name] = {"losses": losses, "step_s": step_s, "tokens_per_s": batch * seq / step_s,
                     "first_step_s": times[0]}
    out["stats"] = thunder.compile_stats(jitted)
    out["max_loss_diff"] = max(abs(a - b) for a, b in zip(out["eager"]["losses"],
                                                          out["thunder"]["losses"]))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = p.parse_args()
    if a.steps < 2:
        p.error("--steps must be at least 2 (the first step compiles)")
    if a.dim % a.heads or (a.dim // a.heads) % 2:
        p.error("--dim must divide by --heads into an even head size")
    r = run(a.device, a.steps, a.batch, a.seq, a.vocab, a.dim, a.layers, a.heads,
            getattr(torch, a.dtype))
    dev = torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else "CPU"
    print(f"GPT: {a.layers} layers, dim {a.dim}, {a.heads} heads, vocab {a.vocab}, "
          f"batch {a.batch} x seq {a.seq}, {a.dtype}, {a.steps} steps on {dev}")
    print(f"{'':8} {'tokens/s':>12} {'ms/step':>9} {'first step s':>13} {'final loss':>11}")
    for name in ("eager", "thunder"):
        x = r[name]
        print(f"{name:8} {x['tokens_per_s']:12.0f} {x['step_s'] * 1e3:9.2f} "
              f"{x['first_step_s']:13.2f} {x['losses'][-1]:11.4f}")
    print(f"thunder/eager speed: {r['thunder']['tokens_per_s'] / r['eager']['tokens_per_s']:.2f}x;"
          f" largest loss difference {r['max_loss_diff']:.2e}")
    s = r["stats"]
    print(f"compiled graphs {s['compiled_graphs']}, eager graphs {s['eager_graphs']}"
          + "".join(f"\n  runs eagerly: {w}" for w in s["unsupported"]))


if __name__ == "__main__":
    main()
