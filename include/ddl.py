"""DDL of both databases, built from include.registry with psycopg's sql module.

* totesys: the operational schema exactly as the spec describes it (enums, serial keys,
  unique indexes, foreign keys with their ON DELETE / ON UPDATE actions), in the style of the
  real database's own migrations: tables first, then unique indexes, then foreign keys.
* warehouse: the star schema in a configurable schema, plus the registry's extension tables and
  views (fx_rate, sales_in_gbp), created idempotently: only what is missing is created (so a role
  without CREATE rights can run it once the schema exists), and nothing is ever dropped.

``python -m include.ddl totesys`` or ``python -m include.ddl warehouse [schema]`` prints the DDL.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from psycopg import sql

from include.registry import (
    ENUM_TYPES,
    EXTENSION_TABLES,
    EXTENSION_VIEWS,
    FACTS,
    SOURCE_TABLES,
    WAREHOUSE_TABLES,
    Column,
    ExtensionTable,
    ExtensionView,
    WarehouseTable,
)

if TYPE_CHECKING:
    import psycopg

# Pipeline bookkeeping kept beside the star schema (see README, "Warehouse bookkeeping"):
# etl_dimension_version: the source version of each dimension row, so that a load that arrives
#   late (a backfill beside the schedule, a replay) never overwrites a newer row with an older one.
# etl_quarantine: every row that could not be loaded, with the reason and the row itself, until a
#   later version of it (or, for a fact refused for a missing dimension row, the row itself) loads.
# etl_load_log: one row per table per run that loaded something; reconciliation and freshness
#   checks read it.
BOOKKEEPING_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "etl_dimension_version": (
        ("dimension", "varchar NOT NULL"),
        ("id", "integer NOT NULL"),
        ("version", "timestamp(3)[] NOT NULL"),
    ),
    "etl_quarantine": (
        ("quarantine_id", "bigserial PRIMARY KEY"),
        ("table_name", "varchar NOT NULL"),
        ("stage", "varchar NOT NULL"),
        ("source_id", "integer"),
        ("source_last_updated", "timestamp(3)"),
        ("reason", "text NOT NULL"),
        ("row_data", "jsonb NOT NULL"),
        ("run_id", "varchar NOT NULL"),
        ("object_key", "varchar NOT NULL"),
        ("quarantined_at", "timestamptz NOT NULL DEFAULT now()"),
        ("resolved_at", "timestamptz"),
        ("resolved_by_run", "varchar"),
    ),
    "etl_load_log": (
        ("load_id", "bigserial PRIMARY KEY"),
        ("table_name", "varchar NOT NULL"),
        ("run_id", "varchar NOT NULL"),
        ("manifest_key", "varchar NOT NULL"),
        ("rows_staged", "bigint NOT NULL"),
        ("rows_written", "bigint NOT NULL"),
        ("rows_rejected", "bigint NOT NULL DEFAULT 0"),
        ("source_max_last_updated", "jsonb"),
        ("loaded_at", "timestamptz NOT NULL DEFAULT now()"),
    ),
}
BOOKKEEPING_CONSTRAINTS = {"etl_dimension_version": "PRIMARY KEY (dimension, id)"}


def _bookkeeping_body(name: str) -> sql.Composable:
    parts = [sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(typ)) for col, typ in BOOKKEEPING_COLUMNS[name]]
    if name in BOOKKEEPING_CONSTRAINTS:
        parts.append(sql.SQL(BOOKKEEPING_CONSTRAINTS[name]))
    return sql.SQL(", ").join(parts)


# A constant key for pg_advisory_xact_lock: concurrent schema tasks (a backfill beside the
# schedule) would otherwise race on CREATE TABLE.
SCHEMA_LOCK_KEY = 0x70_7E_5E_71


# ------------------------------------------------------------------------------------------
# totesys
# ------------------------------------------------------------------------------------------


def _source_column(c: Column) -> sql.Composable:
    if c.serial:
        typ = sql.SQL("SERIAL")
    elif c.sql_type.startswith('"'):
        typ = sql.Identifier(c.sql_type.strip('"'))
    else:
        typ = sql.SQL(c.sql_type.upper())
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
    for enum, labels in ENUM_TYPES.items():
        stmts.append(
            sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
                sql.Identifier(enum), sql.SQL(", ").join(sql.Literal(v) for v in labels)
            )
        )
    for t in SOURCE_TABLES:
        cols = [_source_column(c) for c in t.columns]
        cols.append(
            sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(sql.Identifier(f"{t.name}_pkey"), sql.Identifier(t.primary_key))
        )
        stmts.append(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(t.name), sql.SQL(", ").join(cols)))
    return stmts


def totesys_constraints_ddl() -> list[sql.Composable]:
    """Unique indexes and foreign keys: added after a bulk load, as pg_dump does, to check in bulk."""
    stmts: list[sql.Composable] = []
    for t in SOURCE_TABLES:
        for c in t.columns:
            if c.unique:
                stmts.append(
                    sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                        sql.Identifier(f"{t.name}_{c.name}_key"), sql.Identifier(t.name), sql.Identifier(c.name)
                    )
                )
    for t in SOURCE_TABLES:
        for c in t.columns:
            if c.references:
                r = c.references
                stmts.append(
                    sql.SQL(
                        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}"
                    ).format(
                        sql.Identifier(t.name),
                        sql.Identifier(f"{t.name}_{c.name}_fkey"),
                        sql.Identifier(c.name),
                        sql.Identifier(r.table),
                        sql.Identifier(r.column),
                        sql.SQL(r.on_delete),
                        sql.SQL(r.on_update),
                    )
                )
    return stmts


def cursor_index_ddl() -> list[sql.Composable]:
    """Indexes on last_updated: not part of totesys as the spec defines it.

    Without them an incremental extract scans each table in full; with them its cost follows the
    number of changed rows. The local stack and the benchmark create them; on the real totesys
    they are a request to its owners (see README, "Source indexes").
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


