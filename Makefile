# gradlab: `make repro` runs the study, `make test` passes the tests. Both bootstrap .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PROFILE ?=
JOBS ?=
THREADS ?=
# when make began (read once, as it starts): `make repro` records its time since then, set-up included
STARTED := $(shell date +%s.%N)

.PHONY: venv test test-numerics test-slow documented-run readme experiment analyze generate geometry repro queue summary report browser screenshot sync wandb-report sweep bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip takes the local CPU wheel where there is one (elsewhere PyPI's build)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP) browser  ## the default suite (fast; `slow` end-to-end tests excluded)
	$(BIN)/python -m pytest

# The numeric tests (pytest -m numerics) once per CPU code path: torch's own kernels, MKL's and oneDNN's, each forced
# to another instruction set or to MKL's reproducible mode. A test that passes on one path only fails everywhere.
NUMERICS_PATHS := native MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_ENABLE_INSTRUCTIONS=SSE4_2 MKL_CBWR=COMPATIBLE \
	ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default
test-numerics: $(STAMP)  ## the numeric tests under every CPU code path above (CI runs it after make test)
	@for path in $(NUMERICS_PATHS); do \
	  printf '%-32s ' "$$path"; \
	  env $$( [ "$$path" = native ] || echo "$$path" ) $(BIN)/python -m pytest -q -m numerics -p no:cacheprovider \
	    > .numerics.log 2>&1 && tail -n 1 .numerics.log || { echo FAILED; cat .numerics.log; rm -f .numerics.log; exit 1; }; \
	done; rm -f .numerics.log

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

# JOBS stages side by side (default: one per core, on a GPU as many as its memory holds; JOBS=1: a plain dvc repro),
# THREADS intra-op threads each (default: cores / JOBS). PROFILE=smoke|cpu|gpu switches params.yaml first.
repro: $(STAMP)  ## the whole study (dvc repro, JOBS stages at once); PROFILE=smoke|cpu|gpu switches params.yaml first
	$(if $(PROFILE),$(BIN)/python pipelines/switch_profile.py $(PROFILE))
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python pipelines/repro.py $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(THREADS),--threads $(THREADS)) --started $(STARTED)

queue: $(STAMP)  ## start the queued `dvc exp run --queue` experiments, JOBS at a time, THREADS each (as repro)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python pipelines/repro.py --queue $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(THREADS),--threads $(THREADS))

summary: $(STAMP)  ## the study summary from the runs there are -> results/summary/
	$(BIN)/python pipelines/summarize.py

report: $(STAMP)  ## the summary, then the HTML report -> reports/index.html (the last DVC stages, also on their own)
	$(BIN)/python pipelines/summarize.py
	$(BIN)/python pipelines/report.py

browser:  ## headless Chromium for the report test (Debian's package; installed where missing and possible)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: no chromium (apt-get install chromium); the report's browser test will be skipped outside CI"

sync: $(STAMP)  ## upload the offline wandb runs (needs `wandb login` and the network; offline: says so, changes nothing)
	$(BIN)/python pipelines/wandb_report.py --sync-only $(ARGS)

wandb-report: $(STAMP)  ## sync, then build the W&B Report and print its URL: make wandb-report ARGS="--entity me"
	$(BIN)/python pipelines/wandb_report.py $(ARGS)

sweep: $(STAMP)  ## Hydra multirun: make sweep ARGS="-m model=rnn,lstm,nfg_lstm task.seq_len=100,200"
	$(BIN)/python pipelines/train.py $(ARGS)

screenshot: $(STAMP) browser  ## a screenshot of reports/index.html in headless Chromium -> docs/report.png
	$(BIN)/python tests/browser.py reports/index.html docs/report.png

documented-run: $(STAMP)  ## README's documented run (adding T=100, 3 models, ~5 min) -> docs/results/, README block
	$(BIN)/python pipelines/documented_run.py

readme: $(STAMP)  ## rewrite README.md's result blocks from docs/results/*.json (a test checks they agree)
	$(BIN)/python pipelines/readme_results.py

bench: $(STAMP)  ## speed benchmarks -> benchmarks/results.md and results.json
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check src pipelines tests benchmarks

clean:  ## remove generated outputs (not the venv)
	rm -rf runs multirun outputs results reports
