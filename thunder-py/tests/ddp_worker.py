"""One rank of test_distributed.py's several-rank tests (run by torchrun): 5 SGD steps of the GPT
with thunder.distributed.ddp (THUNDER_WORKER_MODE=ddp, the default) or fsdp and half the batch
per rank, against eager PyTorch with the whole batch on this rank's device: its GPU with NCCL,
or the CPU with gloo (THUNDER_WORKER_DEVICE=cpu). ddp then accumulates two micro-batches with
no_sync; fsdp compares its gathered parameters, then loads them back. Exits non-zero on a
mismatch."""

import os
import pathlib
import sys

import torch
import torch.distributed as dist

import thunder

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import train_gpt  # noqa: E402


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
