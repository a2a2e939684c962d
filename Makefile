# `make demo` and `make test` work on a fresh machine: they create .venv and install everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH := $(VENV)/bin/bench

.PHONY: install demo test gpu-check clean

install: $(VENV)/.installed

# torch==2.13.0 first: the CPU wheel on disk. An unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# LPIPS's calibration weights (its files only: the lpips package's own requirements pull torchvision)
	$(PY) -m pip install --quiet --no-deps lpips==0.1.4
	touch $@

demo: install
	$(BENCH) run --models all --dataset mmnist --jobs auto
	$(BENCH) report

test: install
	$(PY) -m pytest -q

# The first thing to run on a new GPU machine (under 8 minutes on one GPU); exits non-zero on any failure.
gpu-check: install
	$(BENCH) gpu-check

clean:
	rm -rf $(VENV) reports .pytest_cache
