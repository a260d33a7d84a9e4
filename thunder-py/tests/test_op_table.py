"""The front end reads thunder-ir's op table: every PyTorch callable the table names resolves and
translates (compiled on the CPU, compared with eager PyTorch), arguments are normalized from
PyTorch's signatures, and ops the table does not name for PyTorch are not taken."""

import operator
import warnings

import pytest
import torch
import torch.nn.functional as F

import thunder
from conftest import assert_same_grads
from thunder import _C, _fx

# One call per PyTorch path of the op table, on the inputs of `_inputs`. A new path needs a call
# here unless its op takes tensors only and no attributes (`_default_call` calls it on positive
# tensors); the first test says which paths need one.
CALLS = {
    "torch.abs": lambda x, p, y, m, i, w, s: torch.abs(x),
    "operator.abs": lambda x, p, y, m, i, w, s: operator.abs(x),  # abs(x) is x.__abs__()
    "torch.Tensor.abs": lambda x, p, y, m, i, w, s: x.abs(),
    "torch.neg": lambda x, p, y, m, i, w, s: torch.neg(x),
    "operator.neg": lambda x, p, y, m, i, w, s: -x,
    "torch.Tensor.neg": lambda x, p, y, m, i, w, s: x.neg(),
    "torch.exp": lambda x, p, y, m, i, w, s: torch.exp(x),
    "torch.Tensor.exp": lambda x, p, y, m, i, w, s: x.exp(),
    "torch.log": lambda x, p, y, m, i, w, s: torch.log(p),
    "torch.Tensor.log": lambda x, p, y, m, i, w, s: p.log(),
    "torch.sqrt": lambda x, p, y, m, i, w, s: torch.sqrt(p),
    "torch.Tensor.sqrt": lambda x, p, y, m, i, w, s: p.sqrt(),
    "torch.rsqrt": lambda x, p, y, m, i, w, s: torch.rsqrt(p),
    "torch.Tensor.rsqrt": lambda x, p, y, m, i, w, s: p.rsqrt(),
    "torch.sin": lambda x, p, y, m, i, w, s: torch.sin(x),
    "torch.Tensor.sin": lambda x, p, y, m, i, w, s: x.sin(),
    "torch.cos": lambda x, p, y, m, i, w, s: torch.cos(x),
    "torch.Tensor.cos": lambda x, p, y, m, i, w, s: x.cos(),
    "torch.tanh": lambda x, p, y, m, i, w, s: torch.tanh(x),
    "torch.Tensor.tanh": lambda x, p, y, m, i, w, s: x.tanh(),
    "torch.erf": lambda x, p, y, m, i, w, s: torch.erf(x),
    "torch.special.erf": lambda x, p, y, m, i, w, s: torch.special.erf(x),
    "torch.Tensor.erf": lambda x, p, y, m, i, w, s: x.erf(),
    "torch.sigmoid": lambda x, p, y, m, i, w, s: torch.sigmoid(x),
    "torch.Tensor.sigmoid": lambda x, p, y, m, i, w, s: x.sigmoid(),
    "torch.relu": lambda x, p, y, m, i, w, s: torch.relu(x),
    "torch.nn.functional.relu": lambda x, p, y, m, i, w, s: F.relu(x),
    "torch.Tensor.relu": lambda x, p, y, m, i, w, s: x.relu(),
    "torch.nn.functional.silu": lambda x, p, y, m, i, w, s: F.silu(x),
    "torch.nn.functional.gelu": lambda x, p, y, m, i, w, s: F.gelu(x, approximate="tanh"),
    "torch.add": lambda x, p, y, m, i, w, s: torch.add(x, y),
    "operator.add": lambda x, p, y, m, i, w, s: 2 + x,
    "torch.Tensor.add": lambda x, p, y, m, i, w, s: x.add(y),
    "torch.sub": lambda x, p, y, m, i, w, s: torch.sub(x, 1.5),
    "operator.sub": lambda x, p, y, m, i, w, s: x - y,
    "torch.Tensor.sub": lambda x, p, y, m, i, w, s: x.sub(y),
    "torch.mul": lambda x, p, y, m, i, w, s: torch.mul(x, 3),
    "operator.mul": lambda x, p, y, m, i, w, s: x * y,
    "torch.Tensor.mul": lambda x, p, y, m, i, w, s: x.mul(y),
    "torch.div": lambda x, p, y, m, i, w, s: torch.div(x, p),
    "torch.true_divide": lambda x, p, y, m, i, w, s: torch.true_divide(x, 2),
    "operator.truediv": lambda x, p, y, m, i, w, s: x / p,
    "torch.Tensor.div": lambda x, p, y, m, i, w, s: x.div(4),
    "torch.pow": lambda x, p, y, m, i, w, s: torch.pow(p, 0.5),
    "operator.pow": lambda x, p, y, m, i, w, s: 2 ** x,
    "torch.Tensor.pow": lambda x, p, y, m, i, w, s: x.pow(2),
    "torch.where": lambda x, p, y, m, i, w, s: torch.where(m, x, 0.0),
    "torch.masked_fill": lambda x, p, y, m, i, w, s: torch.masked_fill(x, m, 0.5),
    "torch.Tensor.masked_fill": lambda x, p, y, m, i, w, s: x.masked_fill(m, -1.0),
    "torch.clamp": lambda x, p, y, m, i, w, s: torch.clamp(x, -0.5, 0.5),
    "torch.clip": lambda x, p, y, m, i, w, s: torch.clip(x, min=-0.1),
    "torch.Tensor.clamp": lambda x, p, y, m, i, w, s: x.clamp(max=0.3),
    "torch.Tensor.clip": lambda x, p, y, m, i, w, s: x.clip(-1, 1),
    "torch.sum": lambda x, p, y, m, i, w, s: torch.sum(x, 1),
    "torch.Tensor.sum": lambda x, p, y, m, i, w, s: x.sum(),
    "torch.mean": lambda x, p, y, m, i, w, s: torch.mean(x, dim=0, keepdim=True),
    "torch.Tensor.mean": lambda x, p, y, m, i, w, s: x.mean(),
    "torch.amax": lambda x, p, y, m, i, w, s: torch.amax(x, 1),
    "torch.Tensor.amax": lambda x, p, y, m, i, w, s: x.amax(dim=(0, 1)),
    "torch.softmax": lambda x, p, y, m, i, w, s: torch.softmax(x, -1),
    "torch.nn.functional.softmax": lambda x, p, y, m, i, w, s: F.softmax(x, dim=0),
    "torch.Tensor.softmax": lambda x, p, y, m, i, w, s: x.softmax(1),
    "torch.log_softmax": lambda x, p, y, m, i, w, s: torch.log_softmax(x, -1),
    "torch.nn.functional.log_softmax": lambda x, p, y, m, i, w, s: F.log_softmax(x, dim=0),
    "torch.Tensor.log_softmax": lambda x, p, y, m, i, w, s: x.log_softmax(1),
    "torch.nn.functional.cross_entropy": lambda x, p, y, m, i, w, s: F.cross_entropy(x, i, reduction="sum"),
    "torch.rms_norm": lambda x, p, y, m, i, w, s: torch.rms_norm(x, (6,), w[0], 1e-5),
    "torch.nn.functional.rms_norm": lambda x, p, y, m, i, w, s: F.rms_norm(x, [6]),
    "torch.nn.functional.layer_norm": lambda x, p, y, m, i, w, s: F.layer_norm(x, (6,), w[0], w[1]),
    "torch.nn.functional.dropout": lambda x, p, y, m, i, w, s: F.dropout(x, 0.5, training=False),
    "torch.nn.functional.embedding": lambda x, p, y, m, i, w, s: F.embedding(i, w),
    "torch._C._nn.linear": lambda x, p, y, m, i, w, s: F.linear(x, w, w[0]),
    "torch.matmul": lambda x, p, y, m, i, w, s: torch.matmul(x, w),
    "operator.matmul": lambda x, p, y, m, i, w, s: x @ w,
    "torch.Tensor.matmul": lambda x, p, y, m, i, w, s: x.matmul(w),
    "torch.addmm": lambda x, p, y, m, i, w, s: torch.addmm(w[0], x, w),
    "torch.Tensor.addmm": lambda x, p, y, m, i, w, s: y.addmm(x, w, beta=0.5, alpha=2),
    "torch.conv2d": lambda x, p, y, m, i, w, s: torch.conv2d(
        x.view(1, 1, 4, 6), w[:2].reshape(2, 1, 2, 3), w[2, :2], 1, 1
    ),
    "torch.nn.functional.conv2d": lambda x, p, y, m, i, w, s: (
        F.conv2d(y.view(1, 2, 2, 6), w.view(4, 1, 3, 3), padding=(1, 0), stride=(1, 2),
                 dilation=(1, 2), groups=2),
        F.conv2d(x.view(1, 4, 6), w[:3, :4].reshape(3, 1, 2, 2), stride=2),  # patches, unbatched
    ),
    "torch._C._nn.scaled_dot_product_attention": lambda x, p, y, m, i, w, s: (
        F.scaled_dot_product_attention(x.view(1, 2, 2, 6), y.view(1, 2, 2, 6), p.view(1, 2, 2, 6),
                                       is_causal=True)
    ),
    "torch.reshape": lambda x, p, y, m, i, w, s: torch.reshape(x, (6, 4)),
    "torch.Tensor.reshape": lambda x, p, y, m, i, w, s: x.reshape(2, 12),
    "torch.Tensor.view": lambda x, p, y, m, i, w, s: x.view(-1),
    "torch.permute": lambda x, p, y, m, i, w, s: torch.permute(x, (1, 0)),
    "torch.Tensor.permute": lambda x, p, y, m, i, w, s: x.permute(1, 0),
    "torch.transpose": lambda x, p, y, m, i, w, s: torch.transpose(x, 0, 1),
    "torch.Tensor.transpose": lambda x, p, y, m, i, w, s: x.transpose(1, 0),
    "torch.unsqueeze": lambda x, p, y, m, i, w, s: torch.unsqueeze(x, 0),
    "torch.Tensor.unsqueeze": lambda x, p, y, m, i, w, s: x.unsqueeze(-1),
    "torch.squeeze": lambda x, p, y, m, i, w, s: torch.squeeze(s, 1),
    "torch.Tensor.squeeze": lambda x, p, y, m, i, w, s: s.squeeze(),
    "torch.flatten": lambda x, p, y, m, i, w, s: torch.flatten(s),
    "torch.Tensor.flatten": lambda x, p, y, m, i, w, s: s.flatten(1),
    "torch.Tensor.expand": lambda x, p, y, m, i, w, s: s.expand(4, 3, 6),
    "torch.split": lambda x, p, y, m, i, w, s: torch.split(x, 2),
    "torch.Tensor.split": lambda x, p, y, m, i, w, s: x.split([1, 5], dim=1),
    "torch.narrow": lambda x, p, y, m, i, w, s: torch.narrow(x, 1, 2, 3),
    "torch.Tensor.narrow": lambda x, p, y, m, i, w, s: x.narrow(0, 1, 2),
    "torch.nn.functional.pad": lambda x, p, y, m, i, w, s: (
        F.pad(x, (1, 2)), F.pad(x, [0, 1, -1, 2], "constant", 0.5), F.pad(i, (2, 0), value=-1)
    ),
    "torch._C._nn.pad": lambda x, p, y, m, i, w, s: torch._C._nn.pad(s, [1, 1, 0, 0, -1, 0], value=2.0),
    "torch.gather": lambda x, p, y, m, i, w, s: torch.gather(x, 1, i.view(4, 1).expand(4, 3)),
    "torch.Tensor.gather": lambda x, p, y, m, i, w, s: x.gather(0, index=i.view(1, 4).expand(3, 4)),
    "torch.repeat_interleave": lambda x, p, y, m, i, w, s: torch.repeat_interleave(s, 2, dim=1),
    "torch.Tensor.repeat_interleave": lambda x, p, y, m, i, w, s: x.repeat_interleave(3, -1),
    "torch.index_select": lambda x, p, y, m, i, w, s: torch.index_select(x, 1, i),
    "torch.Tensor.index_select": lambda x, p, y, m, i, w, s: x.index_select(0, i[1]),
    "torch.triu": lambda x, p, y, m, i, w, s: torch.triu(x, 1),
    "torch.Tensor.triu": lambda x, p, y, m, i, w, s: s.triu(),
    "torch.tril": lambda x, p, y, m, i, w, s: torch.tril(m, diagonal=-1),
    "torch.Tensor.tril": lambda x, p, y, m, i, w, s: w.tril(),
    "torch.cumsum": lambda x, p, y, m, i, w, s: (torch.cumsum(x, 1), torch.cumsum(m, -1)),
    "torch.Tensor.cumsum": lambda x, p, y, m, i, w, s: i.cumsum(0, dtype=torch.float64),
    "torch.cat": lambda x, p, y, m, i, w, s: torch.cat([x, y], 1),
    "torch.stack": lambda x, p, y, m, i, w, s: torch.stack([x, y]),
    "torch.Tensor.to": lambda x, p, y, m, i, w, s: x.to(torch.float64),
    "torch.zeros": lambda x, p, y, m, i, w, s: (torch.zeros(2, 3), torch.zeros((4,), dtype=torch.int64)),
    "torch.ones": lambda x, p, y, m, i, w, s: torch.ones([4, 6], dtype=torch.bfloat16, device="cpu"),
    "torch.full": lambda x, p, y, m, i, w, s: (torch.full((2, 3), 1.5), torch.full((2,), 7)),
    "torch.arange": lambda x, p, y, m, i, w, s: (
        torch.arange(5), torch.arange(2, 9), torch.arange(0, 10, 3, dtype=torch.float32, device="cpu")
    ),
    "torch.bitwise_and": lambda x, p, y, m, i, w, s: torch.bitwise_and(m, x > 0),
    "operator.and_": lambda x, p, y, m, i, w, s: operator.and_(m, x > 0),
    "torch.Tensor.bitwise_and": lambda x, p, y, m, i, w, s: i.bitwise_and(3),
    "torch.bitwise_or": lambda x, p, y, m, i, w, s: torch.bitwise_or(m, x < 0),
    "operator.or_": lambda x, p, y, m, i, w, s: operator.or_(x < -0.5, m),
    "torch.Tensor.bitwise_or": lambda x, p, y, m, i, w, s: i.bitwise_or(4),
    "torch.bitwise_xor": lambda x, p, y, m, i, w, s: torch.bitwise_xor(i, 5),
    "operator.xor": lambda x, p, y, m, i, w, s: operator.xor(m, y > 0),
    "torch.Tensor.bitwise_xor": lambda x, p, y, m, i, w, s: m.bitwise_xor(x > 0),
    "torch.bitwise_not": lambda x, p, y, m, i, w, s: torch.bitwise_not(i),
    "operator.invert": lambda x, p, y, m, i, w, s: operator.invert(i),
    "torch.Tensor.bitwise_not": lambda x, p, y, m, i, w, s: m.bitwise_not(),
    "operator.mod": lambda x, p, y, m, i, w, s: operator.mod(x, 0.5),
    "torch.Tensor.__eq__": lambda x, p, y, m, i, w, s: x == y,
    "torch.Tensor.__ne__": lambda x, p, y, m, i, w, s: i != 3,
    "torch.Tensor.__lt__": lambda x, p, y, m, i, w, s: x < y,
    "torch.Tensor.__le__": lambda x, p, y, m, i, w, s: x <= 0.1,
    "torch.Tensor.__gt__": lambda x, p, y, m, i, w, s: i > 1,
    "torch.Tensor.__ge__": lambda x, p, y, m, i, w, s: x >= y,
    "torch.Tensor.__and__": lambda x, p, y, m, i, w, s: m & (x > 0),
    "torch.Tensor.__or__": lambda x, p, y, m, i, w, s: (x < -0.5) | m,
    "torch.Tensor.__xor__": lambda x, p, y, m, i, w, s: i ^ 6,
    "torch.Tensor.__invert__": lambda x, p, y, m, i, w, s: ~m,
    "torch.Tensor.__mod__": lambda x, p, y, m, i, w, s: x % 0.75,
    "torch.Tensor.__abs__": lambda x, p, y, m, i, w, s: abs(x),
    "torch.eq": lambda x, p, y, m, i, w, s: torch.eq(x, y),
    "operator.eq": lambda x, p, y, m, i, w, s: operator.eq(i, 2),
    "torch.Tensor.eq": lambda x, p, y, m, i, w, s: x.eq(y),
    "torch.ne": lambda x, p, y, m, i, w, s: torch.ne(x, 0.5),
    "operator.ne": lambda x, p, y, m, i, w, s: operator.ne(i, 1),
    "torch.Tensor.ne": lambda x, p, y, m, i, w, s: x.ne(y),
}

