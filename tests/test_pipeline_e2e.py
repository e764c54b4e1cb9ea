"""totes_etl end to end: dag.test() in-process against real PostgreSQL and a real S3 API.

Every warehouse table is compared row by row (as multisets: a duplicate is a failure) with what
tests/expected.py computes by SQL over the source.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from devtools.totesys.real_extract import load_extract
from devtools.totesys.simulator import ChangePlan, simulate
from include.registry import FACTS, SOURCE_TABLES, WAREHOUSE_TABLES
from tests.expected import assert_warehouse_equals

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_full_load_of_the_real_extract(pipeline, real_extract_dir):
    p = pipeline(schema="project_team_3")
    with psycopg.connect(p.totesys_url) as conn:
        load_extract(conn, real_extract_dir)
    p.run("2024-11-15T15:00:00")
    actual = p.snapshot()
    assert_warehouse_equals(actual, p.expected())
    assert sum(actual["fact_payment"].values()) == 15836
    assert {r[1]: r[2] for r in actual["dim_currency"]} == {"GBP": "Pound Sterling", "USD": "US Dollar", "EUR": "Euro"}


def test_generated_totesys_full_load_then_changes_reruns_backfills_and_quiet_runs(pipeline):
    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=11, scale=0.25))

    # 1. The first run takes a snapshot: every table equals the spec's view of the source.
    first_run = p.run("2024-11-15T15:00:00")
    first = p.snapshot()
    assert_warehouse_equals(first, p.expected())
    # what the run did, kept in the warehouse (include.figures): into an empty warehouse each
    # load wrote every row the table holds; each ingest read its whole table (a snapshot)
    loaded = stage_figures(p, first_run.run_id, "load", "rows_written")
    assert loaded == {t: sum(rows.values()) for t, rows in first.items()}
    with psycopg.connect(p.totesys_url) as src:
        counts = {s.name: src.execute(f"SELECT count(*) FROM {s.name}").fetchone()[0] for s in SOURCE_TABLES}
    assert stage_figures(p, first_run.run_id, "ingest", "rows_read") == counts
    assert stage_figures(p, first_run.run_id, "transform", "rows_written") == loaded
    assert all(v > 0 for v in stage_figures(p, first_run.run_id, "ingest", "bytes").values())
    checks = check_results(p, first_run.run_id)
    assert {t for (c, t) in checks if c == "reconcile"} == {w.name for w in WAREHOUSE_TABLES if w.kind != "calendar"}
    assert {t for (c, t) in checks if c == "freshness"} == set(counts)
    assert all(passed for passed, _, _ in checks.values()), checks
    assert {lag for (c, _), (_, lag, _) in checks.items() if c == "freshness"} == {0.0}
    assert all(expected == present for (c, _), (_, _, (expected, present)) in checks.items() if c == "reconcile")

    # 2. The application changes things inside the next interval; the next run picks them up.
    with psycopg.connect(p.totesys_url) as conn:
        changes = simulate(conn, at=datetime(2024, 11, 15, 15, 5), seed=3, plan=ChangePlan())
    second_run = p.run("2024-11-15T15:15:00")
    second = p.snapshot()
    assert_warehouse_equals(second, p.expected(facts_before=first))
    # a fact's loads, summed over the runs, wrote each of its rows once
    written = [stage_figures(p, r.run_id, "load", "rows_written") for r in (first_run, second_run)]
    for fact in FACTS:
        assert sum(w[fact.name] for w in written) == sum(second[fact.name].values()), fact.name
    # new facts: exactly one per new version (inserted or updated order/payment rows)
    for fact, source in (
        ("fact_sales_order", "sales_order"),
        ("fact_purchase_orders", "purchase_order"),
        ("fact_payment", "payment"),
    ):
        added = sum(second[fact].values()) - sum(first[fact].values())
        assert added == len(changes.changed(source)), fact
    # a changed address reached dim_location and every counterparty using it; a changed
    # department reached every staff member in it
    (address_id,) = changes.updated["address"]
    (department_id,) = changes.updated["department"]
    with psycopg.connect(p.totesys_url) as src:
        phone = src.execute("SELECT phone FROM address WHERE address_id = %s", (address_id,)).fetchone()[0]
        users = {r[0] for r in src.execute("SELECT counterparty_id FROM counterparty WHERE legal_address_id = %s", (address_id,))}
        location = src.execute("SELECT location FROM department WHERE department_id = %s", (department_id,)).fetchone()[0]
        members = {r[0] for r in src.execute("SELECT staff_id FROM staff WHERE department_id = %s", (department_id,))}
    assert {r[7] for r in second["dim_location"] if r[0] == address_id} == {phone}
    assert {r[0] for r in second["dim_counterparty"] if r[8] == phone} >= users
    assert {r[0] for r in second["dim_staff"] if r[4] == location} >= members

    # 3. Clear + rerun of the same interval, and a backfill over earlier intervals: no change.
    objects_before = p.objects()
    kept = count_figures(p, second_run.run_id)
    rerun = p.run("2024-11-15T15:15:00", rerun_of=second_run)
    assert rerun.run_id == second_run.run_id
    # the rerun replaced the run's figures with its own (its loads wrote nothing), never added rows
    assert count_figures(p, rerun.run_id) == kept == (len(SOURCE_TABLES) + 2 * len(WAREHOUSE_TABLES), 10 + len(SOURCE_TABLES))
    assert {f.name: 0 for f in FACTS} == {
        t: n for t, n in stage_figures(p, rerun.run_id, "load", "rows_written").items() if t in {f.name for f in FACTS}
    }
    for end in ("2024-11-15T14:30:00", "2024-11-15T14:45:00", "2024-11-15T15:00:00"):
        p.run(end)
    assert p.snapshot() == second

    # 4. Once the lookback has passed, a run with no changes reads nothing and writes nothing.
    p.run("2024-11-15T15:30:00")
    p.run("2024-11-15T15:45:00")
    quiet_before = p.objects()
    p.run("2024-11-15T16:00:00")
    assert p.objects() == quiet_before
    assert p.snapshot() == second
    assert set(objects_before) <= set(quiet_before)


def test_a_new_date_reaches_dim_date_before_the_fact_that_uses_it(pipeline):
    """A change whose dates are new to dim_date (an order agreed for a far-future date) loads:
    dim_date grows first, so the fact's foreign keys hold."""
    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=5, scale=0.05))
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()
    with psycopg.connect(p.totesys_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE sales_order SET agreed_delivery_date = '2031-02-28', last_updated = %s "
            "WHERE sales_order_id = (SELECT min(sales_order_id) FROM sales_order)",
            (datetime(2024, 11, 15, 15, 7, 0, 123000),),
        )
    p.run("2024-11-15T15:15:00")
    second = p.snapshot()
    assert_warehouse_equals(second, p.expected(facts_before=first))
    assert any(r[0].isoformat() == "2031-02-28" and r[5] == "Friday" for r in second["dim_date"])
    assert sum(second["fact_sales_order"].values()) == sum(first["fact_sales_order"].values()) + 1


