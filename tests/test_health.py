"""The health page (include/health.py, plugins/totes_health.py) on real PostgreSQL: what it reads
from a week of recorded runs, what it shows, how it says the warehouse is unreachable, and that
it asks for the UI's login. In a browser on the local stack: tests/test_ui_browser.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from include.health import LazyApp, make_app, read_health, render, status_of
from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES
from tests.conftest import ROOT
from tests.figures_rows import WEEK_OF_RUNS, record_history

LAST_END = datetime(2024, 11, 15, 16, 0, tzinfo=UTC)


@pytest.fixture
def week(warehouse):
    record_history(warehouse, "public", LAST_END, WEEK_OF_RUNS)
    warehouse.execute(
        "INSERT INTO etl_quarantine (table_name, stage, source_id, reason, row_data, run_id, object_key, quarantined_at) "
        "VALUES ('fact_payment', 'load', 7, 'missing dimension row: dim_counterparty 9', '{}', 'r1', 'k', %s), "
        "('fact_payment', 'load', 8, 'missing dimension row: dim_counterparty 9', '{}', 'r2', 'k', %s), "
        "('dim_design', 'transform', 3, 'null value: design_name', '{}', 'r2', 'k', %s)",
        (LAST_END - timedelta(hours=2), LAST_END - timedelta(hours=1), LAST_END),
    )
    return warehouse


def test_the_health_of_a_week_of_runs_is_read_exactly(week):
    as_of = LAST_END + timedelta(minutes=5)
    health = read_health(week, "public", as_of)
    # freshness: the newest check's lag (run 0: 0 s) plus the 5 minutes since its interval ended
    assert {f.table for f in health.freshness} == {t.name for t in SOURCE_TABLES}
    assert {(f.lag, f.behind_at_most, f.status) for f in health.freshness} == {(timedelta(0), timedelta(minutes=5), "green")}
    # the last 12 runs, newest first; run n's loads wrote 10 n + 1 rows per table
    assert [r.interval_end for r in health.runs] == [LAST_END - n * timedelta(minutes=15) for n in range(12)]
    assert [r.rows["load"] for r in health.runs] == [len(WAREHOUSE_TABLES) * (10 * n + 1) for n in range(12)]
    assert [r.rows["ingest"] for r in health.runs] == [len(SOURCE_TABLES) * (10 * n + 1) for n in range(12)]
    assert {r.seconds for r in health.runs} == {1.0}
    assert {r.checks_failed for r in health.runs} == {0}
    # what waits, grouped by table, stage and kind of reason, with the oldest
    assert [(w.table, w.stage, w.reason, w.rows, w.oldest) for w in health.waiting] == [
        ("fact_payment", "load", "missing dimension row", 2, LAST_END - timedelta(hours=2)),
        ("dim_design", "transform", "null value", 1, LAST_END),
    ]
    assert {c.table for c in health.reconciled} == {t.name for t in WAREHOUSE_TABLES if t.kind != "calendar"}
    assert all(c.passed for c in health.reconciled)
    # the plots: the runs of the last day (96 intervals ending after as_of - 1 day)
    assert len(health.lag_series) == len(health.loaded_series) == 96
    assert max(v for _, v in health.lag_series) == 360.0
    assert health.loaded_series[-1] == (LAST_END, len(WAREHOUSE_TABLES))


def test_freshness_turns_amber_then_red_as_the_last_check_ages():
    assert [status_of(timedelta(minutes=m)) for m in (0, 20, 21, 30, 31)] == ["green", "green", "amber", "amber", "red"]
    assert status_of(None) == "red"


def test_a_table_without_a_lag_is_green_when_its_source_had_nothing_yet_and_red_when_nothing_arrived(week):
    week.execute(
        "UPDATE etl_check_result SET lag_seconds = NULL, passed = (table_name = 'currency') "
        "WHERE check_name = 'freshness' AND table_name IN ('currency', 'staff') AND interval_end = %s",
        (LAST_END,),
    )
    status = {f.table: f.status for f in read_health(week, "public", LAST_END + timedelta(minutes=5)).freshness}
    assert (status["currency"], status["staff"], status["payment"]) == ("green", "red", "green")


def test_the_page_shows_the_figures_it_read_and_a_failing_table_in_red(week):
    week.execute(
        "UPDATE etl_check_result SET passed = false, problems = '1 of 4 recent change(s) not in the warehouse (ids 7)' "
        "WHERE check_name = 'reconcile' AND table_name = 'dim_staff' AND interval_end = %s",
        (LAST_END,),
    )
    as_of = LAST_END + timedelta(minutes=25)
    page = render(read_health(week, "public", as_of), "public")
    lags = re.findall(
        r"data-table='(\w+)' data-status='(\w+)'><td class='name'>\w+</td><td data-figure='behind_minutes'>([\d.]+)<", page
    )
    assert {(t, s, m) for t, s, m in lags} == {(t.name, "amber", "25.0") for t in SOURCE_TABLES}
    loaded = re.findall(r"<tr data-run='[^']+' class='\w*'>.*?<td data-figure='load'>([\d,]+)</td>", page)
    assert [int(n.replace(",", "")) for n in loaded] == [len(WAREHOUSE_TABLES) * (10 * n + 1) for n in range(12)]
    assert "class='red' data-table='dim_staff' data-status='failed'" in page
    assert "1 of 4 recent change(s) not in the warehouse (ids 7)" in page
    assert "<tr data-run='scheduled__2024-11-15T15:45' class='red'>" in page  # its run had a failed check
    # the last day before as_of holds the intervals ending after 16:25 the day before: 95 of them
    assert 'data-plot="freshness lag" data-points="95"' in page
    assert 'data-plot="rows loaded" data-points="95"' in page
    assert "missing dimension row" in page


def test_the_page_says_plainly_when_the_warehouse_is_unreachable_and_asks_for_a_login(new_database, week):
    from fastapi import Depends, HTTPException
    from fastapi.testclient import TestClient

    url = new_database("health")
    with psycopg.connect(url, autocommit=True) as conn:
        from include.ddl import ensure_warehouse_schema

        ensure_warehouse_schema(conn, "public")
        record_history(conn, "public", LAST_END, 4)

    def connect():
        return psycopg.connect(url, autocommit=True)

    built = []
    app = LazyApp(lambda: built.append(1) or make_app(connect, lambda: "public", lambda: LAST_END))
    assert built == []  # nothing is built until the first request
    answer = TestClient(app).get("/")
    assert TestClient(app).get("/").status_code == 200
    assert built == [1]
    assert answer.status_code == 200
    assert "<h1>totes_etl health</h1>" in answer.text
    assert answer.text.count("<tr data-run=") == 4

    closed = "postgresql://nobody@127.0.0.1:9/warehouse?connect_timeout=3"  # port 9: nothing listens
    down = TestClient(make_app(lambda: psycopg.connect(closed), lambda: "public", lambda: LAST_END)).get("/")
    assert down.status_code == 503
    assert "The warehouse is unreachable: " in down.text
    assert "127.0.0.1" in down.text
    assert "port 9" in down.text

    empty = new_database("health_empty")
    none_yet = TestClient(make_app(lambda: psycopg.connect(empty), lambda: "public", lambda: LAST_END)).get("/")
    assert none_yet.status_code == 503
    assert "no figures tables yet" in none_yet.text

    def refuse():
        raise HTTPException(status_code=401, detail="Not authenticated")

    guarded = TestClient(make_app(connect, lambda: "public", lambda: LAST_END, guard=Depends(refuse))).get("/")
    assert guarded.status_code == 401
    assert "totes_etl health" not in guarded.text


def test_airflow_loads_the_plugin_with_its_app_and_its_navigation_entry(airflow_db):
    """`airflow plugins`, in a fresh process with the project's plugins folder, as the api-server finds it."""
    import json

    env = os.environ | {"AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "PYTHONPATH": str(ROOT)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    out = subprocess.run([airflow, "plugins", "-o", "json"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (plugin,) = [p for p in json.loads(out.stdout) if p["name"] == "totes_health"]
    assert [(a["url_prefix"], a["app"]) for a in plugin["fastapi_apps"]] == [("/totes-health", "include.health.LazyApp")]
    assert plugin["external_views"] == [
        {
            "name": "Pipeline health",
            "href": "/totes-health/",
            "destination": "nav",
            "category": "browse",
            "url_route": "totes-health",
        }
    ]


def test_the_pages_role_reads_what_the_page_reads_and_nothing_else(new_database, pg_admin_url):
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from psycopg import sql

    from include.ddl import ensure_warehouse_schema
    from include.health import main

    url, role = new_database("health_role"), f"totes_health_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_warehouse_schema(conn, "public")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x'").format(sql.Identifier(role)))
    try:
        assert main(["grant", url, "public", role]) == 0
        parts = urlsplit(url)
        as_role = urlunsplit(parts._replace(netloc=f"{role}:x@{parts.hostname}:{parts.port}"))
        with psycopg.connect(as_role, autocommit=True) as conn:
            assert read_health(conn, "public", LAST_END).runs == []
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            assert conn.execute("SELECT count(*), min(quarantined_at) FROM etl_quarantine").fetchone() == (0, None)
            for forbidden in ("SELECT * FROM fact_payment", "SELECT * FROM etl_load_log", "SELECT row_data FROM etl_quarantine"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(forbidden)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM etl_stage_figures")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
