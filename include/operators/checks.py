"""The checks at the end of every run: reconciliation, freshness, quarantine report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import LOOKBACK, SOURCE_CONN_ID, WAREHOUSE_CONN_ID
from include.operators._common import psycopg_connection, run_interval

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseCheckOperator(BaseOperator):
    """Run one of include.checks against totesys and the warehouse; any problem fails the task
    (no retry: a mismatch does not heal by waiting) and so sends the failure e-mail.

    :param check: "reconcile" or "freshness"
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#ead1dc"

    def __init__(
        self,
        *,
        check: str,
        schema: str,
        source_conn_id: str = SOURCE_CONN_ID,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.schema = schema
        self.source_conn_id = source_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include import checks
        from include.lake import to_naive_utc

        start, end = (to_naive_utc(t) for t in run_interval(context))
        with (
            psycopg_connection(self.source_conn_id, read_only=True) as src,
            psycopg_connection(self.warehouse_conn_id, read_only=True) as wh,
        ):
            if self.check == "reconcile":
                report = checks.reconcile(src, wh, self.schema, cutoff=end - LOOKBACK, recent_from=start - LOOKBACK)
            elif self.check == "freshness":
                report = checks.freshness(src, wh, self.schema, as_of=end)
            else:
                raise ValueError(f"unknown check {self.check!r}")
        for table, figures in report.figures.items():
            self.log.info("%s %s: %s", self.check, table, figures)
        if report.problems:
            raise AirflowFailException(f"{self.check} failed: " + "; ".join(report.problems))
        return {"check": self.check, "tables": len(report.figures)}


class QuarantineReportOperator(BaseOperator):
    """E-mail the people on ``totes_alert_emails`` when this run quarantined rows (which table,
    how many, why, where they are). The run itself succeeds: the other rows loaded, and the
    quarantined ones wait (README, "Quarantine")."""

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#ead1dc"

    def __init__(self, *, schema: str, warehouse_conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from include import checks
        from include.alerts import quarantine_notifier

        run_id = context["dag_run"].run_id
        with psycopg_connection(self.warehouse_conn_id, read_only=True) as wh:
            waiting = checks.quarantined_in_run(wh, self.schema, run_id)
        if not waiting:
            self.log.info("Nothing quarantined in %s", run_id)
            return {"quarantined": 0}
        for row in waiting:
            self.log.warning("Quarantined: table %s, stage %s, %d row(s), %s, at %s", *row)
        quarantine_notifier(waiting)(context)
        return {"quarantined": sum(r[2] for r in waiting)}
