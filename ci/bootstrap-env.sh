#!/usr/bin/env bash
# Creates (once) the Python environment that tch builds and links against, and points the
# checkout at it. Idempotent: a second run, or a second clone on the same machine, reuses it,
# and does not start Python when nothing changed.
#
#   ci/bootstrap-env.sh            # make sure the environment exists; print its interpreter
#
# It leaves two symlinks in the checkout (both git-ignored):
#   .venv      -> the Python environment (sys.prefix of the interpreter)
#   .libtorch  -> its `torch` package folder (include/, lib/). .cargo/config.toml sets
#                 LIBTORCH=.libtorch, so plain `cargo build` links this libtorch. We do not use
#                 torch-sys' LIBTORCH_USE_PYTORCH=1 route: it runs whichever python is first on PATH.
#
# Environment knobs:
#   THUNDER_PYTHON      use this interpreter (it must already have torch==$TORCH_VERSION); no venv is made
#   THUNDER_RS_CACHE    where shared environments live (default: ${XDG_CACHE_HOME:-~/.cache}/thunder-rs)
#   PYTHON              the interpreter a new venv is made from (default: python3)
set -euo pipefail

TORCH_VERSION=2.11.0   # tch 0.24 requires exactly this libtorch
CUDA_CRT_VERSION=13.0.88   # crt/ headers for torch 2.11.0+cu130's CUDA 13.0 runtime headers
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { printf 'bootstrap-env: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'bootstrap-env: %s\n' "$*" >&2; }

# torch_info PY -> three lines: torch.__version__, the torch package folder, the C++11 ABI flag
# (True/False); nothing when torch does not import. One Python start (about 2 s: importing torch).
torch_info() {
  "$1" -c 'import os, torch
print(torch.__version__)
print(os.path.dirname(os.path.realpath(torch.__file__)))
print(torch._C._GLIBCXX_USE_CXX11_ABI)' 2>/dev/null || true
}

# load_torch PY [CACHE] -> sets torch_ver, torch_dir, torch_abi and checks them. CACHE is a file
# in an environment this script owns: it keeps the answer until torch is reinstalled there (pip
# rewrites torch/version.py, which is then newer than the cache).
load_torch() {
  local py=$1 cache=${2:-} lines=()
  if [ -n "$cache" ] && [ -f "$cache" ]; then
    mapfile -t lines <"$cache"
    if [ "${#lines[@]}" -ne 3 ] || [ ! -f "${lines[1]}/version.py" ] || [ "${lines[1]}/version.py" -nt "$cache" ]; then
      lines=()
    fi
  fi
  if [ "${#lines[@]}" -eq 0 ]; then
    mapfile -t lines < <(torch_info "$py")
    [ "${#lines[@]}" -eq 3 ] || die "$py cannot import torch. Install it with: $py -m pip install torch==$TORCH_VERSION"
    if [ -n "$cache" ]; then printf '%s\n' "${lines[@]}" >"$cache"; fi
  fi
  torch_ver=${lines[0]} torch_dir=${lines[1]} torch_abi=${lines[2]}
  case "$torch_ver" in
    "$TORCH_VERSION"|"$TORCH_VERSION"+*) ;;
    *) die "$py has torch $torch_ver, but tch 0.24 needs torch $TORCH_VERSION exactly. Use another interpreter (THUNDER_PYTHON=...) or: $py -m pip install torch==$TORCH_VERSION" ;;
  esac
  # .cargo/config.toml tells torch-sys LIBTORCH_CXX11_ABI=1; a pre-C++11-ABI libtorch would link
  # but fail with undefined std::string symbols, so refuse it here with a readable message.
  [ "$torch_abi" = True ] \
    || die "the torch in $torch_dir was built without the C++11 ABI (torch._C._GLIBCXX_USE_CXX11_ABI is $torch_abi); tch needs a C++11-ABI build. The PyPI wheels of torch $TORCH_VERSION for Linux are; reinstall with: $py -m pip install --force-reinstall torch==$TORCH_VERSION"
  [ -d "$torch_dir/include" ] && [ -d "$torch_dir/lib" ] \
    || die "$torch_dir has no include/ and lib/ folders: this torch install cannot be linked against"
}

