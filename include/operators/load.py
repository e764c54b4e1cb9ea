"""Create the warehouse schema, and load processed parquet into the warehouse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import AWS_CONN_ID, WAREHOUSE_CONN_ID
from include.operators._common import psycopg_connection, s3_hook

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseSchemaOperator(BaseOperator):
    """Make sure the warehouse schema exists: create what is missing, never drop or alter.

    :param schema: the warehouse schema (templated), e.g. ``public`` or ``project_team_3``
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#fff2cc"

    def __init__(self, *, schema: str, postgres_conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Context) -> list[str]:
        from include.ddl import ensure_warehouse_schema

        with psycopg_connection(self.postgres_conn_id) as conn:
            created = ensure_warehouse_schema(conn, self.schema)
        self.log.info("Warehouse schema %s: %s", self.schema, f"created {created}" if created else "complete")
        return created


class S3ToWarehouseOperator(BaseOperator):
    """Load one warehouse table from the processed bucket: COPY into a staging table and one
    merge, in a single transaction (include.load). Does nothing when the transform wrote nothing.

    :param table: a warehouse table declared in include.registry
    :param transformed: the transform task's XCom result (an XComArg; templated)
    """

    template_fields: Sequence[str] = ("transformed", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(
        self,
        *,
        table: str,
        transformed: Mapping[str, Any],
        bucket: str,
        schema: str,
        postgres_conn_id: str = WAREHOUSE_CONN_ID,
        aws_conn_id: str = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.transformed = transformed
        self.bucket = bucket
        self.schema = schema
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile

        from include.lake import Lake, read_parquet_batches
        from include.load import load_batches
        from include.registry import WAREHOUSE

        table = WAREHOUSE[self.table]
        key = (self.transformed or {}).get("manifest_key")
        if not key:
            self.log.info("Nothing to load into %s", table.name)
            return {"table": table.name, "staged": 0, "written": 0}
        lake = Lake(s3_hook(self.aws_conn_id), self.bucket)
        manifest = lake.read_manifest(key)

        with tempfile.TemporaryDirectory() as tmp, psycopg_connection(self.postgres_conn_id) as conn:

            def batches():
                for path in lake.iter_parts(manifest, tmp):
                    yield from read_parquet_batches(path)

            result = load_batches(
                conn,
                self.schema,
                table,
                batches(),
                run_id=context["dag_run"].run_id,
                manifest_key=key,
                source_max_last_updated=manifest.max_last_updated,
            )
        self.log.info("%s: staged %d rows, wrote %d", table.name, result.staged, result.written)
        return {"table": table.name, "staged": result.staged, "written": result.written}
