"""thunder.distributed.fsdp's load_state_dict on one rank (gloo, CPU): torch's checks and
messages, all or nothing (a rejected state dict leaves every shard and buffer as it was), each
given parameter loaded into its own slice of its bucket (strict=False with part of a bucket),
tied weights; and the timeouts ddp and fsdp accept. Two ranks: ddp_worker.py (fsdp mode)."""

import math

import pytest
import torch
import torch.distributed as dist

import thunder


class Net(torch.nn.Module):
    """Two buckets of two parameters each (at 64 bytes a bucket), and a buffer."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 3)  # weight 48 bytes, bias 12: bucket 0
        self.b = torch.nn.Linear(3, 2)  # weight 24 bytes, bias 8: bucket 1
        self.register_buffer("scale", torch.ones(2))

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))) * self.scale


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(5, 3)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight


BUCKET_MB = 64 / (1 << 20)


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def sharded(model=None):
    torch.manual_seed(0)
    jm = thunder.distributed.fsdp(thunder.jit(model or Net()), bucket_mb=BUCKET_MB)
    return jm


def snapshot(jm):
    """Every shard and every entry of the gathered state dict, copied."""
    shards = [s.detach().clone() for s in jm.parameters()]
    return shards, {k: v.clone() for k, v in jm.state_dict().items()}


def assert_unchanged(jm, before):
    shards, sd = snapshot(jm)
    assert len(shards) == len(before[0])
    for k, (s, t) in enumerate(zip(shards, before[0])):
        assert torch.equal(s, t), f"shard {k} changed"
    assert list(sd) == list(before[1])
    for k in sd:
        assert torch.equal(sd[k], before[1][k]), f"{k} changed"


def other_values(jm):
    """A full state dict with every value different from the module's."""
    return {k: v + 1.5 for k, v in jm.state_dict().items()}


def torch_error(sd, strict=True):
    """What torch.nn.Module.load_state_dict says to the same state dict (on a plain Net)."""
    with pytest.raises(RuntimeError) as e:
        Net().load_state_dict(sd, strict=strict)
    return str(e.value)


def test_the_layout_has_two_buckets_of_two(one_rank_group):
    jm = sharded()
    f = jm._thunder_state.fsdp
    assert [[f.names[i] for i in b[0]] for b in f.layout.buckets()] == [
        ["a.weight", "a.bias"], ["b.weight", "b.bias"]]


@pytest.mark.parametrize("key, shape", [
    ("a.weight", (4, 4)),  # more elements: the rest of its bucket would shift
    ("a.bias", (5,)),  # more elements, the bucket's last parameter
    ("b.weight", (2, 2)),  # fewer elements, in the second bucket: the first is copied earlier
    ("b.bias", ()),  # fewer dimensions
    ("scale", (3,)),  # a buffer, loaded by the module itself
])
def test_a_wrong_shape_is_an_error_naming_both_shapes_and_changes_nothing(one_rank_group, key,
                                                                          shape):
    jm = sharded()
    before = snapshot(jm)
    sd = other_values(jm)
    sd[key] = torch.randn(shape)
    want = (f"size mismatch for {key}: copying a param with shape {torch.Size(shape)} from "
            f"checkpoint, the shape in current model is {before[1][key].shape}.")
    for strict in (True, False):
        with pytest.raises(RuntimeError) as e:
            jm.load_state_dict(sd, strict=strict)
        assert want in str(e.value)
        assert "Nothing was loaded" in str(e.value)
        # torch's own message, line for line
        assert str(e.value).startswith(torch_error(sd, strict)), str(e.value)
        assert_unchanged(jm, before)


