# Two entry points: `make demo` (the main job on bundled footage) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU wheel where no NVIDIA GPU is visible: PyPI's x86_64 Linux torch, pinned or not, is a
# multi-GB CUDA build. PyTorch's CPU index offers 2.13.0+cpu, which outranks PyPI's 2.13.0 of the same
# release (a local version sorts above the plain one), and only torch is looked up there (--no-deps
# below): its dependencies come from PyPI with the project's. Set TORCH_SPEC to choose another build.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0 --extra-index-url $(TORCH_CPU_INDEX))

.PHONY: install install-dev demo test lint bench bench-peer clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps $(TORCH_SPEC)
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

# Speed benchmarks: each prints a table and writes bench/results/<name>.json (needs ../shared/data).
bench: install
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/contention.py
	$(BIN)/python bench/convert.py --speed-only

# dualface against faceswap 3 in the same run (the kit in ../shared/peers/faceswap; ~15 min idle, plus
# ~3 min to install faceswap into PEER_SCRATCH the first time). SKIP_B64=1 leaves out the batch-64 pair.
# Where bf16 is emulated (AVX2-only CPUs) the kit's two bf16 2048^3 peak passes take ~10 min each.
PEER_KIT ?= ../shared/peers/faceswap
PEER_SCRATCH ?= /tmp/dualface-peer
bench-peer: install
	$(BIN)/python bench/peer.py faces $(PEER_SCRATCH)
	bash $(PEER_KIT)/compare.sh $(PEER_SCRATCH) $(abspath $(BIN))/python \
		$(PEER_SCRATCH)/faces-dualface/s1 $(PEER_SCRATCH)/faces-dualface/other
	$(BIN)/python bench/peer.py results $(PEER_SCRATCH)

clean:
	rm -rf $(VENV) demo-output .pytest_cache
