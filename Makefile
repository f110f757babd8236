# clawstream: `make demo` on a fresh machine installs what is missing and runs the pipeline;
# `make test` runs every test against a real Kafka broker (started here if none answers).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CS := $(VENV)/bin/clawstream
PYTEST_ARGS ?=

.PHONY: install up down status demo test lint bench

install:
	@scripts/bootstrap.sh

up: install
	@$(CS) up

down:
	@if [ -x $(CS) ]; then $(CS) down; else echo "no .venv: nothing to stop"; fi

status: install
	@$(CS) status

demo: install
	$(CS) demo

# The broker is started only if none answers, and then stopped again even when tests fail;
# pytest's exit status is kept.
test: install
	@scripts/with_broker.sh $(PY) -m pytest $(PYTEST_ARGS)

# ruff (style, bugs), mypy (types; strict on the pure packages), import-linter (the layers:
# see [tool.importlinter] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# On the secured local broker the benchmarks (each in a namespace of its own) connect as its
# admin, as the tests do: CLAWSTREAM_KAFKA_CLIENT_CONFIG, unless one is set already.
bench: install
	@scripts/with_broker.sh bash -c 'set -e; shopt -s nullglob; \
	  : "$${CLAWSTREAM_KAFKA_CLIENT_CONFIG:=$$($(PY) -m clawstream.security.local --admin-config)}"; \
	  export CLAWSTREAM_KAFKA_CLIENT_CONFIG; for f in bench/*.py; do \
	  case "$$(basename $$f)" in _*|ab.py) continue;; esac; \
	  args=""; [ "$$(basename $$f)" = bench_perception.py ] && args=--corpus; \
	  echo "== $$f $$args"; $(PY) "$$f" $$args; done'
