"""Calls thunder has no translation for run as the ATen operators they reach (`prims.aten`):
compiled with the rest of the graph, differentiated by ATen's own formulas, against eager
PyTorch; and the calls that cannot run that way go to the fallback, saying why."""

import pytest
import torch
import torch.nn.functional as F

import thunder

from conftest import assert_same_grads, devices, unsupported


def _sorted(x):
    return torch.sort(x, dim=-1).values


# (function, input shapes, the ATen operators thunder runs by name)
CASES = {
    "cumprod": (lambda x: torch.cumprod(x, 1).tanh(), [(4, 6)], {"cumprod.default"}),
    "cummax-tuple": (lambda x: torch.cummax(x, 0)[0] * 2, [(4, 6)], {"cummax.default"}),
    "sort": (lambda x: _sorted(x).sin(), [(4, 6)], {"sort.default"}),
    "topk": (lambda x: torch.topk(x, 3).values.sum(-1), [(4, 6)], {"topk.default"}),
    "median-dim": (lambda x: torch.median(x, dim=1).values, [(4, 6)], {"median.dim"}),
    "roll": (lambda x: torch.roll(x, 2, 1) * x, [(4, 6)], {"roll.default"}),
    "unfold-view": (lambda x: x.unfold(1, 2, 2).sum(-1), [(4, 6)], {"unfold.default"}),
    # Two floating outputs that both carry gradient: one VJP call with both cotangents.
    "std-mean": (lambda x: torch.std_mean(x, 1)[0] * torch.std_mean(x, 1)[1],
                 [(4, 6)], {"std_mean.correction"}),
    "max-pool": (lambda x: F.max_pool2d(x, 2).exp(), [(1, 2, 4, 4)],
                 {"max_pool2d_with_indices.default"}),
    "interpolate": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), [(1, 2, 4, 4)],
                    {"upsample_bilinear2d.default"}),
    "group-norm": (lambda x, w, b: F.group_norm(x, 2, w, b), [(2, 4, 3, 3), (4,), (4,)],
                   {"native_group_norm.default"}),
    "grid-sample": (lambda x, g: F.grid_sample(x, g.tanh(), align_corners=False),
                    [(1, 2, 4, 4), (1, 3, 3, 2)], {"grid_sampler_2d.default"}),
    # An integer result in the middle of the graph, and a list of tensors as an argument.
    "searchsorted": (lambda x, y: torch.searchsorted(_sorted(x), y).float() * y, [(8,), (5,)],
                     {"sort.default", "searchsorted.Tensor"}),
    "cartesian-prod": (lambda x, y: torch.cartesian_prod(x, y).sum(1), [(3,), (4,)], None),
}


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("name", list(CASES))
def test_calls_without_a_translation_compile_as_aten_calls_with_eager_gradients(name, device):
    f, shapes, ops = CASES[name]
    torch.manual_seed(0)
    ins = [torch.randn(*s, device=device, requires_grad=True) for s in shapes]
    want = f(*ins)
    jf = thunder.jit(f, fallback="eager")
    got = jf(*ins)
    torch.testing.assert_close(got, want)
    assert_same_grads(got, want, ins)
    s = thunder.compile_stats(jf)
    assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (1, 0, 0), s
    assert not s["unsupported"], s
    assert s["aten_calls"], s
    if ops is not None:
        assert set(s["aten_calls"]) == ops, s
    forward = thunder.last_traces(jf)[0]
    backward = thunder.last_backward_traces(jf)[0]
    assert "prims.aten(" in forward, forward
    # (searchsorted's gradient flows through no ATen call: its result is an integer.)
    assert ("prims.aten_vjp(" in backward) == (name != "searchsorted"), backward
    # Without grad: the same calls, no derivative.
    with torch.no_grad():
        torch.testing.assert_close(jf(*ins), want.detach())


def test_the_trace_states_each_call_and_its_results():
    jf = thunder.jit(lambda x: torch.cummax(x, 1).indices + torch.logcumsumexp(x, 0).argmax())
    x = torch.randn(3, 5)
    want = torch.cummax(x, 1).indices + torch.logcumsumexp(x, 0).argmax()
    assert torch.equal(jf(x), want)
    (trace, *_) = thunder.last_traces(jf)
    assert 'op="cummax.default", args="(T0, 1)", out="float32[3, 5], int64[3, 5]"' in trace, trace
    assert 'op="logcumsumexp.default", args="(T0, 0)", out="float32[3, 5]"' in trace, trace


