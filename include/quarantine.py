"""The quarantine (README, "Quarantine"): what could not be loaded, kept whole with its reason.

Two halves, both here:

* objects: under ``quarantine/<table>/date=/run=/`` of a bucket, the payload as it was (the
  window's rows of a drifted table, the rows a transform refused, the rows a fact load refused,
  an exchange-rate answer) and, beside it, a JSON reason (``store``);
* rows: ``etl_quarantine`` in the warehouse, one row per refused row with its reason, the row
  itself as JSON, the run and the object key, until a newer (or the same) version of that row
  reaches the warehouse and resolves it.

A fact row refused for a missing dimension row is staged again by every later load of its table
(``replay_sql``), so it loads by itself once the dimension row arrives.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from psycopg import sql

from include import bookkeeping
from include.registry import WAREHOUSE, WarehouseTable

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from include.lake import Lake

log = logging.getLogger(__name__)

REASON_COLUMN = "_reason"  # beside the source columns of rows a transform refused


# ------------------------------------------------------------------------------------------
# Objects
# ------------------------------------------------------------------------------------------


def store(
    lake: Lake,
    prefix: str,
    name: str,
    payload: bytes | str,
    reason: dict[str, Any] | None = None,
    reason_name: str = "reason.json",
) -> str:
    """Write a payload (bytes, or the path of a local file) as ``<prefix><name>`` and, unless
    ``reason`` is None, the reason as JSON beside it (``<prefix><reason_name>``, naming the
    payload's key). Returns the payload's key."""
    key = f"{prefix}{name}"
    if isinstance(payload, bytes):
        lake.put_bytes(payload, key)
    else:
        lake.put_file(payload, key)
    if reason is not None:
        lake.put_bytes(json.dumps(reason, indent=1, default=str).encode(), f"{prefix}{reason_name}")
    log.warning("Quarantined at s3://%s/%s", lake.bucket, key)
    return key


# ------------------------------------------------------------------------------------------
# Rows: etl_quarantine
# ------------------------------------------------------------------------------------------


def _table(schema: str) -> sql.Identifier:
    return bookkeeping.table(schema, bookkeeping.QUARANTINE)


def record(
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
    key = table.source_key
    records = [
        {
            "source_id": row.get(key),
            "version": f"{row['last_updated_date']} {row['last_updated_time']}" if stage == "load" else row.get("last_updated"),
            "reason": reason,
            "row_data": row,
        }
        for row, reason in rows
    ]
    q = _table(schema)
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


def rows_with_reasons(rejected: pa.Table) -> list[tuple[dict, str]]:
    """Transform rejects (source rows plus ``_reason``) as (row, reason) pairs."""
    rows = rejected.drop_columns([REASON_COLUMN]).to_pylist()
    return list(zip(rows, rejected[REASON_COLUMN].to_pylist(), strict=True))


def replay_sql(schema: str, table: WarehouseTable, staging: sql.Identifier) -> sql.Composable:
    """Put the still-unresolved rows this table refused earlier back into the staging table
    (parameter: the table name)."""
    return sql.SQL(
        "INSERT INTO {stage} SELECT r.* FROM {q} q, jsonb_populate_record(NULL::{stage}, q.row_data) r "
        "WHERE q.table_name = %s AND q.stage = 'load' AND q.resolved_at IS NULL"
    ).format(stage=staging, q=_table(schema))


def refuse_orphans_sql(schema: str, table: WarehouseTable, staging: sql.Identifier) -> sql.Composable:
    """Remove from the staging table the rows whose foreign keys have no dimension row; return
    each as JSON with its reason."""
    joins, reasons = [], []
    for i, c in enumerate(c for c in table.columns if c.references):
        alias = sql.Identifier(f"d{i}")
        key = sql.Identifier(WAREHOUSE[c.references].primary_key)
        joins.append(
            sql.SQL("LEFT JOIN {dim} {a} ON {a}.{key} = s.{col}").format(
                dim=sql.Identifier(schema, c.references), a=alias, key=key, col=sql.Identifier(c.name)
            )
        )
        reasons.append(
            sql.SQL("CASE WHEN {a}.{key} IS NULL THEN {msg} || s.{col}::text END").format(
                a=alias, key=key, col=sql.Identifier(c.name), msg=sql.Literal(f"{c.name} has no {c.references} row: ")
            )
        )
    return sql.SQL(
        "WITH bad AS (SELECT s.ctid AS row_ctid, concat_ws('; ', {reasons}) AS reason FROM {stage} s {joins}) "
        "DELETE FROM {stage} s USING bad WHERE s.ctid = bad.row_ctid AND bad.reason <> '' "
        "RETURNING to_jsonb(s) AS row_data, bad.reason"
    ).format(reasons=sql.SQL(", ").join(reasons), stage=staging, joins=sql.SQL(" ").join(joins))


def resolve_sql(schema: str, table: WarehouseTable) -> sql.Composable:
    """Mark resolved the quarantined rows of this table that a newer (or the same) version of the
    same source row has now reached (parameters: the run id, the table name; returns the count)."""
    if table.is_fact:
        loaded = sql.SQL(
            "EXISTS (SELECT 1 FROM {t} t WHERE t.{nid} = q.source_id AND t.last_updated_date + t.last_updated_time >= q.source_last_updated)"
        ).format(t=sql.Identifier(schema, table.name), nid=sql.Identifier(table.natural_id))
    elif table.versioned:
        loaded = sql.SQL(
            "EXISTS (SELECT 1 FROM {v} v WHERE v.dimension = q.table_name AND v.id = q.source_id AND v.version[1] >= q.source_last_updated)"
        ).format(v=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION))
    else:
        raise ValueError(f"{table.name} rows are never quarantined")
    return sql.SQL(
        "WITH resolved AS (UPDATE {q} q SET resolved_at = now(), resolved_by_run = %s "
        "WHERE q.table_name = %s AND q.resolved_at IS NULL AND {loaded} RETURNING 1) SELECT count(*) FROM resolved"
    ).format(q=_table(schema), loaded=loaded)


def waiting_ids(wh: psycopg.Connection, schema: str, table: str) -> set[int]:
    """The source ids of a table's rows that still wait in the quarantine."""
    rows = wh.execute(
        sql.SQL(
            "SELECT DISTINCT source_id FROM {} WHERE table_name = %s AND resolved_at IS NULL AND source_id IS NOT NULL"
        ).format(_table(schema)),
        (table,),
    )
    return {r[0] for r in rows}


def waiting_from_run(wh: psycopg.Connection, schema: str, run_id: str) -> list[tuple[str, str, int, str, str]]:
    """(table, stage, rows, reason, object key) of what this run quarantined and is still waiting."""
    rows = wh.execute(
        sql.SQL(
            "SELECT table_name, stage, count(*), min(split_part(reason, ':', 1)), min(object_key) FROM {} "
            "WHERE run_id = %s AND resolved_at IS NULL GROUP BY table_name, stage, split_part(reason, ':', 1) ORDER BY 1, 2"
        ).format(_table(schema)),
        (run_id,),
    ).fetchall()
    return [tuple(r) for r in rows]
