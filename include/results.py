"""What a task knows of its DAG run, and the small results tasks hand each other through XCom.

XCom carries keys and counts, never data: each result names the objects a task committed (a
manifest key, a quarantine key) and what it counted. A result is a dataclass; ``to_xcom`` gives
the plain dict Airflow stores and ``from_xcom`` reads one back (None for a task that produced
nothing: it failed or was skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Self


@dataclass(frozen=True)
class Run:
    """The run a task belongs to: its id and data interval (the clock of every task: nothing
    reads now()), the end of the previous successful run, and how it was triggered."""

    run_id: str
    interval_start: datetime
    interval_end: datetime
    prev_success_end: datetime | None = None
    # A run with a logical date (scheduled, backfilled, or triggered with one). Airflow 3's
    # default manual trigger has none, so it is never taken for the DAG's first run.
    has_logical_date: bool = True
    full_refresh: bool = False
    backfill: bool = False  # one run of an ``airflow backfill``
    reconcile_whole_tables: bool = False  # asked for in the run's params

    @classmethod
    def manual(cls, run_id: str, run_after: datetime, period: timedelta, **kwargs: Any) -> Run:
        """A manual run without a logical date: the ``period`` that ends when it was triggered."""
        return cls(run_id, run_after - period, run_after, has_logical_date=False, **kwargs)


class XComResult:
    """A dataclass that travels through XCom as a plain dict."""

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_xcom(cls, value: object) -> Self | None:
        if not isinstance(value, Mapping):
            return None
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in value.items() if k in names})


@dataclass(frozen=True)
class IngestResult(XComResult):
    table: str
    rows: int = 0
    mode: str = "incremental"  # or "snapshot"
    window: dict[str, str | None] = field(default_factory=dict)
    manifest_key: str | None = None  # None: the window held no rows, nothing was written
    bytes: int = 0  # of the parquet parts written
    newest_change: str | None = None  # the newest last_updated read


@dataclass(frozen=True)
class TransformResult(XComResult):
    table: str
    rows: int = 0
    rows_read: int = 0  # from the ingests' manifests
    bytes: int = 0  # of the parquet parts written
    manifest_key: str | None = None
    rejected: int = 0  # source rows quarantined by the transform
    quarantine_key: str | None = None
    # The newest change of each source table read, loaded or quarantined: the freshness check's input.
    source_max: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadResult(XComResult):
    table: str
    staged: int = 0
    written: int = 0
    rejected: int = 0  # rows quarantined by this load (and by its transform)
    replayed: int = 0  # quarantined rows of earlier runs that were staged again
    bytes: int = 0  # of the processed parquet read


@dataclass(frozen=True)
class CheckResult(XComResult):
    check: str
    tables: int = 0


@dataclass(frozen=True)
class OutcomeResult(XComResult):
    tasks: int = 0  # the run's other tasks, none of which failed


@dataclass(frozen=True)
class QuarantineReport(XComResult):
    quarantined: int = 0  # rows this run quarantined that still wait


@dataclass(frozen=True)
class FxIngestResult(XComResult):
    day: str
    rate_date: str
    rates: int
    manifest_key: str


@dataclass(frozen=True)
class FxLoadResult(XComResult):
    day: str
    rows: int = 0
    written: int = 0


@dataclass(frozen=True)
class FeedPickUpResult(XComResult):
    feed: str
    listed: int = 0  # objects under the prefix
    new: int = 0  # of those, not in the ledger at their ETag
    kept: int = 0
    quarantined: int = 0
    rows: int = 0  # records of the kept files
    manifest_key: str | None = None  # None: nothing kept
    bytes: int = 0  # of the kept files


@dataclass(frozen=True)
class FeedLoadResult(XComResult):
    feed: str
    files: int = 0
    loaded: int = 0
    superseded: int = 0  # an older document of a scope that has a later one
    again: int = 0  # already in the ledger: a rerun or a second notification
    written: int = 0  # rows deleted and inserted


@dataclass(frozen=True)
class ReportResult(XComResult):
    view: str
    rows: int = 0
