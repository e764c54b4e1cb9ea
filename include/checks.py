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

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from psycopg import sql

from include.registry import SOURCE, WAREHOUSE_TABLES, WarehouseTable

if TYPE_CHECKING:
    import psycopg


@dataclass
class CheckReport:
    figures: dict[str, dict[str, object]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _one(conn: psycopg.Connection, query: sql.Composable, params=None):
    return conn.execute(query, params).fetchone()[0]


def _source_table(table: WarehouseTable) -> str:
    return table.join.left if table.join else table.sources[0]


def _quarantined_ids(wh: psycopg.Connection, schema: str, table: str) -> set[int]:
    rows = wh.execute(
        sql.SQL(
            "SELECT DISTINCT source_id FROM {} WHERE table_name = %s AND resolved_at IS NULL AND source_id IS NOT NULL"
        ).format(sql.Identifier(schema, "etl_quarantine")),
        (table,),
    )
    return {r[0] for r in rows}


def reconcile(
    src: psycopg.Connection, wh: psycopg.Connection, schema: str, cutoff: datetime, recent_from: datetime
) -> CheckReport:
    """Compare the warehouse with the source; ``recent_from``..``cutoff`` is the span whose
    changes are checked version by version."""
    report = CheckReport()
    for table in WAREHOUSE_TABLES:
        if table.name == "dim_date":
            continue
        source = SOURCE[_source_table(table)]
        key = sql.Identifier(source.primary_key)
        wh_key = sql.Identifier(table.natural_id if table.kind == "fact" else table.primary_key)
        target = sql.Identifier(schema, table.name)
        waiting = _quarantined_ids(wh, schema, table.name)
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
            if table.kind == "fact":
                present = sql.SQL(
                    "SELECT count(*) FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE EXISTS ("
                    "SELECT 1 FROM {t} t WHERE t.{k} = v.id AND t.last_updated_date = v.lu::date AND t.last_updated_time = v.lu::time)"
                ).format(t=target, k=wh_key)
            else:
                present = sql.SQL(
                    "SELECT count(*) FROM unnest(%s::int[], %s::timestamp[]) AS v(id, lu) WHERE EXISTS ("
                    "SELECT 1 FROM {v} x WHERE x.dimension = {d} AND x.id = v.id AND x.version[1] >= v.lu)"
                ).format(v=sql.Identifier(schema, "etl_dimension_version"), d=sql.Literal(table.name))
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
        if table.kind != "fact":
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
    join = table.join
    left, right = SOURCE[join.left], SOURCE[join.right]
    pairs = src.execute(
        sql.SQL("SELECT l.{lk}, r.last_updated FROM {l} l JOIN {r} r ON l.{fk} = r.{rk} WHERE r.last_updated >= %s AND r.last_updated < %s").format(
            lk=sql.Identifier(left.primary_key), l=sql.Identifier(left.name), r=sql.Identifier(right.name),
            fk=sql.Identifier(join.left_column), rk=sql.Identifier(right.primary_key),
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
        ).format(v=sql.Identifier(schema, "etl_dimension_version"), d=sql.Literal(table.name)),
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
            ).format(sql.Identifier(schema, "etl_load_log"))
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


def quarantined_in_run(wh: psycopg.Connection, schema: str, run_id: str) -> list[tuple[str, str, int, str, str]]:
    """(table, stage, rows, reason, object key) of what this run quarantined and is still waiting."""
    rows = wh.execute(
        sql.SQL(
            "SELECT table_name, stage, count(*), min(split_part(reason, ':', 1)), min(object_key) FROM {} "
            "WHERE run_id = %s AND resolved_at IS NULL GROUP BY table_name, stage, split_part(reason, ':', 1) ORDER BY 1, 2"
        ).format(sql.Identifier(schema, "etl_quarantine")),
        (run_id,),
    ).fetchall()
    return [tuple(r) for r in rows]
