"""thunder.jit on modules: a GPT-style model trains like eager PyTorch; the module's own
parameters, state_dict and train/eval pass through."""

import pathlib
import sys

import pytest
import torch

import thunder
from conftest import devices, unsupported

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import train_gpt  # noqa: E402


def _batch(device, vocab=64, b=2, t=16):
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, vocab, (b, t), generator=g).to(device)
    tgt = torch.randint(0, vocab, (b, t), generator=g).to(device)
    return idx, tgt


@pytest.mark.parametrize("device", devices())
def test_a_gpt_module_forward_and_every_parameter_gradient_match_eager(device):
    torch.manual_seed(0)
    model = train_gpt.GPT(vocab=64, dim=32, layers=2, heads=4, max_seq=16).to(device)
    ref = train_gpt.GPT(vocab=64, dim=32, layers=2, heads=4, max_seq=16).to(device)
    ref.load_state_dict(model.state_dict())
    jm = thunder.jit(model)
    idx, tgt = _batch(device)
    loss, want = jm(idx, tgt), ref(idx, tgt)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    s = thunder.compile_stats(jm)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s
    loss.backward()
    want.backward()
    grads = dict(ref.named_parameters())
    n = 0
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-5, msg=name)
        n += 1
    assert n == len(grads) == 2 + 2 * 7 + 1, n
    traces = thunder.last_backward_traces(jm)
    assert traces and "scaled_dot_product_attention" in traces[0]


@pytest.mark.parametrize("device", devices())
def test_twenty_adamw_steps_give_the_losses_of_eager_pytorch(device):
    r = train_gpt.run(device, steps=20, batch=2, seq=32, vocab=96, dim=32, layers=2, heads=4,
                      lr=1e-2)
    e, t = r["eager"]["losses"], r["thunder"]["losses"]
    assert len(e) == len(t) == 20
    for i, (a, b) in enumerate(zip(e, t)):
        assert abs(a - b) <= 1e-4 + 1e-4 * abs(a), f"step {i}: eager {a}, thunder {b}"
    assert e[-1] < e[0] - 0.5, f"the model did not learn: {e}"
    s = r["stats"]
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and s["compiles"] == 1, s
    assert s["cache_hits"] == 19, s


def test_a_jitted_module_shares_parameters_state_dict_and_mode():
    torch.manual_seed(0)
    model = train_gpt.GPT(vocab=32, dim=16, layers=1, heads=2, max_seq=8)
    jm = thunder.jit(model)
    assert isinstance(jm, thunder.ThunderModule) and isinstance(jm, torch.nn.Module)
    assert list(jm.state_dict()) == list(model.state_dict())
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert all(a is b for a, b in zip(jm.parameters(), model.parameters()))
    assert jm.wte is model.wte  # attributes pass through
    jm.eval()
    assert not model.training and not model.blocks[0].training
    jm.train()
    assert model.training
    # Loading a state dict into the jitted module loads it into the original.
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    jm.load_state_dict({k: torch.zeros_like(v) for k, v in saved.items()})
    assert model.wte.weight.abs().sum() == 0
    jm.load_state_dict(saved)
    assert torch.equal(model.wte.weight, saved["wte.weight"])
    # An optimizer over the jitted module's parameters trains the original.
    before = model.lm_head.weight.detach().clone()
    opt = torch.optim.SGD(jm.parameters(), lr=0.1)
    idx, tgt = _batch("cpu", vocab=32, b=1, t=8)
    jm(idx, tgt).backward()
    opt.step()
    assert not torch.equal(model.lm_head.weight, before)


def test_a_module_with_a_graph_break_and_an_unsupported_op_is_correct_and_reported(capsys):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            h = torch.tanh(self.fc(x))
            if h.sum() > 0:  # data-dependent control flow: a graph break
                h = h * 2
            print("printed")  # another one
            return unsupported(h, -1).sum() + h.mean()

    torch.manual_seed(0)
    m = M()
    x = torch.randn(4, 8, requires_grad=True)
    want = m(x)
    (gx,) = torch.autograd.grad(want, x)
    jm = thunder.jit(m, fallback="eager")
    got = jm(x)
    assert "printed" in capsys.readouterr().out
    torch.testing.assert_close(got, want)
    (jgx,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(jgx, gx)
    s = thunder.compile_stats(jm)
    assert s["compiled_graphs"] >= 2 and s["eager_graphs"] >= 1, s
    assert any("cummax_values" in w for w in s["unsupported"]), s


def test_requires_grad_and_the_training_flag_are_part_of_the_cache_key():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.nn.functional.dropout(self.fc(x), p=0.5, training=self.training)

    m = M().eval()
    jm = thunder.jit(m)
    x = torch.randn(3, 4)
    torch.testing.assert_close(jm(x), m(x))
    jm(x)
    assert thunder.compile_stats(jm)["compiles"] == 1
    x.requires_grad_(True)
    jm(x)
    assert thunder.compile_stats(jm)["compiles"] == 2, thunder.compile_stats(jm)
    jm.train()
    y = jm(x)
    s = thunder.compile_stats(jm)
    assert s["compiles"] == 3 and s["eager_graphs"] == 0, s
    # Training-mode dropout zeroes about half and scales the rest by 2.
    z = m.fc(x)
    kept = y != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(y[kept], 2 * z[kept])
