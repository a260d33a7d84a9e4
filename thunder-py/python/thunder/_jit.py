"""`thunder.jit`, `ThunderModule` and the inspection functions."""

import collections
import copy
import functools
import inspect
import time
import warnings

import torch
from torch.fx.passes.split_module import split_module

from . import _C, _autograd, _fx


_FALLBACKS = ("inductor", "eager")


class _State:
    def __init__(self, fn, executors, cuda_graphs=False, fallback="inductor", max_shapes=8):
        self.fn = fn
        self.max_shapes = max_shapes  # sizes compiled per dynamic graph (`_Dynamic`)
        self.shapes = []  # each dynamic graph's stats
        self.specializations = 0  # compilations of dynamic graphs for new sizes
        self.executors = executors
        self.cuda_graphs = cuda_graphs  # replay compiled plans from CUDA graphs
        self.fallback = fallback  # what runs the pieces thunder cannot compile
        self.calls = 0
        self.compiles = 0
        self.misses = 0  # calls that compiled something
        self.eager_graphs = 0
        self.inductor_graphs = 0
        self.pieces = []  # every _Piece of every graph Dynamo captured, in order
        self.unsupported = []
        self.aten_calls = collections.Counter()  # ATen operators thunder runs by name (`_aten`)
        self.graphs = []  # every CompiledGraph, in order
        self.seconds = collections.defaultdict(float)  # compile seconds per stage
        self.ddp = None  # (world size, bucket bytes, communicator) from thunder.distributed.ddp
        self.eager_params = set()  # ids of parameters that eagerly run pieces read
        self.ddp_params = []  # the parameters thunder.distributed.ddp averages
        self.fsdp = None  # thunder.distributed's _Fsdp (layout, shards) from thunder.distributed.fsdp
        self.no_sync = False  # inside `no_sync()`: gradients accumulate locally
        self.accumulated = False  # local gradients are waiting for the next synced backward
        self.sync_queued = False  # that backward's end-of-pass averaging is queued
        self.thunder_s = 0.0  # of which inside thunder (translation and the stages in Rust)


def _validate(executors):
    valid = list(_C.available_executors())
    if executors is None:
        return valid
    if isinstance(executors, str) or not all(isinstance(e, str) for e in executors):
        raise ValueError(f"executors must be a list of names; the executors are: {', '.join(valid)}")
    bad = [e for e in executors if e not in valid]
    if bad:
        raise ValueError(f"unknown executor {bad[0]!r}; the executors are: {', '.join(valid)}")
    if not executors:
        raise ValueError(f"executors must name at least one of: {', '.join(valid)}")
    return list(executors)


def _validate_options(cuda_graphs, fallback, max_shapes):
    if not _is_count(max_shapes):
        raise ValueError(f"max_shapes must be an int >= 0, not {max_shapes!r}")
    if not isinstance(cuda_graphs, bool):
        raise ValueError(f"cuda_graphs must be True or False, not {cuda_graphs!r}")
    if fallback not in _FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(map(repr, _FALLBACKS))}, not {fallback!r}")


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _report(state, why):
    if why not in state.unsupported:
        state.unsupported.append(why)


def _mark_eager(state, values, why=None):
    """Marks the parameters among `values` as read by a part that runs eagerly (`why`: the
    reason, if known better than the last one reported)."""
    params = [x for x in values if isinstance(x, torch.nn.Parameter)]
    if state.fsdp is not None:
        names = [state.fsdp.names[state.fsdp.index[id(p)]] for p in params if id(p) in state.fsdp.index]
        if names:
            why = why or (state.unsupported[-1] if state.unsupported else None)
            why = f" ({why})" if why else ""
            raise _C.ThunderError(
                f"thunder.distributed.fsdp: a part of the model that runs eagerly{why} reads the "
                f"sharded parameter(s) {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}; "
                "FSDP needs every parameter inside graphs thunder compiles (thunder.examine(model, "
                "*args) on the unsharded model lists what runs eagerly)"
            )
    state.eager_params.update(id(x) for x in params)


class _Piece:
    """A graph Dynamo captured, or a piece of one split where thunder's support changes: what
    `compile_stats` reports of it. `examples` are its inputs as Dynamo recorded them (fake
    tensors, numbers); `grad` the grad mode it starts under."""

    def __init__(self, name, gm, examples, grad):
        self.name = name
        self.gm = gm
        self.examples = examples
        self.grad = grad
        self.engine = None  # "thunder", "inductor" or "eager", once it has been compiled
        self._flops = False  # not counted yet

    def flops(self):
        """FLOPs of one call, forward and (when it starts with grad) backward, as PyTorch's FLOP
        counter counts them (matrix products, convolutions, attention); None if they cannot be
        counted. Counted once, on fake tensors: no memory, no kernels."""
        if self._flops is False:
            try:
                self._flops = _count_flops(self.gm, self.examples, self.grad)
            except Exception:
                self._flops = None
        return self._flops


