"""Every DAG imports cleanly and follows the project's rules; totes_etl is wired exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from include.registry import SOURCE_TABLES, WAREHOUSE, WAREHOUSE_TABLES
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_imports_and_follows_the_rules(dagbag):
    assert not dagbag.import_errors, dagbag.import_errors
    assert dagbag.dags, "no DAG found"
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.owner, f"{dag_id}.{task.task_id} has no owner"
            assert task.owner != "airflow", f"{dag_id}.{task.task_id} keeps the default owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} does not retry"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure callback"


def test_the_dag_file_parses_without_any_connection_or_variable():
    """No I/O at DAG top level: parsing works in an environment with no connections at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    code = (
        "from airflow.dag_processing.dagbag import DagBag; "
        f"b = DagBag(dag_folder={str(ROOT / 'dags')!r}); "
        "assert not b.import_errors, b.import_errors; print(len(b.dags))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_totes_etl_schedule_and_defaults(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.get_dag("totes_etl")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "*/15 * * * *"
    assert dag.max_active_runs == 1
    # The 30-minute promise (include/deadline.py), 30 unless a run is given its own minutes.
    from include.deadline import DEADLINE_PARAM, RunDeadline, run_deadline_missed

    (alert,) = dag.deadline
    assert isinstance(alert.reference, RunDeadline)
    assert alert.callback.path == f"{run_deadline_missed.__module__}.{run_deadline_missed.__name__}"
    assert dag.params[DEADLINE_PARAM] == 30
    for task in dag.tasks:
        assert task.retry_exponential_backoff
        assert task.retries == 3


def test_totes_etl_is_wired_exactly(dagbag):
    dag = dagbag.get_dag("totes_etl")
    ids = set(dag.task_dict)
    assert {f"ingest.{t.name}" for t in SOURCE_TABLES} <= ids
    assert {f"transform.{t.name}" for t in WAREHOUSE_TABLES} <= ids
    assert {f"load.{t.name}" for t in WAREHOUSE_TABLES} <= ids
    assert {"check.reconcile", "check.freshness", "check.quarantine", "check.outcome"} <= ids
    assert len(ids) == 1 + len(SOURCE_TABLES) + 2 * len(WAREHOUSE_TABLES) + 4

    def upstream(task_id: str) -> set[str]:
        return set(dag.get_task(task_id).upstream_task_ids)

    for t in SOURCE_TABLES:
        assert upstream(f"ingest.{t.name}") == {"ensure_warehouse_schema"}
    for w in WAREHOUSE_TABLES:
        # a transform waits only for the ingests it reads
        assert upstream(f"transform.{w.name}") == {f"ingest.{s}" for s in w.sources}
        # a load waits for its transform, the schema, and the dimensions it references
        assert upstream(f"load.{w.name}") == {f"transform.{w.name}", "ensure_warehouse_schema"} | {
            f"load.{r}" for r in w.references
        }
    # facts load after every dimension they have a foreign key to
    assert upstream("load.fact_sales_order") >= {
        f"load.{d}" for d in ("dim_date", "dim_staff", "dim_counterparty", "dim_currency", "dim_design", "dim_location")
    }
    assert upstream("load.fact_payment") >= {
        f"load.{d}" for d in ("dim_date", "dim_transaction", "dim_counterparty", "dim_currency", "dim_payment_type")
    }
    assert WAREHOUSE["dim_counterparty"].sources == ("counterparty", "address")
    # the checks come after every load; loads run once their dimensions are done, whatever their state
    for check in ("check.reconcile", "check.freshness", "check.quarantine"):
        assert upstream(check) == {f"load.{w.name}" for w in WAREHOUSE_TABLES}
    assert {dag.get_task(f"load.{w.name}").trigger_rule for w in WAREHOUSE_TABLES if not w.is_fact} == {"all_done"}
    assert {dag.get_task(f"load.{w.name}").trigger_rule for w in WAREHOUSE_TABLES if w.is_fact} == {"none_failed"}
    assert dag.get_task("check.reconcile").trigger_rule == "all_success"
    # the run's verdict comes last, after every task whatever its state
    assert upstream("check.outcome") == ids - {"check.outcome"}
    assert dag.get_task("check.outcome").trigger_rule == "all_done"
    assert not dag.get_task("check.outcome").downstream_task_ids


def test_totes_etl_starts_before_the_first_change_in_totesys(dagbag):
    """Airflow makes no task instances for a logical date before start_date (such a run or
    backfill "succeeds" having done nothing): the DAG starts before totesys's history does, so a
    backfill of any real interval does real work; catchup stays off."""
    from datetime import UTC

    from devtools.totesys.generator import REFERENCE_EPOCH

    dag = dagbag.get_dag("totes_etl")
    assert not dag.catchup
    assert dag.start_date <= REFERENCE_EPOCH.replace(tzinfo=UTC)


def test_totes_etl_starts_before_the_real_extracts_first_row(dagbag, real_extract_dir):
    from datetime import UTC

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = [pq.read_table(f, columns=["created_at"]) for f in real_extract_dir.glob("*.parquet")]
    assert len(tables) == 11
    first = min(pc.min(t["created_at"]).as_py() for t in tables)
    assert dagbag.get_dag("totes_etl").start_date <= first.replace(tzinfo=UTC), first
