"""What the warehouse must hold, computed by SQL over the source, independently of include/.

The queries restate ../shared/spec/totesys.md section 2 directly in SQL; they share no code with
the transform. Dimensions: the current source rows. Facts: every version the pipeline has seen,
so after each run the expected facts are those already loaded plus the source's current rows.
"""

from __future__ import annotations

from collections import Counter

import psycopg

# The ISO 4217 names the spec gives (GBP -> Pound Sterling, USD -> US Dollar, EUR -> Euro).
ISO_NAMES = "CASE currency_code WHEN 'GBP' THEN 'Pound Sterling' WHEN 'USD' THEN 'US Dollar' WHEN 'EUR' THEN 'Euro' WHEN 'JPY' THEN 'Yen' END"

DIMENSION_SQL = {
    "dim_location": "SELECT address_id, address_line_1, address_line_2, district, city, postal_code, country, phone FROM address",
    "dim_counterparty": """
        SELECT c.counterparty_id, c.counterparty_legal_name, a.address_line_1, a.address_line_2, a.district, a.city,
               a.postal_code, a.country, a.phone
        FROM counterparty c JOIN address a ON a.address_id = c.legal_address_id""",
    "dim_staff": """
        SELECT s.staff_id, s.first_name, s.last_name, d.department_name, d.location, s.email_address
        FROM staff s JOIN department d ON d.department_id = s.department_id""",
    "dim_currency": f"SELECT currency_id, currency_code, {ISO_NAMES} FROM currency",
    "dim_design": "SELECT design_id, design_name, file_location, file_name FROM design",
    "dim_payment_type": "SELECT payment_type_id, payment_type_name::text FROM payment_type",
    "dim_transaction": "SELECT transaction_id, transaction_type::text, sales_order_id, purchase_order_id FROM transaction",
}

FACT_SQL = {
    "fact_sales_order": """
        SELECT sales_order_id, created_at::date, created_at::time, last_updated::date, last_updated::time, staff_id,
               counterparty_id, units_sold, unit_price, currency_id, design_id, agreed_payment_date::date,
               agreed_delivery_date::date, agreed_delivery_location_id
        FROM sales_order""",
    "fact_purchase_orders": """
        SELECT purchase_order_id, created_at::date, created_at::time, last_updated::date, last_updated::time, staff_id,
               counterparty_id, item_code, item_quantity, item_unit_price, currency_id, agreed_delivery_date::date,
               agreed_payment_date::date, agreed_delivery_location_id
        FROM purchase_order""",
    "fact_payment": """
        SELECT payment_id, created_at::date, created_at::time, last_updated::date, last_updated::time, transaction_id,
               counterparty_id, payment_amount, currency_id, payment_type_id, paid, payment_date::date
        FROM payment""",
}

WAREHOUSE_SQL = {
    "dim_location": "SELECT location_id, address_line_1, address_line_2, district, city, postal_code, country, phone FROM {s}.dim_location",
    "dim_counterparty": """SELECT counterparty_id, counterparty_legal_name, counterparty_legal_address_line_1,
        counterparty_legal_address_line_2, counterparty_legal_district, counterparty_legal_city, counterparty_legal_postal_code,
        counterparty_legal_country, counterparty_legal_phone_number FROM {s}.dim_counterparty""",
    "dim_staff": "SELECT staff_id, first_name, last_name, department_name, location, email_address FROM {s}.dim_staff",
    "dim_currency": "SELECT currency_id, currency_code, currency_name FROM {s}.dim_currency",
    "dim_design": "SELECT design_id, design_name, file_location, file_name FROM {s}.dim_design",
    "dim_payment_type": "SELECT payment_type_id, payment_type_name FROM {s}.dim_payment_type",
    "dim_transaction": "SELECT transaction_id, transaction_type, sales_order_id, purchase_order_id FROM {s}.dim_transaction",
    "fact_sales_order": """SELECT sales_order_id, created_date, created_time, last_updated_date, last_updated_time, sales_staff_id,
        counterparty_id, units_sold, unit_price, currency_id, design_id, agreed_payment_date, agreed_delivery_date,
        agreed_delivery_location_id FROM {s}.fact_sales_order""",
    "fact_purchase_orders": """SELECT purchase_order_id, created_date, created_time, last_updated_date, last_updated_time, staff_id,
        counterparty_id, item_code, item_quantity, item_unit_price, currency_id, agreed_delivery_date, agreed_payment_date,
        agreed_delivery_location_id FROM {s}.fact_purchase_orders""",
    "fact_payment": """SELECT payment_id, created_date, created_time, last_updated_date, last_updated_time, transaction_id,
        counterparty_id, payment_amount, currency_id, payment_type_id, paid, payment_date FROM {s}.fact_payment""",
    "dim_date": "SELECT date_id, year, month, day, day_of_week, day_name, month_name, quarter FROM {s}.dim_date",
}

