"""File feeds: JSON documents a partner drops into a bucket of its own -> S3 -> the warehouse.

One DAG per feed declared in include.registry.FILE_FEEDS (today ``totes_feed_sales_targets``:
the sales team's monthly targets -> ``sales_target``, and the ``sales_vs_target`` view). A run:

1. ``ensure_warehouse_schema`` creates whatever of the warehouse is missing;
2. ``ingest`` lists the feed's prefix (variables ``totes_targets_bucket`` and
   ``totes_targets_prefix``), takes every object not taken before at its ETag, keeps it in the
   ingestion bucket (the file unchanged and its records as parquet) or quarantines it whole
   with its reason and a mail;
3. ``load`` merges the kept files into the feed's table: the latest document of a month
   replaces the month's rows; a file loads once.

When runs start: on the sweep's clock (every 15 minutes, listing the prefix, so that a missed
notification loses nothing) and, where the bucket's S3 event notifications go to an SQS queue
named in ``[totes] <feed>_queue_url`` (``AIRFLOW__TOTES__SALES_TARGETS_QUEUE_URL``), as soon as a
file lands: an AssetWatcher on the amazon provider's SqsSensorTrigger, run by the triggerer.
A notification only wakes the DAG; what a run takes is decided by the listing and the ledger, so
a duplicate or lost notification changes nothing. See the README, "File feeds".
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from include.alerts import task_defaults
from include.config import variable_template
from include.feeds import feed_schedule
from include.operators import FileFeedToIngestionOperator, FileFeedToWarehouseOperator, WarehouseSchemaOperator
from include.registry import FILE_FEEDS

INGESTION_BUCKET = variable_template("totes_ingestion_bucket")
WAREHOUSE_SCHEMA = variable_template("totes_warehouse_schema")

for feed in FILE_FEEDS:
    with DAG(
        dag_id=feed.dag_id,
        description=f"The {feed.name} file feed: picked up as files land, and swept every 15 minutes",
        schedule=feed_schedule(feed),
        start_date=pendulum.datetime(2024, 11, 1, tz="UTC"),
        catchup=False,  # a sweep takes everything not taken yet: past sweeps would find nothing more
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=30),
        default_args=task_defaults(
            retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=10)
        ),
        tags=["files", feed.name, "warehouse"],
        doc_md=__doc__,
        render_template_as_native_obj=True,  # the load receives the pick-up's result as a dict
    ) as dag:
        # keep_figures=False: the run figures are totes_etl's, and this DAG's run ids can equal its own
        ensure_schema = WarehouseSchemaOperator(task_id="ensure_warehouse_schema", schema=WAREHOUSE_SCHEMA, keep_figures=False)
        ingest = FileFeedToIngestionOperator(
            task_id="ingest",
            feed=feed.name,
            source_bucket=variable_template(feed.bucket_variable),
            source_prefix=variable_template(feed.prefix_variable),
            bucket=INGESTION_BUCKET,
            schema=WAREHOUSE_SCHEMA,
        )
        load = FileFeedToWarehouseOperator(
            task_id="load", feed=feed.name, picked=ingest.output, bucket=INGESTION_BUCKET, schema=WAREHOUSE_SCHEMA
        )
        ensure_schema >> ingest >> load
    globals()[feed.dag_id] = dag
