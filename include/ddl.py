"""The warehouse DDL, built from include.registry and include.bookkeeping with psycopg's sql module.

The star schema in a configurable schema, the pipeline's bookkeeping tables, and the registry's
extension tables and views (fx_rate, sales_in_gbp), created idempotently: only what is missing is
created (so a role without CREATE rights can run it once the schema exists), and nothing is ever
dropped. (The totesys DDL is a development tool's: devtools/totesys/schema.py.)

``python -m include.ddl [schema]`` prints the DDL.
"""

from __future__ import annotations

import logging
import sys

import psycopg
from psycopg import sql

from include import bookkeeping
from include.registry import (
    EXTENSION_TABLES,
    EXTENSION_VIEWS,
    FACTS,
    WAREHOUSE,
    WAREHOUSE_TABLES,
    Column,
    ExtensionTable,
    ExtensionView,
    WarehouseTable,
)

log = logging.getLogger(__name__)

# A constant key for pg_advisory_xact_lock: concurrent schema tasks (a backfill beside the
# schedule) would otherwise race on CREATE TABLE.
SCHEMA_LOCK_KEY = 0x70_7E_5E_71


def _column(c: Column) -> sql.Composable:
    parts = [sql.Identifier(c.name), sql.SQL(c.type.ddl)]
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
            sql.Identifier(schema, c.references),
            sql.Identifier(WAREHOUSE[c.references].primary_key),
        )
        for c in t.columns
        if c.references
    }


def _create_table(schema: str, name: str, columns: tuple[Column, ...], key: tuple[str, ...], extra: list) -> sql.Composable:
    parts = [_column(c) for c in columns]
    parts.append(
        sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(f"{name}_pkey"), sql.SQL(", ").join(map(sql.Identifier, key))
        )
    )
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, name), sql.SQL(", ").join(parts + extra))


def warehouse_table_ddl(schema: str, t: WarehouseTable) -> sql.Composable:
    extra = list(foreign_keys(schema, t).values())
    if t.is_fact:
        extra.append(
            sql.SQL("CONSTRAINT {} UNIQUE ({})").format(
                sql.Identifier(version_constraint_name(t)), sql.SQL(", ").join(map(sql.Identifier, t.version_key))
            )
        )
    return _create_table(schema, t.name, t.columns, (t.primary_key,), extra)


def extension_table_ddl(schema: str, t: ExtensionTable) -> sql.Composable:
    """An extension table (include.registry, "Extensions"): columns, composite key, foreign keys."""
    return _create_table(schema, t.name, t.columns, t.primary_key, list(foreign_keys(schema, t).values()))


def extension_view_ddl(schema: str, v: ExtensionView) -> list[sql.Composable]:
    """The view's query (a constant of include.registry) with each table it reads schema-qualified;
    a materialized view also gets the unique index that a concurrent refresh needs."""
    query = sql.SQL(v.query).format(**{name: sql.Identifier(schema, name) for name in v.reads})
    if not v.materialized:
        return [sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(schema, v.name), query)]
    return [
        sql.SQL("CREATE MATERIALIZED VIEW {} AS {}").format(sql.Identifier(schema, v.name), query),
        sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
            sql.Identifier(f"{v.name}_key"), sql.Identifier(schema, v.name), sql.SQL(", ").join(map(sql.Identifier, v.unique_key))
        ),
    ]


def refresh_view_sql(schema: str, v: ExtensionView) -> sql.Composable:
    """Recompute a materialized view; readers keep seeing the old rows until it commits."""
    return sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(sql.Identifier(schema, v.name))


# ------------------------------------------------------------------------------------------
# Writes outside the pipeline, recorded by triggers
# ------------------------------------------------------------------------------------------
#
# Counting rows cannot tell a row deleted by hand from one the source has not yet sent; and
# comparing whole tables on every run costs what the tables weigh. So every warehouse table has
# statement-level triggers that record, in etl_outside_write, each statement that changed it
# without being a pipeline load (a load names itself in bookkeeping.WRITER_SETTING for its own
# transaction). check.reconcile fails on every such write until a person accepts it: a hand
# DELETE, UPDATE, INSERT or TRUNCATE is caught by the very next run at no cost to the loads
# (one setting read per statement). It is evidence against mistakes, not against an owner who
# sets the marker or drops the triggers; reconcile also checks the triggers are in force, and
# the whole-table comparison (include.checks) sees what they cannot.

OUTSIDE_WRITE_FUNCTION = "etl_record_outside_write"
TRIGGER_EVENTS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

_OUTSIDE_WRITE_BODY = """
DECLARE
  changed bigint;
  sample text[];
BEGIN
  IF coalesce(current_setting('{setting}', true), '') <> '' THEN
    RETURN NULL;  -- a pipeline load
  END IF;
  IF TG_OP <> 'TRUNCATE' THEN
    EXECUTE format('SELECT count(*), (array_agg(%1$I::text ORDER BY %1$I))[1:100] FROM %2$I',
                   TG_ARGV[0], CASE TG_OP WHEN 'INSERT' THEN 'new_rows' ELSE 'old_rows' END)
      INTO changed, sample;
    IF changed = 0 THEN
      RETURN NULL;  -- a statement that matched no row
    END IF;
  END IF;
  INSERT INTO {log} (table_name, operation, rows, ids, written_by)
    VALUES (TG_TABLE_NAME, TG_OP, changed, sample, session_user);
  RETURN NULL;
END
"""


def trigger_name(event: str) -> str:
    return f"etl_outside_{event.lower()}"