def _count_flops(gm, examples, grad):
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    tensors = [x for x in examples if isinstance(x, torch.Tensor)]
    mode = torch._guards.detect_fake_mode(tensors) or FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        args = [
            (x if isinstance(x, FakeTensor) else mode.from_tensor(x)).detach().requires_grad_(
                x.requires_grad and grad)
            if isinstance(x, torch.Tensor) else x
            for x in examples
        ]
        with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(grad):
            out = gm(*args)
            outs = [o for o in torch.utils._pytree.tree_leaves(out)
                    if isinstance(o, torch.Tensor) and o.requires_grad]
            if outs and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                # (`backward`, not `autograd.grad`: the counter's module hooks refuse the latter.)
                torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
    return counter.get_total_flops()


def _fallback(state, piece, gm, args, dynamic=False):
    """A callable that runs `gm`, which thunder does not compile, on arguments like `args`:
    Inductor's (torch.compile's compiler), or `gm` itself (eagerly) with `fallback="eager"` or
    when Inductor fails too. Counted, and its parameters marked (data parallelism averages
    their gradients through torch.distributed). `dynamic`: `gm` has symbolic sizes, and goes
    through torch.compile, whose guards check each call's sizes against what the compiled code
    assumes (a compile_fx of it would bake in the sizes of `args`; it compiles at its call)."""
    _mark_eager(state, args)
    if state.fallback == "inductor" and dynamic:
        state.inductor_graphs += 1
        piece.engine = "inductor"
        return torch.compile(gm, backend="inductor", dynamic=True)
    if state.fallback == "inductor":
        t0 = time.perf_counter()
        try:
            # On a copy of the graph: Inductor's passes may rewrite it, and a failure must
            # leave the eager fallback intact.
            fn = torch._inductor.compile(torch.fx.GraphModule(gm, copy.deepcopy(gm.graph)),
                                         list(args))
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            why = f"Inductor could not compile a piece either, which runs eagerly: {type(e).__name__}: {first}"
            _report(state, why)
            warnings.warn(why, RuntimeWarning, stacklevel=2)
        else:
            state.seconds["inductor"] += time.perf_counter() - t0
            state.inductor_graphs += 1
            piece.engine = "inductor"
            return fn
    state.eager_graphs += 1
    piece.engine = "eager"
    return gm.forward


def _fresh_where_eager_is(gm, run):
    """`run`, with a copy of each output that shares memory with an input where eager's
    output (Dynamo's example value) does not: thunder's `clone` is the value itself, and a
    piece after this one that changes the output in place (the fallback's) would otherwise
    change the caller's tensor, or autograd's view of it."""
    from torch.multiprocessing.reductions import StorageWeakRef

    def storage(ev):
        return StorageWeakRef(ev.untyped_storage()) if isinstance(ev, torch.Tensor) else None

    ins = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            ins.add(storage(n.meta.get("example_value")))
        elif n.op == "get_attr":
            ins.add(storage(getattr(gm, n.target, None)))
    ins.discard(None)
    (out,) = [n for n in gm.graph.nodes if n.op == "output"]
    outs = out.args[0] if isinstance(out.args[0], (tuple, list)) else (out.args[0],)
    fresh = [
        i for i, o in enumerate(outs)
        if isinstance(o, torch.fx.Node) and storage(o.meta.get("example_value")) is not None
        and storage(o.meta.get("example_value")) not in ins
    ]
    if not fresh:
        return run

    def run_fresh(*a):
        outs = list(run(*a))
        mine = {t.untyped_storage().data_ptr() for t in a
                if isinstance(t, torch.Tensor) and t.numel()}
        for i in fresh:
            o = outs[i] if i < len(outs) else None
            if isinstance(o, torch.Tensor) and o.numel() and o.untyped_storage().data_ptr() in mine:
                outs[i] = o.clone()
        return tuple(outs)

    return run_fresh


