# Two entry points: `make demo` (the main job on bundled footage) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU wheel where no NVIDIA GPU is visible: an unpinned torch is a multi-GB CUDA build.
# Set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CPU index>") to choose another.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)

.PHONY: install install-dev demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/dualface demo

test: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q -rs

bench: install
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
