"""thunder-rs: compile PyTorch functions with thunder's executors.

    import torch, thunder
    cfoo = thunder.jit(lambda a, b: a + b)
    cfoo(torch.full((2, 2), 1), torch.full((2, 2), 3))

`thunder.jit` captures the function with PyTorch's own graph capture (Dynamo), translates the
graph into a thunder trace and runs it through thunder's executors (libtorch operators, CUDA
kernels generated for fused regions). What thunder cannot compile yet runs eagerly through
PyTorch, and `thunder.compile_stats(jfn)` says what and why.
"""

import torch  # first: the extension links against the libtorch this import loads

_want = "2.11.0"
if torch.__version__.split("+")[0] != _want:
    raise ImportError(
        f"thunder-rs was built for torch {_want}, but torch {torch.__version__} is installed; "
        f"install torch=={_want} or rebuild thunder-rs against your torch"
    )

from . import _C  # noqa: E402
from . import distributed  # noqa: E402
from ._jit import (  # noqa: E402
    Backend,
    Examination,
    ThunderModule,
    backend,
    compile_stats,
    examine,
    jit,
    last_backward_traces,
    last_traces,
)

ThunderError = _C.ThunderError
UnsupportedError = _C.UnsupportedError

__all__ = [
    "jit",
    "last_traces",
    "last_backward_traces",
    "compile_stats",
    "examine",
    "Backend",
    "backend",
    "Examination",
    "ThunderModule",
    "ThunderError",
    "UnsupportedError",
]
