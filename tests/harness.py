"""A totes_etl pipeline wired to real test services, for the end-to-end and fault tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from devtools.dag_test import run_once  # dag.test(), as Airflow 3.3.1 can run this DAG
from devtools.s3 import client as s3_client
from tests.expected import expected_warehouse, warehouse_snapshot


@dataclass
class Pipeline:
    dag: object
    totesys_url: str
    warehouse_url: str
    ingestion: str
    processed: str
    schema: str
    s3_endpoint: str
    runs: list = field(default_factory=list)

    def run(self, interval_end: str, *, expect: str | None = "success", rerun_of=None, **conf):
        """One run of the data interval that ends at ``interval_end`` (as `airflow dags test`);
        ``expect=None`` leaves its state to the caller, who checks the task states instead.
        ``rerun_of`` an earlier run of that interval: the same run again, under its run id (its
        tasks cleared and run anew, as a clear in the UI does)."""
        logical_date = datetime.fromisoformat(interval_end + "+00:00")
        run_after = rerun_of.run_after if rerun_of is not None else None  # the run id is made of it
        dr = run_once(self.dag, logical_date=logical_date, run_after=run_after, run_conf=conf or None)
        self.runs.append(dr)
        assert expect is None or dr.state == expect, f"run {interval_end} ended {dr.state}, expected {expect}"
        return dr

    def task_states(self, dr) -> dict[str, str]:
        return task_states(dr)

    def snapshot(self):
        with psycopg.connect(self.warehouse_url) as wh:
            return warehouse_snapshot(wh, self.schema)

    def expected(self, facts_before=None):
        with psycopg.connect(self.totesys_url) as src, psycopg.connect(self.warehouse_url) as wh:
            return expected_warehouse(src, wh, self.schema, facts_before)

    def objects(self, bucket: str | None = None) -> dict[str, bytes]:
        """Every object of both buckets (or one): key -> ETag."""
        s3 = s3_client(self.s3_endpoint)
        found = {}
        for b in [bucket] if bucket else [self.ingestion, self.processed]:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
                for obj in page.get("Contents", []):
                    found[f"{b}/{obj['Key']}"] = obj["ETag"]
        return found

    def read_object(self, key: str) -> bytes:
        bucket, _, name = key.partition("/")
        return s3_client(self.s3_endpoint).get_object(Bucket=bucket, Key=name)["Body"].read()


def task_states(dr) -> dict[str, str]:
    """task id -> state of every task instance of the DAG run ``dr``."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.state for ti in dr.get_task_instances(session=session)}


@contextlib.contextmanager
def fast_retries(dag, retries: int = 1):
    """Retry at once (the DAG's real back-off would make a test wait minutes); restored after."""
    saved = {t.task_id: (t.retries, t.retry_delay, t.retry_exponential_backoff) for t in dag.tasks}
    for t in dag.tasks:
        t.retries = min(t.retries, retries)
        t.retry_delay = timedelta(0)
        t.retry_exponential_backoff = False
    try:
        yield
    finally:
        for t in dag.tasks:
            t.retries, t.retry_delay, t.retry_exponential_backoff = saved[t.task_id]
