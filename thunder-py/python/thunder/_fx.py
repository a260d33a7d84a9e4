"""Encodes a Dynamo FX graph for `thunder._C.compile`: inputs, nodes, outputs. Raises
`UnsupportedError` for what has no translation yet.

A node is a torch-level op of thunder-ir's op table, by name, with its arguments in the op's
signature order (operands, then attributes). Nothing here lists ops or their parameters:

- Which op an FX target means comes from the table (`_C.op_table()`): each op names the PyTorch
  callables it translates as Python paths (`torch.add`, `operator.add`, `torch.Tensor.add`, a
  Tensor method: a `call_method` node). Every path is resolved at import; one that does not
  resolve is an ImportError.
- How a call's arguments become the op's comes from PyTorch and the table: PyTorch's parameters
  (names, defaults, keyword-only) from `inspect.signature` for Python functions and from the ATen
  schemas for builtins (one signature per overload; the first overload a call fits is taken),
  matched to the op's parameters by name (`_PYTORCH_NAMES` lists the few IR names PyTorch spells
  otherwise). An optional IR parameter the call leaves out is None (the IR's "PyTorch's
  default"); a PyTorch parameter the op lacks must keep its default, or the call runs eagerly.
  Each value must fit its IR kind (a tensor bound of `clamp` does not fit a number attribute).

What stays here is front-end knowledge: the calls that are not ops (`_SUGAR`: `x.float()`,
`x.contiguous()`, `chunk`), indexing and `.T`/`.mT`, `split` as narrows (a graph node has one
value) and `cat`'s legacy empty operands.
"""

import importlib
import inspect
import operator

import torch

from . import _C, _aten

# IR parameter names that PyTorch spells otherwise, for every op: PyTorch calls an op's first
# operand `input`, `self` or `tensor`, the second `other` or `exponent`, and so on.
_PYTORCH_NAMES = {
    "a": ("input", "self", "tensor"),
    "b": ("other", "exponent"),
    "w": ("weight",),
    "shape": ("size",),
    "split_size_or_sections": ("split_size", "split_sizes"),
}

# PyTorch parameters that do not change what a call computes: F.softmax's `_stacklevel` only
# picks the frame of a deprecation warning.
_IGNORED = {"_stacklevel"}

# (op, attribute) pairs the IR declares but whose decomposition takes only PyTorch's default yet
# (it rejects other values as invalid): such calls run eagerly (`F.pad` in reflect mode).
_DEFAULT_ONLY = {("cross_entropy", "label_smoothing"), ("pad", "mode")}

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)


class _Op:
    """A torch-level op of the op table: its name and its parameters, the operands then the
    attributes, as `(name, kind)` with thunder-ir's kinds (`Tensor`, `OptInts`, `DType`, ...)."""

    def __init__(self, name, operands, attrs):
        self.name = name
        self.operands = [tuple(p) for p in operands]
        self.params = self.operands + [tuple(p) for p in attrs]
        self.kinds = dict(self.params)


def _resolve(path):
    """The Python object at the import path `path` (`torch.nn.functional.softmax`)."""
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for p in parts[1:]:
        obj = getattr(obj, p)
    return obj


# Python operators whose ATen op has another name than the operator (`~x`, `x % y`).
_DUNDER_ATEN = {"invert": "bitwise_not", "mod": "remainder"}


def _signatures(path, obj, method, creation=False):
    """PyTorch's signatures of the callable at `path`, as `(signature, types)`: its own for a
    Python function (types None), one per ATen overload for a builtin (outs and TorchScript's
    overloads for lists, strings and plain numbers left out), with each parameter's schema type
    (`"Tensor"`, `"Optional[ScalarType]"`, `"List[int]"`, ...). For a `creation` op (one without
    tensor operands: `torch.zeros(size)`, `torch.arange(end)`) the overloads that return one
    tensor are its signatures, whatever their first argument."""
    try:
        sig = inspect.signature(obj)
        if not any(p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD) for p in sig.parameters.values()):
            return [(sig, None)]
    except (TypeError, ValueError):
        pass
    name = path.rpartition(".")[2] if method else getattr(obj, "__name__", "")
    schemas = torch._C._jit_get_schemas_for_operator(f"aten::{name}")
    if not schemas and name.startswith("__") and name.endswith("__"):
        # Python's operators on tensors (`x == y` is `x.__eq__(y)` in an FX graph): the ATen op
        # of the operator's name, or of the name PyTorch gives it.
        plain = name.strip("_")
        schemas = torch._C._jit_get_schemas_for_operator(f"aten::{_DUNDER_ATEN.get(plain, plain)}")
    sigs = []
    for schema in schemas:
        args = schema.arguments
        first = args[0] if args else None
        if creation:
            if [str(r.type) for r in schema.returns] != ["Tensor"]:
                continue
        elif first is None or not ("Tensor" in str(first.type) or first.name == "self"):
            continue  # TorchScript's overloads for lists, strings and plain numbers
        if any(a.name == "out" for a in args):
            continue
        params, types = [], {}
        for a in args:
            # The torch.* functions call `self` `input`, as their Python bindings do.
            n = "input" if a.name == "self" and not method else a.name
            kind = _P.KEYWORD_ONLY if a.kwarg_only else _P.POSITIONAL_OR_KEYWORD
            default = a.default_value if a.has_default_value() else _P.empty
            params.append(_P(n, kind, default=default))
            types[n] = str(a.real_type)
        try:
            sigs.append((inspect.Signature(params), types))
        except ValueError:
            continue  # not expressible as a Python signature (never seen)
    return sigs


_SCHEMA_TYPES = {
    "Tensor": lambda v: _is_value(v),
    "number": lambda v: _is_value(v) or isinstance(v, (bool, int, float)),
    "int": lambda v: _is_value(v) or _is_int(v),
    "float": lambda v: _is_value(v) or isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ScalarType": lambda v: isinstance(v, torch.dtype),
    "Device": lambda v: isinstance(v, (torch.device, str)),
    "Layout": lambda v: isinstance(v, torch.layout),
    "MemoryFormat": lambda v: isinstance(v, torch.memory_format),
}