# ------------------------------------------------------------------------------------------
# warehouse
# ------------------------------------------------------------------------------------------


def _warehouse_column(c: Column) -> sql.Composable:
    typ = sql.SQL("serial") if c.serial else sql.SQL(c.sql_type)
    parts = [sql.Identifier(c.name), typ]
    if not c.nullable:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def version_constraint_name(table: WarehouseTable) -> str:
    return f"{table.name}_version_key"


def foreign_keys(schema: str, t: WarehouseTable | ExtensionTable) -> dict[str, sql.Composable]:
    """The table's foreign-key constraints: name -> its ``CONSTRAINT ... FOREIGN KEY`` clause."""
    return {
        f"{t.name}_{c.name}_fkey": sql.SQL("CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})").format(
            sql.Identifier(f"{t.name}_{c.name}_fkey"),
            sql.Identifier(c.name),
            sql.Identifier(schema, c.references.table),
            sql.Identifier(c.references.column),
        )
        for c in t.columns
        if c.references
    }


def warehouse_table_ddl(schema: str, t: WarehouseTable) -> sql.Composable:
    parts = [_warehouse_column(c) for c in t.columns]
    parts.append(
        sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(sql.Identifier(f"{t.name}_pkey"), sql.Identifier(t.primary_key))
    )
    parts += foreign_keys(schema, t).values()
    if t.kind == "fact":
        parts.append(
            sql.SQL("CONSTRAINT {} UNIQUE ({})").format(
                sql.Identifier(version_constraint_name(t)), sql.SQL(", ").join(map(sql.Identifier, t.version_key))
            )
        )
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, t.name), sql.SQL(", ").join(parts))


def extension_table_ddl(schema: str, t: ExtensionTable) -> sql.Composable:
    """An extension table (include.registry, "Extensions"): columns, composite key, foreign keys."""
    parts = [_warehouse_column(c) for c in t.columns]
    parts.append(
        sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(f"{t.name}_pkey"), sql.SQL(", ").join(map(sql.Identifier, t.primary_key))
        )
    )
    parts += foreign_keys(schema, t).values()
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, t.name), sql.SQL(", ").join(parts))


