# The targets people reach for. `make up` and `make test` are the README's two commands: each
# creates .venv and installs what it needs on first use (re-installing when pyproject changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: up down test unit integration e2e lint format typecheck check bench bench-engine bench-saga loadtest loadtest-compare loadtest-wrk clean help

SCENARIO ?= flash-sale
ROUNDS ?= 2

help:
	@echo "make up         start rezerv on embedded servers (Ctrl-C stops it)"
	@echo "make test       lint, type check and the whole test suite (what CI runs)"
	@echo "make unit | integration | e2e   one test folder"
	@echo "make lint | format | typecheck   (lint: ruff and the import contracts of pyproject.toml)"
	@echo "make bench-engine | bench-saga  benchmarks recorded in BENCHMARKS.md"
	@echo "make loadtest [SCENARIO=flash-sale|rental-storm|browse-and-book]  Locust step load + audit"
	@echo "make loadtest-compare  the flash sale on rezerv and on the lock-based baselines, A B B A (ROUNDS=2)"
	@echo "make loadtest-wrk      the flash sale driven by wrk (holds only, 256 connections, 60 s; needs wrk)"
	@echo "make down       stop a running 'make up'"

$(PY):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip

$(VENV)/.run-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e ".[embedded]"
	@touch $@

$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e ".[embedded,dev]"
	@touch $(VENV)/.run-installed $@

up: $(VENV)/.run-installed
	$(VENV)/bin/rezerv up

down: $(VENV)/.run-installed
	$(VENV)/bin/rezerv down

test: $(VENV)/.dev-installed lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

unit: $(VENV)/.dev-installed
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.dev-installed
	$(PY) -m pytest -q tests/integration

e2e: $(VENV)/.dev-installed
	$(PY) -m pytest -q tests/e2e

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy

bench-engine: $(VENV)/.dev-installed
	$(VENV)/bin/rezerv bench engine --json loadtest/results/engine.json

bench-saga: $(VENV)/.dev-installed
	$(VENV)/bin/rezerv bench saga --json loadtest/results/saga.json

loadtest: $(VENV)/.dev-installed
	$(VENV)/bin/rezerv loadtest run --scenario $(SCENARIO)

loadtest-compare: $(VENV)/.dev-installed
	$(VENV)/bin/rezerv loadtest compare --rounds $(ROUNDS)

loadtest-wrk: $(VENV)/.dev-installed
	$(VENV)/bin/rezerv loadtest run --generator wrk --users 256 --window 60

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