def _has_type(t, v):
    """Whether the argument `v` has the schema type `t` (picks the overload PyTorch would)."""
    if t.startswith("Optional["):
        return v is None or _has_type(t[9:-1], v)
    if t.startswith("List["):
        elem = t[5:-1]
        if isinstance(v, (list, tuple, torch.Size)):
            return all(_has_type(elem, x) for x in v)
        # One int for an int list (`x.sum(0)`); a node holding a tuple for a tensor list.
        return _is_int(v) if elem == "int" else elem == "Tensor" and _is_value(v)
    return _SCHEMA_TYPES.get(t, lambda v: True)(v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_ints(v):
    return _is_int(v) or (isinstance(v, (list, tuple, torch.Size)) and all(_is_int(x) for x in v))


def _is_value(v):
    return isinstance(v, (torch.fx.Node, _Value))


_KINDS = {
    "Tensor": _is_value,
    "TensorOrNumber": lambda v: _is_value(v) or isinstance(v, (bool, int, float)),
    "TensorList": lambda v: _is_value(v) or (
        isinstance(v, (list, tuple)) and all(_is_value(x) for x in v)),
    "Int": _is_int,
    "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "Number": lambda v: isinstance(v, (bool, int, float)),
    "Bool": lambda v: isinstance(v, bool),
    "Str": lambda v: isinstance(v, str),
    "Ints": _is_ints,
    "IntOrInts": _is_ints,
    "IntLists": lambda v: isinstance(v, (list, tuple)) and all(
        _is_ints(x) and not _is_int(x) for x in v),
    "DType": lambda v: isinstance(v, torch.dtype),
    "Device": lambda v: _device_name(v) is not None,
}


def _device_name(v):
    """thunder's name of the device `v` (a `torch.device` or a string): `cpu` or `cuda:N` (a CUDA
    device without an index is the current one, as PyTorch takes it); None for anything else
    (other device types, or not a device), which then runs eagerly."""
    if not isinstance(v, (torch.device, str)):
        return None
    try:
        d = torch.device(v)
    except (RuntimeError, TypeError):
        return None
    if d.type == "cpu":
        return "cpu"
    if d.type == "cuda":
        index = d.index if d.index is not None else (
            torch.cuda.current_device() if torch.cuda.is_available() else 0)
        return f"cuda:{index}"
    return None


def _fits(kind, v):
    """Whether the Python value `v` fits thunder-ir's parameter kind `kind` (`OptX`: X or None)."""
    if kind.startswith("Opt"):
        if v is None:
            return True
        kind = kind[3:]
    return _KINDS.get(kind, lambda v: False)(v)


def _at_default(v, default):
    """Whether the argument `v` is the parameter's default (not a node; a bool only for a bool)."""
    if v is default:
        return True
    if _is_value(v) or isinstance(v, bool) != isinstance(default, bool):
        return False
    try:
        return bool(v == default)
    except Exception:
        return False


class _Overload:
    """One PyTorch signature of a callable, matched to the parameters of its op."""

    def __init__(self, op, sig, types):
        self.op = op
        self.sig = sig
        self.types = types
        ps = sig.parameters
        # IR parameter -> the PyTorch parameter that gives it (None: this signature has none).
        self.partner = {
            ir: next((p for p in (ir, *_PYTORCH_NAMES.get(ir, ())) if p in ps), None)
            for ir, _ in op.params
        }
        taken = [p for p in self.partner.values() if p is not None]
        if len(set(taken)) != len(taken):
            raise ImportError(f"thunder: two parameters of ltorch.{op.name} match one of {sig}")
        self.extra = [p for p in ps if p not in taken and p not in _IGNORED]
        self.positional = [p for p, q in ps.items() if q.kind in _POSITIONAL]

    def why_unusable(self, fallback):
        """Why no call of this signature translates (None if some may)."""
        for p in self.extra:
            if self.sig.parameters[p].default is _P.empty:
                return f"its parameter {p} has no place in ltorch.{self.op.name}"
        for ir, kind in self.op.params:
            if self.partner[ir] is None and not kind.startswith("Opt") and ir not in fallback:
                return f"it gives no {ir}"
        return None

    def normalize(self, args, kwargs, fallback):
        """The op's arguments for this call (a list), why it cannot be translated (a str), or
        None when the call does not fit this signature."""
        name, ps = self.op.name, self.sig.parameters
        if self.positional and len(args) > len(self.positional):
            # Sizes given one by one (`x.view(2, 3)`, `torch.zeros(2, 3)`): PyTorch takes an int
            # list that is the last positional parameter as varargs.
            k = len(self.positional) - 1
            if self.op.kinds.get(self._ir_of(self.positional[k])) in ("Ints", "OptInts"):
                args = (*args[:k], tuple(args[k:]))
        try:
            given = self.sig.bind(*args, **kwargs).arguments
        except TypeError:
            return None
        if self.types and not all(_has_type(self.types[p], v) for p, v in given.items()):
            return None
        out = []
        for ir, kind in self.op.params:
            p = self.partner[ir]
            shown = p or ir
            if p is not None and p in given:
                v = given[p]
            elif kind.startswith("Opt"):
                v = None
            elif p is not None and ps[p].default is not _P.empty:
                v = ps[p].default
            elif ir in fallback:
                v = fallback[ir]
            else:
                return f"{name} without its argument {shown}"
            if (name, ir) in _DEFAULT_ONLY and p is not None and not _at_default(v, ps[p].default):
                return f"{name} with {shown}={v!r}"
            if not _fits(kind, v):
                if v is None:
                    return f"{name} without its argument {shown}"
                if _is_value(v) and not kind.startswith(("Tensor", "OptTensor")):
                    return f"{name} with a tensor {shown}"
                return f"{name} with {shown}={v!r}"
            if kind in ("Device", "OptDevice") and v is not None:
                v = _device_name(v)
            out.append(v)
        for p in self.extra:
            if p in given and not _at_default(given[p], ps[p].default):
                return f"{name} with {p}={given[p]!r}"
        return out

    def _ir_of(self, p):
        return next((ir for ir, q in self.partner.items() if q == p), None)


class _Translation:
    """A PyTorch callable (by path) translated into an op: its usable signatures."""

    def __init__(self, op, path):
        self.op = op
        self.path = path
        self.method = path.startswith("torch.Tensor.")
        try:
            self.obj = _resolve(path)
        except (ImportError, AttributeError) as e:
            raise ImportError(
                f"thunder: the op table names {path} for ltorch.{op.name}, which does not "
                f"resolve in torch {torch.__version__} ({e})"
            ) from None
        self.target = path.rpartition(".")[2] if self.method else self.obj
        sigs = _signatures(path, self.obj, self.method, creation=not op.operands)
        overloads = [_Overload(op, s, t) for s, t in sigs]
        # A parameter an overload lacks takes its default from the overloads that have it
        # (`torch.sum(x)` has no `keepdim`: the default of `torch.sum(x, dim)` applies).
        self.fallback = {}
        for o in overloads:
            for ir, p in o.partner.items():
                if p is not None and o.sig.parameters[p].default is not _P.empty:
                    self.fallback.setdefault(ir, o.sig.parameters[p].default)
        why = [o.why_unusable(self.fallback) for o in overloads]
        self.overloads = [o for o, w in zip(overloads, why) if w is None]
        if not self.overloads:
            raise ImportError(
                f"thunder: the op table names {path} for ltorch.{op.name}, but no signature of "
                f"it translates: {'; '.join(f'{o.sig}: {w}' for o, w in zip(overloads, why))}"
                if overloads else
                f"thunder: the op table names {path} for ltorch.{op.name}, which has no "
                "signature thunder can read"
            )

    def normalize(self, node, args, kwargs):
        """The op's arguments for the call `node`, or raises UnsupportedError."""
        why = None
        for o in self.overloads:
            r = o.normalize(args, kwargs, self.fallback)
            if isinstance(r, list):
                return r
            why = why or r
        why = why or f"{self.op.name} with arguments that fit no signature of {self.path}"
        raise _unsupported(f"{why} ({_origin(node)})")


def _load():
    """The op table's ops by name, and its translations of call_function targets (by object)
    and of call_method targets (by method name)."""
    ops, functions, methods = {}, {}, {}
    for name, paths, operands, attrs in _C.op_table():
        op = ops[name] = _Op(name, operands, attrs)
        for path in paths:
            t = _Translation(op, path)
            table = methods if t.method else functions
            other = table.get(t.target)
            if other is not None and other.op is not op:
                raise ImportError(
                    f"thunder: {path} translates into both ltorch.{other.op.name} and "
                    f"ltorch.{name} in the op table"
                )
            table[t.target] = t
    return ops, functions, methods


OPS, FUNCTIONS, METHODS = _load()


# Calls that are not ops of their own (front-end sugar), by path: `_Encoder.<name>` translates
# them. `x.float()` is `to(float32)`; `x.contiguous()` is `x` (traces have no memory layout);
# `chunk` is narrows, as `split`.
_SUGAR = {
    "torch.Tensor.float": "to_float",
    "torch.Tensor.contiguous": "identity",
    "torch.chunk": "chunk",
    "torch.Tensor.chunk": "chunk",
    # PyTorch's usage logging (`nn.Module` constructors, some functionals): no values, no effect
    # on them.
    "torch._C._log_api_usage_once": "no_value",
    # `torch.no_grad()` / `torch.enable_grad()` regions inside a graph.
    "torch._C._set_grad_enabled": "grad_mode",
    # `torch.autocast(...)` regions inside a graph.
    "torch.amp.autocast_mode._enter_autocast": "enter_autocast",
    "torch.amp.autocast_mode._exit_autocast": "exit_autocast",
    # `x.new_ones(size)` and friends: a filled tensor with `x`'s dtype and device by default
    # (`new_empty`'s values are unspecified: zeros are as good as any).
    "torch.Tensor.new_ones": "new_filled",
    "torch.Tensor.new_zeros": "new_filled",
    "torch.Tensor.new_full": "new_filled",
    "torch.Tensor.new_empty": "new_filled",
    # `x.type_as(y)`: `x.to(y.dtype)`.
    "torch.Tensor.type_as": "type_as",
    # `torch.full_like(x, v)` and friends: `full` with `x`'s shape, dtype and device by default.
    "torch.full_like": "like_filled",
    "torch.zeros_like": "like_filled",
    "torch.ones_like": "like_filled",
    "torch.empty_like": "like_filled",
    # A copy is the value itself in a trace (no memory, no aliasing).
    "torch.clone": "copy",
    "torch.Tensor.clone": "copy",
    # `torch.min(a, b)` is `minimum`, `torch.min(x)` is `amin` over every dim (and max alike);
    # `torch.min(x, dim)`'s (values, indices) runs outside thunder.
    "torch.min": "min_max",
    "torch.max": "min_max",
    "torch.Tensor.min": "min_max",
    "torch.Tensor.max": "min_max",
    # `x[idx] = v` on a value the graph computed: a new value (`where` of a padded mask).
    "operator.setitem": "setitem",
    # `x.repeat(r0, r1, ...)`: tiles, as a reshape, an expand and a reshape.
    "torch.Tensor.repeat": "repeat",
    # `F.conv1d`: `conv2d` over a height of 1.
    "torch.conv1d": "conv1d",
    "torch.nn.functional.conv1d": "conv1d",
    # `torch.diff(x, dim=d, prepend=p, append=a)` (n=1): neighbours subtracted along `d`.
    "torch.diff": "diff",
    "torch.Tensor.diff": "diff",
}

# In-place operators: the op of their out-of-place form, then the result takes the place of the
# value they modify (`_Encoder.in_place`). Tensor methods ending in `_` are found by name.
_IN_PLACE = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.ipow: operator.pow, operator.imod: operator.mod,
    operator.iand: operator.and_, operator.ior: operator.or_, operator.ixor: operator.xor,
}