def test_missing_and_unexpected_keys_with_strict_are_an_error_and_change_nothing(one_rank_group):
    jm = sharded()
    before = snapshot(jm)
    sd = other_values(jm)
    del sd["a.bias"], sd["scale"]
    sd["c.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError) as e:
        jm.load_state_dict(sd)
    msg = str(e.value)
    # (torch's order: a module's own entries before its children's)
    assert 'Missing key(s) in state_dict: "scale", "a.bias".' in msg, msg
    assert 'Unexpected key(s) in state_dict: "c.weight".' in msg, msg
    assert msg.startswith(torch_error(sd)), msg
    assert_unchanged(jm, before)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "scale", "a.weight"'):
        jm.load_state_dict({})
    assert_unchanged(jm, before)


def test_values_that_are_not_dense_tensors_are_errors_and_change_nothing(one_rank_group):
    jm = sharded()
    before = snapshot(jm)
    for key, value, says in [
        ("a.bias", [1.0, 2.0, 3.0], "expected torch.Tensor or Tensor-like object"),
        ("b.bias", torch.zeros(2, device="meta"), "meta device"),
        ("b.weight", torch.zeros(2, 3).to_sparse(), "sparse"),
        ("a.weight", torch.zeros(3, 4, dtype=torch.complex64), "imaginary part"),
    ]:
        sd = other_values(jm)
        sd[key] = value
        with pytest.raises(RuntimeError, match=says) as e:
            jm.load_state_dict(sd)
        assert key in str(e.value)
        assert_unchanged(jm, before)
    with pytest.raises(TypeError, match="dict-like"):
        jm.load_state_dict([("a.weight", torch.zeros(3, 4))])
    assert_unchanged(jm, before)


def test_strict_false_loads_the_given_parameters_of_part_of_a_bucket_and_keeps_the_rest(
        one_rank_group):
    jm = sharded()
    before = snapshot(jm)[1]
    given = {"a.weight": torch.randn(3, 4), "b.bias": torch.randn(2), "zzz": torch.ones(1)}
    keys = jm.load_state_dict(given, strict=False)
    assert keys.missing_keys == ["scale", "a.bias", "b.weight"]
    assert keys.unexpected_keys == ["zzz"]
    after = jm.state_dict()
    for k in before:
        want = given[k] if k in given else before[k]
        assert torch.equal(after[k], want), k
    # The compiled graphs read the loaded values.
    eager = Net()
    eager.load_state_dict(after)
    x = torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(jm(x), eager(x))


def test_a_state_dict_round_trip_is_exact_and_dtypes_are_cast_as_torch_casts(one_rank_group):
    jm = sharded()
    fresh = Net()
    fresh.scale.fill_(3.0)
    keys = jm.load_state_dict(fresh.state_dict())
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    sd = jm.state_dict()
    for k, v in fresh.state_dict().items():
        assert torch.equal(sd[k], v), k
    before = snapshot(jm)
    jm.load_state_dict(jm.state_dict())
    assert_unchanged(jm, before)
    # float64 and int64 values are copied with copy_'s casts, as torch loads them.
    cast = {k: v.double() for k, v in fresh.state_dict().items()}
    cast["b.bias"] = torch.tensor([7, -2])
    jm.load_state_dict(cast)
    fresh.load_state_dict(cast)
    for k, v in fresh.state_dict().items():
        assert jm.state_dict()[k].dtype == torch.float32
        assert torch.equal(jm.state_dict()[k], v), k


def test_tied_weights_are_one_parameter_under_both_keys(one_rank_group):
    # Before, the tied key's tensor was the module's copy with no memory: state_dict handed it
    # out and load_state_dict copied into it (a crash either way).
    jm = sharded(Tied())
    sd = jm.state_dict()
    assert list(sd) == ["emb.weight", "head.weight"]
    assert torch.equal(sd["emb.weight"], sd["head.weight"])
    new = torch.randn(5, 3)
    jm.load_state_dict({"emb.weight": new, "head.weight": new})
    assert torch.equal(jm.state_dict()["head.weight"], new)
    before = snapshot(jm)
    with pytest.raises(RuntimeError, match=r"size mismatch for head\.weight"):
        jm.load_state_dict({"emb.weight": new + 1, "head.weight": torch.zeros(3, 5)})
    assert_unchanged(jm, before)


@pytest.mark.parametrize("timeout_s",
                         [math.inf, -math.inf, math.nan, -1, 0, 1e30, 86400.5, "300", True, None])
@pytest.mark.parametrize("how", ["ddp", "fsdp"])
def test_a_timeout_outside_0_to_24_hours_is_a_value_error(one_rank_group, how, timeout_s):
    wrap = getattr(thunder.distributed, how)
    says = r"timeout_s must be a number of seconds above 0 and at most 86400 \(24 hours\)"
    with pytest.raises(ValueError, match=says):
        wrap(thunder.jit(torch.nn.Linear(2, 2)), timeout_s=timeout_s)


def test_timeouts_up_to_24_hours_are_taken(one_rank_group):
    thunder.distributed.ddp(thunder.jit(torch.nn.Linear(2, 2)), timeout_s=86400)
    thunder.distributed.fsdp(thunder.jit(torch.nn.Linear(2, 2)), timeout_s=0.5)


@pytest.mark.parametrize("bucket_mb", [math.inf, math.nan, 0, -1])
def test_a_bucket_size_must_be_positive_and_finite(one_rank_group, bucket_mb):
    with pytest.raises(ValueError, match="bucket_mb must be a positive finite number of MiB"):
        thunder.distributed.fsdp(thunder.jit(torch.nn.Linear(2, 2)), bucket_mb=bucket_mb)


def test_a_rank_that_does_not_load_fails_the_others_in_bounded_time(tmp_path):
    # Two gloo ranks: load_state_dict is a collective (the ranks agree before any copy);
    # rank 1 ends without calling it, and rank 0 fails after timeout_s, naming rank 1, with its
    # shard unchanged.
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(
        "import os, time, torch, torch.distributed as dist, thunder\n"
        "dist.init_process_group('gloo')\n"
        "torch.manual_seed(0)\n"
        "jm = thunder.distributed.fsdp(thunder.jit(torch.nn.Linear(4, 4)), timeout_s=2)\n"
        "sd = jm.state_dict()\n"
        "if dist.get_rank() == 1:\n"
        "    os._exit(0)\n"
        "shard = next(jm.parameters()).detach().clone()\n"
        "t0 = time.monotonic()\n"
        "try:\n"
        "    jm.load_state_dict({k: v + 1 for k, v in sd.items()})\n"
        "    print('no error')\n"
        "except RuntimeError as e:\n"
        "    print(f'error after {time.monotonic() - t0:.0f} s:', e)\n"
        "same = torch.equal(shard, next(jm.parameters()))\n"
        "print('the shard is', 'unchanged' if same else 'changed', flush=True)\n"
        "os._exit(0)\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error after" in r.stdout, r.stdout + r.stderr
    message = r.stdout.split("error after", 1)[1]
    assert "rank(s) 1 did not call it within timeout_s=2 s" in message, message
    assert int(message.split()[0]) < 8, message
    assert "the shard is unchanged" in r.stdout, r.stdout
