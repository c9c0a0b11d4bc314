# The README's two commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
# torch==2.13.0 (CPU) for laptops and CI; GPU machines install without it (README).
CONSTRAINTS ?= constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[dev,notebook]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sweep run sweep.yaml
	$(VENV)/bin/sweep report sweep.yaml --out report.html

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/train_step.py
	$(VENV)/bin/python benchmarks/sweep_overhead.py

clean:
	rm -rf $(VENV) runs demo.db demo.db-* report.html .pytest_cache .ruff_cache .mypy_cache
