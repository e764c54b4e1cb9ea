"""The 30-minute promise as a deadline alert (include/deadline.py): which runs get which deadline,
the DAG's alert as the scheduler decodes it and evaluates it against real runs in Airflow's
metadata database, and the mail the callback sends to a real SMTP server. The whole path
(scheduler, triggerer, the stack's SMTP server) is test_local_stack's deadline test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from devtools.smtp import body_text
from include.deadline import DEADLINE_PARAM, RunDeadline, deadline_mail, deadline_minutes, deadline_of, run_deadline_missed

END = datetime(2024, 11, 15, 15, 0, tzinfo=UTC)


def test_a_scheduled_run_must_finish_30_minutes_after_its_interval():
    assert deadline_of(
        run_type="scheduled", data_interval_end=END, queued_at=END + timedelta(seconds=2), conf={}
    ) == END + timedelta(minutes=30)
    # a manual run of the latest interval: the same promise, from the interval's end
    assert deadline_of(
        run_type="manual", data_interval_end=END, queued_at=END + timedelta(minutes=9), conf={DEADLINE_PARAM: 30}
    ) == END + timedelta(minutes=30)


def test_a_run_may_be_given_more_or_fewer_minutes():
    queued = END + timedelta(minutes=1)
    assert deadline_of(run_type="manual", data_interval_end=END, queued_at=queued, conf={DEADLINE_PARAM: 90}) == END + timedelta(
        minutes=90
    )
    assert deadline_of(run_type="manual", data_interval_end=END, queued_at=queued, conf={DEADLINE_PARAM: 1.5}) == END + timedelta(
        seconds=90
    )


@pytest.mark.parametrize("value", [None, "soon", 0, -5, float("nan"), float("inf"), [30]])
def test_a_bad_minutes_value_keeps_the_promise(value):
    # The Param refuses these at trigger time; the scheduler must never fail a run's creation on one.
    assert deadline_minutes({DEADLINE_PARAM: value}) == 30
    assert deadline_minutes(None) == 30


def test_backfills_and_reprocessing_get_no_deadline():
    assert deadline_of(run_type="backfill", data_interval_end=END, queued_at=END, conf={}) is None
    # a manual run of an old interval (the soak's, a one-off reprocess) is created after its deadline
    assert deadline_of(run_type="manual", data_interval_end=END, queued_at=END + timedelta(hours=2), conf={}) is None
    assert deadline_of(run_type="manual", data_interval_end=None, queued_at=END, conf={}) is None


@pytest.fixture
def deadline_alert(totes_dag):
    """totes_etl's alert as the scheduler sees it: serialized by the DAG processor, decoded with
    the reference class looked up among the plugins (plugins/totes_deadline.py)."""
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.serialized_objects import DagSerialization

    (encoded,) = DagSerialization.to_dict(totes_dag)["dag"]["deadline"]
    assert encoded["reference"]["__class_path"] == "include.deadline.RunDeadline"
    return decode_deadline_alert(encoded)


def test_the_scheduler_evaluates_the_dags_deadline_against_its_runs(deadline_alert, airflow_db):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    assert isinstance(deadline_alert.reference.inner_ref, RunDeadline)
    assert deadline_alert.interval == timedelta(0)
    assert deadline_alert.callback.path == "include.deadline.run_deadline_missed"

    runs = {
        "scheduled__t": (DagRunType.SCHEDULED, END, {}),
        "manual__more": (DagRunType.MANUAL, END, {DEADLINE_PARAM: 120}),
        "backfill__t": (DagRunType.BACKFILL_JOB, END, {}),
    }
    with create_session() as session:
        for i, (run_id, (run_type, end, conf)) in enumerate(runs.items()):
            run = DagRun(
                dag_id="totes_deadline_probe",
                run_id=run_id,
                run_type=run_type,
                logical_date=end - timedelta(minutes=15) + timedelta(seconds=i),  # unique per DAG
                data_interval=(end - timedelta(minutes=15), end),
                conf=conf,
                state=DagRunState.QUEUED,
            )
            run.queued_at = end + timedelta(seconds=3)
            session.add(run)
        session.flush()
        found = {
            run_id: deadline_alert.reference.evaluate_with(
                session=session, interval=deadline_alert.interval, dag_id="totes_deadline_probe", run_id=run_id
            )
            for run_id in runs
        }
        assert (
            deadline_alert.reference.evaluate_with(
                session=session, interval=deadline_alert.interval, dag_id="totes_deadline_probe", run_id="no_such_run"
            )
            is None
        )
        session.rollback()
    assert found == {
        "scheduled__t": END + timedelta(minutes=30),
        "manual__more": END + timedelta(minutes=120),
        "backfill__t": None,
    }


CONTEXT = {
    "dag_run": {
        "dag_id": "totes_etl",
        "dag_run_id": "scheduled__2024-11-15T14:45:00+00:00",
        "data_interval_start": "2024-11-15T14:45:00Z",
        "data_interval_end": "2024-11-15T15:00:00Z",
        "state": "running",
        "queued_at": "2024-11-15T15:00:02Z",
        "start_date": "2024-11-15T15:00:03Z",
    },
    "deadline": {"id": "0199", "deadline_time": "2024-11-15T15:30:00+00:00"},
}


def test_the_mail_names_the_dag_the_run_and_the_deadline():
    subject, body = deadline_mail(CONTEXT)
    assert subject == "[totes_etl] run scheduled__2024-11-15T14:45:00+00:00 missed its deadline 2024-11-15T15:30:00+00:00"
    for text in ("totes_etl", "scheduled__2024-11-15T14:45:00+00:00", "2024-11-15T15:30:00+00:00", "running"):
        assert text in body
    hostile = {**CONTEXT, "dag_run": {**CONTEXT["dag_run"], "dag_run_id": "<script>x</script>"}}
    assert "<script>" not in deadline_mail(hostile)[1]


def test_the_callback_sends_one_mail_to_the_alert_addresses(monkeypatch, smtp_server):
    from tests.conftest import smtp_connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(smtp_server.port))
    monkeypatch.setenv("AIRFLOW_VAR_TOTES_ALERT_EMAILS", "oncall@example.com")
    run_id = CONTEXT["dag_run"]["dag_run_id"]
    subject = asyncio.run(run_deadline_missed(context=CONTEXT, smtp_conn_id="smtp_default"))
    (mail,) = smtp_server.sink.wait_for(lambda m: run_id in str(m["Subject"]))
    assert str(mail["Subject"]) == subject
    assert str(mail["To"]) == "oncall@example.com"
    assert "2024-11-15T15:30:00+00:00" in body_text(mail)
