"""Data-quality checks run at the end of every run (README, "Checks").

* reconcile: per table, the warehouse agrees with the source: every source row created before
  the cut-off is there (distinct ids), every source row changed recently is there at its current
  version, rows waiting in the quarantine excepted; the foreign keys and the unique version
  constraints that make every fact key resolve and every version unique are in force.
* freshness: for each source table, the newest change the warehouse reflects is no more than
  30 minutes older than the newest change in the source.

The cut-off is the run's interval end minus the lookback: a row committed late (within the
lookback) is not yet expected. Nothing here reads the clock: the run's interval is the reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from psycopg import sql

from include import bookkeeping, quarantine
from include.config import LOOKBACK
from include.lake import to_naive_utc
from include.registry import SOURCE, WAREHOUSE_TABLES, WarehouseTable
from include.results import CheckResult, Run

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    figures: dict[str, dict[str, object]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _one(conn: psycopg.Connection, query: sql.Composable, params=None):
    return conn.execute(query, params).fetchone()[0]


class CheckFailed(Exception):
    """The warehouse disagrees with the source: waiting does not heal it, a person must look."""


def reconcile(
    src: psycopg.Connection, wh: psycopg.Connection, schema: str, cutoff: datetime, recent_from: datetime
) -> CheckReport:
    """Compare the warehouse with the source; ``recent_from``..``cutoff`` is the span whose
    changes are checked version by version."""
    report = CheckReport()
    for table in WAREHOUSE_TABLES:
        if table.kind == "calendar":  # no source rows of its own: the facts' foreign keys cover it
            continue
        source = SOURCE[table.source]
        key = sql.Identifier(source.primary_key)
        wh_key = sql.Identifier(table.natural_id if table.is_fact else table.primary_key)
        target = sql.Identifier(schema, table.name)
        waiting = quarantine.waiting_ids(wh, schema, table.name)
        expected = _one(
            src, sql.SQL("SELECT count(*) FROM {} WHERE created_at < %s").format(sql.Identifier(source.name)), (cutoff,)
        )
        existing = _one(src, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(source.name)))
        have = _one(wh, sql.SQL("SELECT count(DISTINCT {}) FROM {}").format(wh_key, target))
        figures = {"source_ids": existing, "expected_ids": expected, "warehouse_ids": have, "quarantined_ids": len(waiting)}
        if have < expected - len(waiting):
            report.problems.append(
                f"{table.name}: {expected - len(waiting) - have} source row(s) missing ({have} of {expected} ids)"
            )
        if have > existing:
            report.problems.append(f"{table.name}: {have - existing} id(s) that the source does not have")

        # Every row changed in the recent span is there at its current version.
        recent = src.execute(
            sql.SQL("SELECT {}, last_updated FROM {} WHERE last_updated >= %s AND last_updated < %s").format(
                key, sql.Identifier(source.name)
            ),
            (recent_from, cutoff),
        ).fetchall()
        recent = [(i, lu) for i, lu in recent if i not in waiting]
        if recent:
            ids = [i for i, _ in recent]
            versions = [lu for _, lu in recent]
            if table.is_fact:
                present = sql.SQL(
                    "SELECT count(*) FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE EXISTS ("
                    "SELECT 1 FROM {t} t WHERE t.{k} = v.id AND t.last_updated_date = v.lu::date AND t.last_updated_time = v.lu::time)"
                ).format(t=target, k=wh_key)
            else:
                present = sql.SQL(
                    "SELECT count(*) FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE EXISTS ("
                    "SELECT 1 FROM {v} x WHERE x.dimension = {d} AND x.id = v.id AND x.version[1] >= v.lu)"
                ).format(v=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION), d=sql.Literal(table.name))
            found = _one(wh, present, (ids, versions))
            figures["recent_versions"] = len(recent)
            if found < len(recent):
                report.problems.append(
                    f"{table.name}: {len(recent) - found} of {len(recent)} recent change(s) not in the warehouse"
                )
        if table.join:
            _check_join_partners(src, wh, schema, table, recent_from, cutoff, waiting, report)
        report.figures[table.name] = figures

    # Every fact key resolves and every version is unique: the constraints saying so must be in force.
    rows = wh.execute(
        "SELECT c.conrelid::regclass::text, c.contype, c.convalidated FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %s AND c.contype IN ('f', 'u')",
        (schema,),
    ).fetchall()
    for table in WAREHOUSE_TABLES:
        if not table.is_fact:
            continue
        mine = [(kind, valid) for rel, kind, valid in rows if rel.split(".")[-1].strip('"') == table.name]
        fks = [valid for kind, valid in mine if kind == "f"]
        if len(fks) != sum(1 for c in table.columns if c.references) or not all(fks):
            report.problems.append(f"{table.name}: not every foreign key to its dimensions is in force")
        if not any(kind == "u" and valid for kind, valid in mine):
            report.problems.append(f"{table.name}: the unique version constraint is missing")
    return report


def _check_join_partners(
    src, wh, schema: str, table: WarehouseTable, recent_from: datetime, cutoff: datetime, waiting: set[int], report: CheckReport
) -> None:
    """A recent change to a joined row (an address) must have reached every dimension row built
    on it (each counterparty using it): their version's second element is at least as new."""
    left, right = SOURCE[table.source], SOURCE[table.join.table]
    pairs = src.execute(
        sql.SQL("SELECT l.{lk}, r.last_updated FROM {l} l JOIN {r} r ON l.{fk} = r.{rk} WHERE r.last_updated >= %s AND r.last_updated < %s").format(
            lk=sql.Identifier(left.primary_key), l=sql.Identifier(left.name), r=sql.Identifier(right.name),
            fk=sql.Identifier(table.join.on), rk=sql.Identifier(right.primary_key),
        ),
        (recent_from, cutoff),
    ).fetchall()  # fmt: skip
    pairs = [(i, lu) for i, lu in pairs if i not in waiting]
    if not pairs:
        return
    found = _one(
        wh,
        sql.SQL(
            "SELECT count(*) FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE EXISTS ("
            "SELECT 1 FROM {v} x WHERE x.dimension = {d} AND x.id = v.id AND x.version[2] >= v.lu)"
        ).format(v=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION), d=sql.Literal(table.name)),
        ([i for i, _ in pairs], [lu for _, lu in pairs]),
    )
    if found < len(pairs):
        report.problems.append(f"{table.name}: {len(pairs) - found} row(s) not rebuilt after a change to their {right.name} row")


