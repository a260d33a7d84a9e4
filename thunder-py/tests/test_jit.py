"""thunder.jit on functions: results equal eager PyTorch's, what runs where is reported."""

import pytest
import torch
import torch.nn.functional as F

import thunder
from conftest import devices, unsupported


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


def test_an_unsupported_op_runs_eagerly_between_compiled_pieces_and_is_reported():
    def f(a):
        b = torch.tanh(a) * 2
        c = unsupported(b, 0)
        return c.exp() + b

    a = torch.randn(6, 3)
    jf = thunder.jit(f, fallback="eager")
    torch.testing.assert_close(jf(a), f(a))
    s = thunder.compile_stats(jf)
    # tanh*2 | unsupported (eager) | exp+add
    assert s["compiled_graphs"] == 2 and s["eager_graphs"] == 1, s
    assert len(s["unsupported"]) == 1 and "cummax_values" in s["unsupported"][0], s
    assert "c = unsupported(b, 0)" in s["unsupported"][0], s
    # The second call reuses everything.
    torch.testing.assert_close(jf(a), f(a))
    s = thunder.compile_stats(jf)
    assert s["compiles"] == 1 and s["compiled_graphs"] == 2 and s["cache_hits"] == 1, s


def test_only_unsupported_ops_run_wholly_eagerly():
    jf = thunder.jit(lambda a: unsupported(a, 0), fallback="eager")
    a = torch.randn(4)
    torch.testing.assert_close(jf(a), torch.cummax(a, 0).values)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 0 and s["eager_graphs"] == 1, s


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
    with pytest.raises(ValueError, match="not a function or module returned by thunder.jit"):
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


@pytest.mark.parametrize("device", devices())
def test_transposed_attributes_translate_to_permutes(device):
    def f(a, b, c):
        return a @ b.T, c.mT * 2, a.T.sum(0)

    a, b = torch.randn(3, 5, device=device), torch.randn(4, 5, device=device)
    c = torch.randn(2, 3, 4, device=device)
    jf = thunder.jit(f)
    for g, w in zip(jf(a, b, c), f(a, b, c)):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s


