#!/usr/bin/env bash
# Builds the workspace's release test binaries and binaries here (no GPU needed) into bundle/
# (git-ignored), stripped and compressed (bundle/binaries.tar.gz), with bundle/run-tests.sh, which
# unpacks them and runs every test binary on a GPU machine. Benchmarks and bins are in the same
# archive: after run-tests.sh (or `tar -xzf bundle/binaries.tar.gz -C bundle`), bundle/bench/NAME
# --bench and bundle/bin/NAME.
#
#   ci/gpu-bundle.sh                # or: make gpu-bundle
#   bundle/run-tests.sh [ARGS...]   # on the GPU machine; ARGS go to every test binary
#
# Environment knobs:
#   BUNDLE_LIMIT_MB   fail when the bundle is bigger (default 60: the device runner carries 64 MiB)
#
# Doc tests are not in the bundle: they need rustdoc and the sources.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
limit_mb=${BUNDLE_LIMIT_MB:-60}
bundle="$root/bundle"

die() { printf 'gpu-bundle: error: %s\n' "$*" >&2; exit 1; }
command -v strip >/dev/null || die "no 'strip' on PATH (Debian: apt-get install binutils)"
py=$(ci/bootstrap-env.sh)   # the libtorch to link; its Python also reads cargo's JSON below

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# artifacts WHAT < cargo JSON messages -> lines "executable<TAB>bundle name<TAB>package folder",
# WHAT = tests (test harness executables) or bins. Bundle names are unique: a package's lib and bin
# targets often share a name.
artifacts() {
  "$py" -c '
import json, os, sys
what, root = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    target, is_test = msg["target"], msg["profile"]["test"]
    if what == "tests" and not is_test:
        continue
    if what == "bins" and (is_test or "bin" not in target["kind"]):
        continue
    pkg = os.path.relpath(os.path.dirname(msg["manifest_path"]), root)
    kind = "lib" if any(k.endswith("lib") for k in target["kind"]) else target["kind"][0]
    name = target["name"] if what == "bins" else "--".join((pkg, kind, target["name"]))
    print(msg["executable"], name, pkg, sep="\t")
' "$1" "$root"
}

echo "==> gpu-bundle: cargo test --release --workspace --no-run"
cargo test --release --workspace --no-run --message-format=json-render-diagnostics >"$tmp/tests.json"
echo "==> gpu-bundle: cargo bench --workspace --no-run"
cargo bench --workspace --no-run --message-format=json-render-diagnostics >"$tmp/benches.json"
echo "==> gpu-bundle: cargo build --release --workspace --bins"
cargo build --release --workspace --bins --message-format=json-render-diagnostics >"$tmp/bins.json"

rm -rf "$bundle"
mkdir -p "$bundle/tests" "$bundle/bin"
: >"$bundle/tests.tsv"
while IFS=$'\t' read -r exe name pkg; do
  strip -o "$bundle/tests/$name" "$exe"
  printf '%s\t%s\n' "$name" "$pkg" >>"$bundle/tests.tsv"
done < <(artifacts tests <"$tmp/tests.json" | sort)
while IFS=$'\t' read -r exe name _; do
  strip -o "$bundle/bin/$name" "$exe"
done < <(artifacts bins <"$tmp/bins.json")
# Benchmarks (criterion), run by hand on the GPU machine: bundle/bench/NAME --bench
mkdir -p "$bundle/bench"
while IFS=$'\t' read -r exe name _; do
  strip -o "$bundle/bench/${name##*--}" "$exe"
done < <(artifacts tests <"$tmp/benches.json" | grep -- '--bench--')
[ -s "$bundle/tests.tsv" ] || die "cargo reported no test executables"
# The Python package (release, stripped); run-tests.sh installs it and runs thunder-py/tests.
echo "==> gpu-bundle: maturin build --release (thunder-py)"
mkdir -p "$bundle/wheels"
PATH="$root/.venv/bin:$PATH" "$root/.venv/bin/maturin" build --quiet --release --strip \
  -m "$root/thunder-py/Cargo.toml" -i "$root/.venv/bin/python" -o "$bundle/wheels" \
  || die "maturin could not build the thunder-py wheel"
