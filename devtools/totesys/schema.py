"""The totesys schema as the spec describes it, for the development tools (generator, real
extract loader, local stack, benchmark and tests): never used by the pipeline.

include.registry declares what the pipeline relies on (each table's columns, types and
nullability: the data contract). What only a copy of the real database needs is declared here:
serial keys, the enum types' labels, the unique indexes, the foreign keys with their actions,
created_at's default. The DDL follows the style of the real database's own migrations: tables
first, then unique indexes, then foreign keys.

``python -m devtools.totesys.schema`` prints the DDL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from psycopg import sql

from include.registry import SOURCE, SOURCE_TABLES, Column, SourceTable

if TYPE_CHECKING:
    import psycopg

ENUM_LABELS: dict[str, tuple[str, ...]] = {
    "PaymentTypeName": ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND"),
    "TransactionType": ("SALE", "PURCHASE"),
}

UNIQUE: tuple[tuple[str, str], ...] = (
    ("payment", "transaction_id"),
    ("transaction", "sales_order_id"),
    ("transaction", "purchase_order_id"),
)

# (table, column) -> the table whose key it holds. ON UPDATE CASCADE everywhere; ON DELETE
# RESTRICT but where SET_NULL says otherwise.
FOREIGN_KEYS: dict[tuple[str, str], str] = {
    ("counterparty", "legal_address_id"): "address",
    ("staff", "department_id"): "department",
    ("sales_order", "design_id"): "design",
    ("sales_order", "staff_id"): "staff",
    ("sales_order", "counterparty_id"): "counterparty",
    ("sales_order", "currency_id"): "currency",
    ("sales_order", "agreed_delivery_location_id"): "address",
    ("payment", "transaction_id"): "transaction",
    ("payment", "counterparty_id"): "counterparty",
    ("payment", "currency_id"): "currency",
    ("payment", "payment_type_id"): "payment_type",
    ("purchase_order", "staff_id"): "staff",
    ("purchase_order", "counterparty_id"): "counterparty",
    ("purchase_order", "currency_id"): "currency",
    ("purchase_order", "agreed_delivery_location_id"): "address",
    ("transaction", "sales_order_id"): "sales_order",
    ("transaction", "purchase_order_id"): "purchase_order",
}
SET_NULL: frozenset[tuple[str, str]] = frozenset({("transaction", "sales_order_id"), ("transaction", "purchase_order_id")})


def on_delete(table: str, column: str) -> Literal["RESTRICT", "SET NULL"]:
    return "SET NULL" if (table, column) in SET_NULL else "RESTRICT"


def _check() -> None:
    for table, column in (*UNIQUE, *FOREIGN_KEYS):
        if column not in SOURCE[table].column_names:
            raise ValueError(f"devtools.totesys.schema names unknown column {table}.{column}")
    for target in FOREIGN_KEYS.values():
        if target not in SOURCE:
            raise ValueError(f"devtools.totesys.schema references unknown table {target}")
    enums = {c.type.enum for t in SOURCE_TABLES for c in t.columns if c.type.enum}
    if enums != set(ENUM_LABELS):
        raise ValueError(f"enum labels are declared for {sorted(ENUM_LABELS)}, the registry uses {sorted(enums)}")


_check()


def _column(table: SourceTable, c: Column) -> sql.Composable:
    if c.name == table.primary_key:
        typ = sql.SQL("SERIAL")
    elif c.type.enum:
        typ = sql.Identifier(c.type.enum)
    else:
        typ = sql.SQL(c.type.ddl.upper())
    parts = [sql.Identifier(c.name), typ]
    if not c.nullable:
        parts.append(sql.SQL("NOT NULL"))
    if c.name == "created_at":
        parts.append(sql.SQL("DEFAULT CURRENT_TIMESTAMP"))
    return sql.SQL(" ").join(parts)


def totesys_ddl() -> list[sql.Composable]:
    """Statements that create the totesys schema in an empty database."""
    return totesys_tables_ddl() + totesys_constraints_ddl()


def totesys_tables_ddl() -> list[sql.Composable]:
    """Enum types and tables with their primary keys (what a bulk load needs first)."""
    stmts: list[sql.Composable] = []
    for name, labels in ENUM_LABELS.items():
        stmts.append(
            sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
                sql.Identifier(name), sql.SQL(", ").join(sql.Literal(v) for v in labels)
            )
        )
    for t in SOURCE_TABLES:
        cols = [_column(t, c) for c in t.columns]
        cols.append(
            sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(sql.Identifier(f"{t.name}_pkey"), sql.Identifier(t.primary_key))
        )
        stmts.append(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(t.name), sql.SQL(", ").join(cols)))
    return stmts


def _in_table_order(pairs) -> list[tuple[str, str]]:
    """(table, column) pairs in the registry's table and column order (the DDL's order)."""
    position = {(t.name, c): (i, j) for i, t in enumerate(SOURCE_TABLES) for j, c in enumerate(t.column_names)}
    return sorted(pairs, key=position.__getitem__)


def totesys_constraints_ddl() -> list[sql.Composable]:
    """Unique indexes and foreign keys: added after a bulk load, as pg_dump does, to check in bulk."""
    stmts: list[sql.Composable] = [
        sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
            sql.Identifier(f"{table}_{column}_key"), sql.Identifier(table), sql.Identifier(column)
        )
        for table, column in _in_table_order(UNIQUE)
    ]
    for table, column in _in_table_order(FOREIGN_KEYS):
        target = FOREIGN_KEYS[(table, column)]
        stmts.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE CASCADE").format(
                sql.Identifier(table),
                sql.Identifier(f"{table}_{column}_fkey"),
                sql.Identifier(column),
                sql.Identifier(target),
                sql.Identifier(SOURCE[target].primary_key),
                sql.SQL(on_delete(table, column)),
            )
        )
    return stmts


def cursor_index_ddl() -> list[sql.Composable]:
    """Indexes on last_updated: not part of totesys as the spec defines it.

    Without them an incremental extract scans each table in full; with them its cost follows the
    number of changed rows. The local stack, compose's seed and the benchmark create them; on the
    real totesys they are a request to its owners (see README, "Source indexes").
    """
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{t.name}_{t.cursor_column}_idx"), sql.Identifier(t.name), sql.Identifier(t.cursor_column)
        )
        for t in SOURCE_TABLES
    ]


def create_totesys_schema(conn: psycopg.Connection, populate: Callable[[psycopg.Connection], None] | None = None) -> None:
    """Create the totesys schema in the connection's database, which must not have it yet.

    ``populate`` (a bulk loader) runs between the tables and the constraints, in the same
    transaction: the constraints are then checked once, in bulk, and a failure leaves nothing.
    Afterwards each key sequence is moved past the largest id, as the application expects.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'sales_order'")
        if cur.fetchone()[0]:
            raise RuntimeError("totesys tables already exist in this database")
        for stmt in totesys_tables_ddl():
            cur.execute(stmt)
        if populate is not None:
            populate(conn)
        for stmt in totesys_constraints_ddl():
            cur.execute(stmt)
        for t in SOURCE_TABLES:
            cur.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), coalesce(max({}), 0) + 1, false) FROM {}").format(
                    sql.Literal(t.name), sql.Literal(t.primary_key), sql.Identifier(t.primary_key), sql.Identifier(t.name)
                )
            )


if __name__ == "__main__":
    for stmt in totesys_ddl():
        print(stmt.as_string(None) + ";")
