"""totes_reports: the warehouse's materialized reports, refreshed when what they read changes.

No clock: Airflow queues a run whenever a table a report reads has an Asset event, that is, when
a ``totes_etl`` load or the ``totes_fx`` load wrote rows into it (include/assets.py). Events
that arrive while a run is going are taken by the next one.

1. ``ensure_warehouse_schema`` creates whatever of the warehouse is missing (never drops);
2. ``refresh.<view>`` recomputes each materialized view of include/registry.py in one
   transaction (readers keep the old rows until it commits) and announces it as an Asset.
"""

from __future__ import annotations

from datetime import timedelta
from functools import reduce
from operator import or_

import pendulum
from airflow.sdk import DAG, TaskGroup

from include.alerts import task_defaults
from include.assets import WAREHOUSE, declared
from include.config import REPORTS_DAG_ID, variable_template
from include.operators import WarehouseReportOperator, WarehouseSchemaOperator
from include.registry import MATERIALIZED_VIEWS, tables_under

WAREHOUSE_SCHEMA = variable_template("totes_warehouse_schema")
READS = sorted({table for v in MATERIALIZED_VIEWS for table in tables_under(v)})

with DAG(
    dag_id=REPORTS_DAG_ID,
    description="Materialized reports, refreshed when the tables they read change",
    schedule=reduce(or_, (declared(WAREHOUSE, table) for table in READS)),
    start_date=pendulum.datetime(2024, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=task_defaults(
        retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=10)
    ),
    tags=["warehouse", "reports", "assets"],
    doc_md=__doc__,
) as dag:
    ensure_schema = WarehouseSchemaOperator(task_id="ensure_warehouse_schema", schema=WAREHOUSE_SCHEMA)
    with TaskGroup("refresh", tooltip="one task per materialized view"):
        refresh = [WarehouseReportOperator(task_id=v.name, report=v.name, schema=WAREHOUSE_SCHEMA) for v in MATERIALIZED_VIEWS]
    ensure_schema >> refresh
