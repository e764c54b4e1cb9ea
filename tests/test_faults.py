"""Faults at every stage boundary, and services that are down: after a retry (or the next run)
the warehouse equals what a clean run gives, with no row lost or duplicated, and a person got
an e-mail that says which DAG, task and run failed, with the log link.

Faults are exceptions injected (in-process, the DAG runs with dag.test()) between an effect
and the record of success: parts written but no manifest, a manifest written but the task not
marked done, state merged but no output, rows staged but not merged, a load committed but the
task not marked done.
"""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from devtools.smtp import body_text
from devtools.totesys.generator import GeneratorSettings, generate
from devtools.totesys.simulator import ChangePlan, simulate
from include import lake, load, state
from include.operators import IngestionToProcessedOperator, ProcessedToWarehouseOperator, TotesysToIngestionOperator
from tests.expected import assert_warehouse_equals

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class InjectedFault(RuntimeError):
    pass


def once(condition=lambda *a, **k: True):
    """A fault that fires the first time ``condition`` holds, and counts how often it fired."""

    class Fault:
        fired = 0

        @classmethod
        def maybe(cls, *args, **kwargs):
            if not cls.fired and condition(*args, **kwargs):
                cls.fired += 1
                raise InjectedFault("injected fault")

    return Fault


def after(original, fault):
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        fault.maybe(*args, **kwargs)
        return result

    return wrapper


def before(original, fault):
    def wrapper(*args, **kwargs):
        fault.maybe(*args, **kwargs)
        return original(*args, **kwargs)

    return wrapper


def _is(table):
    return lambda self, *a, **k: self.table == table


# where -> (object, attribute, when the fault fires relative to it, which call). Each boundary
# is armed on a different task, so that one retry heals each.
FAULTS = {
    # ingest: parts uploaded, manifest not written
    "ingest-before-manifest": (lake.Lake, "commit", before, lambda lk, prefix, *a: prefix.startswith("payment/")),
    # ingest: manifest written, task not recorded as done
    "ingest-after-manifest": (TotesysToIngestionOperator, "execute", after, _is("sales_order")),
    # transform: join state merged, output not written
    "transform-after-state": (state.StateStore, "merge", after, lambda *a, **k: True),
    # transform: output committed, task not recorded as done
    "transform-after-commit": (IngestionToProcessedOperator, "execute", after, _is("fact_payment")),
    # load: rows staged, merge not run (the transaction rolls back)
    "load-before-merge": (load, "merge_sql", before, lambda schema, table: table.name == "fact_payment"),
    # load: committed, task not recorded as done
    "load-after-commit": (ProcessedToWarehouseOperator, "execute", after, _is("fact_sales_order")),
}


def test_faults_at_every_stage_boundary_lose_and_duplicate_nothing(pipeline, monkeypatch):
    faults = {}
    for where, (target, attribute, wrap, condition) in FAULTS.items():
        faults[where] = once(condition)
        monkeypatch.setattr(target, attribute, wrap(getattr(target, attribute), faults[where]))
    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=21, scale=0.03))

    p.run("2024-11-15T15:00:00")  # the snapshot run: every fault fires once, every retry heals
    assert {w: f.fired for w, f in faults.items()} == dict.fromkeys(FAULTS, 1)
    first = p.snapshot()
    assert_warehouse_equals(first, p.expected())

    for f in faults.values():
        f.fired = 0
    with psycopg.connect(p.totesys_url) as conn:
        simulate(conn, at=datetime(2024, 11, 15, 15, 5), seed=4, plan=ChangePlan())
    p.run("2024-11-15T15:15:00")  # an incremental run, the same again
    assert {w: f.fired for w, f in faults.items()} == dict.fromkeys(FAULTS, 1)
    assert_warehouse_equals(p.snapshot(), p.expected(facts_before=first))


def closed_port_connection(kind: str, good: str) -> str:
    from devtools.pg import free_port

    conn = json.loads(good)
    if kind == "aws":
        conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
        conn["extra"]["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1, "mode": "standard"}}
    else:
        conn["port"] = free_port()
    return json.dumps(conn)


@pytest.mark.parametrize(
    ("service", "env", "failing"),
    [
        ("totesys", "AIRFLOW_CONN_TOTESYS_DB", "ingest."),
        ("S3", "AIRFLOW_CONN_AWS_DEFAULT", "ingest."),
        ("warehouse", "AIRFLOW_CONN_WAREHOUSE_DB", "ensure_warehouse_schema"),
    ],
)
def test_a_service_down_retries_fails_mails_and_the_next_run_catches_up(
    pipeline, monkeypatch, smtp_server, service, env, failing
):
    import os

    p = pipeline()
    with psycopg.connect(p.totesys_url) as conn:
        generate(conn, GeneratorSettings(seed=22, scale=0.03))
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()

    with psycopg.connect(p.totesys_url) as conn:
        simulate(conn, at=datetime(2024, 11, 15, 15, 5), seed=5, plan=ChangePlan())
    good = os.environ[env]
    monkeypatch.setenv(env, closed_port_connection("aws" if service == "S3" else "pg", good))
    seen = len(smtp_server.sink.messages)
    dr = p.run("2024-11-15T15:15:00", expect="failed")
    states = p.task_states(dr)
    failed = sorted(t for t, s in states.items() if s == "failed")
    assert failed, states
    assert all(t.startswith(failing) or t.startswith("check.") for t in failed), failed

    # the failure e-mail, on a real SMTP server: DAG, task, run and the log link
    mails = smtp_server.sink.wait_for(lambda m: failing in m["Subject"] and dr.run_id in m["Subject"], timeout=30)
    assert len(smtp_server.sink.messages) > seen
    mail = mails[-1]
    text = body_text(mail)
    assert "totes_etl" in mail["Subject"]
    assert dr.run_id in mail["Subject"]
    assert f"<td>{failed[0]}</td>" in text or failing in text
    assert "log" in text.lower()
    assert "dag_id=totes_etl" in text or "/dags/totes_etl/" in text  # the log link

    # the service is back: the next run reaches back to the last success, nothing is missing
    monkeypatch.setenv(env, good)
    p.run("2024-11-15T15:30:00")
    assert_warehouse_equals(p.snapshot(), p.expected(facts_before=first))
