"""Ingest one totesys table into the ingestion bucket (include.ingest)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.assets import INGESTION, declared, lake_asset
from include.config import BATCH_ROWS, LOOKBACK
from include.operators._common import TotesOperator, run_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class TotesysToIngestionOperator(TotesOperator):
    """Extract the rows of one totesys table whose last_updated falls in the run's window and
    write them as parquet parts plus a manifest (README, "Key layout" and "Window and lookback").

    Checks the table against its data contract first: on schema drift the window's rows are
    quarantined and the task fails at once (no retry can help). Streams with COPY in batches of
    ``batch_rows``. Pushes the manifest key, the row count and the window. Writes nothing when
    the window holds no rows.

    :param table: a source table declared in include.registry
    :param bucket: the ingestion bucket (templated)
    :param figures_schema: the warehouse schema that keeps the run's figures (templated; None: none kept)
    """

    template_fields: Sequence[str] = ("bucket", "figures_schema")
    ui_color = "#d9ead3"

    def __init__(
        self,
        *,
        table: str,
        bucket: str,
        figures_schema: str | None = None,
        lookback: timedelta = LOOKBACK,
        batch_rows: int = BATCH_ROWS,
        **kwargs: Any,
    ):
        super().__init__(outlets=[declared(INGESTION, table)], **kwargs)
        self.table, self.bucket, self.figures_schema = table, bucket, figures_schema
        self.lookback, self.batch_rows = lookback, batch_rows

    def execute(self, context: Context) -> dict[str, Any]:
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from include.figures import of_ingest
        from include.ingest import SchemaDrift, ingest_table
        from include.registry import SOURCE

        options = {"lookback": self.lookback, "batch_rows": self.batch_rows}
        run, started = run_of(context), time.monotonic()
        with self.source() as conn:
            try:
                result = ingest_table(conn, self.lake(self.bucket), SOURCE[self.table], run, **options)
            except SchemaDrift as drift:
                raise AirflowFailException(str(drift)) from drift
        self.keep_figures(self.figures_schema, run, of_ingest(result, time.monotonic() - started))
        self.announce(
            context,
            lake_asset(self.bucket, self.table) if result.rows else None,
            rows=result.rows,
            window=result.window,
            mode=result.mode,
            manifest=result.manifest_key,
        )
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import column_lineage, identity, postgres_dataset, s3_dataset, schema_facet
        from include.registry import SOURCE

        columns = SOURCE[self.table].columns
        source = postgres_dataset(self.source_conn_id, "public", self.table, schema=schema_facet(columns))
        lineage = column_lineage(identity(self.table, [c.name for c in columns]), {self.table: source})
        return [source], [s3_dataset(self.bucket, self.table, schema=schema_facet(columns), columnLineage=lineage)]
