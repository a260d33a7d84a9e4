"""What Python hands to thunder's compiled plans is checked before any kernel runs: wrong
counts, shapes, dtypes, devices and kinds of tensor are a `ThunderError` naming the graph,
never a crash (issue 20). The same for malformed graph encodings given to `_C.compile`."""

import pytest
import torch

import thunder
from thunder import _C, _jit


def _compiled(grad):
    """A compiled graph of f(a, b) = (tanh(a) * b).sum(1) on float32 [3, 4] inputs."""
    a = torch.randn(3, 4, requires_grad=grad)
    b = torch.randn(3, 4)
    jf = thunder.jit(lambda a, b: (torch.tanh(a) * b).sum(1))
    jf(a, b)
    (cg,) = _jit._state(jf).graphs
    return cg, a.detach(), b


def _bad_inputs(a, b):
    """(what, args) pairs that do not fit a graph taking two float32 [3, 4] CPU tensors."""
    out = [
        ("too few", (a,)),
        ("too many", (a, b, b)),
        ("a shape", (a, torch.randn(4, 3))),
        ("a broadcastable shape", (a, torch.randn(1, 4))),
        ("a rank", (a, torch.randn(12))),
        ("a dtype", (a, b.double())),
        ("an integer dtype", (a, b.long())),
        ("a number for a tensor", (a, 2.0)),
        ("None", (a, None)),
        ("a string", (a, "b")),
        ("a list", (a, [b])),
        ("a meta tensor", (a, torch.empty(3, 4, device="meta"))),
        ("a sparse tensor", (a, b.to_sparse())),
    ]
    if torch.cuda.is_available():
        out.append(("a CUDA tensor", (a, b.cuda())))
    return out


@pytest.mark.parametrize("case", range(len(_bad_inputs(torch.ones(1), torch.ones(1)))))
def test_the_plan_without_grad_refuses_what_does_not_fit(case):
    cg, a, b = _compiled(grad=False)
    what, args = _bad_inputs(a, b)[case]
    with pytest.raises(thunder.ThunderError, match="thunder_lambda"):
        cg(*args)
    # and still runs what fits
    torch.testing.assert_close(cg(a, b)[0], (torch.tanh(a) * b).sum(1))


@pytest.mark.parametrize("case", range(len(_bad_inputs(torch.ones(1), torch.ones(1)))))
def test_the_forward_refuses_what_does_not_fit(case):
    cg, a, b = _compiled(grad=True)
    what, args = _bad_inputs(a, b)[case]
    with pytest.raises(thunder.ThunderError, match=r"thunder_lambda.*\(forward\)"):
        cg.forward(*args)


def test_the_backward_refuses_wrong_saved_values_and_cotangents():
    cg, a, b = _compiled(grad=True)
    outs, saved = cg.forward(a, b)
    saved = list(saved)
    ct = torch.ones(3)
    assert len(cg.backward(saved, [ct])) == 1  # what fits runs
    bad = [
        ("no cotangent", saved, []),
        ("two cotangents", saved, [ct, ct]),
        ("a saved value missing", saved[:-1], [ct]),
        ("a saved value too many", saved + [ct], [ct]),
        ("a cotangent of another shape", saved, [torch.ones(4)]),
        ("a cotangent of another dtype", saved, [ct.double()]),
        ("a number cotangent", saved, [1.0]),
        ("a None cotangent", saved, [None]),
        ("a sparse cotangent", saved, [ct.to_sparse()]),
        ("a meta cotangent", saved, [torch.empty(3, device="meta")]),
    ]
    for what, s, c in bad:
        with pytest.raises(thunder.ThunderError, match=r"thunder_lambda.*\(backward\)"):
            cg.backward(s, c)
            pytest.fail(f"{what}: accepted")


def test_a_graph_without_grad_has_no_backward():
    cg, a, b = _compiled(grad=False)
    with pytest.raises(thunder.ThunderError, match="no backward"):
        cg.backward([], [torch.ones(3)])


T = ("tensor", "torch.float32", [3, 4], "cpu", False)


@pytest.mark.parametrize(
    "inputs,nodes,outputs,wrt",
    [
        ([("what",)], [], [0], []),
        ([("tensor", "torch.complex32", [3], "cpu", False)], [], [0], []),
        ([("tensor", "torch.float32", [3], "tpu:0", False)], [], [0], []),
        ([("tensor", "torch.float32", [-3], "cpu", False)], [], [0], []),
        ([("tensor", "torch.float32", [2**62, 2**62], "cpu", False)], [], [0], []),
        ([T], [("add", [("ref", 7), ("ref", 0)], "x")], [1], []),
        ([T], [("add", [("ref", -1), ("ref", 0)], "x")], [1], []),
        ([T], [("add", [("ref", 0)], "x")], [1], []),
        ([T], [("no_such_op", [("ref", 0)], "x")], [1], []),
        ([T], [("reshape", [("ref", 0), ("list", [("int", 2**62), ("int", 2**62)])], "x")], [1], []),
        ([T], [("reshape", [("ref", 0), ("list", [("int", -5), ("int", -5)])], "x")], [1], []),
        ([T], [("narrow", [("ref", 0), ("int", 0), ("int", 2**63 - 1), ("int", 1)], "x")], [1], []),
        ([T], [("sum", [("ref", 0), ("list", [("int", 99)]), ("bool", False), ("none",)], "x")], [1], []),
        ([T], [("add", [("ref", 0), ("what", 1)], "x")], [1], []),
        ([T], [], [5], []),
        ([T], [], [0], [3]),
        ([("int",)], [("exp", [("ref", 0)], "x")], [1], [0]),
    ],
)
def test_compile_refuses_malformed_graphs(inputs, nodes, outputs, wrt):
    # (ValueError, TypeError and OverflowError: PyO3's own, for arguments of the wrong type.)
    with pytest.raises((thunder.ThunderError, ValueError, TypeError, OverflowError)):
        _C.compile("bad", inputs, nodes, outputs, ["torch"], wrt)


def test_fsdp_layout_refuses_shapes_and_world_sizes_it_cannot_hold():
    ok = [("w", [4, 4], "torch.float32", "cpu")]
    assert _C.FsdpLayout(2, ok, 1 << 20).world_size == 2
    for world, params in [
        (0, ok),
        (2**40, ok),
        (2, [("w", [2**40, 2**40], "torch.float32", "cpu")]),
        (2, [("w", [4], "torch.what", "cpu")]),
    ]:
        with pytest.raises((thunder.ThunderError, ValueError)):
            _C.FsdpLayout(world, params, 1 << 20)


@pytest.mark.parametrize("timeout_s", [float("inf"), float("nan"), -1.0, 0.0, 1e30])
def test_the_nccl_communicator_refuses_timeouts_it_cannot_wait(timeout_s):
    # Checked before NCCL is looked for (a Duration of inf or 1e30 panicked).
    with pytest.raises(ValueError, match="timeout_s"):
        _C.Communicator(bytes(128), 0, 1, 0, timeout_s)


def test_the_nccl_communicator_refuses_a_malformed_id():
    with pytest.raises(ValueError, match="128 bytes"):
        _C.Communicator(bytes(5), 0, 1, 0, 10.0)
