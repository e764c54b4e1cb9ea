"""What every run did, kept in the warehouse beside the data (README, "Figures").

* ``etl_stage_figures``: one row per run, stage (ingest, transform, load) and table: rows read,
  written, rejected and quarantined, bytes, seconds, the window read and the newest source
  change handled. The load's row is written in the load's own transaction.
* ``etl_check_result``: one row per run, check and table: passed or not, the ids the check
  expected, found and excepted (quarantined), the freshness lag, the problems.

A row's key is (run, stage or check, table): a rerun of a run replaces its figures, never adds
to them. The schema task of every run deletes the rows recorded more than ``RETENTION`` before
its interval's end (the interval is the clock; a backfill of an old interval deletes nothing,
and its own figures are kept as long as any run's recorded that day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from psycopg import sql

from include import bookkeeping

if TYPE_CHECKING:
    import psycopg

    from include.checks import CheckReport
    from include.results import IngestResult, LoadResult, Run, TransformResult

RETENTION = timedelta(days=90)
STAGES = ("ingest", "transform", "load")


@dataclass(frozen=True)
class StageFigures:
    """What one stage did to one table in one run.

    rows_rejected: rows the stage refused (a transform: a value the warehouse cannot hold; a
    load: a fact whose dimension row is missing); rows_quarantined: the rows it put in the
    quarantine, each counted by the stage that refused it (a load also records its transform's
    in etl_quarantine, and does not count them again).
    """

    stage: str
    table: str
    seconds: float
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_quarantined: int = 0
    bytes: int = 0
    window_start: str | None = None  # an ingest's: where its read began (None: a snapshot)
    newest_change: str | None = None  # the newest source last_updated the stage handled

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}")


def of_ingest(result: IngestResult, seconds: float) -> StageFigures:
    return StageFigures(
        "ingest", result.table, seconds, rows_read=result.rows, rows_written=result.rows if result.manifest_key else 0,
        bytes=result.bytes, window_start=result.window.get("start"), newest_change=result.newest_change,
    )  # fmt: skip


def of_transform(result: TransformResult, seconds: float) -> StageFigures:
    return StageFigures(
        "transform", result.table, seconds, rows_read=result.rows_read, rows_written=result.rows,
        rows_rejected=result.rejected, rows_quarantined=result.rejected, bytes=result.bytes,
        newest_change=max(result.source_max.values(), default=None),
    )  # fmt: skip


def of_load(result: LoadResult, seconds: float, *, refused: int, newest_change: str | None) -> StageFigures:
    """``refused``: the rows this load itself refused (``result.rejected`` also counts those of
    its transform that it recorded in etl_quarantine: the transform's figures count those)."""
    return StageFigures(
        "load", result.table, seconds, rows_read=result.staged + result.replayed, rows_written=result.written,
        rows_rejected=refused, rows_quarantined=refused, bytes=result.bytes, newest_change=newest_change,
    )  # fmt: skip


_STAGE_COLUMNS = (
    "rows_read", "rows_written", "rows_rejected", "rows_quarantined", "bytes", "seconds",
    "window_start", "newest_change",
)  # fmt: skip


def record_stage(conn: psycopg.Connection, schema: str, run: Run, figures: StageFigures) -> None:
    """Keep ``figures`` for ``run`` (replacing what an earlier try of the run kept). Runs in the
    caller's transaction when there is one."""
    cols = ("run_id", "stage", "table_name", "interval_start", "interval_end", *_STAGE_COLUMNS)
    values = (run.run_id, figures.stage, figures.table, run.interval_start, run.interval_end)
    values += tuple(getattr(figures, c) for c in _STAGE_COLUMNS)
    conn.execute(_upsert(schema, bookkeeping.STAGE_FIGURES, cols, 3), values)


def read_stage(conn: psycopg.Connection, schema: str, run_id: str, stage: str, table: str) -> StageFigures | None:
    """The figures a stage kept for ``run_id`` and ``table``, as committed (None: none kept)."""
    row = conn.execute(
        sql.SQL("SELECT seconds, {} FROM {} WHERE run_id = %s AND stage = %s AND table_name = %s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _STAGE_COLUMNS if c != "seconds"),
            bookkeeping.table(schema, bookkeeping.STAGE_FIGURES),
        ),
        (run_id, stage, table),
    ).fetchone()
    if row is None:
        return None
    named = dict(zip((c for c in _STAGE_COLUMNS if c != "seconds"), row[1:], strict=True))
    for c in ("window_start", "newest_change"):
        named[c] = None if named[c] is None else str(named[c])
    return StageFigures(stage, table, float(row[0]), **named)


def record_checks(conn: psycopg.Connection, schema: str, run: Run, check: str, report: CheckReport) -> int:
    """Keep one ``etl_check_result`` row per table the check looked at (and one per table only a
    problem names), replacing the run's earlier ones, in one transaction; the number kept."""
    cols = (
        "run_id", "check_name", "table_name", "interval_end", "passed", "ids_expected", "ids_present",
        "ids_quarantined", "lag_seconds", "problems",
    )  # fmt: skip
    rows = []
    for table in sorted(report.figures.keys() | report.failed.keys()):
        f = report.figures.get(table, {})
        expected = f.get("recent_versions")
        present = expected - f.get("recent_absent", 0) if expected is not None else None
        problems = report.failed.get(table, [])
        rows.append(
            (run.run_id, check, table, run.interval_end, table not in report.failed, expected, present,
             f.get("quarantined_ids"), f.get("lag_seconds"), " | ".join(problems) or None)
        )  # fmt: skip
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE run_id = %s AND check_name = %s").format(
                bookkeeping.table(schema, bookkeeping.CHECK_RESULT)
            ),
            (run.run_id, check),
        )
        if rows:
            cur.executemany(_upsert(schema, bookkeeping.CHECK_RESULT, cols, 3), rows)
    return len(rows)


