"""The 30-minute promise as an Airflow deadline alert: a run of totes_etl that has not finished
30 minutes after its data interval's end sends one mail (README, "The 30-minute promise").

Airflow's own deadline machinery does the watching: the scheduler stores a run's deadline when
it creates the run and marks it missed once; the triggerer runs ``run_deadline_missed``. A run
that succeeds in time has its deadline removed by Airflow. No built-in reference counts from the
data interval's end (DAGRUN_LOGICAL_DATE is the interval's start for a scheduled run and the
trigger time for a manual one), hence ``RunDeadline``, which gives the deadline itself:

* the interval's end plus the run's ``deadline_minutes`` param (30, the promise; a full refresh
  may be triggered with more);
* none for a backfill run, nor for a run created after its deadline (a manual run of an old
  interval): they reprocess history, and every one of them would be "late".

``RunDeadline`` is registered with Airflow by plugins/totes_deadline.py: the scheduler must
load it to create totes_etl's runs (the MWAA plugins.zip carries it).
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timedelta
from html import escape
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert
from airflow.sdk.definitions.deadline import BaseDeadlineReference

from include.config import FRESHNESS_LIMIT, SMTP_CONN_ID, VARIABLES

DEADLINE_PARAM = "deadline_minutes"
DEFAULT_MINUTES = FRESHNESS_LIMIT.total_seconds() / 60


def deadline_minutes(conf: dict[str, Any] | None) -> float:
    """The run's ``deadline_minutes`` (the DAG's Param checks it at trigger time), or 30."""
    value = (conf or {}).get(DEADLINE_PARAM)
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        return DEFAULT_MINUTES
    return minutes if math.isfinite(minutes) and minutes > 0 else DEFAULT_MINUTES


def deadline_of(
    *, run_type: str, data_interval_end: datetime | None, queued_at: datetime | None, conf: dict[str, Any] | None
) -> datetime | None:
    """A run's deadline, or None when it has none (see the module's docstring)."""
    if run_type == "backfill" or data_interval_end is None:
        return None
    deadline = data_interval_end + timedelta(minutes=deadline_minutes(conf))
    if queued_at is not None and deadline <= queued_at:
        return None
    return deadline


class RunDeadline(BaseDeadlineReference):
    """A deadline reference that is the deadline itself: ``deadline_of`` the run."""

    required_kwargs = frozenset({"dag_id", "run_id"})

    def _evaluate_with(self, *, session: Any, dag_id: str, run_id: str, **_: Any) -> datetime | None:
        from airflow.models.dagrun import DagRun  # the scheduler's side only
        from sqlalchemy import select

        row = session.execute(
            select(DagRun.run_type, DagRun.data_interval_end, DagRun.queued_at, DagRun.conf).where(
                DagRun.dag_id == dag_id, DagRun.run_id == run_id
            )
        ).one_or_none()
        if row is None:
            return None
        run_type, end, queued_at, conf = row
        return deadline_of(
            run_type=str(getattr(run_type, "value", run_type)), data_interval_end=end, queued_at=queued_at, conf=conf
        )


SUBJECT = "[totes_etl] run {run_id} missed its deadline {deadline}"


def deadline_mail(context: dict[str, Any]) -> tuple[str, str]:
    """The subject and HTML body for a missed deadline, from the context Airflow gives the
    callback: {"dag_run": the run as the REST API shows it, "deadline": {"id", "deadline_time"}}."""
    run, deadline = context["dag_run"], context["deadline"]
    when = deadline["deadline_time"]
    if isinstance(when, str):
        with contextlib.suppress(ValueError):  # as the scheduler stored it; kept as text otherwise
            when = datetime.fromisoformat(when)
    when = when.isoformat() if isinstance(when, datetime) else str(when)
    rows = {
        "DAG": run.get("dag_id"),
        "Run": run.get("dag_run_id"),
        "Data interval": f"{run.get('data_interval_start')} to {run.get('data_interval_end')}",
        "Deadline": when,
        "State at the deadline": run.get("state"),
        "Queued at": run.get("queued_at"),
        "Started at": run.get("start_date"),
    }
    subject = SUBJECT.format(run_id=run.get("dag_run_id"), deadline=when)
    body = (
        f"<h3>{escape(str(run.get('dag_id')))} has not finished run {escape(str(run.get('dag_run_id')))} "
        "by its deadline</h3>"
        "<p>Changes in totesys from this interval may not be in the warehouse yet. "
        "The run goes on; docs/runbook.md says what to look at (its alert table).</p><table>"
        + "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows.items())
        + "</table>"
    )
    return subject, body


async def run_deadline_missed(*, context: dict[str, Any], smtp_conn_id: str = SMTP_CONN_ID, **_: Any) -> str:
    """The deadline alert's callback, run by the triggerer: one mail to ``totes_alert_emails``
    through the smtp provider's hook (the same connection as the failure mails)."""
    import asyncio

    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk import Variable

    from include.alerts import FROM_ADDRESS

    to = await asyncio.to_thread(Variable.get, "totes_alert_emails", VARIABLES["totes_alert_emails"])
    subject, body = deadline_mail(context)
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        await hook.asend_email_smtp(to=to, subject=subject, html_content=body, from_email=FROM_ADDRESS, smtp_conn_id=smtp_conn_id)
    return subject


def run_deadline() -> DeadlineAlert:
    """totes_etl's deadline alert."""
    return DeadlineAlert(
        reference=RunDeadline(),
        interval=timedelta(0),  # RunDeadline gives the deadline itself, with the run's own minutes
        callback=AsyncCallback(run_deadline_missed, kwargs={"smtp_conn_id": SMTP_CONN_ID}),
        name="finished within 30 minutes of the interval's end",
    )
