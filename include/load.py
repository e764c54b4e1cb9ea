"""Load: processed parquet -> the warehouse, COPY into a staging table, then one set-based merge.

``load_table`` is the stage. Each table loads in one transaction (readers see all of a run's
rows of it or none), with the merge its kind calls for:

* a dimension is upserted by key, and only with a version at least as new as the one already
  loaded (``etl_dimension_version``): a late load (a backfill beside the schedule, a replay)
  never replaces a newer row with an older one;
* the calendar's rows are inserted once (their values never change);
* a fact is appended; the UNIQUE (natural id, last_updated_date, last_updated_time) constraint
  with ON CONFLICT DO NOTHING means a version seen twice is stored once.

A fact row that points at a dimension row the warehouse does not have is not loaded and not
dropped: it goes to the quarantine with the reason (include.quarantine), and every later load of
that fact table stages it again, so it loads as soon as its dimension row arrives. The check costs
nothing in the normal case: the merge runs first inside a savepoint, and only a foreign-key
violation sends the load down the path that finds the offending rows. A large fact load checks
its foreign keys once per constraint rather than once per row (``_bulk_foreign_keys``).

Loads of the same table are serialised by a transaction-scoped advisory lock. SQL is built from
registry identifiers with psycopg's sql module; values are bound or COPYed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from include import bookkeeping, figures, quarantine
from include.ddl import foreign_keys, version_constraint_name
from include.derive import VERSION_COLUMN
from include.lake import Lake, quarantine_prefix, read_parquet_batches
from include.pgarrow import copy_in_batches
from include.registry import WarehouseTable
from include.results import LoadResult, Run, TransformResult

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

STAGE = "totes_stage"

# A fact load of at least this many rows, and at least a tenth of what the table already holds,
# checks its foreign keys once per constraint instead of once per row (see _bulk_foreign_keys).
BULK_MIN_ROWS = 50_000


def _idents(names: Iterable[str], prefix: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(prefix, n) if prefix else sql.Identifier(n) for n in names)


def _versions_as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """list<timestamp> -> a PostgreSQL array literal ('{"2024-01-01 10:00:00.000",...}') for COPY."""
    idx = batch.schema.get_field_index(VERSION_COLUMN)
    lists = batch.column(idx)
    as_text = pa.ListArray.from_arrays(lists.offsets, pc.strftime(lists.values, format="%Y-%m-%d %H:%M:%S"))
    literal = pc.binary_join_element_wise('{"', pc.binary_join(as_text, '","'), '"}', "")
    return batch.set_column(idx, VERSION_COLUMN, literal)


def stage_ddl(schema: str, table: WarehouseTable) -> sql.Composable:
    return sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA").format(
        stage=sql.Identifier(STAGE), cols=_idents(table.load_columns), target=sql.Identifier(schema, table.name)
    )


# ------------------------------------------------------------------------------------------
# The three merges: staged rows -> the table; each statement returns the rows written
# ------------------------------------------------------------------------------------------


def _insert(schema: str, table: WarehouseTable, conflict: sql.Composable) -> sql.Composable:
    return sql.SQL(
        "WITH written AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
        "ON CONFLICT {conflict} DO NOTHING RETURNING 1) SELECT count(*) FROM written"
    ).format(
        target=sql.Identifier(schema, table.name),
        cols=_idents(table.load_columns),
        stage=sql.Identifier(STAGE),
        conflict=conflict,
    )


def _append_versions(schema: str, table: WarehouseTable) -> sql.Composable:
    # No DISTINCT: ON CONFLICT DO NOTHING also skips a second copy of a version within this
    # same statement, so the staged rows need no sort.
    return _insert(schema, table, sql.SQL("ON CONSTRAINT {}").format(sql.Identifier(version_constraint_name(table))))


def _insert_new(schema: str, table: WarehouseTable) -> sql.Composable:
    return _insert(schema, table, sql.SQL("({})").format(sql.Identifier(table.primary_key)))


def _upsert_newer(schema: str, table: WarehouseTable) -> sql.Composable:
    cols = table.load_columns
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
        pk=sql.Identifier(table.primary_key),
        cols=_idents(cols),
        ver=sql.Identifier(VERSION_COLUMN),
        stage=sql.Identifier(STAGE),
        versions=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION),
        dim=sql.Literal(table.name),
        target=sql.Identifier(schema, table.name),
        non_key=_idents(non_key),
        excluded=_idents(non_key, "excluded"),
        t_non_key=_idents(non_key, "t"),
    )


MERGES: Mapping[str, Callable[[str, WarehouseTable], sql.Composable]] = {
    "fact": _append_versions,
    "calendar": _insert_new,
    "dimension": _upsert_newer,
}


def merge_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """The statement that moves staged rows into the table; it returns the rows written."""
    return MERGES[table.kind](schema, table)


# ------------------------------------------------------------------------------------------
# Foreign keys checked once per load instead of once per row (large fact loads)
# ------------------------------------------------------------------------------------------
#
# PostgreSQL checks a foreign key with one index lookup and row lock per inserted row and
# constraint: a fact row has up to eight, which held the merge of a large fact load (an initial
# load, a full refresh, a catch-up) to about a tenth of COPY's speed (README, "Performance"). For
# such loads the merge drops the table's foreign keys, inserts, and adds them back in the same
# transaction: adding a foreign key checks every row in one set-based join. The constraints are
# the registry's own, recreated under the same names; if any row lacks its dimension row, adding
# it back fails with the same ForeignKeyViolation as the per-row check, the savepoint undoes the
# drop, and the load takes the quarantine path. Readers of the fact table wait for the commit
# (ALTER TABLE locks it), they never see it without its rows or its constraints.


def _bulk_foreign_keys(cur: psycopg.Cursor, schema: str, table: WarehouseTable, staged: int) -> dict[str, sql.Composable]:
    """The foreign keys to drop and add back around this load's merge; none when per-row checks
    are cheaper or not ours to change (the table has other constraints than the registry's, or
    the role does not own it)."""
    fks = foreign_keys(schema, table)
    if not table.is_fact or not fks or staged < BULK_MIN_ROWS:
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
    # The dimension tables in one fixed order, so that two fact loads never wait for each other
    # in opposite orders (ADD FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on each).
    dims = sorted(set(table.references))
    cur.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.SQL(", ").join(sql.Identifier(schema, d) for d in dims))
    )
    drops = sql.SQL(", ").join(sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(n)) for n in fks)
    cur.execute(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(schema, table.name), drops))


def _add_foreign_keys(cur: psycopg.Cursor, schema: str, table: WarehouseTable, fks: dict[str, sql.Composable]) -> None:
    # One ALTER TABLE for all of them: PostgreSQL validates each with one query over the table.
    adds = sql.SQL(", ").join(sql.SQL("ADD {}").format(fk) for fk in fks.values())
    cur.execute(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(schema, table.name), adds))


# ------------------------------------------------------------------------------------------
# One table's load
# ------------------------------------------------------------------------------------------


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
    before_commit: Callable[[LoadResult], None] | None = None,
) -> LoadResult:
    """Stage and merge ``batches`` into ``schema.table`` in one transaction.

    ``on_rejects`` receives the rows a fact table refuses (row, reason) and returns where it
    stored them (the quarantine object key); it runs before the commit, so a failure to store
    them rolls the whole load back. ``before_commit`` receives the result inside the
    transaction (the load's figures are written with it).
    """
    stage = sql.Identifier(STAGE)
    stage_columns = list(table.load_columns) + ([VERSION_COLUMN] if table.versioned else [])

    def prepared() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _versions_as_text(b) if table.versioned else b

    rejected = replayed = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"totes_etl.load.{schema}.{table.name}",))
        bookkeeping.mark_pipeline_write(conn, run_id)  # not a write outside the pipeline (include.ddl)
        cur.execute(stage_ddl(schema, table))
        if table.versioned:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} timestamp(3)[] NOT NULL").format(stage, sql.Identifier(VERSION_COLUMN))
            )
        staged = copy_in_batches(cur, stage, stage_columns, prepared())
        if table.is_fact:  # what waits for a dimension row is tried again
            cur.execute(quarantine.replay_sql(schema, table, stage), (table.name,))
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
            if not table.is_fact:
                raise
            cur.execute(quarantine.refuse_orphans_sql(schema, table, stage))
            refused = [(row, reason) for row, reason in cur.fetchall()]
            key = on_rejects(refused) if on_rejects else "(not stored)"
            rejected = quarantine.record(conn, schema, table, stage="load", rows=refused, run_id=run_id, object_key=key)
            cur.execute(merge_sql(schema, table))
            written = cur.fetchone()[0]
        if table.kind != "calendar":  # a calendar row is never quarantined
            cur.execute(quarantine.resolve_sql(schema, table), (run_id, table.name))
        bookkeeping.log_load(
            conn,
            schema,
            table.name,
            run_id=run_id,
            manifest_key=manifest_key,
            source_max=source_max,
            staged=staged,
            written=written,
            rejected=rejected,
        )
        result = LoadResult(table.name, staged, written, rejected, replayed)
        if before_commit is not None:
            before_commit(result)
    return result


def load_table(
    conn: psycopg.Connection, lake: Lake, schema: str, table: WarehouseTable, transformed: TransformResult, run: Run
) -> LoadResult:
    """Load what ``transformed`` committed to the processed bucket (``lake``) into the warehouse
    (``conn``), and record the rows its transform quarantined in ``etl_quarantine``. The load's
    figures (include.figures) are written in its transaction."""
    started = time.monotonic()  # the load's duration, for its figures
    key, rejects_key = transformed.manifest_key, transformed.quarantine_key
    newest = max(transformed.source_max.values(), default=None)

    def keep_figures(result: LoadResult, refused: int = 0) -> None:
        kept = figures.of_load(result, time.monotonic() - started, refused=refused, newest_change=newest)
        figures.record_stage(conn, schema, run, kept)

    if not key and not rejects_key:
        log.info("Nothing to load into %s", table.name)
        keep_figures(LoadResult(table.name))
        return LoadResult(table.name)
    refused_prefix = quarantine_prefix(table.name, run.interval_end, run.run_id)

    def store_refused(rows: list[tuple[dict, str]]) -> str:
        lines = (json.dumps({"reason": reason, "row": row}, default=str) for row, reason in rows)
        log.warning("%s refused %d row(s) (missing dimension rows)", table.name, len(rows))
        return quarantine.store(lake, refused_prefix, "load-rejects.jsonl", "\n".join(lines).encode() + b"\n")

    recorded = 0
    with tempfile.TemporaryDirectory() as tmp:
        if rejects_key:
            lake.download(rejects_key, f"{tmp}/rejects.parquet")
            rows = quarantine.rows_with_reasons(pq.read_table(f"{tmp}/rejects.parquet"))
            with conn.transaction():
                recorded = quarantine.record(
                    conn, schema, table, stage="transform", rows=rows, run_id=run.run_id, object_key=rejects_key
                )
            log.warning("%s: %d row(s) quarantined by the transform recorded in etl_quarantine", table.name, recorded)
        if not key:
            with conn.transaction():
                bookkeeping.log_load(
                    conn, schema, table.name, run_id=run.run_id, manifest_key=rejects_key, source_max=transformed.source_max
                )
                keep_figures(LoadResult(table.name, rejected=recorded))
            return LoadResult(table.name, rejected=recorded)
        manifest = lake.read_manifest(key)
        read = sum(p.bytes for p in manifest.parts)
        batches = (b for path in lake.iter_parts(manifest, tmp) for b in read_parquet_batches(path))
        loaded = load_batches(
            conn,
            schema,
            table,
            batches,
            run_id=run.run_id,
            manifest_key=key,
            source_max=manifest.source_max,
            on_rejects=store_refused,
            before_commit=lambda loaded: keep_figures(
                replace(loaded, rejected=loaded.rejected + recorded, bytes=read), refused=loaded.rejected
            ),
        )
    log.info(
        "%s: staged %d rows (+%d waiting in quarantine), wrote %d, refused %d",
        table.name, loaded.staged, loaded.replayed, loaded.written, loaded.rejected,
    )  # fmt: skip
    return replace(loaded, rejected=loaded.rejected + recorded, bytes=read)
