"""Encodes a Dynamo FX graph for `thunder._C.compile`: inputs, nodes with canonical op names and
encoded arguments, outputs. Raises `UnsupportedError` for what has no translation yet."""

import operator

import torch
import torch.nn.functional as F

from . import _C

# Elementwise FX call_function targets -> thunder op names (positional arguments as they come).
FUNCTIONS = {
    operator.add: "add", torch.add: "add",
    operator.sub: "sub", torch.sub: "sub",
    operator.mul: "mul", torch.mul: "mul",
    operator.truediv: "div", torch.div: "div", torch.true_divide: "div",
    operator.neg: "neg", torch.neg: "neg",
    operator.abs: "abs", torch.abs: "abs",
    operator.pow: "pow", torch.pow: "pow",
    operator.matmul: "matmul", torch.matmul: "matmul",
    torch.exp: "exp", torch.log: "log", torch.sqrt: "sqrt", torch.rsqrt: "rsqrt",
    torch.sin: "sin", torch.cos: "cos", torch.tanh: "tanh", torch.sigmoid: "sigmoid",
    torch.erf: "erf", torch.special.erf: "erf", torch.relu: "relu", torch.where: "where",
}

# Elementwise Tensor methods (FX call_method names) -> thunder op names.
METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "neg": "neg", "abs": "abs",
    "pow": "pow", "matmul": "matmul", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "sin": "sin", "cos": "cos", "tanh": "tanh", "sigmoid": "sigmoid",
    "relu": "relu", "erf": "erf", "float": "to_float", "contiguous": "contiguous",
}

_R = object()  # a required parameter

# Ops with keyword arguments: the thunder op, its parameters in the order `thunder._C` takes them
# (with defaults), and which values of the others thunder does not support.
SIGNATURES = {
    "relu": ("relu", [("input", _R), ("inplace", False)]),
    "silu": ("silu", [("input", _R), ("inplace", False)]),
    "gelu": ("gelu", [("input", _R), ("approximate", "none")]),
    "clamp": ("clamp", [("input", _R), ("min", None), ("max", None)]),
    "masked_fill": ("masked_fill", [("input", _R), ("mask", _R), ("value", _R)]),
    "stack": ("stack", [("tensors", _R), ("dim", 0)]),
    "layer_norm": ("layer_norm", [("input", _R), ("normalized_shape", _R), ("weight", None),
                                  ("bias", None), ("eps", 1e-5)]),
    "dropout": ("dropout", [("input", _R), ("p", 0.5), ("training", True), ("inplace", False)]),
    "chunk": ("chunk", [("input", _R), ("chunks", _R), ("dim", 0)]),
    "split": ("split", [("tensor", _R), ("split_size_or_sections", _R), ("dim", 0)]),
    "reshape": ("reshape", [("input", _R), ("shape", _R)]),
    "view": ("view", [("input", _R), ("shape", _R)]),
    "permute": ("permute", [("input", _R), ("dims", _R)]),
    "expand": ("expand", [("input", _R), ("size", _R)]),
    "transpose": ("transpose", [("input", _R), ("dim0", _R), ("dim1", _R)]),
    "unsqueeze": ("unsqueeze", [("input", _R), ("dim", _R)]),
    "squeeze": ("squeeze", [("input", _R), ("dim", None)]),
    "flatten": ("flatten", [("input", _R), ("start_dim", 0), ("end_dim", -1)]),
    "narrow": ("narrow", [("input", _R), ("dim", _R), ("start", _R), ("length", _R)]),
    "cat": ("cat", [("tensors", _R), ("dim", 0)]),
    "sum": ("sum", [("input", _R), ("dim", None), ("keepdim", False), ("dtype", None)]),
    "mean": ("mean", [("input", _R), ("dim", None), ("keepdim", False), ("dtype", None)]),
    "amax": ("amax", [("input", _R), ("dim", ()), ("keepdim", False)]),
    "softmax": ("softmax", [("input", _R), ("dim", _R), ("_stacklevel", 3), ("dtype", None)]),
    "log_softmax": ("log_softmax", [("input", _R), ("dim", _R), ("_stacklevel", 3), ("dtype", None)]),
    "linear": ("linear", [("input", _R), ("weight", _R), ("bias", None)]),
    "embedding": ("embedding", [("input", _R), ("weight", _R), ("padding_idx", None),
                                ("max_norm", None), ("norm_type", 2.0),
                                ("scale_grad_by_freq", False), ("sparse", False)]),
    "rms_norm": ("rms_norm", [("input", _R), ("normalized_shape", _R), ("weight", None), ("eps", None)]),
    "scaled_dot_product_attention": (
        "scaled_dot_product_attention",
        [("query", _R), ("key", _R), ("value", _R), ("attn_mask", None), ("dropout_p", 0.0),
         ("is_causal", False), ("scale", None), ("enable_gqa", False)],
    ),
    "cross_entropy": ("cross_entropy", [("input", _R), ("target", _R), ("weight", None),
                                        ("size_average", None), ("ignore_index", -100),
                                        ("reduce", None), ("reduction", "mean"),
                                        ("label_smoothing", 0.0)]),
    "to": ("to_dtype", [("input", _R), ("dtype", _R)]),
}

