"""Assets: every lake and warehouse table is an Asset its task declares; every one a run changed
is an Asset event in Airflow's metadata, with its figures as extra; a table with nothing new
emits nothing (include/assets.py)."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from include.assets import WarehouseLocation, declared, declared_locations
from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES


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


def test_assets_are_declared_from_the_environment_alone():
    # MWAA: Airflow's [totes] configuration section, the same values as the secrets
    mwaa = {
        "AIRFLOW__TOTES__INGESTION_BUCKET": "team-3-ingestion",
        "AIRFLOW__TOTES__PROCESSED_BUCKET": "team-3-processed",
        "AIRFLOW__TOTES__WAREHOUSE_SCHEMA": "project_team_3",
        "AIRFLOW__TOTES__WAREHOUSE": "warehouse.example.eu-west-2.rds.amazonaws.com:5432/postgres",
        "AIRFLOW_VAR_TOTES_INGESTION_BUCKET": "ignored-when-the-section-says",
    }
    assert declared("ingestion", "sales_order", declared_locations(mwaa)).uri == "s3://team-3-ingestion/sales_order"
    assert declared("processed", "dim_date", declared_locations(mwaa)).uri == "s3://team-3-processed/dim_date"
    assert (
        declared("warehouse", "fact_payment", declared_locations(mwaa)).uri
        == "postgres://warehouse.example.eu-west-2.rds.amazonaws.com:5432/postgres/project_team_3/fact_payment"
    )
    # compose, the local stack: the variables and the connection Airflow reads from the environment
    local = {
        "AIRFLOW_VAR_TOTES_PROCESSED_BUCKET": "local-processed",
        "AIRFLOW_CONN_WAREHOUSE_DB": "postgresql://totes:secret@127.0.0.1:55432/warehouse?sslmode=disable",
    }
    assert declared("processed", "dim_staff", declared_locations(local)).uri == "s3://local-processed/dim_staff"
    assert declared("ingestion", "staff", declared_locations(local)).uri == "s3://totes-ingestion/staff"  # the default
    assert (
        declared("warehouse", "dim_staff", declared_locations(local)).uri
        == "postgres://127.0.0.1:55432/warehouse/public/dim_staff"
    )
    as_json = {"AIRFLOW_CONN_WAREHOUSE_DB": '{"conn_type": "postgres", "host": "wh", "port": 6543, "schema": "dw", "login": "x"}'}
    assert declared_locations(as_json).warehouse == WarehouseLocation("wh", 6543, "dw")
    # the connection in a secrets backend only: its id stands for the host (README, "Assets and lineage")
    assert declared_locations({}).warehouse == WarehouseLocation("warehouse_db", 5432, "warehouse")
    with pytest.raises(ValueError, match="host\\[:port\\]/database"):
        declared_locations({"AIRFLOW__TOTES__WAREHOUSE": "no-database"})
    with pytest.raises(ValueError, match="unknown stage"):
        declared("lake", "staff")


@pytest.mark.e2e
@pytest.mark.slow
def test_each_table_a_run_changes_is_one_asset_event_with_its_figures_and_a_quiet_run_emits_none(pipeline):
    p = pipeline(schema="assets_test")
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=9, scale=0.05))

    # 0. Each producing task declares the Asset of what it writes, before anything ran.
    outlets = {t.task_id: [o.uri for o in t.outlets] for t in p.dag.tasks if t.outlets}
    declared_uris = {f"s3://{p.ingestion}/{t.name}": f"ingest.{t.name}" for t in SOURCE_TABLES}
    declared_uris |= {f"s3://{p.processed}/{w.name}": f"transform.{w.name}" for w in WAREHOUSE_TABLES}
    declared_uris |= {warehouse_uri(p, w.name): f"load.{w.name}" for w in WAREHOUSE_TABLES}
    assert outlets == {task: [uri] for uri, task in declared_uris.items()}

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

    assert expected == declared_uris

    # 2. A run that reads nothing new emits nothing: the generator's rows end at 14:45, which the
    #    15:15 run still re-reads (the lookback reaches 14:30) and the 15:30 run no longer does.
    p.run("2024-11-15T15:15:00")
    assert asset_events(p.run("2024-11-15T15:30:00")) == {}

    # 3. One address changes: the warehouse events are exactly the tables that read address
    #    (a table that re-read an unchanged row writes nothing and says nothing).
    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE address SET phone = '01234 567890', last_updated = %s "
            "WHERE address_id = (SELECT min(legal_address_id) FROM counterparty)",
            (datetime(2024, 11, 15, 15, 35),),
        )
    changed = asset_events(p.run("2024-11-15T15:45:00"))
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


@pytest.mark.e2e
@pytest.mark.slow
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
    from tests.conftest import parse_dag

    reports = parse_dag("totes_reports.py", "totes_reports")
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
