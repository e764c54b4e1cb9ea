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
