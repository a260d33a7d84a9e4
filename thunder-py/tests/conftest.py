import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Dynamo caches compiled frames per code object and falls back to eager after a number of
    # recompiles; every test starts from a clean slate.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def assert_same_grads(got, want, inputs):
    """The gradients of `got.sum()` and `want.sum()` with respect to `inputs` agree (a gradient
    eager does not give is None or zeros on thunder's side)."""
    got_g = torch.autograd.grad(got.sum(), inputs, allow_unused=True)
    want_g = torch.autograd.grad(want.sum(), inputs, allow_unused=True)
    for g, w in zip(got_g, want_g):
        if w is None:
            assert g is None or not g.any(), g
        else:
            torch.testing.assert_close(g, w)


def devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda:0")
    return out


# An op thunder cannot compile, to split graphs with: a custom operator outside the `aten`
# namespace (thunder translates torch ops, and runs any other ATen operator by name). Its value
# is `torch.cummax(x, dim).values`, its gradient cummax's.
@torch.library.custom_op("thunder_tests::cummax_values", mutates_args=())
def unsupported(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.cummax(x, dim).values.clone()


@unsupported.register_fake
def _(x, dim):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    x, dim = inputs
    ctx.save_for_backward(x)
    ctx.dim = dim


def _backward(ctx, g):
    (x,) = ctx.saved_tensors
    idx = torch.cummax(x, ctx.dim).indices
    return torch.zeros_like(x).scatter_add(ctx.dim, idx, g), None


unsupported.register_autograd(_backward, setup_context=_setup)
