"""``make latency``: how long a change in totesys takes to be queryable in the warehouse, on the local stack.

    python -m bench.latency [--minutes 20] [--every 50] [--seed 1]

The local stack (devtools.stack) in its own directory and on its own ports (.latency/, Airflow
on 8092), with the scheduler running totes_etl on its real 15-minute schedule and the change
simulator at the live application's rate. Once the first run has loaded the warehouse, every
``--every`` seconds (jittered) for ``--minutes`` minutes one row of a fact's source table
(sales_order, payment, purchase_order, in turn) is changed as the application does (a value and
``last_updated``), and its commit time is noted. The warehouse is polled every 2 s for that
version of the row (the fact's natural id, last_updated_date and last_updated_time): the
latency of a change is the time from its commit to the first poll that finds it.

Reports p50, p95 and max over the changes next to the 30-minute promise, the runs' durations,
and what a shorter schedule would need (bench/results/latency.md and latency.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.soak import percentile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LATENCY_DIR = ROOT / ".latency"
LATENCY_ENV = {
    "TOTES_STACK_DIR": str(LATENCY_DIR),
    "TOTES_PG_PORT": "57432",
    "TOTES_S3_PORT": "57000",
    "TOTES_SMTP_PORT": "57025",
    "TOTES_AIRFLOW_PORT": "8092",
    "TOTES_PAYMENTS_API_PORT": "8093",
    "TOTES_STATSD_PORT": "57125",
    "TOTES_SIMULATE_EVERY": "300",  # the live application's rate, beside the changes measured here
}
# source table -> (fact table, the value changed)
TRACKED = {
    "sales_order": ("fact_sales_order", "units_sold"),
    "payment": ("fact_payment", "payment_amount"),
    "purchase_order": ("fact_purchase_orders", "item_quantity"),
}


def change_one(conn, table: str, rng: random.Random) -> tuple[int, datetime, float]:
    """Change one row as the application does; (id, its new last_updated, commit time)."""
    from psycopg import sql

    column = TRACKED[table][1]
    key = f"{table}_id"
    (top,) = conn.execute(sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(key), sql.Identifier(table))).fetchone()
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                "UPDATE {t} SET {c} = {c} + 1, last_updated = (now() AT TIME ZONE 'UTC') "
                "WHERE {k} = (SELECT min({k}) FROM {t} WHERE {k} >= %s) RETURNING {k}, last_updated"
            ).format(t=sql.Identifier(table), c=sql.Identifier(column), k=sql.Identifier(key)),
            (rng.randint(1, top),),
        ).fetchone()
    return row[0], row[1], time.time()


def arrived(wh, schema: str, table: str, pending: list[tuple[int, datetime]]) -> set[tuple[int, datetime]]:
    """Which (id, last_updated) versions the fact of ``table`` holds."""
    from psycopg import sql

    if not pending:
        return set()
    fact = TRACKED[table][0]
    key = f"{table}_id"
    rows = wh.execute(
        sql.SQL(
            "SELECT p.id, p.lu FROM unnest(%s::int[], %s::timestamp[]) AS p(id, lu) WHERE EXISTS ("
            "SELECT 1 FROM {f} f WHERE f.{k} = p.id AND f.last_updated_date = p.lu::date "
            "AND f.last_updated_time = p.lu::time)"
        ).format(f=sql.Identifier(schema, fact), k=sql.Identifier(key)),
        ([i for i, _ in pending], [lu for _, lu in pending]),
    ).fetchall()
    return {(i, lu) for i, lu in rows}


def run_durations(meta, since: datetime) -> list[tuple[str, float, str]]:
    rows = meta.execute(
        "SELECT run_id, extract(epoch FROM end_date - start_date), state FROM dag_run "
        "WHERE dag_id = 'totes_etl' AND start_date >= %s AND end_date IS NOT NULL ORDER BY start_date",
        (since,),
    ).fetchall()
    return [(r, float(s), st) for r, s, st in rows]


def report(summary: dict) -> str:
    lat = summary["latency"]
    runs = summary["runs"]
    lines = [
        "# totes_etl: latency of a change",
        "",
        f"`make latency` on {summary['machine']}, {summary['date']}: the local stack, totes_etl on its 15-minute "
        f"schedule (LocalExecutor), the simulator at the live rate, scale 1. {summary['changes']} changes to "
        f"{', '.join(TRACKED)} over {summary['minutes']} minutes, each from its commit in totesys to the first poll "
        "(every 2 s) that finds that version in the warehouse's fact.",
        "",
        "| changes | found | p50 | p95 | max | promise | runs | run p50 | run max |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {summary['changes']} | {summary['found']} | {lat['p50'] / 60:.1f} min | {lat['p95'] / 60:.1f} min | "
        f"{lat['max'] / 60:.1f} min | 30 min | {len(runs)} | {summary['run_p50']:.0f} s | {summary['run_max']:.0f} s |",
        "",
        "A change waits for the end of its 15-minute interval (uniform: 7.5 minutes on average), then for the "
        "run of that interval to load it. The bound is the period plus the longest run.",
        "",
        "| run | seconds | state |",
        "|---|---|---|",
    ]
    lines += [f"| {r} | {s:.0f} | {st} |" for r, s, st in runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--every", type=float, default=50, help="seconds between changes (jittered)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "latency.md")
    args = parser.parse_args(argv)
    for k, v in LATENCY_ENV.items():
        os.environ.setdefault(k, v)
    sys.path.insert(0, str(ROOT))
    import psycopg

    from devtools import stack

    if Path(os.environ["TOTES_STACK_DIR"]) == LATENCY_DIR and LATENCY_DIR.exists():
        stack.down()
        shutil.rmtree(LATENCY_DIR)
    rng = random.Random(args.seed)
    urls = stack.up()
    env = stack.airflow_env(urls)
    schema = env["AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA"]
    try:
        stack.wait_for_dag(urls)
        started = datetime.now(UTC)
        stack.airflow(env, "dags", "unpause", "totes_etl")  # the scheduler runs the latest interval, then every 15 minutes
        stack.wait_for_runs(urls, 0, timeout=1200)
        print("[latency] the first run loaded the warehouse; changing totesys", flush=True)
        changes: dict[str, list[tuple[int, datetime, float]]] = {t: [] for t in TRACKED}
        found: dict[tuple[str, int, datetime], float] = {}
        order = list(TRACKED)
        stop_changing = time.monotonic() + args.minutes * 60
        next_change = time.monotonic()
        n = 0
        with psycopg.connect(urls["totesys"], autocommit=True) as src, psycopg.connect(urls["warehouse"], autocommit=True) as wh:
            deadline = stop_changing + 20 * 60  # the last change's interval ends and its run loads it
            while time.monotonic() < deadline:
                now = time.monotonic()
                if now < stop_changing and now >= next_change:
                    table = order[n % len(order)]
                    changes[table].append(change_one(src, table, rng))
                    n += 1
                    next_change = now + rng.uniform(0.5, 1.5) * args.every
                for table, made in changes.items():
                    pending = [(i, lu) for i, lu, _ in made if (table, i, lu) not in found]
                    for i, lu in arrived(wh, schema, table, pending):
                        commit = next(c for j, v, c in made if (j, v) == (i, lu))
                        found[(table, i, lu)] = time.time() - commit
                total = sum(len(m) for m in changes.values())
                if now >= stop_changing and len(found) == total:
                    break
                time.sleep(2)
        stack.wait_for_runs(urls, 0, timeout=900)  # the run that loaded the last change may still be checking
        with psycopg.connect(urls["airflow"], autocommit=True) as meta:
            runs = run_durations(meta, started)
    finally:
        stack.down()
    total = sum(len(m) for m in changes.values())
    latencies = list(found.values())
    durations = [s for _, s, _ in runs] or [0.0]
    summary = {
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "minutes": args.minutes,
        "changes": total,
        "found": len(found),
        "latency": {
            "p50": statistics.median(latencies) if latencies else 0.0,
            "p95": percentile(latencies, 0.95) if latencies else 0.0,
            "max": max(latencies) if latencies else 0.0,
        },
        "latencies": sorted(round(x, 1) for x in latencies),
        "runs": runs,
        "run_p50": statistics.median(durations),
        "run_max": max(durations),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(summary))
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    print(args.out.read_text())
    return 0 if total and len(found) == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