def extension_view_ddl(schema: str, v: ExtensionView) -> sql.Composable:
    """The view's query (a constant of include.registry) with each table it reads schema-qualified."""
    query = sql.SQL(v.query).format(**{name: sql.Identifier(schema, name) for name in v.reads})
    return sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(schema, v.name), query)


def warehouse_ddl(schema: str, missing: set[str] | None = None) -> list[sql.Composable]:
    """Statements that create the warehouse objects named in ``missing`` (default: all).

    Dimensions come before facts, and the extension tables and views after both, so foreign
    keys and views always point at existing tables.
    """
    stmts: list[sql.Composable] = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))]
    for t in WAREHOUSE_TABLES:
        if missing is None or t.name in missing:
            stmts.append(warehouse_table_ddl(schema, t))
    for t in FACTS:
        if t.compatibility_view and (missing is None or t.compatibility_view in missing):
            stmts.append(
                sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                    sql.Identifier(schema, t.compatibility_view), sql.Identifier(schema, t.name)
                )
            )
    for name in BOOKKEEPING_COLUMNS:
        if missing is None or name in missing:
            stmts.append(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, name), _bookkeeping_body(name)))
    if missing is None or "etl_quarantine" in missing:
        # loads look up the rows still waiting for a table at every run
        stmts.append(
            sql.SQL("CREATE INDEX {} ON {} (table_name, stage, source_id) WHERE resolved_at IS NULL").format(
                sql.Identifier("etl_quarantine_waiting_idx"), sql.Identifier(schema, "etl_quarantine")
            )
        )
    for t in EXTENSION_TABLES:
        if missing is None or t.name in missing:
            stmts.append(extension_table_ddl(schema, t))
    for v in EXTENSION_VIEWS:
        if missing is None or v.name in missing:
            stmts.append(extension_view_ddl(schema, v))
    return stmts


def warehouse_object_names() -> set[str]:
    names = {t.name for t in WAREHOUSE_TABLES} | set(BOOKKEEPING_COLUMNS)
    names |= {t.compatibility_view for t in FACTS if t.compatibility_view}
    names |= {t.name for t in EXTENSION_TABLES} | {v.name for v in EXTENSION_VIEWS}
    return names


def ensure_warehouse_schema(conn: psycopg.Connection, schema: str) -> list[str]:
    """Create whatever of the warehouse is missing in ``schema``; return the names created.

    Idempotent and safe to run concurrently; never drops or alters an existing object.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'p')",
            (schema,),
        )
        existing = {r[0] for r in cur.fetchall()}
        missing = warehouse_object_names() - existing
        created = sorted(missing)
        if missing:
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            stmts = warehouse_ddl(schema, missing)
            if cur.fetchone():
                stmts = stmts[1:]  # the schema exists: do not ask for CREATE rights on the database
            for stmt in stmts:
                cur.execute(stmt)
        # The pipeline's own tables evolve: a column added in a later version is added to an
        # existing table (never dropped or changed). The spec's tables are never altered.
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = ANY(%s)",
            (schema, list(BOOKKEEPING_COLUMNS)),
        )
        have = set(cur.fetchall())
        for table, columns in BOOKKEEPING_COLUMNS.items():
            for col, typ in columns:
                if (table, col) not in have:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            sql.Identifier(schema, table), sql.Identifier(col), sql.SQL(typ)
                        )
                    )
                    created.append(f"{table}.{col}")
        return created


def _main(argv: list[str]) -> int:
    which = argv[1] if len(argv) > 1 else "totesys"
    stmts = totesys_ddl() if which == "totesys" else warehouse_ddl(argv[2] if len(argv) > 2 else "public")
    for s in stmts:
        print(s.as_string(None) + ";")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
