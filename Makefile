# mlmon: every target a user or CI needs. `make help` lists them.
# Area-specific targets (servers, generators, the stack) live in mk/*.mk, one file per area.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3

.DEFAULT_GOAL := help
.PHONY: help install test unit-test bench generate check-generated lint typecheck docs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-22s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY) ## create .venv and install mlmon with its dev extras
	$(PIP) install --quiet -e '.[dev]'

test: ## run every test, unit and integration (starts real Prometheus, Alertmanager, Elasticsearch)
	$(PY) -m pytest

unit-test: ## run the tests that start no server
	$(PY) -m pytest -m 'not integration'

bench: ## run every benchmark (a miss stops none); same-run ratios judged; summary table, JSON under bench/results/
	$(PY) bench/run_all.py --out bench/results

lint: ## ruff
	$(VENV)/bin/ruff check mlmon profiling exporter log_shipper outcomes alerting demo grafana stack prometheus tests bench mk

typecheck: ## mypy (strict, settings in pyproject.toml) on the package mlmon, all its folders
	$(PY) mk/typecheck.py

docs: ## build the documentation site into site/ (--strict: a broken link or anchor fails)
	$(VENV)/bin/mkdocs build --strict --site-dir site

generate: ## regenerate committed files (rules, dashboards, saved objects, docs' tables)

# The docs' series, recording-rule and alert tables, from mlmon.names and the rule generator.
.PHONY: generate-doc-tables
generate: generate-doc-tables
generate-doc-tables: ## rewrite the metric, recording-rule and alert tables in docs/*.md
	$(PY) -m mlmon.doc_tables

GENERATED_DIRS := prometheus alerting grafana kibana docs

check-generated: generate ## fail when regenerating changes (or adds) a committed file
	@if [ -n "$$(git status --porcelain -- $(GENERATED_DIRS))" ]; then \
	  git status --short -- $(GENERATED_DIRS); git diff --stat -- $(GENERATED_DIRS); \
	  echo "generated files are stale: run 'make generate' and commit"; exit 1; fi

-include mk/*.mk
