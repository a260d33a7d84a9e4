"""`torch.autocast` under `thunder.jit`: regions inside the function and autocast around the
call compile through thunder's autocast (CUDA autocast's op lists, from the op table), with
eager autocast's dtypes and numerics; CPU autocast, whose lists differ, compiles as the ATen
calls eager autocast makes (`prims.aten`)."""

import copy

import pytest
import torch
import torch.nn.functional as F

import thunder


class Block(torch.nn.Module):
    """Linear layers (autocast's lower-precision list), softmax and a norm (its float32
    list) and elementwise ops (neither)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 16)
        self.norm = torch.nn.LayerNorm(16)

    def forward(self, x):
        h = F.gelu(self.a(x))
        s = torch.softmax(h, dim=-1) * h
        return self.norm(self.b(s) + x)


def _inside(model, device="cuda"):
    def f(x):
        with torch.autocast(device, dtype=torch.bfloat16):
            y = model(x)
        return y.float().square().mean(), y

    return f


def _around(model):
    return lambda x: model(x).float().square().mean()


def _run(f, model, x, around):
    model.zero_grad(set_to_none=True)
    if around:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = f(x)
    else:
        out = f(x)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA autocast needs a GPU")
@pytest.mark.parametrize("where", ["cuda-inside", "cuda-around"])
def test_cuda_autocast_compiles_with_eager_autocasts_dtypes(where):
    torch.manual_seed(0)
    around = where == "cuda-around"
    eager_m = Block().cuda()
    jit_m = copy.deepcopy(eager_m)
    ref_m = copy.deepcopy(eager_m)  # float32, no autocast: the reference for both
    x = torch.randn(4, 8, 16, device="cuda")
    make = _around if around else _inside
    want, want_g = _run(make(eager_m), eager_m, x, around)
    jf = thunder.jit(make(jit_m), fallback="eager")
    got, got_g = _run(jf, jit_m, x, around)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s
    if not around:
        assert got[1].dtype == want[1].dtype == torch.float32  # the norm: autocast's f32 list
    ref, ref_g = _run(lambda t: ref_m(t).float().square().mean(), ref_m, x, False)
    # thunder's autocast is no farther from float32 than eager autocast is (as the zoo checks
    # bf16 gradients).
    loss = lambda o: (o[0] if isinstance(o, tuple) else o).detach()
    assert abs(loss(got) - ref) <= 1.5 * abs(loss(want) - ref) + 1e-3
    for n in ref_g:
        ours = (got_g[n] - ref_g[n]).norm() / ref_g[n].norm()
        theirs = (want_g[n] - ref_g[n]).norm() / ref_g[n].norm()
        assert ours <= 1.5 * theirs + 1e-3, (n, ours.item(), theirs.item())
    # The linear layers ran in bfloat16: not float32's result.
    assert (loss(got) - ref).abs() > 0


def _cpu_autocast_inside(m):
    return _inside(m, "cpu")


def _check_cpu(f, g, m, x):
    """`g` (thunder's) against `f` (eager) on copies of `m`: values, dtypes, gradients."""
    mine = copy.deepcopy(m)
    want = f(m)(x)
    got = g(mine)(x)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
    want[0].backward()
    got[0].backward()
    for (n, p), q in zip(m.named_parameters(), mine.parameters()):
        assert q.grad.dtype == p.grad.dtype, n
        torch.testing.assert_close(q.grad, p.grad, msg=n)


def test_cpu_autocast_regions_compile_as_the_aten_calls_eager_makes():
    # CPU autocast's op lists are not thunder's table's (CUDA's): inside a CPU region each call
    # runs as the ATen calls eager autocast makes, its casts included (`prims.aten`), in the same
    # thunder graph as the rest.
    torch.manual_seed(0)
    m = Block()
    jits = {}

    def compiled(mine):
        jits["f"] = thunder.jit(_cpu_autocast_inside(mine), fallback="eager")
        return jits["f"]

    _check_cpu(_cpu_autocast_inside, compiled, m, torch.randn(2, 16))
    s = thunder.compile_stats(jits["f"])
    assert (s["compiled_graphs"], s["inductor_graphs"], s["eager_graphs"]) == (1, 0, 0), s
    assert not s["unsupported"], s
    # The linear layers' matmuls in bfloat16, their inputs cast by autocast's calls.
    assert "addmm.default" in s["aten_calls"] and "_to_copy.default" in s["aten_calls"], s


def test_cpu_autocast_around_the_call_compiles_the_same_way():
    torch.manual_seed(0)
    m = Block()
    x = torch.randn(2, 16)
    mine = copy.deepcopy(m)
    jm = thunder.jit(mine, fallback="eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = m(x), jm(x)
    assert got.dtype == want.dtype  # (layer_norm: float32 under CPU autocast)
    torch.testing.assert_close(got, want)
    want.float().sum().backward()
    got.float().sum().backward()
    for (n, p), q in zip(m.named_parameters(), mine.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=n)
    s = thunder.compile_stats(jm)
    assert s["eager_graphs"] == 0 and not s["unsupported"] and s["aten_calls"], s
    # Without autocast, the same module compiles thunder's own way (a new capture: Dynamo
    # guards the state), with no ATen call.
    before = dict(s["aten_calls"])
    torch.testing.assert_close(jm(x), m(x))
    assert thunder.compile_stats(jm)["aten_calls"] == before
