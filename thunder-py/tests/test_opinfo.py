"""PyTorch's own OpInfo database (`op_db`, from `torch.testing._internal`) through `thunder.jit`,
against eager PyTorch: the first sample of every op that takes float32 on the device, each
output, and the gradients of every input where the op supports autograd. Whatever runs each
piece (thunder's translations, ATen calls, the fallback), the compiled function agrees with
eager or raises; it never returns other values.

Known differences are listed with their reasons: ops whose values are unspecified (`empty`)
are compared by metadata; the FFTs of real inputs raise in Inductor, the fallback (thunder
refuses complex values that gradients flow through), as `torch.compile` raises on them too.
"""

import warnings

import pytest
import torch

import thunder
from torch.testing._internal.common_methods_invocations import op_db

from conftest import devices

# Uninitialized memory: only the metadata is specified.
UNSPECIFIED = {"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty",
               "new_empty_strided"}

# Inductor (the fallback) raises on these as torch.compile does: it asserts strides its
# fake kernels predict for the FFT of a real input ("expected size 10==10, stride 1==7").
INDUCTOR_RAISES = {"fft.fft", "fft.ifft", "fft.rfft", "fft.ihfft", "fft.rfft2", "fft.ihfft2",
                   "fft.hfft", "fft.irfft"}


def _cases():
    out = []
    for op in op_db:
        for device in devices():
            dev = device.split(":")[0]
            if torch.float32 in op.supported_dtypes(dev):
                out.append(pytest.param(op, device, id=f"{op.name}.{op.variant_test_name}-{dev}"
                                        if op.variant_test_name else f"{op.name}-{dev}"))
    return out


def _tensors(x):
    return [t for t in torch.utils._pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("op,device", _cases())
def test_opinfo_ops_through_thunder_jit_agree_with_eager(op, device):
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    try:
        si = next(iter(op.sample_inputs(device, torch.float32,
                                        requires_grad=op.supports_autograd)))
    except StopIteration:
        pytest.skip("no sample")
    args, kwargs = [si.input, *si.args], dict(si.kwargs)

    def f(*a):
        return op.op(*a, **kwargs)

    try:
        want = f(*args)
    except Exception as e:  # noqa: BLE001 - eager refuses the sample itself
        pytest.skip(f"eager raises: {type(e).__name__}")
    want_t = _tensors(want)
    if not want_t:
        pytest.skip("no tensor output")
    jf = thunder.jit(f)
    if op.name in INDUCTOR_RAISES:
        with pytest.raises(Exception):
            jf(*args)
            outs = [t for t in _tensors(jf(*args)) if t.requires_grad]
            torch.autograd.grad([t.sum() for t in outs], _tensors(args), allow_unused=True)
        return
    got = jf(*args)
    got_t = _tensors(got)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        if op.name in UNSPECIFIED:
            assert (g.shape, g.dtype, g.device) == (w.shape, w.dtype, w.device)
        else:
            torch.testing.assert_close(g, w, equal_nan=True, atol=1e-4, rtol=1e-4)
    ins = [t for t in _tensors(args) if t.requires_grad]
    # The outputs eager differentiates. (thunder may also let a gradient into an output eager
    # marks non-differentiable, as lu_unpack's permutation: ATen's formula gives it none.)
    diff = [i for i, t in enumerate(want_t) if t.requires_grad and t.is_floating_point()]
    if not (op.supports_autograd and ins and diff) or op.name in UNSPECIFIED:
        return
    try:
        gw = torch.autograd.grad([want_t[i].sum() for i in diff], ins, allow_unused=True)
    except Exception:  # noqa: BLE001 - eager has no gradient for this sample
        return
    assert all(got_t[i].requires_grad for i in diff), "an output without eager's gradient"
    gg = torch.autograd.grad([got_t[i].sum() for i in diff], ins, allow_unused=True)
    for a, b in zip(gg, gw):
        if b is None:
            assert a is None or not a.any()
        else:
            assert a is not None, "a gradient eager gives is missing"
            torch.testing.assert_close(a, b, equal_nan=True, atol=1e-4, rtol=1e-4)
