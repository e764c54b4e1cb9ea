"""Exchange rates for totes_fx (docs/fx_rates.md): check an API answer, upsert a day's rates.

The API (the ``fx_api`` connection, e.g. https://api.frankfurter.app, ECB reference rates)
answers ``GET /<YYYY-MM-DD>?base=GBP&symbols=EUR,USD`` with
``{"amount": 1.0, "base": "GBP", "date": "2024-11-15", "rates": {"EUR": 1.1971, "USD": 1.2627}}``:
one pound buys 1.1971 euros. On a weekend or an ECB holiday ``date`` is the last business day
before the requested one; both dates are kept.

An answer is loaded only when every check passes; otherwise it is quarantined with the reasons
(README, "Quarantine"). Numbers are read as Decimal, so a rate is stored exactly as quoted (to
the 8 decimals of fx_rate.units_per_gbp).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
from psycopg import sql

from include import bookkeeping, quarantine
from include.config import FX_LAKE_TABLE, FX_MAX_RATE_AGE
from include.lake import Part, publish, quarantine_prefix, run_prefix
from include.registry import CALENDAR, FX_BASE_CURRENCY, FX_RATE
from include.results import FxIngestResult, FxLoadResult

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    import psycopg

    from include.lake import Lake

log = logging.getLogger(__name__)

RESPONSE_FILE = "response.json"
# What a manifest says the answer holds: per currency, how many units one GBP buys.
RESPONSE_SCHEMA = pa.schema(
    [pa.field("currency_code", pa.string(), False), pa.field("units_per_gbp", pa.decimal128(18, 8), False)]
)
QUARANTINED_RESPONSE_FILE = "response.body"  # as received: it may not be JSON at all
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# numeric(18,8): at most 10 digits before the point
RATE_LIMIT = Decimal(10) ** 10


class BadFxResponse(ValueError):
    """The API answered, but not with rates that can be loaded (retrying will not help)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class FxApiUnavailable(RuntimeError):
    """The API answered with a server error or asked us to slow down: worth retrying."""


class FxAnswerRefused(Exception):
    """The API's answer is quarantined and not loaded: retrying cannot help, the answer itself is wrong."""


class NoRatesToFetch(Exception):
    """dim_currency holds no currency but the base one: there is nothing to ask for."""


@dataclass(frozen=True)
class FxRates:
    day: date  # the day asked for
    rate_date: date  # the rates' own date (earlier on weekends and holidays)
    base: str
    rates: dict[str, Decimal]  # currency code -> units of it one unit of ``base`` buys


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _not_finite(name: str) -> Decimal:
    return Decimal(name)  # NaN, Infinity, -Infinity: refused below as not finite


