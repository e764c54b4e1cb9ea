"""Assets: every lake and warehouse table a run changed is an Asset event in Airflow's metadata,
with its figures as extra; a table with nothing new emits nothing (include/assets.py)."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def asset_events(dr) -> dict[str, dict]:
    """asset URI -> extra of every event the DAG run ``dr`` emitted (one per URI at most)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetModel.uri, AssetEvent.extra, AssetEvent.source_task_id)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_dag_id == dr.dag_id, AssetEvent.source_run_id == dr.run_id)
            .all()
        )
    events: dict[str, dict] = {}
    for uri, extra, task_id in rows:
        assert uri not in events, f"two events for {uri} in one run"
        events[uri] = {**extra, "task": task_id}
    return events


def xcom(dr, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        (row,) = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="return_value").all()
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def warehouse_uri(p, table: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(p.warehouse_url)
    return f"postgres://{info['host']}:{info.get('port', 5432)}/{info['dbname']}/{p.schema}/{table}"


def test_each_table_a_run_changes_is_one_asset_event_with_its_figures_and_a_quiet_run_emits_none(pipeline):
    p = pipeline(schema="assets_test")
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=9, scale=0.05))

    # 1. The first run changes every table: one event per lake table in each bucket and per
    #    warehouse table, from the task that wrote it, with the figures of its XCom result.
    first = p.run("2024-11-15T15:00:00")
    events = asset_events(first)
    expected = {f"s3://{p.ingestion}/{t.name}": f"ingest.{t.name}" for t in SOURCE_TABLES}
    expected |= {f"s3://{p.processed}/{w.name}": f"transform.{w.name}" for w in WAREHOUSE_TABLES}
    expected |= {warehouse_uri(p, w.name): f"load.{w.name}" for w in WAREHOUSE_TABLES}
    assert {uri: e["task"] for uri, e in events.items()} == expected
    with psycopg.connect(p.totesys_url) as src, psycopg.connect(p.warehouse_url) as wh:
        for t in SOURCE_TABLES:
            event = events[f"s3://{p.ingestion}/{t.name}"]
            result = xcom(first, f"ingest.{t.name}")
            assert event["rows"] == result["rows"] == src.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0]
            assert event["manifest"] == result["manifest_key"]
            assert event["window"] == result["window"]
            assert event["run_id"] == first.run_id
        for w in WAREHOUSE_TABLES:
            assert events[f"s3://{p.processed}/{w.name}"]["rows"] == xcom(first, f"transform.{w.name}")["rows"]
            loaded = events[warehouse_uri(p, w.name)]
            assert loaded["written"] == wh.execute(f"SELECT count(*) FROM {p.schema}.{w.name}").fetchone()[0]
            assert loaded["window"] == {"start": "2024-11-15T14:45:00+00:00", "end": "2024-11-15T15:00:00+00:00"}

    # 2. Runs that read nothing new (once the lookback has passed) emit nothing at all.
    for end in ("2024-11-15T15:15:00", "2024-11-15T15:30:00", "2024-11-15T15:45:00"):
        p.run(end)
    assert asset_events(p.run("2024-11-15T16:00:00")) == {}

    # 3. One address changes: the warehouse events are exactly the tables that read address
    #    (a table that re-read an unchanged row writes nothing and says nothing).
    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE address SET phone = '01234 567890', last_updated = %s "
            "WHERE address_id = (SELECT min(legal_address_id) FROM counterparty)",
            (datetime(2024, 11, 15, 16, 5),),
        )
    changed = asset_events(p.run("2024-11-15T16:15:00"))
    readers = {w.name for w in WAREHOUSE_TABLES if "address" in w.sources}
    assert readers == {"dim_location", "dim_counterparty"}
    assert {uri for uri in changed if uri.startswith("postgres://")} == {warehouse_uri(p, t) for t in readers}
    assert changed[f"s3://{p.ingestion}/address"]["rows"] == 1
    assert {uri for uri in changed if uri.startswith(f"s3://{p.ingestion}/")} == {f"s3://{p.ingestion}/address"}
    with psycopg.connect(p.totesys_url) as src:
        (users,) = src.execute(
            "SELECT count(*) FROM counterparty WHERE legal_address_id = (SELECT min(legal_address_id) FROM counterparty)"
        ).fetchone()
    assert changed[warehouse_uri(p, "dim_location")]["written"] == 1
    assert changed[warehouse_uri(p, "dim_counterparty")]["written"] == users


def test_a_totes_etl_run_that_changes_fact_sales_order_queues_totes_reports_which_refreshes_its_report(pipeline):
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    from include.registry import SALES_BY_MONTH_GBP, tables_under

    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=4, scale=0.02))
    p.run("2024-11-15T14:45:00")  # writes totes_reports (a DAG of the same folder) to the metadata too
    with create_session() as session:
        session.query(AssetDagRunQueue).delete()
        session.query(DagModel).filter(DagModel.dag_id == "totes_reports").update({"is_paused": False})
    try:
        p.run("2024-11-15T15:00:00")  # a re-read of rows already loaded: no table changes
        with create_session() as session:
            assert session.query(AssetDagRunQueue).filter_by(target_dag_id="totes_reports").count() == 0
        with psycopg.connect(p.totesys_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE sales_order SET units_sold = units_sold + 1, last_updated = %s "
                "WHERE sales_order_id = (SELECT min(sales_order_id) FROM sales_order)",
                (datetime(2024, 11, 15, 15, 5),),
            )
        p.run("2024-11-15T15:15:00")
        with create_session() as session:
            queued = session.query(AssetDagRunQueue).filter_by(target_dag_id="totes_reports").all()
            uris = {q.asset.uri for q in queued}
        assert uris == {warehouse_uri(p, "fact_sales_order")}
        assert "fact_sales_order" in tables_under(SALES_BY_MONTH_GBP)
    finally:
        with create_session() as session:
            session.query(DagModel).filter(DagModel.dag_id == "totes_reports").update({"is_paused": True})
            session.query(AssetDagRunQueue).delete()

    # The queued run refreshes the report: equal to the same figures computed from the view.
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    reports = DagBag(dag_folder=str(ROOT / "dags" / "totes_reports.py")).dags["totes_reports"]
    assert reports.test().state == "success"
    with psycopg.connect(p.warehouse_url) as wh:
        report = wh.execute("SELECT month, currency_code, orders, amount FROM sales_by_month_gbp ORDER BY 1, 2").fetchall()
        again = wh.execute(
            "SELECT date_trunc('month', created_date)::date, currency_code, count(*), sum(amount) FROM sales_in_gbp "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        (orders,) = wh.execute("SELECT count(DISTINCT sales_order_id) FROM fact_sales_order").fetchone()
    assert report == again
    assert sum(r[2] for r in report) == orders > 0
