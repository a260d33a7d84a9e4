"""Data parallelism (DDP) and fully sharded data parallelism (FSDP, ZeRO-3) for jitted modules
over torch.distributed's process group.

    torch.distributed.init_process_group("nccl")        # torchrun sets RANK, WORLD_SIZE, ...
    jmodel = thunder.distributed.ddp(thunder.jit(model.cuda()))
    loss = jmodel(x); loss.backward(); opt.step()        # gradients averaged over the ranks

Compiled graphs average their parameters' gradients inside thunder's backward: buckets of about
`bucket_mb` are all-reduced on NCCL as soon as they are complete, overlapping the rest of the
backward. Rank 0 makes the NCCL id; the others read it from the process group's store. A module
on the CPU runs its collectives through a gloo process group instead (slow: for debugging and
tests). Gradients that PyTorch computes eagerly (pieces thunder does not compile) are averaged
by a hook through torch.distributed. Averaging is linear, so a gradient with both kinds of
contributions comes out right.
"""

import atexit
import collections
import contextlib
import datetime
import gc
import math
import numbers
from collections.abc import Mapping

import torch
import torch.distributed as dist

from . import _C, _jit

_ids = 0


def ddp(jmodel, *, bucket_mb=25, timeout_s=300.0):
    """Makes `jmodel` (from `thunder.jit(module)`) data parallel over the default process group;
    returns it. Call it before the first call of `jmodel`. Parameters and buffers are
    broadcast from rank 0."""
    state = _check(jmodel, "ddp", bucket_mb, timeout_s)
    world, rank = dist.get_world_size(), dist.get_rank()
    params = list(jmodel.parameters())
    comm = _communicator(jmodel, params, world, rank, timeout_s)
    state.ddp = (world, int(bucket_mb * (1 << 20)), comm)
    state.ddp_params = [p for p in params if p.requires_grad]

    def average_eager_part(p):
        if state.no_sync:
            return  # a no_sync micro-step: the gradient stays local
        if state.accumulated:
            _sync_when_backward_ends(state)  # averages every parameter's gradient at the end
            return
        # Only parameters some eager piece reads: thunder's graphs average their own.
        if world > 1 and id(p) in state.eager_params and p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)

    for p in params:
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(average_eager_part)
    return jmodel


def _check(jmodel, what, bucket_mb, timeout_s):
    """The checks ddp and fsdp share; returns the jitted module's state."""
    if not isinstance(jmodel, _jit.ThunderModule):
        raise ValueError(f"thunder.distributed.{what} takes a module returned by thunder.jit(module)")
    state = jmodel._thunder_state
    if state.calls:
        raise ValueError(f"call thunder.distributed.{what} before the first call of the jitted module")
    if state.ddp is not None or state.fsdp is not None:
        raise ValueError("the module is already data parallel (thunder.distributed.ddp or fsdp)")
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            f"thunder.distributed.{what} needs torch.distributed.init_process_group(...) first "
            "(under torchrun: init_process_group('nccl'))"
        )
    if not (_is_real(bucket_mb) and 0 < bucket_mb < math.inf):
        raise ValueError(f"bucket_mb must be a positive finite number of MiB, not {bucket_mb!r}")
    _check_timeout(timeout_s)
    return state


_MAX_TIMEOUT_S = 86400.0  # 24 hours; a longer wait is a hung job, not a slow one


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_timeout(timeout_s):
    """Python refuses what the Rust communicator's Duration and datetime.timedelta cannot hold
    (inf, nan, 1e30 panic or overflow there), with the allowed range."""
    if not (_is_real(timeout_s) and 0 < timeout_s <= _MAX_TIMEOUT_S):
        raise ValueError(
            f"timeout_s must be a number of seconds above 0 and at most {_MAX_TIMEOUT_S:g} "
            f"(24 hours), not {timeout_s!r}"
        )


