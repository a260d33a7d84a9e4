"""Calls thunder has no translation for, as the ATen operators they reach (`prims.aten`).

A call the op table does not know (`torch.cummax`, `torch.logcumsumexp`, a method) need not
split the graph: run once on fake tensors under a dispatch mode, it shows the ATen operators it
reaches below autograd, with every argument and the metadata of every result. Each becomes one
`prims.aten` node of the trace, which thunder runs by name through PyTorch's dispatcher and
differentiates with ATen's own autograd formula (`prims.aten_vjp`). Such a node is a fusion
barrier, but no graph break: what surrounds it stays compiled.

Refused (the call then stays with the fallback, with the reason): operators outside the `aten`
namespace, operators that write into an operand or draw random numbers, results that are not
tensors, a tensor made inside the call rather than computed from its operands, arguments thunder
cannot state (devices, layouts, symbolic sizes), operands on several devices, and,
when gradients flow, operators whose derivative PyTorch does not implement (asked on fake tensors
before anything runs). The results' metadata is checked against Dynamo's for the node.
"""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# The dtypes thunder-ir knows (`DType`), by torch name.
_DTYPES = {
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128,
    torch.float8_e4m3fn, torch.float8_e5m2,
}


# The memory formats thunder-ir's `args` text names (`MEMORY_FORMATS`).
_MEMORY_FORMATS = {"contiguous_format", "preserve_format", "channels_last", "channels_last_3d"}


class _NumberArg:
    """A schema argument of a number type (for the number inside a `wrap(...)`)."""

    type = "Scalar"
    name = "number"


_NUMBER = _NumberArg()


class Refused(Exception):
    """Why a call cannot run as ATen calls."""


class Call:
    """One `prims.aten` node: `op` (`cummax.default`), the tensor operands (`operands`: tokens
    of the caller's values or `(i, k)`, output k of call i), the `args` and `out` texts."""

    def __init__(self, op, operands, args, out, n_out):
        self.op = op
        self.operands = operands
        self.args = args
        self.out = out
        self.n_out = n_out


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.calls.append((func, args, kwargs, out))
        return out


def _name(t):
    return str(t).removeprefix("torch.")


def _float(v):
    """A float as thunder-ir's printer writes it (`float('inf')` for infinities and NaN)."""
    v = float(v)
    if v != v:
        return "float('nan')"
    if v in (float("inf"), float("-inf")):
        return "float('inf')" if v > 0 else "-float('inf')"
    return repr(v)


