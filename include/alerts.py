"""The failure e-mail: the smtp provider's SmtpNotifier, to the ``totes_alert_emails`` variable."""

from __future__ import annotations

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


def failure_notifier(**overrides: Any) -> Any:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    kwargs: dict[str, Any] = {
        "to": variable_template("totes_alert_emails"),
        "from_email": FROM_ADDRESS,
        "subject": SUBJECT,
        "html_content": BODY,
        "smtp_conn_id": SMTP_CONN_ID,
    }
    kwargs.update(overrides)
    return SmtpNotifier(**kwargs)