def _compile(state, piece, gm, args):
    """A callable that runs `gm` on arguments like `args`: thunder's compiled plans, or (when
    thunder cannot compile it; the reason goes into the stats) the fallback's."""
    t0 = time.perf_counter()
    name = piece.name

    def eager():
        return _fallback(state, piece, gm, args)

    try:
        enc = _fx.encode(gm, args)
        wrt = []
        everything = list(args) + enc.consts
        sharded = state.fsdp is not None and any(id(x) in state.fsdp.index for x in everything)
        if torch.is_grad_enabled() or sharded:
            # (Sharded parameters need the FSDP plans, which come with a backward, also
            # without grad: the backward is then never run.)
            wrt = [
                i
                for i, x in enumerate(everything)
                if isinstance(x, torch.Tensor) and x.requires_grad and x.is_floating_point()
            ]
        t1 = time.perf_counter()
        state.seconds["translate"] += t1 - t0
        ddp, comm, fsdp = None, None, None
        if state.ddp and wrt:
            world, bucket, comm = state.ddp
            reduce = [k for k, i in enumerate(wrt) if isinstance(everything[i], torch.nn.Parameter)]
            ddp = (world, bucket, reduce) if reduce else None
        if sharded and wrt:
            f = state.fsdp
            comm = f.comm
            pairs = [(k, f.index[id(everything[i])]) for k, i in enumerate(wrt) if id(everything[i]) in f.index]
            fsdp = (f.layout, pairs, f.prefetch) if pairs else None
        # CUDA graphs: parameters are the same tensors at every call (updated in place).
        graphs = (
            [i for i, x in enumerate(everything) if isinstance(x, torch.nn.Parameter)]
            if state.cuda_graphs else None
        )
        cg = _C.compile(name, enc.inputs, enc.nodes, enc.outputs, state.executors, wrt, ddp, comm, fsdp,
                        graphs)
    except _C.UnsupportedError as e:
        # Runs eagerly through PyTorch: correct, just not compiled.
        _report(state, str(e))
        return eager()
    except _C.ThunderError as e:
        # A translation thunder-ir rejects is thunder's bug, not the user's: run eagerly, say so.
        why = f"thunder could not compile a graph and runs it eagerly: {e}"
        _report(state, why)
        warnings.warn(why + " (please report it)", RuntimeWarning, stacklevel=2)
        return eager()
    finally:
        state.thunder_s += time.perf_counter() - t0
    mismatch = _meta_mismatch(gm, cg)
    if mismatch:
        # Thunder's metadata disagrees with PyTorch's: never return silently different results.
        why = f"thunder's {mismatch}; the graph runs eagerly"
        _report(state, why)
        warnings.warn(why + " (please report it)", RuntimeWarning, stacklevel=2)
        return eager()
    for stage, s in cg.compile_seconds():
        state.seconds[stage] += s
    state.graphs.append(cg)
    state.aten_calls.update(enc.aten)
    piece.engine = "thunder"
    run = _autograd.differentiable(cg, state) if wrt else cg
    fsdp_inputs = cg.fsdp_inputs()
    if fsdp_inputs is not None:
        # The plans take the inputs that are not sharded parameters, then the bucket shards.
        keep, buckets = fsdp_inputs
        shards, plain = state.fsdp.shards, run

        def run(*a):
            return plain(*[a[i] for i in keep], *[shards[k] for k in buckets])

    run = _fresh_where_eager_is(gm, run)
    consts = tuple(enc.consts)
    if consts and enc.tuple_output:
        return lambda *a: run(*a, *consts)
    if consts:
        return lambda *a: run(*a, *consts)[0]
    if enc.tuple_output:
        return run
    return lambda *a: run(*a)[0]


def _meta_mismatch(gm, cg):
    """How thunder's output dtypes and shapes differ from those Dynamo recorded, or None."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for i, (o, meta) in enumerate(zip(outs, cg.output_metas())):
        ev = o.meta.get("example_value") if isinstance(o, torch.fx.Node) else None
        if not isinstance(ev, torch.Tensor) or meta is None:
            continue
        dtype, shape = meta
        if dtype != str(ev.dtype) or list(shape) != list(ev.shape):
            return (f"output {i} is {dtype}{list(shape)} where PyTorch computes "
                    f"{ev.dtype}{list(ev.shape)} ({_fx._origin(o)})")
    return None


def _grad_key(args):
    """What decides a compiled graph besides its code and its inputs' metadata (which Dynamo
    guards for the whole graph, not for a piece): the grad mode, which tensor arguments require
    grad, and torch.autocast's state around it."""
    autocast = tuple(_fx._ambient_autocast().items())
    return (torch.is_grad_enabled(), autocast,
            *(isinstance(a, torch.Tensor) and a.requires_grad for a in args))


def _take_grad_prelude(gm):
    """Removes the `torch._C._set_grad_enabled(mode)` calls that `split_module` puts at the
    start of every piece inside a grad-mode region, and returns the mode they leave (None
    without one). The piece sets it before it runs, compiled or not, so that such a piece can
    still be compiled: the call changes no value, only the mode the piece runs under."""
    mode = None
    for n in list(gm.graph.nodes):
        if n.op == "placeholder":
            continue
        if n.op != "call_function" or n.target is not torch._C._set_grad_enabled or n.users:
            break
        if len(n.args) != 1 or not isinstance(n.args[0], bool) or n.kwargs:
            break
        mode = n.args[0]
        gm.graph.erase_node(n)
    if mode is not None:
        gm.recompile()
    return mode


