"""Warehouse rows for the load and quarantine tests, and a load with fixed run and manifest."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pyarrow as pa

from include.derive import processed_schema
from include.load import load_batches
from include.registry import WAREHOUSE

T0 = datetime(2024, 11, 15, 9, 30, 5, 123000)
T1 = datetime(2024, 11, 15, 9, 45, 0, 1000)
T2 = datetime(2024, 11, 15, 10, 0, 0, 0)


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


def add_sales_dimensions(wh, days) -> None:
    """dim_date rows for ``days`` and the one counterparty, design and location a sales order needs."""
    from include.derive import dim_date

    for row in dim_date(pa.array(days, pa.date32())).to_pylist():
        wh.execute("INSERT INTO dim_date VALUES (%(date_id)s, %(year)s, %(month)s, %(day)s, %(day_of_week)s, "
                   "%(day_name)s, %(month_name)s, %(quarter)s)", row)  # fmt: skip
    wh.execute("INSERT INTO dim_counterparty VALUES (1, 'Co', 'l1', NULL, NULL, 'City', 'P1', 'UK', '0123')")
    wh.execute("INSERT INTO dim_design VALUES (1, 'Bag', '/d', 'bag.json')")
    wh.execute("INSERT INTO dim_location VALUES (1, 'l1', NULL, NULL, 'City', 'P1', 'UK', '0123')")