# The model zoo's packages that GPU machines lack (the `gpu-bundle:` line of
# ci/zoo-requirements.txt); run-tests.sh installs them, without dependencies, where litgpt
# does not import.
echo "==> gpu-bundle: model zoo wheels"
read -r -a zoo_wheels < <(sed -n 's/^# gpu-bundle: //p' "$root/ci/zoo-requirements.txt")
"$root/.venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: -d "$bundle/wheels/zoo" \
  "${zoo_wheels[@]}" || die "pip could not download the model zoo's wheels (network?)"

# The checks that fit one device call (ci/gpu-quick-tests.sh).
cp "$root/ci/gpu-quick-tests.sh" "$bundle/quick-tests.sh"

cat >"$bundle/run-tests.sh" <<'EOF'
#!/usr/bin/env bash
# Runs this bundle's test binaries on a GPU machine. Made by ci/gpu-bundle.sh; see ci/README.md.
#
#   bundle/run-tests.sh [ARGS...]   # ARGS go to every test binary (a name filter, --nocapture, ...)
#
# Logs: ${OUT:-bundle/out}/<binary>.log, and summary.txt. Exit status 1 when any binary failed.
# PYTHON (default python3) names the interpreter whose torch (2.11.0) provides libtorch.
set -uo pipefail   # no -e: run every binary, then report

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${OUT:-$here/out}
# The binaries travel compressed (the device runner carries 64 MiB); unpack them once.
if [ -f "$here/binaries.tar.gz" ] && [ ! -d "$here/tests" ]; then
  tar -xzf "$here/binaries.tar.gz" -C "$here" || { echo "run-tests: error: cannot unpack $here/binaries.tar.gz" >&2; exit 2; }
fi
mkdir -p "$out"
py=${PYTHON:-python3}

# The binaries' run path names the build machine's libtorch, which does not exist here: point the
# loader at this machine's torch wheel (LD_LIBRARY_PATH is searched before a RUNPATH).
mapfile -t torch < <("$py" -c 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))' 2>/dev/null)
if [ "${#torch[@]}" -ne 2 ]; then
  echo "run-tests: error: $py cannot import torch; set PYTHON to an interpreter with torch 2.11.0" >&2
  exit 2
fi
case "${torch[0]}" in
  2.11.0|2.11.0+*) ;;
  *) echo "run-tests: error: $py has torch ${torch[0]}; these binaries were linked against torch 2.11.0" >&2; exit 2 ;;
esac
export LD_LIBRARY_PATH="${torch[1]}/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Tests that run the thunder-bench binary find this bundle's copy (not the build machine's).
export THUNDER_BENCH_EXE="$here/bin/thunder-bench"

summary="$out/summary.txt"
{
  echo "host:            $(uname -n)"
  echo "torch:           ${torch[0]} (${torch[1]})"
  echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
  echo "gpus:"
  { nvidia-smi -L 2>&1 || echo "(nvidia-smi failed or is missing)"; } | sed 's/^/  /'
} >"$summary"

failed=0
run() { # NAME LOG DIR COMMAND...
  local name=$1 log=$2 dir=$3 start=$SECONDS rc
  shift 3
  (cd "$dir" && "$@") >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then status=ok; else status="FAILED (exit $rc)"; failed=$((failed + 1)); fi
  printf '%-60s %s, %ss\n' "$name" "$status" "$((SECONDS - start))" | tee -a "$summary"
}

if [ -x "$here/bin/thunder-runtime-info" ]; then
  run thunder-runtime-info "$out/thunder-runtime-info.log" "$here" "$here/bin/thunder-runtime-info"
  sed 's/^/    /' "$out/thunder-runtime-info.log"
fi
while IFS=$'\t' read -r name pkg; do
  # cargo runs a test in its package folder; do the same when the sources came along.
  dir="$repo/$pkg"
  [ -d "$dir" ] || dir=$here
  # The conformance suite prints its case counts per op; keep them for the summary below.
  extra=()
  # (one thread: parallel tests would interleave their lines in the log)
  case "$name" in
    opinfo-db--test--conformance | thunder-transforms--test--*_ops) extra=(--nocapture --test-threads=1) ;;
  esac
  CARGO_MANIFEST_DIR=$dir run "$name" "$out/$name.log" "$dir" "$here/tests/$name" "${extra[@]}" "$@"
done <"$here/tests.tsv"

