"""What the pipeline produces, as Airflow Assets: one per lake table and one per warehouse table.

Each producing task declares, at parse time, an ``AssetAlias`` named after its stage and table
(``totes.warehouse.fact_sales_order``); when it has written rows it attaches to that alias the
concrete Asset of what it wrote, with the run's figures as the event's extra. Why an alias and
not a plain Asset outlet:

- the concrete URI names the bucket, the warehouse and the schema, which are Airflow variables
  and a connection, known only at run time (reading them at parse time would be I/O);
- a plain outlet emits an event on every success, also for an empty window; an alias emits only
  what the task adds, so a table with nothing new emits nothing and wakes no consumer.

Consumers schedule on the alias (``schedule=warehouse_alias("fact_sales_order")``): Airflow
queues them on every event added through it (README, "Assets and lineage").

The URIs follow the providers' schemes, which OpenLineage maps to its dataset names:
``s3://<bucket>/<table>`` (amazon provider; the prefix of the table's keys) and ``postgres://<host>:<port>/<database>/<schema>/<table>``
(postgres provider).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

# A stage's outputs; a stage has one name everywhere (the DAG's task groups use the same words).
INGESTION = "ingestion"
PROCESSED = "processed"
WAREHOUSE = "warehouse"
STAGES = (INGESTION, PROCESSED, WAREHOUSE)


def alias(stage: str, table: str) -> AssetAlias:
    """The alias a task of ``stage`` announces ``table`` through (static: safe at parse time)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {STAGES}")
    return AssetAlias(name=f"totes.{stage}.{table}")


def warehouse_alias(table: str) -> AssetAlias:
    return alias(WAREHOUSE, table)


def lake_asset(bucket: str, table: str) -> Asset:
    """A lake table: the keys under ``<table>/`` of the bucket (README, "Key layout"); the amazon
    provider normalises an S3 URI without its trailing slash."""
    return Asset(uri=f"s3://{bucket}/{table}")


def warehouse_asset(location: WarehouseLocation, schema: str, table: str) -> Asset:
    return Asset(uri=f"postgres://{location.host}:{location.port}/{location.database}/{schema}/{table}")


class WarehouseLocation:
    """Where the warehouse is: host, port, database."""

    def __init__(self, host: str, port: int | None, database: str) -> None:
        if not host or not database:
            raise ValueError("the warehouse connection needs a host and a database to name its Assets")
        self.host, self.port, self.database = host, port or 5432, database

    @classmethod
    def of_psycopg(cls, conn: Any) -> WarehouseLocation:
        """From an open psycopg connection: where PostgresHook connected, as the Airflow connection said."""
        return cls(conn.info.host, conn.info.port, conn.info.dbname)


def announce(context: Any, outlet: AssetAlias, asset: Asset, **extra: Any) -> None:
    """Emit one event for ``asset`` through the task's alias ``outlet``, with ``extra`` (JSON values)."""
    context["outlet_events"][outlet].add(asset, extra=extra)
