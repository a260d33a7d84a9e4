from typing import ContextManager, TypeVar

from . import ThunderModule

M = TypeVar("M", bound=ThunderModule)

def ddp(jmodel: M, *, bucket_mb: float = ..., timeout_s: float = ...) -> M: ...
def no_sync(jmodel: ThunderModule) -> ContextManager[None]: ...
def fsdp(
    jmodel: M,
    *,
    sharding: str = ...,
    bucket_mb: float = ...,
    prefetch: int = ...,
    timeout_s: float = ...,
) -> M: ...
