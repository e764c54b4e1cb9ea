"""totes_fx: the day's exchange rates of the warehouse currencies, base GBP -> S3 -> fx_rate.

Every day at 06:00 UTC, for the day the data interval starts on (the run of the 16th fetches
the 15th):

1. ``ensure_warehouse_schema`` creates whatever of the warehouse is missing (fx_rate and the
   sales_in_gbp view included; never drops);
2. ``ingest_fx_rates`` asks the rates API (connection ``fx_api``) for the rates of every
   dim_currency currency against GBP and keeps the answer as it came in the ingestion bucket;
   an answer that cannot be loaded is quarantined and the task fails (the e-mail goes out);
3. ``load_fx_rates`` upserts the day's rates into fx_rate, one row per currency (GBP at 1).

Backfill days with ``airflow backfill create --dag-id totes_fx --from-date ... --to-date ...``.
See docs/fx_rates.md; the logic lives in include/fx.py and include/operators/fx.py.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from include.alerts import task_defaults
from include.config import FX_DAG_ID, FX_SCHEDULE_CRON, variable_template
from include.operators import FxRatesToS3Operator, FxRatesToWarehouseOperator, WarehouseSchemaOperator

INGESTION_BUCKET = variable_template("totes_ingestion_bucket")
WAREHOUSE_SCHEMA = variable_template("totes_warehouse_schema")

with DAG(
    dag_id=FX_DAG_ID,
    description="Daily ECB exchange rates of the warehouse currencies against GBP",
    schedule=CronDataIntervalTimetable(FX_SCHEDULE_CRON, timezone="UTC"),
    start_date=pendulum.datetime(2024, 11, 1, tz="UTC"),
    catchup=False,  # past days are fetched on purpose: airflow backfill create (docs/fx_rates.md)
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=task_defaults(
        retry_delay=timedelta(minutes=1), max_retry_delay=timedelta(minutes=15), execution_timeout=timedelta(minutes=10)
    ),
    tags=["fx", "warehouse", "http"],
    doc_md=__doc__,
    # Templates render to Python objects: the load receives the ingest's result as a dict.
    render_template_as_native_obj=True,
) as dag:
    # keep_figures=False: the run figures are totes_etl's, and this DAG's run ids can equal its own
    ensure_schema = WarehouseSchemaOperator(task_id="ensure_warehouse_schema", schema=WAREHOUSE_SCHEMA, keep_figures=False)
    ingest = FxRatesToS3Operator(task_id="ingest_fx_rates", bucket=INGESTION_BUCKET, schema=WAREHOUSE_SCHEMA)
    load = FxRatesToWarehouseOperator(
        task_id="load_fx_rates", ingested=ingest.output, bucket=INGESTION_BUCKET, schema=WAREHOUSE_SCHEMA
    )
    ensure_schema >> ingest >> load
