"""Load processed parquet into the warehouse: COPY into a staging table, then one set-based merge.

Each table loads in one transaction (readers see all of a run's rows of it or none):

* dimensions are upserted by key, and only with a version at least as new as the one already
  loaded (``etl_dimension_version``): a late load (a backfill beside the schedule, a replay)
  never replaces a newer row with an older one;
* dim_date rows are inserted once (their values never change);
* facts are appended; the UNIQUE (natural id, last_updated_date, last_updated_time)
  constraint with ON CONFLICT DO NOTHING means a version seen twice is stored once.

A fact row that points at a dimension row the warehouse does not have is not loaded and not
dropped: it goes to ``etl_quarantine`` (and the quarantine bucket prefix) with the reason, and
every later load of that fact table tries it again, so it loads as soon as its dimension row
arrives. The check costs nothing in the normal case: the merge runs first inside a savepoint,
and only a foreign-key violation sends the load down the path that finds the offending rows.
A large fact load checks its foreign keys once per constraint rather than once per row
(``_bulk_foreign_keys``).

Loads of the same table are serialised by a transaction-scoped advisory lock. SQL is built from
registry identifiers with psycopg's sql module; values are bound or COPYed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from include.ddl import foreign_keys, version_constraint_name
from include.pgarrow import copy_in_batches
from include.registry import ExtensionTable, WarehouseTable
from include.transform import REASON_COLUMN, VERSION_COLUMN, is_versioned

if TYPE_CHECKING:
    import psycopg

STAGE = "totes_stage"

# A fact load of at least this many rows, and at least a tenth of what the table already holds,
# checks its foreign keys once per constraint instead of once per row (see _bulk_foreign_keys).
BULK_MIN_ROWS = 50_000


@dataclass(frozen=True)
class LoadResult:
    table: str
    staged: int
    written: int
    rejected: int = 0  # rows quarantined by this load
    replayed: int = 0  # quarantined rows of earlier runs that loaded now


def _ident_list(names: Iterable[str], prefix: str | None = None) -> sql.Composable:
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _versions_as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """list<timestamp> -> a PostgreSQL array literal ('{"2024-01-01 10:00:00.000",...}') for COPY."""
    idx = batch.schema.get_field_index(VERSION_COLUMN)
    lists = batch.column(idx)
    as_text = pa.ListArray.from_arrays(lists.offsets, pc.strftime(lists.values, format="%Y-%m-%d %H:%M:%S"))
    literal = pc.binary_join_element_wise('{"', pc.binary_join(as_text, '","'), '"}', "")
    return batch.set_column(idx, VERSION_COLUMN, literal)


def stage_ddl(schema: str, table: WarehouseTable) -> sql.Composable:
    return sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA").format(
        stage=sql.Identifier(STAGE), cols=_ident_list(table.load_columns), target=sql.Identifier(schema, table.name)
    )


def merge_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """The statement that moves staged rows into the table; it returns the rows written."""
    target = sql.Identifier(schema, table.name)
    cols = table.load_columns
    if table.kind == "fact":
        # No DISTINCT: ON CONFLICT DO NOTHING also skips a second copy of a version within this
        # same statement, so the staged rows need no sort.
        return sql.SQL(
            "WITH written AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
            "ON CONFLICT ON CONSTRAINT {uq} DO NOTHING RETURNING 1) SELECT count(*) FROM written"
        ).format(
            target=target,
            cols=_ident_list(cols),
            stage=sql.Identifier(STAGE),
            uq=sql.Identifier(version_constraint_name(table)),
        )
    pk = sql.Identifier(table.primary_key)
    if not is_versioned(table):  # dim_date
        return sql.SQL(
            "WITH written AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
            "ON CONFLICT ({pk}) DO NOTHING RETURNING 1) SELECT count(*) FROM written"
        ).format(target=target, cols=_ident_list(cols), pk=pk, stage=sql.Identifier(STAGE))
    non_key = [c for c in cols if c != table.primary_key]
    return sql.SQL(
        "WITH incoming AS ("
        "  SELECT DISTINCT ON ({pk}) {cols}, {ver} FROM {stage} ORDER BY {pk}, {ver} DESC"
        "), fresh AS ("
        "  SELECT i.* FROM incoming i LEFT JOIN {versions} v ON v.dimension = {dim} AND v.id = i.{pk}"
        "  WHERE v.version IS NULL OR i.{ver} >= v.version"
        "), upserted AS ("
        "  INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM fresh ORDER BY {pk}"
        "  ON CONFLICT ({pk}) DO UPDATE SET ({non_key}) = ROW({excluded})"
        "  WHERE ({t_non_key}) IS DISTINCT FROM ({excluded})"
        "  RETURNING 1"
        "), versioned AS ("
        "  INSERT INTO {versions} AS v (dimension, id, version) SELECT {dim}, {pk}, {ver} FROM fresh"
        "  ON CONFLICT (dimension, id) DO UPDATE SET version = EXCLUDED.version WHERE v.version < EXCLUDED.version"
        ") SELECT count(*) FROM upserted"
    ).format(
        pk=pk,
        cols=_ident_list(cols),
        ver=sql.Identifier(VERSION_COLUMN),
        stage=sql.Identifier(STAGE),
        versions=sql.Identifier(schema, "etl_dimension_version"),
        dim=sql.Literal(table.name),
        target=target,
        non_key=_ident_list(non_key),
        excluded=_ident_list(non_key, "excluded"),
        t_non_key=_ident_list(non_key, "t"),
    )


# ------------------------------------------------------------------------------------------
# Quarantine of rows a fact table cannot take (missing dimension rows)
# ------------------------------------------------------------------------------------------


def _replay_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """Put the still-unresolved rows this table refused earlier back into the staging table."""
    return sql.SQL(
        "INSERT INTO {stage} SELECT r.* FROM {q} q, jsonb_populate_record(NULL::{stage}, q.row_data) r "
        "WHERE q.table_name = %s AND q.stage = 'load' AND q.resolved_at IS NULL"
    ).format(stage=sql.Identifier(STAGE), q=sql.Identifier(schema, "etl_quarantine"))


def _reject_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """Remove from the staging table the rows whose foreign keys have no dimension row; return
    each as JSON with its reason."""
    joins, reasons = [], []
    for i, c in enumerate(c for c in table.columns if c.references):
        alias = sql.Identifier(f"d{i}")
        ref = c.references
        joins.append(
            sql.SQL("LEFT JOIN {dim} {a} ON {a}.{key} = s.{col}").format(
                dim=sql.Identifier(schema, ref.table), a=alias, key=sql.Identifier(ref.column), col=sql.Identifier(c.name)
            )
        )
        reasons.append(
            sql.SQL("CASE WHEN {a}.{key} IS NULL THEN {msg} || s.{col}::text END").format(
                a=alias,
                key=sql.Identifier(ref.column),
                col=sql.Identifier(c.name),
                msg=sql.Literal(f"{c.name} has no {ref.table} row: "),
            )
        )
    return sql.SQL(
        "WITH bad AS (SELECT s.ctid AS row_ctid, concat_ws('; ', {reasons}) AS reason FROM {stage} s {joins}) "
        "DELETE FROM {stage} s USING bad WHERE s.ctid = bad.row_ctid AND bad.reason <> '' "
        "RETURNING to_jsonb(s) AS row_data, bad.reason"
    ).format(reasons=sql.SQL(", ").join(reasons), stage=sql.Identifier(STAGE), joins=sql.SQL(" ").join(joins))


def resolve_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """Mark resolved the quarantined rows of this table that a newer (or the same) version of the
    same source row has now reached."""
    q = sql.Identifier(schema, "etl_quarantine")
    if table.kind == "fact":
        loaded = sql.SQL(
            "EXISTS (SELECT 1 FROM {t} t WHERE t.{nid} = q.source_id AND t.last_updated_date + t.last_updated_time >= q.source_last_updated)"
        ).format(t=sql.Identifier(schema, table.name), nid=sql.Identifier(table.natural_id))
    elif is_versioned(table):
        loaded = sql.SQL(
            "EXISTS (SELECT 1 FROM {v} v WHERE v.dimension = q.table_name AND v.id = q.source_id AND v.version[1] >= q.source_last_updated)"
        ).format(v=sql.Identifier(schema, "etl_dimension_version"))
    else:
        raise ValueError(f"{table.name} rows are never quarantined")
    return sql.SQL(
        "WITH resolved AS (UPDATE {q} q SET resolved_at = now(), resolved_by_run = %s "
        "WHERE q.table_name = %s AND q.resolved_at IS NULL AND {loaded} RETURNING 1) SELECT count(*) FROM resolved"
    ).format(q=q, loaded=loaded)


def quarantine_rows(
    conn: psycopg.Connection,
    schema: str,
    table: WarehouseTable,
    *,
    stage: str,
    rows: list[tuple[dict, str]],
    run_id: str,
    object_key: str,
) -> int:
    """Record rejected rows (row as a dict, reason) in ``etl_quarantine``, in one statement; a row
    already waiting there (same table, stage, id and version) is not recorded twice. Returns the
    rows recorded.

    ``stage`` "transform": source rows the transform refused (their source key and last_updated);
    ``stage`` "load": warehouse fact rows the load refused (natural id, last_updated date + time).
    """
    if not rows:
        return 0
    key = table.natural_id if table.kind == "fact" else table.source_of(table.primary_key)
    records = [
        {
            "source_id": row.get(key),
            "version": f"{row['last_updated_date']} {row['last_updated_time']}" if stage == "load" else row.get("last_updated"),
            "reason": reason,
            "row_data": row,
        }
        for row, reason in rows
    ]
    q = sql.Identifier(schema, "etl_quarantine")
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO {q} (table_name, stage, source_id, source_last_updated, reason, row_data, run_id, object_key) "
            "SELECT DISTINCT ON (x.source_id, x.version) %(table)s::varchar, %(stage)s::varchar, x.source_id, x.version, x.reason, x.row_data, %(run)s, %(key)s "
            "FROM jsonb_to_recordset(%(records)s::jsonb) AS x(source_id integer, version timestamp(3), reason text, row_data jsonb) "
            "WHERE NOT EXISTS (SELECT 1 FROM {q} w WHERE w.table_name = %(table)s::varchar AND w.stage = %(stage)s::varchar AND w.resolved_at IS NULL "
            "AND w.source_id IS NOT DISTINCT FROM x.source_id AND w.source_last_updated IS NOT DISTINCT FROM x.version)"
        ).format(q=q),
        {"table": table.name, "stage": stage, "run": run_id, "key": object_key, "records": json.dumps(records, default=str)},
    )
    return cur.rowcount


# ------------------------------------------------------------------------------------------
# Foreign keys checked once per load instead of once per row (large fact loads)
# ------------------------------------------------------------------------------------------
#
# PostgreSQL checks a foreign key with one index lookup and row lock per inserted row and
# constraint: a fact row has up to eight, which held the merge of a large fact load (an initial
# load, a full refresh, a catch-up) to about a tenth of COPY's speed (README, "Performance"). For such loads the
# merge drops the table's foreign keys, inserts, and adds them back in the same transaction:
# adding a foreign key checks every row in one set-based join. The constraints are the registry's
# own, recreated under the same names; if any row lacks its dimension row, adding it back fails
# with the same ForeignKeyViolation as the per-row check, the savepoint undoes the drop, and the
# load takes the quarantine path. Readers of the fact table wait for the commit (ALTER TABLE
# locks it), they never see it without its rows or its constraints.


def _bulk_foreign_keys(cur: psycopg.Cursor, schema: str, table: WarehouseTable, staged: int) -> dict[str, sql.Composable]:
    """The foreign keys to drop and add back around this load's merge; none when per-row checks
    are cheaper or not ours to change (the table has other constraints than the registry's, or
    the role does not own it)."""
    fks = foreign_keys(schema, table)
    if table.kind != "fact" or not fks or staged < BULK_MIN_ROWS:
        return {}
    cur.execute(
        "SELECT pg_has_role(c.relowner, 'USAGE'), greatest(c.reltuples, 0)::bigint, "
        "array(SELECT conname::text FROM pg_constraint WHERE conrelid = c.oid AND contype = 'f' ORDER BY 1) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, table.name),
    )
    owner, rows, names = cur.fetchone()
    if not owner or sorted(fks) != list(names) or staged * 10 < rows:
        return {}
    return fks


def _drop_foreign_keys(cur: psycopg.Cursor, schema: str, table: WarehouseTable, fks: dict[str, sql.Composable]) -> None:
    target = sql.Identifier(schema, table.name)
    # The dimension tables in one fixed order, so that two fact loads never wait for each other
    # in opposite orders (ADD FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on each).
    dims = sorted({c.references.table for c in table.columns if c.references})
    cur.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(sql.Identifier(schema, d) for d in dims))
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            target, sql.SQL(", ").join(sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(n)) for n in fks)
        )
    )


def _add_foreign_keys(cur: psycopg.Cursor, schema: str, table: WarehouseTable, fks: dict[str, sql.Composable]) -> None:
    # One ALTER TABLE for all of them: PostgreSQL validates each with one query over the table.
    cur.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            sql.Identifier(schema, table.name), sql.SQL(", ").join(sql.SQL("ADD {}").format(fk) for fk in fks.values())
        )
    )


def load_batches(
    conn: psycopg.Connection,
    schema: str,
    table: WarehouseTable,
    batches: Iterable[pa.RecordBatch],
    *,
    run_id: str,
    manifest_key: str,
    source_max: dict[str, str] | None = None,
    on_rejects: Callable[[list[tuple[dict, str]]], str] | None = None,
) -> LoadResult:
    """Stage and merge ``batches`` into ``schema.table`` in one transaction.

    ``on_rejects`` receives the rows a fact table refuses (row, reason) and returns where it
    stored them (the quarantine object key); it runs before the commit, so a failure to store
    them rolls the whole load back.
    """
    versioned = is_versioned(table)
    stage_columns = list(table.load_columns) + ([VERSION_COLUMN] if versioned else [])

    def prepared() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _versions_as_text(b) if versioned else b

    import psycopg

    rejected = replayed = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"totes_etl.load.{schema}.{table.name}",))
        cur.execute(stage_ddl(schema, table))
        if versioned:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} timestamp(3)[] NOT NULL").format(
                    sql.Identifier(STAGE), sql.Identifier(VERSION_COLUMN)
                )
            )
        staged = copy_in_batches(cur, sql.Identifier(STAGE), stage_columns, prepared())
        if table.kind == "fact":
            cur.execute(_replay_sql(schema, table), (table.name,))
            replayed = cur.rowcount
        bulk_fks = _bulk_foreign_keys(cur, schema, table, staged + replayed)
        try:
            with conn.transaction():  # a savepoint: the fast path
                if bulk_fks:
                    _drop_foreign_keys(cur, schema, table, bulk_fks)
                cur.execute(merge_sql(schema, table))
                written = cur.fetchone()[0]
                if bulk_fks:
                    _add_foreign_keys(cur, schema, table, bulk_fks)
        except psycopg.errors.ForeignKeyViolation:
            if table.kind != "fact":
                raise
            cur.execute(_reject_sql(schema, table))
            refused = [(row, reason) for row, reason in cur.fetchall()]
            key = on_rejects(refused) if on_rejects else "(not stored)"
            rejected = quarantine_rows(conn, schema, table, stage="load", rows=refused, run_id=run_id, object_key=key)
            cur.execute(merge_sql(schema, table))
            written = cur.fetchone()[0]
        if table.kind == "fact" or versioned:
            cur.execute(resolve_sql(schema, table), (run_id, table.name))
        log_load(
            conn,
            schema,
            table,
            run_id=run_id,
            manifest_key=manifest_key,
            source_max=source_max,
            staged=staged,
            written=written,
            rejected=rejected,
        )
    return LoadResult(table.name, staged, written, rejected, replayed)


def log_load(
    conn: psycopg.Connection,
    schema: str,
    table: WarehouseTable | ExtensionTable,
    *,
    run_id: str,
    manifest_key: str,
    source_max: dict[str, str] | None,
    staged: int = 0,
    written: int = 0,
    rejected: int = 0,
) -> None:
    """One etl_load_log row: what a run did to a table, and the newest source change it handled."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (table_name, run_id, manifest_key, rows_staged, rows_written, rows_rejected, source_max_last_updated) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ).format(sql.Identifier(schema, "etl_load_log")),
        (table.name, run_id, manifest_key, staged, written, rejected, json.dumps(source_max or {})),
    )


def rows_with_reasons(rejected: pa.Table) -> list[tuple[dict, str]]:
    """Transform rejects (source rows plus ``_reason``) as (row, reason) pairs."""
    rows = rejected.drop_columns([REASON_COLUMN]).to_pylist()
    return list(zip(rows, rejected[REASON_COLUMN].to_pylist(), strict=True))
