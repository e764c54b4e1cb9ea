"""Transform what one run ingested into one warehouse table, in the processed bucket (include.transform)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include.assets import PROCESSED, declared, lake_asset
from include.operators._common import TotesOperator, run_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class IngestionToProcessedOperator(TotesOperator):
    """Build one warehouse table (a dimension, a fact or the calendar) from the ingested rows of
    its sources, as parquet parts plus a manifest in the processed bucket; rows that cannot
    become warehouse rows are quarantined with their reason. Reads only the manifests its
    upstream ingests pushed. Writes nothing when its inputs are empty.

    :param table: a warehouse table declared in include.registry
    :param ingested: source table -> that ingest's XCom result (XComArgs; templated)
    :param ingestion_bucket: templated
    :param processed_bucket: templated
    :param figures_schema: the warehouse schema that keeps the run's figures (templated; None: none kept)
    """

    template_fields: Sequence[str] = ("ingested", "ingestion_bucket", "processed_bucket", "figures_schema")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        table: str,
        ingested: Mapping[str, Any],
        ingestion_bucket: str,
        processed_bucket: str,
        figures_schema: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(outlets=[declared(PROCESSED, table)], **kwargs)
        self.table, self.ingested, self.figures_schema = table, ingested, figures_schema
        self.ingestion_bucket, self.processed_bucket = ingestion_bucket, processed_bucket

    def execute(self, context: Context) -> dict[str, Any]:
        import time

        from include.figures import of_transform
        from include.registry import WAREHOUSE
        from include.results import IngestResult
        from include.transform import transform_table

        ingested = {source: IngestResult.from_xcom(value) for source, value in self.ingested.items()}
        ingestion, processed = self.lakes(self.ingestion_bucket, self.processed_bucket)
        run, started = run_of(context), time.monotonic()
        result = transform_table(ingestion, processed, WAREHOUSE[self.table], ingested, run)
        self.keep_figures(self.figures_schema, run, of_transform(result, time.monotonic() - started))
        wrote = lake_asset(self.processed_bucket, self.table) if result.rows else None
        self.announce(context, wrote, rows=result.rows, rejected=result.rejected, manifest=result.manifest_key)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.lineage import warehouse_column_inputs
        from include.operators._lineage import column_lineage, s3_dataset, schema_facet
        from include.registry import SOURCE, WAREHOUSE

        table = WAREHOUSE[self.table]
        ingested = {s: s3_dataset(self.ingestion_bucket, s, schema=schema_facet(SOURCE[s].columns)) for s in table.sources}
        written = [c for c in table.columns if not c.serial]
        lineage = column_lineage(warehouse_column_inputs(table), ingested)
        return list(ingested.values()), [
            s3_dataset(self.processed_bucket, self.table, schema=schema_facet(written), columnLineage=lineage)
        ]
