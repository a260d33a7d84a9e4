"""thunder.distributed.ddp and fsdp: on one rank (gloo, CPU) the compiled backward carries the
gradient all-reduce (ddp) or the gathers and reduce-scatters (fsdp), and training equals plain
thunder.jit. Two ranks train like one with the whole batch: on the CPU (gloo, here) and on two
GPUs (NCCL, the GPU bundle)."""

import pathlib
import sys

import pytest
import torch
import torch.distributed as dist

import thunder

from conftest import unsupported

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import train_gpt  # noqa: E402


def small_gpt():
    return train_gpt.GPT(vocab=64, dim=32, layers=2, heads=4, max_seq=16)


def twin_gpts():
    """Two small GPTs with the same parameters."""
    torch.manual_seed(0)
    a, b = small_gpt(), small_gpt()
    b.load_state_dict(a.state_dict())
    return a, b


def train_side_by_side(models, optimizers, data):
    """Trains the models on the same batches; asserts that their losses agree."""
    for idx, tgt in data:
        losses = []
        for m, o in zip(models, optimizers):
            loss = m(idx, tgt)
            loss.backward()
            o.step()
            o.zero_grad()
            losses.append(loss.item())
        assert abs(losses[0] - losses[1]) < 1e-5, losses


class EagerPieces(torch.nn.Module):
    """A model with two parts thunder runs eagerly (`conftest.unsupported`): one reads no parameter, the
    other reads b.weight."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        h = unsupported(h, 0)
        return (unsupported(self.b.weight, 0) @ h.T).sum()


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_ddp_needs_a_process_group_a_jitted_module_and_no_call_yet():
    with pytest.raises(ValueError, match="init_process_group"):
        thunder.distributed.ddp(thunder.jit(torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="a module returned by thunder.jit"):
        thunder.distributed.ddp(torch.nn.Linear(2, 2))


def test_on_one_rank_ddp_training_equals_plain_training(one_rank_group):
    a, b = twin_gpts()
    plain = thunder.jit(a)
    ddp = thunder.distributed.ddp(thunder.jit(b), bucket_mb=0.01)
    with pytest.raises(ValueError, match="before the first call"):
        plain(torch.zeros(1, 16, dtype=torch.long), torch.zeros(1, 16, dtype=torch.long))
        thunder.distributed.ddp(plain)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (a, b)]
    train_side_by_side((plain, ddp), opts, train_gpt.batches(5, 2, 16, 64, torch.device("cpu")))
    bw = thunder.last_backward_traces(ddp)[0]
    assert "dist.all_reduce(" in bw and "world_size=1" in bw, bw
    # Several buckets (0.01 MB each), and only parameters' gradients: the backward of the
    # whole-model graph returns nothing else, so every output but none of the inputs' is reduced.
    assert bw.count("dist.all_reduce(") >= 3, bw
    assert "dist.all_reduce(" not in thunder.last_backward_traces(plain)[0]


def test_no_sync_accumulates_locally_then_averages(one_rank_group):
    a, b = twin_gpts()
    jm = thunder.distributed.ddp(thunder.jit(b), bucket_mb=0.01)
    micro = list(train_gpt.batches(3, 2, 16, 64, torch.device("cpu")))
    for idx, tgt in micro:
        a(idx, tgt).backward()  # eager: the gradients of the three micro-batches add up
    with jm.no_sync():
        for idx, tgt in micro[:-1]:
            jm(idx, tgt).backward()
    jm(*micro[-1]).backward()
    for (name, p), q in zip(b.named_parameters(), a.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)
    state = jm._thunder_state
    runs = lambda: tuple(map(sum, zip(*(g.backward_runs() for g in state.graphs))))  # noqa: E731
    # All three backwards ran without the in-graph all-reduces; the last averaged at its end.
    assert runs() == (0, 3)
    assert not state.accumulated and not state.sync_queued
    # The next step communicates inside the backward again.
    jm(*micro[0]).backward()
    assert runs() == (1, 3)
    with pytest.raises(ValueError, match="no_sync is for modules made data parallel"):
        with thunder.jit(torch.nn.Linear(2, 2)).no_sync():
            pass


def test_fsdp_on_one_rank_trains_like_plain_and_gathers_the_state_dict(one_rank_group):
    a, b = twin_gpts()
    plain = thunder.jit(a)
    jm = thunder.distributed.fsdp(thunder.jit(b), bucket_mb=0.01)
    shards = list(jm.parameters())
    # Buckets of at most 0.01 MB (or one larger parameter): several flat shards, and the
    # module's own parameters hold no memory any more.
    assert len(shards) >= 3 and all(s.dim() == 1 for s in shards)
    assert sum(s.numel() for s in shards) == sum(p.numel() for p in a.parameters())
    assert all(p.untyped_storage().nbytes() == 0 for p in b.parameters())
    assert [n for n, _ in jm.named_parameters()][0] == "fsdp_shard_0"
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (plain, jm)]
    data = list(train_gpt.batches(4, 2, 16, 64, torch.device("cpu")))
    train_side_by_side((plain, jm), opts, data)
    fw = thunder.last_traces(jm)[1]
    bw = thunder.last_backward_traces(jm)[0]
    assert "dist.all_gather(bucket0_shard, world_size=1, async_op=True)" in fw, fw
    assert "dist.reduce_scatter(" in bw and "dist.all_gather(" in bw, bw
    # The gathered state dict: the original names, the plainly trained values.
    sd, want = jm.state_dict(), a.state_dict()
    assert list(sd) == list(want)
    for k in want:
        torch.testing.assert_close(sd[k], want[k], atol=1e-5, rtol=1e-5, msg=k)
    # Inference without grad reads the shards too.
    with torch.no_grad():
        torch.testing.assert_close(jm(*data[0]), plain(*data[0]), atol=1e-5, rtol=1e-5)
    # load_state_dict shards what it is given.
    fresh = small_gpt()
    jm.load_state_dict(fresh.state_dict())
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(jm.state_dict()[k], v, msg=k)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict"):
        jm.load_state_dict({})


def test_fsdp_says_what_it_cannot_do(one_rank_group):
    with pytest.raises(ValueError, match="'zero3'"):
        thunder.distributed.fsdp(thunder.jit(torch.nn.Linear(2, 2)), sharding="zero2")
    with pytest.raises(ValueError, match="timeout_s must be a number of seconds above 0 and at most 86400"):
        thunder.distributed.fsdp(thunder.jit(torch.nn.Linear(2, 2)), timeout_s=0)
    with pytest.raises(ValueError, match="already data parallel"):
        thunder.distributed.fsdp(thunder.distributed.ddp(thunder.jit(torch.nn.Linear(2, 2))))

    jm = thunder.distributed.fsdp(thunder.jit(EagerPieces()))
    with pytest.raises(thunder.ThunderError, match=r"runs eagerly \(cummax_values.* is not supported.*b\.weight"):
        jm(torch.randn(3, 4))


def test_eager_pieces_mark_their_parameters(one_rank_group):
    m = EagerPieces()
    jm = thunder.distributed.ddp(thunder.jit(m))
    x = torch.randn(3, 4)
    jm(x).backward()
    state = jm._thunder_state
    assert id(m.b.weight) in state.eager_params
    assert id(m.a.weight) not in state.eager_params
    want = EagerPieces()
    want.load_state_dict(m.state_dict())
    want(x).backward()
    for p, q in zip(m.parameters(), want.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def run_two_ranks(device):
    """Runs ddp_worker.py under torchrun on two ranks, for ddp and fsdp; checks what each
    rank printed."""
    import os
    import subprocess

    worker = pathlib.Path(__file__).with_name("ddp_worker.py")
    for mode in ("ddp", "fsdp"):
        env = dict(os.environ, NCCL_NVLS_ENABLE="0", THUNDER_WORKER_MODE=mode, THUNDER_WORKER_DEVICE=device)
        r = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
             str(worker)],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count(f"{mode}: 5 steps match the full-batch run") == 2, r.stdout
        if mode == "ddp":
            assert r.stdout.count("no_sync accumulation matches the full-batch run") == 2, r.stdout
    assert r.stdout.count("fsdp: the gathered parameters match") == 2, r.stdout
    assert r.stdout.count("fsdp: load_state_dict shards the loaded parameters") == 2, r.stdout
    assert r.stdout.count("fsdp: a rejected load_state_dict changes nothing on any rank") == 2, r.stdout
    assert r.stdout.count("fsdp: strict=False loads each given parameter into its slice") == 2, r.stdout


def test_two_cpu_ranks_with_half_batches_train_like_one_with_the_whole_batch():
    run_two_ranks("cpu")


def test_two_gpus_with_half_batches_train_like_one_with_the_whole_batch():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs (runs in the GPU bundle on a 2-GPU machine)")
    run_two_ranks("cuda")


def test_a_cpu_rank_that_stops_taking_part_fails_the_other_in_bounded_time(tmp_path):
    # Two gloo ranks: rank 1 trains one step, then stops; rank 0's next backward all-reduce
    # fails after timeout_s, naming the collective and the rank that is behind.
    import os
    import socket
    import subprocess
    import time

    script = tmp_path / "rank.py"
    script.write_text(
        "import os, sys, time, torch, torch.distributed as dist, thunder\n"
        "dist.init_process_group('gloo')\n"
        "torch.manual_seed(0)\n"
        "jm = thunder.distributed.ddp(thunder.jit(torch.nn.Linear(4, 4)), timeout_s=3)\n"
        "x = torch.randn(2, 4)\n"
        "jm(x).sum().backward()\n"
        "print('step 1 done', flush=True)\n"
        "if dist.get_rank() == 1:\n"
        "    time.sleep(60)\n"
        "    sys.exit(0)\n"
        "try:\n"
        "    jm(x).sum().backward()\n"
        "    print('no error')\n"
        "except Exception as e:\n"
        "    print('error:', e, flush=True)\n"
        "os._exit(0)\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(2):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        t0 = time.monotonic()
        out, err = procs[0].communicate(timeout=120)
        waited = time.monotonic() - t0
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert procs[0].returncode == 0, err
    assert out.count("step 1 done") == 1, out + err
    assert "error:" in out, out
    message = out.split("error:", 1)[1]
    assert "dist.all_reduce" in message, message
    assert "rank 1 reached collective 1" in message, message
    assert "not every rank took part in time" in message, message
    assert waited < 60, f"rank 0 took {waited:.0f} s to fail"

