"""What the operators share: the Airflow connections a task uses, and the run from its context."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import AWS_CONN_ID, SOURCE_CONN_ID, WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import Asset, Context

    from include.figures import StageFigures
    from include.lake import Lake
    from include.results import Run


class TotesOperator(BaseOperator):
    """Base of the project's operators, like the providers' AwsBaseOperator: the ids of the
    connections a task may use, and connections made from them in ``execute`` only.

    :param source_conn_id: totesys (postgres)
    :param warehouse_conn_id: the warehouse (postgres)
    :param aws_conn_id: S3 (an ``endpoint_url`` in its extra points at MinIO or moto)
    """

    def __init__(
        self,
        *,
        source_conn_id: str = SOURCE_CONN_ID,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        aws_conn_id: str = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id, self.warehouse_conn_id, self.aws_conn_id = source_conn_id, warehouse_conn_id, aws_conn_id

    def source(self) -> psycopg.Connection:
        return psycopg_connection(self.source_conn_id, read_only=True)

    def warehouse(self, *, read_only: bool = False) -> psycopg.Connection:
        return psycopg_connection(self.warehouse_conn_id, read_only=read_only)

    def lake(self, bucket: str) -> Lake:
        """A bucket through the Amazon provider's S3Hook."""
        return self.lakes(bucket)[0]

    def lakes(self, *buckets: str) -> list[Lake]:
        """Buckets through one S3Hook (one client: creating one costs a good part of a second)."""
        from include.lake import Lake

        hook = s3_hook(self.aws_conn_id)
        return [Lake(hook, bucket) for bucket in buckets]

    def keep_figures(self, schema: str | None, run: Run, figures: StageFigures) -> None:
        """Keep what the stage did in the warehouse's etl_stage_figures (include.figures); a
        ``schema`` of None keeps nothing."""
        if schema is None:
            return
        from include.figures import record_stage

        with self.warehouse() as conn:
            record_stage(conn, schema, run, figures)
        self.emit_metrics(figures)

    @staticmethod
    def emit_metrics(figures: StageFigures | None) -> None:
        """The metrics of committed figures: through Airflow's Stats and the task log (include.metrics)."""
        if figures is None:
            return
        from include.metrics import emit, of_stage

        emit(of_stage(figures))

    def warehouse_asset(self, conn: psycopg.Connection, schema: str, table: str) -> Asset:
        """The Asset of a warehouse table, named from the open connection to it (include.assets):
        no second lookup of the Airflow connection (a Secrets Manager call on MWAA)."""
        from include.assets import WarehouseLocation, warehouse_asset

        return warehouse_asset(WarehouseLocation.of_psycopg(conn), schema, table)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the task read and wrote, for the OpenLineage provider (``lineage`` of each operator)."""
        from include.operators._lineage import operator_lineage

        return operator_lineage(*self.lineage())

    def lineage(self) -> tuple[list[Any], list[Any]]:
        """(input datasets, output datasets) of the rendered task; none by default."""
        return [], []

    def announce(self, context: Context, wrote: Asset | None, **extra: Any) -> None:
        """One event on the task's declared Asset (include.assets) for what it ``wrote``, with the
        run's id and ``extra``; ``None`` when it wrote nothing: then no event at all."""
        if wrote is None:
            # The runner registers an event for every outlet of the task after a success. This is
            # the try's own copy of the task (prepare_for_execution): dropping the outlet here
            # touches neither the DAG nor the next try.
            self.outlets = []
            return
        (outlet,) = self.outlets
        if outlet.uri != wrote.uri:
            self.log.warning(
                "Declared Asset %s, but wrote %s: the event goes to the declared one; set the [totes] "
                "configuration (AIRFLOW__TOTES__*) to where the task writes (include/assets.py)",
                outlet.uri,
                wrote.uri,
            )
        context["outlet_events"][outlet].extra = {"run_id": context["dag_run"].run_id, **extra}


def psycopg_connection(postgres_conn_id: str, *, read_only: bool = False) -> psycopg.Connection:
    """A psycopg 3 connection from the provider's PostgresHook (credentials from the Airflow
    connection), in autocommit mode so that each ``conn.transaction()`` block is one transaction."""
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()
    if not isinstance(conn, psycopg.Connection):
        conn.close()
        raise RuntimeError(
            "totes_etl needs psycopg 3 (the postgres provider uses it with SQLAlchemy 2): pip install 'psycopg[binary]'"
        )
    conn.autocommit = True
    if read_only:
        conn.read_only = True
    return conn


def s3_hook(aws_conn_id: str) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id)


def run_of(context: Any, period: timedelta | None = None) -> Run:
    """The task's run, from its Airflow context. A manual run triggered without a logical date
    has no data interval in Airflow 3: it then covers the schedule period (``period``, default
    totes_etl's) that ends when it was triggered."""
    from include.config import SCHEDULE_PERIOD
    from include.results import Run

    dag_run = context["dag_run"]
    prev = context.get("prev_data_interval_end_success")
    params = context.get("params") or {}
    details = {
        "prev_success_end": getattr(prev, "__wrapped__", prev),  # a lazy proxy in the context
        "full_refresh": bool(params.get("full_refresh", False)),
        "backfill": getattr(dag_run, "run_type", None) == "backfill",  # DagRunType is a str enum
        "reconcile_whole_tables": bool(params.get("reconcile_whole_tables", False)),
    }
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if end is None:
        return Run.manual(dag_run.run_id, dag_run.run_after, period or SCHEDULE_PERIOD, **details)
    return Run(dag_run.run_id, start, end, has_logical_date=dag_run.logical_date is not None, **details)