def forget_run(conn: psycopg.Connection, schema: str, run_id: str) -> int:
    """Delete what earlier tries of ``run_id`` kept: the run's schema task does this first, so
    that a rerun of the whole run (a clear) keeps only its own figures, also for a stage that
    this time skips or fails before recording. A partial clear does not rerun the schema task:
    the figures of the tasks it leaves alone still describe what they did."""
    deleted = 0
    with conn.transaction():
        for name in (bookkeeping.STAGE_FIGURES, bookkeeping.CHECK_RESULT):
            cur = conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(bookkeeping.table(schema, name)), (run_id,))
            deleted += cur.rowcount
    return deleted


def apply_retention(conn: psycopg.Connection, schema: str, run: Run, keep: timedelta = RETENTION) -> int:
    """Delete the figures recorded more than ``keep`` before ``run``'s interval end; the number
    of rows deleted."""
    deleted = 0
    with conn.transaction():
        for name in (bookkeeping.STAGE_FIGURES, bookkeeping.CHECK_RESULT):
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE recorded_at < %s").format(bookkeeping.table(schema, name)),
                (run.interval_end - keep,),
            )
            deleted += cur.rowcount
    return deleted


def _upsert(schema: str, name: str, cols: tuple[str, ...], key_columns: int) -> sql.Composable:
    """INSERT of ``cols``; on the key (the first ``key_columns``) it replaces the rest. The row's
    recorded_at is the statement's own time (clock_timestamp(): a load records inside its
    transaction, whose now() is when it began)."""
    rest = cols[key_columns:]
    return sql.SQL(
        "INSERT INTO {t} ({c}, recorded_at) VALUES ({v}, clock_timestamp()) "
        "ON CONFLICT ({k}) DO UPDATE SET {s}, recorded_at = clock_timestamp()"
    ).format(
        t=bookkeeping.table(schema, name),
        c=sql.SQL(", ").join(map(sql.Identifier, cols)),
        v=sql.SQL(", ").join([sql.Placeholder()] * len(cols)),
        k=sql.SQL(", ").join(map(sql.Identifier, cols[:key_columns])),
        s=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in rest),
    )
