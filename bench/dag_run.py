"""Run totes_etl once with dag.test() (the real DAG, in one process) and print its wall time.

python -m bench.dag_run 2024-11-15T15:00:00+00:00
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime


def main() -> int:
    from airflow.dag_processing.dagbag import DagBag

    from devtools.dag_test import run_once  # dag.test(), as Airflow 3.3.1 can run this DAG

    dag = DagBag(dag_folder=sys.argv[2] if len(sys.argv) > 2 else "dags/totes_etl.py").get_dag("totes_etl")
    started = time.perf_counter()
    dr = run_once(dag, logical_date=datetime.fromisoformat(sys.argv[1]))
    print("RESULT " + json.dumps({"state": str(dr.state), "seconds": time.perf_counter() - started}), flush=True)
    return 0 if dr.state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
