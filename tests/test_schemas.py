"""Both DDLs, built from scratch in real PostgreSQL, match the spec exactly (information_schema)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from devtools.totesys.schema import create_totesys_schema
from include.ddl import ensure_warehouse_schema
from tests import spec_tables as spec


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str, bool]]:
    return [
        (name, dtype, nullable == "YES")
        for name, dtype, nullable in conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        )
    ]


def base_tables(conn: psycopg.Connection, schema: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'", (schema,)
        )
    }


def foreign_keys(conn: psycopg.Connection, schema: str) -> dict[tuple[str, str], tuple[str, str, str, str]]:
    rows = conn.execute(
        """
        SELECT kcu.table_name, kcu.column_name, ccu.table_name, ccu.column_name, rc.delete_rule, rc.update_rule
        FROM information_schema.referential_constraints rc
        JOIN information_schema.key_column_usage kcu
          ON kcu.constraint_name = rc.constraint_name AND kcu.constraint_schema = rc.constraint_schema
        JOIN information_schema.constraint_column_usage ccu
          ON ccu.constraint_name = rc.unique_constraint_name AND ccu.constraint_schema = rc.unique_constraint_schema
        WHERE rc.constraint_schema = %s
        """,
        (schema,),
    ).fetchall()
    return {(t, c): (rt, rcol, d, u) for t, c, rt, rcol, d, u in rows}


def primary_keys(conn: psycopg.Connection, schema: str) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        "SELECT tc.table_name, tc.constraint_name, kcu.column_name FROM information_schema.table_constraints tc "
        "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema "
        "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = %s",
        (schema,),
    ).fetchall()
    return {t: (name, col) for t, name, col in rows}


# The foreign-exchange extension (docs/fx_rates.md): not in the spec, written down here by hand,
# independently of include/registry.py.
FX_RATE = [
    ("date_id", spec.DATE, False),
    ("currency_id", spec.INT, False),
    ("units_per_gbp", spec.NUM, False),
    ("rate_date", spec.DATE, False),
    ("source", spec.VARCHAR, False),
]
FX_RATE_FOREIGN_KEYS = {("fx_rate", "date_id"): "dim_date", ("fx_rate", "currency_id"): "dim_currency"}
# The sales targets feed (README "File feeds"), written down by hand too.
SALES_TARGET = [
    ("staff_id", spec.INT, False),
    ("target_month", spec.DATE, False),
    ("currency_id", spec.INT, False),
    ("target_units", spec.INT, False),
    ("target_value", spec.NUM, False),
    ("published_at", spec.TS, False),
    ("source_key", spec.VARCHAR, False),
    ("source_etag", spec.VARCHAR, False),
    ("source_version", spec.VARCHAR, True),
]
SALES_TARGET_FOREIGN_KEYS = {("sales_target", "staff_id"): "dim_staff", ("sales_target", "currency_id"): "dim_currency"}
SALES_IN_GBP = [  # views report every column nullable
    ("sales_record_id", spec.INT, True),
    ("sales_order_id", spec.INT, True),
    ("created_date", spec.DATE, True),
    ("currency_code", spec.VARCHAR, True),
    ("units_sold", spec.INT, True),
    ("unit_price", spec.NUM, True),
    ("amount", spec.NUM, True),
    ("units_per_gbp", spec.NUM, True),
    ("rate_date", spec.DATE, True),
    ("amount_gbp", spec.NUM, True),
]


@pytest.fixture
def totesys(new_database):
    url = new_database("src")
    with psycopg.connect(url) as conn:
        create_totesys_schema(conn)
    with psycopg.connect(url) as conn:
        yield conn


@pytest.fixture
def warehouse_conn(new_database):
    with psycopg.connect(new_database("wh"), autocommit=True) as conn:
        yield conn


def test_totesys_tables_and_columns_match_spec(totesys):
    assert base_tables(totesys, "public") == set(spec.SOURCE)
    for table, expected in spec.SOURCE.items():
        assert columns(totesys, "public", table) == expected, table


def test_totesys_column_details_match_spec(totesys):
    rows = totesys.execute(
        "SELECT table_name, column_name, character_maximum_length, numeric_precision, numeric_scale, datetime_precision, "
        "column_default, udt_name FROM information_schema.columns WHERE table_schema = 'public'"
    ).fetchall()
    by_col = {(t, c): rest for t, c, *rest in rows}
    # currency_code varchar(3); money numeric(10,2); timestamps timestamp(3)
    assert by_col[("currency", "currency_code")][0] == 3
    for t, c in [("sales_order", "unit_price"), ("purchase_order", "item_unit_price"), ("payment", "payment_amount")]:
        assert by_col[(t, c)][1:3] == [10, 2], (t, c)
    for table in spec.SOURCE:
        assert by_col[(table, "created_at")][3] == 3
        assert by_col[(table, "last_updated")][3] == 3
        assert by_col[(table, "created_at")][4] == "CURRENT_TIMESTAMP"
        assert by_col[(table, "last_updated")][4] is None  # the application sets it
        # serial: an integer key fed by its own sequence
        assert by_col[(table, f"{table}_id")][4] == f"nextval('{table}_{table}_id_seq'::regclass)"
    assert by_col[("payment_type", "payment_type_name")][5] == "PaymentTypeName"
    assert by_col[("transaction", "transaction_type")][5] == "TransactionType"


def test_totesys_keys_enums_and_indexes_match_spec(totesys):
    pks = primary_keys(totesys, "public")
    assert pks == {t: (f"{t}_pkey", f"{t}_id") for t in spec.SOURCE}
    assert foreign_keys(totesys, "public") == spec.SOURCE_FOREIGN_KEYS
    enums = {}
    for typname, label in totesys.execute(
        "SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY t.typname, e.enumsortorder"
    ):
        enums.setdefault(typname, []).append(label)
    assert enums == spec.SOURCE_ENUMS
    unique = {
        (t, c)
        for t, c in totesys.execute(
            "SELECT t.relname, a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey) "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND i.indisunique AND NOT i.indisprimary"
        )
    }
    assert unique == spec.SOURCE_UNIQUE


def test_totesys_foreign_key_actions_behave(totesys):
    """ON UPDATE CASCADE and ON DELETE RESTRICT / SET NULL, exercised on real rows."""
    c = totesys
    c.execute(
        "INSERT INTO address (address_line_1, city, postal_code, country, phone, last_updated) VALUES ('1 A St','X','1','Y','2', now())"
    )
    c.execute("INSERT INTO counterparty (counterparty_legal_name, legal_address_id, last_updated) VALUES ('Co', 1, now())")
    c.execute("INSERT INTO department (department_name, last_updated) VALUES ('D', now())")
    c.execute(
        "INSERT INTO staff (first_name, last_name, department_id, email_address, last_updated) VALUES ('a','b',1,'e', now())"
    )
    c.execute("INSERT INTO currency (currency_code, last_updated) VALUES ('GBP', now())")
    c.execute("INSERT INTO design (design_name, file_location, file_name, last_updated) VALUES ('d','/','f', now())")
    c.execute(
        "INSERT INTO sales_order (last_updated, design_id, staff_id, counterparty_id, units_sold, unit_price, currency_id, "
        "agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id) VALUES (now(),1,1,1,10,2.5,1,'2024-01-01','2024-01-02',1)"
    )
    c.execute("INSERT INTO transaction (transaction_type, sales_order_id, last_updated) VALUES ('SALE', 1, now())")
    c.commit()
    # ON UPDATE CASCADE: renumbering an address follows into counterparty and sales_order
    c.execute("UPDATE address SET address_id = 99 WHERE address_id = 1")
    assert c.execute("SELECT legal_address_id FROM counterparty").fetchone()[0] == 99
    assert c.execute("SELECT agreed_delivery_location_id FROM sales_order").fetchone()[0] == 99
    # ON DELETE RESTRICT
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        c.execute("DELETE FROM address")
    c.rollback()
    # ON DELETE SET NULL (transaction -> sales_order)
    c.execute("DELETE FROM sales_order")
    assert c.execute("SELECT sales_order_id FROM transaction").fetchone()[0] is None
    c.rollback()


@pytest.mark.parametrize("schema", ["public", "project_team_3"])
def test_warehouse_matches_spec(warehouse_conn, schema):
    created = ensure_warehouse_schema(warehouse_conn, schema)
    assert set(spec.WAREHOUSE) <= set(created)
    # the 11 star-schema tables, plus the pipeline's seven bookkeeping tables (README), the
    # foreign-exchange extension's rates table (docs/fx_rates.md) and the sales targets feed's
    # table (README, "File feeds")
    assert base_tables(warehouse_conn, schema) == set(spec.WAREHOUSE) | {
        "etl_check_result",
        "etl_dimension_version",
        "etl_file",
        "etl_load_log",
        "etl_outside_write",
        "etl_quarantine",
        "etl_stage_figures",
        "fx_rate",
        "sales_target",
    }
    # each star-schema table records the writes made outside the pipeline (README)
    triggers = warehouse_conn.execute(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal",
        (schema,),
    ).fetchall()
    events = ("insert", "update", "delete", "truncate")
    assert set(triggers) == {(t, f"etl_outside_{e}") for t in spec.WAREHOUSE for e in events}
    for table, expected in spec.WAREHOUSE.items():
        assert columns(warehouse_conn, schema, table) == expected, table
    pks = primary_keys(warehouse_conn, schema)
    for table, col in spec.WAREHOUSE_PRIMARY_KEYS.items():
        assert pks[table][1] == col
    fks = {k: v[0] for k, v in foreign_keys(warehouse_conn, schema).items()}
    assert fks == spec.WAREHOUSE_FOREIGN_KEYS | FX_RATE_FOREIGN_KEYS | SALES_TARGET_FOREIGN_KEYS
    # numeric(10,2) money, serial record ids
    details = {
        (t, c): (p, s, d)
        for t, c, p, s, d in warehouse_conn.execute(
            "SELECT table_name, column_name, numeric_precision, numeric_scale, column_default FROM information_schema.columns "
            "WHERE table_schema = %s",
            (schema,),
        )
    }
    for t, c in [
        ("fact_sales_order", "unit_price"),
        ("fact_purchase_orders", "item_unit_price"),
        ("fact_payment", "payment_amount"),
    ]:
        assert details[(t, c)][:2] == (10, 2)
    for fact, pk in [
        ("fact_sales_order", "sales_record_id"),
        ("fact_purchase_orders", "purchase_record_id"),
        ("fact_payment", "payment_record_id"),
    ]:
        assert details[(fact, pk)][2].startswith("nextval(")
    # the UNIQUE version constraint on each fact
    uniques = {}
    for table, name, col in warehouse_conn.execute(
        "SELECT tc.table_name, tc.constraint_name, kcu.column_name FROM information_schema.table_constraints tc "
        "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema "
        "WHERE tc.constraint_type = 'UNIQUE' AND tc.table_schema = %s ORDER BY kcu.ordinal_position",
        (schema,),
    ):
        uniques.setdefault((table, name), []).append(col)
    assert sorted(cols for (t, _), cols in uniques.items() if t.startswith("fact_")) == sorted(spec.FACT_VERSION_KEYS.values())
    # the compatibility view reads the purchases fact
    view = warehouse_conn.execute(
        "SELECT view_definition FROM information_schema.views WHERE table_schema = %s AND table_name = 'fact_purchase_order'",
        (schema,),
    ).fetchone()
    assert view is not None
    assert "fact_purchase_orders" in view[0]
    assert columns(warehouse_conn, schema, "fact_purchase_order") == [
        (n, t, True)
        for n, t, _ in spec.WAREHOUSE["fact_purchase_orders"]  # views report every column nullable
    ]


@pytest.mark.parametrize("schema", ["public", "project_team_3"])
def test_fx_rate_and_sales_in_gbp_are_created_column_by_column(warehouse_conn, schema):
    created = ensure_warehouse_schema(warehouse_conn, schema)
    assert {"fx_rate", "sales_in_gbp"} <= set(created)
    assert columns(warehouse_conn, schema, "fx_rate") == FX_RATE
    details = {
        c: (p, sc)
        for c, p, sc in warehouse_conn.execute(
            "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'fx_rate'",
            (schema,),
        )
    }
    assert details["units_per_gbp"] == (18, 8)
    # one rate per currency per day: the key is (date_id, currency_id), in that order
    key = warehouse_conn.execute(
        "SELECT kcu.column_name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu "
        "ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema "
        "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = %s AND tc.table_name = 'fx_rate' ORDER BY kcu.ordinal_position",
        (schema,),
    ).fetchall()
    assert [k for (k,) in key] == ["date_id", "currency_id"]
    fks = {k: v for k, v in foreign_keys(warehouse_conn, schema).items() if k[0] == "fx_rate"}
    assert fks == {
        ("fx_rate", "date_id"): ("dim_date", "date_id", "NO ACTION", "NO ACTION"),
        ("fx_rate", "currency_id"): ("dim_currency", "currency_id", "NO ACTION", "NO ACTION"),
    }
    # the report view reads the sales fact, the currencies and the rates
    assert columns(warehouse_conn, schema, "sales_in_gbp") == SALES_IN_GBP
    used = {
        t
        for (t,) in warehouse_conn.execute(
            "SELECT table_name FROM information_schema.view_table_usage WHERE view_schema = %s AND view_name = 'sales_in_gbp'",
            (schema,),
        )
    }
    assert used == {"fact_sales_order", "dim_currency", "fx_rate"}
    # idempotent: nothing more to create
    assert ensure_warehouse_schema(warehouse_conn, schema) == []
    # the monthly report reads the view: dropping the view drops it too, and both come back
    warehouse_conn.execute(sql.SQL("DROP VIEW {} CASCADE").format(sql.Identifier(schema, "sales_in_gbp")))
    assert ensure_warehouse_schema(warehouse_conn, schema) == ["sales_by_month_gbp", "sales_in_gbp"]


def test_warehouse_ddl_is_idempotent_and_never_drops(warehouse_conn):
    ensure_warehouse_schema(warehouse_conn, "public")
    warehouse_conn.execute("INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound Sterling')")
    assert ensure_warehouse_schema(warehouse_conn, "public") == []
    assert warehouse_conn.execute("SELECT count(*) FROM dim_currency").fetchone()[0] == 1
    # a missing table is recreated, the rest is left alone
    warehouse_conn.execute("DROP VIEW fact_purchase_order")
    warehouse_conn.execute("DROP TABLE fact_purchase_orders")
    assert ensure_warehouse_schema(warehouse_conn, "public") == ["fact_purchase_order", "fact_purchase_orders"]
    assert warehouse_conn.execute("SELECT count(*) FROM dim_currency").fetchone()[0] == 1
    assert columns(warehouse_conn, "public", "fact_purchase_orders") == spec.WAREHOUSE["fact_purchase_orders"]


def test_the_pipelines_own_tables_gain_new_columns_but_spec_tables_are_never_altered(warehouse_conn):
    ensure_warehouse_schema(warehouse_conn, "public")
    # a warehouse made by an earlier version of the pipeline
    warehouse_conn.execute(
        "INSERT INTO etl_load_log (table_name, run_id, manifest_key, rows_staged, rows_written) VALUES ('t', 'r', 'k', 1, 1)"
    )
    warehouse_conn.execute("ALTER TABLE etl_load_log DROP COLUMN rows_rejected")
    warehouse_conn.execute("ALTER TABLE dim_staff DROP COLUMN email_address")
    assert ensure_warehouse_schema(warehouse_conn, "public") == ["etl_load_log.rows_rejected"]
    assert warehouse_conn.execute("SELECT rows_rejected FROM etl_load_log").fetchall() == [(0,)]
    assert "email_address" not in {c for c, _, _ in columns(warehouse_conn, "public", "dim_staff")}


def test_unique_version_constraint_rejects_a_second_copy(warehouse_conn):
    ensure_warehouse_schema(warehouse_conn, "public")
    c = warehouse_conn
    c.execute("INSERT INTO dim_date VALUES ('2024-01-01', 2024, 1, 1, 1, 'Monday', 'January', 1)")
    c.execute("INSERT INTO dim_transaction VALUES (1, 'SALE', 1, NULL)")
    c.execute("INSERT INTO dim_counterparty VALUES (1, 'Co', 'l1', NULL, NULL, 'c', 'p', 'x', '1')")
    c.execute("INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound Sterling')")
    c.execute("INSERT INTO dim_payment_type VALUES (1, 'SALES_RECEIPT')")
    row = "(1, '2024-01-01', '10:00', '2024-01-01', '10:00:00.123', 1, 1, 5.00, 1, 1, true, '2024-01-01')"
    cols = "(payment_id, created_date, created_time, last_updated_date, last_updated_time, transaction_id, counterparty_id, payment_amount, currency_id, payment_type_id, paid, payment_date)"
    c.execute(f"INSERT INTO fact_payment {cols} VALUES {row}")
    with pytest.raises(psycopg.errors.UniqueViolation):
        c.execute(f"INSERT INTO fact_payment {cols} VALUES {row}")


@pytest.mark.parametrize("schema", ["public", "project_team_3"])
def test_sales_target_and_sales_vs_target_are_created_column_by_column(warehouse_conn, schema):
    created = ensure_warehouse_schema(warehouse_conn, schema)
    assert {"sales_target", "sales_vs_target", "etl_file"} <= set(created)
    assert columns(warehouse_conn, schema, "sales_target") == SALES_TARGET
    (precision,) = warehouse_conn.execute(
        "SELECT (numeric_precision, numeric_scale)::text FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'sales_target' AND column_name = 'target_value'",
        (schema,),
    ).fetchone()
    assert precision == "(12,2)"
    key = warehouse_conn.execute(
        "SELECT kcu.column_name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu "
        "ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema "
        "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = %s AND tc.table_name = 'sales_target' "
        "ORDER BY kcu.ordinal_position",
        (schema,),
    ).fetchall()
    assert [k for (k,) in key] == ["staff_id", "target_month", "currency_id"]
    assert columns(warehouse_conn, schema, "sales_vs_target") == [
        ("staff_id", spec.INT, True),
        ("target_month", spec.DATE, True),
        ("currency_id", spec.INT, True),
        ("units_sold", "bigint", True),
        ("value_sold", spec.NUM, True),
        ("target_units", spec.INT, True),
        ("target_value", spec.NUM, True),
        ("value_pct_of_target", spec.NUM, True),
    ]
