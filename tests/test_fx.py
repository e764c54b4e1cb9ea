"""totes_fx: exchange rates from an HTTP API into the lake and fx_rate; bad answers quarantined.

Real services only: the rates API is a real HTTP server on loopback serving answers recorded in
tests/fixtures/fx/ (invented but plausible ECB figures, see the README there) or, for the bad
cases, answers derived from them; PostgreSQL, moto's S3 and the SMTP server are the harness's
(tests/conftest.py). The DAG runs in-process with dag.test(), with immediate retries
(tests/harness.py fast_retries: one retry, no back-off).
"""

from __future__ import annotations

import html
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from devtools.pg import free_port
from devtools.s3 import client as s3_client
from devtools.smtp import body_text
from include.ddl import ensure_warehouse_schema
from include.fx import BadFxResponse, parse_rates, without_credentials
from include.lake import run_key
from tests.conftest import ROOT, forget_dag_runs
from tests.harness import task_states

FIXTURES = ROOT / "tests" / "fixtures" / "fx"
# The currencies of the real totesys (dim_currency ids as there): GBP 1, USD 2, EUR 3.
CURRENCIES = {1: ("GBP", "Pound Sterling"), 2: ("USD", "US Dollar"), 3: ("EUR", "Euro")}
GBP, USD, EUR = 1, 2, 3


def recorded(day: str) -> bytes:
    return (FIXTURES / f"{day}.json").read_bytes()


# ------------------------------------------------------------------------------------------
# The rates API: a real HTTP server on loopback
# ------------------------------------------------------------------------------------------