class _Partition(torch.nn.Module):
    """A piece of a split graph, compiled at its first call (its inputs are then known: values
    computed by the pieces before it): by thunder (`thunder=True`), else by the fallback.

    Dynamo's guards cover the whole graph's inputs and the grad mode when the graph starts,
    not what a piece sees: its inputs are activations of the pieces before it, and the grad
    mode is whatever `_set_grad_enabled` calls before it left. A piece compiled under one grad
    mode and run under another would silently lose (or invent) gradients, so each piece keeps
    one compiled callable per grad mode and `requires_grad` pattern of its arguments."""

    def __init__(self, state, name, gm, thunder, grad):
        super().__init__()
        examples = [n.meta.get("example_value") for n in gm.graph.nodes if n.op == "placeholder"]
        self._grad_mode = _take_grad_prelude(gm)
        self.gm = gm
        self._state = state
        self._piece = _Piece(name, gm, examples, grad if self._grad_mode is None else self._grad_mode)
        state.pieces.append(self._piece)
        self._name = name
        self._thunder = thunder
        self._fns = {}

    def forward(self, *args):
        if self._grad_mode is not None:
            torch._C._set_grad_enabled(self._grad_mode)
        key = _grad_key(args)
        fn = self._fns.get(key)
        if fn is None:
            p = self._piece
            p.name = self._name if not self._fns else f"{self._name}_v{len(self._fns)}"
            if self._thunder:
                fn = _compile(self._state, p, self.gm, args)
            else:
                fn = _fallback(self._state, p, self.gm, args)
            self._fns[key] = fn
        return fn(*args)


def _backend(state, base):
    def backend(gm, example_inputs):
        state.compiles += 1
        # Each capture's pieces get names of their own (`thunder_f_1`, then `thunder_f_g2_1`).
        name = base if state.compiles == 1 else f"{base}_g{state.compiles}"
        if _fx.is_dynamic(example_inputs):
            return _Dynamic(state, name, gm)
        return _compile_graph(state, name, gm, example_inputs)

    return backend


class _Dynamic:
    """A graph Dynamo made dynamic (symbolic sizes) after its sizes changed: one graph for
    every size, where thunder compiles static shapes. Each call's sizes get their own
    specialization of the graph (its size arithmetic evaluated, `_fx.specialize`), compiled as
    any graph, for up to `max_shapes` sizes; further sizes run the dynamic graph on the
    fallback (Inductor's dynamic shapes through torch.compile, or eagerly), reported in
    `compile_stats` (`shapes`, `unsupported`)."""

    def __init__(self, state, name, gm):
        self.state = state
        self.name = name
        self.gm = gm
        self.fns = {}  # sizes -> compiled callable
        self.beyond = None  # the fallback on the dynamic graph, once the cap is reached
        self.failed = False  # a specialization failed: every size runs on the fallback
        self.stats = {"graph": name, "sizes": 0, "beyond_cap_calls": 0}
        state.shapes.append(self.stats)

    def __call__(self, *args):
        key = tuple((tuple(a.shape), a.dtype, a.device, a.requires_grad)
                    if isinstance(a, torch.Tensor) else a for a in args)
        fn = self.fns.get(key)
        if fn is not None:
            return fn(*args)
        state = self.state
        if len(self.fns) >= state.max_shapes or self.failed:
            self.stats["beyond_cap_calls"] += 1
            if self.beyond is None:
                state.specializations += 1
                _report(state, f"{self.name}: more than max_shapes={state.max_shapes} sizes; "
                               f"the others run on {state.fallback} with dynamic shapes")
                self.beyond = self._fallback(args)
            return self.beyond(*args)
        state.specializations += 1
        t0 = time.perf_counter()
        try:
            spec, _ = _fx.specialize(self.gm, args)
        except Exception as e:
            # (Fake tensors refuse something of this graph: its sizes cannot be evaluated
            # here. The dynamic graph itself runs, on the fallback, for this size and the next.)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            _report(state, f"{self.name}: its sizes could not be specialized "
                           f"({type(e).__name__}: {first})")
            self.failed = True
            self.stats["beyond_cap_calls"] += 1
            self.beyond = self._fallback(args)
            return self.beyond(*args)
        finally:
            state.seconds["specialize"] += time.perf_counter() - t0
        # Compiled for the call's own arguments (not fakes): data parallelism and CUDA graphs
        # recognize the parameters among them.
        fn = _compile_graph(state, f"{self.name}_s{len(self.fns)}", spec, args)
        self.fns[key] = fn
        self.stats["sizes"] = len(self.fns)
        return fn(*args)

    def _fallback(self, args):
        """The dynamic graph on the fallback: one compilation for every size from now on."""
        piece = _Piece(f"{self.name}_dynamic", self.gm, list(args), torch.is_grad_enabled())
        self.state.pieces.append(piece)
        return _fallback(self.state, piece, self.gm, args, dynamic=True)


