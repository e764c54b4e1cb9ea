"""``make bench`` (after bench.run): the health page's load time with the figures of a week and of
the 90 days the retention keeps, on a PostgreSQL cluster of its own.

    python -m bench.health [--repeat 20]

For each history: the page as the api-server serves it (the FastAPI app through an in-process
HTTP client: connect, read, render), p50 and max of ``--repeat`` requests after one warm-up,
and its parts (the queries, the rendering). The budget is one second (issue: "under a second
on the local stack with a week of 15-minute runs recorded"); the baseline measured in the same
run is one ``SELECT 1`` over a new connection, what any page reading the warehouse pays.
Writes bench/results/health.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LAST_END = datetime(2024, 11, 15, 16, 0, tzinfo=UTC)
AS_OF = LAST_END + timedelta(minutes=5)
HISTORIES = {"a week": 7 * 96, "90 days (the retention)": 90 * 96}


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up: the first connection, plans
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "health.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import psycopg
    from fastapi.testclient import TestClient

    from devtools.pg import LocalCluster, create_database, free_port
    from include.ddl import ensure_warehouse_schema
    from include.health import make_app, read_health, render
    from tests.figures_rows import record_history

    workdir = Path(tempfile.mkdtemp(prefix="totes-bench-health-"))
    cluster = LocalCluster(workdir / "pg", free_port())
    cluster.start()
    rows = []
    try:
        for label, runs in HISTORIES.items():
            url = create_database(cluster.url, f"health_{runs}")
            with psycopg.connect(url, autocommit=True) as conn:
                ensure_warehouse_schema(conn, "public")
                record_history(conn, "public", LAST_END, runs)
                conn.execute("ANALYZE")
                (figures,) = conn.execute("SELECT count(*) FROM etl_stage_figures").fetchone()
            client = TestClient(make_app(lambda u=url: psycopg.connect(u, autocommit=True), lambda: "public", lambda: AS_OF))

            def page(c=client) -> None:
                answer = c.get("/")
                if answer.status_code != 200 or "data-plot" not in answer.text:
                    raise RuntimeError(f"the page failed: {answer.status_code} {answer.text[:300]}")

            def baseline(u=url) -> None:
                with psycopg.connect(u) as conn:
                    conn.execute("SELECT 1").fetchone()

            with psycopg.connect(url, autocommit=True) as conn:
                health = read_health(conn, "public", AS_OF)
                queries = timed(lambda c=conn: read_health(c, "public", AS_OF), args.repeat)
            rendering = timed(lambda h=health: render(h, "public"), args.repeat)
            requests, connects = timed(page, args.repeat), timed(baseline, args.repeat)
            rows.append((label, runs, figures, requests, queries, rendering, connects))
            print(f"[bench] health page, {label}: p50 {statistics.median(requests) * 1000:.0f} ms", flush=True)
    finally:
        cluster.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    lines = [
        "# The health page's load time",
        "",
        f"`python -m bench.health` on {os.cpu_count()} cores, Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d}: "
        f"p50 of {args.repeat} requests after a warm-up, each a new warehouse connection, the queries and the HTML.",
        "",
        "| history | runs | etl_stage_figures rows | page p50 | page max | of the 1 s budget | queries p50 | rendering p50 | "
        "baseline: connect + SELECT 1 | page / baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs, figures, requests, queries, rendering, connects in rows:
        p50 = statistics.median(requests)
        lines.append(
            f"| {label} | {runs:,} | {figures:,} | {ms(requests)} | {max(requests) * 1000:.0f} ms | {p50:.2f}x | {ms(queries)} | "
            f"{ms(rendering)} | {ms(connects)} | {p50 / statistics.median(connects):.1f}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
