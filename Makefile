# The README's two commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
# torch==2.13.0 (CPU) for laptops and CI; GPU machines install without it (README).
CONSTRAINTS ?= constraints.txt
# Every package of the dev environment pinned (Python 3.11, Linux x86_64); `make lock` refreshes it.
LOCK   ?= requirements.lock
# Where the resolver finds torch's CPU wheel (this machine's pip find-links). Without it PyPI's
# Linux torch is a CUDA build and the lock would pull nvidia-* wheels; `make lock` refuses that.
TORCH_WHEELS ?= /opt/wheels
# The lock pins torch==2.13.0, which PyPI serves as a CUDA build on Linux and a CPU build on
# macOS. On Linux torch alone comes from PyTorch's CPU index (2.13.0+cpu satisfies ==2.13.0),
# unless TORCH_WHEELS already holds a torch wheel (this machine, CI): then pip takes that one
# and never asks an index it may not reach. Everything else comes from PyPI.
UNAME ?= $(shell uname -s)
ifeq ($(UNAME),Linux)
TORCH_INDEX ?= $(if $(wildcard $(TORCH_WHEELS)/torch-*.whl),,https://download.pytorch.org/whl/cpu)
endif
STAMP  := $(VENV)/.installed-from-lock

.PHONY: demo test test-fast lint install lock lock-upgrade clean bench

# Exactly the locked versions, then the project itself without resolving again; `pip check`
# fails when pyproject.toml needs a package the lock lacks (run `make lock`).
$(STAMP): pyproject.toml $(CONSTRAINTS) $(LOCK)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c $(CONSTRAINTS) -c $(LOCK) torch $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install --quiet -c $(CONSTRAINTS) -r $(LOCK)
	$(PIP) install --quiet --no-deps -e .
	$(PIP) check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sweep run sweep.yaml
	$(VENV)/bin/sweep report sweep.yaml --out report.html

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The tests that train no model and start no Ray (config, store, CLI errors, analysis on
# synthetic sweeps, cluster files): a few minutes, for the edit-test loop.
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/train_step.py
	$(VENV)/bin/python benchmarks/sweep_overhead.py

# uv at the locked version, without needing the rest of the environment to be current.
$(VENV)/bin/uv:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$$(grep '^uv==' $(LOCK))"

# Re-resolve pyproject.toml's dependencies and extras; existing pins are kept where they still
# fit (uv prefers the versions already in the output file), new packages get the newest fitting
# release. `make lock-upgrade` moves every pin to the newest release.
lock: $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra notebook --extra tracking \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --constraint $(CONSTRAINTS) --find-links $(TORCH_WHEELS) --native-tls \
	  --custom-compile-command "make lock" --quiet $(UV_ARGS) --output-file $(LOCK)
	@# torch==X, not X+cpu: PyPI has no +cpu release; the install picks the CPU build (above)
	sed -i.bak -E 's/^torch==([^+ ]+)\+cpu/torch==\1/' $(LOCK) && rm -f $(LOCK).bak
	@if grep -Eq '^(nvidia-|triton==)' $(LOCK); then \
	  echo "lock: CUDA packages resolved (no CPU torch wheel in TORCH_WHEELS=$(TORCH_WHEELS)?)"; \
	  exit 1; fi
	@echo "lock: $$(grep -c '==' $(LOCK)) packages pinned in $(LOCK)"

lock-upgrade:
	$(MAKE) lock UV_ARGS=--upgrade

clean:
	rm -rf $(VENV) runs demo.db demo.db-* report.html .pytest_cache .ruff_cache .mypy_cache
