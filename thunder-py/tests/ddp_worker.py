"""One rank of test_distributed.py's several-rank tests (run by torchrun): 5 SGD steps of the GPT
with thunder.distributed.ddp (THUNDER_WORKER_MODE=ddp, the default) or fsdp and half the batch
per rank, against eager PyTorch with the whole batch on this rank's device: its GPU with NCCL,
or the CPU with gloo (THUNDER_WORKER_DEVICE=cpu). ddp then accumulates two micro-batches with
no_sync; fsdp compares its gathered parameters, then loads them back, is refused wrong state
dicts without any change on any rank, and loads part of a state dict (strict=False). Exits
non-zero on a mismatch."""

import os
import pathlib
import sys

import torch
import torch.distributed as dist

import thunder

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import train_gpt  # noqa: E402


def fail(rank, what):
    print(f"rank {rank}: {what}")
    sys.exit(1)


def snapshot(jm):
    """This rank's shards and the gathered state dict (a collective), copied."""
    return [s.detach().clone() for s in jm.parameters()], jm.state_dict()


def changed_since(jm, before):
    """What differs from `before` (a snapshot): shards and state dict entries."""
    shards, sd = snapshot(jm)
    changed = [f"shard {k}" for k, (a, b) in enumerate(zip(shards, before[0]))
               if not torch.equal(a, b)]
    return changed + [k for k in sd if not torch.equal(sd[k], before[1][k])]


def check_rejected_loads(jm, good, rank):
    """The same wrong shape on every rank (a parameter with more elements at the start of a
    bucket, one with fewer at the end), then a wrong shape on rank 1 only: every rank raises,
    and no rank changes anything (every other value is new, so any write would show)."""
    f = jm._thunder_state.fsdp
    first = next(f.names[b[0][0]] for b in f.layout.buckets() if len(b[0]) > 1)
    last = f.names[f.layout.buckets()[-1][0][-1]]
    new = {k: v + 1 for k, v in good.items()}
    more, fewer = dict(new), dict(new)
    s = good[first].shape
    more[first] = torch.zeros((s[0] + 1,) + s[1:], device=good[first].device)
    fewer[last] = good[last].reshape(-1)[1:].clone()
    only_rank_1 = (more, f"size mismatch for {first}") if rank == 1 else (
        new, "rank 1 could not load its state dict")
    cases = [(more, f"size mismatch for {first}"), (fewer, f"size mismatch for {last}"),
             only_rank_1]
    for sd, says in cases:
        before = snapshot(jm)
        try:
            jm.load_state_dict(sd)
            fail(rank, f"load_state_dict took a wrong state dict ({says})")
        except RuntimeError as e:
            if says not in str(e) or "Nothing was loaded" not in str(e):
                fail(rank, f"load_state_dict: {e}, not {says!r}")
        changed = changed_since(jm, before)
        if changed:
            fail(rank, f"a rejected load_state_dict ({says}) changed {changed}")


def check_partial_load(jm, good, rank, world):
    """strict=False with every other parameter, and every parameter split between two ranks'
    shards: those load (each rank its slice), the others keep their values."""
    f = jm._thunder_state.fsdp
    split = set()
    for members, offsets, _numel, shard_numel in f.layout.buckets():
        for i, off in zip(members, offsets):
            n = good[f.names[i]].numel()
            if any(off < r * shard_numel < off + n for r in range(1, world)):
                split.add(f.names[i])
    given = set(f.names[::2]) | split
    partial = [b for b in f.layout.buckets()
               if 0 < len(given & {f.names[i] for i in b[0]}) < len(b[0])]
    if not partial or not split:
        fail(rank, f"the partial load tests no part of a bucket or no split parameter: {given}")
    before = jm.state_dict()
    sd = {k: good[k] + 2 for k in given}
    keys = jm.load_state_dict(dict(sd, extra=torch.ones(1)), strict=False)
    missing = [k for k in before if k not in given]
    if keys.missing_keys != missing or keys.unexpected_keys != ["extra"]:
        fail(rank, f"strict=False returned {keys}, not {missing} missing and 'extra' unexpected")
    after = jm.state_dict()
    for k in before:
        if not torch.equal(after[k], sd.get(k, before[k])):
            fail(rank, f"after a partial load, {k} is neither loaded nor kept")