# The keyword arguments of PyTorch's factories (`new_ones`, `zeros_like`, ...) that `full` has
# no place for: a call translates only with each at its default (or None).
_FACTORY_DEFAULTS = {"requires_grad": False, "layout": torch.strided, "pin_memory": False,
                     "memory_format": torch.preserve_format}

# Calls whose arguments are all Python literals in the graph (no values) and whose result is a
# tensor the graph cannot change: evaluated once when the graph is encoded and passed in as a
# constant input (`torch.tensor([], dtype=...)` of transformers' key/value cache).
_CONSTANTS = {torch.tensor}
_SUGAR_FUNCTIONS = {_resolve(p): (p, m) for p, m in _SUGAR.items() if not p.startswith("torch.Tensor.")}
_SUGAR_METHODS = {p.rpartition(".")[2]: (p, m) for p, m in _SUGAR.items() if p.startswith("torch.Tensor.")}
if _SUGAR_FUNCTIONS.keys() & FUNCTIONS.keys() or _SUGAR_METHODS.keys() & METHODS.keys():
    raise ImportError("thunder: a call of _fx._SUGAR is also an op of the op table")
_CHUNK = {p: [s for s, _ in _signatures(p, _resolve(p), p.startswith("torch.Tensor."))]
          for p in ("torch.chunk", "torch.Tensor.chunk")}


def _plain_signature(*params):
    """A signature of positional-or-keyword parameters, `(name, default)` or a name."""
    return inspect.Signature([
        _P(p, _P.POSITIONAL_OR_KEYWORD) if isinstance(p, str)
        else _P(p[0], _P.POSITIONAL_OR_KEYWORD, default=p[1]) for p in params])


# PyTorch's parameters of `F.conv1d` and `torch.diff` (ATen's schemas, as Python signatures).
_CONV1D = _plain_signature("input", "weight", ("bias", None), ("stride", 1), ("padding", 0),
                           ("dilation", 1), ("groups", 1))
_DIFF = _plain_signature("input", ("n", 1), ("dim", -1), ("prepend", None), ("append", None))


class _Value:
    """A value of the encoding that no FX node holds (an intermediate of an expansion)."""

    def __init__(self, i):
        self.id = i


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
    return _sizes(ev)


