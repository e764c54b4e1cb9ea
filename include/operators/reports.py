"""Refresh a report of the warehouse (include.reports), as totes_reports does on data events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from include import assets
from include.operators._common import TotesOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseReportOperator(TotesOperator):
    """Refresh one materialized view of include.registry in one transaction, and announce it as
    the Asset of that view (a consumer of the report can schedule on it in turn).

    :param report: a materialized view declared in include.registry
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("schema",)
    ui_color = "#d9d2e9"

    def __init__(self, *, report: str, schema: str, **kwargs: Any) -> None:
        super().__init__(outlets=[assets.declared(assets.WAREHOUSE, report)], **kwargs)
        self.report, self.schema = report, schema

    def execute(self, context: Context) -> dict[str, Any]:
        from include.reports import refresh_report

        with self.warehouse() as conn:
            result = refresh_report(conn, self.schema, self.report)
            asset = self.warehouse_asset(conn, self.schema, self.report)
        self.announce(context, asset, rows=result.rows)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import postgres_dataset
        from include.registry import tables_under
        from include.reports import REPORTS

        read = [postgres_dataset(self.warehouse_conn_id, self.schema, t) for t in tables_under(REPORTS[self.report])]
        return read, [postgres_dataset(self.warehouse_conn_id, self.schema, self.report)]