# The transform surveys (grad, jvp, vmap of every op of opinfo-db against PyTorch: thunder-transforms'
# tests) once more, on cuda:0.
for name in thunder-transforms--test--grad_ops thunder-transforms--test--jvp_ops thunder-transforms--test--vmap_ops; do
  grep -q "^$name"$'\t' "$here/tests.tsv" || continue
  dir="$repo/thunder-transforms"
  [ -d "$dir" ] || dir=$here
  OPINFO_DEVICE=cuda CARGO_MANIFEST_DIR=$dir run "$name (cuda)" "$out/$name-cuda.log" "$dir" \
    "$here/tests/$name" --nocapture --test-threads=1 "$@"
done
if ls "$out"/thunder-transforms--test--*_ops*.log >/dev/null 2>&1; then
  echo "transform surveys (thunder-transforms):" | tee -a "$summary"
  grep -h ' on \(cpu\|cuda:[0-9]*\): [0-9]* ops, [0-9]* cases' "$out"/thunder-transforms--test--*_ops*.log \
    | sed 's/^test .* \.\.\. //; s/^/  /' | tee -a "$summary"
fi

conformance="$out/opinfo-db--test--conformance.log"
if [ -f "$conformance" ]; then
  echo "opinfo-db conformance (ops, cases, skipped, passed by the float64 re-check, failed):" | tee -a "$summary"
  grep -hoE 'on (cpu|cuda:[0-9]+): [0-9]+ cases, [0-9]+ skipped, [0-9]+ passed by the float64 re-check, [0-9]+ failed' "$conformance" \
    | awk '{d=$2; sub(":$", "", d); c[d]+=$3; s[d]+=$5; r[d]+=$7; f[d]+=$14; n[d]++}
           END {for (k in c) printf "  %-8s %4d ops %6d cases %4d skipped %4d re-checked %4d failed\n", k, n[k], c[k], s[k], r[k], f[k]}' \
    | sort | tee -a "$summary"
  grep -h '^skipped: ' "$conformance" | head -n 3 | sed 's/^/  /' | tee -a "$summary"
fi

# The Python package: its wheel installed into a scratch folder, its pytest suite on this GPU.
wheel=$(ls "$here"/wheels/thunder_rs-*.whl 2>/dev/null | head -n 1)
if [ -n "$wheel" ] && [ -d "$repo/thunder-py/tests" ]; then
  site="$out/pysite"
  rm -rf "$site"
  zoo=()
  if ! "$py" -c "import litgpt" 2>/dev/null; then zoo=("$here"/wheels/zoo/*.whl); fi
  if "$py" -m pip install --quiet --no-deps --no-index --target "$site" "$wheel" "${zoo[@]}" >"$out/pip.log" 2>&1; then
    if "$py" -c "import pytest" 2>/dev/null; then
      PYTHONPATH="$site" run "thunder-py pytest" "$out/pytest.log" "$out" \
        "$py" -m pytest -q -p no:cacheprovider -W ignore::UserWarning "$repo/thunder-py/tests"
    else
      echo "thunder-py pytest: skipped, $py has no pytest" | tee -a "$summary"
    fi
  else
    echo "thunder-py: FAILED to install $wheel (see $out/pip.log)" | tee -a "$summary"
    failed=$((failed + 1))
  fi
fi

echo "$failed failed; logs in $out" | tee -a "$summary"
[ "$failed" -eq 0 ]
EOF
chmod +x "$bundle/run-tests.sh"

count=$(find "$bundle/tests" "$bundle/bin" "$bundle/bench" -type f | wc -l)
# Compressed, the binaries take about a third of the space (run-tests.sh unpacks them).
tar -czf "$bundle/binaries.tar.gz" -C "$bundle" tests bin bench
rm -rf "$bundle/tests" "$bundle/bin" "$bundle/bench"
bytes=$(du -sb "$bundle" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "==> gpu-bundle: $bundle: $count binaries, $mb MB"
if [ "$bytes" -gt $((limit_mb * 1000 * 1000)) ]; then
  tar -tvzf "$bundle/binaries.tar.gz" | sort -k3 -rn | sed -n 1,5p >&2
  die "the bundle is $mb MB, over the ${limit_mb} MB limit (BUNDLE_LIMIT_MB)"
fi