@pytest.mark.parametrize("f,says", [
    # Random numbers: thunder's own ops draw them, or the fallback does.
    (lambda x: torch.bernoulli(torch.full_like(x, 0.5)) * 0 + x, "aten.bernoulli"),
    # Not an ATen operator.
    (lambda x: unsupported(x, 0), "is not an ATen operator"),
    # A derivative PyTorch does not implement: refused before anything runs.
    (lambda x: torch.nextafter(x, torch.zeros_like(x)), "derivative"),
    # A complex value that gradients flow through (thunder's grad is for real values).
    (lambda x: torch.view_as_real(torch.polar(x.abs(), x)), "complex"),
], ids=["random", "custom-op", "no-derivative", "complex"])
def test_calls_aten_cannot_run_go_to_the_fallback_and_say_why(f, says):
    x = torch.randn(4, 3, requires_grad=True)
    jf = thunder.jit(f, fallback="eager")
    torch.testing.assert_close(jf(x), f(x))
    s = thunder.compile_stats(jf)
    assert s["eager_graphs"] >= 1, s
    assert any("as ATen calls:" in u and says in u for u in s["unsupported"]), s


def _view_changed_after(x):
    x = x * 1
    y = x.unfold(0, 2, 1)  # a view of x
    x.add_(1)  # ... which eager's y sees
    return y * 2


def _view_changed_through_itself(x):
    x = x * 1
    y = x[::2]
    y.mul_(3)  # changes x too
    return x + 1


@pytest.mark.parametrize("f", [_view_changed_after, _view_changed_through_itself])
def test_a_view_the_graph_changes_in_place_stays_with_pytorch(f):
    # thunder's ATen call returns a copy of a view; where a later in-place op writes into that
    # memory, the copy would miss it: the call stays with the in-place op, on the fallback.
    jf = thunder.jit(f)
    x = torch.randn(6)
    torch.testing.assert_close(jf(x), f(x))
    s = thunder.compile_stats(jf)
    assert s["aten_calls"] == {}, s
    assert any("its result is a view that" in u and "changes in place" in u
               for u in s["unsupported"]), s


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batch_norm_runs_as_an_aten_call_only_where_it_updates_no_statistics(train):
    # native_batch_norm updates the running statistics in place in training mode though its
    # schema does not say so: run again for the backward it would update them twice. There it
    # stays with the fallback; in eval mode (the statistics only read) it is an ATen call.
    import copy

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                            torch.nn.Linear(6, 2)).train(train)
    mine = copy.deepcopy(m)
    jm = thunder.jit(mine)
    x = torch.randn(8, 4)
    for _ in range(2):
        want, got = m(x), jm(x)
        want.sum().backward()
        got.sum().backward()
        torch.testing.assert_close(got, want)
    bn, jbn = m[1], mine[1]
    torch.testing.assert_close(jbn.running_mean, bn.running_mean)
    torch.testing.assert_close(jbn.running_var, bn.running_var)
    for (n, p), q in zip(m.named_parameters(), jm.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=n)
    s = thunder.compile_stats(jm)
    if train:
        assert s["aten_calls"] == {}, s
        assert any("updates the running statistics in place" in u for u in s["unsupported"]), s
    else:
        assert s["aten_calls"] == {"native_batch_norm.default": 1}, s
        assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (1, 0, 0), s


def test_an_operator_that_writes_a_buffer_it_returns_is_refused():
    # rrelu in training mode draws slopes into a noise buffer (rrelu_with_noise writes it).
    f = lambda x: F.rrelu(x, training=True) * 0 + x  # noqa: E731
    jf = thunder.jit(f, fallback="eager")
    x = torch.randn(5)
    torch.testing.assert_close(jf(x), x)
    s = thunder.compile_stats(jf)
    assert s["aten_calls"] == {}, s
    assert any("rrelu_with_noise" in u and "writes into" in u for u in s["unsupported"]), s