def _compile_graph(state, name, gm, example_inputs):
    """The callable that runs the static-shaped graph `gm`: thunder's plans for it, or for its
    pieces (split where thunder's support changes) with the fallback's for the others."""
    grad = torch.is_grad_enabled()

    def whole(thunder):
        if thunder:
            piece = _Piece(name, gm, list(example_inputs), grad)
            state.pieces.append(piece)
            return _compile(state, piece, gm, example_inputs)
        return _Partition(state, name, gm, False, grad)

    try:
        unsupported = _fx.unsupported_nodes(gm)
    except _C.UnsupportedError as e:
        _report(state, str(e))
        _mark_eager(state, example_inputs, str(e))
        return whole(False)
    modes = _fx.grad_mode_nodes(gm)
    if not unsupported and not _fx.splits_grad_modes(gm, grad):
        return whole(True)
    # Checkpoint regions thunder compiles whole: their own pieces (`_thunder_checkpoints`).
    ckpt = _checkpoints(state, gm, unsupported, grad)
    for n, why in unsupported.items():
        if why is not None and n not in ckpt:
            _report(state, why)
    # Split where support changes: thunder compiles the supported pieces, PyTorch runs the
    # rest eagerly (as Lightning Thunder's splitter does for Dynamo graphs).
    # Also at every grad-mode call: a piece then runs under one grad mode (the call is its
    # first node, which the piece makes before it runs: `_Partition`).
    part, current, supported = {}, -1, None
    pieces = {}
    pending = object()  # a piece begun by a grad-mode call: its next node decides its kind
    for n in gm.graph.nodes:
        if n.op in ("placeholder", "output"):
            continue
        ok = n not in unsupported
        if n in ckpt:
            ok = "checkpoint"
        if n in modes:
            current, supported = current + 1, pending
            pieces[current] = None
        elif supported is pending:
            pieces[current] = supported = ok
        elif ok != supported:
            current, supported = current + 1, ok
            pieces[current] = ok
        part[n] = current
    def reasons(nodes):
        out = []
        for n in nodes:
            if unsupported.get(n) and unsupported[n] not in out:
                out.append(unsupported[n])
        return "; ".join(out) or None

    if not any(pieces.values()):
        _mark_eager(state, example_inputs, reasons(part))
        return whole(False)
    # In the graph's own order: the pieces between `_set_grad_enabled` calls must run while
    # the grad mode they were written under holds (a topological order may run a piece from
    # before a `torch.no_grad()` region after it, and its parameters then get no gradient).
    try:
        split = split_module(gm, gm, lambda n: part[n], keep_original_order=True)
    except AssertionError as e:
        # (split_module refuses, e.g., an autocast region that does not end in the graph.)
        _report(state, f"a graph that cannot be split where thunder's support changes: {e}")
        _mark_eager(state, example_inputs)
        return whole(False)
    by_name = {
        n.name: x
        for n, x in zip((n for n in gm.graph.nodes if n.op == "placeholder"), example_inputs)
    }
    for i, ok in pieces.items():
        sub = f"submod_{i}"
        if not hasattr(split, sub):
            continue
        piece = getattr(split, sub)
        if ok is None:
            continue  # grad-mode calls only: the piece runs as it is
        if ok == "checkpoint":
            _thunder_checkpoints(state, f"{name}_{i}", piece, grad)
            continue
        if not ok:
            _mark_eager(
                state,
                [by_name.get(n.name) for n in piece.graph.nodes if n.op == "placeholder"],
                reasons([n for n in part if part[n] == i]),
            )
        setattr(split, sub, _Partition(state, f"{name}_{i}", piece, ok, grad))
    return split.forward


_CHECKPOINT = torch.ops.higher_order.tag_activation_checkpoint


def _checkpoints(state, gm, unsupported, grad):
    """The `torch.utils.checkpoint` calls of `gm` whose region thunder compiles whole, with the
    nodes that only take their results apart: they become pieces of their own."""
    if state.ddp is not None or state.fsdp is not None:
        return set()  # data parallelism averages gradients per compiled graph: kept simple
    out = set()
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is _CHECKPOINT:
            body = getattr(gm, n.args[0].target, None) if isinstance(n.args[0], torch.fx.Node) else None
            extra = set(n.kwargs) - {"use_reentrant", "preserve_rng_state", "determinism_check"}
            if not isinstance(body, torch.fx.GraphModule) or extra:
                continue
            try:
                bad = _fx.unsupported_nodes(body)
            except _C.UnsupportedError:
                continue
            if not bad and not _fx.splits_grad_modes(body, grad):
                out.add(n)
        elif unsupported.get(n, "") is None and any(a in out for a in n.all_input_nodes):
            out.add(n)  # an item of a checkpoint's results
    return out


