"""Reports kept in the warehouse: materialized views refreshed when what they read changes
(totes_reports, scheduled on the Assets of those tables: include.assets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from include.ddl import refresh_view_sql
from include.registry import MATERIALIZED_VIEWS
from include.results import ReportResult

if TYPE_CHECKING:
    import psycopg

REPORTS = {v.name: v for v in MATERIALIZED_VIEWS}


def refresh_report(conn: psycopg.Connection, schema: str, name: str) -> ReportResult:
    """Recompute one materialized view in one transaction (readers see the old rows until it
    commits) and count its rows; a rerun recomputes the same rows."""
    view = REPORTS[name]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(refresh_view_sql(schema, view))
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, view.name)))
        (rows,) = cur.fetchone()
    return ReportResult(view.name, rows)
