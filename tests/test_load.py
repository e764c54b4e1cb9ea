"""The warehouse merges (include.load) on real PostgreSQL: versions, history, foreign keys."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from include.derive import processed_schema
from include.registry import WAREHOUSE
from tests.warehouse_rows import T0, T1, T2, add_dimension_rows, dim_location_rows, load, purchase_row


def test_a_dimension_never_goes_back_to_an_older_version(warehouse):
    assert load(warehouse, "dim_location", dim_location_rows(T1, "new")).written == 1
    # a late load of an older version (a backfill that read earlier) changes nothing
    assert load(warehouse, "dim_location", dim_location_rows(T0, "old")).written == 0
    assert warehouse.execute("SELECT phone FROM dim_location").fetchall() == [("new",)]
    # the same version again is a no-op; a newer one wins
    assert load(warehouse, "dim_location", dim_location_rows(T1, "new")).written == 0
    assert load(warehouse, "dim_location", dim_location_rows(T2, "newer")).written == 1
    assert warehouse.execute("SELECT phone FROM dim_location").fetchall() == [("newer",)]
    assert warehouse.execute("SELECT count(*) FROM etl_load_log WHERE table_name = 'dim_location'").fetchone()[0] == 4


def test_facts_keep_each_version_once(warehouse):
    warehouse.execute(
        "INSERT INTO dim_date SELECT d, 2024, 11, 15, 5, 'Friday', 'November', 4 FROM (VALUES ('2024-11-15'::date)) v(d)"
    )
    warehouse.execute("INSERT INTO dim_transaction VALUES (1, 'SALE', 1, NULL)")
    warehouse.execute("INSERT INTO dim_counterparty VALUES (1, 'Co', 'l1', NULL, NULL, 'c', 'p', 'x', '1')")
    warehouse.execute("INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound Sterling')")
    warehouse.execute("INSERT INTO dim_payment_type VALUES (1, 'SALES_RECEIPT')")

    def version(updated: time, paid: bool) -> dict:
        return {
            "payment_id": 1,
            "created_date": date(2024, 11, 15),
            "created_time": time(9),
            "last_updated_date": date(2024, 11, 15),
            "last_updated_time": updated,
            "transaction_id": 1,
            "counterparty_id": 1,
            "payment_amount": Decimal("10.00"),
            "currency_id": 1,
            "payment_type_id": 1,
            "paid": paid,
            "payment_date": date(2024, 11, 15),
        }

    schema = processed_schema(WAREHOUSE["fact_payment"])
    first = pa.Table.from_pylist([version(time(9), False), version(time(9), False)], schema=schema)  # read twice
    assert load(warehouse, "fact_payment", first).written == 1
    again = pa.Table.from_pylist([version(time(9), False), version(time(10), True)], schema=schema)
    assert load(warehouse, "fact_payment", again).written == 1
    assert warehouse.execute("SELECT paid FROM fact_payment ORDER BY last_updated_time").fetchall() == [(False,), (True,)]


def foreign_key_definitions(wh, table: str) -> dict[str, str]:
    return dict(
        wh.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            (table,),
        ).fetchall()
    )


def test_a_large_fact_load_checks_foreign_keys_once_and_puts_them_back_unchanged(warehouse, monkeypatch):
    import include.load

    add_dimension_rows(warehouse)
    before = foreign_key_definitions(warehouse, "fact_purchase_orders")
    assert len(before) == 8
    calls = []
    real_add = include.load._add_foreign_keys
    monkeypatch.setattr(include.load, "_add_foreign_keys", lambda *a: calls.append(a[2].name) or real_add(*a))
    monkeypatch.setattr(include.load, "BULK_MIN_ROWS", 100)
    schema = processed_schema(WAREHOUSE["fact_purchase_orders"])
    small = pa.Table.from_pylist([purchase_row(purchase_order_id=i) for i in range(1, 11)], schema=schema)
    assert load(warehouse, "fact_purchase_orders", small).written == 10
    assert calls == []  # below the threshold: per-row checks
    large = pa.Table.from_pylist([purchase_row(purchase_order_id=i) for i in range(11, 211)], schema=schema)
    assert load(warehouse, "fact_purchase_orders", large).written == 200
    assert calls == ["fact_purchase_orders"]
    assert foreign_key_definitions(warehouse, "fact_purchase_orders") == before
    # and they hold again
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        warehouse.execute(
            "INSERT INTO fact_purchase_orders (purchase_order_id, created_date, created_time, last_updated_date, "
            "last_updated_time, staff_id, counterparty_id, item_code, item_quantity, item_unit_price, currency_id, "
            "agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id) "
            "VALUES (999, '2024-11-15', '09:00', '2024-11-15', '09:00', 42, 1, 'A', 1, 1, 1, '2024-11-15', '2024-11-15', 1)"
        )
    # a role that does not own the table keeps the per-row checks (it may not alter it)
    import uuid

    role = sql.Identifier(f"totes_test_loader_{uuid.uuid4().hex[:8]}")  # roles are cluster-wide: our own name
    warehouse.execute(sql.SQL("CREATE ROLE {}").format(role))
    try:
        warehouse.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        warehouse.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {}").format(role))
        warehouse.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
        warehouse.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(warehouse.info.dbname), role))
        warehouse.execute(sql.SQL("SET ROLE {}").format(role))
        more = pa.Table.from_pylist([purchase_row(purchase_order_id=i) for i in range(211, 411)], schema=schema)
        assert load(warehouse, "fact_purchase_orders", more).written == 200
        assert calls == ["fact_purchase_orders"]
    finally:
        warehouse.execute("RESET ROLE")
        warehouse.execute(sql.SQL("DROP OWNED BY {}").format(role))
        warehouse.execute(sql.SQL("DROP ROLE {}").format(role))
