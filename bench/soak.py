"""``make soak``: totes_etl interval after interval on the local stack, checked after every run.

    python -m bench.soak [--intervals 100] [--backfill 10] [--kills 2] [--rate 100] [--seed 1]

The local stack (devtools.stack: PostgreSQL, moto's S3, the SMTP sink, Airflow's four components
with LocalExecutor) in its own directory and on its own ports (.soak/, 56432, 56000, 56025, 8090,
8091), so it never touches a stack a person is using. Then, for each 15-minute interval from
2024-11-15 15:00 UTC (where the generated totesys ends):

1. the simulator changes totesys as the application does, at ``--rate`` times the live rate
   (the stack's simulator applies one ChangePlan every 5 minutes: three per interval), at
   instants inside the interval;
2. ``airflow dags trigger`` runs the interval; the scheduler runs it. In ``--kills`` runs chosen
   at random, every task process running at a random instant gets SIGKILL (the tasks' retries
   must bring the run to success);
3. an independent check (tests/expected.py: the spec restated in SQL over the source, sharing
   no code with include/) compares the whole warehouse with totesys: rows lost and rows
   duplicated, both must be 0;
4. the memory (RSS) of each long-lived Airflow component, its process and its children.

Half-way, ``airflow backfill create`` reruns the ``--backfill`` intervals before it (reprocess
completed runs): the warehouse must not change. The report goes to bench/results/soak.md (and
soak.json): runs, rows changed, lost and duplicated, run durations p50/p95/max, memory over time.

Unpausing totes_etl also lets the scheduler start its own run of the latest real interval (and
every 15 minutes after): they read nothing the soak's runs have not, and they are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SOAK_DIR = ROOT / ".soak"
FIRST_END = datetime(2024, 11, 15, 15, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=15)
LIVE_PLANS_PER_INTERVAL = 3  # the stack's simulator: one ChangePlan every 5 minutes
# Its own directory and ports: devtools.stack reads them when imported.
SOAK_ENV = {
    "TOTES_STACK_DIR": str(SOAK_DIR),
    "TOTES_PG_PORT": "56432",
    "TOTES_S3_PORT": "56000",
    "TOTES_SMTP_PORT": "56025",
    "TOTES_AIRFLOW_PORT": "8090",
    "TOTES_PAYMENTS_API_PORT": "8091",
    "TOTES_STATSD_PORT": "56125",
    "TOTES_SIMULATE_EVERY": "0",  # the soak changes totesys itself, inside each interval
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def task_processes(scheduler_pid: int) -> list:
    """The processes running tasks: LocalExecutor's workers are the scheduler's children, and
    each task runs in a process their supervisor forks (the children of the children)."""
    import psutil

    found = []
    for worker in psutil.Process(scheduler_pid).children():
        found += worker.children(recursive=True)
    return found


def component_memory(stack) -> dict[str, float]:
    """RSS (MB) of each Airflow component: its process and its children (the scheduler's
    LocalExecutor workers, not the tasks they run; the api-server's workers), sampled between runs."""
    import psutil

    out = {}
    for name in stack.AIRFLOW_COMPONENTS:
        pid = stack.running_pid(f"airflow-{name}")
        if pid is None:
            out[name] = 0.0
            continue
        proc = psutil.Process(pid)
        # The scheduler's tree without the task processes its LocalExecutor workers fork: a
        # sample taken while a run (the scheduler's own, every 15 minutes) is under way would
        # otherwise count each running task's ~200 MB as the scheduler's.
        tree = [proc, *proc.children()] if name == "scheduler" else [proc, *proc.children(recursive=True)]
        out[name] = round(sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20, 1)
    return out


class Soak:
    def __init__(self, stack, urls: dict[str, str], seed: int) -> None:
        import psycopg

        self.stack, self.urls = stack, urls
        self.env = stack.airflow_env(urls)
        self.schema = self.env["AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA"]
        self.rng = random.Random(seed)
        self.meta = psycopg.connect(urls["airflow"], autocommit=True)
        self.token: str | None = None

    def api(self, path: str, body: dict) -> dict:
        """POST to the stack's api-server as its admin (a token from the simple auth manager)."""
        base = self.env["AIRFLOW__API__BASE_URL"]
        if self.token is None:
            login = {"username": "admin", "password": self.stack.stack_secrets()["admin_password"]}
            self.token = self._post(f"{base}/auth/token", login, {})["access_token"]
        return self._post(base + path, body, {"Authorization": f"Bearer {self.token}"})

    @staticmethod
    def _post(url: str, body: dict, headers: dict) -> dict:
        # Only the stack's own http://127.0.0.1 api-server.
        request = urllib.request.Request(  # noqa: S310
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310  # nosec B310
            return json.load(answer)

    def trigger(self, end: datetime) -> str:
        """A run of exactly the interval ending at ``end`` (the CLI's trigger would take the
        latest real interval for its data interval, whatever the logical date)."""
        run_id = f"soak__{end:%Y-%m-%dT%H:%M}"
        self.api(
            "/api/v2/dags/totes_etl/dagRuns",
            {"dag_run_id": run_id, "logical_date": end.isoformat(), "data_interval_start": (end - PERIOD).isoformat(),
             "data_interval_end": end.isoformat()},
        )  # fmt: skip
        return run_id

    def run_state(self, run_id: str) -> tuple[str, float | None]:
        state, seconds = self.meta.execute(
            "SELECT state, extract(epoch FROM end_date - start_date) FROM dag_run WHERE dag_id = 'totes_etl' AND run_id = %s",
            (run_id,),
        ).fetchone()
        return state, float(seconds) if seconds is not None else None

    def wait(self, run_id: str, timeout: float = 1800) -> tuple[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            state, seconds = self.run_state(run_id)
            if state in ("success", "failed"):
                return state, seconds or 0.0
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run_id} did not finish in {timeout:.0f} s")
            time.sleep(2)

    def kill_at_random(self, run_id: str) -> int:
        """SIGKILL every task process of the run at a random instant; the number killed."""
        time.sleep(self.rng.uniform(3, 40))
        scheduler = self.stack.running_pid("airflow-scheduler")
        while self.run_state(run_id)[0] not in ("success", "failed"):
            victims = task_processes(scheduler)
            for p in victims:
                os.kill(p.pid, signal.SIGKILL)
            if victims:
                return len(victims)
            time.sleep(0.5)
        return 0

    def compare(self, facts_before) -> tuple[int, int, dict]:
        """The independent check: rows the warehouse lacks and rows it holds too often."""
        import psycopg

        from tests.expected import expected_warehouse, warehouse_snapshot

        with psycopg.connect(self.urls["totesys"]) as src, psycopg.connect(self.urls["warehouse"]) as wh:
            expected = expected_warehouse(src, wh, self.schema, facts_before)
            actual = warehouse_snapshot(wh, self.schema)
        lost = sum(sum((want - actual[t]).values()) for t, want in expected.items())
        duplicated = sum(sum((actual[t] - want).values()) for t, want in expected.items())
        return lost, duplicated, actual

    def backfill(self, first_end: datetime, last_end: datetime) -> list[tuple[str, str, float]]:
        """Rerun the completed runs of the intervals ending first_end..last_end as a backfill."""
        (before,) = self.meta.execute("SELECT coalesce(max(id), 0) FROM backfill").fetchone()
        self.stack.airflow(
            self.env, "backfill", "create", "--dag-id", "totes_etl",
            "--from-date", first_end.isoformat(), "--to-date", last_end.isoformat(),
            "--reprocess-behavior", "completed", "--max-active-runs", "1",
        )  # fmt: skip
        (backfill_id,) = self.meta.execute("SELECT max(id) FROM backfill").fetchone()
        if backfill_id == before:
            raise RuntimeError("airflow backfill create made no backfill")
        deadline = time.monotonic() + 3600
        while True:
            done, runs = self.meta.execute(
                "SELECT b.completed_at IS NOT NULL, array_agg(ARRAY[r.run_id, r.state::text, "
                "coalesce(extract(epoch FROM r.end_date - r.start_date), 0)::text]) "
                "FROM backfill b JOIN backfill_dag_run bdr ON bdr.backfill_id = b.id JOIN dag_run r ON r.id = bdr.dag_run_id "
                "WHERE b.id = %s GROUP BY b.completed_at",
                (backfill_id,),
            ).fetchone() or (False, [])
            if done and all(state in ("success", "failed") for _, state, _ in runs):
                return [(run_id, state, float(s)) for run_id, state, s in runs]
            if time.monotonic() > deadline:
                raise TimeoutError("the backfill did not finish within an hour")
            time.sleep(5)


def report(summary: dict, runs: list[dict], memory: list[dict]) -> str:
    d = summary["durations"]
    lines = [
        "# totes_etl soak",
        "",
        f"`make soak` on {summary['machine']}, {summary['date']}: "
        + ("" if summary.get("complete", True) else f"**stopped after {summary['runs']} of** ")
        + f"{summary['intervals']} intervals on the local stack "
        f"(LocalExecutor), totesys changed at {summary['rate']}x the live rate, {summary['kills']} runs killed at a "
        f"random instant, one backfill over {summary['backfill_intervals']} intervals.",
        "",
        "| runs | succeeded | rows changed | rows lost | rows duplicated | run p50 | run p95 | run max | task processes killed | backfill runs (succeeded) | warehouse changed by the backfill | scheduler's own runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {summary['runs']} | {summary['succeeded']} | {summary['rows_changed']:,} | {summary['lost']} | {summary['duplicated']} | "
        f"{d['p50']:.0f} s | {d['p95']:.0f} s | {d['max']:.0f} s | {summary['killed']} | "
        f"{summary['backfill_runs']} ({summary['backfill_succeeded']}) | {summary['backfill_changed']} rows | {summary['scheduled_runs']} |",
        "",
        "Lost and duplicated: after every run, the whole warehouse against the spec restated in SQL over totesys "
        "(tests/expected.py), summed over the runs. A run's duration is the scheduler's (dag_run start to end), "
        "retries of killed tasks included.",
        "",
        "## Memory of the long-lived components (RSS, process and children, MB)",
        "",
        "| after run | " + " | ".join(memory[0]["rss"]) + " |",
        "|---|" + "---|" * len(memory[0]["rss"]),
    ]
    lines += [f"| {m['run']} | " + " | ".join(f"{v:.0f}" for v in m["rss"].values()) + " |" for m in memory]
    lines += [
        "",
        "## Runs",
        "",
        "| interval end | state | seconds | rows changed | killed | lost | duplicated |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['end']} | {r['state']} | {r['seconds']:.0f} | {r['changed']} | {r['killed']} | {r['lost']} | {r['duplicated']} |"
        for r in runs
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", type=int, default=100)
    parser.add_argument("--backfill", type=int, default=10, help="intervals rerun by the backfill")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--rate", type=int, default=100, help="times the live application's rate of change")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.md")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args(argv)
    if args.intervals < max(2, args.backfill + 1):
        parser.error("--intervals must exceed --backfill")
    for k, v in SOAK_ENV.items():
        os.environ.setdefault(k, v)
    sys.path.insert(0, str(ROOT))
    import psycopg

    from devtools import stack
    from devtools.totesys.simulator import ChangePlan, simulate

    if Path(os.environ["TOTES_STACK_DIR"]) == SOAK_DIR and SOAK_DIR.exists():
        stack.down()
        shutil.rmtree(SOAK_DIR)  # every soak starts from the generated totesys and an empty warehouse
    urls = stack.up()
    soak = Soak(stack, urls, args.seed)
    stack.wait_for_dag(urls)
    stack.airflow(soak.env, "dags", "unpause", "totes_etl")
    rng = random.Random(args.seed)
    kill_runs = set(rng.sample(range(1, args.intervals), min(args.kills, args.intervals - 1)))
    backfill_after = args.intervals // 2
    plan = ChangePlan.of_size(33 * LIVE_PLANS_PER_INTERVAL * args.rate)  # a live ChangePlan touches ~33 rows
    runs, memory, facts_before, backfill = [], [], None, {}
    memory.append({"run": 0, "rss": component_memory(stack)})
    # A soak stopped early (SIGTERM, Ctrl-C) still reports what it saw: the report is rewritten
    # after every run, and once more when the stack comes down.
    signal.signal(signal.SIGTERM, _stop)

    def scheduled_runs() -> int:
        (n,) = soak.meta.execute("SELECT count(*) FROM dag_run WHERE dag_id = 'totes_etl' AND run_type = 'scheduled'").fetchone()
        return n

    def write(done: bool) -> dict:
        summary = summarise(args, runs, backfill, kill_runs, scheduled_runs(), complete=done)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(summary, runs, memory))
        args.out.with_suffix(".json").write_text(
            json.dumps({"summary": summary, "runs": runs, "memory": memory, "backfill": backfill}, indent=1)
        )
        return summary

    summary = None
    try:
        for i in range(args.intervals):
            end = FIRST_END + i * PERIOD
            changed = 0
            if i:
                with psycopg.connect(urls["totesys"]) as conn:
                    at = (end - PERIOD + timedelta(minutes=2)).replace(tzinfo=None)
                    changed = simulate(conn, at=at, seed=args.seed * 1000 + i, plan=plan).rows
            run_id = soak.trigger(end)
            killed = soak.kill_at_random(run_id) if i in kill_runs else 0
            state, seconds = soak.wait(run_id)
            lost, duplicated, facts_before = soak.compare(facts_before)
            runs.append(
                {"end": f"{end:%Y-%m-%d %H:%M}", "state": state, "seconds": seconds, "changed": changed, "killed": killed,
                 "lost": lost, "duplicated": duplicated}
            )  # fmt: skip
            print(f"[soak] {i + 1}/{args.intervals} {run_id}: {state} in {seconds:.0f} s, {changed} changed, "
                  f"killed {killed}, lost {lost}, duplicated {duplicated}", flush=True)  # fmt: skip
            if (i + 1) % 10 == 0 or i + 1 == args.intervals:
                memory.append({"run": i + 1, "rss": component_memory(stack)})
            if i + 1 == backfill_after:
                # the last --backfill intervals' runs, by logical date (both ends inclusive)
                backfilled = soak.backfill(end - (args.backfill - 1) * PERIOD, end)
                lost_b, dup_b, after = soak.compare(facts_before)
                changed_b = sum(
                    sum((after[t] - facts_before[t]).values()) + sum((facts_before[t] - after[t]).values()) for t in after
                )
                backfill = {"runs": backfilled, "lost": lost_b, "duplicated": dup_b, "changed": changed_b}
                print(
                    f"[soak] backfill of {len(backfilled)} runs: {[s for _, s, _ in backfilled]}, warehouse changed by {changed_b} rows",
                    flush=True,
                )
                facts_before = after
            write(done=False)
        summary = write(done=True)
    except KeyboardInterrupt:
        print(f"[soak] stopped after {len(runs)} of {args.intervals} intervals", flush=True)
        if runs:
            memory.append({"run": len(runs), "rss": component_memory(stack)})
            summary = write(done=False)
    finally:
        if not args.keep:
            stack.down()
    if summary is None:
        return 1
    print(args.out.read_text())
    ok = summary["lost"] == 0 and summary["duplicated"] == 0 and summary["succeeded"] == summary["runs"]
    return 0 if ok and summary["backfill_changed"] == 0 and summary["complete"] else 1


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def summarise(
    args: argparse.Namespace, runs: list[dict], backfill: dict, kill_runs: set[int], scheduled: int, *, complete: bool
) -> dict:
    durations = [r["seconds"] for r in runs] or [0.0]
    return {
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "intervals": args.intervals,
        "complete": complete,
        "rate": args.rate,
        "kills": len(kill_runs),
        "backfill_intervals": args.backfill,
        "runs": len(runs),
        "succeeded": sum(r["state"] == "success" for r in runs),
        "rows_changed": sum(r["changed"] for r in runs),
        "lost": sum(r["lost"] for r in runs) + backfill.get("lost", 0),
        "duplicated": sum(r["duplicated"] for r in runs) + backfill.get("duplicated", 0),
        "killed": sum(r["killed"] for r in runs),
        "durations": {"p50": statistics.median(durations), "p95": percentile(durations, 0.95), "max": max(durations)},
        "backfill_runs": len(backfill.get("runs", [])),
        "backfill_succeeded": sum(s == "success" for _, s, _ in backfill.get("runs", [])),
        "backfill_changed": backfill.get("changed", 0),
        "scheduled_runs": scheduled,
    }


if __name__ == "__main__":
    raise SystemExit(main())