FRESHNESS_LIMIT = timedelta(minutes=30)


def freshness(src: psycopg.Connection, wh: psycopg.Connection, schema: str, as_of: datetime) -> CheckReport:
    """For each source table: the newest change before ``as_of`` against the newest change the
    warehouse's loads have reflected (etl_load_log)."""
    report = CheckReport()
    loaded = dict(
        wh.execute(
            sql.SQL(
                "SELECT t.key, max(t.value::timestamp) FROM {} l, jsonb_each_text(l.source_max_last_updated) t GROUP BY t.key"
            ).format(bookkeeping.table(schema, bookkeeping.LOAD_LOG))
        ).fetchall()
    )
    for source in SOURCE.values():
        newest = _one(
            src, sql.SQL("SELECT max(last_updated) FROM {} WHERE last_updated < %s").format(sql.Identifier(source.name)), (as_of,)
        )
        reflected = loaded.get(source.name)
        report.figures[source.name] = {"source_newest": str(newest), "warehouse_newest": str(reflected)}
        if newest is None:
            continue
        if reflected is None:
            report.problems.append(f"{source.name}: nothing of it has reached the warehouse (newest change {newest})")
        elif newest - reflected > FRESHNESS_LIMIT:
            report.problems.append(
                f"{source.name}: the warehouse is {newest - reflected} behind (source {newest}, warehouse {reflected})"
            )
    return report


def run_check(check: str, src: psycopg.Connection, wh: psycopg.Connection, schema: str, run: Run) -> CheckResult:
    """The check stage: ``reconcile`` or ``freshness`` for the run's interval (``src``: totesys,
    ``wh``: the warehouse, both read-only). Logs every table's figures; raises CheckFailed naming
    every problem."""
    start, end = to_naive_utc(run.interval_start), to_naive_utc(run.interval_end)
    if check == "reconcile":
        report = reconcile(src, wh, schema, cutoff=end - LOOKBACK, recent_from=start - LOOKBACK)
    elif check == "freshness":
        report = freshness(src, wh, schema, as_of=end)
    else:
        raise ValueError(f"unknown check {check!r}")
    for table, figures in report.figures.items():
        log.info("%s %s: %s", check, table, figures)
    if report.problems:
        raise CheckFailed(f"{check} failed: " + "; ".join(report.problems))
    return CheckResult(check=check, tables=len(report.figures))