# The op a call leaves in the captured trace, where it is not the op itself.
TRACED = {"split": "narrow", "dropout": None}  # dropout in eval is the identity


def _inputs():
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    return (
        x,
        torch.rand(4, 6) + 0.5,  # p: positive
        torch.randn(4, 6),
        torch.rand(4, 6) > 0.5,  # m: a mask
        torch.randint(0, 4, (4,)),  # i: indices, class targets
        torch.randn(6, 6),  # w
        torch.randn(4, 1, 6),  # s: a size-1 dim
    )


def _table():
    return {name: paths for name, paths, _, _ in _C.op_table()}


def _default_call(op, path):
    """The call of `path` on positive tensors, for an op whose operands are all tensors and that
    has no attributes (plain elementwise ops); None for other ops."""
    for name, _, operands, attrs in _C.op_table():
        if name == op:
            break
    else:
        return None
    if attrs or not operands or any(kind not in ("Tensor", "TensorOrNumber") for _, kind in operands):
        return None
    n = len(operands)
    positives = [torch.rand(4, 6, generator=torch.Generator().manual_seed(k)) + 0.5 for k in range(n)]
    if path.startswith("torch.Tensor."):
        method = path.rpartition(".")[2]
        return lambda *_: getattr(positives[0], method)(*positives[1:])
    fn = _fx._resolve(path)
    return lambda *_: fn(*positives)


