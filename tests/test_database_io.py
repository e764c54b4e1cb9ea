"""COPY in and out, the data contract check, and the warehouse merge, on real PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from include.ddl import create_totesys_schema, ensure_warehouse_schema
from include.extract import ContractViolation, check_contract, extract_batches, source_schema
from include.lake import Window
from include.load import load_batches, quarantine_rows
from include.pgarrow import copy_in_batches, copy_out_batches
from include.registry import SOURCE, WAREHOUSE
from include.transform import processed_schema

T0 = datetime(2024, 11, 15, 9, 30, 5, 123000)
T1 = datetime(2024, 11, 15, 9, 45, 0, 1000)
T2 = datetime(2024, 11, 15, 10, 0, 0, 0)


@pytest.fixture
def totesys(new_database):
    url = new_database("src")
    with psycopg.connect(url) as conn:
        create_totesys_schema(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def warehouse(new_database):
    with psycopg.connect(new_database("wh"), autocommit=True) as conn:
        ensure_warehouse_schema(conn, "public")
        yield conn


AWKWARD_TEXT = ["", 'quote " inside', "comma, inside", "new\nline", "back\\slash", "Ünïcödé ✓", "  spaces  ", "NULL", r"\N"]


def test_copy_round_trip_keeps_nulls_empty_strings_and_awkward_text(totesys):
    rows = [
        {
            "address_id": i + 1,
            "address_line_1": text,
            "address_line_2": None if i % 2 else text,
            "district": None,
            "city": "c",
            "postal_code": "p",
            "country": "x",
            "phone": "1",
            "created_at": T0,
            "last_updated": T0,
        }
        for i, text in enumerate(AWKWARD_TEXT)
    ]
    data = pa.Table.from_pylist(rows, schema=source_schema(SOURCE["address"]))
    with totesys.cursor() as cur:
        assert copy_in_batches(cur, sql.Identifier("address"), data.column_names, data.to_batches()) == len(rows)
    back = pa.Table.from_batches(list(extract_batches(totesys, SOURCE["address"], Window(None, T2))))
    assert back.sort_by("address_id").to_pylist() == rows


def test_copy_out_keeps_exact_types(totesys):
    query = sql.SQL(
        "SELECT 2147483647::int, 12345678.91::numeric(10,2), '2024-02-29 23:59:59.999'::timestamp(3), true, NULL::int"
    )
    schema = pa.schema(
        [("i", pa.int32()), ("n", pa.decimal128(10, 2)), ("t", pa.timestamp("ms")), ("b", pa.bool_()), ("z", pa.int32())]
    )
    with totesys.cursor() as cur:
        (batch,) = list(copy_out_batches(cur, query, schema))
    assert batch.to_pylist() == [
        {"i": 2147483647, "n": Decimal("12345678.91"), "t": datetime(2024, 2, 29, 23, 59, 59, 999000), "b": True, "z": None}
    ]


SERIES = sql.SQL("SELECT g, 'row ' || g, '2024-11-15'::timestamp(3) + g * interval '1 second' FROM generate_series(1, 50000) g")
SERIES_SCHEMA = pa.schema([("g", pa.int32()), ("s", pa.string()), ("t", pa.timestamp("ms"))])


def test_copy_out_streams_many_blocks_in_order_with_nothing_lost(totesys):
    with totesys.cursor() as cur:
        batches = list(copy_out_batches(cur, SERIES, SERIES_SCHEMA, batch_rows=1000))
    assert len(batches) > 10  # many blocks went through the reading thread
    assert max(b.num_rows for b in batches) < 5000  # each bounded by the batch size, not the result
    ids = pa.concat_arrays([b.column("g") for b in batches]).to_pylist()
    assert ids == list(range(1, 50001))
    assert batches[-1].to_pylist()[-1] == {"g": 50000, "s": "row 50000", "t": datetime(2024, 11, 15, 13, 53, 20)}


def test_a_value_that_does_not_fit_raises_and_the_connection_stays_usable(totesys):
    bad = sql.SQL("SELECT g, 'x', CASE WHEN g = 40000 THEN 'not a time' ELSE '2024-11-15' END FROM generate_series(1, 50000) g")
    with totesys.cursor() as cur, pytest.raises(pa.ArrowInvalid, match="not a time"):
        for _ in copy_out_batches(cur, bad, SERIES_SCHEMA, batch_rows=1000):
            pass
    assert totesys.execute("SELECT 1").fetchone() == (1,)


def test_a_reader_that_stops_early_cancels_the_copy_and_leaves_the_connection_usable(totesys):
    import threading

    with totesys.cursor() as cur:
        stream = copy_out_batches(cur, SERIES, SERIES_SCHEMA, batch_rows=1000)
        first = next(stream)
        stream.close()
    assert first.column("g").to_pylist()[0] == 1
    assert not [t for t in threading.enumerate() if t.name == "copy-out"]
    assert totesys.execute("SELECT count(*) FROM generate_series(1, 3)").fetchone() == (3,)


def test_a_failing_query_raises_its_database_error(totesys):
    with totesys.cursor() as cur, pytest.raises(psycopg.errors.UndefinedTable):
        list(copy_out_batches(cur, sql.SQL("SELECT * FROM no_such_table"), SERIES_SCHEMA))
    assert totesys.execute("SELECT 1").fetchone() == (1,)


def test_an_empty_result_gives_no_batches(totesys):
    assert list(extract_batches(totesys, SOURCE["staff"], Window(None, T2))) == []


def test_the_window_reads_from_its_start(totesys):
    totesys.execute(
        "INSERT INTO department (department_name, created_at, last_updated) VALUES ('a', %s, %s), ('b', %s, %s), ('c', %s, %s)",
        (T0, T0, T1, T1, T2, T2),
    )
    read = pa.Table.from_batches(list(extract_batches(totesys, SOURCE["department"], Window(T1, T2))))
    assert sorted(read.column("department_name").to_pylist()) == ["b", "c"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("ALTER TABLE staff ADD COLUMN nickname text", "column nickname is new"),
        ("ALTER TABLE staff DROP COLUMN email_address", "column email_address is missing"),
        ("ALTER TABLE staff RENAME COLUMN last_name TO surname", "column last_name is missing"),
        ("ALTER TABLE staff ALTER COLUMN first_name TYPE varchar(20)", "column first_name has data_type"),
        ("ALTER TABLE staff ALTER COLUMN email_address DROP NOT NULL", "column email_address became nullable"),
        ("ALTER TABLE payment ALTER COLUMN payment_amount TYPE numeric(12,4)", "column payment_amount has numeric_precision"),
    ],
)
def test_schema_drift_breaks_the_contract_and_names_table_and_column(totesys, change, expected):
    for table in SOURCE.values():
        check_contract(totesys, table)  # the DDL we built honours every contract
    totesys.execute(change)
    table = change.split()[2]
    with pytest.raises(ContractViolation, match=expected) as err:
        check_contract(totesys, SOURCE[table])
    assert err.value.table == table


def dim_location_rows(version: datetime, phone: str) -> pa.Table:
    row = {
        "location_id": 1,
        "address_line_1": "1 Lane",
        "address_line_2": None,
        "district": None,
        "city": "Leeds",
        "postal_code": "LS1",
        "country": "UK",
        "phone": phone,
        "_version": [version],
    }
    return pa.Table.from_pylist([row], schema=processed_schema(WAREHOUSE["dim_location"]))


def load(conn, table: str, data: pa.Table):
    return load_batches(conn, "public", WAREHOUSE[table], data.to_batches(), run_id="r", manifest_key="k")


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


def purchase_row(**overrides) -> dict:
    row = {"purchase_order_id": 1, "created_date": date(2024, 11, 15), "created_time": time(9), "last_updated_date": date(2024, 11, 15),
           "last_updated_time": time(9), "staff_id": 1, "counterparty_id": 1, "item_code": "ABC", "item_quantity": 1,
           "item_unit_price": Decimal("3.00"), "currency_id": 1, "agreed_delivery_date": date(2024, 11, 15),
           "agreed_payment_date": date(2024, 11, 15), "agreed_delivery_location_id": 1}  # fmt: skip
    return row | overrides


def add_dimension_rows(wh, *, staff: bool = True) -> None:
    wh.execute("INSERT INTO dim_date VALUES ('2024-11-15', 2024, 11, 15, 5, 'Friday', 'November', 4) ON CONFLICT DO NOTHING")
    wh.execute("INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound Sterling') ON CONFLICT DO NOTHING")
    wh.execute("INSERT INTO dim_counterparty VALUES (1, 'Co', 'l1', NULL, NULL, 'c', 'p', 'x', '1') ON CONFLICT DO NOTHING")
    wh.execute("INSERT INTO dim_location VALUES (1, 'l1', NULL, NULL, 'c', 'p', 'x', '1') ON CONFLICT DO NOTHING")
    if staff:
        wh.execute("INSERT INTO dim_staff VALUES (1, 'A', 'B', 'Sales', 'Leeds', 'a@b') ON CONFLICT DO NOTHING")


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
