"""totes_etl: totesys -> S3 ingestion (parquet) -> S3 processed (star schema parquet) -> warehouse.

Every 15 minutes, for the data interval that just ended:

1. ``ensure_warehouse_schema`` creates whatever of the warehouse is missing (never drops);
2. ``ingest.<table>`` extracts each totesys table's changed rows into the ingestion bucket;
3. ``transform.<table>`` builds each dimension and fact from the ingests it reads;
4. ``load.<table>`` merges it into the warehouse; facts load after the dimensions they reference;
5. ``check.*`` reconciles the warehouse with totesys, checks its freshness and reports what was
   quarantined; ``check.outcome`` fails the run when any task failed.

Trigger with ``{"full_refresh": true}`` to re-read every table in full (README, runbook).
The tables and their wiring come from include/registry.py; the logic lives in include/.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, TriggerRule

from include.alerts import task_defaults
from include.config import DAG_ID, SCHEDULE_CRON, variable_template
from include.deadline import DEADLINE_PARAM, DEFAULT_MINUTES, run_deadline
from include.operators import (
    IngestionToProcessedOperator,
    ProcessedToWarehouseOperator,
    QuarantineReportOperator,
    RunOutcomeOperator,
    TotesysToIngestionOperator,
    WarehouseCheckOperator,
    WarehouseSchemaOperator,
)
from include.registry import CALENDAR, SOURCE_TABLES, WAREHOUSE_TABLES

INGESTION_BUCKET = variable_template("totes_ingestion_bucket")
PROCESSED_BUCKET = variable_template("totes_processed_bucket")
WAREHOUSE_SCHEMA = variable_template("totes_warehouse_schema")

with DAG(
    dag_id=DAG_ID,
    description="totesys to the star-schema warehouse, every 15 minutes",
    schedule=CronDataIntervalTimetable(SCHEDULE_CRON, timezone="UTC"),
    # totesys holds changes from 2022-11-03: a backfill of any real interval does real work
    # (Airflow makes no task instances before start_date); catchup stays off.
    start_date=pendulum.datetime(2022, 11, 1, tz="UTC"),
    catchup=False,  # a run after a gap reads everything since the last success (include/ingest.py)
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    # The 30-minute promise: a mail when a run is unfinished 30 minutes after its interval's end
    # (include/deadline.py; the deadline_minutes param).
    deadline=run_deadline(),
    default_args=task_defaults(
        retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=20)
    ),
    params={
        "full_refresh": Param(False, type="boolean", description="extract every table in full"),
        DEADLINE_PARAM: Param(
            DEFAULT_MINUTES,
            type="number",
            exclusiveMinimum=0,
            description="a mail when the run is unfinished this many minutes after its interval's end",
        ),
        "reconcile_whole_tables": Param(
            False, type="boolean", description="check.reconcile compares whole tables id by id (it does on the hour anyway)"
        ),
    },
    tags=["totesys", "warehouse", "etl"],
    doc_md=__doc__,
    # Templates render to Python objects: a load receives its transform's result as a dict.
    render_template_as_native_obj=True,
) as dag:
    ensure_schema = WarehouseSchemaOperator(task_id="ensure_warehouse_schema", schema=WAREHOUSE_SCHEMA)

    with TaskGroup("ingest", tooltip="totesys -> ingestion bucket, one task per source table"):
        ingest = {
            t.name: TotesysToIngestionOperator(
                task_id=t.name, table=t.name, bucket=INGESTION_BUCKET, figures_schema=WAREHOUSE_SCHEMA
            )
            for t in SOURCE_TABLES
        }

    def ingested_by(w):
        """What a transform reads: its ingests' results. The calendar pulls them by template (a
        failed ingest's is None) and runs once one succeeded, so that a drifted sales_order does
        not hold back the payments' and purchase orders' facts by their dates (registry.waits_for)."""
        if w.kind == "calendar":
            return {s: f"{{{{ ti.xcom_pull(task_ids='ingest.{s}') }}}}" for s in w.sources}
        return {s: ingest[s].output for s in w.sources}

    with TaskGroup("transform", tooltip="ingestion -> processed bucket, one task per warehouse table"):
        transform = {
            w.name: IngestionToProcessedOperator(
                task_id=w.name,
                table=w.name,
                ingested=ingested_by(w),
                ingestion_bucket=INGESTION_BUCKET,
                processed_bucket=PROCESSED_BUCKET,
                figures_schema=WAREHOUSE_SCHEMA,
                trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS if w.kind == "calendar" else TriggerRule.ALL_SUCCESS,
            )
            for w in WAREHOUSE_TABLES
        }
        [ingest[s] for s in CALENDAR.sources] >> transform[CALENDAR.name]

    with TaskGroup("load", tooltip="processed bucket -> warehouse; dimensions before facts"):
        load = {
            w.name: ProcessedToWarehouseOperator(
                task_id=w.name,
                table=w.name,
                # Pulled by template rather than passed as an XComArg, so that the load also runs
                # (and skips) when its transform failed.
                transformed=f"{{{{ ti.xcom_pull(task_ids='transform.{w.name}') }}}}",
                bucket=PROCESSED_BUCKET,
                schema=WAREHOUSE_SCHEMA,
                # A dimension's load ends "skipped" (not "upstream_failed") when its transform could
                # not run (schema drift upstream), so that facts still load: the other tables keep
                # flowing, and a fact whose dimension row is missing waits in the quarantine
                # (include/load.py). A fact waits for a dimension load that really failed.
                trigger_rule=TriggerRule.NONE_FAILED if w.is_fact else TriggerRule.ALL_DONE,
            )
            for w in WAREHOUSE_TABLES
        }

    with TaskGroup("check", tooltip="reconciliation, freshness, quarantine report"):
        reconcile = WarehouseCheckOperator(task_id="reconcile", check="reconcile", schema=WAREHOUSE_SCHEMA)
        # Freshness and the quarantine report also run after a failed load: that is when they matter.
        freshness = WarehouseCheckOperator(
            task_id="freshness", check="freshness", schema=WAREHOUSE_SCHEMA, trigger_rule=TriggerRule.ALL_DONE
        )
        quarantine = QuarantineReportOperator(task_id="quarantine", schema=WAREHOUSE_SCHEMA, trigger_rule=TriggerRule.ALL_DONE)
        # The run's state is its last tasks': this one fails it when any task failed.
        outcome = RunOutcomeOperator(task_id="outcome")

    ensure_schema >> list(ingest.values())
    for w in WAREHOUSE_TABLES:
        [ensure_schema, transform[w.name]] >> load[w.name]
        for referenced in w.references:
            load[referenced] >> load[w.name]
    list(load.values()) >> reconcile
    list(load.values()) >> freshness
    list(load.values()) >> quarantine
    [t for t in dag.tasks if t is not outcome] >> outcome
