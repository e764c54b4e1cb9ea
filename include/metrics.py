"""The pipeline's own metrics, from the figures it keeps (include/figures.py), once committed.

Three, per table (README, "Metrics"):

* ``totes.freshness_lag_seconds.<source table>``: a gauge, from ``check.freshness``;
* ``totes.rows_loaded.<warehouse table>``: a counter, the rows a load wrote;
* ``totes.rows_quarantined.<table>``: a counter, the rows a stage put in the quarantine (each
  row counted once, by the stage that refused it, as in the figures).

Each goes out two ways. Through Airflow's metrics API (``Stats``): StatsD or OpenTelemetry, as
the ``[metrics]`` configuration says, beside Airflow's own metrics (the local stack sends them
to a StatsD receiver on loopback). And as one structured line of the task's log (``totes_metric``,
``table``, ``value``): on MWAA the task logs go to CloudWatch Logs, where the metric filters of
terraform/mwaa/monitoring.tf make CloudWatch metrics of them, whatever MWAA does with StatsD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from include.checks import CheckReport
    from include.figures import StageFigures

PREFIX = "totes"
# name -> kind: one declaration for the emitter, the docs and the CloudWatch metric filters
METRICS: dict[str, Literal["gauge", "counter"]] = {
    "freshness_lag_seconds": "gauge",
    "rows_loaded": "counter",
    "rows_quarantined": "counter",
}


# The fields of the metric's log line, which the CloudWatch metric filters select and read.
LOG_FIELDS = {"metric": "totes_metric", "table": "table", "value": "value"}


@dataclass(frozen=True)
class Metric:
    name: str
    table: str
    value: float

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise ValueError(f"unknown metric {self.name!r}")

    @property
    def stat(self) -> str:
        return f"{PREFIX}.{self.name}.{self.table}"


def of_stage(figures: StageFigures) -> list[Metric]:
    """A stage's metrics: rows loaded (a load's), rows quarantined (any stage's, when there were)."""
    out = []
    if figures.stage == "load":
        out.append(Metric("rows_loaded", figures.table, figures.rows_written))
    if figures.rows_quarantined:
        out.append(Metric("rows_quarantined", figures.table, figures.rows_quarantined))
    return out


def of_check(check: str, report: CheckReport) -> list[Metric]:
    """A check's metrics: the freshness lag of every source table it measured."""
    if check != "freshness":
        return []
    return [
        Metric("freshness_lag_seconds", table, float(f["lag_seconds"]))
        for table, f in sorted(report.figures.items())
        if f.get("lag_seconds") is not None
    ]


def emit(metrics: list[Metric]) -> None:
    """Send each metric through Airflow's Stats and log it as a structured line. A metric that
    cannot be sent is lost, never the task: the figures in the warehouse are the record."""
    import structlog
    from airflow.sdk.observability.stats import Stats

    log = structlog.get_logger("totes.metrics")
    for m in metrics:
        try:
            if METRICS[m.name] == "gauge":
                Stats.gauge(m.stat, m.value)
            else:
                Stats.incr(m.stat, count=int(m.value))
        except Exception as error:  # a metric is not worth a failed load
            log.warning("metric not sent", stat=m.stat, error=str(error))
        log.info("totes metric", **{LOG_FIELDS["metric"]: m.name, LOG_FIELDS["table"]: m.table, LOG_FIELDS["value"]: m.value})
