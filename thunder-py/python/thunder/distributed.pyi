from typing import TypeVar

from . import ThunderModule

M = TypeVar("M", bound=ThunderModule)

def ddp(jmodel: M, *, bucket_mb: float = ..., timeout_s: float = ...) -> M: ...
