"""The checks (include.checks), on a warehouse built by the stage functions themselves.

The pipeline's stages are plain functions: here they run one after the other without Airflow's
scheduling (S3 through the provider's hook, PostgreSQL for real), and the checks are asked about
the warehouse they built, before and after it is damaged in ways the checks exist to catch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pendulum
import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from devtools.totesys.simulator import simulate
from include import bookkeeping
from include.checks import CheckFailed, compares_whole_tables, reconcile_run, run_check, run_outcome
from include.ddl import ensure_warehouse_schema
from include.ingest import ingest_table
from include.lake import Lake
from include.load import load_table
from include.operators._common import s3_hook
from include.registry import SOURCE_TABLES, WAREHOUSE, WAREHOUSE_TABLES
from include.results import Run
from include.transform import transform_table

# The cut-off (15:30) is after every generated row; an interval ending on the hour compares
# whole tables as well.
END = datetime(2024, 11, 15, 16, 0)
RUN = Run("manual__checks", END - timedelta(minutes=15), END)


@dataclass
class Stages:
    """totesys and the warehouse, and the stages run in dependency order without Airflow."""

    src: psycopg.Connection
    wh: psycopg.Connection
    ingestion: Lake
    processed: Lake

    def run(self, run: Run) -> None:
        ingested = {t.name: ingest_table(self.src, self.ingestion, t, run) for t in SOURCE_TABLES}
        for w in WAREHOUSE_TABLES:  # declared dimensions first, as the loads must run
            transformed = transform_table(self.ingestion, self.processed, w, {s: ingested[s] for s in w.sources}, run)
            assert transformed.rejected == 0
            load_table(self.wh, self.processed, "public", w, transformed, run)


@pytest.fixture
def stages(new_database, new_buckets, airflow_connections):
    """totesys (generated), and a warehouse loaded from it by ingest, transform and load."""
    src_url, wh_url = new_database("totesys"), new_database("warehouse")
    ingestion_bucket, processed_bucket = new_buckets("ingestion", "processed")
    airflow_connections(totesys_url=src_url, warehouse_url=wh_url, ingestion=ingestion_bucket, processed=processed_bucket)
    with psycopg.connect(src_url) as conn:
        generate(conn, GeneratorSettings(seed=31, scale=0.03))
    ingestion, processed = Lake(s3_hook("aws_default"), ingestion_bucket), Lake(s3_hook("aws_default"), processed_bucket)
    with psycopg.connect(src_url, autocommit=True) as src, psycopg.connect(wh_url, autocommit=True) as wh:
        ensure_warehouse_schema(wh, "public")
        built = Stages(src, wh, ingestion, processed)
        built.run(RUN)
        yield built


@pytest.fixture
def built(stages):
    return stages.src, stages.wh


def problems(check: str, src, wh, run: Run = RUN) -> str:
    with pytest.raises(CheckFailed) as failed:
        run_check(check, src, wh, "public", run)
    return str(failed.value)


def as_the_pipeline(wh, statement: str, params=None) -> None:
    """A change the triggers take for a load's (the marker include.load sets): what a pipeline
    bug would do, which only the whole-table comparison can see."""
    with wh.transaction():
        bookkeeping.mark_pipeline_write(wh, "test")
        wh.execute(statement, params)


def test_a_warehouse_built_by_the_stages_passes_both_checks(built):
    src, wh = built
    assert run_check("reconcile", src, wh, "public", RUN).tables == len(WAREHOUSE_TABLES) - 1  # all but the calendar
    assert run_check("freshness", src, wh, "public", RUN).tables == len(SOURCE_TABLES)


def test_reconcile_catches_a_lost_fact_and_excepts_it_while_it_waits_in_the_quarantine(built):
    src, wh = built
    (lost,) = wh.execute("SELECT min(payment_id) FROM fact_payment").fetchone()
    as_the_pipeline(wh, "DELETE FROM fact_payment WHERE payment_id = %s", (lost,))
    assert f"fact_payment: 1 source row(s) missing (ids {lost})" in problems("reconcile", src, wh)
    wh.execute(
        "INSERT INTO etl_quarantine (table_name, stage, source_id, reason, row_data, run_id, object_key) "
        "VALUES ('fact_payment', 'load', %s, 'test', '{}', 'r', 'k')",
        (lost,),
    )
    assert run_check("reconcile", src, wh, "public", RUN).check == "reconcile"


# A copy of a fact row at a version newer than any the source has (the calendar's last day, its
# last second): a version the source never had.
PAYMENT_COLUMNS = ", ".join(WAREHOUSE["fact_payment"].load_columns)
FAKE_VERSION = PAYMENT_COLUMNS.replace("last_updated_date", "(SELECT max(date_id) FROM dim_date)").replace(
    "last_updated_time", "TIME '23:59:59'"
)

# (where: the source, the warehouse by hand, or the warehouse as a pipeline bug would change
# it; the statement, its parameter, the check that must catch it, what it must say)
DAMAGE = {
    "an id the source lacks": (
        "warehouse", "INSERT INTO dim_design VALUES (999999, 'ghost', '/x', %s)", "x.json",
        "reconcile", "dim_design: 1 id(s) that the source does not have",
    ),
    "a recent change that did not arrive": (
        "source", "UPDATE design SET design_name = 'changed', last_updated = %s WHERE design_id = 1", END - timedelta(minutes=40),
        "reconcile", "dim_design: 1 of 1 recent change(s) not in the warehouse",
    ),
    "a foreign key no longer in force": (
        "warehouse", "ALTER TABLE fact_sales_order DROP CONSTRAINT fact_sales_order_design_id_fkey", None,
        "reconcile", "fact_sales_order: not every foreign key to its dimensions is in force",
    ),
    "a row the pipeline lost": (
        "pipeline", "DELETE FROM fact_sales_order WHERE sales_order_id = %s", 7,
        "reconcile", "fact_sales_order: 1 source row(s) missing (ids 7)",
    ),
    "a change the pipeline lost": (
        "warehouse", "UPDATE etl_dimension_version SET version[1] = version[1] - interval '1 hour' "
        "WHERE dimension = 'dim_design' AND id = %s", 3,
        "reconcile", "dim_design: 1 row(s) at an older version than the source's (ids 3)",
    ),
    "a version the source never had": (
        "pipeline", f"INSERT INTO fact_payment ({PAYMENT_COLUMNS}) SELECT {FAKE_VERSION} FROM fact_payment WHERE payment_id = %s", 5,
        "reconcile", "fact_payment: 1 row(s) at a version the source never had (ids 5)",
    ),
    "triggers turned off": (
        "warehouse", "ALTER TABLE dim_staff DISABLE TRIGGER etl_outside_delete", None,
        "reconcile", "dim_staff: the triggers recording writes outside the pipeline are not in force (etl_outside_delete)",
    ),
    "a warehouse more than 30 minutes behind": (
        "source", "UPDATE staff SET last_updated = %s WHERE staff_id = 1", END - timedelta(minutes=1),
        "freshness", "staff: the warehouse is",
    ),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_kind_of_damage_is_caught_by_its_check(built, damage):
    src, wh = built
    where, statement, parameter, check, says = DAMAGE[damage]
    params = (parameter,) if parameter is not None else None
    if where == "pipeline":
        as_the_pipeline(wh, statement, params)
    else:
        (src if where == "source" else wh).execute(statement, params)
    assert says in problems(check, src, wh)


# The next run of the schedule, not on the hour: only the every-run part of reconcile.
NEXT = Run("scheduled__next", END, END + timedelta(minutes=15), prev_success_end=END)

# What a person does to the warehouse by hand (on row ``id``), and what the very next run says.
BY_HAND = {
    "a row deleted": ("DELETE FROM fact_payment WHERE payment_id = %(id)s", "fact_payment: 1 row(s) deleted outside"),
    "a row altered": (
        "UPDATE dim_staff SET email_address = 'someone.else@terrifictotes.com' WHERE staff_id = %(id)s",
        "dim_staff: 1 row(s) updated outside",
    ),
    "a duplicated version": (
        f"INSERT INTO fact_payment ({PAYMENT_COLUMNS}) SELECT {FAKE_VERSION} FROM fact_payment WHERE payment_id = %(id)s",
        "fact_payment: 1 row(s) inserted outside",
    ),
}
# ... what the whole-table comparison still says once the write is accepted but not repaired
# (an altered value at an unchanged version is for the triggers alone to see), and the repair.
UNREPAIRED = {
    "a row deleted": "fact_payment: 1 source row(s) missing (ids {id})",
    "a row altered": None,
    "a duplicated version": "fact_payment: 1 row(s) at a version the source never had (ids {id})",
}


def accept_outside_writes(wh) -> int:
    """What the runbook has a person run once the table is right."""
    return wh.execute(
        "UPDATE etl_outside_write SET accepted_by = 'on-call', accepted_at = now() WHERE accepted_at IS NULL"
    ).rowcount


@pytest.mark.parametrize("change", sorted(BY_HAND))
def test_a_change_by_hand_is_caught_by_the_very_next_run_while_new_rows_arrive(stages, change):
    src, wh = stages.src, stages.wh
    statement, says = BY_HAND[change]
    row_id = 9
    assert not compares_whole_tables(NEXT)
    # The application changes totesys during the next interval, and someone changes the warehouse.
    arrived = simulate(src, at=END + timedelta(minutes=5), seed=3)
    assert arrived.rows > 10
    assert wh.execute(statement, {"id": row_id}).rowcount == 1
    stages.run(NEXT)

    report = reconcile_run(src, wh, "public", NEXT)
    assert len(report.problems) == 1, report.problems  # nothing else: the new rows all arrived
    assert report.problems[0].startswith(says), report.problems
    assert f"ids {row_id})" in report.problems[0]
    assert "by postgres" in report.problems[0]
    new_payments = sorted(arrived.inserted["payment"])
    assert new_payments  # ... and the new rows arrived: a count would have let them hide the loss
    assert wh.execute(
        "SELECT count(DISTINCT payment_id) FROM fact_payment WHERE payment_id = ANY(%s)", (new_payments,)
    ).fetchone() == (len(new_payments),)

    # Accepting the write without repairing the table: the whole-table comparison still sees it.
    assert accept_outside_writes(wh) == 1
    whole = replace(NEXT, reconcile_whole_tables=True)
    report = reconcile_run(src, wh, "public", whole)
    expected = UNREPAIRED[change]
    assert report.problems == ([expected.format(id=row_id)] if expected else [])

    # The repair the runbook gives: a full refresh puts back what the source has; a version the
    # source never had is deleted by hand (and that write accepted too).
    if change == "a duplicated version":
        wh.execute("DELETE FROM fact_payment WHERE payment_id = %s AND last_updated_time = '23:59:59'", (row_id,))
        assert accept_outside_writes(wh) == 1
    else:
        stages.run(replace(NEXT, run_id="manual__repair", full_refresh=True))
    assert reconcile_run(src, wh, "public", whole).problems == []
    email = "SELECT email_address FROM {} WHERE staff_id = %s"
    assert wh.execute(email.format("dim_staff"), (row_id,)).fetchone() == src.execute(email.format("staff"), (row_id,)).fetchone()


def test_the_pipelines_own_loads_are_not_writes_outside_it(stages):
    src, wh = stages.src, stages.wh
    simulate(src, at=END + timedelta(minutes=5), seed=4)
    stages.run(NEXT)
    assert wh.execute("SELECT count(*) FROM etl_outside_write").fetchone()[0] == 0
    assert reconcile_run(src, wh, "public", replace(NEXT, reconcile_whole_tables=True)).problems == []


def test_whole_tables_are_compared_on_the_hour_on_request_and_by_hand_but_not_in_a_backfill():
    at = datetime(2024, 11, 15, 16, 0)
    on_the_hour, quarter_past = Run("r", at - timedelta(minutes=15), at), Run("r", at, at + timedelta(minutes=15))
    assert compares_whole_tables(on_the_hour)
    assert not compares_whole_tables(quarter_past)
    assert compares_whole_tables(replace(quarter_past, reconcile_whole_tables=True))
    assert compares_whole_tables(replace(quarter_past, full_refresh=True))
    assert compares_whole_tables(Run.manual("manual__x", at + timedelta(minutes=7), timedelta(minutes=15)))
    assert not compares_whole_tables(replace(on_the_hour, backfill=True))
    # In a task the interval is pendulum's, in UTC
    assert compares_whole_tables(Run("r", pendulum.datetime(2024, 11, 15, 15, 45), pendulum.datetime(2024, 11, 15, 16)))
    assert not compares_whole_tables(Run("r", pendulum.datetime(2024, 11, 15, 16), pendulum.datetime(2024, 11, 15, 16, 15)))


def test_the_runs_outcome_fails_when_any_task_failed_naming_them_and_those_they_held_back():
    ok = {"ingest.staff": "success", "load.dim_staff": "skipped", "check.freshness": "success", "check.outcome": "running"}
    assert run_outcome(ok, own_task_id="check.outcome").tasks == 3
    drifted = {**ok, "ingest.staff": "failed", "transform.dim_staff": "upstream_failed"}
    with pytest.raises(CheckFailed) as failed:
        run_outcome(drifted, own_task_id="check.outcome")
    assert str(failed.value) == "1 task(s) failed: ingest.staff; held back by them: transform.dim_staff"
    # its own state (failed in an earlier try) is never a reason
    assert run_outcome({**ok, "check.outcome": "failed"}, own_task_id="check.outcome").tasks == 3
