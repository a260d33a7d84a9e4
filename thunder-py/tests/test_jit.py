"""thunder.jit on functions: results equal eager PyTorch's, what runs where is reported."""

import pytest
import torch

import thunder
from conftest import devices


def test_the_readme_hello_world():
    cfoo = thunder.jit(lambda a, b: a + b)
    out = cfoo(torch.full((2, 2), 1), torch.full((2, 2), 3))
    assert torch.equal(out, torch.full((2, 2), 4))
    assert out.dtype == torch.int64
    stats = thunder.compile_stats(cfoo)
    assert stats["compiled_graphs"] == 1 and stats["eager_graphs"] == 0, stats
    traces = thunder.last_traces(cfoo)
    assert len(traces) == 2
    assert "prims.add(a0, a1)" in traces[-1]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(
    "dtype,tol",
    [(torch.float32, 1e-6), (torch.float64, 1e-12), (torch.bfloat16, 2e-2), (torch.int64, 0)],
)
def test_elementwise_chains_match_eager(device, dtype, tol):
    def f(a, b):
        return (a * 3 - b) * a + b

    a = (torch.randn(4, 5, device=device) * 4).to(dtype)
    b = (torch.randn(4, 5, device=device) * 4).to(dtype)
    jf = thunder.jit(f)
    got, want = jf(a, b), f(a, b)
    assert got.dtype == want.dtype and got.device == want.device
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert thunder.compile_stats(jf)["compiled_graphs"] == 1


@pytest.mark.parametrize("device", devices())
def test_scalars_broadcasting_and_unary_ops(device):
    def f(x, y):
        return torch.tanh(x * 2.5 + y).exp() / (1 + torch.sigmoid(y)) - x.relu() ** 2

    x = torch.randn(4, 1, device=device)
    y = torch.randn(1, 3, device=device)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x, y), f(x, y))
    assert thunder.compile_stats(jf)["eager_graphs"] == 0, thunder.compile_stats(jf)


@pytest.mark.parametrize("device", devices())
def test_matmul_and_several_outputs(device):
    def f(a, w):
        h = a @ w
        return h, torch.nn.functional.silu(h) * h

    a = torch.randn(8, 16, device=device)
    w = torch.randn(16, 4, device=device)
    jf = thunder.jit(f)
    for g, e in zip(jf(a, w), f(a, w)):
        torch.testing.assert_close(g, e)


def test_the_same_shapes_reuse_the_compiled_graph_and_new_shapes_compile_once():
    jf = thunder.jit(lambda a, b: a * b + a)
    for _ in range(3):
        jf(torch.ones(2, 3), torch.ones(2, 3))
    s = thunder.compile_stats(jf)
    assert s["calls"] == 3 and s["compiles"] == 1 and s["cache_hits"] == 2, s
    jf(torch.ones(5, 7), torch.ones(5, 7))
    s = thunder.compile_stats(jf)
    assert s["compiles"] == 2 and s["compiled_graphs"] == 2, s


def test_an_unsupported_op_runs_eagerly_and_is_reported():
    def f(a):
        return torch.cumsum(a, 0) + 1

    a = torch.randn(6, 3)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(a), f(a))
    s = thunder.compile_stats(jf)
    assert s["eager_graphs"] == 1 and s["compiled_graphs"] == 0, s
    assert "cumsum" in s["unsupported"][0], s


def test_a_graph_break_gives_two_graphs_with_correct_results(capsys):
    def f(a):
        b = a + 1
        print("between the graphs")
        return b * 2

    a = torch.randn(3)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(a), (a + 1) * 2)
    assert "between the graphs" in capsys.readouterr().out
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 2, s


def test_gradients_flow_through_the_compiled_forward_and_backward():
    x = torch.randn(5, requires_grad=True)
    w = torch.randn(5)  # no grad: gets none
    jf = thunder.jit(lambda t, u: (torch.tanh(t) * t * u).sum())
    jf(x, w).backward()
    want = torch.autograd.grad((torch.tanh(x) * x * w).sum(), x)[0]
    torch.testing.assert_close(x.grad, want)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s
    assert thunder.last_backward_traces(jf), "no backward trace"