def _sizes(t):
    """The sizes of the tensor `t` as ints; a size Dynamo made symbolic but then specialized to
    one value (a guard pins it) is that int. A size that stays symbolic stays a SymInt."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    return [int(d) if is_concrete_int(d) else d for d in t.shape]


def describe(x):
    """The `_C.compile` description of an input value (a tensor, fake or real, or a number)."""
    if isinstance(x, torch.Tensor):
        if type(x) is not torch.Tensor and not isinstance(
            x, (torch.nn.Parameter, torch._subclasses.FakeTensor)
        ):
            raise _unsupported(f"a tensor subclass input ({type(x).__name__})")
        sizes = _sizes(x)
        if not all(type(d) is int for d in sizes):
            raise _unsupported(
                f"a tensor of symbolic sizes {sizes} (Dynamo's dynamic shapes): thunder "
                "compiles static shapes (torch.compile(..., dynamic=False) gives them)")
        dev = "cpu" if x.device.type == "cpu" else f"{x.device.type}:{x.device.index or 0}"
        return ("tensor", str(x.dtype), sizes, dev, bool(x.requires_grad))
    if isinstance(x, torch.SymInt | torch.SymFloat | torch.SymBool):
        raise _unsupported(
            f"a symbolic {type(x).__name__[3:].lower()} input (Dynamo's dynamic shapes): thunder "
            "compiles static shapes (torch.compile(..., dynamic=False) gives them)")
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
        self.aten = []  # the ATen operators called by name (`_aten`), one entry per call


class _Encoder:
    def __init__(self, gm, dry):
        self.gm = gm
        self.dry = dry
        self.enc = Encoding()
        self.index = {}  # fx node -> value id, list of ids (a tuple), or _Opaque
        self.unsupported = {}  # fx node -> why (dry run)
        self.n = 0
        # The grad mode: where the graph starts, and where the `_set_grad_enabled` calls read so
        # far leave it (with the last such call).
        self.grad_start = self.grad = torch.is_grad_enabled()
        self.grad_node = None
        # The autocast regions: a stack of {device type: dtype or None (off)}, the ambient state
        # (torch.autocast around the call) at the bottom.
        self.autocast = [_ambient_autocast()]
        self.order = None  # node -> position in the graph, once an in-place op needs it

    def _new(self):
        self.n += 1
        return self.n - 1

    def emit(self, op, values, node, origin=None):
        """A node calling the op named `op` on `values`, its arguments in signature order;
        returns its value id."""
        self.enc.nodes.append((op, [self.arg(v, node) for v in values], origin or _origin(node),
                               self.autocast_dtype(node, origin)))
        return self._new()

    def emit_op(self, op, node, origin=None, **given):
        """A node calling `op` with the arguments `given` by IR name (optional ones left out are
        None): for the nodes the front end makes itself."""
        if op not in OPS:  # an op of the table without PyTorch names is not translated
            raise _unsupported(f"{op} is not supported by thunder yet ({origin or _origin(node)})")
        values = [given.get(p) for p, _ in OPS[op].params]
        return self.emit(op, values, node, origin)

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
            if self.grad_start and not self.grad:
                ev = a.meta.get("example_value")
                if isinstance(ev, torch.Tensor) and ev.requires_grad:
                    # The region's values would carry gradient in thunder's trace (which has no
                    # op that cuts it): such a read stays with PyTorch.
                    raise _unsupported(
                        f"a torch.no_grad() region that reads a value with a gradient "
                        f"({_origin(node)})"
                    )
            return self.ref(a, node)
        if isinstance(a, _Value):
            return ("ref", a.id)
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
        constants = []
        for n in self.gm.graph.nodes:
            if n.op == "get_attr":
                t = getattr(self.gm, n.target)
                if self.dry and isinstance(t, torch.nn.Module):
                    # A subgraph of a higher-order op (torch.utils.checkpoint's body): only the
                    # op that calls it is unsupported, and the graph splits around it.
                    self.index[n] = _Opaque()
                    continue
                if not isinstance(t, torch.Tensor):
                    raise _unsupported(f"the attribute {n.target} of type {type(t).__name__}")
                constants.append((n, t))
            elif n.op == "call_function" and n.target in _CONSTANTS:
                t = _constant(n)
                if t is not None:
                    constants.append((n, t))
        # Constants are inputs after the placeholders: number them now, in order.
        self.constant_nodes = {n for n, _ in constants}
        for n, t in constants:
            self.enc.consts.append(t)
            self.enc.inputs.append(describe(t))
            self.index[n] = self._new()
        # Node ids for emitted nodes follow the inputs.
        for n in self.gm.graph.nodes:
            if n.op in ("placeholder", "get_attr") or n in self.constant_nodes:
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
        if len(self.autocast) != 1 and not self.dry:
            raise _unsupported("a graph that ends inside a torch.autocast region")
        if self.grad != self.grad_start and not self.dry:
            # A graph that ends inside a grad-mode region (Dynamo broke the graph there) leaves
            # the mode changed for the code after it: the caller splits it at its
            # `_set_grad_enabled` calls instead (`splits_grad_modes`).
            raise _unsupported(f"a graph that ends with grad {'enabled' if self.grad else 'disabled'} "
                               f"({_origin(self.grad_node)})")
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
        """Translates one fx node: its value id, or list of ids for a tuple. A call without a
        translation (or whose arguments its translation does not take) that computes tensors
        and writes nothing becomes the ATen calls it makes (`aten_calls`)."""
        try:
            return self.translate(n)
        except _C.UnsupportedError as e:
            if (n.op not in ("call_function", "call_method") or _mutates(n)
                    or _aten._tensors(n.meta.get("example_value")) is None):
                raise
            why = str(e)
        return self.aten_calls(n, why)

    def translate(self, n):
        """`node` through thunder's own translations only."""
        if n.op == "call_function" and n.target is operator.getitem:
            return self.getitem(n)
        if n.op == "call_function" and n.target is getattr and len(n.args) == 2 and n.args[1] in ("T", "mT"):
            return self.transposed(n, *n.args)
        if n.op == "call_function":
            t, sugar = FUNCTIONS.get(n.target), _SUGAR_FUNCTIONS.get(n.target)
            what = getattr(n.target, "__name__", str(n.target))
        elif n.op == "call_method":
            t, sugar = METHODS.get(n.target), _SUGAR_METHODS.get(n.target)
            what = f"Tensor.{n.target}"
        else:
            t, sugar, what = None, None, f"{n.op} {n.target}"
        if sugar is not None:
            path, method = sugar
            return getattr(self, method)(n, path)
        if t is None:
            inplace = (FUNCTIONS.get(_IN_PLACE.get(n.target)) if n.op == "call_function" else
                       METHODS.get(n.target[:-1]) if n.target.endswith("_") else None)
            if inplace is not None:
                return self.in_place(n, inplace)
            raise _unsupported(f"{what} is not supported by thunder yet ({_origin(n)})")
        values = t.normalize(n, n.args, n.kwargs)
        op = t.op.name
        if not t.op.operands:
            self.created_like_eager(t.op, n, values)
        if op == "split":
            return self.pieces(op, n, *values)
        if op == "cat" and isinstance(values[0], (list, tuple)):
            values[0] = _without_legacy_empties(values[0])
        return self.emit(op, values, n)

    def aten_calls(self, n, why):
        """A call without a translation (`why`), as the ATen operators it reaches (`_aten`):
        one `prims.aten` node per operator; its value id, or list of ids for a tuple."""
        keep = []  # the operands' leaves, alive while their ids key `tokens`
        tokens = {}

        def leaf(a):
            if not isinstance(a, torch.fx.Node):
                return a
            ev = a.meta.get("example_value")
            if isinstance(ev, torch.Tensor):
                x = ev.detach()
                if ev.requires_grad:
                    x.requires_grad_()
                tokens[id(x)] = a
                keep.append(x)
                return x
            if type(ev) in (int, float, bool):
                return ev
            raise _aten.Refused(f"{a.name} has no value to run it on")

        try:
            target = (n.target if n.op == "call_function"
                      else getattr(torch.Tensor, n.target, None))
            if target is None:
                raise _aten.Refused(f"torch.Tensor has no method {n.target}")
            args, kwargs = torch.fx.node.map_aggregate((n.args, n.kwargs), leaf)
            # Under the autocast state the node runs in: the calls recorded are autocast's
            # casts and the ops on their results, which then run as they are (CPU autocast,
            # whose op lists thunder's table does not follow, compiles this way).
            calls, result, value = _aten.record(target, args, kwargs, tokens, self.grad,
                                                self.autocast[-1])
            _same_metadata(n.meta.get("example_value"), value)
            self.check_not_written_view(n)
        except _aten.Refused as e:
            raise _unsupported(f"{why}; as ATen calls: {e}") from None
        except _C.UnsupportedError:
            raise
        except Exception as e:  # thunder's bug: the call stays with the fallback, reported
            raise _unsupported(f"{why}; as ATen calls: internal error {type(e).__name__}: {e} "
                               "(please report it)") from None
        ids = []

        def resolve(tok):
            return ids[tok[0]][tok[1]] if isinstance(tok, tuple) else self.ref(tok, n)[1]

        for c in calls:
            refs = [("ref", resolve(t)) if isinstance(t, tuple) else self.arg(t, n)
                    for t in c.operands]
            self.enc.nodes.append((_C.ATEN, [("list", refs), ("str", c.op), ("str", c.args),
                                             ("str", c.out)], _origin(n), None))
            ids.append([self._new() for _ in range(c.n_out)])
            self.enc.aten.append(c.op)
        return [resolve(t) for t in result] if isinstance(result, list) else resolve(result)

    def check_not_written_view(self, n):
        """Raises `_aten.Refused` when a result of node `n` shares memory with one of its
        operands (a view: thunder's ATen call returns a copy) and a node after `n` writes into
        that memory in place: eager's view would see the change, the copy would not."""
        from torch.multiprocessing.reductions import StorageWeakRef

        def storages(v):
            return {StorageWeakRef(t.untyped_storage())
                    for t in torch.utils._pytree.tree_leaves(v) if isinstance(t, torch.Tensor)}

        ins = set()
        for a in torch.utils._pytree.tree_leaves((n.args, n.kwargs)):
            if isinstance(a, torch.fx.Node):
                ins |= storages(a.meta.get("example_value"))
        shared = storages(n.meta.get("example_value")) & ins
        if not shared:
            return
        if self.order is None:
            self.order = {m: i for i, m in enumerate(self.gm.graph.nodes)}
        for m in self.gm.graph.nodes:
            if (self.order[m] > self.order[n] and _mutates(m) and m.args
                    and isinstance(m.args[0], torch.fx.Node)
                    and storages(m.args[0].meta.get("example_value")) & shared):
                raise _aten.Refused(f"its result is a view that {m.name} changes in place")

    def created_like_eager(self, op, n, values):
        """A creation op (`zeros`, `full`, `arange`) without a dtype or device takes PyTorch's
        defaults, which the user may have changed (`torch.set_default_dtype`, a `torch.device`
        context): the dtype and device eager gives the node, from its example value, are passed
        instead (the same when the defaults are float32 and the CPU)."""
        ev = n.meta.get("example_value")
        for i, (p, _) in enumerate(op.params):
            if values[i] is not None or p not in ("dtype", "device"):
                continue
            if not isinstance(ev, torch.Tensor):
                raise _unsupported(f"{op.name} without a {p} and a known result ({_origin(n)})")
            if p == "dtype":
                values[i] = ev.dtype
            else:
                values[i] = _device_name(ev.device)
                if values[i] is None:
                    raise _unsupported(f"{op.name} on the device {ev.device} ({_origin(n)})")

    def to_float(self, n, path):
        """`x.float()`: `to(float32)`."""
        if len(n.args) != 1 or n.kwargs:
            raise _unsupported(f"Tensor.float with arguments ({_origin(n)})")
        return self.emit_op("to", n, a=n.args[0], dtype=torch.float32)

    def identity(self, n, path):
        """`x.contiguous()`: `x` itself."""
        x = n.args[0]
        v = self.index.get(x) if isinstance(x, torch.fx.Node) else None
        if len(n.args) != 1 or n.kwargs or not isinstance(v, (int, _Opaque)):
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        return v

    def no_value(self, n, path):
        """A call that computes nothing the graph reads (usage logging): dropped. Anything that
        reads its result runs eagerly."""
        if n.users:
            raise _unsupported(f"{path} whose result is used ({_origin(n)})")
        return _Opaque()

    def autocast_dtype(self, node, origin):
        """The autocast dtype (as a string) `node` computes under, or None. CUDA autocast only:
        thunder's op table follows torch.autocast's CUDA op lists, and CPU autocast has others."""
        ev = node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None
        leaves = [t for t in torch.utils._pytree.tree_leaves(ev) if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in leaves}
        state = self.autocast[-1]
        on = {d: dt for d, dt in state.items() if dt is not None}
        if not on:
            return None
        if "cpu" in on and (devices & {"cpu"} or not devices):
            raise _unsupported(f"CPU autocast (thunder follows CUDA autocast's op lists) "
                               f"({origin or _origin(node)})")
        if "cuda" in on and "cuda" in devices:
            return str(on["cuda"])
        return None

    def enter_autocast(self, n, path):
        """`torch.autocast(device_type, dtype, enabled)` entered: a region of that state (its
        value, the context, only ever reaches `exit_autocast`)."""
        device, dtype, enabled, *_ = list(n.args) + [None] * 4
        if not isinstance(device, str) or not isinstance(enabled, bool) or n.kwargs:
            raise _unsupported(f"torch.autocast with these arguments ({_origin(n)})")
        if device not in ("cuda", "cpu"):
            raise _unsupported(f"torch.autocast on {device} ({_origin(n)})")
        if enabled:
            dtype = dtype or torch.get_autocast_dtype(device)
            if dtype not in (torch.bfloat16, torch.float16):
                raise _unsupported(f"torch.autocast to {dtype} ({_origin(n)})")
        state = dict(self.autocast[-1])
        state[device] = dtype if enabled else None
        self.autocast.append(state)
        return _Opaque()

    def exit_autocast(self, n, path):
        """The end of the innermost `torch.autocast` region."""
        if len(self.autocast) < 2 or n.users:
            raise _unsupported(f"an autocast exit without its entry ({_origin(n)})")
        self.autocast.pop()
        return _Opaque()

    def grad_mode(self, n, path):
        """`torch._C._set_grad_enabled(mode)`: the start or end of a `torch.no_grad()` region.
        Its ops are translated as any; what makes them gradient-free is that they read no value
        with a gradient (`arg` checks). A graph that starts without grad and enables it stays
        with PyTorch (its compiled plans would have no backward)."""
        if len(n.args) != 1 or not isinstance(n.args[0], bool) or n.kwargs or n.users:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        if n.args[0] and not self.grad_start and not self.dry:
            raise _unsupported(f"a region that enables grad in a graph run without ({_origin(n)})")
        self.grad, self.grad_node = n.args[0], n
        return _Opaque()

    def new_filled(self, n, path):
        """`x.new_ones(size)`, `new_zeros`, `new_full(size, value)`, `new_empty`: `full` with
        `x`'s dtype and device unless given."""
        method = path.rpartition(".")[2]
        x, rest = n.args[0], list(n.args[1:])
        kwargs = dict(n.kwargs)
        ev = x.meta.get("example_value") if isinstance(x, torch.fx.Node) else None
        if not isinstance(ev, torch.Tensor):
            raise _unsupported(f"{path} of something that is not a tensor ({_origin(n)})")
        value = {"new_ones": 1, "new_zeros": 0, "new_empty": 0}.get(method)
        if value is None:
            if len(rest) == 2:
                value = rest.pop()
            else:
                value = kwargs.pop("fill_value", None)
        size = rest[0] if len(rest) == 1 and not _is_int(rest[0]) else rest
        if "size" in kwargs and not rest:
            size = kwargs.pop("size")
        if not _is_ints(size):
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        shape = [size] if _is_int(size) else list(size)
        return self.filled(n, path, shape, value, ev, kwargs)

    def filled(self, n, path, shape, value, ev, kwargs):
        """`full(shape, value)` for a factory call taking its dtype and device from the example
        value `ev` unless `kwargs` give them; what else it takes must be at its default."""
        dtype = kwargs.pop("dtype", None) or ev.dtype
        device = _device_name(kwargs.pop("device", None) or ev.device)
        for k, v in kwargs.items():
            if k not in _FACTORY_DEFAULTS or not (v is None or _at_default(v, _FACTORY_DEFAULTS[k])):
                raise _unsupported(f"{path} with {k}={v!r} ({_origin(n)})")
        if _is_value(value) or not isinstance(value, (bool, int, float)) or device is None:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        return self.emit_op("full", n, shape=shape, fill_value=value, dtype=dtype, device=device)

    def in_place(self, n, t):
        """An in-place op (`x += y`, `x.masked_fill_(m, v)`) on a value `x` the graph computed
        and nothing else aliases: its out-of-place op, converted to `x`'s dtype, which then is
        `x` for the nodes after it (functionalization)."""
        x = n.args[0]
        same = self.check_mutable(x, n)
        values = t.normalize(n, n.args, n.kwargs)
        out = self.emit(t.op.name, values, n)
        out = self.as_value_of(x, out, n)
        self.rebind(same, out)
        return out

    def check_mutable(self, x, n):
        """Raises UnsupportedError unless `x`, written in place by node `n`, is a tensor the
        graph computed (an input's change would have to reach the caller) whose memory no value
        made before `n` and read after it shares (a view of it, or it a view of that value,
        would change too). Returns the
        nodes that are this one tensor: the op that made it and every in-place op on it (each
        returns it), which all take the new value."""
        while _mutates(x) and isinstance(x.args[0], torch.fx.Node):
            x = x.args[0]  # an in-place op's result is its first argument
        ev = x.meta.get("example_value") if isinstance(x, torch.fx.Node) else None
        if not isinstance(ev, torch.Tensor) or x.op in ("placeholder", "get_attr"):
            raise _unsupported(f"an in-place change of an input of the graph ({_origin(n)})")
        from torch.multiprocessing.reductions import StorageWeakRef

        same = {x}
        for m in self.gm.graph.nodes:
            if _mutates(m) and m.args and m.args[0] in same:
                same.add(m)
        mine = StorageWeakRef(ev.untyped_storage())
        if self.order is None:
            self.order = {m: i for i, m in enumerate(self.gm.graph.nodes)}
        order = self.order
        for m in self.gm.graph.nodes:
            # An alias made after this change reads the changed tensor, as the nodes after it
            # do here; one made before and read after would read the old value here.
            if m in same or order[m] > order[n] or all(order[u] < order[n] for u in m.users):
                continue
            other = m.meta.get("example_value")
            for o in torch.utils._pytree.tree_leaves(other):
                if isinstance(o, torch.Tensor) and StorageWeakRef(o.untyped_storage()) == mine:
                    raise _unsupported(
                        f"an in-place change of a value that {m.name} aliases ({_origin(n)})")
        return same

    def as_value_of(self, x, out, n):
        """The value `out` (an id) in `x`'s dtype and shape, as an in-place op leaves `x`."""
        ev, res = x.meta["example_value"], n.meta.get("example_value")
        if isinstance(res, torch.Tensor) and list(res.shape) != list(ev.shape):
            raise _unsupported(f"an in-place op that changes the shape ({_origin(n)})")
        return self.emit_op("to", n, a=_Value(out), dtype=ev.dtype)

    def setitem(self, n, path):
        """`x[idx] = v`, `idx` ints, slices of step 1, None and `...`: the new value
        `where(mask, v padded to x's shape, x)`, which then is `x` (as `in_place`)."""
        x, idx, v = n.args
        same = self.check_mutable(x, n)
        shape = _shape(x)
        ev = x.meta["example_value"]
        org = _origin(n)
        idx = idx if isinstance(idx, tuple) else (idx,)
        # Per dim of x: (start, length) selected, and whether an int index drops the dim.
        box = [(0, s, False) for s in shape]
        for e in _basic_index(idx, shape, org):
            if e is not None:  # (a None adds a dim of 1 to the view, which v broadcasts over)
                d, start, length, drop = e
                box[d] = (start, length, drop)
        region = [length for _, length, _ in box]
        kept = [length for _, length, drop in box if not drop]
        if _is_value(v):
            val = self.emit_op("to", n, org, a=v, dtype=ev.dtype)
        elif isinstance(v, (bool, int, float)):
            val = self.emit_op("full", n, org, shape=[], fill_value=v, dtype=ev.dtype,
                               device=_device_name(ev.device))
        else:
            raise _unsupported(f"an assignment of a {type(v).__name__} ({org})")
        # v broadcasts to the selected region (without the dims ints drop), then gets them back.
        val = self.emit_op("expand", n, org, a=_Value(val), shape=kept)
        val = self.emit_op("reshape", n, org, a=_Value(val), shape=region)
        # F.pad's order: the last dim first, (before, after) each.
        pads = []
        for dim in reversed(range(len(shape))):
            start, length, _ = box[dim]
            pads += [start, shape[dim] - start - length]
        val = self.emit_op("pad", n, org, a=_Value(val), pad=pads, mode="constant", value=0)
        ones = self.emit_op("full", n, org, shape=region, fill_value=True, dtype=torch.bool,
                            device=_device_name(ev.device))
        mask = self.emit_op("pad", n, org, a=_Value(ones), pad=pads, mode="constant", value=0)
        out = self.emit_op("where", n, org, condition=_Value(mask), a=_Value(val), b=x)
        self.rebind(same, out)
        return _Opaque()

    def rebind(self, same, out):
        """After an in-place op: the nodes that are the changed tensor and are translated
        already (the later in-place ops on it are translated in turn) read the new value `out`."""
        for m in same:
            if m in self.index:
                self.index[m] = out

    def like_filled(self, n, path):
        """`torch.full_like(x, v)`, `zeros_like`, `ones_like`, `empty_like`: `full` of `x`'s
        shape, with `x`'s dtype and device unless given."""
        name = path.rpartition(".")[2]
        args, kwargs = list(n.args), dict(n.kwargs)
        x = args.pop(0) if args else kwargs.pop("input", None)
        value = {"zeros_like": 0, "ones_like": 1, "empty_like": 0}.get(name)
        if value is None:
            value = args.pop(0) if args else kwargs.pop("fill_value", None)
        ev = x.meta.get("example_value") if isinstance(x, torch.fx.Node) else None
        if not isinstance(ev, torch.Tensor) or args:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        return self.filled(n, path, _shape(x), value, ev, kwargs)

    def repeat(self, n, path):
        """`x.repeat(*reps)`: `x` (leading dims of 1 added up to `len(reps)`) reshaped to
        `[1, s0, 1, s1, ...]`, expanded to `[r0, s0, r1, s1, ...]`, reshaped to `[r0*s0, ...]`."""
        x, reps = n.args[0], list(n.args[1:])
        if len(reps) == 1 and isinstance(reps[0], (list, tuple, torch.Size)):
            reps = list(reps[0])
        if n.kwargs or not _is_value(x) or not reps or not all(_is_int(r) and r >= 0 for r in reps):
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        shape = _shape(x)
        if len(reps) < len(shape):
            raise _unsupported(f"{path} with fewer repeats than dims ({_origin(n)})")
        org = _origin(n)
        shape = [1] * (len(reps) - len(shape)) + shape
        inter = [k for s in shape for k in (1, s)]
        tiled = [k for r, s in zip(reps, shape) for k in (r, s)]
        v = self.emit_op("reshape", n, org, a=x, shape=inter)
        v = self.emit_op("expand", n, org, a=_Value(v), shape=tiled)
        return self.emit_op("reshape", n, org, a=_Value(v),
                            shape=[r * s for r, s in zip(reps, shape)])

    def conv1d(self, n, path):
        """`F.conv1d(x, w, bias, stride, padding, dilation, groups)`: `conv2d` of `x` and `w`
        with a height of 1 inserted (`(N, C, 1, L)`, `(O, C/groups, 1, K)`), then removed."""
        try:
            b = _CONV1D.bind(*n.args, **n.kwargs)
        except TypeError:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})") from None
        b.apply_defaults()
        x, w, bias, stride, padding, dilation, groups = b.arguments.values()

        def one(v):  # an int, or a list of one int
            if isinstance(v, (list, tuple)) and len(v) == 1:
                v = v[0]
            return v if _is_int(v) else None

        s, p, d = one(stride), one(padding), one(dilation)
        ranks = [len(_shape(t)) if _is_value(t) else None for t in (x, w)]
        if None in (s, p, d) or not _is_int(groups) or ranks != [3, 3]:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        org = _origin(n)
        x2 = self.emit_op("unsqueeze", n, org, a=x, dim=2)
        w2 = self.emit_op("unsqueeze", n, org, a=w, dim=2)
        y = self.emit_op("conv2d", n, org, a=_Value(x2), w=_Value(w2), bias=bias,
                         stride=[1, s], padding=[0, p], dilation=[1, d], groups=groups)
        return self.emit_op("squeeze", n, org, a=_Value(y), dim=[2])

    def diff(self, n, path):
        """`torch.diff(x, n=1, dim=-1, prepend=None, append=None)`: `x` with `prepend` and
        `append` concatenated along `dim`, minus itself shifted by one (as `sub`, which keeps
        PyTorch's bool case, `x[1:] != x[:-1]`, apart: that runs outside thunder)."""
        try:
            b = _DIFF.bind(*n.args, **n.kwargs)
        except TypeError:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})") from None
        b.apply_defaults()
        x, k, dim, pre, app = b.arguments.values()
        ev = x.meta.get("example_value") if isinstance(x, torch.fx.Node) else None
        if k != 1 or not _is_int(dim) or not isinstance(ev, torch.Tensor) or ev.dtype == torch.bool \
                or any(p is not None and not _is_value(p) for p in (pre, app)):
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        org = _origin(n)
        d = dim + ev.dim() if dim < 0 else dim
        parts = [p for p in (pre, x, app) if p is not None]
        length = sum(_shape(p)[d] for p in parts)
        whole = x if len(parts) == 1 else _Value(self.emit_op("cat", n, org, tensors=parts, dim=d))
        if length < 1:
            raise _unsupported(f"{path} of an empty dim ({org})")
        hi = self.emit_op("narrow", n, org, a=whole, dim=d, start=1, length=length - 1)
        lo = self.emit_op("narrow", n, org, a=whole, dim=d, start=0, length=length - 1)
        return self.emit_op("sub", n, org, a=_Value(hi), b=_Value(lo))

    def copy(self, n, path):
        """`x.clone()`: `x` itself (a trace has no memory to copy)."""
        x = n.args[0] if n.args else None
        kw = dict(n.kwargs)
        fmt = kw.pop("memory_format", torch.preserve_format)
        v = self.index.get(x) if isinstance(x, torch.fx.Node) else None
        if len(n.args) != 1 or kw or fmt is not torch.preserve_format or not isinstance(v, int):
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        return v

    def min_max(self, n, path):
        """`torch.min(a, b)` / `max`: `minimum` / `maximum`; `torch.min(x)`: `amin` of all."""
        which = path.rpartition(".")[2]
        if n.kwargs or not 1 <= len(n.args) <= 2:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        a = n.args[0]
        if len(n.args) == 2:
            b = n.args[1]
            if not (_is_value(a) and _is_value(b)):
                raise _unsupported(f"{path} with these arguments ({_origin(n)})")
            return self.emit_op("minimum" if which == "min" else "maximum", n, a=a, b=b)
        op = "amin" if which == "min" else "amax"
        if op not in OPS:
            raise _unsupported(f"{path} of a whole tensor ({_origin(n)})")
        return self.emit_op(op, n, a=a, dim=list(range(len(_shape(a)))), keepdim=False)

    def type_as(self, n, path):
        """`x.type_as(y)`: `x.to(y.dtype)`."""
        if len(n.args) != 2 or n.kwargs:
            raise _unsupported(f"{path} with these arguments ({_origin(n)})")
        ev = n.args[1].meta.get("example_value") if isinstance(n.args[1], torch.fx.Node) else None
        if not isinstance(ev, torch.Tensor):
            raise _unsupported(f"{path} of something that is not a tensor ({_origin(n)})")
        return self.emit_op("to", n, a=n.args[0], dtype=ev.dtype)

    def chunk(self, n, path):
        """`chunk` as narrows of its input."""
        for sig in _CHUNK[path]:
            try:
                bound = sig.bind(*n.args, **n.kwargs)
            except TypeError:
                continue
            bound.apply_defaults()
            x, chunks, dim = bound.arguments.values()
            return self.pieces("chunk", n, x, chunks, dim)
        raise _unsupported(f"chunk with these arguments ({_origin(n)})")

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
        return self.emit_op("permute", n, a=x, dims=dims)

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
            out.append(self.emit_op("narrow", n, a=x, dim=d, start=start, length=s))
            start += s
        return out

    def advanced_getitem(self, n, src, idx):
        """`x[..., i, j, ...]` with integer tensors `i`, `j` on adjacent dims (PyTorch's advanced
        indexing: the indices broadcast together, and their shape takes the place of the dims
        they index), other entries full slices or one `...`: `index_select` of the indexed dims
        merged into one, at the flat index (negative indices count from the end)."""
        org = _origin(n)
        shape = _shape(src)
        tensors = [k for k, i in enumerate(idx) if isinstance(i, torch.fx.Node)]
        if not all(_index_tensor(idx[k]) for k in tensors):
            raise _unsupported(f"indexing with a tensor that is not of integers ({org})")
        if tensors != list(range(tensors[0], tensors[-1] + 1)):
            raise _unsupported(f"tensor indices that are not next to each other ({org})")
        full = slice(None)
        others = [i for k, i in enumerate(idx) if k not in tensors]
        if any(not (i is Ellipsis or i == full) for i in others) or others.count(Ellipsis) > 1:
            raise _unsupported(f"tensor indices beside {others} ({org})")
        # The dims the tensors index: after the entries before them (`...` fills the rest).
        before = idx[:tensors[0]]
        after = idx[tensors[-1] + 1:]
        d0 = len(before) if Ellipsis not in before else len(shape) - len(after) - len(tensors)
        dims = list(range(d0, d0 + len(tensors)))
        if d0 < 0 or dims[-1] >= len(shape):
            raise _unsupported(f"an index {idx!r} of a {len(shape)}-d tensor ({org})")
        batch = list(torch.broadcast_shapes(*[_shape(idx[k]) for k in tensors]))
        flat = None
        for k, d in zip(tensors, dims):
            i = idx[k]
            # Negative indices count from the end; then the flat index over the merged dims.
            wrapped = self.emit_op("add", n, org, a=i, b=shape[d])
            neg = self.emit_op("lt", n, org, a=i, b=0)
            i = self.emit_op("where", n, org, condition=_Value(neg), a=_Value(wrapped), b=i)
            i = self.emit_op("expand", n, org, a=_Value(i), shape=batch)
            if flat is None:
                flat = i
            else:
                scaled = self.emit_op("mul", n, org, a=_Value(flat), b=shape[d])
                flat = self.emit_op("add", n, org, a=_Value(scaled), b=_Value(i))
        numel = 1
        for d in dims:
            numel *= shape[d]
        merged = shape[:d0] + [numel] + shape[dims[-1] + 1:]
        x = self.emit_op("reshape", n, org, a=src, shape=merged)
        count = 1
        for b in batch:
            count *= b
        f = self.emit_op("reshape", n, org, a=_Value(flat), shape=[count])
        out = self.emit_op("index_select", n, org, a=_Value(x), index=_Value(f), dim=d0)
        return self.emit_op("reshape", n, org, a=_Value(out),
                            shape=shape[:d0] + batch + shape[dims[-1] + 1:])

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
        if any(isinstance(i, torch.fx.Node) for i in idx):
            return self.advanced_getitem(n, src, idx)
        shape = _shape(src)
        # `d`: the dim of the value so far that the next entry indexes.
        cur, d, org = src, 0, _origin(n)
        for e in _basic_index(idx, shape, org):
            if e is None:
                cur = _Value(self.emit_op("unsqueeze", n, org, a=cur, dim=d))
                d += 1
                continue
            xd, start, length, drop = e
            if (start, length) != (0, shape[xd]):
                cur = _Value(self.emit_op("narrow", n, org, a=cur, dim=d, start=start,
                                          length=length))
            if drop:
                cur = _Value(self.emit_op("squeeze", n, org, a=cur, dim=[d]))
            else:
                d += 1
        # An index that selects everything is the tensor itself.
        return cur.id if isinstance(cur, _Value) else self.ref(cur, n)[1]


