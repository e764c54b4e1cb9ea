"""The figures every run keeps in the warehouse (include.figures) on real PostgreSQL: one row per
run, stage and table; a rerun replaces, never adds; a load's figures commit with the load; the
retention deletes by when a row was recorded, measured from the run's interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include import figures
from include.checks import CheckReport
from include.load import load_batches
from include.registry import WAREHOUSE
from include.results import Run
from tests.warehouse_rows import T1, dim_location_rows

END = datetime(2024, 11, 15, 16, 0, tzinfo=UTC)
RUN = Run("scheduled__2024-11-15T15:45:00+00:00", END - timedelta(minutes=15), END)


def stage_rows(wh) -> list[tuple]:
    return wh.execute(
        "SELECT run_id, stage, table_name, rows_read, rows_written, seconds FROM etl_stage_figures ORDER BY 1, 2, 3"
    ).fetchall()


def test_a_stage_recorded_again_in_the_same_run_replaces_its_figures(warehouse):
    figures.record_stage(warehouse, "public", RUN, figures.StageFigures("ingest", "staff", 1.5, rows_read=20, rows_written=20))
    figures.record_stage(warehouse, "public", RUN, figures.StageFigures("ingest", "staff", 0.5, rows_read=21, rows_written=21))
    assert stage_rows(warehouse) == [(RUN.run_id, "ingest", "staff", 21, 21, 0.5)]
    other = Run("scheduled__2024-11-15T16:00:00+00:00", END, END + timedelta(minutes=15))
    figures.record_stage(warehouse, "public", other, figures.StageFigures("ingest", "staff", 0.25))
    assert len(stage_rows(warehouse)) == 2
    with pytest.raises(ValueError, match="unknown stage"):
        figures.StageFigures("extract", "staff", 1.0)


def test_check_results_are_kept_per_table_with_their_problems_and_a_rerun_replaces_them(warehouse):
    report = CheckReport(
        figures={
            "dim_staff": {"recent_versions": 4, "recent_absent": 1, "quarantined_ids": 2},
            "dim_design": {"recent_versions": 3, "recent_absent": 0, "quarantined_ids": 0},
        }
    )
    report.add("dim_staff", "1 of 4 recent change(s) not in the warehouse (ids 7)")
    report.add("fact_payment", "the unique version constraint is missing")  # named by a problem only
    assert figures.record_checks(warehouse, "public", RUN, "reconcile", report) == 3
    rows = warehouse.execute(
        "SELECT table_name, passed, ids_expected, ids_present, ids_quarantined, problems FROM etl_check_result ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("dim_design", True, 3, 3, 0, None),
        ("dim_staff", False, 4, 3, 2, "1 of 4 recent change(s) not in the warehouse (ids 7)"),
        ("fact_payment", False, None, None, None, "the unique version constraint is missing"),
    ]
    # the same run's check again: its rows are replaced, the tables it no longer names go
    fixed = CheckReport(figures={"dim_staff": {"recent_versions": 4, "recent_absent": 0, "quarantined_ids": 0}})
    assert figures.record_checks(warehouse, "public", RUN, "reconcile", fixed) == 1
    assert warehouse.execute("SELECT table_name, passed, ids_present FROM etl_check_result").fetchall() == [
        ("dim_staff", True, 4)
    ]
    # another check of the same run keeps its own rows
    fresh = CheckReport(figures={"staff": {"lag_seconds": 0.0}})
    figures.record_checks(warehouse, "public", RUN, "freshness", fresh)
    assert warehouse.execute("SELECT count(*) FROM etl_check_result").fetchone()[0] == 2


def test_retention_deletes_what_was_recorded_before_the_horizon_and_a_backfill_deletes_nothing(warehouse):
    for n, age in enumerate((timedelta(days=91), timedelta(days=89), timedelta(0))):
        run = Run(f"run{n}", END - timedelta(minutes=15), END)
        figures.record_stage(warehouse, "public", run, figures.StageFigures("load", "dim_staff", 1.0))
        figures.record_checks(warehouse, "public", run, "freshness", CheckReport(figures={"staff": {"lag_seconds": 0.0}}))
        for name in ("etl_stage_figures", "etl_check_result"):
            warehouse.execute(f"UPDATE {name} SET recorded_at = %s WHERE run_id = %s", (END - age, run.run_id))
    old = Run(
        "backfill__2023-01-10T10:00:00+00:00", datetime(2023, 1, 10, 9, 45, tzinfo=UTC), datetime(2023, 1, 10, 10, tzinfo=UTC)
    )
    assert figures.apply_retention(warehouse, "public", old) == 0
    assert figures.apply_retention(warehouse, "public", RUN) == 2  # run0's two rows
    for name in ("etl_stage_figures", "etl_check_result"):
        assert {r[0] for r in warehouse.execute(f"SELECT run_id FROM {name}")} == {"run1", "run2"}


def test_a_loads_figures_commit_with_the_load_and_roll_back_with_it(warehouse):
    table = WAREHOUSE["dim_location"]

    def keep(result):
        figures.record_stage(warehouse, "public", RUN, figures.of_load(result, 0.1, refused=0, newest_change=None))

    def keep_then_fail(result):
        keep(result)
        raise RuntimeError("the connection dropped before the commit")

    with pytest.raises(RuntimeError, match="dropped"):
        load_batches(warehouse, "public", table, dim_location_rows(T1, "a").to_batches(), run_id=RUN.run_id,
                     manifest_key="k", before_commit=keep_then_fail)  # fmt: skip
    assert warehouse.execute("SELECT count(*) FROM dim_location").fetchone()[0] == 0
    assert stage_rows(warehouse) == []
    load_batches(warehouse, "public", table, dim_location_rows(T1, "a").to_batches(), run_id=RUN.run_id, manifest_key="k",
                 before_commit=keep)  # fmt: skip
    assert warehouse.execute("SELECT count(*) FROM dim_location").fetchone()[0] == 1
    assert stage_rows(warehouse) == [(RUN.run_id, "load", "dim_location", 1, 1, 0.1)]


def test_a_runs_schema_task_forgets_what_its_earlier_tries_kept_and_nothing_else(warehouse):
    other = Run("scheduled__2024-11-15T16:00:00+00:00", END, END + timedelta(minutes=15))
    for run in (RUN, other):
        figures.record_stage(warehouse, "public", run, figures.StageFigures("load", "dim_staff", 1.0, rows_written=3))
        figures.record_checks(warehouse, "public", run, "freshness", CheckReport(figures={"staff": {"lag_seconds": 0.0}}))
    assert figures.forget_run(warehouse, "public", RUN.run_id) == 2
    assert {r[0] for r in stage_rows(warehouse)} == {other.run_id}
    assert warehouse.execute("SELECT run_id FROM etl_check_result").fetchall() == [(other.run_id,)]
