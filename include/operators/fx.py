"""Exchange rates: the rates API -> the ingestion bucket -> fx_rate (totes_fx, docs/fx_rates.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import AWS_CONN_ID, FX_API_CONN_ID, FX_SCHEDULE_PERIOD, WAREHOUSE_CONN_ID
from include.operators._common import psycopg_connection, run_interval, s3_hook

if TYPE_CHECKING:
    from datetime import date, datetime

    from airflow.sdk import Context


def fx_day(context: Any) -> date:
    """The day whose rates a run fetches: the UTC day its data interval starts on (the run at
    06:00 on the 16th covers the 15th, whose rates the ECB published on the 15th). A manual run
    without a logical date fetches the day before it was triggered."""
    from include.lake import to_naive_utc

    start, _ = run_interval(context, period=FX_SCHEDULE_PERIOD)
    return to_naive_utc(start).date()


def _day_start(day: date) -> datetime:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(), UTC)


class FxRatesToS3Operator(BaseOperator):
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

    def __init__(
        self,
        *,
        bucket: str,
        schema: str,
        http_conn_id: str = FX_API_CONN_ID,
        postgres_conn_id: str = WAREHOUSE_CONN_ID,
        aws_conn_id: str = AWS_CONN_ID,
        timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.schema = schema
        self.http_conn_id = http_conn_id
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.http.hooks.http import HttpHook
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.fx import (
            LAKE_TABLE,
            RESPONSE_FILE,
            BadFxResponse,
            FxApiUnavailable,
            parse_rates,
            warehouse_currencies,
            without_credentials,
        )
        from include.lake import Lake, Manifest, Part, quarantine_prefix, run_prefix
        from include.registry import FX_BASE_CURRENCY

        day = fx_day(context)
        run_id = context["dag_run"].run_id
        with psycopg_connection(self.postgres_conn_id, read_only=True) as wh:
            currencies = warehouse_currencies(wh, self.schema)
        symbols = [c for c in currencies if c != FX_BASE_CURRENCY]
        if not symbols:
            raise AirflowSkipException(f"dim_currency holds no currency other than {FX_BASE_CURRENCY}: no rate to fetch")

        hook = HttpHook(method="GET", http_conn_id=self.http_conn_id)
        # The status is judged below (a bad answer is quarantined, not just raised).
        response = hook.run(
            endpoint=day.isoformat(),
            data={"base": FX_BASE_CURRENCY, "symbols": ",".join(symbols)},
            extra_options={"check_response": False, "timeout": self.timeout},
        )
        url = without_credentials(response.url)
        body = response.content
        self.log.info("GET %s: HTTP %s, %d bytes", url, response.status_code, len(body))

        lake = Lake(s3_hook(self.aws_conn_id), self.bucket)
        prefix = run_prefix(LAKE_TABLE, _day_start(day), run_id)
        quarantine = quarantine_prefix(LAKE_TABLE, _day_start(day), run_id)
        try:
            if response.status_code != 200:
                raise BadFxResponse([f"HTTP {response.status_code} {response.reason or ''}".strip()])
            rates = parse_rates(body, day=day, required=symbols)
        except BadFxResponse as bad:
            key = self._quarantine(lake, quarantine, body, bad.problems, day=day, url=url, response=response)
            lake.discard(prefix)  # nothing an earlier attempt of this run committed stays readable
            message = (
                f"The rates API's answer for {day} is not loaded: {bad}. It is quarantined at "
                f"s3://{self.bucket}/{key} (docs/fx_rates.md, 'Bad input')."
            )
            if response.status_code >= 500 or response.status_code == 429:
                raise FxApiUnavailable(message + " A server error: Airflow retries the task while it has retries left.") from None
            raise AirflowFailException(message + " Retrying cannot help: the answer itself is wrong.") from None

        key = f"{prefix}{RESPONSE_FILE}"
        lake.put_bytes(body, key)  # as received
        manifest = Manifest(
            table=LAKE_TABLE,
            run_id=run_id,
            rows=len(rates.rates),
            parts=[Part(key=key, rows=len(rates.rates))],
            columns=[
                {"name": "currency_code", "type": "string", "nullable": False},
                {"name": "units_per_gbp", "type": "decimal128(18, 8)", "nullable": False},
            ],
            window={"day": day.isoformat(), "rate_date": rates.rate_date.isoformat()},
            mode="http",
            inputs=[url],
        )
        manifest_key = lake.commit(prefix, manifest)
        lake.discard(quarantine)  # an earlier attempt's server error, now answered properly
        self.log.info(
            "Rates of %s for %s (dated %s): %s", FX_BASE_CURRENCY, day, rates.rate_date,
            ", ".join(f"{c} {v}" for c, v in sorted(rates.rates.items())),
        )  # fmt: skip
        return {
            "day": day.isoformat(),
            "rate_date": rates.rate_date.isoformat(),
            "rates": len(rates.rates),
            "manifest_key": manifest_key,
        }

    def _quarantine(self, lake, prefix: str, body: bytes, problems: list[str], *, day, url: str, response) -> str:
        import json

        from include.fx import QUARANTINED_RESPONSE_FILE

        key = f"{prefix}{QUARANTINED_RESPONSE_FILE}"
        lake.put_bytes(body, key)
        reason = {
            "table": "fx_rate",
            "day": day.isoformat(),
            "url": url,
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "problems": problems,
            "response_key": key,
        }
        lake.put_bytes(json.dumps(reason, indent=1).encode(), f"{prefix}reason.json")
        self.log.error("Rates for %s quarantined at s3://%s/%s: %s", day, lake.bucket, key, "; ".join(problems))
        return key


class FxRatesToWarehouseOperator(BaseOperator):
    """Load the rates one run ingested into fx_rate, in one transaction (include.fx.upsert_rates):
    the day's dim_date row if missing, then every dim_currency currency with a rate (GBP at 1),
    one row per currency per day; a rerun changes nothing. Skips when the ingest produced nothing.

    :param ingested: the ingest task's XCom result (templated)
    :param bucket: the ingestion bucket (templated)
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("ingested", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(
        self,
        *,
        ingested: Mapping[str, Any] | str | None,
        bucket: str,
        schema: str,
        postgres_conn_id: str = WAREHOUSE_CONN_ID,
        aws_conn_id: str = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.bucket = bucket
        self.schema = schema
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from include.fx import parse_rates, upsert_rates
        from include.lake import Lake

        if not isinstance(self.ingested, Mapping) or not self.ingested.get("manifest_key"):
            raise AirflowSkipException("the ingest produced no rates: nothing to load")
        key = self.ingested["manifest_key"]
        lake = Lake(s3_hook(self.aws_conn_id), self.bucket)
        manifest = lake.read_manifest(key)
        day = date.fromisoformat(manifest.window["day"])
        # Checked again: what is loaded is exactly what the lake holds.
        rates = parse_rates(lake.get_bytes(manifest.parts[0].key), day=day, required=())
        with psycopg_connection(self.postgres_conn_id) as conn:
            rows, written = upsert_rates(
                conn, self.schema, rates, source=manifest.inputs[0], run_id=context["dag_run"].run_id, manifest_key=key
            )
        self.log.info("fx_rate %s: %d currencies, %d row(s) inserted or changed", day, rows, written)
        return {"day": day.isoformat(), "rows": rows, "written": written}