def _communicator(jmodel, params, world, rank, timeout_s):
    """Over several ranks: thunder's communicator, after broadcasting rank 0's parameters and
    buffers; None on one rank. Parameters on one CUDA device: NCCL (its id shared through the
    process group's store). On the CPU: the process group itself (gloo; slow, for debugging and
    tests: each collective all-gathers)."""
    global _ids
    if world == 1:
        return None
    devices = {p.device for p in params}
    if len(devices) != 1 or next(iter(devices)).type not in ("cuda", "cpu"):
        raise ValueError(
            "thunder's data parallelism over several ranks needs the module's parameters on one "
            f"CUDA device (NCCL) or on the CPU (gloo); they are on {sorted(map(str, devices))}"
        )
    device = next(iter(devices))
    if device.type == "cpu":
        backend = dist.get_backend()  # "gloo", or per device: "cpu:gloo,cuda:nccl"
        if "gloo" not in backend:
            raise ValueError(
                "thunder's data parallelism on the CPU runs through a gloo process group, "
                f"not {backend!r}: init_process_group('gloo'), or put the module on a GPU"
            )
        # A group of its own, so that a collective waits at most timeout_s.
        group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))
        comm = _C.Communicator.process_group(rank, world, group)
        _collect_at_exit()
    else:
        store = dist.distributed_c10d._get_default_store()
        _ids += 1
        key = f"thunder/nccl_unique_id/{_ids}"
        if rank == 0:
            store.set(key, _C.nccl_unique_id())
        uid = store.get(key)
        comm = _C.Communicator(bytes(uid), rank, world, device.index or 0, float(timeout_s))
    with torch.no_grad():
        for t in params + list(jmodel.buffers()):
            dist.broadcast(t.data, src=0)
    return comm


_exchanges = 0  # collectives this process has run through _exchange


_collecting_at_exit = False


def _collect_at_exit():
    """Collects garbage once at exit, while the interpreter still runs: a jitted module in a
    reference cycle otherwise keeps the gloo process groups alive until the interpreter's final
    collection, where a gloo thread freeing a finished collective's Python-owned tensor aborts
    the process now and then ("terminate called without an active exception")."""
    global _collecting_at_exit
    if not _collecting_at_exit:
        _collecting_at_exit = True
        atexit.register(gc.collect)


def _exchange(t, group):
    """Every rank's `t`, in rank order (the CPU communicator's one collective), over `group`
    (gloo). Fails after the group's timeout when a rank does not take part, naming the ranks
    that are behind (each rank notes in the process group's store how many collectives it has
    reached)."""
    global _exchanges
    _exchanges += 1
    rank, world = dist.get_rank(), dist.get_world_size()
    store = dist.distributed_c10d._get_default_store()
    store.set(f"thunder/exchanges/{rank}", str(_exchanges))
    out = [torch.empty_like(t) for _ in range(world)]
    try:
        # Synchronous: the group's own timeout (timeout_s) bounds the wait.
        dist.all_gather(out, t.contiguous(), group=group)
    except RuntimeError as e:
        raise RuntimeError(
            f"collective {_exchanges} of rank {rank}: not every rank took part in time; "
            f"{_behind(store, world)} ({e})") from None
    return out


def _behind(store, world):
    """Which ranks noted fewer collectives than this one (best effort: the store may be gone)."""
    late = []
    for r in range(world):
        key = f"thunder/exchanges/{r}"
        try:
            n = int(store.get(key)) if store.check([key]) else 0
        except Exception:  # the store lives in rank 0's process, which may have died
            return "the process group's store does not answer (rank 0 gone?)"
        if n < _exchanges:
            late.append(f"rank {r} reached collective {n}")
    return ", ".join(late) if late else "every rank reached it (one failed inside it?)"


class _Fsdp:
    """What thunder.distributed.fsdp keeps in the jitted module's state."""

    def __init__(self, layout, names, params, shards, comm, prefetch, world, rank, timeout_s):
        self.layout = layout  # _C.FsdpLayout
        self.names = names  # per layout parameter, its name in the module
        self.index = {id(p): i for i, p in enumerate(params)}  # parameter -> layout index
        self.shapes = [tuple(p.shape) for p in params]
        self.shards = shards  # per bucket, this rank's shard (an nn.Parameter)
        # per layout parameter: its bucket, its offset in the bucket's flat layout, the
        # bucket's shard numel
        self.place = {}
        for k, (members, offsets, _numel, shard_numel) in enumerate(layout.buckets()):
            for i, off in zip(members, offsets):
                self.place[i] = (k, off, shard_numel)
        self.comm = comm
        self.prefetch = prefetch
        self.world, self.rank = world, rank
        self.timeout_s = float(timeout_s)