def parse_rates(
    body: bytes,
    *,
    day: date,
    required: Iterable[str],
    base: str = FX_BASE_CURRENCY,
    max_age: timedelta = FX_MAX_RATE_AGE,
) -> FxRates:
    """The rates of an answer for ``day``, or BadFxResponse listing every problem found.

    Refused: not a JSON object; a base other than ``base``; an amount other than 1; a date that
    is not YYYY-MM-DD, is after ``day`` or more than ``max_age`` before it; no rate for a
    ``required`` currency; a rate that is not a finite number (a string, a boolean, null, NaN),
    not positive, or too large for numeric(18,8); a currency code that is not three capitals.
    """
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_not_finite)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFxResponse([f"the response is not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise BadFxResponse([f"the response is not a JSON object: {_short(data)}"])
    problems: list[str] = []

    if data.get("base") != base:
        problems.append(f"base is {_short(data.get('base'))}, not {base!r}")
    amount = data.get("amount", 1)
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount != 1:
        problems.append(f"amount is {_short(amount)}, not 1: the rates would not be per one {base}")

    rate_date = None
    raw_date = data.get("date")
    try:
        if not isinstance(raw_date, str) or not _ISO_DAY.match(raw_date):
            raise ValueError
        rate_date = date.fromisoformat(raw_date)
    except ValueError:
        problems.append(f"date is not a YYYY-MM-DD date: {_short(raw_date)}")
    if rate_date is not None and rate_date > day:
        problems.append(f"the rates are dated {rate_date}, after the requested day {day}")
    elif rate_date is not None and day - rate_date > max_age:
        problems.append(
            f"the rates are dated {rate_date}, {(day - rate_date).days} days before the requested day {day} "
            f"(at most {max_age.days} days: the longest ECB closure)"
        )

    rates: dict[str, Decimal] = {}
    raw_rates = data.get("rates")
    if not isinstance(raw_rates, dict):
        problems.append(f"rates is not an object: {_short(raw_rates)}")
        raw_rates = {}
    for code, value in raw_rates.items():
        if not CURRENCY_CODE.match(code):
            problems.append(f"{_short(code)} is not a currency code")
        elif isinstance(value, bool) or not isinstance(value, int | Decimal):
            problems.append(f"rate of {code} is not a number: {_short(value)}")
        elif not Decimal(value).is_finite():
            problems.append(f"rate of {code} is not a finite number: {value}")
        elif value <= 0:
            problems.append(f"rate of {code} is not positive: {value}")
        elif value >= RATE_LIMIT:
            problems.append(f"rate of {code} is out of range: {value}")
        elif code == base and value != 1:
            problems.append(f"rate of {code} against itself is {value}, not 1")
        else:
            rates[code] = Decimal(value)
    missing = sorted(c for c in set(required) - {base} if c not in raw_rates)
    if missing:
        problems.append("rate missing for " + ", ".join(missing))
    if problems:
        raise BadFxResponse(problems)
    rates.pop(base, None)
    return FxRates(day=day, rate_date=rate_date, base=base, rates=rates)


def without_credentials(url: str) -> str:
    """A URL fit for logs, the lake and the warehouse: no user or password, whatever the connection holds."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


# ------------------------------------------------------------------------------------------
# Warehouse
# ------------------------------------------------------------------------------------------


def warehouse_currencies(conn: psycopg.Connection, schema: str) -> list[str]:
    """The distinct currency codes of dim_currency (ISO codes: the transform quarantines others)."""
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT currency_code FROM {} ORDER BY 1").format(sql.Identifier(schema, "dim_currency"))
    ).fetchall()
    return [r[0] for r in rows]


def _dim_date_row(day: date) -> dict[str, object]:
    import pyarrow as pa

    from include.derive import dim_date

    return dim_date(pa.array([day], pa.date32())).to_pylist()[0]


def upsert_rates(
    conn: psycopg.Connection, schema: str, rates: FxRates, *, source: str, run_id: str, manifest_key: str
) -> tuple[int, int]:
    """Store one day's rates in fx_rate, in one transaction: the day's dim_date row first when
    the warehouse lacks it, then one INSERT ... ON CONFLICT for every dim_currency row whose code
    has a rate (the base currency at 1). A row whose values are already there is not touched, so
    a rerun writes nothing. Returns (rows for the day, rows inserted or changed)."""
    dim_date_table = CALENDAR
    day_row = _dim_date_row(rates.day)
    codes = [rates.base, *sorted(rates.rates)]
    values = [Decimal(1), *(rates.rates[c] for c in sorted(rates.rates))]
    target = sql.Identifier(schema, FX_RATE.name)
    key = sql.SQL(", ").join(map(sql.Identifier, FX_RATE.primary_key))
    non_key = [c for c in FX_RATE.column_names if c not in FX_RATE.primary_key]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"totes_etl.load.{schema}.{FX_RATE.name}",))
        bookkeeping.mark_pipeline_write(conn, run_id)  # the dim_date row is the pipeline's (include.ddl)
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING").format(
                sql.Identifier(schema, dim_date_table.name),
                sql.SQL(", ").join(map(sql.Identifier, dim_date_table.column_names)),
                sql.SQL(", ").join(sql.Placeholder(c) for c in dim_date_table.column_names),
                sql.Identifier(dim_date_table.primary_key),
            ),
            day_row,
        )
        cur.execute(
            sql.SQL(
                "WITH incoming AS ("
                "  SELECT %(day)s::date AS date_id, c.currency_id, r.rate AS units_per_gbp, %(rate_date)s::date AS rate_date,"
                "         %(source)s::varchar AS source"
                "  FROM unnest(%(codes)s::varchar[], %(values)s::numeric[]) AS r(code, rate)"
                "  JOIN {currency} c ON c.currency_code = r.code"
                "), written AS ("
                "  INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM incoming ORDER BY currency_id"
                "  ON CONFLICT ({key}) DO UPDATE SET ({non_key}) = ROW({excluded})"
                "  WHERE ({t_non_key}) IS DISTINCT FROM ({excluded})"
                "  RETURNING 1"
                ") SELECT (SELECT count(*) FROM incoming), (SELECT count(*) FROM written)"
            ).format(
                currency=sql.Identifier(schema, "dim_currency"),
                target=target,
                cols=sql.SQL(", ").join(map(sql.Identifier, FX_RATE.column_names)),
                key=key,
                non_key=sql.SQL(", ").join(map(sql.Identifier, non_key)),
                excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in non_key),
                t_non_key=sql.SQL(", ").join(sql.Identifier("t", c) for c in non_key),
            ),
            {"day": rates.day, "rate_date": rates.rate_date, "source": source, "codes": codes, "values": values},
        )
        rows, written = cur.fetchone()
        bookkeeping.log_load(
            conn, schema, FX_RATE.name, run_id=run_id, manifest_key=manifest_key, source_max=None, staged=rows, written=written
        )
    return rows, written


# ------------------------------------------------------------------------------------------
# The stages of totes_fx
# ------------------------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def ingest_fx_rates(
    http: Any, wh: psycopg.Connection, lake: Lake, schema: str, *, day: date, run_id: str, timeout: float
) -> FxIngestResult:
    """Ask the rates API (``http``: the http provider's HttpHook for ``fx_api``) for ``day``'s
    rates of every dim_currency currency against GBP, and keep the answer as it came in the
    ingestion bucket (``fx_rates/date=<day>/run=<run>/response.json`` plus the manifest).

    An answer that is not loadable (not HTTP 200, or refused by ``parse_rates``) is quarantined
    (``response.body`` and ``reason.json``): FxApiUnavailable for a server error (5xx, 429), worth
    retrying; FxAnswerRefused otherwise."""
    symbols = [c for c in warehouse_currencies(wh, schema) if c != FX_BASE_CURRENCY]
    if not symbols:
        raise NoRatesToFetch(f"dim_currency holds no currency other than {FX_BASE_CURRENCY}: no rate to fetch")
    # The status is judged below (a bad answer is quarantined, not just raised).
    response = http.run(
        endpoint=day.isoformat(),
        data={"base": FX_BASE_CURRENCY, "symbols": ",".join(symbols)},
        extra_options={"check_response": False, "timeout": timeout},
    )
    url, body = without_credentials(response.url), response.content
    log.info("GET %s: HTTP %s, %d bytes", url, response.status_code, len(body))
    prefix = run_prefix(FX_LAKE_TABLE, _day_start(day), run_id)
    refused_prefix = quarantine_prefix(FX_LAKE_TABLE, _day_start(day), run_id)
    try:
        if response.status_code != 200:
            raise BadFxResponse([f"HTTP {response.status_code} {response.reason or ''}".strip()])
        rates = parse_rates(body, day=day, required=symbols)
    except BadFxResponse as bad:
        reason = {
            "table": FX_RATE.name,
            "day": day.isoformat(),
            "url": url,
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "problems": bad.problems,
            "response_key": f"{refused_prefix}{QUARANTINED_RESPONSE_FILE}",
        }
        key = quarantine.store(lake, refused_prefix, QUARANTINED_RESPONSE_FILE, body, reason)
        log.error("Rates for %s quarantined at s3://%s/%s: %s", day, lake.bucket, key, "; ".join(bad.problems))
        lake.discard(prefix)  # nothing an earlier attempt of this run committed stays readable
        message = (
            f"The rates API's answer for {day} is not loaded: {bad}. It is quarantined at "
            f"s3://{lake.bucket}/{key} (docs/fx_rates.md, 'Bad input')."
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise FxApiUnavailable(message + " A server error: Airflow retries the task while it has retries left.") from None
        raise FxAnswerRefused(message + " Retrying cannot help: the answer itself is wrong.") from None

    key = f"{prefix}{RESPONSE_FILE}"
    lake.put_bytes(body, key)  # as received
    window = {"day": day.isoformat(), "rate_date": rates.rate_date.isoformat()}
    parts = [Part(key=key, rows=len(rates.rates), bytes=len(body))]
    details = {"window": window, "mode": "http", "inputs": [url]}
    manifest_key = publish(lake, prefix, parts, RESPONSE_SCHEMA, table=FX_LAKE_TABLE, run_id=run_id, **details)
    lake.discard(refused_prefix)  # an earlier attempt's server error, now answered properly
    log.info(
        "Rates of %s for %s (dated %s): %s", FX_BASE_CURRENCY, day, rates.rate_date,
        ", ".join(f"{c} {v}" for c, v in sorted(rates.rates.items())),
    )  # fmt: skip
    return FxIngestResult(
        day=day.isoformat(), rate_date=rates.rate_date.isoformat(), rates=len(rates.rates), manifest_key=manifest_key
    )


def load_fx_rates(conn: psycopg.Connection, lake: Lake, schema: str, ingested: FxIngestResult, *, run_id: str) -> FxLoadResult:
    """Load the rates one run ingested into fx_rate, in one transaction (``upsert_rates``)."""
    manifest = lake.read_manifest(ingested.manifest_key)
    day = date.fromisoformat(manifest.window["day"])
    # Checked again: what is loaded is exactly what the lake holds.
    rates = parse_rates(lake.get_bytes(manifest.parts[0].key), day=day, required=())
    rows, written = upsert_rates(
        conn, schema, rates, source=manifest.inputs[0], run_id=run_id, manifest_key=ingested.manifest_key
    )
    log.info("fx_rate %s: %d currencies, %d row(s) inserted or changed", day, rows, written)
    return FxLoadResult(day=day.isoformat(), rows=rows, written=written)