def _thunder_checkpoints(state, name, piece, grad):
    """Rewrites the checkpoint calls of the split piece `piece`: each region is a thunder
    piece, called through `torch.utils.checkpoint` (non-reentrant), which drops what thunder's
    forward saves for the backward and runs that forward again when the backward needs it: the
    region is recomputed (PyTorch's checkpoint machinery keeps its RNG state and its autograd
    semantics; thunder compiles both runs)."""
    import torch.utils.checkpoint as cp

    for k, n in enumerate([n for n in piece.graph.nodes
                           if n.op == "call_function" and n.target is _CHECKPOINT]):
        body = getattr(piece, n.args[0].target)
        inner = _Partition(state, f"{name}_checkpoint{k}", body, True, grad)
        rng = n.kwargs.get("preserve_rng_state", True)

        def thunder_checkpoint(*args, inner=inner, rng=rng):
            return cp.checkpoint(inner, *args, use_reentrant=False, preserve_rng_state=rng)

        fn = thunder_checkpoint
        with piece.graph.inserting_before(n):
            new = piece.graph.call_function(fn, tuple(n.args[1:]))
        new.meta = dict(n.meta)
        n.replace_all_uses_with(new)
        piece.graph.erase_node(n)
    piece.graph.eliminate_dead_code()
    piece.recompile()


def _wrap(state, compiled):
    def call(*args, **kwargs):
        state.calls += 1
        before = (state.compiles, state.specializations)
        inside = state.thunder_s + state.seconds.get("inductor", 0.0)
        t0 = time.perf_counter()
        try:
            return compiled(*args, **kwargs)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            inner = getattr(e, "inner_exception", None)
            if isinstance(inner, _C.ThunderError):
                raise inner from None
            raise
        finally:
            if (state.compiles, state.specializations) != before:
                state.misses += 1
                # Dynamo's capture (with the graph's first run, which compiles lazy pieces),
                # without thunder's and Inductor's compile seconds.
                spent = state.thunder_s + state.seconds.get("inductor", 0.0) - inside
                state.seconds["dynamo"] += time.perf_counter() - t0 - spent

    return call


class ThunderModule(torch.nn.Module):
    """A module compiled by `thunder.jit`. It owns nothing: parameters, buffers, submodules,
    `state_dict()` keys and `train()`/`eval()` are those of the original module, which it
    shares (an optimizer over either module's parameters updates both)."""

    def __init__(self, module, state, compiled, compiled_forward):
        super().__init__()
        self._orig_mod = module
        self._thunder_state = state
        self._thunder_call = _wrap(state, compiled)
        # The module's own forward compiled (not through its instance attribute, which the
        # methods below patch): what the module's other methods reach through `self(...)`.
        self._thunder_forward = _wrap(state, compiled_forward)

    def forward(self, *args, **kwargs):
        return self._thunder_call(*args, **kwargs)

    def no_sync(self):
        """With `thunder.distributed.ddp`: a context in which backward passes accumulate
        gradients locally, without communication (gradient accumulation); the first backward
        after it averages the accumulated gradients over the ranks."""
        from . import distributed

        return distributed.no_sync(self)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """The original module's parameters; after `thunder.distributed.fsdp`, this rank's
        bucket shards (`fsdp_shard_<k>`, what the optimizer updates) and the parameters left
        whole (those that do not require grad)."""
        f = self._thunder_state.fsdp
        if f is None:
            yield from self._orig_mod.named_parameters(prefix, recurse, remove_duplicate)
            return
        dot = prefix + "." if prefix else ""
        for k, s in enumerate(f.shards):
            yield f"{dot}fsdp_shard_{k}", s
        for name, p in self._orig_mod.named_parameters(prefix, recurse, remove_duplicate):
            if id(p) not in f.index:
                yield name, p

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        # Skips this wrapper: names are the original module's.
        return self._orig_mod.named_modules(memo, prefix, remove_duplicate)

    def state_dict(self, *args, **kwargs):
        if self._thunder_state.fsdp is not None:
            from . import distributed

            return distributed._full_state_dict(self)
        return self._orig_mod.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if self._thunder_state.fsdp is not None:
            from . import distributed

            return distributed._load_full_state_dict(self, state_dict, strict)
        return self._orig_mod.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            orig = self.__dict__.get("_modules", {}).get("_orig_mod")
            if orig is None:
                raise
            attr = getattr(orig, name)
            if (inspect.ismethod(attr) and attr.__self__ is orig
                    and not hasattr(torch.nn.Module, name)):
                return self._through_thunder(attr)
            return attr

    def _through_thunder(self, method):
        """`method` of the original module (one nn.Module does not define, such as
        transformers' `generate`), with the module's calls of itself inside it compiled: its
        `forward` is thunder's while the method runs."""
        orig = self._orig_mod

        @functools.wraps(method)
        def call(*args, **kwargs):
            had = "forward" in orig.__dict__
            saved = orig.__dict__.get("forward")
            orig.forward = self._thunder_forward
            try:
                return method(*args, **kwargs)
            finally:
                if had:
                    orig.forward = saved
                else:
                    del orig.forward

        return call


