"""What the pipeline produces, as Airflow Assets: one per lake table and one per warehouse table.

Each producing task declares the Asset of its table as a plain outlet, so that Airflow knows the
Asset and its producing task before anything ran (the Assets view lists them, a consumer DAG
schedules on them). An outlet is fixed when the DAG is parsed, and parsing may do no I/O: the
bucket, schema and warehouse an Asset names are read from the environment only
(``declared_locations``), in this order:

1. Airflow's ``[totes]`` configuration section, as environment variables
   (``AIRFLOW__TOTES__INGESTION_BUCKET``, ``..._PROCESSED_BUCKET``, ``..._WAREHOUSE_SCHEMA`` and
   ``..._WAREHOUSE``, the last as ``host:port/database``): how MWAA's configuration options
   reach every component (terraform/mwaa sets them from the same values as the secrets);
2. the environment variables Airflow itself reads the variables and the ``warehouse_db``
   connection from (``AIRFLOW_VAR_TOTES_*``, ``AIRFLOW_CONN_WAREHOUSE_DB``): docker-compose,
   the local stack and the tests;
3. the variables' defaults (include/config.py), and for the warehouse its connection id.

At run time the task names what it really wrote from its rendered bucket and its open
connection (the truth), and warns when that differs from the declared Asset: the event still
goes to the declared Asset, so that consumers run, and the log says which setting to correct.

A plain outlet would emit an event on every success; a task whose window held nothing new
drops its outlet for that try (``TotesOperator.announce``), so an empty window emits nothing and
wakes no consumer.

The URIs follow the providers' schemes, which OpenLineage maps to its dataset names:
``s3://<bucket>/<table>`` (amazon provider; the prefix of the table's keys) and
``postgres://<host>:<port>/<database>/<schema>/<table>`` (postgres provider).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Asset

from include.config import VARIABLES, WAREHOUSE_CONN_ID

# A stage's outputs; a stage has one name everywhere (the DAG's task groups use the same words).
INGESTION = "ingestion"
PROCESSED = "processed"
WAREHOUSE = "warehouse"
STAGES = (INGESTION, PROCESSED, WAREHOUSE)


@dataclass(frozen=True)
class WarehouseLocation:
    """Where the warehouse is: host, port, database."""

    host: str
    port: int
    database: str

    def __post_init__(self) -> None:
        if not self.host or not self.database:
            raise ValueError("the warehouse needs a host and a database to name its Assets")

    @classmethod
    def of_psycopg(cls, conn: Any) -> WarehouseLocation:
        """From an open psycopg connection: where PostgresHook connected, as the Airflow connection said."""
        return cls(conn.info.host, conn.info.port or 5432, conn.info.dbname)

    @classmethod
    def parse(cls, text: str) -> WarehouseLocation:
        """``host[:port]/database``, as ``AIRFLOW__TOTES__WAREHOUSE`` gives it."""
        address, sep, database = text.strip().partition("/")
        host, _, port = address.partition(":")
        if not sep or (port and not port.isdigit()):
            raise ValueError(f"[totes] warehouse must be host[:port]/database, not {text!r}")
        return cls(host, int(port or 5432), database)


@dataclass(frozen=True)
class Locations:
    """What the Assets name, as known when the DAG is parsed."""

    ingestion_bucket: str
    processed_bucket: str
    warehouse_schema: str
    warehouse: WarehouseLocation

    def bucket(self, stage: str) -> str:
        return {INGESTION: self.ingestion_bucket, PROCESSED: self.processed_bucket}[stage]


def declared_locations(environ: Mapping[str, str] | None = None) -> Locations:
    """The locations Assets are declared with, from environment variables alone (no I/O)."""
    env = os.environ if environ is None else environ

    def setting(key: str, variable: str) -> str:
        return env.get(f"AIRFLOW__TOTES__{key.upper()}") or env.get(f"AIRFLOW_VAR_{variable.upper()}") or VARIABLES[variable]

    return Locations(
        ingestion_bucket=setting("ingestion_bucket", "totes_ingestion_bucket"),
        processed_bucket=setting("processed_bucket", "totes_processed_bucket"),
        warehouse_schema=setting("warehouse_schema", "totes_warehouse_schema"),
        warehouse=_declared_warehouse(env),
    )


def _declared_warehouse(env: Mapping[str, str]) -> WarehouseLocation:
    if configured := env.get("AIRFLOW__TOTES__WAREHOUSE"):
        return WarehouseLocation.parse(configured)
    if connection := env.get(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"):
        from airflow.sdk import Connection

        # The forms Airflow's environment backend accepts: JSON, or a URI. Parsing only.
        conn = (
            Connection.from_json(connection, conn_id=WAREHOUSE_CONN_ID)
            if connection.lstrip().startswith("{")
            else Connection.from_uri(connection, conn_id=WAREHOUSE_CONN_ID)
        )
        if conn.host and conn.schema:
            return WarehouseLocation(conn.host, conn.port or 5432, conn.schema)
    # Not known at parse time (the connection lives in a secrets backend or the metadata
    # database): the connection id stands for the host, until [totes] warehouse is set.
    return WarehouseLocation(WAREHOUSE_CONN_ID, 5432, "warehouse")


def lake_asset(bucket: str, table: str) -> Asset:
    """A lake table: the keys under ``<table>/`` of the bucket (README, "Key layout"); the amazon
    provider normalises an S3 URI without its trailing slash."""
    return Asset(uri=f"s3://{bucket}/{table}")


def warehouse_asset(location: WarehouseLocation, schema: str, table: str) -> Asset:
    return Asset(uri=f"postgres://{location.host}:{location.port}/{location.database}/{schema}/{table}")


def declared(stage: str, table: str, locations: Locations | None = None) -> Asset:
    """The Asset a task of ``stage`` declares for ``table`` (static: safe at parse time)."""
    where = locations or declared_locations()
    if stage == WAREHOUSE:
        return warehouse_asset(where.warehouse, where.warehouse_schema, table)
    if stage in (INGESTION, PROCESSED):
        return lake_asset(where.bucket(stage), table)
    raise ValueError(f"unknown stage {stage!r}: one of {STAGES}")
