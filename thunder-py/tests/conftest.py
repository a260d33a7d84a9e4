import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Dynamo caches compiled frames per code object and falls back to eager after a number of
    # recompiles; every test starts from a clean slate.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda:0")
    return out