class FxApi:
    """GET /<YYYY-MM-DD>?base=GBP&symbols=... answered with the recorded file of that day, but only
    when base and symbols are exactly those of the recording (else 404, as for an unknown day).
    ``script[day]`` lists answers (status, content type, body) to give first, one per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.script: dict[str, list[tuple[int, str, bytes]]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                day, query = url.path.strip("/"), parse_qs(url.query)
                api.requests.append((day, query))
                status, ctype, body = api.answer(day, query)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]

    def answer(self, day: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if self.script.get(day):
            return self.script[day].pop(0)
        path = FIXTURES / f"{day}.json"
        if path.is_file():
            rates = json.loads(path.read_bytes())["rates"]
            if query == {"base": ["GBP"], "symbols": [",".join(sorted(rates))]}:
                return 200, "application/json", path.read_bytes()
        return 404, "application/json", b'{"message":"not found"}'

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()


@pytest.fixture(scope="module")
def fx_api():
    api = FxApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()


@pytest.fixture(scope="module")
def fx_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "totes_fx.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("totes_fx")


# ------------------------------------------------------------------------------------------
# A totes_fx wired to a fresh warehouse, bucket and mail recipient
# ------------------------------------------------------------------------------------------


@dataclass
class FxRig:
    dag: object
    api: FxApi
    warehouse_url: str
    schema: str
    bucket: str
    s3_endpoint: str
    alerts: str
    runs: list = field(default_factory=list)

    def run(self, day: str, *, expect: str = "success"):
        """The run that fetches ``day``: its data interval starts on that day at 06:00 UTC."""
        end = datetime.fromisoformat(day + "T06:00:00+00:00") + timedelta(days=1)
        dr = self.dag.test(logical_date=end)
        self.runs.append(dr)
        assert dr.state == expect, f"run for {day} ended {dr.state}, expected {expect}"
        return dr

    def task_states(self, dr) -> dict[str, str]:
        return task_states(dr)

    def sql(self, query: str, params=None) -> list[tuple]:
        with psycopg.connect(self.warehouse_url, options=f"-c search_path={self.schema}") as wh:
            return wh.execute(query, params).fetchall()

    def fx_rate(self) -> dict[tuple[date, int], tuple[Decimal, date, str]]:
        rows = self.sql("SELECT date_id, currency_id, units_per_gbp, rate_date, source FROM fx_rate")
        return {(d, c): (rate, rate_date, source) for d, c, rate, rate_date, source in rows}

    def objects(self) -> dict[str, str]:
        """key -> ETag of every object in the bucket."""
        s3 = s3_client(self.s3_endpoint)
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj["ETag"]
        return found

    def read(self, key: str) -> bytes:
        return s3_client(self.s3_endpoint).get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def source(self, day: str) -> str:
        return f"http://127.0.0.1:{self.api.port}/{day}?base=GBP&symbols=EUR%2CUSD"

    def mails(self, smtp_server, dr) -> list:
        return smtp_server.sink.wait_for(
            lambda m: self.alerts in str(m["To"]) and "ingest_fx_rates" in m["Subject"] and dr.run_id in m["Subject"]
        )


@pytest.fixture
def fx(fx_dag, fx_api, new_database, new_buckets, airflow_connections, s3_endpoint, monkeypatch):
    """Factory: totes_fx against a fresh warehouse (dim_currency = the real three currencies), a
    fresh ingestion bucket and the loopback rates API, with no earlier runs in Airflow."""
    from tests.harness import fast_retries

    def make(schema: str = "public") -> FxRig:
        forget_dag_runs(fx_dag.dag_id)
        fx_api.reset()
        warehouse_url = new_database("warehouse")
        (bucket,) = new_buckets("ingestion")
        alerts = f"fx-{uuid.uuid4().hex[:8]}@example.com"  # this test's mails only
        # totes_fx reads neither totesys nor the processed bucket: they point at unused places.
        airflow_connections(
            totesys_url=warehouse_url,
            warehouse_url=warehouse_url,
            ingestion=bucket,
            processed=bucket,
            schema=schema,
            alerts=alerts,
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_FX_API", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": fx_api.port, "schema": "http"})
        )
        with psycopg.connect(warehouse_url, autocommit=True) as wh:
            ensure_warehouse_schema(wh, schema)
            for currency_id, (code, name) in CURRENCIES.items():
                wh.execute(
                    f'INSERT INTO "{schema}".dim_currency VALUES (%s, %s, %s)',
                    (currency_id, code, name),
                )
        return FxRig(fx_dag, fx_api, warehouse_url, schema, bucket, s3_endpoint, alerts)

    with fast_retries(fx_dag):
        yield make


# ------------------------------------------------------------------------------------------
# Good days
# ------------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_rates_of_every_warehouse_currency_land_exactly_and_a_rerun_changes_nothing(fx):
    rig = fx(schema="project_team_3")
    dr = rig.run("2024-11-15")
    day = date(2024, 11, 15)

    # one request, for exactly the warehouse's currencies other than GBP, against GBP
    assert rig.api.requests == [("2024-11-15", {"base": ["GBP"], "symbols": ["EUR,USD"]})]
    # every currency of dim_currency, with the API's figures exactly, GBP at 1
    src = rig.source("2024-11-15")
    assert rig.fx_rate() == {
        (day, GBP): (Decimal("1"), day, src),
        (day, USD): (Decimal("1.2627"), day, src),
        (day, EUR): (Decimal("1.1971"), day, src),
    }
    assert {str(r[2]) for r in rig.sql("SELECT * FROM fx_rate")} == {"1.00000000", "1.26270000", "1.19710000"}
    # the day was not in dim_date: its row was added, by the spec's ISO conventions
    assert rig.sql("SELECT * FROM dim_date") == [(day, 2024, 11, 15, 5, "Friday", "November", 4)]

    # the lake: the answer exactly as received, and the manifest, under the day and the run
    prefix = f"fx_rates/date=2024-11-15/run={run_key(dr.run_id)}/"
    assert set(rig.objects()) == {f"{prefix}response.json", f"{prefix}manifest.json"}
    assert rig.read(f"{prefix}response.json") == recorded("2024-11-15")
    manifest = json.loads(rig.read(f"{prefix}manifest.json"))
    assert manifest["window"] == {"day": "2024-11-15", "rate_date": "2024-11-15"}
    assert manifest["parts"] == [{"key": f"{prefix}response.json", "rows": 2, "bytes": len(recorded("2024-11-15"))}]
    assert manifest["inputs"] == [src]
    assert rig.sql("SELECT table_name, run_id, rows_staged, rows_written FROM etl_load_log") == [("fx_rate", dr.run_id, 3, 3)]

    # a rerun of the day: the same rows, not even rewritten (same row versions), nothing added
    before = rig.sql("SELECT date_id, currency_id, xmin::text FROM fx_rate ORDER BY 1, 2")
    objects = rig.objects()
    again = rig.run("2024-11-15")  # dag.test() makes a new run (its own run id) for the same day
    assert rig.sql("SELECT date_id, currency_id, xmin::text FROM fx_rate ORDER BY 1, 2") == before
    assert rig.sql("SELECT count(*) FROM dim_date") == [(1,)]
    again_prefix = f"fx_rates/date=2024-11-15/run={run_key(again.run_id)}/"
    after = rig.objects()
    assert set(after) == set(objects) | {f"{again_prefix}response.json", f"{again_prefix}manifest.json"}
    assert {k: after[k] for k in objects} == objects  # the first run's objects are untouched
    assert rig.read(f"{again_prefix}response.json") == recorded("2024-11-15")
    assert rig.sql("SELECT rows_staged, rows_written FROM etl_load_log ORDER BY load_id") == [(3, 3), (3, 0)]

    # another day (a backfill): its own rows; the first day's are untouched
    rig.run("2024-11-14")
    rates = rig.fx_rate()
    assert len(rates) == 6
    assert rates[(date(2024, 11, 14), EUR)][0] == Decimal("1.2032")
    assert rates[(date(2024, 11, 14), USD)][0] == Decimal("1.2669")
    assert rig.sql("SELECT date_id, currency_id, xmin::text FROM fx_rate WHERE date_id = %s ORDER BY 1, 2", (day,)) == before


@pytest.mark.e2e
@pytest.mark.slow
def test_a_weekend_day_keeps_the_rates_own_date(fx):
    rig = fx()
    dr = rig.run("2024-11-16")  # a Saturday: the API answers with Friday's rates
    saturday, friday = date(2024, 11, 16), date(2024, 11, 15)
    src = rig.source("2024-11-16")
    assert rig.fx_rate() == {
        (saturday, GBP): (Decimal("1"), friday, src),
        (saturday, USD): (Decimal("1.2627"), friday, src),
        (saturday, EUR): (Decimal("1.1971"), friday, src),
    }
    assert rig.sql("SELECT date_id, day_of_week, day_name FROM dim_date") == [(saturday, 6, "Saturday")]
    manifest = json.loads(rig.read(f"fx_rates/date=2024-11-16/run={run_key(dr.run_id)}/manifest.json"))
    assert manifest["window"] == {"day": "2024-11-16", "rate_date": "2024-11-15"}


# ------------------------------------------------------------------------------------------
# Bad answers
# ------------------------------------------------------------------------------------------


def _mutated(**changes) -> bytes:
    data = json.loads(recorded("2024-11-15"))
    rates = changes.pop("rates", None)
    data.update(changes)
    if rates is not None:
        data["rates"] = rates
    return json.dumps(data).encode()


BAD_ANSWERS = {
    # kind: (status, content type, body, what reason.json and the mail must say)
    "http_404": (404, "application/json", b'{"message":"not found"}', "HTTP 404"),
    "http_400": (400, "application/json", b'{"message":"bad currency pair"}', "HTTP 400"),
    "not_json": (200, "text/html", b"<html><body>Scheduled maintenance</body></html>", "the response is not JSON"),
    "json_not_an_object": (200, "application/json", b"[1.1971, 1.2627]", "the response is not a JSON object"),
    "missing_currency": (200, "application/json", _mutated(rates={"EUR": 1.1971}), "rate missing for USD"),
    "zero_rate": (200, "application/json", _mutated(rates={"EUR": 0, "USD": 1.2627}), "rate of EUR is not positive: 0"),
    "negative_rate": (
        200,
        "application/json",
        _mutated(rates={"EUR": 1.1971, "USD": -1.2627}),
        "rate of USD is not positive: -1.2627",
    ),
    "text_rate": (
        200,
        "application/json",
        _mutated(rates={"EUR": "1.1971", "USD": 1.2627}),
        "rate of EUR is not a number: '1.1971'",
    ),
    "null_rate": (200, "application/json", _mutated(rates={"EUR": 1.1971, "USD": None}), "rate of USD is not a number: None"),
    "other_base": (200, "application/json", _mutated(base="EUR", rates={"GBP": 0.8354, "USD": 1.0548}), "base is 'EUR'"),
    "a_month_old": (200, "application/json", _mutated(date="2024-10-15"), "31 days before the requested day 2024-11-15"),
    "dated_later": (200, "application/json", _mutated(date="2024-11-18"), "after the requested day 2024-11-15"),
}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_ANSWERS))
def test_a_bad_answer_is_quarantined_with_its_reason_nothing_loads_and_a_mail_goes_out(fx, smtp_server, kind):
    status, ctype, body, says = BAD_ANSWERS[kind]
    rig = fx()
    rig.api.script["2024-11-15"] = [(status, ctype, body)]
    dr = rig.run("2024-11-15", expect="failed")

    states = rig.task_states(dr)
    assert states == {"ensure_warehouse_schema": "success", "ingest_fx_rates": "failed", "load_fx_rates": "upstream_failed"}
    assert len(rig.api.requests) == 1  # bad content: failed at once, not retried
    assert rig.fx_rate() == {}
    assert rig.sql("SELECT count(*) FROM dim_date") == [(0,)]
    assert rig.sql("SELECT count(*) FROM etl_load_log") == [(0,)]

    # the answer as received and the reason, in the quarantine; nothing in the lake proper
    prefix = f"quarantine/fx_rates/date=2024-11-15/run={run_key(dr.run_id)}/"
    assert set(rig.objects()) == {f"{prefix}response.body", f"{prefix}reason.json"}
    assert rig.read(f"{prefix}response.body") == body
    reason = json.loads(rig.read(f"{prefix}reason.json"))
    assert reason["table"] == "fx_rate"
    assert reason["day"] == "2024-11-15"
    assert reason["status"] == status
    assert reason["url"] == rig.source("2024-11-15")
    assert any(says in problem for problem in reason["problems"]), reason["problems"]

    # the failure mail names the task, the run and the problem
    (mail,) = rig.mails(smtp_server, dr)
    assert "totes_fx" in mail["Subject"]
    text = html.unescape(body_text(mail))
    assert "ingest_fx_rates" in text
    assert dr.run_id in text
    assert says in text
    assert f"s3://{rig.bucket}/{prefix}response.body" in text


@pytest.mark.e2e
@pytest.mark.slow
def test_a_server_error_is_retried_and_quarantined_when_it_persists(fx, smtp_server):
    rig = fx()
    outage = (503, "text/html", b"<html>Service Unavailable</html>")
    rig.api.script["2024-11-15"] = [outage, outage]
    dr = rig.run("2024-11-15", expect="failed")
    assert rig.task_states(dr)["ingest_fx_rates"] == "failed"
    assert len(rig.api.requests) == 2  # the first try and its retry
    assert rig.fx_rate() == {}
    prefix = f"quarantine/fx_rates/date=2024-11-15/run={run_key(dr.run_id)}/"
    reason = json.loads(rig.read(f"{prefix}reason.json"))
    assert reason["problems"] == ["HTTP 503 Service Unavailable"]
    (mail,) = rig.mails(smtp_server, dr)
    assert "HTTP 503" in body_text(mail)
    assert "retries" in body_text(mail)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_server_error_that_passes_loads_on_the_retry_and_leaves_no_quarantine(fx, smtp_server):
    rig = fx()
    rig.api.script["2024-11-15"] = [(500, "text/plain", b"Internal Server Error")]
    dr = rig.run("2024-11-15")
    assert set(rig.task_states(dr).values()) == {"success"}
    assert len(rig.api.requests) == 2
    assert rig.fx_rate()[(date(2024, 11, 15), EUR)][0] == Decimal("1.1971")
    assert not [k for k in rig.objects() if k.startswith("quarantine/")]
    # a task that succeeds on its retry has not failed: no mail (dag.test sends them before returning)
    assert not [m for m in smtp_server.sink.messages if rig.alerts in str(m["To"])]


@pytest.mark.e2e
@pytest.mark.slow
def test_an_unreachable_api_is_retried_then_fails_and_mails(fx, smtp_server, monkeypatch):
    rig = fx()
    closed = free_port()  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_FX_API", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": closed, "schema": "http"})
    )
    dr = rig.run("2024-11-15", expect="failed")
    assert rig.task_states(dr)["ingest_fx_rates"] == "failed"
    assert rig.fx_rate() == {}
    assert not rig.objects()  # no answer: nothing to quarantine
    (mail,) = rig.mails(smtp_server, dr)
    assert "ingest_fx_rates" in body_text(mail)


# ------------------------------------------------------------------------------------------
# Sales in GBP
# ------------------------------------------------------------------------------------------


def _sales(rig: FxRig) -> None:
    """Five sales orders, one with two versions, in three currencies over three days."""
    from tests.warehouse_rows import add_sales_dimensions

    days = [date(2024, 11, 13) + timedelta(days=i) for i in range(8)]
    with psycopg.connect(rig.warehouse_url, autocommit=True, options=f"-c search_path={rig.schema}") as wh:
        add_sales_dimensions(wh, days)
        wh.execute("INSERT INTO dim_staff VALUES (1, 'Ann', 'Lee', 'Sales', 'Leeds', 'ann@terrifictotes.com')")
        orders = [
            # sales_order_id, created, last updated (date, time), units, unit price, currency
            (1, "2024-11-15", "2024-11-15", "10:00", 100, "2.50", EUR),
            (2, "2024-11-15", "2024-11-15", "11:00", 3, "12.00", USD),
            (3, "2024-11-15", "2024-11-15", "12:00", 10, "4.99", GBP),
            (4, "2024-11-14", "2024-11-14", "09:00", 5, "3.00", EUR),  # first version
            (4, "2024-11-14", "2024-11-15", "09:30", 7, "3.00", EUR),  # latest version: counts
            (5, "2024-11-14", "2024-11-14", "16:00", 4, "25.00", USD),
            (6, "2024-11-13", "2024-11-13", "08:00", 2, "10.00", USD),  # a day without rates
        ]
        for order, created, lu_date, lu_time, units, price, currency in orders:
            wh.execute(
                "INSERT INTO fact_sales_order (sales_order_id, created_date, created_time, last_updated_date, "
                "last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, design_id, "
                "agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id) "
                "VALUES (%s, %s, '08:00', %s, %s, 1, 1, %s, %s, %s, 1, '2024-11-20', '2024-11-19', 1)",
                (order, created, lu_date, lu_time, units, Decimal(price), currency),
            )


@pytest.mark.e2e
@pytest.mark.slow
def test_sales_in_gbp_reports_each_order_once_at_the_rate_of_its_day(fx):
    rig = fx()
    _sales(rig)
    rig.run("2024-11-14")
    rig.run("2024-11-15")
    rows = rig.sql(
        "SELECT sales_order_id, currency_code, amount, units_per_gbp, rate_date, amount_gbp FROM sales_in_gbp ORDER BY 1"
    )
    # Worked by hand, amount / units of the currency per pound, rounded to pence:
    #   1: 100 x 2.50 EUR = 250.00 / 1.1971 = 208.838...  -> 208.84
    #   2:   3 x 12.00 USD = 36.00 / 1.2627 =  28.510...  ->  28.51
    #   3:  10 x 4.99 GBP  = 49.90 / 1                    ->  49.90
    #   4:   7 x 3.00 EUR  = 21.00 / 1.2032 =  17.453...  ->  17.45   (latest version; created the 14th)
    #   5:   4 x 25.00 USD = 100.00 / 1.2669 = 78.932...  ->  78.93
    #   6:   2 x 10.00 USD on the 13th: no rate loaded    ->  NULL
    d14, d15 = date(2024, 11, 14), date(2024, 11, 15)
    assert rows == [
        (1, "EUR", Decimal("250.00"), Decimal("1.19710000"), d15, Decimal("208.84")),
        (2, "USD", Decimal("36.00"), Decimal("1.26270000"), d15, Decimal("28.51")),
        (3, "GBP", Decimal("49.90"), Decimal("1.00000000"), d15, Decimal("49.90")),
        (4, "EUR", Decimal("21.00"), Decimal("1.20320000"), d14, Decimal("17.45")),
        (5, "USD", Decimal("100.00"), Decimal("1.26690000"), d14, Decimal("78.93")),
        (6, "USD", Decimal("20.00"), None, None, None),
    ]
    # a day's sales in pounds, across currencies
    assert rig.sql("SELECT sum(amount_gbp) FROM sales_in_gbp WHERE created_date = '2024-11-15'") == [(Decimal("287.25"),)]


# ------------------------------------------------------------------------------------------
# The DAG, and the checks of an answer on their own
# ------------------------------------------------------------------------------------------


def test_the_dag_runs_daily_one_run_at_a_time_with_backoff_and_mails(fx_dag):
    from airflow.sdk import CronDataIntervalTimetable

    from include.alerts import _fresh_smtp_notifier_class

    assert isinstance(fx_dag.timetable, CronDataIntervalTimetable)
    assert fx_dag.timetable.expression == "0 6 * * *"
    assert str(fx_dag.timetable.timezone) == "UTC"
    assert fx_dag.max_active_runs == 1
    assert fx_dag.catchup is False
    assert fx_dag.tags
    assert set(fx_dag.task_dict) == {"ensure_warehouse_schema", "ingest_fx_rates", "load_fx_rates"}
    assert fx_dag.get_task("ingest_fx_rates").upstream_task_ids == {"ensure_warehouse_schema"}
    assert fx_dag.get_task("load_fx_rates").upstream_task_ids == {"ingest_fx_rates"}
    for task in fx_dag.tasks:
        assert task.owner == "data-engineering"
        assert task.retries == 3
        assert task.retry_exponential_backoff
        assert [type(cb) for cb in task.on_failure_callback] == [_fresh_smtp_notifier_class()]


DAY = date(2024, 11, 15)


def _body(**changes) -> bytes:
    return _mutated(**changes)


def test_rates_are_read_exactly_as_decimals():
    rates = parse_rates(recorded("2024-11-15"), day=DAY, required=["EUR", "USD", "GBP"])
    assert rates.rates == {"EUR": Decimal("1.1971"), "USD": Decimal("1.2627")}
    assert all(isinstance(v, Decimal) for v in rates.rates.values())
    assert (rates.day, rates.rate_date, rates.base) == (DAY, DAY, "GBP")
    # the base in the rates at exactly 1 is accepted (and not kept: GBP is 1 by definition)
    assert parse_rates(_body(rates={"EUR": 1.1971, "USD": 1.2627, "GBP": 1}), day=DAY, required=["EUR"]).rates.keys() == {
        "EUR",
        "USD",
    }


@pytest.mark.parametrize(
    ("rate_date", "ok"),
    [("2024-11-15", True), ("2024-11-10", True), ("2024-11-09", False), ("2024-11-16", False)],
)
def test_the_rates_may_be_at_most_five_days_older_than_the_day_and_never_newer(rate_date, ok):
    body = _body(date=rate_date)
    if ok:
        assert parse_rates(body, day=DAY, required=["EUR"]).rate_date == date.fromisoformat(rate_date)
    else:
        with pytest.raises(BadFxResponse):
            parse_rates(body, day=DAY, required=["EUR"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"amount":1.0,"base":"GBP","date":"2024-11-15","rates":{"EUR":NaN}}', "rate of EUR is not a finite number"),
        (b'{"amount":1.0,"base":"GBP","date":"2024-11-15","rates":{"EUR":Infinity}}', "rate of EUR is not a finite number"),
        (_mutated(rates={"EUR": True}), "rate of EUR is not a number: True"),
        (_mutated(rates={"EUR": 12345678901}), "rate of EUR is out of range"),
        (_mutated(rates={"eur": 1.2}), "'eur' is not a currency code"),
        (_mutated(amount=100), "amount is 100, not 1"),
        (_mutated(date="2024-02-30"), "date is not a YYYY-MM-DD date: '2024-02-30'"),
        (_mutated(date=None), "date is not a YYYY-MM-DD date: None"),
        (_mutated(rates=[1.2]), "rates is not an object"),
        (_mutated(rates={"EUR": 1.1971, "GBP": 1.01}), "rate of GBP against itself is 1.01, not 1"),
        ("{}".encode("utf-16"), "the response is not JSON"),
        (b"", "the response is not JSON"),
    ],
)
def test_each_kind_of_bad_answer_is_refused_with_its_reason(body, says):
    with pytest.raises(BadFxResponse) as refused:
        parse_rates(body, day=DAY, required=["EUR"])
    assert any(says in p for p in refused.value.problems), refused.value.problems


def test_every_problem_of_an_answer_is_reported_at_once():
    with pytest.raises(BadFxResponse) as refused:
        parse_rates(_mutated(base="EUR", date="2024-10-01", rates={"EUR": -1}), day=DAY, required=["EUR", "USD", "JPY"])
    problems = refused.value.problems
    assert len(problems) == 4, problems
    assert [p.split(" ")[0] for p in problems] == ["base", "the", "rate", "rate"]
    assert problems[-1] == "rate missing for JPY, USD"


def test_urls_lose_their_credentials():
    assert without_credentials("https://user:secret@api.example.com:8443/v1/2024-11-15?base=GBP") == (
        "https://api.example.com:8443/v1/2024-11-15?base=GBP"
    )
    assert without_credentials("https://api.frankfurter.app/2024-11-15") == "https://api.frankfurter.app/2024-11-15"