# What thunder passes on, per op with a signature (the rest must keep their defaults).
_PASSED = {
    "relu": 1, "silu": 1, "dropout": 3,
    "sum": 3, "mean": 3, "softmax": 2, "log_softmax": 2, "embedding": 2,
    "cross_entropy": None,  # special: input, target, ignore_index, reduction
}

# FX call_function targets with a signature.
SIGNATURE_FUNCTIONS = {
    torch.reshape: "reshape", torch.permute: "permute", torch.transpose: "transpose",
    torch.unsqueeze: "unsqueeze", torch.squeeze: "squeeze", torch.flatten: "flatten",
    torch.narrow: "narrow", torch.cat: "cat", torch.sum: "sum", torch.mean: "mean",
    torch.amax: "amax", torch.softmax: "softmax", F.softmax: "softmax",
    torch.log_softmax: "log_softmax", F.log_softmax: "log_softmax",
    torch._C._nn.linear: "linear", F.embedding: "embedding", F.rms_norm: "rms_norm",
    torch.rms_norm: "rms_norm", F.relu: "relu", F.silu: "silu", F.gelu: "gelu",
    torch.clamp: "clamp", torch.clip: "clamp", torch.stack: "stack", F.layer_norm: "layer_norm",
    F.dropout: "dropout", torch.chunk: "chunk", torch.split: "split",
    torch.masked_fill: "masked_fill",
    torch._C._nn.scaled_dot_product_attention: "scaled_dot_product_attention",
    F.cross_entropy: "cross_entropy",
}

# Tensor methods with a signature; those whose sizes may come as separate ints.
SIGNATURE_METHODS = {
    "reshape": "reshape", "view": "view", "permute": "permute", "expand": "expand",
    "transpose": "transpose", "unsqueeze": "unsqueeze", "squeeze": "squeeze",
    "flatten": "flatten", "narrow": "narrow", "sum": "sum", "mean": "mean", "amax": "amax",
    "softmax": "softmax", "log_softmax": "log_softmax", "to": "to", "clamp": "clamp",
    "clip": "clamp", "masked_fill": "masked_fill", "chunk": "chunk", "split": "split",
}
# Keyword names of Tensor methods that differ from the function's.
_METHOD_KWARGS = {"split": {"split_size": "split_size_or_sections"}}
_VARARG_SIZES = {"reshape", "view", "permute", "expand"}


def _normalize(name, node, args, kwargs):
    """The positional arguments of `SIGNATURES[name]`, or raises UnsupportedError."""
    op, params = SIGNATURES[name]
    if name in _VARARG_SIZES and node.op == "call_method" and len(args) > 2:
        args = (args[0], tuple(args[1:]))
    if len(args) > len(params):
        raise _unsupported(f"{name} with {len(args)} arguments ({_origin(node)})")
    values = {}
    for (p, _), a in zip(params, args):
        values[p] = a
    if node.op == "call_method":
        renames = _METHOD_KWARGS.get(name, {})
        kwargs = {renames.get(k, k): v for k, v in kwargs.items()}
    for k, v in kwargs.items():
        if k not in dict(params) or k in values:
            raise _unsupported(f"{name} with argument {k} ({_origin(node)})")
        values[k] = v
    out = []
    for p, d in params:
        if p in values:
            out.append(values[p])
        elif d is _R:
            raise _unsupported(f"{name} without its argument {p} ({_origin(node)})")
        else:
            out.append(d)
    if name == "to":
        if not isinstance(out[1], torch.dtype):
            raise _unsupported(f"Tensor.to other than to a dtype ({_origin(node)})")
    if name in ("clamp", "masked_fill"):
        for v in out[1 if name == "clamp" else 2:]:
            if isinstance(v, torch.fx.Node):
                raise _unsupported(f"{name} with a tensor bound ({_origin(node)})")
    if name == "cross_entropy":
        defaults = dict(params)
        for p in ("weight", "size_average", "reduce", "label_smoothing"):
            if values.get(p, defaults[p]) != defaults[p]:
                raise _unsupported(f"cross_entropy with {p}={values[p]!r} ({_origin(node)})")
        return op, [out[0], out[1], out[4], out[6]]
    keep = _PASSED.get(name)
    if keep is not None:
        for (p, d), v in zip(params[keep:], out[keep:]):
            if v != d and p != "_stacklevel":
                raise _unsupported(f"{name} with {p}={v!r} ({_origin(node)})")
        out = out[:keep]
    return op, out


