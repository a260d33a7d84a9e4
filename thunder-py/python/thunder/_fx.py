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
    torch.relu: "relu", F.relu: "relu", F.silu: "silu", torch.where: "where",
}

# Elementwise Tensor methods (FX call_method names) -> thunder op names.
METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "neg": "neg", "abs": "abs",
    "pow": "pow", "matmul": "matmul", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "sin": "sin", "cos": "cos", "tanh": "tanh", "sigmoid": "sigmoid",
    "relu": "relu", "float": "to_float", "contiguous": "contiguous",
}

_R = object()  # a required parameter

# Ops with keyword arguments: the thunder op, its parameters in the order `thunder._C` takes them
# (with defaults), and which values of the others thunder does not support.
SIGNATURES = {
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
    torch.rms_norm: "rms_norm",
    torch._C._nn.scaled_dot_product_attention: "scaled_dot_product_attention",
    F.cross_entropy: "cross_entropy",
}

# Tensor methods with a signature; those whose sizes may come as separate ints.
SIGNATURE_METHODS = {
    "reshape": "reshape", "view": "view", "permute": "permute", "expand": "expand",
    "transpose": "transpose", "unsqueeze": "unsqueeze", "squeeze": "squeeze",
    "flatten": "flatten", "narrow": "narrow", "sum": "sum", "mean": "mean", "amax": "amax",
    "softmax": "softmax", "log_softmax": "log_softmax", "to": "to",
}
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
    trace = node.meta.get("stack_trace") or ""
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else node.format_node()


def encode(gm, example_inputs):
    """`(inputs, nodes, outputs)` for `_C.compile`."""
    index = {}
    inputs = []
    nodes = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(example_inputs):
        raise _unsupported("a graph whose inputs do not match its example inputs")
    for n, x in zip(placeholders, example_inputs):
        if isinstance(x, torch.Tensor):
            if type(x) is not torch.Tensor and not isinstance(x, torch.nn.Parameter):
                raise _unsupported(f"a tensor subclass input ({type(x).__name__})")
            dev = "cpu" if x.device.type == "cpu" else f"{x.device.type}:{x.device.index or 0}"
            inputs.append(("tensor", str(x.dtype), list(x.shape), dev, bool(x.requires_grad)))
        elif isinstance(x, bool):
            inputs.append(("bool",))
        elif isinstance(x, int):
            inputs.append(("int",))
        elif isinstance(x, float):
            inputs.append(("float",))
        else:
            raise _unsupported(f"an input of type {type(x).__name__}")
        index[n] = len(index)

    def arg(a, node):
        if isinstance(a, torch.fx.Node):
            if a not in index:
                raise _unsupported(f"{node.format_node()}: an argument computed outside the graph")
            return ("ref", index[a])
        if isinstance(a, (list, tuple, torch.Size)):
            return ("list", [arg(x, node) for x in a])
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

    outputs = None
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            continue
        if n.op == "output":
            outs = n.args[0]
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            if not all(isinstance(o, torch.fx.Node) and o in index for o in outs):
                raise _unsupported("an output that is not a computed tensor")
            outputs = [index[o] for o in outs]
            continue
        args = n.args
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
                op, what = None, n.op
            if op is None:
                raise _unsupported(f"{what} is not supported by thunder yet ({_origin(n)})")
            if n.kwargs:
                raise _unsupported(f"{what} with keyword arguments {sorted(n.kwargs)} ({_origin(n)})")
        nodes.append((op, [arg(a, n) for a in args], _origin(n)))
        index[n] = len(index)
    if outputs is None:
        raise _unsupported("a graph without outputs")
    return inputs, nodes, outputs
