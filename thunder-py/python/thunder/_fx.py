"""Encodes a Dynamo FX graph for `thunder._C.compile`: inputs, nodes with canonical op names and
encoded arguments, outputs. Raises `UnsupportedError` for what has no translation yet."""

import operator

import torch
import torch.nn.functional as F

from . import _C

# FX call_function targets -> thunder op names.
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

# FX call_method names (Tensor methods) -> thunder op names.
METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "neg": "neg", "abs": "abs",
    "pow": "pow", "matmul": "matmul", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "sin": "sin", "cos": "cos", "tanh": "tanh", "sigmoid": "sigmoid",
    "relu": "relu", "float": "to_float",
}


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
        nodes.append((op, [arg(a, n) for a in n.args], _origin(n)))
        index[n] = len(index)
    if outputs is None:
        raise _unsupported("a graph without outputs")
    return inputs, nodes, outputs