def _string(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tensors(x):
    """The tensors of a result (a tensor, or a tuple or list of them); None if it holds more."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in x):
        return list(x)
    return None


def _sizes(t):
    sizes = list(t.shape)
    if not all(type(d) is int for d in sizes):
        raise Refused(f"a result of symbolic sizes {sizes}")
    return sizes


def _query(func, out):
    """Whether a recorded call only reads metadata (`prim::device`, `aten::sym_size`): it
    writes nothing and returns no tensor, so it computes no value (a size it returns is a
    constant of this graph, whose sizes are static)."""
    schema = getattr(func, "_schema", None)
    leaves = torch.utils._pytree.tree_leaves(out)
    return (schema is not None and not schema.is_mutable
            and not any(isinstance(x, torch.Tensor) for x in leaves))


def _check_op(func):
    if not isinstance(func, torch._ops.OpOverload):
        raise Refused(f"{func} is not an ATen operator")
    name = f"{func._opname}.{func._overloadname}"
    if func.namespace != "aten":
        raise Refused(f"{func.namespace}::{name} is not an ATen operator")
    schema = func._schema
    if schema.is_mutable:
        raise Refused(f"aten.{name} writes into an operand")
    if torch.Tag.nondeterministic_seeded in func.tags or any(
            "Generator" in str(a.type) for a in schema.arguments):
        raise Refused(f"aten.{name} draws random numbers")
    if any(str(r.type) not in ("Tensor", "List[Tensor]") for r in schema.returns):
        raise Refused(f"aten.{name} returns {schema.returns}, not tensors")
    return name, schema


def _check_running_stats(name, arguments):
    """Batch normalization's kernels (`native_batch_norm`, `cudnn_batch_norm`,
    `batch_norm_gather_stats`, ...) update the running statistics they are given in place when
    they use the batch's statistics, though their schemas do not say so: refused (run again for
    the backward, they would update them twice). The functional variants return the new
    statistics instead, and the backward ones only read them."""
    if name.split(".")[0].endswith(("_functional", "_no_training", "_no_update")) or "backward" in name:
        return
    given = {a.name: v for a, v in arguments}
    stats = any(isinstance(given.get(k), torch.Tensor) for k in ("running_mean", "running_var"))
    batch = given.get("training", given.get("use_input_stats", True))
    if stats and batch is not False:
        raise Refused(f"aten.{name} updates the running statistics in place (its schema does "
                      "not say so)")


def _arguments(name, schema, args, kwargs):
    """Every argument of the schema, in order, defaults filled in."""
    out = []
    for i, a in enumerate(schema.arguments):
        if not a.kwarg_only and i < len(args):
            out.append((a, args[i]))
        elif a.name in kwargs:
            out.append((a, kwargs[a.name]))
        elif a.has_default_value():
            out.append((a, a.default_value))
        else:
            raise Refused(f"aten.{name}: no value for {a.name}")
    return out


def record(target, args, kwargs, tokens, grad, autocast=None):
    """The ATen calls of `target(*args, **kwargs)`, whose tensors are fake tensors: `tokens` maps
    the id of each operand tensor to the caller's token for it; `grad` is the grad mode and
    `autocast` the autocast state ({device type: dtype or None}) it runs under. Returns the calls
    and the result: the token of each result tensor (an operand's token, or `(i, k)`), as one
    token or a list. Raises `Refused`."""
    rec = _Recorder()
    leaves = [x for x in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
    # The operands' own fake mode (Dynamo's), not the tracing context's: modes do not mix.
    fake_mode = next((x.fake_mode for x in leaves
                      if isinstance(x, torch._subclasses.FakeTensor)), None)
    if fake_mode is None:
        raise Refused("its operands have no fake tensors to run it on")
    import contextlib

    try:
        with contextlib.ExitStack() as stack:
            for device, dtype in (autocast or {}).items():
                if dtype is not None:
                    stack.enter_context(torch.autocast(device, dtype=dtype))
                elif torch.is_autocast_enabled(device):
                    stack.enter_context(torch.autocast(device, enabled=False))
            stack.enter_context(torch.set_grad_enabled(grad))
            stack.enter_context(fake_mode)
            stack.enter_context(rec)
            result = target(*args, **kwargs)
    except Refused:
        raise
    except Exception as e:
        raise Refused(f"running it on fake tensors failed: {type(e).__name__}: {e}") from None
    flat = _tensors(result)
    if flat is None:
        raise Refused(f"it returns {type(result).__name__}, not tensors")
    known = dict(tokens)  # id(tensor) -> token
    alive = list(leaves)  # keeps ids unique while `known` holds them
    calls = []
    for func, a, kw, out in _live_calls(rec.calls, leaves, flat):
        name, schema = _check_op(func)
        operands, index = [], {}

        def operand(t):
            if id(t) not in known:
                raise Refused(f"aten.{name} reads a tensor made inside the call, not computed "
                              "from its operands")
            if id(t) not in index:
                index[id(t)] = len(operands)
                operands.append((known[id(t)], t))
            return f"T{index[id(t)]}"

        arguments = _arguments(name, schema, a, kw)
        _check_running_stats(name, arguments)
        texts = []
        for arg, v in arguments:
            texts.append(_arg_text(name, arg, v, operand))
        if not operands:
            raise Refused(f"aten.{name} has no tensor operand")
        devices = {t.device for _, t in operands}
        if len(devices) > 1:
            raise Refused(f"aten.{name} reads tensors on {sorted(map(str, devices))}")
        results = _tensors(out)
        if results is None:
            raise Refused(f"aten.{name} returns {type(out).__name__}, not tensors")
        outs = []
        for k, t in enumerate(results):
            if t.dtype not in _DTYPES:
                raise Refused(f"aten.{name} returns a tensor of dtype {t.dtype}")
            if t.device not in devices:
                raise Refused(f"aten.{name} returns a tensor on {t.device}")
            outs.append(f"{_name(t.dtype)}[{', '.join(map(str, _sizes(t)))}]")
            known[id(t)] = (len(calls), k)
            alive.append(t)
        args_text = "(" + ", ".join(texts) + ("," if len(texts) == 1 else "") + ")"
        calls.append(Call(name, [tok for tok, _ in operands], args_text, ", ".join(outs),
                          len(results)))
    for t in flat:
        if id(t) not in known:
            raise Refused("it returns a tensor made inside the call")
        if grad and t.requires_grad and t.is_complex():
            # thunder's grad refuses complex values on the differentiated path (the whole
            # graph would go to the fallback): only this call does.
            raise Refused("it makes a complex value that gradients flow through")
    if grad:
        _check_derivatives(fake_mode, leaves, flat)
    toks = [known[id(t)] for t in flat]
    return calls, (toks[0] if isinstance(result, torch.Tensor) else toks), result


def _tensor_leaves(x):
    return [t for t in torch.utils._pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def _live_calls(recorded, leaves, results):
    """The recorded calls the results depend on, in order. The others compute nothing
    returned (autograd's own calls, as the `detach` of an output it saves; buffers a kernel
    allocates and leaves unused) and are dropped, unless they write into memory that an
    operand or a value the results depend on holds: that is refused."""
    from torch.multiprocessing.reductions import StorageWeakRef

    calls = [c for c in recorded if not _query(c[0], c[3])]
    live = {id(t): t for t in results}
    keep = []
    for i in reversed(range(len(calls))):
        func, a, kw, out = calls[i]
        if any(id(t) in live for t in _tensor_leaves(out)):
            keep.append(i)
            live.update((id(t), t) for t in _tensor_leaves((a, kw)))
    held = {StorageWeakRef(t.untyped_storage()) for t in list(live.values()) + list(leaves)}
    for func, a, kw, out in calls:
        schema = getattr(func, "_schema", None)
        if schema is not None and schema.is_mutable and any(
                StorageWeakRef(t.untyped_storage()) in held for t in _tensor_leaves((a, kw))):
            raise Refused(f"{func} writes into an operand or a value it computes")
    return [calls[i] for i in reversed(keep)]


def _arg_text(name, arg, v, operand):
    """The `args` text of the value `v` of the schema argument `arg`."""
    ty = str(arg.type)
    if v is None:
        return "None"
    if isinstance(v, torch.Tensor):
        return operand(v)
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, torch.Tensor) for x in v):
            if not all(x is None or isinstance(x, torch.Tensor) for x in v):
                raise Refused(f"aten.{name}: {arg.name} mixes tensors and other values")
            return "[" + ", ".join("None" if x is None else operand(x) for x in v) + "]"
        if all(type(x) is int for x in v):
            return "[" + ", ".join(map(str, v)) + "]"
        raise Refused(f"aten.{name}: {arg.name}={v!r} is not a list of ints or of tensors")
    if ty in ("Tensor", "Optional[Tensor]") and type(v) in (bool, int, float):
        # A number where the schema takes a tensor (`mul.Tensor(x, 2.0)`): PyTorch's argument
        # parser wraps it into a 0-dim tensor that promotes as a number.
        return f"wrap({_arg_text(name, _NUMBER, v, operand)})"
    if isinstance(v, bool):
        return "True" if v else "False"
    if type(v) is int:
        return _float(v) if ty in ("float", "Optional[float]") else str(v)
    if type(v) is float:
        return _float(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, torch.memory_format) and _name(v) in _MEMORY_FORMATS:
        return f"torch.{_name(v)}"
    if isinstance(v, torch.dtype):
        if v not in _DTYPES:
            raise Refused(f"aten.{name}: {arg.name}={v} is a dtype thunder does not have")
        return f"torch.{_name(v)}"
    raise Refused(f"aten.{name}: {arg.name}={v!r} ({type(v).__name__}) is not an argument "
                  "thunder states")


def _check_derivatives(fake_mode, leaves, results):
    """Asks autograd, on fake tensors, for the gradients the call's results send to its
    operands: an operator whose derivative PyTorch does not implement fails here, before
    anything runs, rather than in the backward."""
    ins = [t for t in leaves if t.requires_grad]
    outs = [t for t in results if t.requires_grad and t.grad_fn is not None]
    if not ins or not outs:
        return
    try:
        with fake_mode:
            torch.autograd.grad(outs, ins, [torch.ones_like(o) for o in outs], allow_unused=True)
    except Exception as e:
        raise Refused(f"its derivative: {type(e).__name__}: {e}") from None
