"""Bad input and schema drift, end to end: quarantined with the reason, never dropped silently
nor loaded half-right; the other tables keep flowing; a person is told."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from devtools.smtp import body_text
from devtools.totesys.generator import GeneratorSettings, generate
from devtools.totesys.simulator import ChangePlan, simulate
from tests.expected import assert_warehouse_equals

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

T1 = datetime(2024, 11, 15, 15, 5)


def test_schema_drift_quarantines_that_table_fails_loudly_and_the_rest_flows(pipeline, smtp_server):
    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=31, scale=0.03))
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()

    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE staff ADD COLUMN nickname text")
        conn.execute(
            "UPDATE staff SET nickname = 'Bob', email_address = 'new@terrifictotes.com', last_updated = %s WHERE staff_id = 1",
            (T1,),
        )
        changes = simulate(conn, at=T1, seed=6, plan=ChangePlan(updates={"sales_order": 2}))
    dr = p.run("2024-11-15T15:15:00", expect="failed")
    states = p.task_states(dr)
    assert states["ingest.staff"] == "failed"
    assert states["check.outcome"] == "failed"
    assert states["transform.dim_staff"] == "upstream_failed"
    assert states["load.dim_staff"] == "skipped"
    # the other tables kept flowing: new orders reached the facts
    for task in ("load.fact_sales_order", "load.fact_payment", "load.dim_location", "load.dim_counterparty"):
        assert states[task] == "success", (task, states[task])
    second = p.snapshot()
    new_orders = changes.inserted["sales_order"]
    assert new_orders
    assert new_orders <= {r[0] for r in second["fact_sales_order"]}
    # nothing of staff moved
    assert second["dim_staff"] == first["dim_staff"]

    # the window's staff rows, as the database returned them, and the reason, are in the quarantine
    keys = [k for k in p.objects(p.ingestion) if k.split("/", 1)[1].startswith("quarantine/staff/")]
    reason = json.loads(p.read_object(next(k for k in keys if k.endswith("reason.json"))))
    assert reason["table"] == "staff"
    assert any("nickname" in problem for problem in reason["problems"])
    rows = p.read_object(next(k for k in keys if k.endswith("rows.csv.gz")))
    import gzip

    assert b"new@terrifictotes.com" in gzip.decompress(rows)

    # the failure mail names the table and the column
    (mail,) = smtp_server.sink.wait_for(lambda m: "ingest.staff" in m["Subject"] and dr.run_id in m["Subject"])
    assert "staff" in body_text(mail)
    assert "nickname" in body_text(mail)

    # a person updates the source back to the contract: the next run catches up
    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE staff DROP COLUMN nickname")
    p.run("2024-11-15T15:30:00")
    assert_warehouse_equals(p.snapshot(), p.expected(facts_before=first))


def test_drift_in_each_source_table_holds_back_only_the_tables_that_wait_for_it(pipeline):
    """Each source table in turn drifts while the application changes every table: in that run,
    every warehouse table that does not wait for it (include.registry.waits_for) loads exactly
    what the source holds, and nothing of it waits in the quarantine; the calendar takes the
    dates of the ingests that ran. Once the source is put right, the next run catches up."""
    from datetime import timedelta

    from include.quarantine import waiting_from_run
    from include.registry import CALENDAR, SOURCE_TABLES, WAREHOUSE_TABLES, waits_for

    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=33, scale=0.03))
    end = datetime(2024, 11, 15, 15, 0)
    p.run(end.isoformat())
    start = p.snapshot()
    held_back = {s.name: {w.name for w in WAREHOUSE_TABLES if s.name in waits_for(w)} for s in SOURCE_TABLES}
    # what the DAG's wiring promises, read by eye: a drifted sales_order holds back no payment
    assert held_back["sales_order"] == {"fact_sales_order", "dim_date"}
    assert "fact_payment" not in held_back["purchase_order"] | held_back["staff"]
    assert held_back["currency"] == {"dim_currency", *(w.name for w in WAREHOUSE_TABLES if w.is_fact)}

    for i, source in enumerate(SOURCE_TABLES):
        end += timedelta(minutes=15)
        with psycopg.connect(p.totesys_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {source.name} ADD COLUMN drift_probe text")
            simulate(conn, at=end - timedelta(minutes=10), seed=40 + i, plan=ChangePlan())
        before = p.snapshot()
        dr = p.run(end.isoformat(), expect="failed")  # check.outcome: a task failed
        states, after = p.task_states(dr), p.snapshot()
        assert states["check.outcome"] == "failed", source.name
        expected = p.expected(facts_before=with_replayed_versions(p, before, after))
        assert states[f"ingest.{source.name}"] == "failed", source.name
        if CALENDAR.name not in held_back[source.name]:
            assert states[f"transform.{CALENDAR.name}"] == "success", source.name
        for w in WAREHOUSE_TABLES:
            if w.name in held_back[source.name]:
                continue
            assert states[f"load.{w.name}"] == "success", (source.name, w.name, states[f"load.{w.name}"])
            try:
                assert_warehouse_equals({w.name: after[w.name]}, {w.name: expected[w.name]})
            except AssertionError as e:
                raise AssertionError(f"{source.name} drifted: {e}") from None
        with psycopg.connect(p.warehouse_url) as wh:
            waiting = {table for table, *_ in waiting_from_run(wh, p.schema, dr.run_id)}
        assert waiting <= held_back[source.name], (source.name, waiting)
        with psycopg.connect(p.totesys_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {source.name} DROP COLUMN drift_probe")

    before = p.snapshot()
    p.run((end + timedelta(minutes=15)).isoformat())
    final = p.snapshot()
    assert_warehouse_equals(final, p.expected(facts_before=with_replayed_versions(p, before, final)))
    assert all(start[t] <= final[t] for t in start if t.startswith("fact_"))  # facts keep every version


def with_replayed_versions(p, before: dict, after: dict) -> dict:
    """The fact versions a run may hold beyond ``before`` and the source's current rows: those that
    waited in the quarantine (for a dimension row) and loaded once it came, after the source had
    moved on to a newer version. Each still loads once: a duplicate remains an error."""
    from collections import Counter

    from include.registry import FACTS

    with psycopg.connect(p.warehouse_url) as wh:
        waited = set(wh.execute(f"SELECT table_name, source_id, source_last_updated FROM {p.schema}.etl_quarantine").fetchall())
    return {
        t.name: before[t.name]
        + Counter({r for r in after[t.name] if (t.name, r[0], datetime.combine(r[3], r[4])) in waited} - set(before[t.name]))
        for t in FACTS
    }


def test_bad_rows_are_quarantined_with_the_reason_reported_and_load_once_fixed(pipeline, smtp_server):
    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=32, scale=0.03))
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()

    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        # a date that is not YYYY-MM-DD, an unknown currency code, and an order in that currency
        bad_date = conn.execute(
            "UPDATE sales_order SET agreed_payment_date = '2024-02-30', last_updated = %s "
            "WHERE sales_order_id = (SELECT min(sales_order_id) FROM sales_order) RETURNING sales_order_id",
            (T1,),
        ).fetchone()[0]
        conn.execute("INSERT INTO currency (currency_code, created_at, last_updated) VALUES ('XYZ', %s, %s)", (T1, T1))
        in_xyz = conn.execute(
            "INSERT INTO sales_order (created_at, last_updated, design_id, staff_id, counterparty_id, units_sold, unit_price, "
            "currency_id, agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id) "
            "VALUES (%s, %s, 1, 1, 1, 1000, 2.50, 4, '2024-11-16', '2024-11-17', 1) RETURNING sales_order_id",
            (T1, T1),
        ).fetchone()[0]
    dr = p.run("2024-11-15T15:15:00")  # the good rows flow; the run does not fail
    second = p.snapshot()
    assert bad_date not in {r[0] for r in second["fact_sales_order"] if r[3].isoformat() == "2024-11-15" and r[4].hour == 15}
    assert in_xyz not in {r[0] for r in second["fact_sales_order"]}
    assert 4 not in {r[0] for r in second["dim_currency"]}
    with psycopg.connect(p.warehouse_url) as wh:
        waiting = {
            (t, s, i): r
            for t, s, i, r in wh.execute(
                "SELECT table_name, stage, source_id, reason FROM etl_quarantine WHERE resolved_at IS NULL"
            )
        }
    assert waiting[("fact_sales_order", "transform", bad_date)] == "agreed_payment_date is not a YYYY-MM-DD date: 2024-02-30"
    assert waiting[("dim_currency", "transform", 4)] == "currency_code is not an ISO 4217 currency code: XYZ"
    assert waiting[("fact_sales_order", "load", in_xyz)] == "currency_id has no dim_currency row: 4"
    quarantine_keys = [k for k in p.objects(p.processed) if k.split("/", 1)[1].startswith("quarantine/")]
    assert any("fact_sales_order" in k and k.endswith("transform-rejects.parquet") for k in quarantine_keys)
    assert any("fact_sales_order" in k and k.endswith("load-rejects.jsonl") for k in quarantine_keys)
    (mail,) = smtp_server.sink.wait_for(lambda m: "quarantined" in m["Subject"] and dr.run_id in m["Subject"])
    assert "not an ISO 4217 currency code" in body_text(mail)
    assert "YYYY-MM-DD" in body_text(mail)

    # the source is corrected (new versions): everything waiting loads, nothing twice
    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute("UPDATE sales_order SET agreed_payment_date = '2024-02-29', last_updated = %s WHERE sales_order_id = %s",
                     (datetime(2024, 11, 15, 15, 20), bad_date))  # fmt: skip
        conn.execute(
            "UPDATE currency SET currency_code = 'JPY', last_updated = %s WHERE currency_id = 4",
            (datetime(2024, 11, 15, 15, 20),),
        )
    p.run("2024-11-15T15:30:00")
    third = p.snapshot()
    assert in_xyz in {r[0] for r in third["fact_sales_order"]}
    with psycopg.connect(p.warehouse_url) as wh:
        assert wh.execute("SELECT count(*) FROM etl_quarantine WHERE resolved_at IS NULL").fetchone()[0] == 0
    # the warehouse now equals the spec's view of the source, with the bad version never loaded
    expected = p.expected(facts_before=first)
    assert_warehouse_equals(third, expected)