# point_link LINK TARGET: make LINK a symlink to TARGET unless it already is one.
point_link() {
  local link=$1 target=$2
  if [ "$(readlink "$link" 2>/dev/null)" != "$target" ]; then
    if [ -e "$link" ] && [ ! -L "$link" ]; then
      die "$link exists and is not a symlink; remove it so it can point at $target"
    fi
    ln -sfn "$target" "$link"
  fi
}

if [ -n "${THUNDER_PYTHON:-}" ]; then
  py=$(command -v "$THUNDER_PYTHON") || die "THUNDER_PYTHON=$THUNDER_PYTHON is not an executable"
  load_torch "$py"
  # realpath: a THUNDER_PYTHON reached through .venv itself must not make .venv point at itself.
  venv=$("$py" -c 'import os, sys; print(os.path.realpath(sys.prefix))')
else
  base=${PYTHON:-python3}
  command -v "$base" >/dev/null || die "no '$base' on PATH: install Python 3 (3.10 to 3.13) or set PYTHON=/path/to/python3"
  pytag=$("$base" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")') \
    || die "'$base' does not run"
  cache=${THUNDER_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thunder-rs}
  venv="$cache/venv-py$pytag-torch$TORCH_VERSION"
  mkdir -p "$cache"
  # One installer at a time per cache folder; a half-finished venv has no .complete marker.
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    say "creating $venv (torch $TORCH_VERSION from PyPI, several GB, one time only)"
    rm -rf "$venv"
    "$base" -m venv "$venv" || die "'$base -m venv' failed: install the venv module (Debian: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --progress-bar off "torch==$TORCH_VERSION" \
      || die "pip could not install torch==$TORCH_VERSION into $venv (network? disk space?). Re-run to retry."
    load_torch "$venv/bin/python"
    touch "$venv/.complete"
  fi
  py="$venv/bin/python"
  load_torch "$py" "$venv/.thunder-rs-torch"
  # The Python package's build and tests (make python): maturin and pytest, once.
  if [ ! -x "$venv/bin/maturin" ] || ! "$py" -c "import pytest" 2>/dev/null; then
    say "installing maturin and pytest into $venv"
    "$py" -m pip install --quiet --progress-bar off "maturin>=1.9,<2" "pytest>=8" \
      || die "pip could not install maturin and pytest into $venv (network?). Re-run to retry."
  fi
  # The model zoo of the Python tests (thunder-py/tests/zoo.py): transformers and litgpt at the
  # versions in ci/zoo-requirements.txt, once. litgpt goes in without its dependencies: it caps
  # huggingface-hub below 1.4, which transformers 5.17 needs at 1.5 or later, and the model code
  # the zoo uses does not touch the hub; the rest of what it imports is listed in the file.
  # torch==$TORCH_VERSION is part of every request, so that nothing moves it.
  zoo_req="$root/ci/zoo-requirements.txt"
  if [ ! -f "$venv/.zoo" ] || ! cmp -s "$zoo_req" "$venv/.zoo"; then
    say "installing the model zoo (transformers, litgpt; ci/zoo-requirements.txt) into $venv"
    "$py" -m pip install --quiet --progress-bar off -r "$zoo_req" "torch==$TORCH_VERSION" \
      && "$py" -m pip install --quiet --progress-bar off --no-deps "$(sed -n 's/^# no-deps: //p' "$zoo_req")" \
      || die "pip could not install the model zoo (ci/zoo-requirements.txt) into $venv (network?). Re-run to retry."
    cp "$zoo_req" "$venv/.zoo"
  fi
  # The CUDA runtime headers that libtorch's ATen/cuda headers include need crt/, which the torch
  # wheel's CUDA packages leave out; the shim's CUDA graph functions include them.
  if [ ! -f "$(dirname "$torch_dir")/nvidia/cu13/include/crt/host_config.h" ]; then
    say "installing nvidia-cuda-crt (CUDA headers for the shim) into $venv"
    "$py" -m pip install --quiet --no-deps --progress-bar off "nvidia-cuda-crt==$CUDA_CRT_VERSION" \
      || die "pip could not install nvidia-cuda-crt==$CUDA_CRT_VERSION into $venv (network?). Re-run to retry."
  fi
  flock -u 9
fi

point_link "$root/.venv" "$venv"
point_link "$root/.libtorch" "$torch_dir"
echo "$py"
