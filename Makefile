# gradlab: `make repro` runs the study, `make test` passes the tests. Both bootstrap .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PROFILE ?= cpu

.PHONY: venv test test-slow experiment analyze generate geometry repro bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip takes the local CPU wheel where there is one (elsewhere PyPI's build)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)  ## the default suite (fast; `slow` end-to-end tests excluded)
	$(BIN)/python -m pytest

test-slow: $(STAMP)  ## the slow end-to-end tests (science sanity runs)
	$(BIN)/python -m pytest -m slow

experiment: $(STAMP)  ## one training run: make experiment ARGS="model=nfg_lstm task.seq_len=200 clip=norm"
	$(BIN)/python pipelines/train.py $(ARGS)

analyze: $(STAMP)  ## BPTT probe of a trained run on test data: make analyze ARGS="<the run's overrides>"
	$(BIN)/python pipelines/analyze.py $(ARGS)

generate: $(STAMP)  ## one data set: make generate ARGS="task=copy task.seq_len=200"
	$(BIN)/python pipelines/generate.py $(ARGS)

geometry: $(STAMP)  ## random vectors vs theory: make geometry ARGS="geometry.dims=[2,10,100] geometry.n_pairs=2000"
	$(BIN)/python pipelines/geometry.py $(ARGS)

repro: $(STAMP)  ## the whole study (dvc repro)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

bench: $(STAMP)  ## speed benchmarks -> benchmarks/results.md and results.json
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check src pipelines tests benchmarks

clean:  ## remove generated outputs (not the venv)
	rm -rf runs multirun outputs results
