# Entry points for people and CI. Plain cargo works too, after `make env` (or ci/bootstrap-env.sh)
# once per checkout: it links the pinned libtorch (see .cargo/config.toml).
#
#   make test        format, lint, dependency rule, all tests (what .ci/run runs)
#   make bench       thunder-bench llama2: llama2-7b compiled vs eager on a GPU, llama2-tiny on the CPU
#                    (BENCH_ARGS="--steps 20 ..." adds flags)
#   make python      the Python package: wheel (maturin), installed into target/pysite, pytest suite
#   make docs        API docs of every crate
#   make gpu-bundle  release test binaries for a GPU machine (see ci/README.md)
#   make clean-env   drop this checkout's .venv/.libtorch symlinks
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# thunder-ir must stay usable alone: no libtorch, no CUDA (ARCHITECTURE.md).
IR_CRATE := thunder-ir
IR_FORBIDDEN_DEPS := torch-sys tch cudarc

.PHONY: help env ir-deps test python bench docs gpu-bundle clean-env

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

# Internal: the Python environment with torch that tch links against, and the .venv/.libtorch
# symlinks. Idempotent and quick once made.
env:
	@echo "==> env"
	@py=$$(ci/bootstrap-env.sh); echo "    python: $$py"

test: env
	@echo "==> fmt"
	@$(CARGO) fmt --all --check
	@echo "==> clippy"
	@$(CARGO) clippy --workspace --all-targets -- -D warnings
	@$(MAKE) --no-print-directory ir-deps
	@echo "==> clippy -p thunder-executors --no-default-features (no cudarc, no fusion executor)"
	@$(CARGO) clippy -p thunder-executors --no-default-features --all-targets -- -D warnings
	@echo "==> cargo test --workspace"
	@$(CARGO) test --workspace
	@# libtorch picks CPU kernels by SIMD width, so results can differ by an ulp between a host
	@# with AVX-512 and one without; run the op surveys once more on the AVX2 kernels (a no-op
	@# where AVX2 is the widest) so that a tolerance that holds on one kind of CPU only fails here.
	@echo "==> op surveys on libtorch's AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)"
	@ATEN_CPU_CAPABILITY=avx2 $(CARGO) test -p opinfo-db --test conformance --test conformance_random \
	   --test tolerances
	@ATEN_CPU_CAPABILITY=avx2 $(CARGO) test -p thunder-transforms --test grad_ops --test jvp_ops \
	   --test vmap_ops
	@# Nothing of libtorch is needed for thunder-ir. .cargo/config.toml's [env] still hands cargo
	@# LIBTORCH (a config cannot be switched off per command); the dependency check above is the
	@# real guard, this only keeps shell exports such as LIBTORCH_USE_PYTORCH out of the run.
	@echo "==> cargo test -p $(IR_CRATE), libtorch variables unset"
	@env -u LIBTORCH -u LIBTORCH_USE_PYTORCH -u LIBTORCH_CXX11_ABI $(CARGO) test -p $(IR_CRATE)
	@echo "==> clippy -p thunder-py --features python"
	@PATH="$(CURDIR)/.venv/bin:$$PATH" $(CARGO) clippy -p thunder-py --features python -- -D warnings
	@$(MAKE) --no-print-directory python
	@echo "==> test: all passed"

# The Python package `thunder`: its wheel (maturin, dev profile; torch-sys finds the Python headers
# through the venv's python on PATH), installed into target/pysite (the shared venv stays as it is),
# then its pytest suite, run outside the source tree so `import thunder` finds the installed one.
python: env
	@echo "==> python: maturin build (thunder-py)"
	@rm -f target/wheels/thunder_rs-*.whl
	@PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/maturin build --quiet -m thunder-py/Cargo.toml -i .venv/bin/python -o target/wheels
	@rm -rf target/pysite
	@.venv/bin/python -m pip install --quiet --no-deps --target target/pysite target/wheels/thunder_rs-*.whl
	@echo "==> python: pytest thunder-py/tests"
	@cd target && PYTHONPATH="$(CURDIR)/target/pysite" "$(CURDIR)/.venv/bin/python" -m pytest -q -p no:cacheprovider -W ignore::UserWarning "$(CURDIR)/thunder-py/tests"

# Internal, part of test: the dependency rule, over every feature, target and dependency kind.
ir-deps:
	@echo "==> $(IR_CRATE) has no libtorch/CUDA dependency"
	@tree=$$($(CARGO) tree -p $(IR_CRATE) -e normal,dev,build --all-features --target all --prefix none); \
	 bad=$$(for dep in $(IR_FORBIDDEN_DEPS); do grep -oE "^$$dep v[^ ]+" <<<"$$tree" || true; done | sort -u); \
	 if [ -n "$$bad" ]; then \
	   echo "error: $(IR_CRATE) must not depend on libtorch or CUDA crates ($(IR_FORBIDDEN_DEPS))," >&2; \
	   echo "but its dependency tree has (see: cargo tree -p $(IR_CRATE) -i <crate>):" >&2; \
	   sed 's/^/    /' <<<"$$bad" >&2; \
	   exit 1; \
	 fi

bench: env
	@echo "==> bench: thunder-bench llama2 $(BENCH_ARGS)"
	@$(CARGO) run --release -p thunder-bench -- llama2 $(BENCH_ARGS)

# cargo doc runs the build scripts (torch-sys compiles against the libtorch headers), hence env.
docs: env
	@echo "==> docs"
	@$(CARGO) doc --workspace --no-deps
	@echo "==> docs: open $(abspath $(or $(CARGO_TARGET_DIR),target))/doc/thunder_ir/index.html (one index.html per crate next to it)"

gpu-bundle: env
	@echo "==> gpu-bundle"
	@ci/gpu-bundle.sh

# Only this checkout's symlinks; the shared environment (several GB) stays in the cache for other
# checkouts. ci/bootstrap-env.sh explains where it lives.
clean-env:
	@echo "==> clean-env"
	@for link in .venv .libtorch; do \
	   if [ -L "$$link" ]; then target=$$(readlink "$$link"); rm "$$link"; echo "    removed $$link (pointed at $$target)"; \
	   elif [ -e "$$link" ]; then echo "    left $$link alone: not a symlink" >&2; fi; \
	 done
	@echo "    the shared environment in $${THUNDER_RS_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/thunder-rs} was kept; delete it by hand to free its disk space"
