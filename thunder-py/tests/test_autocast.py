"""`torch.autocast` under `thunder.jit`: regions inside the function and autocast around the
call compile through thunder's autocast (CUDA autocast's op lists, from the op table), with
eager autocast's dtypes and numerics; CPU autocast, whose lists differ, goes to the fallback."""

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


def _inside(model):
    def f(x):
        with torch.autocast("cuda", dtype=torch.bfloat16):
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


def test_cpu_autocast_goes_to_the_fallback_and_says_why():
    torch.manual_seed(0)
    m = Block()

    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m(x).float().sum()

    x = torch.randn(2, 16)
    want = f(x)
    jf = thunder.jit(f, fallback="eager")
    got = jf(x)
    torch.testing.assert_close(got, want)
    s = thunder.compile_stats(jf)
    assert any(u.startswith("CPU autocast") for u in s["unsupported"]), s


def test_autocast_around_a_cpu_call_goes_to_the_fallback():
    torch.manual_seed(0)
    m = Block()
    x = torch.randn(2, 16)
    jf = thunder.jit(lambda t: m(t).sum(), fallback="eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = m(x).sum(), jf(x)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 0 and any("CPU autocast" in u for u in s["unsupported"]), s
    # Without autocast, the same function compiles (a new capture: Dynamo guards the state).
    torch.testing.assert_close(jf(x), m(x).sum())
    assert thunder.compile_stats(jf)["compiled_graphs"] == 1