def _same_metadata(ev, value):
    """Raises `_aten.Refused` unless the result `value` of a call run on fake tensors has the
    structure, shapes and dtypes of Dynamo's `ev` for the node."""
    want, got = _aten._tensors(ev), _aten._tensors(value)
    if want is None or got is None or len(want) != len(got):
        raise _aten.Refused("its results differ from Dynamo's for the node")
    for w, g in zip(want, got):
        if w.dtype != g.dtype or list(w.shape) != list(g.shape) or w.device != g.device:
            raise _aten.Refused(f"a result of {g.dtype} {list(g.shape)} on {g.device} where "
                                f"Dynamo recorded {w.dtype} {list(w.shape)} on {w.device}")


def _basic_index(idx, shape, org):
    """The entries of a basic index `idx` (ints, slices of step 1, None, one `...`) of a tensor
    of `shape`, in order: None for a None (a new dim of 1), else `(dim, start, length, drop)`,
    what it selects of the tensor's `dim` and whether an int drops it (`...` gives the dims it
    spans whole). Raises UnsupportedError for anything else."""
    consumed = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if consumed > len(shape) or sum(1 for i in idx if i is Ellipsis) > 1:
        raise _unsupported(f"an index {idx!r} of a {len(shape)}-d tensor ({org})")
    out, d = [], 0
    for i in idx:
        if i is Ellipsis:
            for _ in range(len(shape) - consumed):
                out.append((d, 0, shape[d], False))
                d += 1
        elif i is None:
            out.append(None)
        elif isinstance(i, slice):
            if any(isinstance(p, torch.fx.Node) for p in (i.start, i.stop, i.step)):
                raise _unsupported(f"a slice computed at run time ({org})")
            start, stop, step = i.indices(shape[d])
            if step != 1:
                raise _unsupported(f"a slice with step {step} ({org})")
            out.append((d, start, max(stop - start, 0), False))
            d += 1
        elif _is_int(i):
            k = i + shape[d] if i < 0 else i
            if not 0 <= k < shape[d]:
                raise _unsupported(f"index {i} out of range for size {shape[d]} ({org})")
            out.append((d, k, 1, True))
            d += 1
        else:
            raise _unsupported(f"indexing with {type(i).__name__} ({org})")
    return out


