"""Ingest: one totesys table's changed rows -> parquet parts and a manifest in the ingestion bucket.

``ingest_table`` is the stage: it works out the run's window (README, "Window and lookback"),
checks the live table against its data contract (the registry's columns, types and
nullability), then streams the window's rows with one ``COPY (SELECT ...) TO STDOUT`` through
Arrow into zstd parquet parts, and commits them with a manifest. A table that broke its contract
is not read as usual: its window's rows are copied, as the database returns them, to the
quarantine, and ``SchemaDrift`` is raised.

SQL here is built only from identifiers declared in include.registry, quoted with psycopg's sql
module; the window's start is a literal psycopg quotes and types.
"""

from __future__ import annotations

import gzip
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from include import quarantine
from include.config import BATCH_ROWS, LOOKBACK
from include.lake import Lake, publish, quarantine_prefix, run_prefix, to_naive_utc, write_parquet_parts
from include.pgarrow import arrow_schema, copy_out_batches
from include.registry import SOURCE, SourceTable
from include.results import IngestResult, Run

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# The window
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What one ingest reads: rows with ``last_updated >= start`` (all rows when ``start`` is
    None: a snapshot), as they are when it reads them.

    ``interval_end`` is the end of the run's data interval. The read is deliberately not cut at
    it: a row changed after the interval end is read now and again by the next run (the load
    keeps one copy), whereas cutting it off would hide the current version of a row that a
    joined dimension needs (an address changed a minute after the interval end, pointed at by a
    counterparty changed inside it).
    """

    start: datetime | None
    interval_end: datetime

    @property
    def mode(self) -> str:
        return "snapshot" if self.start is None else "incremental"

    def as_dict(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None, "interval_end": self.interval_end.isoformat()}


def ingest_window(
    *,
    interval_start: datetime,
    interval_end: datetime,
    prev_success_end: datetime | None,
    is_first_run: bool,
    table_in_lake: bool,
    full_refresh: bool,
    lookback: timedelta,
) -> Window:
    """The window one ingest reads (README, "Window and lookback").

    * A full snapshot on the first run of the DAG, when the lake holds nothing of the table (a
      new table, an emptied bucket), or on request (``full_refresh``).
    * Otherwise every row changed since the end of the previous *successful* run, minus the
      lookback: a failed or skipped run leaves no gap, because the next run reaches back to the
      last success; rows committed late (last_updated set before a slow commit) are read by the
      next run as long as they commit within the lookback.
    """
    end = to_naive_utc(interval_end)
    if full_refresh or is_first_run or not table_in_lake:
        return Window(None, end)
    start = to_naive_utc(interval_start)
    if prev_success_end is not None:
        start = min(start, to_naive_utc(prev_success_end))
    return Window(start - lookback, end)


# ------------------------------------------------------------------------------------------
# The data contract
# ------------------------------------------------------------------------------------------


class ContractViolation(Exception):
    """The live source no longer matches the declared contract of a table (schema drift)."""

    def __init__(self, table: str, problems: list[str]) -> None:
        self.table = table
        self.problems = problems
        super().__init__(f"totesys.{table} does not match its data contract: " + "; ".join(problems))


class SchemaDrift(Exception):
    """A table broke its contract and its window's rows are quarantined: retrying cannot help,
    a person must change the contract or the source."""


@dataclass(frozen=True)
class LiveColumn:
    name: str
    data_type: str
    udt_name: str
    nullable: bool
    char_length: int | None
    numeric_precision: int | None
    numeric_scale: int | None
    datetime_precision: int | None


def live_columns(conn: psycopg.Connection, table: str, schema: str = "public") -> list[LiveColumn]:
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name, is_nullable = 'YES', character_maximum_length, "
        "numeric_precision, numeric_scale, datetime_precision FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return [LiveColumn(*r) for r in rows]


def contract_problems(table: SourceTable, live: list[LiveColumn]) -> list[str]:
    """Every difference between the declared contract and the live columns (empty: it holds).

    Column order is not part of the contract (extracts select columns by name); names, types,
    and nullability are.
    """
    if not live:
        return [f"table {table.name} not found"]
    by_name = {c.name: c for c in live}
    problems: list[str] = []
    for col in table.columns:
        got = by_name.get(col.name)
        if got is None:
            problems.append(f"column {col.name} is missing")
            continue
        for attr, want in col.type.information_schema().items():
            have = getattr(got, attr)
            if have != want:
                problems.append(f"column {col.name} has {attr} {have!r}, contract says {want!r}")
        if got.nullable and not col.nullable:
            problems.append(f"column {col.name} became nullable")
    declared = set(table.column_names)
    for name in by_name:
        if name not in declared:
            problems.append(f"column {name} is new (not in the contract)")
    return problems


def check_contract(conn: psycopg.Connection, table: SourceTable) -> None:
    problems = contract_problems(table, live_columns(conn, table.name))
    if problems:
        raise ContractViolation(table.name, problems)


# ------------------------------------------------------------------------------------------
# The read
# ------------------------------------------------------------------------------------------


def _select(columns: Iterable[sql.Composable], table: SourceTable, window: Window) -> sql.Composable:
    """``SELECT columns FROM table`` of the window's rows. The start is a literal, quoted and
    typed by psycopg (a datetime we computed, never input): the COPY reader streams only
    queries without bound parameters."""
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), sql.Identifier(table.name))
    if window.start is None:
        return query
    return query + sql.SQL(" WHERE {} >= {}").format(sql.Identifier(table.cursor_column), sql.Literal(window.start))


def extract_query(table: SourceTable, window: Window) -> sql.Composable:
    return _select(map(sql.Identifier, table.column_names), table, window)


def source_schema(table: SourceTable) -> pa.Schema:
    return arrow_schema(table.columns)


def extract_batches(
    conn: psycopg.Connection, table: SourceTable, window: Window, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream the window's rows of ``table`` as Arrow batches (one COPY, constant memory)."""
    yield from copy_out_batches(conn, extract_query(table, window), source_schema(table), batch_rows=batch_rows)