def _unsupported(msg):
    return _C.UnsupportedError(msg)


def _origin(node):
    """The user's source line of `node`, or (without one) the call as Python."""
    trace = node.meta.get("stack_trace") or ""
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
    if lines:
        return lines[-1]
    args = [str(a) for a in node.args] + [f"{k}={v}" for k, v in node.kwargs.items()]
    if node.op == "call_method":
        return f"{node.name} = {args[0]}.{node.target}({', '.join(args[1:])})"
    target = node.target
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    mod = {"torch._C._nn": "torch.nn.functional", "_operator": "operator"}.get(mod, mod)
    return f"{node.name} = {mod + '.' if mod else ''}{name}({', '.join(args)})"



class _Follows(Exception):
    """A node that consumes the tuple of an op that runs eagerly (it runs eagerly with it)."""


class _Opaque:
    """In a dry run: the value of a node that runs eagerly."""


def _shape(node):
    ev = node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None
    if not isinstance(ev, torch.Tensor):
        raise _unsupported(f"{node}: a value without a known shape")
    return list(ev.shape)


def describe(x):
    """The `_C.compile` description of an input value (a tensor, fake or real, or a number)."""
    if isinstance(x, torch.Tensor):
        if type(x) is not torch.Tensor and not isinstance(
            x, (torch.nn.Parameter, torch._subclasses.FakeTensor)
        ):
            raise _unsupported(f"a tensor subclass input ({type(x).__name__})")
        dev = "cpu" if x.device.type == "cpu" else f"{x.device.type}:{x.device.index or 0}"
        return ("tensor", str(x.dtype), list(x.shape), dev, bool(x.requires_grad))
    if isinstance(x, bool):
        return ("bool",)
    if isinstance(x, int):
        return ("int",)
    if isinstance(x, float):
        return ("float",)
    raise _unsupported(f"an input of type {type(x).__name__}")


class Encoding:
    """A graph encoded for `_C.compile`: `consts` are tensors (from `get_attr` nodes) the caller
    appends to the graph's arguments; `tuple_output` says whether the graph returns a tuple."""

    def __init__(self):
        self.inputs = []
        self.nodes = []
        self.outputs = []
        self.consts = []
        self.tuple_output = True