def outside_write_function_ddl(schema: str) -> sql.Composable:
    """The trigger function. SECURITY DEFINER: a person allowed to change a table is recorded
    even without rights on etl_outside_write; its search_path is fixed, as such a function needs."""
    body = _OUTSIDE_WRITE_BODY.format(
        setting=bookkeeping.WRITER_SETTING,
        log=bookkeeping.table(schema, bookkeeping.OUTSIDE_WRITE).as_string(None),
    )
    return sql.SQL(
        "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {body}"
    ).format(fn=sql.Identifier(schema, OUTSIDE_WRITE_FUNCTION), body=sql.Literal(body))


def outside_write_trigger_ddl(schema: str, t: WarehouseTable, event: str) -> sql.Composable:
    """One statement-level trigger; its argument is the column whose values it records."""
    referencing = {"INSERT": "REFERENCING NEW TABLE AS new_rows", "UPDATE": "REFERENCING OLD TABLE AS old_rows"}
    referencing["DELETE"] = referencing["UPDATE"]
    id_column = t.natural_id if t.is_fact else t.primary_key
    return sql.SQL(
        "CREATE TRIGGER {name} AFTER {event} ON {t} {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {fn}({col})"
    ).format(
        name=sql.Identifier(trigger_name(event)),
        event=sql.SQL(event),
        t=sql.Identifier(schema, t.name),
        referencing=sql.SQL(referencing.get(event, "")),
        fn=sql.Identifier(schema, OUTSIDE_WRITE_FUNCTION),
        col=sql.Literal(id_column),
    )


def _ensure_outside_write_triggers(cur: psycopg.Cursor, schema: str, new_tables: set[str]) -> list[str]:
    """Create the function and any missing trigger; name what was added to a table that already existed.

    A role that may load but not create triggers (a least-privilege loader on a warehouse made
    by an older version) leaves them missing with a warning: the loads keep flowing, and
    check.reconcile fails naming the triggers not in force until their owner creates them."""
    added = []
    cur.execute(
        "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s",
        (schema, OUTSIDE_WRITE_FUNCTION),
    )
    has_function = cur.fetchone() is not None
    try:
        with cur.connection.transaction():  # a savepoint: a refusal leaves the rest of the schema work
            if not has_function:
                cur.execute(outside_write_function_ddl(schema))
                added.append(OUTSIDE_WRITE_FUNCTION)
            added += _create_missing_triggers(cur, schema, new_tables)
    except psycopg.errors.InsufficientPrivilege as refused:
        log.warning("The triggers recording writes outside the pipeline could not be created: %s", refused)
        return []
    return added


def trigger_modes(conn: psycopg.Connection | psycopg.Cursor, schema: str) -> dict[tuple[str, str], str]:
    """(table, trigger) -> pg_trigger.tgenabled of every user trigger in ``schema`` (O or A:
    enabled; D: disabled; R: only in replication sessions)."""
    rows = conn.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal",
        (schema,),
    ).fetchall()
    return {(table, name): mode for table, name, mode in rows}


def _create_missing_triggers(cur: psycopg.Cursor, schema: str, new_tables: set[str]) -> list[str]:
    added = []
    have = trigger_modes(cur, schema)
    for t in WAREHOUSE_TABLES:
        for event in TRIGGER_EVENTS:
            if (t.name, trigger_name(event)) not in have:
                cur.execute(outside_write_trigger_ddl(schema, t, event))
                if t.name not in new_tables:
                    added.append(f"{t.name}.{trigger_name(event)}")
    return added


def warehouse_ddl(schema: str, missing: set[str] | None = None) -> list[sql.Composable]:
    """Statements that create the warehouse objects named in ``missing`` (default: all).

    Dimensions come before facts, and the extension tables and views after both, so foreign
    keys and views always point at existing tables.
    """

    def wanted(name: str) -> bool:
        return missing is None or name in missing

    stmts: list[sql.Composable] = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))]
    stmts += [warehouse_table_ddl(schema, t) for t in WAREHOUSE_TABLES if wanted(t.name)]
    for t in FACTS:
        if t.compatibility_view and wanted(t.compatibility_view):
            stmts.append(
                sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                    sql.Identifier(schema, t.compatibility_view), sql.Identifier(schema, t.name)
                )
            )
    for name in bookkeeping.COLUMNS:
        if wanted(name):
            stmts += [bookkeeping.create_table_ddl(schema, name), *bookkeeping.create_index_ddl(schema, name)]
    stmts += [extension_table_ddl(schema, t) for t in EXTENSION_TABLES if wanted(t.name)]
    stmts += [stmt for v in EXTENSION_VIEWS if wanted(v.name) for stmt in extension_view_ddl(schema, v)]
    return stmts


def warehouse_object_names() -> set[str]:
    names = {t.name for t in WAREHOUSE_TABLES} | set(bookkeeping.COLUMNS)
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
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'p', 'm')",
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
            (schema, list(bookkeeping.COLUMNS)),
        )
        have = set(cur.fetchall())
        for name, columns in bookkeeping.COLUMNS.items():
            for col, typ in columns:
                if (name, col) not in have:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            bookkeeping.table(schema, name), sql.Identifier(col), sql.SQL(typ)
                        )
                    )
                    created.append(f"{name}.{col}")
        created += _ensure_outside_write_triggers(cur, schema, missing)
        return created


if __name__ == "__main__":
    schema = sys.argv[1] if len(sys.argv) > 1 else "public"
    stmts = [*warehouse_ddl(schema), outside_write_function_ddl(schema)]
    stmts += [outside_write_trigger_ddl(schema, t, event) for t in WAREHOUSE_TABLES for event in TRIGGER_EVENTS]
    for stmt in stmts:
        print(stmt.as_string(None) + ";")
