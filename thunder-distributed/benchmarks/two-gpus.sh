#!/usr/bin/env bash
# Everything issue 8 measures on a 2-GPU machine, in one go (one device call): the NCCL tests,
# the Python DDP test, thunder-bench's 7B ZeRO-3 run with its single-GPU baseline, and PyTorch
# FSDP2 (eager and torch.compile) on the same GPUs. Run from the repository root after
# `make gpu-bundle` here and `tar -xzf bundle/binaries.tar.gz -C bundle` there:
#
#   OUT=/some/dir thunder-distributed/benchmarks/two-gpus.sh [7b|tiny]
#
# Logs go to $OUT (default bundle/out). NCCL's NVLink multicast stays off.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$root/bundle/out}
mkdir -p "$out"
size=${1:-7b}
py=${PYTHON:-python3}
torchlib=$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH="$torchlib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L | tee "$out/gpus.txt"

echo "==> NCCL tests"
(cd "$root/thunder-distributed" && timeout 300 "$root/bundle/tests/thunder-distributed--test--nccl" --test-threads=1 --nocapture) >"$out/nccl.log" 2>&1
echo "rc=$? (nccl.log)"

echo "==> thunder.distributed.ddp on 2 GPUs"
site=$(mktemp -d)
"$py" -m pip install -q --no-deps --no-index --target "$site" "$root"/bundle/wheels/*.whl
(cd "$site" && PYTHONPATH="$site" timeout 300 "$py" -m pytest -q -p no:cacheprovider -W ignore::UserWarning \
  "$root/thunder-py/tests/test_distributed.py") >"$out/py_ddp.log" 2>&1
echo "rc=$? (py_ddp.log)"

if [ "$size" = 7b ]; then
  model=(--model llama2-7b --seq-len 4096); fsdp2=(--layers 32 --dim 4096 --heads 32 --hidden 11008 --seq 4096)
else
  model=(--model tiny-llama-1.1b --seq-len 2048); fsdp2=(--layers 22 --dim 2048 --heads 32 --hidden 5632 --seq 2048)
fi
echo "==> thunder-bench llama2 ${model[*]} --fsdp --gpus 2"
timeout 400 "$root/bundle/bin/thunder-bench" llama2 "${model[@]}" --fsdp --zero 3 --gpus 2 --steps 5 --warmup 1 \
  --json "$out/thunder.json" >"$out/thunder.log" 2>&1
echo "rc=$? (thunder.log)"; tail -14 "$out/thunder.log"

echo "==> PyTorch FSDP2 on the same GPUs"
PYTHONPATH="$site" timeout 400 "$py" -m torch.distributed.run --nproc-per-node 2 \
  "$root/thunder-distributed/benchmarks/fsdp2_baseline.py" "${fsdp2[@]}" >"$out/fsdp2.log" 2>&1
echo "rc=$? (fsdp2.log)"; grep -E "FSDP2" "$out/fsdp2.log"
