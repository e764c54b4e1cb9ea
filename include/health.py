"""The pipeline's health page, served inside the Airflow UI (plugins/totes_health.py).

It reads the figures every run keeps (include.figures) and the quarantine through the
``warehouse_health`` connection, a role that may only read, and shows: per source table how far
behind totesys the warehouse may be against the 30-minute promise (green, amber, red); the
last runs with their rows per stage and duration; what waits in the quarantine and why; the
reconcile status of each warehouse table; and a plot of the freshness lag and of the rows
loaded over the last day. Every query reads one day of figures at most, found through the
index on interval_end, so the page stays fast however long the figures are kept.

``read_health`` and ``render`` are plain functions (tested on real PostgreSQL without the
UI); ``make_app`` is the FastAPI app the plugin mounts.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg import sql

from include import bookkeeping
from include.config import FRESHNESS_LIMIT, HEALTH_CONN_ID
from include.registry import SOURCE_TABLES

if TYPE_CHECKING:
    import psycopg

__all__ = ["HEALTH_CONN_ID", "LazyApp", "grant_reader", "make_app", "read_health", "render"]
URL_PREFIX = "/totes-health"
log = logging.getLogger(__name__)

RUNS_SHOWN = 12
AMBER_AFTER = timedelta(minutes=20)  # a run every 15 minutes and a few to finish: still green
PLOT_SPAN = timedelta(days=1)
SPAN_READ = timedelta(days=1)  # the last runs and checks: those of the day before the newest figure


# What the page reads, and all its role may read: the figures, and of the quarantine only the
# columns that say what waits and why (never row_data, the source rows themselves).
READ_TABLES = (bookkeeping.STAGE_FIGURES, bookkeeping.CHECK_RESULT, bookkeeping.QUARANTINE)
QUARANTINE_COLUMNS = ("table_name", "stage", "reason", "quarantined_at", "resolved_at")


def grant_reader(conn: psycopg.Connection, schema: str, role: str) -> None:
    """Let ``role`` (a login role made beforehand) read what the page reads and nothing else;
    its sessions start read-only. Run as the owner of the warehouse tables, after they exist
    (ensure_warehouse_schema); safe to run again."""
    r = sql.Identifier(role)
    (database,) = conn.execute("SELECT current_database()").fetchone()
    with conn.transaction():
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), r))
        figures = sql.SQL(", ").join(bookkeeping.table(schema, name) for name in READ_TABLES[:2])
        conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(figures, r))
        quarantine = bookkeeping.table(schema, bookkeeping.QUARANTINE)
        conn.execute(sql.SQL("REVOKE SELECT ON TABLE {} FROM {}").format(quarantine, r))  # a grant of an older version
        columns = sql.SQL(", ").join(map(sql.Identifier, QUARANTINE_COLUMNS))
        conn.execute(sql.SQL("GRANT SELECT ({}) ON TABLE {} TO {}").format(columns, quarantine, r))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r))


@dataclass(frozen=True)
class Freshness:
    table: str
    checked_interval_end: datetime | None  # None: no check of it in the last day of figures
    lag: timedelta | None  # the newest change in totesys minus the newest handled, at that check
    behind_at_most: timedelta | None  # lag plus what changed since the check's interval ended
    status: str  # green, amber or red


@dataclass(frozen=True)
class RunFigures:
    run_id: str
    interval_end: datetime
    rows: dict[str, int]  # stage -> rows written (ingest: read)
    quarantined: int
    seconds: float  # first stage started to last stage recorded
    checks_failed: int


@dataclass(frozen=True)
class Waiting:
    table: str
    stage: str
    reason: str
    rows: int
    oldest: datetime


@dataclass(frozen=True)
class Reconciled:
    table: str
    interval_end: datetime
    passed: bool
    problems: str | None


@dataclass
class Health:
    as_of: datetime
    freshness: list[Freshness] = field(default_factory=list)
    runs: list[RunFigures] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    reconciled: list[Reconciled] = field(default_factory=list)
    lag_series: list[tuple[datetime, float]] = field(default_factory=list)  # interval end, worst lag (s)
    loaded_series: list[tuple[datetime, int]] = field(default_factory=list)  # interval end, rows loaded


def status_of(behind: timedelta | None) -> str:
    if behind is None or behind > FRESHNESS_LIMIT:
        return "red"
    return "amber" if behind > AMBER_AFTER else "green"


def read_health(conn: psycopg.Connection, schema: str, as_of: datetime, *, runs: int = RUNS_SHOWN) -> Health:
    """Everything the page shows, as of ``as_of`` (an aware datetime: the request's time)."""
    t = {name: bookkeeping.table(schema, name) for name in bookkeeping.COLUMNS}
    health = Health(as_of=as_of)
    # Every query reads at most the day before the newest figure (found through the index on
    # interval_end), so the page costs the same with a week or 90 days kept.
    latest = sql.SQL(
        "SELECT DISTINCT ON (table_name) table_name, interval_end, passed, lag_seconds, problems FROM {c} "
        "WHERE check_name = %s AND interval_end > (SELECT max(interval_end) FROM {c}) - %s "
        "ORDER BY table_name, interval_end DESC, recorded_at DESC"
    ).format(c=t[bookkeeping.CHECK_RESULT])
    for table, end, passed, lag_s, _ in conn.execute(latest, ("freshness", SPAN_READ)):
        # no lag: the source table had no change yet (the check passed: only the check's age
        # counts) or none of it reached the warehouse (it failed: red)
        lag = timedelta(seconds=lag_s or 0)
        behind = lag + max(timedelta(0), as_of - end)
        health.freshness.append(Freshness(table, end, lag, behind, status_of(behind if lag_s is not None or passed else None)))
    checked = {f.table for f in health.freshness}
    health.freshness += [Freshness(t.name, None, None, None, "red") for t in SOURCE_TABLES if t.name not in checked]
    for table, end, passed, _, problems in conn.execute(latest, ("reconcile", SPAN_READ)):
        health.reconciled.append(Reconciled(table, end, passed, problems))

    rows = conn.execute(
        sql.SQL(
            "WITH recent AS (SELECT run_id, max(interval_end) AS interval_end FROM {f} "
            "WHERE interval_end > (SELECT max(interval_end) FROM {f}) - %s GROUP BY run_id ORDER BY 2 DESC LIMIT %s) "
            "SELECT r.run_id, r.interval_end, f.stage, sum(CASE WHEN f.stage = 'ingest' THEN f.rows_read ELSE f.rows_written END), "
            "sum(f.rows_quarantined), extract(epoch FROM min(f.recorded_at - f.seconds * interval '1 second')), "
            "extract(epoch FROM max(f.recorded_at)), "
            "(SELECT count(*) FROM {c} c WHERE c.run_id = r.run_id AND NOT c.passed) "
            "FROM recent r JOIN {f} f USING (run_id) GROUP BY 1, 2, 3 ORDER BY 2 DESC, 1"
        ).format(f=t[bookkeeping.STAGE_FIGURES], c=t[bookkeeping.CHECK_RESULT]),
        (SPAN_READ, runs),
    ).fetchall()
    by_run: dict[str, dict[str, Any]] = {}
    for run_id, end, stage, n, quarantined, first, last, failed in rows:
        r = by_run.setdefault(run_id, {"end": end, "rows": {}, "q": 0, "first": first, "last": last, "failed": failed})
        r["rows"][stage] = int(n)
        r["q"] += int(quarantined)
        r["first"], r["last"] = min(r["first"], first), max(r["last"], last)
    health.runs = [
        RunFigures(run_id, r["end"], r["rows"], r["q"], float(r["last"] - r["first"]), r["failed"])
        for run_id, r in by_run.items()
    ]

    health.waiting = [
        Waiting(*row)
        for row in conn.execute(
            sql.SQL(
                "SELECT table_name, stage, split_part(reason, ':', 1), count(*), min(quarantined_at) FROM {} "
                "WHERE resolved_at IS NULL GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1"
            ).format(t[bookkeeping.QUARANTINE])
        )
    ]
    since = as_of - PLOT_SPAN
    health.lag_series = [
        (end, float(lag))
        for end, lag in conn.execute(
            sql.SQL(
                "SELECT interval_end, max(lag_seconds) FROM {} WHERE check_name = 'freshness' AND interval_end > %s "
                "GROUP BY 1 ORDER BY 1"
            ).format(t[bookkeeping.CHECK_RESULT]),
            (since,),
        )
        if lag is not None
    ]
    health.loaded_series = [
        (end, int(n))
        for end, n in conn.execute(
            sql.SQL(
                "SELECT interval_end, sum(rows_written) FROM {} WHERE stage = 'load' AND interval_end > %s GROUP BY 1 ORDER BY 1"
            ).format(t[bookkeeping.STAGE_FIGURES]),
            (since,),
        )
    ]
    return health


# ------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse}td,th{border:1px solid #cbd5e0;padding:.25rem .6rem;text-align:right}
th,td.name{text-align:left}.green{background:#c6f6d5}.amber{background:#fefcbf}.red{background:#fed7d7}
.note{color:#4a5568}svg{background:#f7fafc;border:1px solid #cbd5e0}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.1f}"


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _plot(series: list[tuple[datetime, float]], *, label: str, unit: str, limit: float | None = None) -> str:
    """An inline SVG line of ``series`` (with a dashed line at ``limit``)."""
    width, height, pad = 720, 160, 30
    if not series:
        return f'<p class="note" data-plot="{_e(label)}">No {_e(label)} recorded in the last day.</p>'
    xs = [t.timestamp() for t, _ in series]
    top = max([v for _, v in series] + ([limit] if limit else []) + [1.0])
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def point(t: float, v: float) -> str:
        return f"{pad + (t - x0) / (x1 - x0) * (width - 2 * pad):.1f},{height - pad - v / top * (height - 2 * pad):.1f}"

    line = " ".join(point(x, v) for x, (_, v) in zip(xs, series, strict=True))
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(label)}" data-plot="{_e(label)}" '
        f'data-points="{len(series)}">',
        f'<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{line}"/>',
        f'<text x="{pad}" y="16" font-size="12">{_e(label)} (max {top:,.0f} {_e(unit)})</text>',
    ]
    if limit:
        y = height - pad - limit / top * (height - 2 * pad)
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c53030" stroke-dasharray="4"/>')
    parts.append("</svg>")
    return "".join(parts)


def _page(body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>totes_etl health</title>"
        f"<style>{STYLE}</style></head><body><h1>totes_etl health</h1>{body}</body></html>"
    )


def _section(title: str, table_id: str, headers: list[str], rows: list[str], empty: str, after: str = "") -> str:
    """An <h2> and its table (``rows``: the <tr> elements), or the ``empty`` note when there are none."""
    if not rows:
        return f"<h2>{title}</h2><p class='note' id='{table_id}-empty'>{empty}</p>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<h2>{title}</h2><table id='{table_id}'><tr>{head}</tr>{''.join(rows)}</table>{after}"


def render(health: Health, schema: str) -> str:
    """The page: plain HTML and inline SVG, no script; every figure in a cell marked with what it is."""
    freshness = [
        f"<tr class='{f.status}' data-table='{_e(f.table)}' data-status='{f.status}'><td class='name'>{_e(f.table)}</td>"
        + (
            f"<td data-figure='behind_minutes'>{_minutes(f.behind_at_most)}</td>"
            f"<td data-figure='lag_seconds' data-value='{f.lag.total_seconds():g}'>{_minutes(f.lag)}</td>"
            f"<td>{_when(f.checked_interval_end)}</td></tr>"
            if f.checked_interval_end is not None
            else "<td data-figure='behind_minutes'>unknown</td><td data-figure='lag_seconds'>unknown</td>"
            "<td>no check in the last day of figures</td></tr>"
        )
        for f in health.freshness
    ]
    runs = [
        f"<tr data-run='{_e(r.run_id)}' class='{'red' if r.checks_failed else ''}'><td class='name'>{_e(r.run_id)}</td>"
        f"<td>{_when(r.interval_end)}</td>"
        + "".join(f"<td data-figure='{stage}'>{r.rows.get(stage, 0):,}</td>" for stage in ("ingest", "transform", "load"))
        + f"<td data-figure='quarantined'>{r.quarantined:,}</td>"
        f"<td data-figure='seconds'>{r.seconds:.0f}</td><td data-figure='checks_failed'>{r.checks_failed}</td></tr>"
        for r in health.runs
    ]
    waiting = [
        f"<tr data-table='{_e(w.table)}'><td class='name'>{_e(w.table)}</td><td class='name'>{_e(w.stage)}</td>"
        f"<td class='name'>{_e(w.reason)}</td><td data-figure='rows'>{w.rows:,}</td><td>{_when(w.oldest)}</td></tr>"
        for w in health.waiting
    ]
    reconciled = [
        f"<tr class='{'green' if c.passed else 'red'}' data-table='{_e(c.table)}' data-status='{'passed' if c.passed else 'failed'}'>"
        f"<td class='name'>{_e(c.table)}</td><td class='name'>{'passed' if c.passed else 'failed'}</td>"
        f"<td>{_when(c.interval_end)}</td><td class='name'>{_e(c.problems or '')}</td></tr>"
        for c in health.reconciled
    ]
    return _page(
        f"<p class='note'>Warehouse schema {_e(schema)}, as of {_when(health.as_of)}. The promise: a change in "
        f"totesys is in the warehouse within {_minutes(FRESHNESS_LIMIT)} minutes.</p>"
        + _section(
            "Freshness per source table", "freshness",
            ["source table", "behind at most (min)", "lag at the last check (min)", "last check (interval end)"],
            freshness, "No freshness check has been recorded yet.",
        )
        + _section(
            "Last runs", "runs",
            ["run", "interval end", "rows ingested", "rows transformed", "rows loaded", "quarantined", "seconds", "checks failed"],
            runs, "No run has recorded its figures yet.",
        )
        + _section(
            "Waiting in the quarantine", "quarantine", ["table", "stage", "reason", "rows", "oldest"], waiting,
            "Nothing waits in the quarantine.", "<p class='note'>How to replay them: the runbook, 'Replay quarantined data'.</p>",
        )
        + _section(
            "Reconciliation per warehouse table", "reconcile", ["table", "status", "last check (interval end)", "problems"],
            reconciled, "No reconciliation has been recorded yet.",
        )
        + "<h2>The last day</h2>"
        + _plot(health.lag_series, label="freshness lag", unit="s", limit=FRESHNESS_LIMIT.total_seconds())
        + _plot([(t, float(n)) for t, n in health.loaded_series], label="rows loaded", unit="rows")
    )  # fmt: skip


def unreachable_page(problem: str) -> str:
    return _page(
        f"<p class='red' id='unreachable'>The warehouse is unreachable: {_e(problem)}. The figures are kept there, "
        "so none can be shown; the pipeline's runs and their logs are in the Airflow UI as usual.</p>"
    )


class LazyApp:
    """An ASGI app that builds the real one (``build()``) at its first request. Every Airflow
    process loads the plugins, each task's too: building the app there would import the
    api-server's security stack (seconds per task) for a page only the api-server serves."""

    def __init__(self, build) -> None:
        self._build, self._app = build, None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)


