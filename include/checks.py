"""Data-quality checks run at the end of every run (README, "Checks").

* reconcile: the warehouse agrees with the source, identity by identity, never by counts (a
  row deleted by hand and a new source row would cancel out in a count):

  - every run: no statement changed a warehouse table outside a pipeline load (the triggers
    include.ddl creates record each one, and their being in force is checked); every source
    row changed in the recent span is in the warehouse at its current version, and every row
    built on a changed address or department was rebuilt; the foreign keys and unique version
    constraints that make every fact key resolve and every version unique are in force;
  - on the hour (and in a full refresh, a run triggered by hand or with
    ``reconcile_whole_tables``): whole tables, id by id. Both sides sum a 64-bit hash of
    (id, version) per part of 1,024 ids, in SQL; only parts whose sums differ are read id by id,
    and each difference is named: a source row missing, a row at an older version, at a version
    the source never had, an id the source does not have. This sees what no trigger can: a
    row the pipeline itself lost, a late commit older than the lookback, triggers turned off.

  Rows waiting in the quarantine are excepted throughout.
* freshness: for each source table, the newest change the warehouse reflects is no more than
  30 minutes older than the newest change in the source.

The cut-off is the run's interval end minus the lookback: a row committed late (within the
lookback) is not yet expected. Nothing here reads the clock: the run's interval is the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from psycopg import sql

from include import bookkeeping, quarantine
from include.config import FRESHNESS_LIMIT, LOOKBACK
from include.ddl import TRIGGER_EVENTS, trigger_modes, trigger_name
from include.lake import to_naive_utc
from include.registry import SOURCE, WAREHOUSE_TABLES, WarehouseTable
from include.results import CheckResult, OutcomeResult, Run

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# The whole-table comparison runs when a run's interval ends on a multiple of this after
# midnight UTC (a divisor of a day).
WHOLE_TABLES_EVERY = timedelta(hours=1)
PART_BITS = 10  # 1,024 ids per part
DRILL_PARTS = 512  # parts read id by id per query
SHOWN_IDS = 10  # ids named per kind of difference


@dataclass
class CheckReport:
    figures: dict[str, dict[str, object]] = field(default_factory=dict)  # table -> what was counted
    failed: dict[str, list[str]] = field(default_factory=dict)  # table -> its problems

    def add(self, table: str, problem: str) -> None:
        self.failed.setdefault(table, []).append(problem)

    @property
    def problems(self) -> list[str]:
        return [f"{table}: {p}" for table, problems in self.failed.items() for p in problems]


def _one(conn: psycopg.Connection, query: sql.Composable, params=None):
    return conn.execute(query, params).fetchone()[0]


class CheckFailed(Exception):
    """The warehouse disagrees with the source: waiting does not heal it, a person must look."""


def reconcile(
    src: psycopg.Connection,
    wh: psycopg.Connection,
    schema: str,
    cutoff: datetime,
    recent_from: datetime,
    *,
    whole_tables: bool = False,
) -> CheckReport:
    """Compare the warehouse with the source; ``recent_from``..``cutoff`` is the span whose
    changes are checked version by version, and ``whole_tables`` adds the id-by-id comparison
    of every table as of ``cutoff``."""
    report = CheckReport()
    _check_outside_writes(wh, schema, report)
    for table in WAREHOUSE_TABLES:
        if table.kind == "calendar":  # no source rows of its own: the facts' foreign keys cover it
            continue
        waiting = quarantine.waiting_ids(wh, schema, table.name)
        figures: dict[str, object] = {"quarantined_ids": len(waiting)}
        _check_recent_changes(src, wh, schema, table, recent_from, cutoff, waiting, report, figures)
        if table.join:
            _check_join_partners(src, wh, schema, table, recent_from, cutoff, waiting, report)
        if whole_tables:
            _compare_whole_table(src, wh, schema, table, cutoff, waiting, report, figures)
        report.figures[table.name] = figures
    _check_constraints_in_force(wh, schema, report)
    return report


def _shown(ids: Iterable[object]) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:SHOWN_IDS])) + (f", ... ({len(ids)} in all)" if len(ids) > SHOWN_IDS else "")


def _check_outside_writes(wh: psycopg.Connection, schema: str, report: CheckReport) -> None:
    """Every statement that changed a warehouse table outside a pipeline load and that no one has
    accepted yet (include.ddl's triggers record them): one problem per table and kind of write."""
    rows = wh.execute(
        sql.SQL(
            "SELECT table_name, operation, count(*), sum(rows), string_agg(DISTINCT written_by, ', '), "
            "min(written_at), max(written_at), array_agg(ids ORDER BY write_id) FROM {} "
            "WHERE accepted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).format(bookkeeping.table(schema, bookkeeping.OUTSIDE_WRITE))
    ).fetchall()
    done = {"INSERT": "inserted", "UPDATE": "updated", "DELETE": "deleted"}
    for table, operation, statements, changed, who, first, last, samples in rows:
        ids = {i for sample in samples if sample for i in sample}
        what = f"{changed} row(s) {done[operation]}" if operation in done else "emptied by TRUNCATE"
        report.add(
            table,
            f"{what} outside the pipeline ({statements} statement(s) by {who}, {first.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
            + (f" to {last.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if last != first else "")
            + " UTC"
            + (f"; ids {_shown(ids)}" if ids else "")
            + "): repair the table, then accept the writes (runbook)",
        )


def _check_recent_changes(
    src, wh, schema: str, table: WarehouseTable, recent_from: datetime, cutoff: datetime, waiting: set[int],
    report: CheckReport, figures: dict[str, object],
) -> None:  # fmt: skip
    """Every row changed in the recent span is there at its current version (a fact: that very
    version; a dimension: at least that version)."""
    source = SOURCE[table.source]
    recent = src.execute(
        sql.SQL("SELECT {}, last_updated FROM {} WHERE last_updated >= %s AND last_updated < %s").format(
            sql.Identifier(source.primary_key), sql.Identifier(source.name)
        ),
        (recent_from, cutoff),
    ).fetchall()
    recent = [(i, lu) for i, lu in recent if i not in waiting]
    figures["recent_versions"] = len(recent)
    if not recent:
        return
    target = sql.Identifier(schema, table.name)
    if table.is_fact:
        present = sql.SQL(
            "SELECT v.id FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE NOT EXISTS ("
            "SELECT 1 FROM {t} t WHERE t.{k} = v.id AND t.last_updated_date = v.lu::date AND t.last_updated_time = v.lu::time)"
        ).format(t=target, k=sql.Identifier(table.natural_id))
    else:
        present = sql.SQL(
            "SELECT v.id FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE NOT EXISTS ("
            "SELECT 1 FROM {t} d JOIN {v} x ON x.dimension = {d} AND x.id = d.{k} WHERE d.{k} = v.id AND x.version[1] >= v.lu)"
        ).format(
            t=target,
            k=sql.Identifier(table.primary_key),
            v=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION),
            d=sql.Literal(table.name),
        )
    absent = [r[0] for r in wh.execute(present, ([i for i, _ in recent], [lu for _, lu in recent]))]
    figures["recent_absent"] = len(absent)
    if absent:
        report.add(table.name, f"{len(absent)} of {len(recent)} recent change(s) not in the warehouse (ids {_shown(absent)})")


# ------------------------------------------------------------------------------------------
# The whole-table comparison
# ------------------------------------------------------------------------------------------


def _digest(id_column: sql.Composable, version: sql.Composable) -> sql.Composable:
    """Per part of 2**PART_BITS ids: the ids, and two independent sums of the top 32 bits of a
    64-bit hash of (id, version in microseconds). hashint8extended is PostgreSQL's stable hash
    (hash partitioning relies on it), so the two databases agree on every value."""
    micros = sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(version)
    return sql.SQL(
        "{id} >> {bits}, count(*), sum(hashint8extended({us}, {id}::bigint) >> 32), "
        "sum(hashint8extended({us}, {id}::bigint # 6364136223846793005) >> 32)"
    ).format(id=id_column, bits=sql.Literal(PART_BITS), us=micros)


def _in_parts(column: sql.Composable) -> sql.Composable:
    """A join condition: ``column`` lies in one of the parts bound as an int[] (index ranges)."""
    return sql.SQL("JOIN unnest(%s::int[]) AS p(part) ON {c} >= p.part << {b} AND {c} < (p.part + 1) << {b}").format(
        c=column, b=sql.Literal(PART_BITS)
    )


def _warehouse_versions(schema: str, table: WarehouseTable, parts: bool) -> sql.Composable:
    """(id, version) of each id the table holds: a fact's newest version, a dimension row's own
    source version (etl_dimension_version; NULL when none is recorded). With ``parts``, only the
    ids in the parts bound as its one parameter."""
    target = sql.Identifier(schema, table.name)
    if table.is_fact:
        k = sql.Identifier("f", table.natural_id)
        return sql.SQL(
            "SELECT {k} AS id, max(f.last_updated_date + f.last_updated_time) AS version FROM {t} f {p} GROUP BY 1"
        ).format(k=k, t=target, p=_in_parts(k) if parts else sql.SQL(""))
    k = sql.Identifier("d", table.primary_key)
    return sql.SQL(
        "SELECT {k} AS id, x.version[1] AS version FROM {t} d {p} LEFT JOIN {v} x ON x.dimension = {name} AND x.id = {k}"
    ).format(
        k=k,
        t=target,
        p=_in_parts(k) if parts else sql.SQL(""),
        v=bookkeeping.table(schema, bookkeeping.DIMENSION_VERSION),
        name=sql.Literal(table.name),
    )


def _compare_whole_table(
    src, wh, schema: str, table: WarehouseTable, cutoff: datetime, waiting: set[int], report: CheckReport,
    figures: dict[str, object],
) -> None:  # fmt: skip
    """Every id of the source as of ``cutoff`` against every id of the warehouse table.

    Ids whose version is at or after the cut-off are left out of both sums (the source's row may
    be newer than what the warehouse may yet hold); the parts they fall in differ, and reading
    them id by id settles it: such a row may be at any version up to the source's."""
    source = SOURCE[table.source]
    key = sql.Identifier(source.primary_key)
    source_sums = {
        r[0]: r[1:]
        for r in src.execute(
            sql.SQL("SELECT {} FROM {} WHERE last_updated < %s GROUP BY 1").format(
                _digest(key, sql.Identifier("last_updated")), sql.Identifier(source.name)
            ),
            (cutoff,),
        )
    }
    warehouse_sums = {
        r[0]: r[1:]
        for r in wh.execute(
            # a row without a recorded version counts at the epoch: its part differs and is read
            sql.SQL("SELECT {} FROM ({}) w WHERE w.version IS NULL OR w.version < %s GROUP BY 1").format(
                _digest(sql.Identifier("w", "id"), sql.SQL("coalesce(w.version, 'epoch')")),
                _warehouse_versions(schema, table, False),
            ),
            (cutoff,),
        )
    }
    differing = sorted(p for p in source_sums.keys() | warehouse_sums.keys() if source_sums.get(p) != warehouse_sums.get(p))
    figures |= {"source_ids": sum(v[0] for v in source_sums.values()), "parts": len(source_sums), "parts_read": len(differing)}
    kinds: dict[str, list[int]] = {"missing": [], "older": [], "never": [], "unknown": [], "unversioned": []}
    for i in range(0, len(differing), DRILL_PARTS):
        chunk = differing[i : i + DRILL_PARTS]
        theirs = dict(
            src.execute(
                sql.SQL("SELECT s.{k}, s.last_updated FROM {t} s {p}").format(
                    k=key, t=sql.Identifier(source.name), p=_in_parts(sql.Identifier("s", source.primary_key))
                ),
                (chunk,),
            ).fetchall()
        )
        ours = dict(wh.execute(_warehouse_versions(schema, table, True), (chunk,)).fetchall())
        for id_ in theirs.keys() | ours.keys():
            if id_ in waiting:
                continue
            s, w = theirs.get(id_), ours.get(id_)
            if s is None:
                kinds["unknown"].append(id_)
            elif id_ in ours and w is None:
                kinds["unversioned"].append(id_)
            elif w is not None and w > s:
                kinds["never"].append(id_)
            elif s < cutoff and w is None:
                kinds["missing"].append(id_)
            elif s < cutoff and w < s:
                kinds["older"].append(id_)
    says = {
        "missing": "source row(s) missing",
        "older": "row(s) at an older version than the source's",
        "never": "row(s) at a version the source never had",
        "unknown": "id(s) that the source does not have",
        "unversioned": "row(s) without a recorded source version (etl_dimension_version)",
    }
    for kind, ids in kinds.items():
        if ids:
            report.add(table.name, f"{len(ids)} {says[kind]} (ids {_shown(ids)})")


def _check_constraints_in_force(wh: psycopg.Connection, schema: str, report: CheckReport) -> None:
    """Every fact key resolves and every version is unique: the constraints saying so must be in
    force; and every table's triggers recording writes outside the pipeline must be enabled."""
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
            report.add(table.name, "not every foreign key to its dimensions is in force")
        if not any(kind == "u" and valid for kind, valid in mine):
            report.add(table.name, "the unique version constraint is missing")
    enabled = {key for key, mode in trigger_modes(wh, schema).items() if mode in ("O", "A")}
    for table in WAREHOUSE_TABLES:
        off = [trigger_name(e) for e in TRIGGER_EVENTS if (table.name, trigger_name(e)) not in enabled]
        if off:
            report.add(table.name, f"the triggers recording writes outside the pipeline are not in force ({', '.join(off)})")


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
        report.add(table.name, f"{len(pairs) - found} row(s) not rebuilt after a change to their {right.name} row")


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
        lag = (newest - reflected).total_seconds() if newest and reflected else None
        report.figures[source.name] = {"source_newest": newest, "warehouse_newest": reflected, "lag_seconds": lag}
        if newest is None:
            continue
        if reflected is None:
            report.add(source.name, f"nothing of it has reached the warehouse (newest change {newest})")
        elif newest - reflected > FRESHNESS_LIMIT:
            report.add(source.name, f"the warehouse is {newest - reflected} behind (source {newest}, warehouse {reflected})")
    return report


def reconcile_run(src: psycopg.Connection, wh: psycopg.Connection, schema: str, run: Run) -> CheckReport:
    """``reconcile`` as of the run's interval: its cut-off, its recent span, its scope."""
    start, end = to_naive_utc(run.interval_start), to_naive_utc(run.interval_end)
    return reconcile(src, wh, schema, end - LOOKBACK, start - LOOKBACK, whole_tables=compares_whole_tables(run))


def compares_whole_tables(run: Run) -> bool:
    """Whether this run's reconcile compares whole tables: on the hour, in a full refresh, when
    triggered by hand without a logical date, or when asked; never in a backfill, whose
    intervals are older than what the warehouse already holds (its windows are still checked)."""
    if run.backfill:
        return False
    end = to_naive_utc(run.interval_end)  # a pendulum DateTime in a task: plain arithmetic
    since_midnight = timedelta(hours=end.hour, minutes=end.minute, seconds=end.second, microseconds=end.microsecond)
    on_the_hour = since_midnight % WHOLE_TABLES_EVERY == timedelta(0)
    return on_the_hour or run.full_refresh or run.reconcile_whole_tables or not run.has_logical_date


def run_check(
    check: str,
    src: psycopg.Connection,
    wh: psycopg.Connection,
    schema: str,
    run: Run,
    *,
    record: Callable[[CheckReport], None] | None = None,
) -> CheckResult:
    """The check stage: ``reconcile`` or ``freshness`` for the run's interval (``src``: totesys,
    ``wh``: the warehouse, both read-only). Logs every table's figures and hands the report to
    ``record`` (include.figures keeps it), a failing one too; then raises CheckFailed naming
    every problem."""
    if check == "reconcile":
        report = reconcile_run(src, wh, schema, run)
    elif check == "freshness":
        report = freshness(src, wh, schema, as_of=to_naive_utc(run.interval_end))
    else:
        raise ValueError(f"unknown check {check!r}")
    for table, figures in report.figures.items():
        log.info("%s %s: %s", check, table, figures)
    if record is not None:
        record(report)
    if report.problems:
        raise CheckFailed(f"{check} failed: " + " | ".join(report.problems))
    return CheckResult(check=check, tables=len(report.figures))


def run_outcome(states: Mapping[str, str | None], *, own_task_id: str) -> OutcomeResult:
    """The run's verdict from the states of its tasks (task id -> state, the task's own
    included): raises CheckFailed naming every task that failed and every one held back by a
    failure. Airflow takes a run's state from its last tasks, and the checks that run after a
    failure (freshness, the quarantine report) may pass: without this verdict a run whose
    ingest failed ended "success"."""
    failed = sorted(t for t, s in states.items() if s == "failed" and t != own_task_id)
    held_back = sorted(t for t, s in states.items() if s == "upstream_failed")
    if failed or held_back:
        raise CheckFailed(
            f"{len(failed)} task(s) failed: {', '.join(failed) or 'none'}"
            + (f"; held back by them: {', '.join(held_back)}" if held_back else "")
        )
    return OutcomeResult(tasks=len(states) - (own_task_id in states))
