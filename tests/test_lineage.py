"""OpenLineage: `airflow dags test` with the OpenLineage provider writing its events to a file,
then every warehouse column traced back through load, transform and ingest to the totesys
columns the registry says it comes from (include/lineage.py, include/operators/_lineage.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES
from tests.expected import registry_inputs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_with_openlineage(events: Path, logical_date: str) -> list[dict]:
    env = dict(os.environ)
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(events), "append": True})
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "totes-test"
    out = subprocess.run(
        # `airflow dags test`, without the deadline alert Airflow 3.3.1's dag.test() cannot close a run with
        [sys.executable, "-m", "devtools.dag_test", "totes_etl", logical_date],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def test_every_warehouse_column_traces_back_to_exactly_the_source_columns_the_registry_names(pipeline, tmp_path):
    p = pipeline(schema="lineage_test")
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=2, scale=0.02))
    events = run_with_openlineage(tmp_path / "openlineage.jsonl", "2024-11-15T15:00:00+00:00")

    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    for t in SOURCE_TABLES:
        assert f"totes_etl.ingest.{t.name}" in complete, sorted(complete)
    assert all(e["job"]["namespace"] == "totes-test" for e in events)

    # output dataset (namespace, name) -> column -> its input fields {(namespace, name, field)}
    lineage: dict[tuple[str, str], dict[str, set]] = {}
    subtypes: dict[tuple[str, str, str], str] = {}
    for event in complete.values():
        for output in event["outputs"]:
            fields = output.get("facets", {}).get("columnLineage", {}).get("fields", {})
            key = (output["namespace"], output["name"])
            lineage[key] = {col: {(i["namespace"], i["name"], i["field"]) for i in f["inputFields"]} for col, f in fields.items()}
            for col, f in fields.items():
                for i in f["inputFields"]:
                    subtypes[(*key, col)] = i["transformations"][0]["subtype"]

    wh = psycopg.conninfo.conninfo_to_dict(p.warehouse_url)
    src = psycopg.conninfo.conninfo_to_dict(p.totesys_url)
    wh_ns = f"postgres://{wh['host']}:{wh.get('port', 5432)}"
    src_ns = f"postgres://{src['host']}:{src.get('port', 5432)}"

    def trace(namespace: str, name: str, column: str) -> set[tuple[str, str]]:
        """Follow a column back to the totesys columns it comes from."""
        if namespace == src_ns and name.startswith(f"{src['dbname']}."):
            _database, schema, table = name.split(".")
            assert schema == "public"
            return {(table, column)}
        inputs = lineage[(namespace, name)].get(column, set())
        return set().union(*(trace(*i) for i in inputs)) if inputs else set()

    traced = defaultdict(dict)
    for w in WAREHOUSE_TABLES:
        output = (wh_ns, f"{wh['dbname']}.{p.schema}.{w.name}")
        assert output in lineage, f"load.{w.name} emitted no column lineage"
        assert set(lineage[output]) == set(w.load_columns)
        for c in w.columns:
            traced[w.name][c.name] = trace(*output, c.name)
            assert traced[w.name][c.name] == registry_inputs(w, c), f"{w.name}.{c.name}"
    # a few read by eye
    assert traced["dim_counterparty"]["counterparty_legal_city"] == {("address", "city")}
    assert traced["dim_location"]["location_id"] == {("address", "address_id")}
    assert traced["fact_sales_order"]["sales_record_id"] == set()
    assert ("payment", "payment_date") in traced["dim_date"]["date_id"]
    # how: a copy is IDENTITY, a computed value TRANSFORMATION (at the transform)
    processed = f"s3://{p.processed}"
    assert subtypes[(processed, "dim_location", "city")] == "IDENTITY"
    assert subtypes[(processed, "fact_sales_order", "created_date")] == "TRANSFORMATION"
    assert subtypes[(processed, "dim_currency", "currency_name")] == "TRANSFORMATION"
