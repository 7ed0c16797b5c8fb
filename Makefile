# CTIS — the two commands a new user needs are `make run` and `make test`.
# `make help` lists every target.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CTIS   := $(VENV)/bin/ctis
STAMP  := $(VENV)/.installed-stamp
export CTIS_DATA_DIR ?= $(CURDIR)/var

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

run: $(STAMP) ## Create the venv, build the demo database, serve the application on http://127.0.0.1:8000
	$(CTIS) init
	$(CTIS) demo --if-empty
	$(CTIS) report --period 2024-H1
	@echo "The CLI: $(CTIS) --help"
	$(CTIS) serve --host 127.0.0.1 --port 8000

# deptry: every import is declared, src against the runtime dependencies (a dev-extra package
# there is an error), tests and benchmarks against those and the dev extra ([tool.deptry])
test: $(STAMP) ## Install what tests need and run the whole suite (SQLite and PostgreSQL)
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)
	$(VENV)/bin/deptry src
	$(VENV)/bin/deptry tests $(wildcard benchmarks) --ignore DEP002,DEP004
	$(PY) -m pytest --cov --cov-report=term:skip-covered --cov-fail-under=85

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP) ## Time the registry against hand-written SQL and DuckDB (large data; minutes)
	$(PY) benchmarks/report_bench.py

clean: ## Remove the venv and the local database
	rm -rf $(VENV) var .pytest_cache .coverage
