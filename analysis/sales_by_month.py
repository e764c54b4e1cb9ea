"""Sales per month per currency from the warehouse, as a table and a PNG line chart.

    python -m analysis.sales_by_month --url postgresql://.../warehouse --out docs/img/sales_by_month.png

Sales = units_sold * unit_price of fact_sales_order, each sales order counted once at its latest
version (the warehouse keeps one row per version of an order), in the month of its order date
(created_date), per currency: amounts in different currencies are never added together.
The schema is --schema, else $TOTES_WAREHOUSE_SCHEMA, else public. The connection is read-only.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

QUERY = """
WITH latest AS (
    -- one row per sales order: its latest version
    SELECT DISTINCT ON (sales_order_id)
           sales_order_id, created_date, units_sold, unit_price, currency_id
      FROM {fact_sales_order}
     ORDER BY sales_order_id, last_updated_date DESC, last_updated_time DESC
)
SELECT date_trunc('month', l.created_date)::date AS month,
       c.currency_code,
       count(*)                                  AS orders,
       sum(l.units_sold)                         AS units,
       sum(l.units_sold * l.unit_price)          AS sales
  FROM latest l
  JOIN {dim_currency} c ON c.currency_id = l.currency_id
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


@dataclass(frozen=True)
class MonthlySales:
    month: date  # the first day of the month
    currency: str
    orders: int
    units: int
    sales: Decimal


def sales_query(schema: str) -> sql.Composed:
    return sql.SQL(QUERY).format(
        fact_sales_order=sql.Identifier(schema, "fact_sales_order"), dim_currency=sql.Identifier(schema, "dim_currency")
    )


def sales_by_month(conn: psycopg.Connection, schema: str = "public") -> list[MonthlySales]:
    with conn.cursor() as cur:
        cur.execute(sales_query(schema))
        return [MonthlySales(month, currency, orders, int(units), sales) for month, currency, orders, units, sales in cur]


def month_range(first: date, last: date) -> list[date]:
    """Every first-of-month from ``first`` to ``last`` (both firsts of months), in order."""
    months = [first]
    while months[-1] < last:
        m = months[-1]
        months.append(date(m.year + m.month // 12, m.month % 12 + 1, 1))
    return months


def plot(rows: list[MonthlySales], out: Path, title: str = "Terrific Totes: sales by month and currency") -> Path:
    """A line per currency: sales (in that currency) for each month. Written as PNG to ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    if not rows:
        raise ValueError("no sales to plot: the warehouse's fact_sales_order is empty")
    months = month_range(rows[0].month, rows[-1].month)
    active = {r.month for r in rows}
    sales = {(r.month, r.currency): float(r.sales) for r in rows}
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    for currency in sorted({r.currency for r in rows}):
        # a month with orders but none in this currency sold 0 in it; a month with no order at
        # all has no data (the warehouse does not cover it): the line breaks there
        values = [sales.get((m, currency), 0.0 if m in active else float("nan")) for m in months]
        ax.plot(months, values, marker="o", markersize=3, linewidth=1.6, label=currency)
    ax.set_title(title)
    ax.set_xlabel("month of order (created_date)")
    ax.set_ylabel("sales = units_sold x unit_price (in each currency)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value / 1e6:,.1f} M" if value >= 1e6 else f"{value:,.0f}"))
    ax.set_ylim(bottom=0)  # from zero: month-to-month changes at their true size
    ax.grid(True, alpha=0.3)
    ax.legend(title="currency", loc="lower left")
    first, last = rows[0].month, rows[-1].month
    fig.text(
        0.01,
        0.01,
        f"{first:%b %Y} to {last:%b %Y}. Each sales order counted once, at its latest version. "
        "Gaps: months without any order. The last month may be partial.",
        fontsize=8,
        color="dimgray",
    )
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def format_table(rows: list[MonthlySales]) -> str:
    lines = [f"{'month':<8} {'currency':<8} {'orders':>7} {'units':>9} {'sales':>16}"]
    lines += [f"{r.month:%Y-%m}  {r.currency:<8} {r.orders:>7,} {r.units:>9,} {r.sales:>16,.2f}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.sales_by_month", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("TOTES_WAREHOUSE_URL"), help="warehouse libpq URL ($TOTES_WAREHOUSE_URL)")
    parser.add_argument("--schema", default=os.environ.get("TOTES_WAREHOUSE_SCHEMA") or "public")
    parser.add_argument("--out", type=Path, default=Path("docs/img/sales_by_month.png"), help="PNG to write")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set TOTES_WAREHOUSE_URL")
    with psycopg.connect(args.url, connect_timeout=10, options="-c default_transaction_read_only=on") as conn:
        conn.read_only = True
        rows = sales_by_month(conn, args.schema)
    print(format_table(rows))
    plot(rows, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
