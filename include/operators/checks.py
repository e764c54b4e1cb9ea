"""The checks at the end of every run: reconciliation, freshness, quarantine report (include.checks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule

from include.operators._common import TotesOperator, run_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseCheckOperator(TotesOperator):
    """Run one of include.checks against totesys and the warehouse and keep its result per table
    (include.figures); any problem fails the task (no retry: a mismatch does not heal by
    waiting) and so sends the failure e-mail.

    :param check: "reconcile" or "freshness"
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#ead1dc"

    def __init__(self, *, check: str, schema: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.schema = check, schema

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.checks import CheckFailed, CheckReport, run_check
        from include.figures import record_checks
        from include.metrics import emit, of_check

        run = run_of(context)
        # read-only for the check itself; a second connection keeps its result (etl_check_result)
        with self.source() as src, self.warehouse(read_only=True) as wh, self.warehouse() as keep:

            def keep_and_emit(report: CheckReport) -> None:
                record_checks(keep, self.schema, run, self.check, report)
                emit(of_check(self.check, report))  # once kept (committed), as the stages' metrics

            try:
                return run_check(
                    self.check, src, wh, self.schema, run, record=keep_and_emit,
                ).to_xcom()  # fmt: skip
            except CheckFailed as failed:
                raise AirflowFailException(str(failed)) from None


class RunOutcomeOperator(TotesOperator):
    """The run's last task: fails when any other task of the run failed (include.checks.run_outcome),
    so that the run's state says so. Downstream of every task, it runs once all are done; it
    fails without retrying (the states it reads do not change) and mails the list.
    """

    ui_color = "#ead1dc"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.checks import CheckFailed, run_outcome

        ti = context["ti"]
        # {run id: {task id: state}} through the Task SDK (tasks have no metadata database)
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        try:
            return run_outcome(states, own_task_id=self.task_id).to_xcom()
        except CheckFailed as failed:
            raise AirflowFailException(str(failed)) from None


class QuarantineReportOperator(TotesOperator):
    """E-mail the people on ``totes_alert_emails`` when this run quarantined rows (which table,
    how many, why, where they are). The run itself succeeds: the other rows loaded, and the
    quarantined ones wait (README, "Quarantine").

    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#ead1dc"

    def __init__(self, *, schema: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema

    def execute(self, context: Context) -> dict[str, Any]:
        from include.alerts import quarantine_notifier
        from include.quarantine import waiting_from_run
        from include.results import QuarantineReport

        with self.warehouse(read_only=True) as wh:
            waiting = waiting_from_run(wh, self.schema, context["dag_run"].run_id)
        for row in waiting:
            self.log.warning("Quarantined: table %s, stage %s, %d row(s), %s, at %s", *row)
        if waiting:
            quarantine_notifier(waiting)(context)
        return QuarantineReport(quarantined=sum(r[2] for r in waiting)).to_xcom()
