"""Real models through `thunder.jit` against eager PyTorch (see `zoo.py`): on the CPU in
float32, and on CUDA in bfloat16 when there is a GPU. transformers and litgpt come from
`ci/bootstrap-env.sh` (pinned there); a missing one fails the suite rather than skipping it."""

import pytest
import torch

import zoo

CASES = [(name, "cpu", torch.float32) for name in zoo.MODELS]
if torch.cuda.is_available():
    CASES += [(name, "cuda:0", torch.bfloat16) for name in zoo.MODELS]


def _require(module):
    try:
        __import__(module)
    except ImportError as e:
        pytest.fail(
            f"the model zoo needs {module} ({e}): install ci/zoo-requirements.txt "
            "(ci/bootstrap-env.sh does for the environment it makes)",
            pytrace=False,
        )


@pytest.mark.parametrize("name,device,dtype", CASES, ids=[f"{n}-{d}" for n, d, _ in CASES])
def test_model_matches_eager(name, device, dtype, capsys):
    _require("litgpt" if name.startswith("litgpt") else "transformers")
    r = zoo.compare(name, device, dtype)
    with capsys.disabled():
        print(f"\n  zoo: {r.row()}")
    assert not r.problems, f"{name} on {device} ({dtype}):\n  " + "\n  ".join(r.problems)
    # The zoo exists to exercise thunder: a model that compiled nothing checks nothing.
    assert r.compiled > 0, f"{name}: no graph piece was compiled"
