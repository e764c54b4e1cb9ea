# Everyday commands. Everything runs from .venv/ (created by `make setup`).
# The two that matter on a fresh machine:
#   make demo   set up, start the local stack, run totes_etl once, show the warehouse, leave the UI up
#   make test   set up, lint, and run the test suite

VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo up down status test lint audit pytest bench soak latency lock generate simulate clean

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
	$(VENV)/bin/bandit -q -c pyproject.toml -r dags include plugins devtools bench scripts payments_api analysis

audit: setup
	@bash scripts/audit.sh

# Two workers: the machine kind's two cores (the suite waits on PostgreSQL, S3 and Airflow's own
# processes as much as it computes). PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: setup
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint audit checkov pytest

bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.health

soak: setup
	$(PY) -m bench.soak $(SOAK_ARGS)

latency: setup
	$(PY) -m bench.latency $(LATENCY_ARGS)

lock:
	bash scripts/lock.sh

generate: setup
	$(PY) -m devtools.totesys.generator $(ARGS)

simulate: setup
	$(PY) -m devtools.totesys.simulator $(ARGS)

clean: down
	rm -rf .stack

# Deployment tooling (docs/deployment.md). checkov lives in .venv-tools/: its pins clash with
# Airflow's constraints.
.PHONY: tools checkov package compose-env

tools:
	@bash scripts/tools.sh

checkov: tools
	.venv-tools/bin/checkov -d terraform --quiet

package:
	python3 scripts/package_mwaa.py --output dist/mwaa

compose-env:
	python3 scripts/compose_env.py

# The finance payments API (payments_api/, docs/payments_api.md) on 127.0.0.1:$TOTES_PAYMENTS_API_PORT
# (8081), reading $TOTES_WAREHOUSE_URL (default: the local stack's warehouse), letting in the bearer
# tokens of $TOTES_PAYMENTS_API_TOKENS_FILE (default: the local stack's, made by `make up`).
.PHONY: api
api: setup
	TOTES_WAREHOUSE_URL="$${TOTES_WAREHOUSE_URL:-postgresql://postgres@127.0.0.1:55432/warehouse}" \
	TOTES_PAYMENTS_API_TOKENS_FILE="$${TOTES_PAYMENTS_API_TOKENS_FILE:-.stack/secrets/payments-api-tokens.json}" \
	$(PY) -m payments_api

# docs/architecture.md's star schemas, regenerated from include/registry.py (tests/test_docs.py
# fails when they drift).
.PHONY: diagrams
diagrams: setup
	$(PY) scripts/schema_diagram.py --write
	$(PY) scripts/lineage_diagram.py --write
