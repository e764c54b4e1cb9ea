# Everyday commands. Everything runs from .venv/ (created by `make setup`).
# The two that matter on a fresh machine:
#   make demo   set up, start the local stack, run totes_etl once, show the warehouse, leave the UI up
#   make test   set up, lint, and run the test suite

VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo up down status test lint pytest bench lock generate simulate clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m devtools.stack demo

up: setup
	$(PY) -m devtools.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devtools.stack down; else echo "nothing to stop"; fi

status: setup
	$(PY) -m devtools.stack status

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r dags include plugins devtools bench

pytest: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint pytest

bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

lock:
	bash scripts/lock.sh

generate: setup
	$(PY) -m devtools.totesys.generator $(ARGS)

simulate: setup
	$(PY) -m devtools.totesys.simulator $(ARGS)

clean: down
	rm -rf .stack
