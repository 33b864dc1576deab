# The collection's commands. `make book` and `make test` set everything up themselves.
#   make book                      build the whole site (book profile) into book/_build/html
#   make test                      unit tests + smoke run of every notebook + book build from those
#   make report NAME=parameter_relevance PROFILE=paper DEVICE=cuda SET="n_seeds=3"
#   make companion NAME=parameter_relevance PROFILE=paper DEVICE=cuda   run one report at another scale and
#                                  store it in book/scale/<profile>/ (a companion page beside the book's; commit it)
#   make list                      list reports and profiles
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= book
DEVICE ?=
NAME ?=
SET ?=
STAMP := $(VENV)/.installed

.PHONY: all venv book reports report companion test list lock data clean distclean

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

# Restore any missing data file from the collection's offline mirror (../shared/data), then verify
# every file against data/SHA256SUMS.
data:
	@cd data && for f in $$(awk '{print $$2}' SHA256SUMS); do \
	  if [ ! -f "$$f" ] && [ -f "../../shared/data/$$f" ]; then \
	    mkdir -p "$$(dirname "$$f")" && cp "../../shared/data/$$f" "$$f" && echo "restored data/$$f"; fi; done
	cd data && sha256sum -c --quiet SHA256SUMS && echo "data: all files match SHA256SUMS"

reports: $(STAMP)
	$(BIN)/python -m paramspace all --profile $(PROFILE) $(if $(DEVICE),--device $(DEVICE))

book: reports
	$(BIN)/jupyter-book build book --warningiserror --keep-going
	$(BIN)/python tools/check_offline.py
	@echo "The site is at $(CURDIR)/book/_build/html/index.html"

report: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make report NAME=<report> [PROFILE=book|smoke|paper] [DEVICE=cpu|cuda] [SET='k=v ...']"; $(BIN)/python -m paramspace list; exit 2; }
	$(BIN)/python -m paramspace run $(NAME) --profile $(PROFILE) $(if $(DEVICE),--device $(DEVICE)) $(foreach s,$(SET),--set $(s))

companion: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make companion NAME=<report> PROFILE=paper|smoke [DEVICE=cpu|cuda] [SET='k=v ...']"; $(BIN)/python -m paramspace list; exit 2; }
	$(BIN)/python -m paramspace companion $(NAME) --profile $(PROFILE) $(if $(DEVICE),--device $(DEVICE)) $(foreach s,$(SET),--set $(s))

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