def fsdp(jmodel, *, sharding="zero3", bucket_mb=64, prefetch=2, timeout_s=300.0):
    """Shards `jmodel` (from `thunder.jit(module)`) over the default process group (ZeRO-3);
    returns it. Call it before the first call of `jmodel`, then make the optimizer:

        jmodel = thunder.distributed.fsdp(thunder.jit(model.cuda()))
        opt = torch.optim.AdamW(jmodel.parameters())   # this rank's shards

    The parameters that require grad are grouped into buckets of about `bucket_mb` (in the
    module's order), each laid out flat and split into one equal shard per rank. The module's
    own copies are freed: `jmodel.parameters()` are the shards, which the optimizer updates.
    Compiled graphs gather a bucket (NCCL all-gather, `prefetch` buckets ahead) before it is
    used, in the forward and again in the backward, and reduce-scatter (average) its
    gradients. `jmodel.state_dict()` gathers the full parameters (a collective: call it on
    every rank); `load_state_dict` shards them again (a collective too, each rank given the
    same state dict: it checks the whole dict first, and unless every rank accepts it, no rank
    changes anything). Every parameter must be read inside graphs thunder compiles: a part
    that runs eagerly and reads one is an error."""
    if sharding != "zero3":
        raise ValueError(
            f"sharding={sharding!r}: thunder.distributed.fsdp shards parameters, gradients and "
            "optimizer state ('zero3'); ZeRO-2 is in thunder-bench only so far"
        )
    state = _check(jmodel, "fsdp", bucket_mb, timeout_s)
    if not (isinstance(prefetch, int) and prefetch >= 0):
        raise ValueError(f"prefetch must be a non-negative int, not {prefetch!r}")
    world, rank = dist.get_world_size(), dist.get_rank()
    named = [(n, p) for n, p in jmodel._orig_mod.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the module has no parameters that require grad: nothing to shard")
    params = [p for _, p in named]
    comm = _communicator(jmodel, list(jmodel._orig_mod.parameters()), world, rank, timeout_s)
    layout = _C.FsdpLayout(
        world,
        [(n, list(p.shape), str(p.dtype), str(p.device)) for n, p in named],
        int(bucket_mb * (1 << 20)),
    )
    shards = []
    with torch.no_grad():
        for members, _offsets, numel, shard_numel in layout.buckets():
            parts = [params[i].detach() for i in members]
            shards.append(torch.nn.Parameter(_rank_shard(parts, numel, shard_numel, world, rank)))
        for p in params:
            # The module keeps the parameter's shape, dtype and device (what the graphs are
            # traced with), not its memory.
            p.data.untyped_storage().resize_(0)
    state.fsdp = _Fsdp(layout, [n for n, _ in named], params, shards, comm, prefetch, world, rank,
                       timeout_s)
    return jmodel


def _rank_shard(parts, numel, shard_numel, world, rank):
    """Rank `rank`'s piece of a bucket: `parts` flattened end to end, zero-padded to
    `world * shard_numel` elements (a new tensor)."""
    flat = [t.reshape(-1) for t in parts]
    pad = shard_numel * world - numel
    if pad:
        flat.append(flat[0].new_zeros(pad))
    return torch.cat(flat)[rank * shard_numel:(rank + 1) * shard_numel].clone()


def _full_parameters(f):
    """Every sharded parameter, gathered (a collective over all ranks): name -> tensor."""
    out = {}
    for k, (members, offsets, _numel, shard_numel) in enumerate(f.layout.buckets()):
        shard = f.shards[k].detach()
        if f.world == 1:
            flat = shard
        else:
            flat = shard.new_empty(shard_numel * f.world)
            dist.all_gather_into_tensor(flat, shard)
        for i, off in zip(members, offsets):
            n = math.prod(f.shapes[i])
            out[f.names[i]] = flat[off:off + n].view(f.shapes[i]).clone()
    return out


def _full_state_dict(jmodel):
    f = jmodel._thunder_state.fsdp
    module = jmodel._orig_mod
    # keep_vars: a tied weight appears under several keys, and only identity tells that a
    # key is a sharded parameter; its module copy holds no memory (reading it crashes).
    sd = module.state_dict(keep_vars=True)
    full = _full_parameters(f)
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        i = f.index.get(id(t))
        sd[name] = t.detach() if i is None else full[f.names[i]]
    return sd


_loads = 0  # load_state_dict calls this process made on fsdp modules; ranks pair them by count


def _load_full_state_dict(jmodel, sd, strict):
    """torch.nn.Module.load_state_dict for a full (gathered) state dict: the same keys,
    checks, messages and result, loaded into this rank's shards. All or nothing on every
    rank: the whole dict is checked first, the ranks share their verdicts, and only when every
    rank accepts are parameters copied, each into its own slice of the shard."""
    f = jmodel._thunder_state.fsdp
    module = jmodel._orig_mod
    error, plan = _plan_load(f, module, sd, strict)
    _agree(f, error)
    copies, rest, missing, unexpected = plan
    with torch.no_grad():
        # The module's own load first: its hooks and set_extra_state can still fail, and
        # then no shard has been written.
        module.load_state_dict(rest, strict=False)
        for k, lo, hi, src, start in copies:
            f.shards[k][lo:hi].copy_(src[start:start + hi - lo])
    return torch.nn.modules.module._IncompatibleKeys(missing, unexpected)


def _plan_load(f, module, sd, strict):
    """Checks `sd` against the module as torch's load_state_dict does, writing nothing.
    Returns (None, (copies, rest, missing, unexpected)), or (the exception to raise, None).
    `copies`: (bucket, start in this rank's shard, end, flat source, start in the source);
    `rest`: what the module loads itself (buffers, parameters left whole, extra state)."""
    if not isinstance(sd, Mapping):
        return TypeError(f"Expected state_dict to be dict-like, got {type(sd)}."), None
    own = module.state_dict(keep_vars=True)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    errors = []
    if strict and missing:
        errors.append(f"Missing key(s) in state_dict: {_quoted(missing)}. ")
    if strict and unexpected:
        errors.append(f"Unexpected key(s) in state_dict: {_quoted(unexpected)}. ")
    copies = []
    rest = collections.OrderedDict()
    metadata = getattr(sd, "_metadata", None)
    if metadata is not None:
        rest._metadata = metadata  # per-module versions that some modules' loading reads
    for key, target in own.items():
        if key not in sd:
            continue
        given = sd[key]
        if isinstance(target, torch.Tensor):
            why = _cannot_load(key, given, target)
            if why:
                errors.append(why)
                continue
        i = f.index.get(id(target))
        if i is None:
            rest[key] = given
        else:
            copies += _param_copies(f, i, given.detach().reshape(-1))
    if errors:
        return RuntimeError(
            "Error(s) in loading state_dict for {}:\n\t{}\nNothing was loaded, on any rank: "
            "thunder.distributed.fsdp checks the whole state dict before it copies anything."
            .format(type(module).__name__, "\n\t".join(errors))
        ), None
    return None, (copies, rest, missing, unexpected)


def _quoted(keys):
    return ", ".join(f'"{k}"' for k in keys)


def _cannot_load(key, given, target):
    """Why `given` cannot be copied into `target` (torch's message where torch has one), or
    None. What torch's param.copy_ would only fail on half-way is refused here, up front."""
    if not isinstance(given, torch.Tensor):
        return (f'While copying the parameter named "{key}", expected torch.Tensor or '
                f"Tensor-like object from checkpoint but received {type(given)}")
    # torch loads a one-element vector into a 0-dim parameter (checkpoints of torch 0.3)
    scalar = target.dim() == 0 and tuple(given.shape) == (1,)
    if given.shape != target.shape and not scalar:
        return (f"size mismatch for {key}: copying a param with shape {given.shape} from "
                f"checkpoint, the shape in current model is {target.shape}.")
    if given.is_meta:
        return (f"{key}: the checkpoint's tensor is on the meta device and holds no values: "
                "load the checkpoint with real tensors (torch.load(..., map_location='cpu'))")
    if given.layout != torch.strided or given.is_quantized or given.is_nested:
        kind = ("quantized" if given.is_quantized else "nested" if given.is_nested
                else str(given.layout))
        return (f"{key}: the checkpoint's tensor is {kind}; the parameter is a dense "
                f"{target.dtype} tensor: convert it first (to_dense(), dequantize())")
    if given.is_complex() and not target.is_complex():
        return (f"{key}: copying a complex tensor ({given.dtype}) into a real one "
                f"({target.dtype}) would drop its imaginary part: pass the real part (.real) "
                "if that is meant")
    return None


def _param_copies(f, i, src):
    """The copy of layout parameter `i` (flat `src`) into this rank's shard, as a list of at
    most one (bucket, start in the shard, end, src, start in src): the part of the parameter
    that falls in this rank's range of the bucket's flat layout."""
    k, off, shard_numel = f.place[i]
    lo, hi = f.rank * shard_numel, (f.rank + 1) * shard_numel
    a, b = max(off, lo), min(off + src.numel(), hi)
    return [(k, a - lo, b - lo, src, a - off)] if a < b else []


def _agree(f, error):
    """Raises `error` (this rank's verdict on its state dict, or None) and makes every other
    rank raise too: without it, a rank given a different dict would load while the others do
    not, and the ranks' shards would no longer make up one model. The verdicts go through the
    process group's store (any backend, no device memory), bounded by timeout_s."""
    global _loads
    if f.world == 1:
        if error is not None:
            raise error
        return
    _loads += 1
    store = dist.distributed_c10d._get_default_store()
    keys = [f"thunder/load_state_dict/{_loads}/{r}" for r in range(f.world)]
    store.set(keys[f.rank], "" if error is None else f"{type(error).__name__}: {error}")
    try:
        store.wait(keys, datetime.timedelta(seconds=f.timeout_s))
    except RuntimeError as e:
        late = [str(r) for r, key in enumerate(keys) if not _has(store, key)]
        raise RuntimeError(
            f"load_state_dict on rank {f.rank}: rank(s) {', '.join(late) or '?'} did not call it "
            f"within timeout_s={f.timeout_s:g} s; it is a collective of thunder.distributed.fsdp: "
            f"call it on every rank. Nothing was loaded on this rank. ({e})"
        ) from None
    if error is not None:
        raise error
    for r, key in enumerate(keys):
        verdict = store.get(key).decode()
        if verdict:
            raise RuntimeError(
                f"rank {r} could not load its state dict, so no rank loaded anything (give every "
                f"rank the same, valid state dict). Rank {r}'s error:\n{verdict}"
            )


def _has(store, key):
    try:
        return store.check([key])
    except Exception:  # the store lives in rank 0's process, which may have died
        return False


@contextlib.contextmanager
def no_sync(jmodel):
    """Gradient accumulation without communication, like DDP's `no_sync`:

        with thunder.distributed.no_sync(jmodel):      # or jmodel.no_sync()
            for x in micro_batches[:-1]:
                jmodel(x).backward()                   # local: gradients add up in .grad
        jmodel(micro_batches[-1]).backward()           # averages the accumulated gradients

    Inside, compiled graphs run their backward without the all-reduces. The first backward
    after it runs the same way and, when it ends, averages every parameter's accumulated
    gradient over the ranks (one flat all-reduce per dtype)."""
    state = getattr(jmodel, "_thunder_state", None)
    if state is None or state.ddp is None:
        raise ValueError("no_sync is for modules made data parallel by thunder.distributed.ddp(jmodel)")
    if state.no_sync:  # nested: the outer context restores the state
        yield
        return
    state.no_sync = True
    state.accumulated = True
    try:
        yield
    finally:
        state.no_sync = False


def _sync_when_backward_ends(state):
    """Called during the backward that follows no_sync micro-steps: queues the averaging of
    the accumulated gradients for the end of this backward pass (once)."""
    if state.sync_queued:
        return
    state.sync_queued = True
    torch.autograd.Variable._execution_engine.queue_callback(lambda: _average_accumulated(state))


def _average_accumulated(state):
    state.sync_queued = False
    state.accumulated = False
    world = state.ddp[0]
    grads = [p.grad for p in state.ddp_params if p.grad is not None]
    if world == 1 or not grads:
        return
    by_dtype = {}
    for g in grads:
        by_dtype.setdefault((g.dtype, g.device), []).append(g)
    for group in by_dtype.values():
        flat = torch._utils._flatten_dense_tensors(group)
        dist.all_reduce(flat)
        flat.div_(world)
        for g, avg in zip(group, torch._utils._unflatten_dense_tensors(flat, group)):
            g.copy_(avg)
