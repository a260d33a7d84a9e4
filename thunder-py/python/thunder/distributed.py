"""Data parallelism for jitted modules over torch.distributed's process group.

    torch.distributed.init_process_group("nccl")        # torchrun sets RANK, WORLD_SIZE, ...
    jmodel = thunder.distributed.ddp(thunder.jit(model.cuda()))
    loss = jmodel(x); loss.backward(); opt.step()        # gradients averaged over the ranks

Compiled graphs average their parameters' gradients inside thunder's backward: buckets of about
`bucket_mb` are all-reduced on NCCL as soon as they are complete, overlapping the rest of the
backward. Rank 0 makes the NCCL id; the others read it from the process group's store. Gradients
that PyTorch computes eagerly (pieces thunder does not compile) are averaged by a hook through
torch.distributed. Averaging is linear, so a gradient with both kinds of contributions comes
out right.
"""

import contextlib

import torch
import torch.distributed as dist

from . import _C, _jit

_ids = 0


def ddp(jmodel, *, bucket_mb=25, timeout_s=300.0):
    """Makes `jmodel` (from `thunder.jit(module)`) data parallel over the default process group;
    returns it. Call it before the first call of `jmodel`. Parameters and buffers are
    broadcast from rank 0."""
    global _ids
    if not isinstance(jmodel, _jit.ThunderModule):
        raise ValueError("thunder.distributed.ddp takes a module returned by thunder.jit(module)")
    state = jmodel._thunder_state
    if state.calls:
        raise ValueError("call thunder.distributed.ddp before the first call of the jitted module")
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            "thunder.distributed.ddp needs torch.distributed.init_process_group(...) first "
            "(under torchrun: init_process_group('nccl'))"
        )
    if bucket_mb <= 0:
        raise ValueError(f"bucket_mb must be positive, not {bucket_mb}")
    world, rank = dist.get_world_size(), dist.get_rank()
    params = list(jmodel.parameters())
    comm = None
    if world > 1:
        devices = {p.device for p in params}
        if len(devices) != 1 or next(iter(devices)).type != "cuda":
            raise ValueError(
                "thunder's data parallelism over several ranks runs on NCCL: put the module's "
                f"parameters on one CUDA device (they are on {sorted(map(str, devices))})"
            )
        device = next(iter(devices)).index or 0
        store = dist.distributed_c10d._get_default_store()
        _ids += 1
        key = f"thunder/nccl_unique_id/{_ids}"
        if rank == 0:
            store.set(key, _C.nccl_unique_id())
        uid = store.get(key)
        comm = _C.Communicator(bytes(uid), rank, world, device, float(timeout_s))
        with torch.no_grad():
            for t in list(jmodel.parameters()) + list(jmodel.buffers()):
                dist.broadcast(t.data, src=0)
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
