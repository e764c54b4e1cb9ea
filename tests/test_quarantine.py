"""The quarantine (include.quarantine) on real PostgreSQL: refused rows wait, are recorded once, and resolve."""

from __future__ import annotations

from datetime import time

import pyarrow as pa
import pytest

from include.derive import processed_schema
from include.load import load_batches
from include.quarantine import record as quarantine_rows
from include.registry import WAREHOUSE
from tests.warehouse_rows import T0, add_dimension_rows, purchase_row


@pytest.fixture(params=["per-row checks", "bulk checks"])
def fk_checks(request, monkeypatch):
    """Both ways a fact load checks foreign keys: per row (small loads) and once per constraint
    (large loads: the threshold lowered to one row)."""
    import include.load

    if request.param == "bulk checks":
        monkeypatch.setattr(include.load, "BULK_MIN_ROWS", 1)
    return request.param


def test_a_fact_without_its_dimension_row_waits_in_the_quarantine_and_loads_when_it_arrives(warehouse, fk_checks):
    add_dimension_rows(warehouse, staff=False)
    schema = processed_schema(WAREHOUSE["fact_purchase_orders"])
    stored = []
    data = pa.Table.from_pylist([purchase_row(), purchase_row(purchase_order_id=2, staff_id=7)], schema=schema)
    result = load_batches(warehouse, "public", WAREHOUSE["fact_purchase_orders"], data.to_batches(), run_id="r1", manifest_key="k",
                          on_rejects=lambda rows: stored.append(rows) or "quarantine/key")  # fmt: skip
    assert (result.written, result.rejected) == (0, 2)
    assert warehouse.execute("SELECT count(*) FROM fact_purchase_orders").fetchone()[0] == 0
    reasons = dict(warehouse.execute("SELECT source_id, reason FROM etl_quarantine WHERE resolved_at IS NULL").fetchall())
    assert reasons == {1: "staff_id has no dim_staff row: 1", 2: "staff_id has no dim_staff row: 7"}
    assert [row["purchase_order_id"] for row, _ in stored[0]] == [1, 2]
    # a rerun does not record them twice
    load_batches(warehouse, "public", WAREHOUSE["fact_purchase_orders"], data.to_batches(), run_id="r1", manifest_key="k")
    assert warehouse.execute("SELECT count(*) FROM etl_quarantine").fetchone()[0] == 2

    # staff 1 arrives: the next load (with nothing new of its own) replays the waiting rows
    add_dimension_rows(warehouse)
    result = load_batches(warehouse, "public", WAREHOUSE["fact_purchase_orders"], iter([]), run_id="r2", manifest_key="k2")
    assert (result.replayed, result.written) == (2, 1)
    assert warehouse.execute("SELECT purchase_order_id FROM fact_purchase_orders").fetchall() == [(1,)]
    waiting = warehouse.execute("SELECT source_id, resolved_by_run FROM etl_quarantine ORDER BY source_id").fetchall()
    assert waiting == [(1, "r2"), (2, None)]


def test_transform_rejects_are_recorded_once_and_resolved_by_a_newer_version(warehouse):
    add_dimension_rows(warehouse)
    table = WAREHOUSE["fact_purchase_orders"]
    source_row = {"purchase_order_id": 5, "created_at": T0, "last_updated": T0, "agreed_payment_date": "2024-02-30"}
    for _ in range(2):
        with warehouse.transaction():
            quarantine_rows(
                warehouse, "public", table, stage="transform", rows=[(source_row, "bad date")], run_id="r", object_key="q"
            )
    assert warehouse.execute("SELECT count(*) FROM etl_quarantine WHERE resolved_at IS NULL").fetchone()[0] == 1
    fixed = pa.Table.from_pylist(
        [purchase_row(purchase_order_id=5, last_updated_time=time(9, 45))], schema=processed_schema(table)
    )
    load_batches(warehouse, "public", table, fixed.to_batches(), run_id="r3", manifest_key="k")
    assert warehouse.execute("SELECT resolved_by_run FROM etl_quarantine").fetchall() == [("r3",)]