DATE_ROW_SQL = """
    SELECT d, extract(year FROM d)::int, extract(month FROM d)::int, extract(day FROM d)::int, extract(isodow FROM d)::int,
           to_char(d, 'FMDay'), to_char(d, 'FMMonth'), extract(quarter FROM d)::int
    FROM unnest(%s::date[]) AS t(d)"""


def rows(conn: psycopg.Connection, query: str, *params) -> list[tuple]:
    return [tuple(r) for r in conn.execute(query, params or None).fetchall()]


def warehouse_rows(wh: psycopg.Connection, schema: str, table: str) -> Counter:
    return Counter(rows(wh, WAREHOUSE_SQL[table].format(s=f'"{schema}"')))


def warehouse_snapshot(wh: psycopg.Connection, schema: str) -> dict[str, Counter]:
    return {t: warehouse_rows(wh, schema, t) for t in WAREHOUSE_SQL}


def expected_warehouse(
    src: psycopg.Connection, wh: psycopg.Connection, schema: str, facts_before: dict[str, Counter] | None
) -> dict[str, Counter]:
    """The warehouse the spec requires now: dimensions = current source; facts = versions loaded
    before plus the current version of every source row (each version once); dim_date = exactly the
    dates those facts refer to, with ISO attributes computed by PostgreSQL."""
    expected: dict[str, Counter] = {t: Counter(rows(src, q)) for t, q in DIMENSION_SQL.items()}
    for t, q in FACT_SQL.items():
        seen = set(facts_before.get(t, Counter())) if facts_before else set()
        expected[t] = Counter(seen | set(rows(src, q)))
    dates = sorted(
        {r[c] for t in ("fact_sales_order", "fact_purchase_orders") for r in expected[t] for c in (1, 3, 11, 12)}
        | {r[c] for r in expected["fact_payment"] for c in (1, 3, 11)}
    )
    expected["dim_date"] = Counter(rows(wh, DATE_ROW_SQL, dates))
    return expected


def assert_warehouse_equals(actual: dict[str, Counter], expected: dict[str, Counter]) -> None:
    for table, want in expected.items():
        got = actual[table]
        missing, extra = want - got, got - want
        assert not missing, f"{table}: {sum(missing.values())} expected row(s) missing, e.g. {list(missing)[:2]}"
        assert not extra, f"{table}: {sum(extra.values())} unexpected or duplicated row(s), e.g. {list(extra)[:2]}"


def registry_inputs(table, column) -> set[tuple[str, str]]:
    """What include/registry.py says a warehouse column is computed from, as (source table,
    column) pairs, read from its declarations (not from include/lineage.py, which the lineage
    tests check): a fact's serial key from nothing, the calendar from every date a fact refers to."""
    from include.registry import calendar_inputs

    if column.serial:
        return set()
    if table.kind == "calendar":
        return {(source, c) for source, columns in calendar_inputs().items() for c in columns}
    return {table.input_of(column)}