def stage_figures(p, run_id: str, stage: str, column: str) -> dict[str, int]:
    """table -> one column of etl_stage_figures for one run and stage."""
    with psycopg.connect(p.warehouse_url) as wh:
        rows = wh.execute(
            f"SELECT table_name, {column} FROM {p.schema}.etl_stage_figures WHERE run_id = %s AND stage = %s", (run_id, stage)
        ).fetchall()
    return dict(rows)


def check_results(p, run_id: str) -> dict[tuple[str, str], tuple]:
    """(check, table) -> (passed, lag_seconds, (ids_expected, ids_present)) of one run."""
    with psycopg.connect(p.warehouse_url) as wh:
        rows = wh.execute(
            f"SELECT check_name, table_name, passed, lag_seconds, ids_expected, ids_present FROM {p.schema}.etl_check_result "
            "WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    return {(c, t): (passed, lag, (e, pr)) for c, t, passed, lag, e, pr in rows}


def count_figures(p, run_id: str) -> tuple[int, int]:
    """(etl_stage_figures rows, etl_check_result rows) of one run."""
    with psycopg.connect(p.warehouse_url) as wh:
        return tuple(
            wh.execute(f"SELECT count(*) FROM {p.schema}.{name} WHERE run_id = %s", (run_id,)).fetchone()[0]
            for name in ("etl_stage_figures", "etl_check_result")
        )
