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
    merge, in a single transaction (include.load).

    Also records in ``etl_quarantine`` the rows the transform quarantined, and stores the rows a
    fact table refuses (a missing dimension row) under the processed bucket's quarantine prefix.
    Runs when its own transform has finished, whatever happened to the loads of the dimensions
    it references ("other tables keep flowing"; a fact whose dimension row is missing waits in
    the quarantine and loads on a later run). Skips when its transform produced no result.

    :param table: a warehouse table declared in include.registry
    :param transformed: the transform task's XCom result (templated; None when it has none)
    """

    template_fields: Sequence[str] = ("transformed", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(
        self,
        *,
        table: str,
        transformed: Mapping[str, Any] | str | None,
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

        from airflow.sdk.exceptions import AirflowSkipException

        from include.lake import Lake, quarantine_prefix, read_parquet_batches
        from include.load import load_batches, log_load, quarantine_rows, rows_with_reasons
        from include.operators._common import run_interval
        from include.registry import WAREHOUSE

        table = WAREHOUSE[self.table]
        if not isinstance(self.transformed, Mapping):
            raise AirflowSkipException(f"transform.{table.name} produced no result (it failed or was skipped): nothing to load")
        result: dict[str, Any] = {"table": table.name, "staged": 0, "written": 0, "rejected": 0}
        key, rejects_key = self.transformed.get("manifest_key"), self.transformed.get("quarantine_key")
        if not key and not rejects_key:
            self.log.info("Nothing to load into %s", table.name)
            return result
        lake = Lake(s3_hook(self.aws_conn_id), self.bucket)
        run_id = context["dag_run"].run_id
        quarantine = quarantine_prefix(table.name, run_interval(context)[1], run_id)

        def store_refused(rows: list[tuple[dict, str]]) -> str:
            import json

            refused_key = f"{quarantine}load-rejects.jsonl"
            lines = (json.dumps({"reason": reason, "row": row}, default=str) for row, reason in rows)
            lake.put_bytes("\n".join(lines).encode() + b"\n", refused_key)
            self.log.warning(
                "%s refused %d row(s) (missing dimension rows): s3://%s/%s", table.name, len(rows), lake.bucket, refused_key
            )
            return refused_key

        with tempfile.TemporaryDirectory() as tmp, psycopg_connection(self.postgres_conn_id) as conn:
            if rejects_key:
                import pyarrow.parquet as pq

                path = f"{tmp}/rejects.parquet"
                lake.download(rejects_key, path)
                with conn.transaction():
                    recorded = quarantine_rows(
                        conn,
                        self.schema,
                        table,
                        stage="transform",
                        rows=rows_with_reasons(pq.read_table(path)),
                        run_id=run_id,
                        object_key=rejects_key,
                    )
                self.log.warning("%s: %d row(s) quarantined by the transform recorded in etl_quarantine", table.name, recorded)
                result["rejected"] += recorded
            if not key:
                with conn.transaction():
                    log_load(
                        conn,
                        self.schema,
                        table,
                        run_id=run_id,
                        manifest_key=rejects_key,
                        source_max=self.transformed.get("source_max"),
                    )
            if key:
                manifest = lake.read_manifest(key)

                def batches():
                    for path in lake.iter_parts(manifest, tmp):
                        yield from read_parquet_batches(path)

                loaded = load_batches(
                    conn,
                    self.schema,
                    table,
                    batches(),
                    run_id=run_id,
                    manifest_key=key,
                    source_max=manifest.source_max,
                    on_rejects=store_refused,
                )
                self.log.info(
                    "%s: staged %d rows (+%d waiting in quarantine), wrote %d, refused %d",
                    table.name, loaded.staged, loaded.replayed, loaded.written, loaded.rejected,
                )  # fmt: skip
                result.update(staged=loaded.staged, written=loaded.written, rejected=result["rejected"] + loaded.rejected)
        return result
