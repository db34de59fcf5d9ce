# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are installed first from this spec so pip never pulls a multi-GB wheel it doesn't need.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean test-min docs-check

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/augself demo --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools

# Every command of README.md and docs/*.md, run on generated data or validated (GPU, real datasets); see tools/docs_check.py.
docs-check: $(STAMP)
	$(PY) tools/docs_check.py

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"

# The suite at the lowest declared versions (docs/dependencies.md): a separate venv, every pyproject dependency pinned
# to its lower bound by tests/min-versions.txt; a first run downloads torch 2.1 with its CUDA libraries (about 2.5 GB).
MIN_VENV ?= .venv-min
MIN_PY := $(MIN_VENV)/bin/python
MIN_STAMP := $(MIN_VENV)/.installed

$(MIN_STAMP): pyproject.toml tests/min-versions.txt
	test -x $(MIN_PY) || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_PY) -m pip install -q --upgrade pip
	$(MIN_PY) -m pip install -q --constraint tests/min-versions.txt -e ".[dev]"
	$(MIN_PY) -m pip check
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/ruff check src tests benchmarks tools
	$(MIN_PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
