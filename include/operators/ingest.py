"""Ingest one totesys table into the ingestion bucket."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import AWS_CONN_ID, BATCH_ROWS, LOOKBACK, SOURCE_CONN_ID
from include.operators._common import psycopg_connection, run_interval, s3_hook, unwrap

if TYPE_CHECKING:
    from airflow.sdk import Context


class TotesysToS3Operator(BaseOperator):
    """Extract the rows of one totesys table whose last_updated falls in the run's window and
    write them as parquet parts plus a manifest (README, "Key layout" and "Window and lookback").

    Checks the table against its data contract first. Streams with COPY in batches of
    ``batch_rows`` (memory does not grow with the table). Pushes only the manifest key, the row
    count and the window to XCom. Writes nothing when the window holds no rows.

    :param table: a source table declared in include.registry
    :param bucket: the ingestion bucket (templated)
    """

    template_fields: Sequence[str] = ("bucket",)
    ui_color = "#d9ead3"

    def __init__(
        self,
        *,
        table: str,
        bucket: str,
        postgres_conn_id: str = SOURCE_CONN_ID,
        aws_conn_id: str = AWS_CONN_ID,
        lookback: timedelta = LOOKBACK,
        batch_rows: int = BATCH_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.bucket = bucket
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id
        self.lookback = lookback
        self.batch_rows = batch_rows

    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile

        import pyarrow.compute as pc
        from airflow.sdk.exceptions import AirflowFailException

        from include.extract import ContractViolation, check_contract, extract_batches, source_schema
        from include.lake import (
            Lake,
            Manifest,
            ingest_window,
            quarantine_prefix,
            run_prefix,
            schema_description,
            write_parquet_parts,
        )
        from include.registry import SOURCE

        table = SOURCE[self.table]
        lake = Lake(s3_hook(self.aws_conn_id), self.bucket)
        dag_run = context["dag_run"]
        prev_success_end = unwrap(context.get("prev_data_interval_end_success"))
        interval_start, interval_end = run_interval(context)
        window = ingest_window(
            interval_start=interval_start,
            interval_end=interval_end,
            prev_success_end=prev_success_end,
            is_first_run=prev_success_end is None and dag_run.logical_date is not None,
            table_in_lake=lake.has_prefix(f"{table.name}/"),
            full_refresh=bool(context["params"].get("full_refresh", False)),
            lookback=self.lookback,
        )
        prefix = run_prefix(table.name, interval_end, dag_run.run_id)
        self.log.info("Extracting %s (%s) %s into s3://%s/%s", table.name, window.mode, window.as_dict(), self.bucket, prefix)

        rows = 0
        max_updated = None

        def counted(batches):
            nonlocal rows, max_updated
            for batch in batches:
                rows += batch.num_rows
                top = pc.max(batch.column(table.cursor_column)).as_py()
                max_updated = top if max_updated is None or top > max_updated else max_updated
                yield batch

        schema = source_schema(table)
        with psycopg_connection(self.postgres_conn_id, read_only=True) as conn, tempfile.TemporaryDirectory() as tmp:
            try:
                check_contract(conn, table)
            except ContractViolation as drift:
                where = quarantine_prefix(table.name, interval_end, dag_run.run_id)
                key = self._quarantine_drift(conn, lake, where, drift, window, tmp)
                # Retrying cannot help: a person must update the contract or the source.
                raise AirflowFailException(
                    f"{drift}. The window's rows, as the database returns them, are quarantined at "
                    f"s3://{self.bucket}/{key}; nothing of {table.name} moves until include/registry.py or "
                    "the source is fixed (README, 'When things go wrong')."
                ) from drift
            with conn.transaction():
                parts = write_parquet_parts(
                    lake, prefix, counted(extract_batches(conn, table, window, self.batch_rows)), schema, tmp
                )

        result: dict[str, Any] = {
            "table": table.name,
            "rows": rows,
            "mode": window.mode,
            "window": window.as_dict(),
            "manifest_key": None,
        }
        if not parts:
            lake.discard(prefix)  # an earlier attempt of this run may have left parts
            self.log.info("No rows changed in %s: nothing written", table.name)
            return result
        manifest = Manifest(
            table=table.name,
            run_id=dag_run.run_id,
            rows=rows,
            parts=parts,
            columns=schema_description(schema),
            window=window.as_dict(),
            mode=window.mode,
            max_last_updated=max_updated.isoformat() if max_updated else None,
        )
        result["manifest_key"] = lake.commit(prefix, manifest)
        self.log.info("Wrote %d rows of %s in %d part(s)", rows, table.name, len(parts))
        return result

    def _quarantine_drift(self, conn, lake, prefix: str, drift, window, workdir: str) -> str:
        """Copy the window's rows of a drifted table, every live column as text, to the
        quarantine prefix (gzipped CSV with a header), with the reason beside it."""
        import gzip
        import json

        from psycopg import sql

        from include.extract import live_columns

        live = [c.name for c in live_columns(conn, drift.table)]
        cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in live)
        query = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(drift.table))
        params = None
        if window.start is not None and "last_updated" in live:
            query += sql.SQL(" WHERE {} >= %(start)s").format(sql.Identifier("last_updated"))
            params = {"start": window.start}
        path = f"{workdir}/rows.csv.gz"
        copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(query)
        with conn.transaction(), conn.cursor() as cur, gzip.open(path, "wb") as out, cur.copy(copy_sql, params) as copy:
            for chunk in copy:
                out.write(chunk)
        key = f"{prefix}rows.csv.gz"
        lake.put_file(path, key)
        reason = {
            "table": drift.table,
            "problems": drift.problems,
            "live_columns": live,
            "window": window.as_dict(),
            "rows_key": key,
        }
        lake.put_bytes(json.dumps(reason, indent=1).encode(), f"{prefix}reason.json")
        self.log.error("Schema drift in %s: %s", drift.table, "; ".join(drift.problems))
        return key
