"""Run one totes_etl task in this process, as a worker would, and print its result as JSON.

The benchmark starts one of these per task (like LocalExecutor does) so that each task's
process reports its own peak memory (VmHWM). The operators are the DAG's own classes
with the same arguments; only Jinja templating is replaced by the concrete values.

    python -m bench.task_runner '{"task": "ingest.payment", "run": {...}, "upstream": {...}}'
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from types import SimpleNamespace


def build_operator(task_id: str, cfg: dict, upstream: dict):
    from include.operators import (
        LakeTransformOperator,
        QuarantineReportOperator,
        S3ToWarehouseOperator,
        TotesysToS3Operator,
        WarehouseCheckOperator,
        WarehouseSchemaOperator,
    )
    from include.registry import WAREHOUSE

    group, _, name = task_id.partition(".")
    if task_id == "ensure_warehouse_schema":
        return WarehouseSchemaOperator(task_id=task_id, schema=cfg["schema"])
    if group == "ingest":
        return TotesysToS3Operator(task_id=task_id, table=name, bucket=cfg["ingestion"])
    if group == "transform":
        ingested = {s: upstream[f"ingest.{s}"] for s in WAREHOUSE[name].sources}
        return LakeTransformOperator(
            task_id=task_id, table=name, ingested=ingested, ingestion_bucket=cfg["ingestion"], processed_bucket=cfg["processed"]
        )
    if group == "load":
        return S3ToWarehouseOperator(
            task_id=task_id,
            table=name,
            transformed=upstream.get(f"transform.{name}"),
            bucket=cfg["processed"],
            schema=cfg["schema"],
        )
    if task_id == "check.quarantine":
        return QuarantineReportOperator(task_id=task_id, schema=cfg["schema"])
    if group == "check":
        return WarehouseCheckOperator(task_id=task_id, check=name, schema=cfg["schema"])
    raise ValueError(task_id)


def context(run: dict) -> dict:
    start, end = (datetime.fromisoformat(run[k]) for k in ("interval_start", "interval_end"))
    prev = datetime.fromisoformat(run["prev_success_end"]) if run.get("prev_success_end") else None
    dag_run = SimpleNamespace(run_id=run["run_id"], logical_date=start, run_after=end)
    return {
        "dag_run": dag_run,
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_data_interval_end_success": prev,
        "params": {"full_refresh": False},
        "run_id": run["run_id"],
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage/wait4: Linux carries the parent's peak
    over into a child's ru_maxrss at exec, so a large parent would inflate every child's figure."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 1024


def main() -> int:
    spec = json.loads(sys.argv[1])
    op = build_operator(spec["task"], spec["config"], spec.get("upstream", {}))
    try:
        result = op.execute(context(spec["run"]))
    finally:
        print(f"PEAK_RSS_MB {peak_rss_mb():.1f}", flush=True)
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
