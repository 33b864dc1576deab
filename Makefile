# The collection's commands. `make book` and `make test` set everything up themselves.
#   make book                      build the whole site (book profile) into book/_build/html
#   make test                      unit tests + smoke run of every notebook + book build from those
#   make report NAME=parameter_relevance PROFILE=paper DEVICE=cuda SET="n_seeds=3 hidden=[8, 8]"
#   make show NAME=parameter_relevance PROFILE=paper SET="..."   the parameters a run would use
#   make companion NAME=parameter_relevance PROFILE=paper DEVICE=cuda   run one report at another scale and
#                                  store it in book/scale/<profile>/ (a companion page beside the book's; commit it)
#   make report NAME=... PROFILE=paper ADDRESS=10.0.0.5:6379   the runs on a Ray cluster (`ray start --head`)
#   make list                      list reports and profiles
#   make data                      verify data/ and restore missing, empty or corrupt files from the mirror
#   make bench                     -> BENCHMARKS.md (each tool rewrites its own section): peak memory of the
#                                  Hessian at the paper sizes; K = 30 MLPs batched vs one after the other;
#                                  each report's book profile in one process vs on the engine (about 45 min
#                                  on 2 cores); every run of the book profile timed alone (two processes, about
#                                  30 min)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= book
DEVICE ?=
NAME ?=
SET ?=
ADDRESS ?=
# notebooks `make book` executes at once (they share one Ray instance; 2 suits this 2-core machine)
JOBS ?= 2
DATA_MIRROR ?= $(abspath $(CURDIR)/../shared/data)
STAMP := $(VENV)/.installed
# The user's values reach the shell through the environment, never pasted into a command line:
# `make report SET="hidden=[8, 8]"` and names with spaces or quotes stay one word each.
export NAME SET PROFILE DEVICE ADDRESS DATA_MIRROR JOBS

.PHONY: all venv book reports report show companion test list lock data bench clean distclean

all: book

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=...)"' \
	  || { echo "error: $(PYTHON) is not Python 3.11; install it or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# Verify every data file against data/SHA256SUMS; restore missing, empty or corrupt ones from the
# collection's offline mirror (DATA_MIRROR, default ../shared/data), saying where it was looked for.
data:
	@python3 tools/restore_data.py

reports: $(STAMP)
	$(BIN)/python -m paramspace all --profile "$$PROFILE" --jobs "$$JOBS" $${DEVICE:+--device "$$DEVICE"} $${ADDRESS:+--address "$$ADDRESS"}

book: reports
	$(BIN)/jupyter-book build book --warningiserror --keep-going
	$(BIN)/python tools/check_offline.py
	@echo "The site is at $(CURDIR)/book/_build/html/index.html"

report: $(STAMP)
	@test -n "$$NAME" || { echo "usage: make report NAME=<report> [PROFILE=book|smoke|paper] [DEVICE=cpu|cuda] [SET='k=v ...'] [ADDRESS=host:port]"; $(BIN)/python -m paramspace list; exit 2; }
	$(BIN)/python -m paramspace run "$$NAME" --profile "$$PROFILE" $${DEVICE:+--device "$$DEVICE"} $${ADDRESS:+--address "$$ADDRESS"} --set-string "$$SET"

show: $(STAMP)
	@test -n "$$NAME" || { echo "usage: make show NAME=<report> [PROFILE=book|smoke|paper] [DEVICE=...] [SET='k=v ...']"; exit 2; }
	@$(BIN)/python -m paramspace show "$$NAME" --profile "$$PROFILE" $${DEVICE:+--device "$$DEVICE"} --set-string "$$SET"

bench: $(STAMP)
	$(BIN)/python tools/bench_hessian.py --write
	$(BIN)/python tools/bench_family.py --k 30 --repeats 3 --threads 1 --write
	$(BIN)/python tools/bench_relevance.py --repeats 3 --threads 1 --write
	$(BIN)/python tools/bench_book.py --write
	mkdir -p .cache; \
	OMP_NUM_THREADS=1 $(BIN)/python tools/bench_runs.py --report variational_complexity --report parameter_relevance \
	  --report compression_leaderboard --json .cache/bench_runs_a.json & a=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python tools/bench_runs.py --report frame_regularization --report importance_dropconnect \
	  --report metric_analysis --json .cache/bench_runs_b.json & b=$$!; \
	wait $$a && wait $$b && $(BIN)/python tools/bench_runs.py --from .cache/bench_runs_a.json .cache/bench_runs_b.json --write
	$(BIN)/python tools/bench_gpu.py --write

companion: $(STAMP)
	@test -n "$$NAME" || { echo "usage: make companion NAME=<report> PROFILE=paper|smoke [DEVICE=cpu|cuda] [SET='k=v ...']"; $(BIN)/python -m paramspace list; exit 2; }
	$(BIN)/python -m paramspace companion "$$NAME" --profile "$$PROFILE" $${DEVICE:+--device "$$DEVICE"} --set-string "$$SET"

list: $(STAMP)
	$(BIN)/python -m paramspace list

test: $(STAMP)
	$(BIN)/python -m pytest -q

lock: $(STAMP)
	{ head -3 requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v -E '^(paramspace|pip)=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf book/_build book/reports .pytest_cache

distclean: clean
	rm -rf $(VENV)
