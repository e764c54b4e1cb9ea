"""Exchange rates: the rates API -> the ingestion bucket -> fx_rate (totes_fx, include.fx, docs/fx_rates.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include import assets
from include.config import FX_API_CONN_ID, FX_LAKE_TABLE, FX_SCHEDULE_PERIOD
from include.operators._common import TotesOperator, run_of
from include.registry import FX_RATE

if TYPE_CHECKING:
    from datetime import date

    from airflow.sdk import Context


def fx_day(context: Any) -> date:
    """The day whose rates a run fetches: the UTC day its data interval starts on (the run at
    06:00 on the 16th covers the 15th, whose rates the ECB published on the 15th). A manual run
    without a logical date fetches the day before it was triggered."""
    from include.lake import to_naive_utc

    return to_naive_utc(run_of(context, period=FX_SCHEDULE_PERIOD).interval_start).date()


class FxRatesToS3Operator(TotesOperator):
    """Fetch the day's exchange rates of every dim_currency currency, base GBP, from the rates API
    (``fx_api`` connection, through the http provider's HttpHook) and keep the answer as it came
    in the ingestion bucket: ``fx_rates/date=<day>/run=<run>/response.json`` plus the manifest.

    An answer that is not loadable (not HTTP 200, not JSON, another base, a missing, non-numeric
    or non-positive rate, a date far from the day asked for: include.fx.parse_rates) goes to
    ``quarantine/fx_rates/date=<day>/run=<run>/`` (``response.body`` and ``reason.json``) and the
    task fails at once; a server error (5xx, 429) is quarantined too but fails so that Airflow
    retries it, as does a transport error. Pushes the manifest key, the day and the rate count.

    :param bucket: the ingestion bucket (templated)
    :param schema: the warehouse schema holding dim_currency (templated)
    """

    template_fields: Sequence[str] = ("bucket", "schema")
    ui_color = "#d9ead3"

    def __init__(self, *, bucket: str, schema: str, http_conn_id: str = FX_API_CONN_ID, timeout: float = 60.0, **kwargs: Any):
        super().__init__(outlets=[assets.declared(assets.INGESTION, FX_LAKE_TABLE)], **kwargs)
        self.bucket, self.schema, self.http_conn_id, self.timeout = bucket, schema, http_conn_id, timeout

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.http.hooks.http import HttpHook
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.fx import FxAnswerRefused, NoRatesToFetch, ingest_fx_rates

        http = HttpHook(method="GET", http_conn_id=self.http_conn_id)
        asked = {"day": fx_day(context), "run_id": context["dag_run"].run_id, "timeout": self.timeout}
        with self.warehouse(read_only=True) as wh:
            try:
                result = ingest_fx_rates(http, wh, self.lake(self.bucket), self.schema, **asked)
            except NoRatesToFetch as nothing:
                raise AirflowSkipException(str(nothing)) from None
            except FxAnswerRefused as refused:
                raise AirflowFailException(str(refused)) from None
        self.announce(
            context,
            assets.lake_asset(self.bucket, FX_LAKE_TABLE),
            rates=result.rates,
            day=result.day,
            manifest=result.manifest_key,
        )
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import postgres_dataset, s3_dataset

        return [postgres_dataset(self.warehouse_conn_id, self.schema, "dim_currency")], [s3_dataset(self.bucket, FX_LAKE_TABLE)]


class FxRatesToWarehouseOperator(TotesOperator):
    """Load the rates one run ingested into fx_rate, in one transaction (include.fx.upsert_rates):
    the day's dim_date row if missing, then every dim_currency currency with a rate (GBP at 1),
    one row per currency per day; a rerun changes nothing. Skips when the ingest produced nothing.

    :param ingested: the ingest task's XCom result (templated)
    :param bucket: the ingestion bucket (templated)
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("ingested", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(self, *, ingested: Mapping[str, Any] | str | None, bucket: str, schema: str, **kwargs: Any) -> None:
        super().__init__(outlets=[assets.declared(assets.WAREHOUSE, FX_RATE.name)], **kwargs)
        self.ingested, self.bucket, self.schema = ingested, bucket, schema

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.fx import load_fx_rates
        from include.results import FxIngestResult

        ingested = FxIngestResult.from_xcom(self.ingested)
        if ingested is None or not ingested.manifest_key:
            raise AirflowSkipException("the ingest produced no rates: nothing to load")
        with self.warehouse() as conn:
            result = load_fx_rates(conn, self.lake(self.bucket), self.schema, ingested, run_id=context["dag_run"].run_id)
            wrote = self.warehouse_asset(conn, self.schema, FX_RATE.name) if result.written else None
        self.announce(context, wrote, day=result.day, rows=result.rows, written=result.written)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import postgres_dataset, s3_dataset

        return [s3_dataset(self.bucket, FX_LAKE_TABLE)], [postgres_dataset(self.warehouse_conn_id, self.schema, FX_RATE.name)]