def jit(fn, *, executors=None, cuda_graphs=False, fallback="inductor", max_shapes=8):
    """Compiles `fn` (a function or an `nn.Module`) with thunder.

    `executors`: names of the executors to use, highest priority first (see
    `thunder._C.available_executors()`); the default is all of them.

    `cuda_graphs=True`: every compiled graph (one per input signature) runs normally at its
    first call, is then captured into a CUDA graph and replayed at later calls (its forward
    and its backward separately). Outputs are copies; parameters are read in place. A graph
    that cannot be captured runs uncaptured, and `compile_stats(fn)["cuda_graphs"]` says why.
    With grad, a graph's backward must run before its next call (its saved values are the
    graph's own): otherwise the backward raises `ThunderError`.

    `fallback`: what runs the parts of the program thunder cannot compile (Dynamo's graph is
    split where thunder's support changes): `"inductor"` (the default) compiles them with
    torch.compile's compiler, and runs eagerly what Inductor refuses too; `"eager"` runs them
    eagerly. `compile_stats(fn)` says which engine ran each piece, and why thunder did not.

    `max_shapes`: thunder compiles static shapes. When the sizes of the inputs change, Dynamo
    makes the graph dynamic (one graph, symbolic sizes); thunder then compiles it once per
    distinct set of sizes, for up to `max_shapes` of them, and runs further sizes on the
    fallback with dynamic shapes (no more compilations). `compile_stats(fn)["shapes"]` counts
    them per graph.

    A module gives a `ThunderModule` that shares the module's parameters and buffers.
    """
    names = _validate(executors)
    if not callable(fn):
        raise ValueError(f"thunder.jit takes a function or an nn.Module, not {type(fn).__name__}")
    _validate_options(cuda_graphs, fallback, max_shapes)
    state = _State(fn, names, cuda_graphs, fallback, max_shapes)
    name = "thunder_" + "".join(
        c if c.isalnum() else "_" for c in getattr(fn, "__name__", type(fn).__name__)
    ).strip("_")
    # dynamic=None: static graphs first, and one dynamic graph once sizes change (`_Dynamic`),
    # instead of a capture per size until Dynamo's recompile limit sends the code to eager.
    compiled = torch.compile(fn, backend=_backend(state, name), dynamic=None)
    if isinstance(fn, torch.nn.Module):
        forward = torch.compile(type(fn).forward.__get__(fn), backend=_backend(state, name),
                                dynamic=None)
        return ThunderModule(fn, state, compiled, forward)
    wrapper = functools.wraps(fn)(_wrap(state, compiled))
    wrapper._thunder_state = state
    return wrapper


class Backend:
    """thunder as a `torch.compile` backend, for code that already calls torch.compile (as
    Lightning Thunder's ThunderFX): `torch.compile(model, backend=thunder.Backend())`, or
    `backend="thunder"`, the shared `thunder.backend`. The options are `thunder.jit`'s.
    `thunder.compile_stats(backend)` reports on every graph it compiled (without `calls`:
    torch.compile makes the calls). A graph Dynamo makes dynamic (torch.compile's default
    `dynamic=None`, after a change of sizes) is compiled per size as under `thunder.jit`
    (`max_shapes`)."""

    def __init__(self, *, executors=None, cuda_graphs=False, fallback="inductor", max_shapes=8):
        names = _validate(executors)
        _validate_options(cuda_graphs, fallback, max_shapes)
        self._thunder_state = _State(None, names, cuda_graphs, fallback, max_shapes)
        self._compile = _backend(self._thunder_state, "thunder_graph")

    def __call__(self, gm, example_inputs):
        return self._compile(gm, example_inputs)


backend = Backend()


def _register():
    """Registers `thunder.backend` with Dynamo as "thunder" (unless another package did)."""
    from torch._dynamo.backends import registry

    if "thunder" not in registry._COMPILER_FNS:
        registry.register_backend(backend, "thunder")


_register()


def _state(jfn):
    state = getattr(jfn, "_thunder_state", None) if callable(jfn) else None
    if not isinstance(state, _State):
        raise ValueError("not a function or module returned by thunder.jit, nor a thunder.Backend")
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