def make_app(connect, schema_of, clock, *, guard: Any = None) -> Any:
    """The FastAPI app of the page. ``connect()`` opens a read-only connection to the warehouse,
    ``schema_of()`` names its schema, ``clock()`` is the request's time, ``guard`` a dependency
    every request must pass. The plugin passes Airflow's: the connection ``warehouse_health``,
    the variable ``totes_warehouse_schema``, and the UI's own login (a user who may read totes_etl)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(
        title="totes_etl health", docs_url=None, redoc_url=None, openapi_url=None, dependencies=[guard] if guard else []
    )

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        import psycopg

        schema = "?"
        try:
            schema = schema_of()
            with connect() as conn:
                health = read_health(conn, schema, clock())
        except psycopg.errors.UndefinedTable:
            return HTMLResponse(unreachable_page(f"the schema {schema} has no figures tables yet (no run has started)"), 503)
        except Exception as error:  # a refused or missing connection, a revoked grant: said, not a bare 500
            # the first line of the driver's (or Airflow's) message: host, port, refusal; never a password
            log.warning("The health page cannot read the warehouse: %s", error)
            first = str(error).splitlines()[0] if str(error) else ""
            return HTMLResponse(unreachable_page(f"{type(error).__name__}: {first}" if first else type(error).__name__), 503)
        return HTMLResponse(render(health, schema))

    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m include.health grant <warehouse URL as the tables' owner> <schema> <role>``."""
    import argparse

    import psycopg

    parser = argparse.ArgumentParser(description="Let the health page's role read what the page reads, nothing else.")
    parser.add_argument("command", choices=["grant"])
    parser.add_argument("url", help="the warehouse, as the owner of its tables (after the first run made them)")
    parser.add_argument("schema")
    parser.add_argument("role", help="a login role made beforehand: CREATE ROLE totes_health LOGIN PASSWORD '...'")
    args = parser.parse_args(argv)
    with psycopg.connect(args.url, autocommit=True) as conn:
        grant_reader(conn, args.schema, args.role)
    print(
        f"{args.role} may read {', '.join(READ_TABLES[:2])} and {READ_TABLES[2]} ({', '.join(QUARANTINE_COLUMNS)}) in {args.schema}, read-only"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