@pytest.mark.parametrize("device", devices())
def test_indexing_chunk_and_split_translate_to_views(device):
    def f(x):
        a, b = x.chunk(2, dim=-1)
        c, d, e = torch.split(x, [1, 2, 3], dim=1)
        return (x[..., :3] * a - b, x[1], x[:, None, 2:5], x[-1, 1:4:1], c + d.sum(1, keepdim=True),
                e[:, -2:], torch.cat(x.split(2, dim=0), 1))

    x = torch.randn(4, 6, device=device)
    jf = thunder.jit(f)
    got, want = jf(x), f(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s


def test_a_stepped_slice_runs_as_an_aten_call():
    # thunder's getitem takes steps of 1; `x[::2]` runs as ATen's slice, compiled with the rest
    # (a copy: values of a trace never alias), its gradient ATen's.
    jf = thunder.jit(lambda x: x[::2] * 2)
    x = torch.randn(6, requires_grad=True)
    got = jf(x)
    torch.testing.assert_close(got, x[::2] * 2)
    (g,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(g, torch.tensor([2.0, 0.0] * 3))
    s = thunder.compile_stats(jf)
    assert s["aten_calls"] == {"slice.Tensor": 1} and not s["unsupported"], s


@pytest.mark.parametrize("device", devices())
def test_layer_norm_gelu_clamp_masked_fill_stack_and_dropout_in_eval(device):
    def f(x, w, b, m):
        h = torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps=1e-6)
        h = torch.nn.functional.gelu(h, approximate="tanh") + torch.nn.functional.gelu(h)
        h = h.clamp(min=-1.0, max=2.0).masked_fill(m, 0.5)
        h = torch.nn.functional.dropout(h, p=0.3, training=False)
        return torch.stack([h, torch.erf(h)], dim=0)

    x = torch.randn(3, 8, device=device, requires_grad=True)
    w = torch.randn(8, device=device, requires_grad=True)
    b = torch.randn(8, device=device, requires_grad=True)
    m = torch.rand(3, 8, device=device) > 0.7
    jf = thunder.jit(f)
    got = jf(x, w, b, m)
    want = f(x, w, b, m)
    torch.testing.assert_close(got, want)
    ct = torch.randn_like(want)
    for g, e in zip(torch.autograd.grad(got, (x, w, b), ct), torch.autograd.grad(want, (x, w, b), ct)):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s


def test_an_op_failing_inside_the_plan_raises_a_thunder_error_naming_the_op_and_trace_line():
    def f(idx, w):
        return torch.nn.functional.embedding(idx, w) * 2

    jf = thunder.jit(f)
    w = torch.randn(10, 4)
    jf(torch.tensor([1, 2]), w)  # compiles and runs
    with pytest.raises(thunder.ThunderError, match=r"trace line \d+: `.*embedding.*` failed"):
        jf(torch.tensor([1, 12]), w)  # index 12 is out of range: libtorch raises at run time


def test_compile_stats_give_seconds_per_stage():
    jf = thunder.jit(lambda a: (a * 2).sin().sum())
    jf(torch.randn(4, requires_grad=True)).backward()
    secs = thunder.compile_stats(jf)["compile_seconds"]
    assert set(secs) == {"dynamo", "translate", "trace", "grad", "plan"}, secs
    assert all(v >= 0 for v in secs.values()) and secs["dynamo"] > 0, secs


def test_examine_reports_eager_ops_and_compares_with_eager():
    def f(x):
        return unsupported(x.exp(), 0) * 2, x.sin()

    ex = thunder.examine(f, torch.randn(5, 3), fallback="eager")
    assert ex.ok and not ex.mismatches, ex
    assert ex.compiled_graphs >= 1 and ex.eager_graphs == 1, ex
    assert any("cummax_values" in w for w in ex.unsupported), ex
    assert len(ex.max_abs_diff) == 2 and all(d < 1e-5 for d in ex.max_abs_diff), ex
    text = repr(ex)
    assert "not compiled by thunder" in text and "match eager PyTorch" in text, text


def test_jit_rejects_what_is_not_callable():
    with pytest.raises(ValueError, match="takes a function or an nn.Module"):
        thunder.jit(3)
    with pytest.raises(ValueError, match="at least one of"):
        thunder.jit(lambda a: a, executors=[])


def test_examine_reports_outputs_that_differ():
    # A random op gives different values in the two runs: examine must notice.
    ex = thunder.examine(lambda x: x + torch.rand_like(x), torch.zeros(100))
    assert not ex.ok and ex.mismatches and ex.max_abs_diff[0] > 0, ex
    assert "DIFFER" in repr(ex)


def test_output_metadata_that_disagrees_with_pytorch_is_caught():
    from thunder import _jit

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.compile(lambda a: a.sum(0) * 2, backend=capture, dynamic=False)(torch.randn(3, 4))

    class Stub:
        def __init__(self, metas):
            self.metas = metas

        def output_metas(self):
            return self.metas

    (gm,) = graphs
    assert _jit._meta_mismatch(gm, Stub([("torch.float32", [4])])) is None
    why = _jit._meta_mismatch(gm, Stub([("torch.float64", [4])]))
    assert why and "torch.float64[4] where PyTorch computes torch.float32[4]" in why, why
    assert "[4, 1]" in _jit._meta_mismatch(gm, Stub([("torch.float32", [4, 1])]))


@pytest.mark.parametrize("device", devices())
def test_cuda_graphs_replay_or_say_why_not(device):
    def f(x, w):
        return torch.tanh(x @ w) * 2

    w = torch.randn(8, 8, device=device, requires_grad=True)
    jf = thunder.jit(f, cuda_graphs=True)
    for step in range(4):
        x = torch.randn(4, 8, device=device)
        got, want = jf(x, w), f(x, w)
        torch.testing.assert_close(got, want)
        (gw,) = torch.autograd.grad(got.sum(), w)
        (ww,) = torch.autograd.grad(want.sum(), w)
        torch.testing.assert_close(gw, ww)
    stats = thunder.compile_stats(jf)["cuda_graphs"]
    if device == "cpu":
        assert stats["captured"] == 0
        assert any("on the CPU" in why for why in stats["uncaptured"]), stats
        return
    # The forward and the backward are captured and replayed; outputs are copies.
    assert stats == {"captured": 2, "uncaptured": []}, stats
    a = jf(torch.ones(4, 8, device=device), w)
    b = jf(torch.zeros(4, 8, device=device), w)
    torch.testing.assert_close(a, f(torch.ones(4, 8, device=device), w))
    # a's backward after b's replay would read rewritten values: a clear error instead.
    with pytest.raises(thunder.ThunderError, match="ran again before this backward"):
        a.sum().backward()
    b.sum().backward()


def test_cuda_graphs_must_be_a_bool():
    with pytest.raises(ValueError, match="cuda_graphs must be True or False"):
        thunder.jit(lambda x: x, cuda_graphs="yes")


def _cummax_between(x, w):
    # matmul | unsupported (not an ATen operator) | matmul: three pieces.
    a = torch.tanh(x @ w)
    b = unsupported(a, 0)
    return (b @ w).sum()


def test_unsupported_pieces_run_through_inductor_by_default():
    torch.manual_seed(0)
    x, w = torch.randn(4, 8), torch.randn(8, 8, requires_grad=True)
    want = _cummax_between(x, w)
    (want_grad,) = torch.autograd.grad(want, w)
    jf = thunder.jit(_cummax_between)
    got = jf(x, w)
    (got_grad,) = torch.autograd.grad(got, w)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    s = thunder.compile_stats(jf, flops=True)
    assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (2, 1, 0), s
    assert [p["engine"] for p in s["pieces"]] == ["thunder", "inductor", "thunder"], s
    assert any(u.startswith("cummax_values") for u in s["unsupported"]), s
    assert s["compile_seconds"]["inductor"] > 0, s
    # FLOPs of x @ w (2*4*8*8 = 512) and of its backward for w (512); cummax none; b @ w and
    # both its gradients (512 * 3).
    assert [p["flops"] for p in s["pieces"]] == [1024, 0, 1536], s
    assert s["flop_share"] == 1.0, s
    # Without grad the Inductor piece is compiled again (Dynamo's guard on the grad mode): its
    # output must not carry a gradient either.
    with torch.no_grad():
        out = jf(x, w)
    assert not out.requires_grad
    torch.testing.assert_close(out, want.detach())


def test_a_piece_inductor_refuses_runs_eagerly_and_says_why(monkeypatch):
    def refuse(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(torch._inductor, "compile", refuse)
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    jf = thunder.jit(_cummax_between)
    with pytest.warns(RuntimeWarning, match="Inductor could not compile"):
        got = jf(x, w)
    torch.testing.assert_close(got, _cummax_between(x, w))
    s = thunder.compile_stats(jf)
    assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (2, 0, 1), s
    assert any("no C++ compiler here" in u for u in s["unsupported"]), s


def test_fallback_must_be_inductor_or_eager():
    with pytest.raises(ValueError, match="fallback must be one of 'inductor', 'eager', not 'jit'"):
        thunder.jit(lambda x: x, fallback="jit")


def test_torch_compile_with_the_thunder_backend():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)

    def f(x):
        return torch.tanh(lin(x)).sum()

    want = f(x)
    (want_grad,) = torch.autograd.grad(want, lin.weight)
    be = thunder.Backend(fallback="eager")
    cf = torch.compile(f, backend=be, dynamic=False)
    got = cf(x)
    (got_grad,) = torch.autograd.grad(got, lin.weight)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    s = thunder.compile_stats(be)
    assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (1, 0, 0), s
    assert thunder.last_traces(be) and "ltorch.linear" in thunder.last_traces(be)[0]
    # By name: the shared `thunder.backend`.
    torch._dynamo.reset()
    before = thunder.compile_stats(thunder.backend)["compiled_graphs"]
    torch.testing.assert_close(torch.compile(f, backend="thunder", dynamic=False)(x), want)
    assert thunder.compile_stats(thunder.backend)["compiled_graphs"] == before + 1


def test_dynamic_graphs_from_torch_compile_are_compiled_per_size():
    # torch.compile's default (dynamic=None) makes a graph dynamic after a change of sizes:
    # thunder compiles each size of it.
    be = thunder.Backend(fallback="eager")
    cf = torch.compile(lambda x: (x * 2).sin(), backend=be)
    for n in (3, 5, 7, 5):
        x = torch.randn(n)
        torch.testing.assert_close(cf(x), (x * 2).sin())
    s = thunder.compile_stats(be)
    assert (s["compiled_graphs"], s["eager_graphs"]) == (3, 0) and not s["unsupported"], s
    assert s["shapes"] == [{"graph": "thunder_graph_g2", "sizes": 2, "beyond_cap_calls": 0}], s


class _Seq(torch.nn.Module):
    """Sizes computed from the input's (a view, a reshape), as models compute them."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.lin(x).view(b * t, 8)
        return torch.tanh(h).reshape(b, t, 8).sum(1)


@pytest.mark.parametrize("fallback", ["eager", "inductor"])
def test_changing_sizes_compile_per_size_up_to_max_shapes(fallback):
    # A sequence length that changes from call to call (packing, generation): the first size
    # is a static graph; then Dynamo's one dynamic graph, which thunder compiles for each
    # size up to max_shapes=3 and runs on the fallback (dynamic shapes) after: no
    # compilation per size beyond the cap, nothing silent, every result and gradient eager's.
    torch.manual_seed(0)
    m = _Seq()
    jm = thunder.jit(m, max_shapes=3, fallback=fallback)
    for t in (4, 5, 6, 5, 7, 9, 11):
        x = torch.randn(2, t, 8)
        m.zero_grad()
        want = m(x)
        want.sum().backward()
        want_grad = m.lin.weight.grad.clone()
        m.zero_grad()
        got = jm(x)
        got.sum().backward()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(m.lin.weight.grad, want_grad)
    s = thunder.compile_stats(jm)
    assert s["compiles"] == 2 and s["compiled_graphs"] == 4, s  # size 4, then 5, 6, 7
    assert s["shapes"] == [{"graph": "thunder_Seq_g2", "sizes": 3, "beyond_cap_calls": 2}], s
    assert [p["engine"] for p in s["pieces"]] == ["thunder"] * 4 + [fallback], s
    assert any("more than max_shapes=3 sizes" in u for u in s["unsupported"]), s
    assert s["cache_hits"] == 2, s  # 5 again, and 11 on the fallback's graph


def test_max_shapes_must_be_a_count():
    with pytest.raises(ValueError, match="max_shapes must be an int >= 0, not -1"):
        thunder.jit(lambda x: x, max_shapes=-1)


def test_a_dynamic_graph_that_cannot_be_specialized_runs_on_the_fallback(monkeypatch):
    from thunder import _fx

    def refuse(gm, args, mode=None):
        raise RuntimeError("no fake tensors today")

    monkeypatch.setattr(_fx, "specialize", refuse)
    torch.manual_seed(0)
    m = _Seq()
    jm = thunder.jit(m, fallback="eager")
    for t in (4, 5, 6):
        x = torch.randn(2, t, 8)
        torch.testing.assert_close(jm(x), m(x))
    s = thunder.compile_stats(jm)
    assert any("could not be specialized" in u and "no fake tensors today" in u
               for u in s["unsupported"]), s
    assert s["shapes"][0]["beyond_cap_calls"] == 2 and s["eager_graphs"] == 1, s


def test_literal_tensors_and_tensor_factories_of_a_value_compile():
    # transformers' code makes tensors from literals and from other tensors' metadata.
    def f(x, ids):
        a = x + torch.tensor([1.0, 2.0, 3.0]) + torch.tensor(0.5, dtype=torch.float64).float()
        b = x.new_ones(3) * 2 + x.new_zeros((2, 3)) + x.new_full((3,), 4.0)
        c = torch.full_like(x, 4).type_as(ids) + torch.zeros_like(ids) + torch.ones_like(ids)
        m = torch.min(x, torch.zeros_like(x)) + torch.max(x, torch.ones_like(x))
        return a + b + c.float() + m + x.clone()

    x, ids = torch.randn(2, 3), torch.randint(0, 5, (2, 3))
    jf = thunder.jit(f, fallback="eager")
    got = jf(x, ids)
    torch.testing.assert_close(got, f(x, ids))
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s


def test_indexing_with_integer_tensors_compiles():
    # PyTorch's advanced indexing with integer tensors on adjacent dims (transformers' packed
    # sequence masks: `mask[batch_idx, q_idx]`), negative indices included, with gradients.
    def f(x, i, j):
        return (x[i, j] * 2).sum(-1) + x[..., j.abs() % 4].sum((0, 1)).mean() + x[:, i[0]].mean()

    x = torch.randn(3, 4, 5, requires_grad=True)
    i = torch.tensor([[0, 2], [1, -1]])
    j = torch.tensor([3, -4])
    want = f(x, i, j)
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    jf = thunder.jit(f, fallback="eager")
    got = jf(x, i, j)
    (got_grad,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and not s["unsupported"], s
    # A boolean mask (its result's size depends on the values): Dynamo breaks the graph there
    # and runs it itself; the result is eager's.
    jg = thunder.jit(lambda x, m: x[m] * 2, fallback="eager")
    m = x.detach() > 0
    torch.testing.assert_close(jg(x, m), x[m] * 2)


def test_diff_compiles():
    def f(x, p):
        return torch.diff(x, dim=-1) + torch.diff(x, prepend=p, dim=1)[:, 1:] + x.diff(dim=0).sum()

    x, p = torch.randn(3, 5, requires_grad=True), torch.randn(3, 1)
    want = f(x, p)
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    jf = thunder.jit(f, fallback="eager")
    got = jf(x, p)
    (got_grad,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and not s["unsupported"], s


def test_conv1d_compiles_as_conv2d():
    # Whisper's and wav2vec's front ends: F.conv1d with stride, padding, dilation and groups.
    torch.manual_seed(0)
    c1 = torch.nn.Conv1d(4, 6, 3, stride=2, padding=1)
    c2 = torch.nn.Conv1d(6, 6, 3, padding=2, dilation=2, groups=3, bias=False)

    def f(x):
        return F.gelu(c2(F.gelu(c1(x)))).sum()

    x = torch.randn(2, 4, 17)
    want = f(x)
    want_grads = torch.autograd.grad(want, [c1.weight, c1.bias, c2.weight])
    jf = thunder.jit(f, fallback="eager")
    got = jf(x)
    got_grads = torch.autograd.grad(got, [c1.weight, c1.bias, c2.weight])
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and not s["unsupported"], s
    assert "ltorch.conv2d" in thunder.last_traces(jf)[0]


def test_repeat_compiles():
    def f(x):
        return x.repeat(2, 1, 3).sum(0)[:, 4:8] + x.unsqueeze(0).repeat((1, 2, 1, 1)).mean() + x.repeat(1, 1)

    x = torch.randn(3, 4, requires_grad=True)
    want = f(x)
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    jf = thunder.jit(f, fallback="eager")
    got = jf(x)
    (got_grad,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and not s["unsupported"], s


@pytest.mark.parametrize("requires_grad", [False, True])
def test_a_clone_changed_in_place_by_a_later_piece_leaves_the_input_alone(requires_grad):
    # thunder's clone is the value itself; the in-place zero_ runs in a piece after it (the
    # fallback: it writes in place). It used to zero the caller's tensor.
    def f(a):
        return torch.zero_(a.clone()) + 1

    jf = thunder.jit(f)
    x = torch.ones(3, requires_grad=requires_grad)
    got = jf(x)
    torch.testing.assert_close(got, torch.ones(3))
    torch.testing.assert_close(x.detach(), torch.ones(3))
    if requires_grad:
        got.sum().backward()
        torch.testing.assert_close(x.grad, torch.zeros(3))
    assert len(thunder.compile_stats(jf)["pieces"]) == 3


def test_a_view_changed_in_place_by_a_later_piece_changes_its_base_as_in_eager():
    def f(a):
        b = a.view(3)
        torch.zero_(b)
        return b + 1

    x, y = torch.ones(3), torch.ones(3)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x), f(y))
    torch.testing.assert_close(x, y)
