"""Run one totes_etl task in this process, as a worker would, and print its result as JSON.

The benchmark starts one of these per task (like LocalExecutor does) so that each task's
process reports its own peak memory (VmHWM). The task is the real DAG's own (``dag.get_task``),
its template fields rendered by Airflow against a context that holds the run, the variables
(from ``AIRFLOW_VAR_*``, as Airflow's environment backend reads them) and the upstream results
(what ``xcom_pull`` and the XComArgs of the DAG resolve to).

    python -m bench.task_runner '{"task": "ingest.payment", "run": {...}, "upstream": {...}}'
    python -m bench.task_runner --order      # the DAG's task ids in an order to run them
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "totes_etl.py"


def totes_etl():
    """The DAG, exactly as the DAG file builds it."""
    return runpy.run_path(str(DAG_FILE))["dag"]


def task_order(dag) -> list[str]:
    """Every task after all of its upstream tasks; ties in the order the DAG declares them."""
    done: list[str] = []
    waiting = list(dag.task_dict)
    while waiting:
        ready = next(t for t in waiting if dag.task_dict[t].upstream_task_ids <= set(done))
        done.append(ready)
        waiting.remove(ready)
    return done


class _Variables:
    """``var.value`` in templates: Airflow's environment-variables backend, read directly."""

    def get(self, name: str, default: str | None = None) -> str | None:
        return os.environ.get(f"AIRFLOW_VAR_{name.upper()}", default)


class _TaskInstance:
    """What templates and XComArgs ask of a task instance: the upstream tasks' results."""

    def __init__(self, task_id: str, run_id: str, upstream: dict) -> None:
        self.task_id, self.run_id, self.try_number, self.log_url = task_id, run_id, 1, ""
        self._upstream = upstream

    def xcom_pull(self, task_ids: str, key: str = "return_value", default=None, **_: object):
        return self._upstream.get(task_ids, default)


def context(task, run: dict, upstream: dict) -> dict:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    start, end = (datetime.fromisoformat(run[k]) for k in ("interval_start", "interval_end"))
    prev = datetime.fromisoformat(run["prev_success_end"]) if run.get("prev_success_end") else None
    return {
        "dag": task.dag,
        "task": task,
        "ti": _TaskInstance(task.task_id, run["run_id"], upstream),
        "dag_run": SimpleNamespace(run_id=run["run_id"], logical_date=start, run_after=end),
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_data_interval_end_success": prev,
        "params": {"full_refresh": False},
        "run_id": run["run_id"],
        "var": {"value": _Variables()},
        "outlet_events": OutletEventAccessors(),  # Asset events are collected and dropped
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage/wait4: Linux carries the parent's peak
    over into a child's ru_maxrss at exec, so a large parent would inflate every child's figure."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 1024


def main() -> int:
    if sys.argv[1] == "--order":
        print("ORDER " + json.dumps(task_order(totes_etl())), flush=True)
        return 0
    spec = json.loads(sys.argv[1])
    task = totes_etl().get_task(spec["task"])
    ctx = context(task, spec["run"], spec.get("upstream", {}))
    try:
        task.render_template_fields(ctx)
        result = task.execute(ctx)
    finally:
        print(f"PEAK_RSS_MB {peak_rss_mb():.1f}", flush=True)
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