class _Encoder:
    def __init__(self, gm, dry):
        self.gm = gm
        self.dry = dry
        self.enc = Encoding()
        self.index = {}  # fx node -> value id, list of ids (a tuple), or _Opaque
        self.unsupported = {}  # fx node -> why (dry run)
        self.n = 0

    def _new(self):
        self.n += 1
        return self.n - 1

    def emit(self, op, args, origin):
        self.enc.nodes.append((op, args, origin))
        return self._new()

    def ref(self, a, node):
        v = self.index.get(a)
        if v is None:
            raise _unsupported(f"{node.format_node()}: an argument computed outside the graph")
        if isinstance(v, list):
            return ("list", [("ref", i) for i in v])
        if isinstance(v, _Opaque):
            return ("ref", -1)
        return ("ref", v)

    def arg(self, a, node):
        if isinstance(a, torch.fx.Node):
            return self.ref(a, node)
        if isinstance(a, (list, tuple, torch.Size)):
            return ("list", [self.arg(x, node) for x in a])
        if isinstance(a, torch.dtype):
            return ("str", str(a).removeprefix("torch."))
        if isinstance(a, str):
            return ("str", a)
        if isinstance(a, bool):
            return ("bool", a)
        if isinstance(a, int):
            return ("int", a)
        if isinstance(a, float):
            return ("float", a)
        if a is None:
            return ("none",)
        raise _unsupported(f"{_origin(node)}: an argument of type {type(a).__name__}")

    def run(self, args):
        """Encodes the graph; `args`: the values of its placeholders (None in a dry run: their
        example values)."""
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if args is not None and len(placeholders) != len(args):
            raise _unsupported("a graph whose inputs do not match its example inputs")
        for i, n in enumerate(placeholders):
            x = args[i] if args is not None else n.meta.get("example_value")
            if self.dry and not isinstance(x, (torch.Tensor, bool, int, float)):
                self.index[n] = _Opaque()
                continue
            self.enc.inputs.append(describe(x))
            self.index[n] = self._new()
        for n in self.gm.graph.nodes:
            if n.op == "get_attr":
                t = getattr(self.gm, n.target)
                if not isinstance(t, torch.Tensor):
                    raise _unsupported(f"the attribute {n.target} of type {type(t).__name__}")
                self.enc.consts.append(t)
        # Constants are inputs after the placeholders: number them now, in order.
        consts = iter(range(len(self.enc.consts)))
        for n in self.gm.graph.nodes:
            if n.op == "get_attr":
                self.enc.inputs.append(describe(self.enc.consts[next(consts)]))
                self.index[n] = self._new()
        # Node ids for emitted nodes follow the inputs.
        for n in self.gm.graph.nodes:
            if n.op in ("placeholder", "get_attr"):
                continue
            if n.op == "output":
                self.output(n)
                continue
            if not self.dry:
                self.index[n] = self.node(n)
                continue
            try:
                self.index[n] = self.node(n)
            except (_C.UnsupportedError, _Follows) as e:
                if isinstance(e, _C.UnsupportedError):
                    self.unsupported[n] = str(e)
                else:
                    self.unsupported[n] = None
                self.index[n] = _Opaque()
        return self.enc

    def output(self, n):
        outs = n.args[0]
        self.enc.tuple_output = isinstance(outs, (tuple, list))
        outs = outs if self.enc.tuple_output else (outs,)
        ids = []
        for o in outs:
            v = self.index.get(o) if isinstance(o, torch.fx.Node) else None
            if isinstance(v, int):
                ids.append(v)
            elif not self.dry:
                raise _unsupported("an output that is not a computed tensor")
        self.enc.outputs = ids

    def node(self, n):
        """Translates one fx node: its value id, or list of ids for a tuple."""
        if n.op == "call_function" and n.target is operator.getitem:
            return self.getitem(n)
        if n.op == "call_function" and n.target is getattr and len(n.args) == 2 and n.args[1] in ("T", "mT"):
            return self.transposed(n, *n.args)
        if n.op == "call_function" and n.target in SIGNATURE_FUNCTIONS:
            op, args = _normalize(SIGNATURE_FUNCTIONS[n.target], n, n.args, n.kwargs)
        elif n.op == "call_method" and n.target in SIGNATURE_METHODS:
            op, args = _normalize(SIGNATURE_METHODS[n.target], n, n.args, n.kwargs)
        else:
            if n.op == "call_function":
                op = FUNCTIONS.get(n.target)
                what = getattr(n.target, "__name__", str(n.target))
            elif n.op == "call_method":
                op = METHODS.get(n.target)
                what = f"Tensor.{n.target}"
            else:
                op, what = None, f"{n.op} {n.target}"
            if op is None:
                raise _unsupported(f"{what} is not supported by thunder yet ({_origin(n)})")
            if n.kwargs:
                raise _unsupported(f"{what} with keyword arguments {sorted(n.kwargs)} ({_origin(n)})")
            args = n.args
        if op in ("chunk", "split"):
            return self.pieces(op, n, *args)
        if op == "cat":
            args = [_without_legacy_empties(args[0]), *args[1:]]
        return self.emit(op, [self.arg(a, n) for a in args], _origin(n))

    def transposed(self, n, x, attr):
        """`x.T` (every dim reversed) and `x.mT` (the last two swapped) as a permute."""
        if not isinstance(x, torch.fx.Node) or not isinstance(x.meta.get("example_value"), torch.Tensor):
            raise _unsupported(f"getattr {attr} of something that is not a tensor ({_origin(n)})")
        dims = list(range(len(_shape(x))))
        if attr == "T":
            dims.reverse()
        elif len(dims) < 2:
            raise _unsupported(f".mT of a {len(dims)}-d tensor ({_origin(n)})")
        else:
            dims[-2], dims[-1] = dims[-1], dims[-2]
        return self.emit("permute", [self.arg(x, n), self.arg(dims, n)], _origin(n))

    def pieces(self, op, n, x, size, dim):
        """`chunk` and `split` as narrows of their input."""
        if not isinstance(dim, int) or any(isinstance(s, torch.fx.Node) for s in (
            size if isinstance(size, (list, tuple)) else [size]
        )):
            raise _unsupported(f"{op} with sizes computed at run time ({_origin(n)})")
        shape = _shape(x)
        d = dim + len(shape) if dim < 0 else dim
        if not 0 <= d < len(shape):
            raise _unsupported(f"{op} along dim {dim} of a {len(shape)}-d tensor ({_origin(n)})")
        length = shape[d]
        if op == "chunk":
            step = -(-length // size) if size > 0 else 0
            sizes = [min(step, length - s) for s in range(0, length, step)] if step else []
        elif isinstance(size, int):
            sizes = [min(size, length - s) for s in range(0, length, size)] if size > 0 else []
        else:
            sizes = list(size)
        if sum(sizes) != length or not sizes:
            raise _unsupported(f"{op} into {sizes} of a dim of size {length} ({_origin(n)})")
        out, start = [], 0
        for s in sizes:
            out.append(self.emit("narrow", [self.arg(x, n), ("int", d), ("int", start), ("int", s)],
                                 _origin(n)))
            start += s
        return out

    def getitem(self, n):
        src, idx = n.args
        v = self.index.get(src)
        if isinstance(v, list):
            if not isinstance(idx, int):
                raise _unsupported(f"a tuple indexed by {idx!r} ({_origin(n)})")
            return v[idx]
        if isinstance(v, _Opaque) and not isinstance(src.meta.get("example_value"), torch.Tensor):
            raise _Follows()
        # Tensor indexing with ints, slices (step 1), None and `...`.
        idx = idx if isinstance(idx, tuple) else (idx,)
        shape = _shape(src)
        consumed = sum(1 for i in idx if i is not None and i is not Ellipsis)
        if consumed > len(shape) or sum(1 for i in idx if i is Ellipsis) > 1:
            raise _unsupported(f"an index {idx!r} of a {len(shape)}-d tensor ({_origin(n)})")
        cur, d, org = self.arg(src, n), 0, _origin(n)
        for i in idx:
            if i is Ellipsis:
                d += len(shape) - consumed
                continue
            if i is None:
                cur = ("ref", self.emit("unsqueeze", [cur, ("int", d)], org))
                shape.insert(d, 1)
                d += 1
            elif isinstance(i, slice):
                if any(isinstance(p, torch.fx.Node) for p in (i.start, i.stop, i.step)):
                    raise _unsupported(f"a slice computed at run time ({org})")
                start, stop, step = i.indices(shape[d])
                if step != 1:
                    raise _unsupported(f"a slice with step {step} ({org})")
                length = max(stop - start, 0)
                if (start, length) != (0, shape[d]):
                    cur = ("ref", self.emit("narrow", [cur, ("int", d), ("int", start),
                                                       ("int", length)], org))
                    shape[d] = length
                d += 1
            elif isinstance(i, int) and not isinstance(i, bool):
                k = i + shape[d] if i < 0 else i
                if not 0 <= k < shape[d]:
                    raise _unsupported(f"index {i} out of range for size {shape[d]} ({org})")
                cur = ("ref", self.emit("narrow", [cur, ("int", d), ("int", k), ("int", 1)], org))
                cur = ("ref", self.emit("squeeze", [cur, ("list", [("int", d)])], org))
                shape.pop(d)
            else:
                raise _unsupported(f"indexing with {type(i).__name__} ({org})")
        return cur[1]  # an index that selects everything is the tensor itself


def _without_legacy_empties(tensors):
    """`torch.cat`'s operands without the 1-d empty tensors (shape `(0,)`) it skips whatever
    the other operands' rank (transformers' key/value cache starts as one); kept when all are."""
    def empty_1d(t):
        ev = t.meta.get("example_value") if isinstance(t, torch.fx.Node) else None
        return isinstance(ev, torch.Tensor) and tuple(ev.shape) == (0,)

    kept = [t for t in tensors if not empty_1d(t)]
    return kept if kept else list(tensors)


def encode(gm, args):
    """The `Encoding` of `gm` for the argument values `args`; raises `UnsupportedError`."""
    return _Encoder(gm, dry=False).run(args)


def unsupported_nodes(gm):
    """`{node: why}` for the nodes of `gm` thunder cannot translate (`why` is None for a node
    that only follows such a node, such as an item of its tuple)."""
    e = _Encoder(gm, dry=True)
    e.run(None)
    return e.unsupported
