"""The pipeline's own metrics (include/metrics.py): what a stage's and a check's figures give, and
how they leave: through Airflow's own StatsD client to a real StatsD receiver on loopback, and as
a structured log line with the fields CloudWatch's metric filters read. The local stack's test
reads the same receiver after real runs (test_local_stack.py)."""

from __future__ import annotations

import time

import pytest

from devtools.pg import free_port
from devtools.statsd import Sample, StatsdServer
from include.checks import CheckReport
from include.figures import StageFigures
from include.metrics import METRICS, Metric, emit, of_check, of_stage


def test_a_loads_figures_give_rows_loaded_and_what_it_quarantined():
    load = StageFigures("load", "fact_payment", 1.5, rows_read=120, rows_written=117, rows_rejected=3, rows_quarantined=3)
    assert of_stage(load) == [Metric("rows_loaded", "fact_payment", 117), Metric("rows_quarantined", "fact_payment", 3)]
    # a quiet load still says it loaded nothing; an ingest or transform says only what it quarantined
    assert of_stage(StageFigures("load", "dim_date", 0.1)) == [Metric("rows_loaded", "dim_date", 0)]
    assert of_stage(StageFigures("ingest", "payment", 0.2, rows_read=40, rows_written=40)) == []
    assert of_stage(StageFigures("transform", "fact_payment", 0.2, rows_quarantined=2)) == [
        Metric("rows_quarantined", "fact_payment", 2)
    ]


def test_freshness_gives_the_lag_of_every_source_table_it_measured():
    report = CheckReport()
    report.figures["payment"] = {"lag_seconds": 61.5}
    report.figures["staff"] = {"lag_seconds": 0}
    report.figures["sales_order"] = {"lag_seconds": None}  # nothing to measure yet
    assert of_check("freshness", report) == [
        Metric("freshness_lag_seconds", "payment", 61.5),
        Metric("freshness_lag_seconds", "staff", 0.0),
    ]
    assert of_check("reconcile", report) == []


def test_only_declared_metrics_exist():
    with pytest.raises(ValueError, match="unknown metric"):
        Metric("rows_lost", "payment", 1)
    assert Metric("rows_loaded", "fact_payment", 1).stat == "totes.rows_loaded.fact_payment"


def test_statsd_lines_parse_and_junk_is_ignored():
    assert Sample.parse("airflow.totes.rows_loaded.fact_payment:117|c") == Sample(
        "airflow.totes.rows_loaded.fact_payment", 117, "c"
    )
    assert Sample.parse("airflow.dagrun.duration.success.totes_etl:5321.2|ms|#a:b") == Sample(
        "airflow.dagrun.duration.success.totes_etl", 5321.2, "ms"
    )
    for junk in ("", "no value", "x:|c", "x:abc|g", ":1|c"):
        assert Sample.parse(junk) is None, junk


@pytest.fixture
def statsd(monkeypatch):
    """A StatsD receiver on loopback, and Airflow's Stats pointed at it as the [metrics]
    configuration would (the local stack's settings); Stats is put back to no metrics after."""
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    server = StatsdServer(free_port())
    server.start()
    for key, value in {
        "STATSD_ON": "True",
        "STATSD_HOST": "127.0.0.1",
        "STATSD_PORT": str(server.port),
        "STATSD_PREFIX": "airflow",
    }.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        yield server
    finally:
        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
        server.stop()


def wait_for(server: StatsdServer, n: int, timeout: float = 5) -> list[Sample]:
    until = time.monotonic() + timeout
    while len(server.samples()) < n and time.monotonic() < until:
        time.sleep(0.05)
    return server.samples()


def test_metrics_reach_statsd_through_airflows_client_and_the_log(statsd, capsys):
    emit([Metric("rows_loaded", "fact_payment", 117), Metric("freshness_lag_seconds", "payment", 61.5)])
    got = wait_for(statsd, 2)
    assert Sample("airflow.totes.rows_loaded.fact_payment", 117, "c") in got
    assert Sample("airflow.totes.freshness_lag_seconds.payment", 61.5, "g") in got
    assert {s.kind for s in got} == {"c", "g"}
    logged = capsys.readouterr().out
    # the fields terraform/mwaa/monitoring.tf's metric filters select and read
    assert "totes_metric=rows_loaded" in logged
    assert "table=fact_payment" in logged
    assert "value=117" in logged


def test_every_metric_kind_is_a_statsd_kind(statsd):
    emit([Metric(name, "t", 1) for name in METRICS])
    got = {s.name.rsplit(".", 2)[1]: s.kind for s in wait_for(statsd, len(METRICS))}
    assert got == {name: {"gauge": "g", "counter": "c"}[kind] for name, kind in METRICS.items()}
