# minitg: `make run` starts the whole system embedded; `make test` runs everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(shell find proto -name '*.proto' | sort)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install install-dev lint typecheck proto-lint proto-breaking gen gen-check \
        services pytest bench clean k8s-validate alert-rules

## run: create .venv, install, start gateway + auth + chat + presence in one process
run: $(VENV)/.installed
	@echo "minitg: starting the whole system embedded (SQLite, in-memory bus and state)"
	@echo "minitg: gateway on http://127.0.0.1:8080  (health: /v1/health; metrics: http://127.0.0.1:9090/metrics)"
	$(VENV)/bin/minitg serve --target all

## test: dev dependencies, real services, lint, type checks, the whole suite
test: install-dev services lint pytest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

install-dev: $(VENV)/.installed-dev node_modules/.installed

services:
	bash scripts/ensure_services.sh

lint: install-dev typecheck proto-lint gen-check proto-breaking k8s-validate alert-rules
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(VENV)/bin/mypy

proto-lint: node_modules/.installed
	$(BUF) lint
	$(BUF) format -d --exit-code

proto-breaking: node_modules/.installed
	bash scripts/proto_breaking.sh

k8s-validate: install-dev
	bash scripts/validate_k8s.sh

alert-rules:
	bash scripts/check_alert_rules.sh

## gen: regenerate gen/ from proto/ (never edit gen/ by hand)
gen: install-dev
	bash scripts/gen.sh gen

gen-check: install-dev
	bash scripts/gen.sh check

pytest: install-dev services
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: install
	@$(MAKE) --no-print-directory services
	$(PY) -m load bench --max-seconds 900

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