def _mutates(n):
    """Whether node `n` is an in-place op on its first argument (it returns that tensor)."""
    return (n.op == "call_method" and isinstance(n.target, str) and n.target.endswith("_")
            and not n.target.startswith("_")) or (n.op == "call_function" and (
                n.target in _IN_PLACE or n.target is operator.setitem))


def _constant(n):
    """The tensor a `_CONSTANTS` call `n` makes, when its arguments are literals (no values) and
    it makes a plain tensor without grad; None otherwise (the call is then an op like any)."""
    leaves = []
    torch.fx.node.map_aggregate((n.args, n.kwargs), leaves.append)
    if any(isinstance(x, torch.fx.Node) for x in leaves) or n.kwargs.get("requires_grad"):
        return None
    try:
        t = n.target(*n.args, **n.kwargs)
    except Exception:
        return None
    return t if type(t) is torch.Tensor and not t.requires_grad else None


def _index_tensor(i):
    """Whether the index entry `i` is an integer tensor (a node whose value is one)."""
    ev = i.meta.get("example_value") if isinstance(i, torch.fx.Node) else None
    return isinstance(ev, torch.Tensor) and ev.dtype in (torch.int64, torch.int32)


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


_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


def is_dynamic(example_inputs):
    """Whether Dynamo made the graph of `example_inputs` dynamic (symbolic sizes)."""
    return any(
        isinstance(x, _SYMBOLIC)
        or isinstance(x, torch.Tensor) and not all(type(d) is int for d in _sizes(x))
        for x in example_inputs
    )


