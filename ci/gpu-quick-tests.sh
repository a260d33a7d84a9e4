#!/usr/bin/env bash
# The GPU checks that fit one device call (about 10 minutes), after `make gpu-bundle`: the Python
# suite (with the model zoo on CUDA in bf16), the NCCL tests, the opinfo-db builtin test,
# thunder-bench's memory check and a tiny run, the fusion and CUDA graph tests. Copied into the
# bundle by ci/gpu-bundle.sh as bundle/quick-tests.sh; logs and summary.txt under ${OUT:-bundle/out}.
set -uo pipefail
OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)/out}; mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_NVLS_DISABLE=1 PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
repo=$PWD
[ -d bundle/tests ] || tar -xzf bundle/binaries.tar.gz -C bundle
py=${PYTHON:-python3}
tl=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH="$tl:/usr/local/cuda/lib64"
export THUNDER_BENCH_EXE="$repo/bundle/bin/thunder-bench"
nvidia-smi -L | tee "$OUT/summary.txt"
site=/tmp/site
"$py" -m pip install -q --no-deps --no-index --target "$site" bundle/wheels/*.whl bundle/wheels/zoo/*.whl 2>&1 | tail -2
step() { local name=$1 t=$2; shift 2; local s=$SECONDS; timeout "$t" "$@" >"$OUT/$name.log" 2>&1; local rc=$?; echo "$name: rc=$rc $((SECONDS-s))s" | tee -a "$OUT/summary.txt"; }
mkdir -p /tmp/pt && cd /tmp/pt
step pytest 290 env PYTHONPATH="$site" "$py" -m pytest -q -p no:cacheprovider -W ignore::UserWarning "$repo/thunder-py/tests" --durations=8
grep "zoo:" "$OUT/pytest.log" | tee -a "$OUT/summary.txt"
tail -3 "$OUT/pytest.log" | tee -a "$OUT/summary.txt"
cd "$repo/thunder-distributed"
step nccl 60 env CARGO_MANIFEST_DIR="$PWD" "$repo/bundle/tests/thunder-distributed--test--nccl" --test-threads=1
grep -E "^test |test result" "$OUT/nccl.log" | tee -a "$OUT/summary.txt"
cd "$repo/opinfo-db"
step builtin 30 env CARGO_MANIFEST_DIR="$PWD" "$repo/bundle/tests/opinfo-db--test--builtin"
cd "$repo"
step bench 60 bash -c "bundle/bin/thunder-bench llama2 --model llama2-tiny --seq-len 100000000; echo rc=\$?; bundle/bin/thunder-bench llama2 --model llama2-tiny --steps 3; echo rc=\$?; bundle/bin/thunder-bench ops --heads 0; echo rc=\$?"
cd "$repo/thunder-executors"
step fusion 70 env CARGO_MANIFEST_DIR="$PWD" "$repo/bundle/tests/thunder-executors--test--fusion"
step cuda_graphs 50 env CARGO_MANIFEST_DIR="$PWD" "$repo/bundle/tests/thunder-executors--test--cuda_graphs"
grep -h "test result" "$OUT"/fusion.log "$OUT"/cuda_graphs.log | tee -a "$OUT/summary.txt"
