"""The pure transforms, on small hand-made frames (no database, no S3)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest

from include.derive import (
    TransformError,
    affected_ids,
    dim_date,
    join_rows,
    latest_versions,
    processed_schema,
    referenced_dates,
    versions,
    warehouse_rows,
)
from include.ingest import source_schema
from include.registry import SOURCE, WAREHOUSE

T0 = datetime(2024, 11, 15, 9, 30, 5, 123000)
T1 = datetime(2024, 11, 16, 7, 55, 11, 456000)


def table(name: str, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=source_schema(SOURCE[name]))


def address(i: int, phone: str = "0000 000000", updated: datetime = T0) -> dict:
    return {
        "address_id": i,
        "address_line_1": f"{i} Long Lane",
        "address_line_2": None,
        "district": "Avon",
        "city": "Leeds",
        "postal_code": "LS1",
        "country": "UK",
        "phone": phone,
        "created_at": T0,
        "last_updated": updated,
    }


def counterparty(i: int, address_id: int, updated: datetime = T0) -> dict:
    return {
        "counterparty_id": i,
        "counterparty_legal_name": f"Co {i}",
        "legal_address_id": address_id,
        "commercial_contact": None,
        "delivery_contact": "Ann",
        "created_at": T0,
        "last_updated": updated,
    }


def build(warehouse_table: str, source_rows: pa.Table) -> pa.Table:
    """The warehouse rows, asserting that nothing was rejected."""
    built = warehouse_rows(WAREHOUSE[warehouse_table], source_rows)
    assert built.rejected is None, built.rejected.to_pylist()
    return built.rows


def sales_order(i: int, **overrides) -> dict:
    row = {
        "sales_order_id": i,
        "created_at": T0,
        "last_updated": T1,
        "design_id": 3,
        "staff_id": 19,
        "counterparty_id": 8,
        "units_sold": 42972,
        "unit_price": Decimal("3.94"),
        "currency_id": 2,
        "agreed_delivery_date": "2024-11-20",
        "agreed_payment_date": "2024-11-18",
        "agreed_delivery_location_id": 8,
    }
    return row | overrides


def test_fact_sales_order_splits_timestamps_parses_dates_and_renames_staff():
    out = build("fact_sales_order", table("sales_order", [sales_order(7)]))
    assert out.schema == processed_schema(WAREHOUSE["fact_sales_order"])
    (row,) = out.to_pylist()
    assert row == {
        "sales_order_id": 7,
        "created_date": date(2024, 11, 15),
        "created_time": time(9, 30, 5, 123000),
        "last_updated_date": date(2024, 11, 16),
        "last_updated_time": time(7, 55, 11, 456000),
        "sales_staff_id": 19,
        "counterparty_id": 8,
        "units_sold": 42972,
        "unit_price": Decimal("3.94"),
        "currency_id": 2,
        "design_id": 3,
        "agreed_payment_date": date(2024, 11, 18),
        "agreed_delivery_date": date(2024, 11, 20),
        "agreed_delivery_location_id": 8,
    }
    assert out.schema.field("unit_price").type == pa.decimal128(10, 2)
    assert out.schema.field("sales_order_id").type == pa.int32()


@pytest.mark.parametrize("bad", ["2024-13-01", "15/11/2024", "2024-1-5", "", "yesterday", "2024-02-30"])
def test_a_row_whose_date_is_not_yyyy_mm_dd_is_rejected_with_the_reason_and_the_rest_loads(bad):
    rows = table("sales_order", [sales_order(1), sales_order(2, agreed_payment_date=bad)])
    built = warehouse_rows(WAREHOUSE["fact_sales_order"], rows)
    assert built.rows.column("sales_order_id").to_pylist() == [1]
    (rejected,) = built.rejected.to_pylist()
    assert rejected["sales_order_id"] == 2
    assert rejected["_reason"] == f"agreed_payment_date is not a YYYY-MM-DD date: {bad}"


def test_fact_payment_drops_account_numbers():
    row = {
        "payment_id": 2,
        "created_at": T0,
        "last_updated": T1,
        "transaction_id": 2,
        "counterparty_id": 15,
        "payment_amount": Decimal("552548.62"),
        "currency_id": 2,
        "payment_type_id": 3,
        "paid": True,
        "payment_date": "2024-11-16",
        "company_ac_number": 67305075,
        "counterparty_ac_number": 31622269,
    }
    out = build("fact_payment", table("payment", [row]))
    assert "company_ac_number" not in out.column_names
    assert out.to_pylist()[0]["payment_amount"] == Decimal("552548.62")
    assert out.to_pylist()[0]["paid"] is True


def test_dim_currency_names_from_iso_4217_and_unknown_codes_fail():
    rows = [
        {"currency_id": i, "currency_code": c, "created_at": T0, "last_updated": T0}
        for i, c in enumerate(["GBP", "USD", "EUR"], 1)
    ]
    out = build("dim_currency", table("currency", rows))
    assert out.column("currency_name").to_pylist() == ["Pound Sterling", "US Dollar", "Euro"]
    unknown = {"currency_id": 4, "currency_code": "XYZ", "created_at": T0, "last_updated": T0}
    built = warehouse_rows(WAREHOUSE["dim_currency"], table("currency", [*rows, unknown]))
    assert built.rows.num_rows == 3
    assert built.rejected.to_pylist()[0]["_reason"] == "currency_code is not an ISO 4217 currency code: XYZ"


def test_dim_transaction_keeps_null_order_ids_as_integer_nulls():
    rows = [
        {
            "transaction_id": 1,
            "transaction_type": "PURCHASE",
            "sales_order_id": None,
            "purchase_order_id": 2,
            "created_at": T0,
            "last_updated": T0,
        },
        {
            "transaction_id": 2,
            "transaction_type": "SALE",
            "sales_order_id": 5,
            "purchase_order_id": None,
            "created_at": T0,
            "last_updated": T0,
        },
    ]
    out = build("dim_transaction", table("transaction", rows))
    assert out.schema.field("sales_order_id").type == pa.int32()
    assert out.column("sales_order_id").to_pylist() == [None, 5]
    assert out.column("purchase_order_id").to_pylist() == [2, None]


def test_dim_date_uses_iso_conventions():
    out = dim_date(pa.array([date(2024, 11, 17), date(2024, 1, 1), date(2024, 11, 17), date(2023, 7, 4)], pa.date32()))
    rows = {r["date_id"]: r for r in out.to_pylist()}
    assert len(rows) == 3
    assert rows[date(2024, 11, 17)] == {
        "date_id": date(2024, 11, 17),
        "year": 2024,
        "month": 11,
        "day": 17,
        "day_of_week": 7,
        "day_name": "Sunday",
        "month_name": "November",
        "quarter": 4,
    }
    assert rows[date(2024, 1, 1)]["day_of_week"] == 1
    assert rows[date(2024, 1, 1)]["day_name"] == "Monday"
    assert rows[date(2023, 7, 4)]["quarter"] == 3


def test_referenced_dates_cover_every_date_column_of_a_fact():
    found = set(referenced_dates("sales_order", table("sales_order", [sales_order(1)])).to_pylist())
    assert found == {date(2024, 11, 15), date(2024, 11, 16), date(2024, 11, 20), date(2024, 11, 18)}


def test_a_changed_address_rebuilds_every_counterparty_using_it():
    addresses = table("address", [address(1), address(2)])
    counterparties = table("counterparty", [counterparty(10, 1), counterparty(11, 2), counterparty(12, 1)])
    changed_address = table("address", [address(1, phone="9999 999999", updated=T1)])
    state = latest_versions([addresses, changed_address], "address_id")
    join = WAREHOUSE["dim_counterparty"]
    ids = affected_ids(join, counterparties.slice(0, 0), changed_address, counterparties)
    assert sorted(ids.to_pylist()) == [10, 12]
    out = build("dim_counterparty", join_rows(join, ids, counterparties, state))
    assert out.column("counterparty_legal_phone_number").to_pylist() == ["9999 999999", "9999 999999"]
    assert out.column("_version").to_pylist() == [[T0, T1], [T0, T1]]


def test_a_changed_department_rebuilds_its_staff_and_a_missing_partner_is_an_error():
    dept = [
        {
            "department_id": 1,
            "department_name": "Dispatch",
            "location": "Leds",
            "manager": None,
            "created_at": T0,
            "last_updated": T0,
        }
    ]
    staff_rows = [
        {
            "staff_id": i,
            "first_name": "A",
            "last_name": "B",
            "department_id": d,
            "email_address": "a@b",
            "created_at": T0,
            "last_updated": T0,
        }
        for i, d in [(1, 1), (2, 1)]
    ]
    staff, departments = table("staff", staff_rows), table("department", dept)
    join = WAREHOUSE["dim_staff"]
    ids = affected_ids(join, staff.slice(0, 0), departments, staff)
    out = build("dim_staff", join_rows(join, ids, staff, departments))
    assert out.column("location").to_pylist() == ["Leds", "Leds"]
    orphan = table("staff", [staff_rows[0] | {"staff_id": 3, "department_id": 42}])
    with pytest.raises(TransformError, match="never seen"):
        join_rows(join, pa.array([3], pa.int32()), orphan, departments)


def test_latest_versions_keeps_the_newest_row_per_key_in_any_order():
    old, new = address(1, "old", T0), address(1, "new", T1)
    for order in ([old, new], [new, old]):
        out = latest_versions([table("address", [r]) for r in order], "address_id")
        assert out.column("phone").to_pylist() == ["new"]


def test_versions_lists_each_rows_contributing_timestamps():
    a = pa.array([T0, T1], pa.timestamp("ms"))
    b = pa.array([T1, T0], pa.timestamp("ms"))
    assert versions(a, b).to_pylist() == [[T0, T1], [T1, T0]]
    assert versions(a).to_pylist() == [[T0], [T1]]


def test_a_null_where_the_warehouse_forbids_it_is_rejected():
    cps = table("counterparty", [counterparty(1, 1)])
    bad_address = pa.Table.from_pylist([address(1) | {"city": None}], schema=source_schema(SOURCE["address"]))
    joined = join_rows(WAREHOUSE["dim_counterparty"], pa.array([1], pa.int32()), cps, bad_address)
    built = warehouse_rows(WAREHOUSE["dim_counterparty"], joined)
    assert built.rows.num_rows == 0
    assert built.rejected.to_pylist()[0]["_reason"] == "counterparty_legal_city is NULL: NULL"
