"""A compiled graph with grad as a `torch.autograd.Function`: thunder's forward and backward
plans take part in PyTorch's autograd (`loss.backward()`, any optimizer)."""

import torch
from torch.autograd.function import once_differentiable


class _ThunderFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cg, state, *args):
        replays = cg.forward_replays()
        outs, saved = cg.forward(*args)
        # With CUDA graphs, a replay's saved values are the graph's own: the next replay
        # rewrites them, so the backward checks that none happened in between.
        ctx.replays = cg.forward_replays()
        ctx.replayed = ctx.replays > replays
        ctx.cg = cg
        ctx.state = state
        # Data parallel: the backward averages the gradients over the ranks unless this is a
        # `no_sync` micro-step, or the step that ends them (which averages the accumulated
        # gradients when the backward is done: thunder.distributed).
        ddp = state is not None and state.ddp is not None
        ctx.sync = not (ddp and (state.no_sync or state.accumulated))
        ctx.n_args = len(args)
        # Tensors go through save_for_backward (version checks, no reference cycles); numbers
        # stay on ctx.
        ctx.layout = [isinstance(s, torch.Tensor) for s in saved]
        ctx.numbers = [s for s in saved if not isinstance(s, torch.Tensor)]
        ctx.save_for_backward(*[s for s in saved if isinstance(s, torch.Tensor)])
        with_ct = {i for group in cg.ct_outputs() for i in group}
        ctx.mark_non_differentiable(
            *[o for i, o in enumerate(outs) if i not in with_ct and isinstance(o, torch.Tensor)]
        )
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *cts):
        if ctx.replayed and ctx.cg.forward_replays() != ctx.replays:
            from . import _C

            raise _C.ThunderError(
                "thunder.jit(cuda_graphs=True): this graph ran again before this backward, and "
                "the CUDA graph's replay rewrote the values the backward needs; run each "
                "backward before the graph's next call, or use cuda_graphs=False"
            )
        tensors = iter(ctx.saved_tensors)
        numbers = iter(ctx.numbers)
        saved = [next(tensors) if t else next(numbers) for t in ctx.layout]
        # A value returned at several positions takes the sum of their cotangents.
        cotangents = [
            sum((cts[i] for i in g[1:]), cts[g[0]])
            for g in ctx.cg.ct_outputs()
        ]
        grads = ctx.cg.backward(saved, cotangents, ctx.sync)
        state = ctx.state
        if not ctx.sync and state.accumulated and not state.no_sync:
            from . import distributed

            distributed._sync_when_backward_ends(state)
        full = [None] * ctx.n_args
        for i, g in zip(ctx.cg.wrt(), grads):
            full[i] = g
        return (None, None, *full)


def differentiable(cg, state=None):
    """The callable Dynamo runs for a graph compiled with grad (`state`: the jitted function's,
    for data parallelism)."""

    def run(*args):
        return _ThunderFunction.apply(cg, state, *args)

    return run