# Calls of a dynamic graph that only check sizes (they hold for the sizes of the call).
_SIZE_CHECKS = {torch._check, torch._check_is_size}


def specialize(gm, args, mode=None):
    """The static graph that `gm`, a dynamic graph, is for the sizes of `args` (its call's
    arguments): its size arithmetic evaluated (each value that is a size becomes a constant),
    every node's example value recomputed on fake tensors of these sizes, and the subgraphs of
    its higher-order ops (checkpoint regions) specialized alike. Returns the graph and its
    example inputs (fake tensors that require grad as `args` do; the numbers of `args`).
    `mode`: the fake mode of `args` that are fake already (a subgraph's)."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    mode = mode or FakeTensorMode()

    def fake(a):
        if isinstance(a, FakeTensor) and a.fake_mode is mode:
            return a
        return mode.from_tensor(a).detach().requires_grad_(a.requires_grad)

    with mode:
        examples = [fake(a) if isinstance(a, torch.Tensor) else a for a in args]
    values = {}

    class Record(torch.fx.Interpreter):
        def run_node(self, n):
            values[n] = super().run_node(n)
            return values[n]

    # (The grad mode is restored after: the graph's own grad-mode calls run too.)
    with mode, torch.set_grad_enabled(torch.is_grad_enabled()):
        Record(gm).run(*examples)
    graph = torch.fx.Graph()
    env = {}

    def concrete(v):
        if isinstance(v, (list, tuple)):  # torch.Size too
            return all(concrete(x) for x in v)
        return isinstance(v, (bool, int, float))

    for n in gm.graph.nodes:
        v = values.get(n)
        if n.op == "placeholder":
            m = graph.placeholder(n.target, type_expr=n.type)
            if concrete(v):  # a size Dynamo passes in: its uses take the number
                m.meta = dict(n.meta, example_value=v)
                env[n] = v
                continue
        elif n.op == "output":
            graph.output(torch.fx.graph.map_arg(n.args[0], lambda a: env[a]))
            continue
        elif n.op == "call_function" and n.target in _SIZE_CHECKS:
            continue
        elif n.op != "get_attr" and concrete(v):
            env[n] = v  # a size (or a number computed from sizes): now a constant
            continue
        else:
            m = graph.node_copy(n, lambda a: env[a])
        m.meta = dict(n.meta)
        if n.op == "placeholder" or (v is not None and not isinstance(v, torch.nn.Module)):
            m.meta["example_value"] = v  # (a subgraph's get_attr keeps Dynamo's meta)
        env[n] = m
    out = torch.fx.GraphModule(gm, graph)
    for n in gm.graph.nodes:
        body = n.args[0] if n.op == "call_function" and n.args else None
        sub = getattr(gm, body.target, None) if isinstance(body, torch.fx.Node) and \
            body.op == "get_attr" else None
        if isinstance(sub, torch.fx.GraphModule):
            operands = [values.get(a, a) if isinstance(a, torch.fx.Node) else a for a in n.args[1:]]
            setattr(out, body.target, specialize(sub, operands, mode)[0])
    return out, examples


def _ambient_autocast():
    """torch.autocast's state around the call: {device type: dtype or None}."""
    return {d: torch.get_autocast_dtype(d) if torch.is_autocast_enabled(d) else None
            for d in ("cuda", "cpu")}


def grad_mode_nodes(gm):
    """The `torch._C._set_grad_enabled(mode)` calls of `gm`, in order."""
    return [n for n in gm.graph.nodes
            if n.op == "call_function" and n.target is torch._C._set_grad_enabled]


def splits_grad_modes(gm, grad):
    """Whether `gm`, starting with grad mode `grad`, must be split at its grad-mode calls to be
    compiled: one graph compiles only while grad stays off where it starts off, and ends in
    the mode it starts in."""
    modes = [n.args[0] if len(n.args) == 1 else None for n in grad_mode_nodes(gm)]
    return bool(modes) and (modes[-1] != grad or (not grad and any(modes)))


def unsupported_nodes(gm):
    """`{node: why}` for the nodes of `gm` thunder cannot translate (`why` is None for a node
    that only follows such a node, such as an item of its tuple)."""
    e = _Encoder(gm, dry=True)
    e.run(None)
    return e.unsupported