def _call(op, path):
    return CALLS.get(path) or _default_call(op, path)


def _flat(out):
    return [t for o in (out if isinstance(out, tuple) else (out,))
            for t in (o if isinstance(o, (tuple, list)) else (o,))]


def test_every_path_of_the_table_resolves_and_has_a_call_here():
    paths = {p for ps in _table().values() for p in ps}
    missing = sorted(p for op, ps in _table().items() for p in ps if _call(op, p) is None)
    assert not missing, f"paths without a call in CALLS: {missing}"
    assert set(CALLS) <= paths, f"calls for paths the table does not name: {sorted(set(CALLS) - paths)}"
    for name, ps in _table().items():
        for p in ps:
            t = _fx.METHODS[p.rpartition(".")[2]] if p.startswith("torch.Tensor.") else None
            if t is None:
                obj = _fx._resolve(p)
                t = _fx.FUNCTIONS[obj]
            assert t.op.name == name and t.overloads, p
    assert sorted(_C.supported_ops()) == sorted(_table())


@pytest.mark.parametrize("op", sorted(_table()))
def test_every_path_translates_and_matches_eager(op):
    calls = [_call(op, p) for p in _table()[op]]

    def f(*a):
        return tuple(c(*a) for c in calls)

    args = _inputs()
    jf = thunder.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback after a failed compile
        got = jf(*args)
    want = f(*args)
    for g, w in zip(_flat(got), _flat(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        torch.testing.assert_close(g, w)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s
    traced = TRACED.get(op, op)
    if traced:
        captured = thunder.last_traces(jf)[0]
        assert f"ltorch.{traced}(" in captured, captured


def test_ops_without_pytorch_names_are_not_taken():
    # round is a torch-level op of the table, but its row names no PyTorch callable: the call is
    # not translated into it, and runs as the ATen operator it reaches instead.
    assert "round" not in _table() and "round" not in _C.supported_ops()
    jf = thunder.jit(lambda x: torch.round(x) * 2, fallback="eager")
    x = torch.rand(5) * 10
    torch.testing.assert_close(jf(x), torch.round(x) * 2)
    s = thunder.compile_stats(jf)
    assert (s["compiled_graphs"], s["eager_graphs"]) == (1, 0), s
    assert s["aten_calls"] == {"round.default": 1}, s
    # A graph that names it anyway is refused by the Rust side.
    with pytest.raises(_C.UnsupportedError, match="round is not supported by thunder yet"):
        _C.compile("g", [("tensor", "torch.float32", [3], "cpu", False)],
                   [("round", [("ref", 0)], "x", None)], [1], ["torch"])


def test_a_path_that_does_not_resolve_is_an_import_error(monkeypatch):
    (name, _, operands, attrs), *_ = _C.op_table()
    monkeypatch.setattr(_C, "op_table", lambda: [(name, ["torch.no_such_function"], operands, attrs)])
    with pytest.raises(ImportError, match=rf"torch\.no_such_function for ltorch\.{name}.*does not resolve"):
        _fx._load()


def test_nodes_carry_the_op_signature_order():
    # rms_norm(input, normalized_shape, weight, eps) in PyTorch; (a, weight; normalized_shape, eps)
    # in the IR: the node is in the IR's order, optional attributes left out are None.
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.compile(lambda x, w: F.rms_norm(x, (6,), w) + torch.add(x, 1),
                  backend=capture, dynamic=False)(torch.randn(2, 6), torch.randn(6))
    (gm,) = graphs
    enc = _fx.encode(gm, [n.meta["example_value"] for n in gm.graph.nodes if n.op == "placeholder"])
    ops = [(op, a) for op, a, _, _ in enc.nodes]
    assert ops == [
        ("rms_norm", [("ref", 0), ("ref", 1), ("list", [("int", 6)]), ("none",)]),
        ("add", [("ref", 0), ("int", 1), ("none",)]),
        ("add", [("ref", 2), ("ref", 3), ("none",)]),
    ], ops


@pytest.mark.parametrize("f,says,aten", [
    (lambda x, i, w: F.cross_entropy(x, i, weight=w[0]), "cross_entropy with weight=", True),
    (lambda x, i, w: F.cross_entropy(x, i, label_smoothing=0.1), "cross_entropy with label_smoothing=0.1", False),
    (lambda x, i, w: F.embedding(i, w, max_norm=1.0), "embedding with max_norm=1.0", False),
    (lambda x, i, w: torch.div(x, w[0], rounding_mode="floor"), "div with arguments that fit no signature", True),
    (lambda x, i, w: x.to(device="cpu", non_blocking=True) * 2, "to with non_blocking=True", True),
    (lambda x, i, w: x.clamp(min=w[0]), "clamp with a tensor min", True),
    (lambda x, i, w: x.view(torch.int32), "view with arguments that fit no signature", True),
    (lambda x, i, w: F.pad(x, (1, 1), mode="reflect"), "pad with mode='reflect'", True),
    (lambda x, i, w: x.gather(0, i.view(4, 1), sparse_grad=True), "gather with sparse_grad=True", True),
    (lambda x, i, w: x.repeat_interleave(2), "repeat_interleave without its argument dim", True),
], ids=["ce-weight", "ce-label-smoothing", "embedding-max-norm", "div-rounding", "to-non-blocking",
        "clamp-tensor", "view-dtype", "pad-reflect", "gather-sparse-grad", "repeat-interleave-flat"])
def test_arguments_the_op_lacks_run_as_aten_calls_or_on_the_fallback_and_say_why(f, says, aten):
    # A call whose arguments thunder's op does not take runs as the ATen operators it reaches
    # (`prims.aten`), compiled with the rest, its gradients ATen's; where that is refused too
    # (it writes in place: embedding's max_norm, label smoothing's decomposition), the
    # fallback runs it, and the reason starts with what is unsupported.
    torch.manual_seed(0)
    # (Eager refuses a weight of cross_entropy that requires grad: only x does.)
    args = (torch.randn(4, 6, requires_grad=True), torch.randint(0, 4, (4,)), torch.randn(6, 6))
    jf = thunder.jit(f, fallback="eager")
    want, got = f(*args), jf(*args)
    torch.testing.assert_close(got, want)
    if want.requires_grad:
        assert_same_grads(got, want, [a for a in args if a.requires_grad])
    s = thunder.compile_stats(jf)
    if aten:
        assert s["eager_graphs"] == 0 and not s["unsupported"], s
    else:
        assert s["eager_graphs"] >= 1, s
        assert any(w.startswith(says) for w in s["unsupported"]), s


def test_repeat_interleave_needs_an_int_repeats_and_a_dim():
    # A tensor repeats (the output shape depends on its values) or dim=None (flattening) is not
    # ltorch.repeat_interleave: such calls run eagerly, and say why.
    t = _fx.FUNCTIONS[torch.repeat_interleave]
    x, r = _fx._Value(0), _fx._Value(1)

    class Node:
        meta, args, kwargs, name, op, target = {}, (), {}, "n", "call_function", torch.repeat_interleave

    assert t.normalize(Node(), (x, 2), {"dim": 1}) == [x, 2, 1]
    for args, kwargs, says in [
        ((x, r), {"dim": 0}, "repeat_interleave with a tensor repeats"),
        ((x, 2), {}, "repeat_interleave without its argument dim"),
        ((x, 2, 1), {"output_size": 4}, "repeat_interleave with output_size=4"),
    ]:
        with pytest.raises(_C.UnsupportedError, match=says):
            t.normalize(Node(), args, kwargs)


def test_parameters_the_op_has_are_passed_on():
    def f(x, y, i, w, m, k):
        return (
            torch.add(x, y, alpha=2), x.sub(y, alpha=0.5), torch.sum(x, 1, dtype=torch.float64),
            x.softmax(-1, dtype=torch.float64), F.embedding(i, w, padding_idx=0),
            x.masked_fill(m, y[0, 0]), k.clamp(0, 3), x.unsqueeze(0).unsqueeze(2).squeeze(0, 2),
        )

    torch.manual_seed(0)
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    w = torch.randn(6, 6, requires_grad=True)
    args = (x, y, torch.tensor([0, 1, 0, 3]), w, torch.rand(4, 6) > 0.5, torch.randint(-5, 5, (4,)))
    jf = thunder.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = jf(*args)
    want = f(*args)
    for g, e in zip(got, want, strict=True):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        torch.testing.assert_close(g, e)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s
    # embedding's padding_idx: no gradient for the padding row.
    (gw,) = torch.autograd.grad(got[4].sum(), w)
    (ew,) = torch.autograd.grad(want[4].sum(), w)
    torch.testing.assert_close(gw, ew)
    assert gw[0].abs().sum() == 0


def test_creation_follows_the_default_dtype():
    # torch.zeros(3) is float64 under set_default_dtype(float64): the front end passes the dtype
    # eager gives rather than the IR's float32 default.
    def f(x):
        return torch.zeros(3) + x, torch.arange(4.0), torch.full((2,), 1.5), torch.arange(3)

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        x = torch.randn(3)
        jf = thunder.jit(f)
        for g, w in zip(jf(x), f(x), strict=True):
            assert g.dtype == w.dtype, (g.dtype, w.dtype)
            torch.testing.assert_close(g, w)
        s = thunder.compile_stats(jf)
        assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s
    finally:
        torch.set_default_dtype(previous)


def test_sugar_is_not_an_op():
    # x.float(), x.contiguous() and chunk are the front end's: to, the value itself, narrows.
    def f(x, d):
        a, b = torch.chunk(x, 2, dim=1)
        c, e = x.chunk(2)
        return d.float(), x.contiguous(), a * b, c - e

    args = (torch.randn(4, 6), torch.randn(3, dtype=torch.float64))
    jf = thunder.jit(f)
    for g, w in zip(jf(*args), f(*args), strict=True):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w)
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0, s
    captured = thunder.last_traces(jf)[0]
    assert "ltorch.to(" in captured and "ltorch.narrow(" in captured, captured
    assert not any(hasattr(_fx, n) for n in ("SIGNATURES", "SIGNATURE_FUNCTIONS", "_PASSED"))
    assert operator.getitem not in _fx.FUNCTIONS


def test_usage_logging_does_not_split_the_graph():
    # nn.Module constructors and some functionals log their use; the call computes no value.
    def f(x):
        torch._C._log_api_usage_once("thunder.test")
        return x * 2 + 1

    jf = thunder.jit(f)
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), f(x))
    s = thunder.compile_stats(jf)
    assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s


def test_device_moves_compile_and_other_devices_run_eagerly():
    x = torch.randn(4, 3)
    cases = [
        lambda x: x.to("cpu") * 2,
        lambda x: x.to(torch.device("cpu"), torch.float64) + 1,
        lambda x: x.to(device="cpu", dtype=torch.float16),
    ]
    if torch.cuda.is_available():
        cases += [lambda x: (x.to("cuda") * 2).to("cpu"), lambda x: x.to(torch.device("cuda", 0)).sum()]
    for f in cases:
        jf = thunder.jit(f)
        got, want = jf(x), f(x)
        assert got.device == want.device and got.dtype == want.dtype
        torch.testing.assert_close(got, want)
        s = thunder.compile_stats(jf)
        assert s["compiled_graphs"] == 1 and s["eager_graphs"] == 0 and not s["unsupported"], s
    # A device thunder does not run on (meta) is not translated: that piece runs eagerly.
    jf = thunder.jit(lambda x: x.to("meta"), fallback="eager")
    assert jf(x).is_meta
    s = thunder.compile_stats(jf)
    assert s["eager_graphs"] == 1 and any("meta" in w for w in s["unsupported"]), s
