"""analysis.sales_by_month against a small real warehouse: its numbers equal an independent SQL
computation and a hand count, and `python -m analysis.sales_by_month` writes a real PNG."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from analysis.sales_by_month import MonthlySales, month_range, sales_by_month
from include.ddl import ensure_warehouse_schema
from tests.conftest import ROOT

SCHEMA = "project_team_3"
CURRENCIES = {1: ("GBP", "Pound Sterling"), 2: ("USD", "US Dollar"), 3: ("EUR", "Euro")}

# (sales_order_id, last_updated, created_date, units_sold, unit_price, currency_id)
ORDERS = [
    (1, "2024-01-05 10:00:00", "2024-01-05", 10, "2.50", 1),
    (2, "2024-01-20 11:00:00", "2024-01-20", 3, "100.00", 1),
    (3, "2024-01-31 23:59:59", "2024-01-31", 7, "3.33", 2),
    # order 4: three versions; only the last counts (and the last has a later date, earlier time)
    (4, "2024-02-01 09:00:00", "2024-02-01", 1, "1.00", 1),
    (4, "2024-02-02 23:00:00", "2024-02-01", 2, "1.00", 1),
    (4, "2024-02-03 01:00:00", "2024-02-01", 40, "12.25", 1),
    # order 5 changes currency in its second version
    (5, "2024-02-10 08:00:00", "2024-02-10", 5, "20.00", 2),
    (5, "2024-02-11 08:00:00", "2024-02-10", 5, "18.00", 3),
    (6, "2024-03-01 00:00:00", "2024-03-01", 1000, "99999.99", 3),  # large: exact decimals
    (7, "2024-05-31 12:00:00", "2024-05-31", 1, "5.00", 1),  # after a month with no order (a gap in the plot)
]
EXPECTED = [
    MonthlySales(date(2024, 1, 1), "GBP", 2, 13, Decimal("325.00")),
    MonthlySales(date(2024, 1, 1), "USD", 1, 7, Decimal("23.31")),
    MonthlySales(date(2024, 2, 1), "EUR", 1, 5, Decimal("90.00")),
    MonthlySales(date(2024, 2, 1), "GBP", 1, 40, Decimal("490.00")),
    MonthlySales(date(2024, 3, 1), "EUR", 1, 1000, Decimal("99999990.00")),
    MonthlySales(date(2024, 5, 1), "GBP", 1, 1, Decimal("5.00")),
]

# An independent formulation: the latest version found with NOT EXISTS (not DISTINCT ON), the
# month from dim_date's year and month (not date_trunc), the currency joined by code afterwards.
INDEPENDENT = """
SELECT d.year, d.month, c.currency_code, sum(f.units_sold * f.unit_price)
  FROM {fact} f
  JOIN {dim_date} d ON d.date_id = f.created_date
  JOIN {dim_currency} c ON c.currency_id = f.currency_id
 WHERE NOT EXISTS (
        SELECT 1 FROM {fact} newer
         WHERE newer.sales_order_id = f.sales_order_id
           AND (newer.last_updated_date + newer.last_updated_time) > (f.last_updated_date + f.last_updated_time))
 GROUP BY d.year, d.month, c.currency_code
"""


def t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


@pytest.fixture
def warehouse_url(new_database) -> str:
    url = new_database("analysis")
    rows = [(o, datetime.fromisoformat(lu), date.fromisoformat(cd), u, Decimal(p), c) for o, lu, cd, u, p, c in ORDERS]
    dates = {d for _, lu, cd, *_ in rows for d in (lu.date(), cd)} | {date(2024, 4, 1)}  # 04-01: agreed dates
    with psycopg.connect(url) as conn:
        ensure_warehouse_schema(conn, SCHEMA)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(t("dim_date")),
                [(d, d.year, d.month, d.day, d.isoweekday(), f"{d:%A}", f"{d:%B}", (d.month - 1) // 3 + 1) for d in dates],
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(t("dim_currency")),
                [(i, code, name) for i, (code, name) in CURRENCIES.items()],
            )
            cur.execute(
                sql.SQL("INSERT INTO {} VALUES (1, 'Jane', 'Doe', 'Sales', 'Leeds', 'jane@example.com')").format(t("dim_staff"))
            )
            cur.execute(sql.SQL("INSERT INTO {} VALUES (1, 'Tote', '/designs', 'tote.json')").format(t("dim_design")))
            cur.execute(
                sql.SQL("INSERT INTO {} VALUES (1, '1 Road', NULL, NULL, 'Leeds', 'LS1', 'UK', '0113')").format(t("dim_location"))
            )
            cur.execute(
                sql.SQL("INSERT INTO {} VALUES (1, 'Acme', '1 Road', NULL, NULL, 'Leeds', 'LS1', 'UK', '0113')").format(
                    t("dim_counterparty")
                )
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (sales_order_id, created_date, created_time, last_updated_date, last_updated_time,"
                    " sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, design_id, agreed_payment_date,"
                    " agreed_delivery_date, agreed_delivery_location_id)"
                    " VALUES (%s, %s, '09:00', %s, %s, 1, 1, %s, %s, %s, 1, '2024-04-01', '2024-04-01', 1)"
                ).format(t("fact_sales_order")),
                [(o, cd, lu.date(), lu.time(), u, p, c) for o, lu, cd, u, p, c in rows],
            )
    return url


def test_the_query_equals_a_hand_count_and_an_independent_query(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        got = sales_by_month(conn, SCHEMA)
        independent = conn.execute(
            sql.SQL(INDEPENDENT).format(fact=t("fact_sales_order"), dim_date=t("dim_date"), dim_currency=t("dim_currency"))
        ).fetchall()
    assert got == EXPECTED
    assert {(r.month.year, r.month.month, r.currency): r.sales for r in got} == {(y, m, c): s for y, m, c, s in independent}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    assert data[-12:-4] == b"\x00\x00\x00\x00IEND"  # ends with the (empty) IEND chunk
    return struct.unpack(">II", data[16:24])


def test_the_command_writes_a_png(warehouse_url, tmp_path):
    out = tmp_path / "img" / "sales_by_month.png"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTES_")}
    env.update({"PYTHONPATH": str(ROOT), "TOTES_WAREHOUSE_SCHEMA": SCHEMA, "MPLCONFIGDIR": str(tmp_path / "mpl")})
    done = subprocess.run(
        [sys.executable, "-m", "analysis.sales_by_month", "--url", warehouse_url, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert png_size(data) == (1210, 605)  # 11 x 5.5 inches at 110 dpi
    assert len(data) > 20_000
    # the printed table carries the same numbers
    assert "2024-03  EUR            1     1,000    99,999,990.00" in done.stdout
    assert f"wrote {out}" in done.stdout


def test_month_range_crosses_years():
    assert month_range(date(2023, 11, 1), date(2024, 2, 1)) == [
        date(2023, 11, 1),
        date(2023, 12, 1),
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]
    assert month_range(date(2024, 5, 1), date(2024, 5, 1)) == [date(2024, 5, 1)]
