"""Type stubs for thunder-rs's Python package (`import thunder`)."""

from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, TypeVar, overload

import torch

F = TypeVar("F", bound=Callable[..., Any])

class ThunderError(RuntimeError):
    """An error of thunder-rs (a graph that failed to compile or to run)."""

class UnsupportedError(ThunderError):
    """A graph thunder cannot compile yet (it runs eagerly instead)."""

class ThunderModule(torch.nn.Module):
    """A module compiled by `thunder.jit`; it shares the original module's parameters,
    buffers, `state_dict()` keys and `train()`/`eval()` mode."""

    def forward(self, *args: Any, **kwargs: Any) -> Any: ...
    def no_sync(self) -> ContextManager[None]:
        """With `thunder.distributed.ddp`: backward passes inside accumulate gradients locally;
        the first backward after it averages them over the ranks."""

class Examination:
    """What `thunder.examine` found."""

    unsupported: List[str]
    compiled_graphs: int
    inductor_graphs: int
    eager_graphs: int
    max_abs_diff: List[float]
    mismatches: List[str]
    ok: bool

@overload
def jit(
    fn: torch.nn.Module,
    *,
    executors: Optional[Sequence[str]] = ...,
    cuda_graphs: bool = ...,
    fallback: str = ...,
    max_shapes: int = ...,
) -> ThunderModule: ...
@overload
def jit(
    fn: F,
    *,
    executors: Optional[Sequence[str]] = ...,
    cuda_graphs: bool = ...,
    fallback: str = ...,
    max_shapes: int = ...,
) -> F: ...
class Backend:
    """thunder as a `torch.compile` backend (`torch.compile(fn, backend=thunder.Backend())`)."""

    def __init__(
        self,
        *,
        executors: Optional[Sequence[str]] = ...,
        cuda_graphs: bool = ...,
        fallback: str = ...,
        max_shapes: int = ...,
    ) -> None: ...
    def __call__(self, gm: torch.fx.GraphModule, example_inputs: List[Any]) -> Callable[..., Any]: ...

backend: Backend

def last_traces(jfn: Callable[..., Any]) -> List[str]: ...
def last_backward_traces(jfn: Callable[..., Any]) -> List[str]: ...
def compile_stats(jfn: Callable[..., Any], flops: bool = ...) -> Dict[str, Any]: ...
def examine(
    fn: Callable[..., Any],
    *args: Any,
    executors: Optional[Sequence[str]] = ...,
    fallback: str = ...,
    rtol: Optional[float] = ...,
    atol: Optional[float] = ...,
    **kwargs: Any,
) -> Examination: ...

from . import distributed as distributed

__all__: List[str]
