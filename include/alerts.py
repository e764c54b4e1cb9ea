"""The failure e-mail: the smtp provider's SmtpNotifier, to the ``totes_alert_emails`` variable."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from include.config import SMTP_CONN_ID, variable_template

FROM_ADDRESS = "totes-etl@terrifictotes.com"

SUBJECT = "[totes_etl] {{ ti.task_id }} failed ({{ dag.dag_id }}, {{ ti.run_id }})"

# Rendered by Airflow with the failed task's context. The exception text comes from our code
# and the drivers, which never include passwords (tests check this).
BODY = (
    "<h3>Task {{ ti.task_id }} of DAG {{ dag.dag_id }} failed</h3>"
    "<table>"
    "<tr><td>DAG</td><td>{{ dag.dag_id }}</td></tr>"
    "<tr><td>Task</td><td>{{ ti.task_id }}</td></tr>"
    "<tr><td>Run</td><td>{{ ti.run_id }}</td></tr>"
    "<tr><td>Data interval</td><td>{{ data_interval_start }} to {{ data_interval_end }}</td></tr>"
    "<tr><td>Try</td><td>{{ ti.try_number }}</td></tr>"
    "<tr><td>Error</td><td>{{ exception | e }}</td></tr>"
    '<tr><td>Log</td><td><a href="{{ ti.log_url }}">{{ ti.log_url }}</a></td></tr>'
    "</table>"
)


@functools.cache
def _fresh_smtp_notifier_class() -> type:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class FreshSmtpNotifier(SmtpNotifier):
        """SmtpNotifier that renders each notification on a copy of itself.

        Airflow's notifiers render their template fields in place: a notifier object used twice in
        one process (dag.test(), or a worker that keeps the parsed DAG) would otherwise send the
        first failure's subject and body again.
        """

        def __call__(self, *args: Any) -> None:
            import copy

            SmtpNotifier.__call__(copy.copy(self), *args)

    return FreshSmtpNotifier


def failure_notifier(**overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "to": variable_template("totes_alert_emails"),
        "from_email": FROM_ADDRESS,
        "subject": SUBJECT,
        "html_content": BODY,
        "smtp_conn_id": SMTP_CONN_ID,
    }
    kwargs.update(overrides)
    return _fresh_smtp_notifier_class()(**kwargs)


def _inert(value: object) -> str:
    """Data for a mail body that Airflow renders with Jinja: HTML-escaped, and braces as HTML
    entities so that no value from the data (a source text field in a reason) can ever be
    template syntax."""
    from html import escape

    return escape(str(value)).replace("{", "&#123;").replace("}", "&#125;").replace("%", "&#37;")


def quarantine_notifier(waiting: list[tuple[str, str, int, str, str]]) -> Any:
    """The mail that says what a run quarantined: (table, stage, rows, reason, object key) rows."""
    total = sum(r[2] for r in waiting)
    lines = "".join(
        "<tr>" + "".join(f"<td>{_inert(v)}</td>" for v in (t, stage, n, reason, key)) + "</tr>"
        for t, stage, n, reason, key in waiting
    )
    body = (
        f"<h3>{total} row(s) quarantined by {{{{ dag.dag_id }}}}, run {{{{ run_id }}}}</h3>"
        "<p>They were not loaded, and nothing else was held back. See the README, 'Quarantine', for how to replay them.</p>"
        "<table><tr><th>table</th><th>stage</th><th>rows</th><th>reason</th><th>where</th></tr>"
        f"{lines}</table>"
        '<p>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a></p>'
    )
    return failure_notifier(subject=f"[totes_etl] {total} row(s) quarantined in {{{{ run_id }}}}", html_content=body)


def file_quarantine_notifier(feed: str, bucket: str, refused: list[tuple[str, str, str]], lake_bucket: str) -> Any:
    """The mail that says which files of a feed a run quarantined: (source key, reason, quarantine key) rows."""
    lines = "".join(
        "<tr>"
        + "".join(f"<td>{_inert(v)}</td>" for v in (f"s3://{bucket}/{key}", reason, f"s3://{lake_bucket}/{where}"))
        + "</tr>"
        for key, reason, where in refused
    )
    body = (
        f"<h3>{len(refused)} file(s) of feed {_inert(feed)} quarantined by {{{{ dag.dag_id }}}}, run {{{{ run_id }}}}</h3>"
        "<p>They were not loaded; the feed's other files were. A corrected file (a new upload, or a new key) is "
        "taken by the next pick-up. See the README, 'File feeds'.</p>"
        "<table><tr><th>file</th><th>reason</th><th>kept at</th></tr>"
        f"{lines}</table>"
        '<p>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a></p>'
    )
    return failure_notifier(
        subject=f"[totes_etl] {len(refused)} file(s) of {_inert(feed)} quarantined in {{{{ run_id }}}}", html_content=body
    )


def task_defaults(*, retry_delay: timedelta, max_retry_delay: timedelta, execution_timeout: timedelta) -> dict[str, Any]:
    """The ``default_args`` of the project's DAGs: an owner, three retries with exponential
    back-off, and the failure e-mail."""
    return {
        "owner": "data-engineering",
        "retries": 3,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": max_retry_delay,
        "execution_timeout": execution_timeout,
        "on_failure_callback": [failure_notifier()],
    }