class _Newest:
    """Counts the rows going by and keeps the greatest value of one column."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.rows = 0
        self.value: datetime | None = None

    def track(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.rows += batch.num_rows
            top = pc.max(batch.column(self.column)).as_py()
            if top is not None and (self.value is None or top > self.value):
                self.value = top
            yield batch


# ------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------


def ingest_table(
    conn: psycopg.Connection,
    lake: Lake,
    table: SourceTable,
    run: Run,
    *,
    lookback: timedelta = LOOKBACK,
    batch_rows: int = BATCH_ROWS,
) -> IngestResult:
    """Ingest the run's window of ``table`` (``conn``: totesys, read-only; ``lake``: the
    ingestion bucket). Writes nothing when the window holds no rows."""
    window = ingest_window(
        interval_start=run.interval_start,
        interval_end=run.interval_end,
        prev_success_end=run.prev_success_end,
        is_first_run=run.prev_success_end is None and run.has_logical_date,
        table_in_lake=lake.has_prefix(f"{table.name}/"),
        full_refresh=run.full_refresh,
        lookback=lookback,
    )
    prefix = run_prefix(table.name, run.interval_end, run.run_id)
    log.info("Extracting %s (%s) %s into s3://%s/%s", table.name, window.mode, window.as_dict(), lake.bucket, prefix)
    newest = _Newest(table.cursor_column)
    schema = source_schema(table)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            check_contract(conn, table)
        except ContractViolation as drift:
            key = _quarantine_drift(conn, lake, quarantine_prefix(table.name, run.interval_end, run.run_id), drift, window, tmp)
            raise SchemaDrift(
                f"{drift}. The window's rows, as the database returns them, are quarantined at "
                f"s3://{lake.bucket}/{key}; nothing of {table.name} moves until include/registry.py or "
                "the source is fixed (README, 'When things go wrong')."
            ) from drift
        parts = write_parquet_parts(lake, prefix, newest.track(extract_batches(conn, table, window, batch_rows)), schema, tmp)
    newest_change = newest.value.isoformat() if newest.value else None
    details = {"window": window.as_dict(), "mode": window.mode, "max_last_updated": newest_change}
    key = publish(lake, prefix, parts, schema, table=table.name, run_id=run.run_id, **details)
    log.info("%s: %d rows in %d part(s)%s", table.name, newest.rows, len(parts), "" if key else ": nothing written")
    return IngestResult(
        table=table.name, rows=newest.rows, mode=window.mode, window=window.as_dict(), manifest_key=key,
        bytes=sum(p.bytes for p in parts), newest_change=newest_change,
    )  # fmt: skip


def _quarantine_drift(
    conn: psycopg.Connection, lake: Lake, prefix: str, drift: ContractViolation, window: Window, workdir: str
) -> str:
    """Copy the window's rows of a drifted table, every live column as text, to the quarantine
    (gzipped CSV with a header), with the reason beside it."""
    live = [c.name for c in live_columns(conn, drift.table)]
    table = SOURCE[drift.table]
    # The window applies only while the cursor column survives the drift.
    query = _select(
        (sql.SQL("{}::text").format(sql.Identifier(c)) for c in live),
        table,
        window if table.cursor_column in live else Window(None, window.interval_end),
    )
    path = f"{workdir}/rows.csv.gz"
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(query)
    with conn.transaction(), conn.cursor() as cur, gzip.open(path, "wb") as out, cur.copy(copy_sql) as copy:
        for chunk in copy:
            out.write(chunk)
    log.error("Schema drift in %s: %s", drift.table, "; ".join(drift.problems))
    reason = {"table": drift.table, "problems": drift.problems, "live_columns": live, "window": window.as_dict()}
    return quarantine.store(lake, prefix, "rows.csv.gz", path, reason | {"rows_key": f"{prefix}rows.csv.gz"}, "reason.json")