def test_bad_options_list_the_valid_choices():
    with pytest.raises(ValueError, match="unknown executor 'nvfuser'; the executors are: .*torch"):
        thunder.jit(lambda a: a, executors=["nvfuser"])
    with pytest.raises(ValueError, match="list of names"):
        thunder.jit(lambda a: a, executors="torch")
    with pytest.raises(ValueError, match="not a function returned by thunder.jit"):
        thunder.compile_stats(lambda a: a)


def test_the_torch_executor_alone_works():
    jf = thunder.jit(lambda a, b: a - b, executors=["torch"])
    torch.testing.assert_close(jf(torch.ones(3), torch.ones(3)), torch.zeros(3))


@pytest.mark.parametrize("device", devices())
def test_a_gpt_style_block_forward_compiles_as_one_graph(device):
    torch.manual_seed(0)
    d, h, t, v = 32, 4, 16, 50
    w = {
        "emb": torch.randn(v, d, device=device) * 0.1,
        "n1": torch.ones(d, device=device),
        "qkv": torch.randn(3 * d, d, device=device) * 0.1,
        "proj": torch.randn(d, d, device=device) * 0.1,
        "fc": torch.randn(4 * d, d, device=device) * 0.1,
        "out": torch.randn(d, 4 * d, device=device) * 0.1,
        "head": torch.randn(v, d, device=device) * 0.1,
    }

    def f(idx, tgt, emb, n1, qkv, proj, fc, out, head):
        x = torch.nn.functional.embedding(idx, emb)
        hn = torch.nn.functional.rms_norm(x, (d,), n1, eps=1e-5)
        q, k, vv = torch.nn.functional.linear(hn, qkv).split(d, dim=-1) if False else (
            torch.nn.functional.linear(hn, qkv).narrow(-1, 0, d),
            torch.nn.functional.linear(hn, qkv).narrow(-1, d, d),
            torch.nn.functional.linear(hn, qkv).narrow(-1, 2 * d, d),
        )
        q, k, vv = (z.view(2, t, h, d // h).transpose(1, 2) for z in (q, k, vv))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, vv, is_causal=True)
        y = y.transpose(1, 2).reshape(2, t, d)
        x = x + torch.nn.functional.linear(y, proj)
        m = torch.nn.functional.silu(torch.nn.functional.linear(x, fc))
        x = x + torch.nn.functional.linear(m, out)
        logits = torch.nn.functional.linear(x, head)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, v), tgt.reshape(-1))

    idx = torch.randint(0, v, (2, t), device=device)
    tgt = torch.randint(0, v, (2, t), device=device)
    args = (idx, tgt, *w.values())
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(*args), f(*args), rtol=1e-4, atol=1e-4)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s

    # With grad: every parameter's gradient matches eager PyTorch's.
    params = [p.clone().requires_grad_(True) for p in w.values()]
    ref = [p.clone().requires_grad_(True) for p in w.values()]
    jf(idx, tgt, *params).backward()
    f(idx, tgt, *ref).backward()
    for name, p, r in zip(w, params, ref):
        torch.testing.assert_close(p.grad, r.grad, rtol=1e-4, atol=1e-5, msg=name)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 2 and s["eager_graphs"] == 0, s


def test_softmax_sum_and_dtype_conversions_with_keyword_arguments():
    def f(x):
        p = torch.softmax(x.to(torch.float64), dim=-1)
        return p.sum(dim=0, keepdim=True).float(), x.mean(dim=(0, 1)), x.permute(1, 0).contiguous()

    x = torch.randn(5, 7)
    jf = thunder.jit(f)
    for g, e in zip(jf(x), f(x)):
        torch.testing.assert_close(g, e)
    assert thunder.compile_stats(jf)["eager_graphs"] == 0, thunder.compile_stats(jf)
