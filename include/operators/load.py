"""Create the warehouse schema, and load processed parquet into the warehouse (include.ddl, include.load)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include import assets
from include.operators._common import TotesOperator, run_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseSchemaOperator(TotesOperator):
    """Make sure the warehouse schema exists: create what is missing, never drop or alter; and
    delete the run figures older than their retention, and those of earlier tries of this run
    (include.figures).

    :param schema: the warehouse schema (templated), e.g. ``public`` or ``project_team_3``
    :param keep_figures: whether this DAG's runs own the run figures (totes_etl's do). Another
        DAG's run ids can equal totes_etl's (``scheduled__<logical date>``), so its schema task
        must not forget "earlier tries" of its run id: they would be totes_etl's figures.
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#fff2cc"

    def __init__(self, *, schema: str, keep_figures: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema, self.keep_figures = schema, keep_figures

    def execute(self, context: Context) -> list[str]:
        from include.ddl import ensure_warehouse_schema
        from include.figures import RETENTION, apply_retention, forget_run

        run = run_of(context)
        with self.warehouse() as conn:
            created = ensure_warehouse_schema(conn, self.schema)
            if self.keep_figures:
                expired = apply_retention(conn, self.schema, run)
                earlier = forget_run(conn, self.schema, run.run_id)
        self.log.info("Warehouse schema %s: %s", self.schema, f"created {created}" if created else "complete")
        if self.keep_figures:
            self.log.info(
                "Figures: deleted %d row(s) older than %s and %d of earlier tries of this run", expired, RETENTION, earlier
            )
        return created


class ProcessedToWarehouseOperator(TotesOperator):
    """Load one warehouse table from the processed bucket: COPY into a staging table and one
    merge, in a single transaction; record the rows its transform quarantined, and quarantine
    the rows a fact table refuses (a missing dimension row: they load on a later run).

    Runs when its own transform has finished, whatever happened to the loads of the dimensions it
    references ("other tables keep flowing"). Skips when its transform produced no result.

    :param table: a warehouse table declared in include.registry
    :param transformed: the transform task's XCom result (templated; None when it has none)
    :param bucket: the processed bucket (templated)
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("transformed", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(self, *, table: str, transformed: Mapping[str, Any] | str | None, bucket: str, schema: str, **kwargs: Any):
        super().__init__(outlets=[assets.declared(assets.WAREHOUSE, table)], **kwargs)
        self.table, self.transformed, self.bucket, self.schema = table, transformed, bucket, schema

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.figures import read_stage
        from include.load import load_table
        from include.registry import WAREHOUSE
        from include.results import TransformResult

        transformed = TransformResult.from_xcom(self.transformed)
        if transformed is None:
            raise AirflowSkipException(f"transform.{self.table} produced no result (it failed or was skipped): nothing to load")
        run = run_of(context)
        with self.warehouse() as conn:
            result = load_table(conn, self.lake(self.bucket), self.schema, WAREHOUSE[self.table], transformed, run)
            wrote = self.warehouse_asset(conn, self.schema, self.table) if result.written else None
            # the load's figures were written in its transaction: its metrics are what committed
            self.emit_metrics(read_stage(conn, self.schema, run.run_id, "load", self.table))
        window = {"start": run.interval_start.isoformat(), "end": run.interval_end.isoformat()}
        self.announce(context, wrote, written=result.written, rejected=result.rejected, replayed=result.replayed, window=window)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import column_lineage, identity, postgres_dataset, s3_dataset, schema_facet
        from include.registry import WAREHOUSE

        table = WAREHOUSE[self.table]
        processed = s3_dataset(self.bucket, self.table, schema=schema_facet(c for c in table.columns if not c.serial))
        lineage = column_lineage(identity(self.table, table.load_columns), {self.table: processed})
        loaded = postgres_dataset(
            self.warehouse_conn_id, self.schema, self.table, schema=schema_facet(table.columns), columnLineage=lineage
        )
        return [processed], [loaded]