def main():
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if os.environ.get("THUNDER_WORKER_DEVICE", "cuda") == "cpu":
        dev = torch.device("cpu")
        dist.init_process_group("gloo")
    else:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl")
    torch.manual_seed(0)
    ref = train_gpt.GPT(vocab=64, dim=64, layers=2, heads=4, max_seq=32).to(dev)
    mine = train_gpt.GPT(vocab=64, dim=64, layers=2, heads=4, max_seq=32).to(dev)
    mine.load_state_dict(ref.state_dict())
    mode = os.environ.get("THUNDER_WORKER_MODE", "ddp")
    if mode == "fsdp":
        jm = thunder.distributed.fsdp(thunder.jit(mine), bucket_mb=0.05, timeout_s=60)
    else:
        jm = thunder.distributed.ddp(thunder.jit(mine), bucket_mb=0.05, timeout_s=60)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (ref, jm)]
    batch = 2 * world
    for step, (idx, tgt) in enumerate(train_gpt.batches(5, batch, 32, 64, dev)):
        want = ref(idx, tgt)
        want.backward()
        lo, hi = rank * 2, rank * 2 + 2
        got = jm(idx[lo:hi], tgt[lo:hi])
        got.backward()
        mean = got.detach().clone()
        dist.all_reduce(mean)
        mean /= world
        if abs(mean.item() - want.item()) > 1e-4 + 1e-4 * abs(want.item()):
            print(f"rank {rank} step {step}: {mode} loss {mean.item()}, full batch {want.item()}")
            sys.exit(1)
        for o in opts:
            o.step()
            o.zero_grad()
    if mode == "fsdp":
        full = jm.state_dict()  # gathered from both ranks' shards
        for name, q in ref.state_dict().items():
            d = (full[name] - q).abs().max().item()
            if d > 1e-4:
                print(f"rank {rank}: {name} differs from the full-batch run by {d}")
                sys.exit(1)
        bw = thunder.last_backward_traces(jm)[0]
        if "dist.reduce_scatter(" not in bw or f"world_size={world}" not in bw:
            print(f"rank {rank}: no reduce-scatter over {world} ranks in the backward:\n{bw}")
            sys.exit(1)
        print(f"rank {rank}: fsdp: the gathered parameters match")
        # Loading a state shards it again: both load the same changed parameters (the same
        # seed on every rank), then their next losses agree (they would not, were it ignored).
        torch.manual_seed(1)
        changed = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                   for k, v in ref.state_dict().items()}
        ref.load_state_dict(changed)
        jm.load_state_dict(changed)
        idx, tgt = next(iter(train_gpt.batches(1, batch, 32, 64, dev)))
        want = ref(idx, tgt)
        got = jm(idx[rank * 2:rank * 2 + 2], tgt[rank * 2:rank * 2 + 2]).detach().clone()
        dist.all_reduce(got)
        if abs(got.item() / world - want.item()) > 1e-4 + 1e-4 * abs(want.item()):
            print(f"rank {rank}: after load_state_dict: loss {got.item() / world}, want {want.item()}")
            sys.exit(1)
        print(f"rank {rank}: fsdp: load_state_dict shards the loaded parameters")
        check_rejected_loads(jm, changed, rank)
        print(f"rank {rank}: fsdp: a rejected load_state_dict changes nothing on any rank")
        check_partial_load(jm, changed, rank, world)
        print(f"rank {rank}: fsdp: strict=False loads each given parameter into its slice")
        print(f"rank {rank}: fsdp: 5 steps match the full-batch run")
        dist.destroy_process_group()
        return
    for (name, p), q in zip(mine.named_parameters(), ref.parameters()):
        d = (p - q).abs().max().item()
        if d > 1e-4:
            print(f"rank {rank}: {name} differs from the full-batch run by {d}")
            sys.exit(1)
    # Gradient accumulation: two micro-batches per rank, the first under no_sync; the averaged
    # sum equals the full-batch gradients of both micro-batches.
    micro = list(train_gpt.batches(2, batch, 32, 64, dev))
    for idx, tgt in micro:
        ref(idx, tgt).backward()
    lo, hi = rank * 2, rank * 2 + 2
    with jm.no_sync():
        jm(micro[0][0][lo:hi], micro[0][1][lo:hi]).backward()
    jm(micro[1][0][lo:hi], micro[1][1][lo:hi]).backward()
    for (name, p), q in zip(mine.named_parameters(), ref.parameters()):
        d = (p.grad - q.grad).abs().max().item()
        if d > 1e-4:
            print(f"rank {rank}: no_sync: the gradient of {name} differs by {d}")
            sys.exit(1)
    print(f"rank {rank}: no_sync accumulation matches the full-batch run")
    bw = thunder.last_backward_traces(jm)[0]
    if f"world_size={world}" not in bw:
        print(f"rank {rank}: no all-reduce over {world} ranks in the backward:\n{bw}")
        sys.exit(1)
    print(f"rank {rank}: ddp: 5 steps match the full-batch run")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Skip the interpreter's finalization: with gloo, now and then a gloo thread still held the
    # last reference to a finished all-reduce's work while the final garbage collection ran, and
    # freeing its Python-owned tensor then aborted the process ("terminate called without an
    # active exception") after every check had passed.
    sys.stdout.flush()
    os._exit(0)
