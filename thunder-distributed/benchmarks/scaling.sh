#!/usr/bin/env bash
# Issue 9's scaling runs: thunder-bench llama2 --fsdp --zero 3 on 1, 2, 4, ... GPUs of one
# machine (each with the eager DDP baseline of the same invocation), then one table of tokens/s
# per GPU, MFU, peak memory and scaling efficiency against every smaller GPU count.
# Run from the repository root after `make gpu-bundle` here and
# `tar -xzf bundle/binaries.tar.gz -C bundle` there:
#
#   OUT=/some/dir thunder-distributed/benchmarks/scaling.sh MODEL MICRO_BATCH "1 2 4 8"
#   e.g. scaling.sh llama2-7b 1 "1 2 4 8"; scaling.sh llama2-13b 2 "2 4 8"
#
# Each GPU count is one invocation writing $OUT/MODEL-mbB-gN.json. When the eager baseline
# runs out of memory (13B's full AdamW state on every GPU), the count runs again without it;
# a count that still fails is logged and skipped. MODES (default eager,thunder) and STEPS
# (default 5) are passed on. Calls for other models or
# micro-batches may write into the same $OUT: scaling_table.py summarizes every JSON there.
# NCCL's NVLink multicast stays off.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$root/bundle/out}
mkdir -p "$out"
model=${1:?usage: scaling.sh MODEL MICRO_BATCH \"GPU COUNTS\"}
mb=${2:-1}
counts=${3:-"1 2 4 8"}
steps=${STEPS:-5}
modes=${MODES:-eager,thunder}
py=${PYTHON:-python3}
torchlib=$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH="$torchlib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L >"$out/gpus.txt"
have=$(wc -l <"$out/gpus.txt")

for n in $counts; do
  if [ "$n" -gt "$have" ]; then echo "skip $n GPUs: this machine has $have"; continue; fi
  name="$model-mb$mb-g$n"
  echo "==> $name"
  # One GPU: the plain compiled run (no collectives) is the scaling baseline.
  if [ "$n" = 1 ]; then par=(); else par=(--fsdp --zero 3 --gpus "$n" --no-baseline); fi
  run() {
    timeout 580 "$root/bundle/bin/thunder-bench" llama2 --model "$model" --seq-len 4096 --micro-batch "$mb" \
      "${par[@]}" --modes "$1" --steps "$steps" --warmup 1 --json "$out/$name.json" >>"$out/$name.log" 2>&1
  }
  : >"$out/$name.log"
  run "$modes"; rc=$?
  if [ $rc != 0 ] && [ "$modes" != thunder ] && grep -q "out of memory.*in eager mode" "$out/$name.log"; then
    echo "   eager ran out of memory; again with thunder alone"
    run thunder; rc=$?
  fi
  echo "rc=$rc ($name.log)"
done
"$py" "$root/thunder-distributed/benchmarks/scaling_table.py" "$out" | tee "$out/scaling.md"
