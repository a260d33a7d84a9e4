"""First-call time of a Llama-2-7B training step (forward and backward, compile included)
under `thunder.jit`, for transformers' LlamaForCausalLM and LitGPT's GPT, with the eager step
and thunder's second (cached) step measured in the same run on the same GPU.

    python thunder-py/benchmarks/first_call.py [--models hf,litgpt] [--seq 4096] [--layers 32]
                                               [--json FILE]

Random weights in bfloat16 (no download); batch 1. Each model's loss and gradients under
thunder are checked against eager's before any time is reported (bf16: the loss within 2e-2
relative, each gradient's norm-wise error within 5e-2). Times are wall seconds with a
synchronize; "first" includes Dynamo's capture, thunder's compilation and the step itself.
"""

import argparse
import json
import time

import torch

import thunder

VOCAB = 32000


def llama_hf(layers):
    import transformers as T

    cfg = T.LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                        num_attention_heads=32, num_key_value_heads=32, vocab_size=VOCAB,
                        max_position_embeddings=4096)
    m = T.LlamaForCausalLM(cfg)
    return m, lambda m, x: m(input_ids=x, labels=x).loss


def llama_litgpt(layers):
    import torch.nn.functional as F
    from litgpt import GPT, Config

    m = GPT(Config.from_name("Llama-2-7b-hf", n_layer=layers))

    def loss(m, x):
        logits = m(x)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                               x[:, 1:].reshape(-1))

    return m, loss


MODELS = {"hf": llama_hf, "litgpt": llama_litgpt}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step(m, loss_fn, x):
    m.zero_grad(set_to_none=True)
    sync()
    t0 = time.perf_counter()
    loss = loss_fn(m, x)
    loss.backward()
    sync()
    return time.perf_counter() - t0, loss.detach().float().item()


def run(name, layers, seq):
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        m, loss_fn = MODELS[name](layers)
    m = m.to(torch.bfloat16)
    x = torch.randint(0, VOCAB, (1, seq), device=dev)
    step(m, loss_fn, x)  # eager warm-up (cuBLAS, allocator)
    eager_s, want_loss = step(m, loss_fn, x)
    # Eager's gradients, kept in host memory (two sets of 7B gradients do not fit beside the
    # model and its activations).
    want = {n: p.grad.to("cpu", copy=True) for n, p in m.named_parameters() if p.grad is not None}
    jm = thunder.jit(m)
    first_s, got_loss = step(jm, loss_fn, x)
    second_s, _ = step(jm, loss_fn, x)
    rel = abs(got_loss - want_loss) / abs(want_loss)
    grads = dict(m.named_parameters())
    missing = [n for n in want if grads[n].grad is None]
    worst = max(
        ((grads[n].grad.float() - w.to(dev).float()).norm()
         / w.to(dev).float().norm().clamp_min(1e-12)).item()
        for n, w in want.items() if n not in missing
    )
    s = thunder.compile_stats(jm, flops=True)
    return {
        "model": name, "layers": layers, "seq": seq,
        "card": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "eager_step_s": eager_s, "thunder_first_s": first_s, "thunder_second_s": second_s,
        "loss_rel_diff": rel, "worst_grad_rel": worst, "missing_grads": missing,
        "ok": rel < 2e-2 and worst < 5e-2 and not missing,
        "pieces": [s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]],
        "flop_share": s["flop_share"], "compile_seconds": s["compile_seconds"],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None,
        "unsupported": s["unsupported"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="hf,litgpt")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--json")
    a = p.parse_args()
    out = []
    for name in a.models.split(","):
        r = run(name, a.layers, a.seq)
        out.append(r)
        print(json.dumps(r), flush=True)
        torch._dynamo.reset()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
