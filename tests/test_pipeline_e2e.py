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
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()
    assert_warehouse_equals(first, p.expected())

    # 2. The application changes things inside the next interval; the next run picks them up.
    with psycopg.connect(p.totesys_url) as conn:
        changes = simulate(conn, at=datetime(2024, 11, 15, 15, 5), seed=3, plan=ChangePlan())
    p.run("2024-11-15T15:15:00")
    second = p.snapshot()
    assert_warehouse_equals(second, p.expected(facts_before=first))
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
    p.run("2024-11-15T15:15:00")
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
