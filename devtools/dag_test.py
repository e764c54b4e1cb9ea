"""``airflow dags test`` in one process, without the DAG's deadline alert.

``python -m devtools.dag_test totes_etl 2024-11-15T15:00:00+00:00`` runs the interval
[14:45, 15:00) as ``airflow dags test`` does (``dag.test()``), with one difference, and the
test harness and the benchmark run the DAG the same way. Airflow 3.3.1's ``dag.test()`` cannot
finish a run of a DAG that has a deadline alert: at the run's end ``DagRun.update_state`` reads
``dag.deadline`` as the ids of stored alerts, which only the DAG processor's serialization makes,
and fails on the alert itself ("'dict' object has no attribute 'hex'") after every task has run.
A deadline watches the scheduler's runs (include/deadline.py); an in-process run has none to
watch, so it is left out for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import Any


def run_once(dag: Any, **kwargs: Any) -> Any:
    """``dag.test(**kwargs)`` with the DAG's deadline alerts left out (restored after): the one
    place that works around Airflow 3.3.1's limit."""
    saved, dag.deadline = dag.deadline, None
    try:
        return dag.test(**kwargs)
    finally:
        dag.deadline = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dag_id")
    parser.add_argument("logical_date", type=datetime.fromisoformat)
    args = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags"))
    if bag.import_errors:
        print(bag.import_errors, file=sys.stderr)
        return 1
    dag = bag.dags[args.dag_id]
    run = run_once(dag, logical_date=args.logical_date)
    print(f"{args.dag_id}: run {run.run_id} {run.state}")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
