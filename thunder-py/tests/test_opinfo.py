"""PyTorch's own OpInfo database (`op_db`, from `torch.testing._internal`) through `thunder.jit`,
against eager PyTorch: the first sample of every op that takes float32 (and bfloat16) on the
device, each output, and the gradients of every input where the op supports autograd
(bfloat16: within 2e-2, or no farther from a float32 computation than eager). Whatever runs each
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


DTYPES = (torch.float32, torch.bfloat16)


def _cases():
    out = []
    for op in op_db:
        name = f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name
        for device in devices():
            dev = device.split(":")[0]
            for dtype in DTYPES:
                if dtype in op.supported_dtypes(dev):
                    out.append(pytest.param(op, device, dtype,
                                            id=f"{name}-{dev}-{str(dtype)[6:]}"))
    return out


def _close(got, want, ref):
    """`got` agrees with `want` (float32: within 1e-4); in bfloat16, where it does not, it must
    be no farther from `ref` (the same computation in float32 from the same values) than `want`
    is, with some slack (thunder may round once where eager rounds per step)."""
    if got.dtype != torch.bfloat16:
        torch.testing.assert_close(got, want, equal_nan=True, atol=1e-4, rtol=1e-4)
        return
    try:
        torch.testing.assert_close(got, want, equal_nan=True, atol=2e-2, rtol=2e-2)
    except AssertionError:
        assert ref is not None, "no float32 reference to recheck against"
        err = lambda x: (x.double() - ref.double()).nan_to_num().abs().max().item()  # noqa: E731
        assert err(got) <= 2 * err(want) + 1e-2, (err(got), err(want))


def _tensors(x):
    return [t for t in torch.utils._pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def _float32(x):
    """A float32 leaf copy of a bfloat16 tensor (the reference's input); others as they are."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16:
        return x.detach().float().requires_grad_(x.requires_grad)
    return x


@pytest.mark.parametrize("op,device,dtype", _cases())
def test_opinfo_ops_through_thunder_jit_agree_with_eager(op, device, dtype):
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    try:
        si = next(iter(op.sample_inputs(device, dtype, requires_grad=op.supports_autograd)))
    except StopIteration:
        pytest.skip("no sample")
    args, kwargs = [si.input, *si.args], dict(si.kwargs)

    def f(*a):
        return op.op(*a, **kwargs)

    ref_args = torch.utils._pytree.tree_map(_float32, args)
    try:
        ref = f(*ref_args) if dtype == torch.bfloat16 else None
    except Exception:  # noqa: BLE001 - no float32 reference: bf16 must then match eager
        ref = None
    ref_t = _tensors(ref) if ref is not None else None

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
    for k, (g, w) in enumerate(zip(got_t, want_t)):
        if op.name in UNSPECIFIED:
            assert (g.shape, g.dtype, g.device) == (w.shape, w.dtype, w.device)
        else:
            r = ref_t[k] if ref_t and len(ref_t) == len(want_t) else None
            _close(g, w, r if r is not None and r.shape == w.shape else None)
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
    gr = [None] * len(ins)
    if ref_t is not None and len(ref_t) == len(want_t):
        ref_ins = [t for t in _tensors(ref_args) if t.requires_grad]
        try:
            gr = torch.autograd.grad([ref_t[i].sum() for i in diff], ref_ins, allow_unused=True)
        except Exception:  # noqa: BLE001
            pass
    for a, b, r in zip(gg, gw, gr):
        if b is None:
            assert a is None or not a.any()
        else:
            assert a is not None, "a gradient eager gives is missing"
            _close(a, b, r)
