"""A history of run figures for the health page's tests and benchmark: ``runs`` 15-minute runs
ending at ``last_end``, each with a row per stage and table and per check and table, as the
pipeline records them (include.figures), written in one statement per table."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES

WEEK_OF_RUNS = 7 * 96


def record_history(conn, schema: str, last_end: datetime, runs: int = WEEK_OF_RUNS) -> None:
    """Run n (0 = the newest) ends at last_end - 15 min * n; its load of a table writes
    10 * n + 1 rows, each stage took 1 s, and its freshness lag is 60 * (n % 7) seconds."""
    sources = [t.name for t in SOURCE_TABLES]
    warehouse = [t.name for t in WAREHOUSE_TABLES]
    runs_sql = "SELECT n, %(end)s::timestamptz - n * interval '15 minutes' AS e FROM generate_series(0, %(runs)s - 1) n"
    stages = sql.SQL(
        "INSERT INTO {t} (run_id, stage, table_name, interval_start, interval_end, rows_read, rows_written, seconds, recorded_at) "
        "SELECT 'scheduled__' || to_char(r.e - interval '15 minutes', 'YYYY-MM-DD\"T\"HH24:MI'), s.stage, s.t, "
        "r.e - interval '15 minutes', r.e, 10 * r.n + 1, 10 * r.n + 1, 1.0, r.e + interval '1 minute' "
        "FROM (" + runs_sql + ") r, (SELECT 'ingest' AS stage, unnest(%(sources)s::text[]) AS t "
        "UNION ALL SELECT stage, t FROM unnest(ARRAY['transform', 'load']) stage, unnest(%(warehouse)s::text[]) t) s"
    ).format(t=sql.Identifier(schema, "etl_stage_figures"))
    checks = sql.SQL(
        "INSERT INTO {t} (run_id, check_name, table_name, interval_end, passed, lag_seconds, ids_expected, ids_present, recorded_at) "
        "SELECT 'scheduled__' || to_char(r.e - interval '15 minutes', 'YYYY-MM-DD\"T\"HH24:MI'), c.check_name, c.t, r.e, true, "
        "CASE WHEN c.check_name = 'freshness' THEN 60 * (r.n %% 7) END, "
        "CASE WHEN c.check_name = 'reconcile' THEN 5 END, CASE WHEN c.check_name = 'reconcile' THEN 5 END, "
        "r.e + interval '1 minute' "
        "FROM (" + runs_sql + ") r, (SELECT 'freshness' AS check_name, unnest(%(sources)s::text[]) AS t "
        "UNION ALL SELECT 'reconcile', unnest(%(warehouse)s::text[])) c"
    ).format(t=sql.Identifier(schema, "etl_check_result"))
    params = {"end": last_end, "runs": runs, "sources": sources, "warehouse": [w for w in warehouse if w != "dim_date"]}
    with conn.transaction():
        conn.execute(stages, params | {"warehouse": warehouse})
        conn.execute(checks, params)
