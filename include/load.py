"""Load processed parquet into the warehouse: COPY into a staging table, then one set-based merge.

Each table loads in one transaction (readers see all of a run's rows of it or none):

* dimensions are upserted by key, and only with a version at least as new as the one already
  loaded (``etl_dimension_version``): a late load (a backfill beside the schedule, a replay)
  never replaces a newer row with an older one;
* dim_date rows are inserted once (their values never change);
* facts are appended; the UNIQUE (natural id, last_updated_date, last_updated_time)
  constraint with ON CONFLICT DO NOTHING means a version seen twice is stored once.

Loads of the same table are serialised by a transaction-scoped advisory lock.
SQL is built from registry identifiers with psycopg's sql module; values are bound or COPYed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from include.ddl import version_constraint_name
from include.pgarrow import copy_in_batches
from include.registry import WarehouseTable
from include.transform import VERSION_COLUMN

if TYPE_CHECKING:
    import psycopg

STAGE = "totes_stage"


@dataclass(frozen=True)
class LoadResult:
    table: str
    staged: int
    written: int


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
    cols = _ident_list(table.load_columns)
    stmt = sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA").format(
        stage=sql.Identifier(STAGE), cols=cols, target=sql.Identifier(schema, table.name)
    )
    return stmt


def merge_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """The statement that moves staged rows into the table; it returns the rows written."""
    target = sql.Identifier(schema, table.name)
    cols = table.load_columns
    if table.kind == "fact":
        return sql.SQL(
            "WITH written AS (INSERT INTO {target} ({cols}) "
            "SELECT DISTINCT ON ({vkey}) {cols} FROM {stage} ORDER BY {vkey} "
            "ON CONFLICT ON CONSTRAINT {uq} DO NOTHING RETURNING 1) SELECT count(*) FROM written"
        ).format(
            target=target,
            cols=_ident_list(cols),
            vkey=_ident_list(table.version_key),
            stage=sql.Identifier(STAGE),
            uq=sql.Identifier(version_constraint_name(table)),
        )
    pk = sql.Identifier(table.primary_key)
    if table.name == "dim_date":
        return sql.SQL(
            "WITH written AS (INSERT INTO {target} ({cols}) SELECT DISTINCT ON ({pk}) {cols} FROM {stage} ORDER BY {pk} "
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


def load_batches(
    conn: psycopg.Connection,
    schema: str,
    table: WarehouseTable,
    batches: Iterable[pa.RecordBatch],
    *,
    run_id: str,
    manifest_key: str,
    source_max_last_updated: str | None = None,
) -> LoadResult:
    """Stage and merge ``batches`` into ``schema.table`` in one transaction."""
    is_versioned_dim = table.kind == "dimension" and table.name != "dim_date"
    stage_columns = list(table.load_columns) + ([VERSION_COLUMN] if is_versioned_dim else [])

    def prepared() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _versions_as_text(b) if is_versioned_dim else b

    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"totes_etl.load.{schema}.{table.name}",))
        cur.execute(stage_ddl(schema, table))
        if is_versioned_dim:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} timestamp(3)[] NOT NULL").format(
                    sql.Identifier(STAGE), sql.Identifier(VERSION_COLUMN)
                )
            )
        staged = copy_in_batches(cur, sql.Identifier(STAGE), stage_columns, prepared())
        cur.execute(merge_sql(schema, table))
        written = cur.fetchone()[0]
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (table_name, run_id, manifest_key, rows_staged, rows_written, source_max_last_updated) "
                "VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(sql.Identifier(schema, "etl_load_log")),
            (table.name, run_id, manifest_key, staged, written, source_max_last_updated),
        )
    return LoadResult(table.name, staged, written)
