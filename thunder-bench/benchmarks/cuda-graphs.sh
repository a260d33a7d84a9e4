#!/usr/bin/env bash
# Issue 10's GPU checks and measurements in one device call: the CUDA graph tests
# (thunder-executors cuda_graphs, thunder-bench's --cuda-graphs test), then the small Llama of the
# issue (4 layers, hidden 256, 4 heads, intermediate 688, vocab 32000, seq 512, micro-batch 8,
# bf16) with eager, thunder and thunder-graphs, and PyTorch's eager, torch.compile and
# reduce-overhead steps on the same GPU. Run from the repository root after `make gpu-bundle`
# here and `tar -xzf bundle/binaries.tar.gz -C bundle` there:
#
#   OUT=/some/dir thunder-bench/benchmarks/cuda-graphs.sh
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$root/bundle/out}
mkdir -p "$out"
py=${PYTHON:-python3}
torchlib=$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH="$torchlib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L | tee "$out/gpus.txt"

echo "==> cuda_graphs tests"
(cd "$root/thunder-executors" && timeout 300 "$root/bundle/tests/thunder-executors--test--cuda_graphs" --test-threads=1 --nocapture) >"$out/cuda_graphs.log" 2>&1
echo "rc=$? (cuda_graphs.log)"; grep -E "^test |test result" "$out/cuda_graphs.log"
(cd "$root/thunder-bench" && THUNDER_BENCH_EXE="$root/bundle/bin/thunder-bench" timeout 300 "$root/bundle/tests/thunder-bench--test--llama2" cuda_graphs --nocapture) >"$out/bench_test.log" 2>&1
echo "rc=$? (bench_test.log)"; grep -E "^test |test result" "$out/bench_test.log"

echo "==> thunder.jit(cuda_graphs=True)"
site=$(mktemp -d)
"$py" -m pip install -q --no-deps --no-index --target "$site" "$root"/bundle/wheels/*.whl
(cd "$site" && PYTHONPATH="$site" timeout 300 "$py" -m pytest -q -p no:cacheprovider -W ignore::UserWarning \
  "$root/thunder-py/tests/test_jit.py" -k cuda_graphs) >"$out/py_graphs.log" 2>&1
echo "rc=$? (py_graphs.log)"; tail -3 "$out/py_graphs.log"

echo "==> thunder-bench llama2, the issue's small Llama"
small=(--layers 4 --hidden 256 --heads 4 --kv-heads 4 --intermediate 688 --vocab 32000 --seq-len 512 --micro-batch 8)
timeout 300 "$root/bundle/bin/thunder-bench" llama2 --model llama2-tiny "${small[@]}" --dtype bf16 \
  --modes eager,thunder,thunder-graphs --steps 50 --warmup 10 --json "$out/small.json" >"$out/small.log" 2>&1
echo "rc=$? (small.log)"; tail -8 "$out/small.log"

echo "==> PyTorch eager / torch.compile / reduce-overhead, same shapes"
timeout 300 "$py" "$root/thunder-bench/benchmarks/torch_step_baseline.py" \
  --layers 4 --dim 256 --heads 4 --hidden 688 --vocab 32000 --seq 512 --batch 8 >"$out/torch.log" 2>&1
echo "rc=$? (torch.log)"; grep -E "^torch" "$out/torch.log"
