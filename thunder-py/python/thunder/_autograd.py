"""A compiled graph with grad as a `torch.autograd.Function`: thunder's forward and backward
plans take part in PyTorch's autograd (`loss.backward()`, any optimizer)."""

import torch
from torch.autograd.function import once_differentiable


class _ThunderFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cg, *args):
        outs, saved = cg.forward(*args)
        ctx.cg = cg
        ctx.n_args = len(args)
        # Tensors go through save_for_backward (version checks, no reference cycles); numbers
        # stay on ctx.
        ctx.layout = [isinstance(s, torch.Tensor) for s in saved]
        ctx.numbers = [s for s in saved if not isinstance(s, torch.Tensor)]
        ctx.save_for_backward(*[s for s in saved if isinstance(s, torch.Tensor)])
        with_ct = set(cg.ct_outputs())
        ctx.mark_non_differentiable(
            *[o for i, o in enumerate(outs) if i not in with_ct and isinstance(o, torch.Tensor)]
        )
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *cts):
        tensors = iter(ctx.saved_tensors)
        numbers = iter(ctx.numbers)
        saved = [next(tensors) if t else next(numbers) for t in ctx.layout]
        cotangents = [cts[i] for i in ctx.cg.ct_outputs()]
        grads = ctx.cg.backward(saved, cotangents)
        full = [None] * ctx.n_args
        for i, g in zip(ctx.cg.wrt(), grads):
            full[i] = g
        return (None, *full)


def differentiable(cg):
    """The callable Dynamo runs for a graph compiled with grad."""

    def run(*args):
        return _ThunderFunction.apply(cg, *args)

    return run
