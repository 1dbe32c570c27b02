# gradlab: `make repro` runs the study, `make test` passes the tests. Both bootstrap .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# ARGS reach the command as written: make does not expand them and no shell does (gradlab.launch.argv splits them as a shell
# would, quotes and all), so a Hydra interpolation gets through: ARGS='-m run_name=${model.name}-lr${optim.lr} …'
export GRADLAB_ARGS := $(value ARGS)
RUN := $(BIN)/python -m gradlab.launch.argv
PROFILE ?=
JOBS ?=
THREADS ?=
SRUN ?=
ONLY ?=
comma := ,
# when make began (read once, as it starts): `make repro` records its time since then, set-up included
STARTED := $(shell date +%s.%N)
.DEFAULT_GOAL := help

help:  ## this list (`make` with no target prints it): every target, one line each
	@awk -F':[^#]*## ' '/^[a-z][a-z-]*:.*## /{printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: help view tmux cliff venv test test-numerics test-cluster cluster-up cluster-down test-slow test-ci-slow documented-run readme experiment analyze generate geometry memory repro queue summary report browser screenshot sync wandb-report sweep bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip takes the local CPU wheel where there is one (elsewhere PyPI's build)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## .venv from pyproject.toml's pins (every target that needs it makes it on first use)

test: $(STAMP) browser tmux  ## the default suite (5 min on 2 cores; `slow` and `cluster` cases are left out)
	$(BIN)/python -m pytest --durations=15

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

test-cluster: $(STAMP) cluster-up  ## the Slurm tests against a single-node cluster on this machine (~5 min here; CI runs them)
	$(BIN)/python -m pytest -m cluster -p no:cacheprovider

cluster-up:  ## install (root, Debian's slurm-wlm + munge) and start a single-node Slurm cluster, partition `debug`
	scripts/cluster.sh up

cluster-down:  ## stop that cluster (by the PIDs cluster-up recorded)
	scripts/cluster.sh down

test-slow: $(STAMP) browser  ## every `slow` case: science sanity runs, long end-to-end cases (tens of minutes)
	$(BIN)/python -m pytest -m slow

test-ci-slow: $(STAMP) browser  ## the `slow` cases CI runs after make test (marked `ci`: moved out of it for time)
	$(BIN)/python -m pytest -m 'slow and ci' -p no:cacheprovider

experiment: $(STAMP)  ## one training run: make experiment ARGS="model=nfg_lstm task.seq_len=200 clip=norm"
	$(RUN) pipelines/train.py

analyze: $(STAMP)  ## BPTT probe of a trained run on test data: make analyze ARGS="<the run's overrides>"
	$(RUN) pipelines/analyze.py

generate: $(STAMP)  ## one data set: make generate ARGS="task=copy task.seq_len=200"
	$(RUN) pipelines/generate.py

cliff: $(STAMP)  ## Pascanu et al.'s cliff (one sigmoid unit, SGD with/without clipping) -> results/cliff/ (seconds)
	PYTHONPATH=src $(BIN)/python pipelines/cliff.py

geometry: $(STAMP)  ## random vectors vs theory: make geometry ARGS="geometry.dims=[2,10,100] geometry.n_pairs=2000"
	$(RUN) pipelines/geometry.py

memory: $(STAMP)  ## one linear unit's curse of memory vs closed forms -> results/memory/: make memory ARGS="memory.n_sequences=2000"
	$(RUN) pipelines/memory.py

# JOBS stages side by side (default: one per core, on a GPU as many as its memory holds; JOBS=1: a plain dvc repro),
# THREADS intra-op threads each (default: cores / JOBS). PROFILE=smoke|cpu|gpu switches params.yaml first.
# SRUN="<srun options>" (on a Slurm cluster's login node): the train and analyze stages run as Slurm job steps.
repro: $(STAMP)  ## the whole study (dvc repro, JOBS stages at once); PROFILE=smoke|cpu|gpu switches params.yaml first
	$(if $(PROFILE),$(BIN)/python pipelines/switch_profile.py $(PROFILE))
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python pipelines/repro.py $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(THREADS),--threads $(THREADS)) $(if $(filter command line environment,$(origin SRUN)),--srun '$(SRUN)') \
	  --started $(STARTED)

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

tmux:  ## tmux for the viewer's terminal test (Debian's package; installed where missing and possible)
	@command -v tmux >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null) ; } || \
	  echo "note: no tmux (apt-get install tmux); the viewer's terminal test will be skipped outside CI"

view: $(STAMP)  ## the study's wandb runs in W&B's terminal viewer (wandb leet), offline: make view ARGS="*-lstm-*"
	$(RUN) pipelines/view.py

sync: $(STAMP)  ## upload the offline wandb runs (needs `wandb login` and the network; offline: says so, changes nothing)
	$(RUN) pipelines/wandb_report.py --sync-only

wandb-report: $(STAMP)  ## sync, then build the W&B Report and print its URL: make wandb-report ARGS="--entity me"
	$(RUN) pipelines/wandb_report.py

sweep: $(STAMP)  ## Hydra multirun: make sweep ARGS="-m model=rnn,lstm,nfg_lstm task.seq_len=100,200"
	$(RUN) pipelines/train.py

screenshot: $(STAMP) browser  ## the report's first screen (1280x800, headless Chromium) -> reports/first_screen.png (OUT=, ARGS=--full-page)
	$(BIN)/python -m gradlab.report.browser reports/index.html $(or $(OUT),reports/first_screen.png) $(value ARGS)

.PHONY: demo
demo: $(STAMP)  ## the phenomenon in about a minute (2 cores): rnn, lstm, nfg_lstm on adding T=100, probed, one page -> demo/index.html
	PYTHONPATH=src $(BIN)/python pipelines/demo.py

documented-run: $(STAMP)  ## the documented run (adding T=100, 3 models, ~5 min) -> docs/results/, docs/probe.md
	$(BIN)/python pipelines/documented_run.py

readme: $(STAMP)  ## rewrite the result blocks of README.md and docs/*.md from docs/results/*.json (a test checks)
	$(BIN)/python pipelines/readme_results.py

bench: $(STAMP)  ## speed benchmarks -> benchmarks/results.md and results.json (ONLY=lyapunov,probe: just those)
	$(BIN)/python benchmarks/run.py $(subst $(comma), ,$(ONLY))

lint: $(STAMP)  ## ruff on src, pipelines, tests and benchmarks
	$(BIN)/ruff check src pipelines tests benchmarks

clean:  ## remove generated outputs (not the venv)
	rm -rf runs multirun outputs results reports .view