def compile_stats(jfn, flops=False):
    """Calls, compilations (Dynamo's captures of new input metadata), cache hits, graphs
    compiled by thunder, by Inductor (the fallback) and run eagerly, why thunder did not
    compile them, and compile seconds per stage. `pieces`: every piece of every captured
    graph, in order, with the engine that runs it (None: not run yet). `aten_calls`: the ATen
    operators thunder runs by name for calls it has no translation of (`prims.aten`: fusion
    barriers, differentiated by ATen's autograd), with how many compiled calls each.

    `flops=True` adds each piece's FLOPs (forward, and backward when it runs with grad, as
    `torch.utils.flop_counter` counts them on fake tensors) and `flop_share`: the share of all
    FLOPs in pieces thunder compiled (None when nothing could be counted)."""
    state = _state(jfn)
    pieces = [{"name": p.name, "engine": p.engine} for p in state.pieces]
    extra = {}
    if flops:
        by_engine = collections.defaultdict(int)
        for p, d in zip(state.pieces, pieces):
            d["flops"] = p.flops()
            by_engine[p.engine] += d["flops"] or 0
        total = sum(by_engine.values())
        extra["flop_share"] = by_engine["thunder"] / total if total else None
    return {
        "calls": state.calls,
        "compiles": state.compiles,
        "cache_hits": state.calls - state.misses,
        "compiled_graphs": len(state.graphs),
        "inductor_graphs": state.inductor_graphs,
        "eager_graphs": state.eager_graphs,
        "unsupported": list(state.unsupported),
        "aten_calls": dict(state.aten_calls),
        "pieces": pieces,
        "shapes": [dict(s) for s in state.shapes],
        **extra,
        "compile_seconds": dict(state.seconds),
        **({"cuda_graphs": _cuda_graph_stats(state)} if state.cuda_graphs else {}),
    }


def _cuda_graph_stats(state):
    """With `cuda_graphs=True`: how many plans are captured, and why the others are not."""
    captured, uncaptured = 0, []
    for cg in state.graphs:
        for part, ok, why in cg.cuda_graphs():
            if ok:
                captured += 1
            elif why:
                uncaptured.append(f"{part}: {why}")
    return {"captured": captured, "uncaptured": uncaptured}


class Examination:
    """What `thunder.examine` found: `unsupported` (why thunder did not compile pieces), the
    numbers of graphs compiled by thunder, by Inductor and run eagerly, per output the largest
    absolute difference from eager PyTorch, and `ok` (every output close to eager's)."""

    def __init__(self, stats, diffs, mismatches):
        self.unsupported = stats["unsupported"]
        self.compiled_graphs = stats["compiled_graphs"]
        self.inductor_graphs = stats["inductor_graphs"]
        self.eager_graphs = stats["eager_graphs"]
        self.max_abs_diff = diffs
        self.mismatches = mismatches
        self.ok = not mismatches

    def __repr__(self):
        lines = [
            f"thunder.examine: {self.compiled_graphs} graph(s) compiled by thunder, "
            f"{self.inductor_graphs} by Inductor, {self.eager_graphs} run eagerly; outputs "
            + ("match eager PyTorch" if self.ok else "DIFFER from eager PyTorch")
        ]
        lines += [f"  not compiled by thunder: {why}" for why in self.unsupported]
        lines += [f"  output {i}: max |diff| {d:.3g}" for i, d in enumerate(self.max_abs_diff)]
        lines += [f"  mismatch: {m}" for m in self.mismatches]
        return "\n".join(lines)


def _copy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(y) for y in x)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x


def _leaves(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _leaves(y)]
    if isinstance(x, dict):
        return [t for y in x.values() for t in _leaves(y)]
    return []


def examine(fn, *args, executors=None, fallback="inductor", rtol=None, atol=None, **kwargs):
    """Runs `fn(*args, **kwargs)` eagerly and through `thunder.jit` (each on its own copies of
    the arguments) and returns an `Examination`: which ops would run eagerly and why, and
    whether the outputs match (`torch.testing.assert_close` with `rtol`/`atol`). Printing it
    gives a summary."""
    want = fn(*_copy(args), **_copy(kwargs))
    jfn = jit(fn, executors=executors, fallback=fallback)
    got = jfn(*_copy(args), **_copy(kwargs))
    wants, gots = _leaves(want), _leaves(got)
    diffs, mismatches = [], []
    if len(wants) != len(gots):
        mismatches.append(f"{len(gots)} tensor outputs, eager gives {len(wants)}")
    for i, (g, w) in enumerate(zip(gots, wants)):
        same = g.shape == w.shape and g.dtype == w.dtype and g.device == w.device
        diffs.append(
            (g.detach().double() - w.detach().double()).abs().max().item()
            if same and g.numel()
            else float("nan") if not same else 0.0
        )
        try:
            torch.testing.assert_close(g, w, rtol=rtol, atol=atol)
        except AssertionError as e:
            mismatches.append(f"output {i}: {str(e).splitlines()[0]}")
    return Examination(compile_stats(jfn), diffs, mismatches)
