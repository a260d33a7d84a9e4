"""`thunder.jit` and its inspection functions."""

import functools

import torch

from . import _C, _autograd, _fx


class _State:
    def __init__(self, fn, executors):
        self.fn = fn
        self.executors = executors
        self.calls = 0
        self.compiles = 0
        self.eager_graphs = 0
        self.unsupported = []
        self.graphs = []  # every CompiledGraph, in order


def _validate(executors):
    valid = list(_C.available_executors())
    if executors is None:
        return valid
    if isinstance(executors, str) or not all(isinstance(e, str) for e in executors):
        raise ValueError(f"executors must be a list of names; the executors are: {', '.join(valid)}")
    bad = [e for e in executors if e not in valid]
    if bad:
        raise ValueError(f"unknown executor {bad[0]!r}; the executors are: {', '.join(valid)}")
    return list(executors)


def jit(fn, *, executors=None):
    """Compiles `fn` (a function or an `nn.Module`) with thunder.

    `executors`: names of the executors to use, highest priority first (see
    `thunder._C.available_executors()`); the default is all of them.
    """
    names = _validate(executors)
    state = _State(fn, names)
    name = "thunder_" + "".join(
        c if c.isalnum() else "_" for c in getattr(fn, "__name__", type(fn).__name__)
    ).strip("_")

    def backend(gm, example_inputs):
        state.compiles += 1
        wrt = []
        if torch.is_grad_enabled():
            wrt = [
                i
                for i, x in enumerate(example_inputs)
                if isinstance(x, torch.Tensor) and x.requires_grad and x.is_floating_point()
            ]
        try:
            inputs, nodes, outputs = _fx.encode(gm, example_inputs)
            cg = _C.compile(name, inputs, nodes, outputs, names, wrt)
        except _C.UnsupportedError as e:
            # Runs eagerly through PyTorch: correct, just not compiled.
            state.eager_graphs += 1
            state.unsupported.append(str(e))
            return gm.forward
        state.graphs.append(cg)
        return _autograd.differentiable(cg) if wrt else cg

    compiled = torch.compile(fn, backend=backend, dynamic=False)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        state.calls += 1
        try:
            return compiled(*args, **kwargs)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            inner = getattr(e, "inner_exception", None)
            if isinstance(inner, _C.ThunderError):
                raise inner from None
            raise

    wrapper._thunder_state = state
    return wrapper


def _state(jfn):
    state = getattr(jfn, "_thunder_state", None)
    if state is None:
        raise ValueError("not a function returned by thunder.jit")
    return state


def last_traces(jfn):
    """The traces (Python source) of the last graph `jfn` compiled: as captured, then as its
    plan runs it (with executors and fusion regions). Empty if nothing was compiled."""
    state = _state(jfn)
    if not state.graphs:
        return []
    return [src for _, src in state.graphs[-1].traces()]


def last_backward_traces(jfn):
    """The backward traces (Python source) of the last graph `jfn` compiled with grad: as the
    grad transform made it, then as its plan runs it. Empty without grad."""
    state = _state(jfn)
    if not state.graphs:
        return []
    return [src for _, src in state.graphs[-1].backward_traces()]


def compile_stats(jfn):
    """Calls, compilations (Dynamo's captures of new input metadata), cache hits, graphs run
    eagerly and why."""
    state = _state(jfn)
    return {
        "calls": state.calls,
        "compiles": state.compiles,
        "cache_hits": state.calls - state.compiles,
        "compiled_graphs": len(state.graphs),
        "eager_graphs": state.eager_graphs,
        "unsupported": list(state.unsupported),
    }
