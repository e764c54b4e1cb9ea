"""Helpers shared by the operators (hooks and connections)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


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


def run_interval(context: Any, period: timedelta | None = None) -> tuple[datetime, datetime]:
    """The run's data interval. A manual run triggered without a logical date has none in
    Airflow 3: it then covers the schedule period (``period``, default totes_etl's) that ends
    when it was triggered."""
    from include.config import SCHEDULE_PERIOD

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if end is None:
        end = context["dag_run"].run_after
        start = end - (period or SCHEDULE_PERIOD)
    return start, end


def unwrap(value: Any) -> Any:
    """Context values such as prev_data_interval_end_success are lazy proxies: get the object."""
    return getattr(value, "__wrapped__", value)
