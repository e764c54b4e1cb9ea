"""The payments API over real HTTP against a real warehouse in PostgreSQL.

Each test builds a warehouse with include.ddl.ensure_warehouse_schema (in the non-default schema
project_team_3, so the schema setting is exercised too), fills the dimensions and fact_payment
with payments on both sides of AS_OF, several of them in more than one version, then calls the
app served by uvicorn on a free loopback port with httpx.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
import uvicorn
from psycopg import errors, sql

from devtools.pg import free_port
from include.ddl import ensure_warehouse_schema
from payments_api import Settings, create_app
from payments_api import db as api_db
from payments_api.auth import add_token
from payments_api.readonly_role import SQL_FILE
from payments_api.readonly_role import apply as apply_readonly_role
from tests.conftest import ROOT

SCHEMA = "project_team_3"
AS_OF = date(2024, 11, 15)

CURRENCIES = {1: ("GBP", "Pound Sterling"), 2: ("USD", "US Dollar"), 3: ("EUR", "Euro")}
COUNTERPARTIES = {1: "Fahey and Sons", 2: "Leannon, Predovic and Morar", 3: "O'Keefe & Søn"}


@dataclass(frozen=True)
class Version:
    """One row of fact_payment: one version of a payment."""

    payment_id: int
    updated: datetime  # last_updated_date + last_updated_time
    amount: str
    currency_id: int
    counterparty_id: int
    payment_date: date
    paid: bool


def v(payment_id, updated, amount, currency_id, counterparty_id, payment_date, paid=False) -> Version:
    return Version(
        payment_id, datetime.fromisoformat(updated), amount, currency_id, counterparty_id, date.fromisoformat(payment_date), paid
    )


VERSIONS = [
    # on or before AS_OF (2024-11-15)
    v(101, "2024-11-01 09:00:00", "100.00", 1, 1, "2024-11-15"),  # on the day itself
    v(102, "2024-11-01 09:00:00", "200.00", 1, 2, "2024-11-15"),  # v1 unpaid ...
    v(102, "2024-11-14 07:55:00", "250.50", 1, 2, "2024-11-15", paid=True),  # ... v2 paid, new amount
    v(103, "2024-11-02 10:00:00", "98765432.10", 2, 2, "2024-11-12", paid=True),  # no float rounding
    v(104, "2024-11-01 10:00:00", "400.00", 3, 3, "2024-11-25"),  # v1 in the future ...
    v(104, "2024-11-02 08:00:00", "400.00", 3, 3, "2024-11-11"),  # ... moved back into the past
    v(105, "2024-11-03 11:00:00", "0.01", 3, 1, "2024-11-10"),
    v(106, "2024-10-20 11:00:00", "600.00", 1, 1, "2024-11-01"),  # the 6th in the past: never listed
    v(107, "2024-11-03 23:59:59", "700.00", 2, 3, "2024-11-14"),  # v1 would be 3rd in last5 ...
    v(107, "2024-11-04 00:00:01", "700.00", 2, 3, "2024-12-01"),  # ... later date, earlier time: latest
    # after AS_OF
    v(201, "2024-11-05 12:00:00", "10.00", 1, 2, "2024-11-16"),  # the day after
    v(202, "2024-11-05 12:00:00", "20.00", 2, 1, "2024-11-16"),  # same day: by payment_id
    v(203, "2024-11-05 12:00:00", "1000.00", 2, 2, "2024-11-20"),  # v1 ...
    v(203, "2024-11-05 12:00:01", "999.99", 2, 2, "2024-11-20"),  # ... v2 one second later
    v(204, "2024-11-06 08:30:00", "40.00", 3, 3, "2024-11-28"),
    v(205, "2024-11-06 08:30:00", "50.00", 1, 1, "2025-01-10"),  # the 6th in the future: never listed
]


def item(payment_id: int, amount: str, currency_id: int, counterparty_id: int, payment_date: str, paid: bool) -> dict:
    code, name = CURRENCIES[currency_id]
    return {
        "payment_id": payment_id,
        "amount": amount,
        "currency": {"code": code, "name": name},
        "counterparty": {"id": counterparty_id, "legal_name": COUNTERPARTIES[counterparty_id]},
        "payment_date": payment_date,
        "paid": paid,
    }


# Written out by hand from VERSIONS: the latest version of each payment, then the window.
EXPECTED_LAST5 = [
    item(102, "250.50", 1, 2, "2024-11-15", True),
    item(101, "100.00", 1, 1, "2024-11-15", False),
    item(103, "98765432.10", 2, 2, "2024-11-12", True),
    item(104, "400.00", 3, 3, "2024-11-11", False),
    item(105, "0.01", 3, 1, "2024-11-10", False),
]
EXPECTED_NEXT5 = [
    item(201, "10.00", 1, 2, "2024-11-16", False),
    item(202, "20.00", 2, 1, "2024-11-16", False),
    item(203, "999.99", 2, 2, "2024-11-20", False),
    item(204, "40.00", 3, 3, "2024-11-28", False),
    item(107, "700.00", 2, 3, "2024-12-01", False),
]


def fill_warehouse(conn: psycopg.Connection, schema: str) -> None:
    ensure_warehouse_schema(conn, schema)

    def table(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name)

    dates = {d for x in VERSIONS for d in (x.updated.date(), x.payment_date)}
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(table("dim_date")),
            [
                (d, d.year, d.month, d.day, d.isoweekday(), d.strftime("%A"), d.strftime("%B"), (d.month - 1) // 3 + 1)
                for d in sorted(dates)
            ],
        )
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(table("dim_currency")),
            [(i, code, name) for i, (code, name) in CURRENCIES.items()],
        )
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, NULL, NULL, %s, %s, %s, %s)").format(table("dim_counterparty")),
            [
                (i, name, f"{i} High Street", "Leeds", f"LS{i} 1AA", "United Kingdom", "0113 496 0000")
                for i, name in COUNTERPARTIES.items()
            ],
        )
        cur.execute(sql.SQL("INSERT INTO {} VALUES (1, 'SALES_RECEIPT')").format(table("dim_payment_type")))
        payment_ids = sorted({x.payment_id for x in VERSIONS})
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, 'SALE', %s, NULL)").format(table("dim_transaction")),
            [(pid, pid) for pid in payment_ids],
        )
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (payment_id, created_date, created_time, last_updated_date, last_updated_time, transaction_id,"
                " counterparty_id, payment_amount, currency_id, payment_type_id, paid, payment_date)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s)"
            ).format(table("fact_payment")),
            [
                (
                    x.payment_id,
                    x.updated.date(),
                    x.updated.time(),
                    x.updated.date(),
                    x.updated.time(),
                    x.payment_id,
                    x.counterparty_id,
                    Decimal(x.amount),
                    x.currency_id,
                    x.paid,
                    x.payment_date,
                )
                for x in VERSIONS
            ],
        )


@pytest.fixture
def warehouse_url(new_database) -> str:
    url = new_database("payments_api")
    with psycopg.connect(url) as conn:
        fill_warehouse(conn, SCHEMA)
    return url


class Served:
    """An app served by a real uvicorn on a free loopback port, in a thread; the client sends
    ``headers`` (a reader's credential) with every request."""

    def __init__(self, app, headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=20, headers=self.headers)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass(frozen=True)
class Tokens:
    """A tokens file (payments_api.auth) with a reader's token and an outsider's."""

    path: Path
    reader: str  # finance-reports, in the group finance
    outsider: str  # marketing-dashboard: authenticated, not in the group


@pytest.fixture(scope="session")
def tokens(tmp_path_factory) -> Tokens:
    path = tmp_path_factory.mktemp("payments-api") / "tokens.json"
    return Tokens(path, add_token(path, "finance-reports", ["finance"]), add_token(path, "marketing-dashboard", ["marketing"]))


def serve(settings: Settings, tokens: Tokens) -> Served:
    """The app of ``settings`` with bearer tokens, called as the reader."""
    app = create_app(dataclasses.replace(settings, auth="token", tokens_file=str(tokens.path)))
    return Served(app, headers={"Authorization": f"Bearer {tokens.reader}"})


@pytest.fixture
def api(warehouse_url, tokens) -> Iterator[httpx.Client]:
    with serve(Settings(warehouse_url=warehouse_url, schema=SCHEMA), tokens) as client:
        yield client


def closed_port_url() -> str:
    """A warehouse URL where nothing listens (the port was free a moment ago)."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/warehouse"


# ------------------------------------------------------------------------------------------
# The two lists
# ------------------------------------------------------------------------------------------


def test_last5_latest_version_most_recent_first(api):
    r = api.get("/payments/last5", params={"as_of": AS_OF.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json() == {"as_of": "2024-11-15", "payments": EXPECTED_LAST5}


def test_next5_latest_version_soonest_first(api):
    r = api.get("/payments/next5", params={"as_of": AS_OF.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json() == {"as_of": "2024-11-15", "payments": EXPECTED_NEXT5}


def test_the_window_moves_with_as_of(api):
    """as_of is the boundary: a payment on as_of is 'last', one the day after is 'next'."""
    r = api.get("/payments/last5", params={"as_of": "2024-11-16"}).json()
    assert [p["payment_id"] for p in r["payments"]] == [202, 201, 102, 101, 103]
    r = api.get("/payments/next5", params={"as_of": "2024-11-14"}).json()
    assert [p["payment_id"] for p in r["payments"]] == [101, 102, 201, 202, 203]
    # nothing before the first payment, and fewer than five near the end
    assert api.get("/payments/last5", params={"as_of": "2024-10-31"}).json()["payments"] == []
    r = api.get("/payments/next5", params={"as_of": "2024-11-30"}).json()
    assert [(p["payment_id"], p["payment_date"]) for p in r["payments"]] == [(107, "2024-12-01"), (205, "2025-01-10")]


def test_as_of_defaults_to_today_in_utc(api):
    before = datetime.now(UTC).date()
    last = api.get("/payments/last5").json()
    after = datetime.now(UTC).date()
    assert date.fromisoformat(last["as_of"]) in {before, after}
    # every payment is in the past by now: the five latest dates, and nothing next
    assert [p["payment_id"] for p in last["payments"]] == [205, 107, 204, 203, 202]
    assert api.get("/payments/next5").json()["payments"] == []


@pytest.mark.parametrize(
    "bad", ["yesterday", "2024-13-01", "2024-02-30", "15/11/2024", "20241115", "2024-11-15T10:00:00", "1731628800", ""]
)
@pytest.mark.parametrize("path", ["/payments/last5", "/payments/next5"])
def test_a_bad_as_of_is_a_422_with_a_clear_message(api, path, bad):
    r = api.get(path, params={"as_of": bad})
    assert r.status_code == 422, r.text
    body = r.json()
    assert "as_of must be a calendar date in YYYY-MM-DD form" in body["detail"], body
    assert body["errors"] == [{"location": "query.as_of", "message": body["errors"][0]["message"]}]
    assert repr(bad) in body["errors"][0]["message"]


# ------------------------------------------------------------------------------------------
# When the warehouse cannot answer
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(
            Settings(warehouse_url=closed_port_url()), "the warehouse is unreachable; try again later", id="closed-port"
        ),
        pytest.param(Settings(warehouse_url=None), "the warehouse is not configured (set TOTES_WAREHOUSE_URL)", id="no-url"),
    ],
)
def test_an_unreachable_warehouse_is_a_503_with_a_json_message(settings, message, tokens):
    with serve(settings, tokens) as client:
        for path in ("/payments/last5", "/payments/next5"):
            started = time.monotonic()
            r = client.get(path, params={"as_of": "2024-11-15"})
            assert time.monotonic() - started < 10
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/json"
            assert r.headers["retry-after"] == "30"
            assert r.json() == {"detail": message}
            assert "Traceback" not in r.text
            assert "psycopg" not in r.text
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "warehouse": "unreachable", "detail": message}


def test_a_warehouse_without_the_tables_is_a_503(new_database, tokens):
    url = new_database("payments_api_empty")
    with serve(Settings(warehouse_url=url, schema=SCHEMA), tokens) as client:
        r = client.get("/payments/last5")
        assert r.status_code == 503
        assert r.json() == {"detail": f"the warehouse has no payments tables in schema {SCHEMA!r} yet"}


def test_health_when_the_warehouse_answers(api):
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "warehouse": "reachable", "detail": None}


# ------------------------------------------------------------------------------------------
# Read-only
# ------------------------------------------------------------------------------------------


def test_the_apps_connections_cannot_write(warehouse_url):
    """Even as the warehouse's superuser, a connection made the app's way refuses every write."""
    settings = Settings(warehouse_url=warehouse_url, schema=SCHEMA)
    insert = sql.SQL("INSERT INTO {} VALUES (99, 'JPY', 'Yen')").format(sql.Identifier(SCHEMA, "dim_currency"))
    with api_db.connect(settings) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("SELECT current_setting('application_name')").fetchone()[0] == "totes-payments-api"
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute(insert)
        conn.rollback()
        # turning the session default off is not enough: psycopg begins every transaction READ ONLY
        conn.execute("SET default_transaction_read_only = off")
        conn.commit()
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(SCHEMA, "fact_payment")))
        conn.rollback()
    with psycopg.connect(warehouse_url) as conn:
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, "fact_payment"))).fetchone()[0]
        assert count == len(VERSIONS)


@pytest.fixture
def readonly_role(warehouse_url, pg_admin_url) -> Iterator[tuple[str, str]]:
    """A fresh login role (name, password); dropped afterwards with whatever it was granted."""
    role = f"totes_ro_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        yield role, password
    finally:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def assert_select_only(role_url: str) -> None:
    """The role reads the three payments tables and can do nothing else, even with read-only off."""
    with psycopg.connect(role_url, autocommit=True) as conn:
        # readonly_role.sql makes every session of the role read-only by default
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        conn.execute("SET default_transaction_read_only = off")
        for name in ("fact_payment", "dim_currency", "dim_counterparty"):
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name)))
        writes = [
            sql.SQL("INSERT INTO {} VALUES (99, 'JPY', 'Yen')").format(sql.Identifier(SCHEMA, "dim_currency")),
            sql.SQL("UPDATE {} SET paid = true").format(sql.Identifier(SCHEMA, "fact_payment")),
            sql.SQL("DELETE FROM {}").format(sql.Identifier(SCHEMA, "dim_counterparty")),
            sql.SQL("TRUNCATE {}").format(sql.Identifier(SCHEMA, "fact_payment")),
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, "dim_staff")),  # not granted
            sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(SCHEMA, "intruder")),
        ]
        for stmt in writes:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(stmt)


def test_the_api_works_as_a_select_only_role(warehouse_url, readonly_role, tokens):
    role, password = readonly_role
    with psycopg.connect(warehouse_url) as conn:
        apply_readonly_role(conn, role, SCHEMA)
        apply_readonly_role(conn, role, SCHEMA)  # idempotent
    role_url = as_role(warehouse_url, role, password)
    assert_select_only(role_url)
    with serve(Settings(warehouse_url=role_url, schema=SCHEMA), tokens) as client:
        assert client.get("/payments/next5", params={"as_of": "2024-11-15"}).json()["payments"] == EXPECTED_NEXT5
        assert client.get("/payments/last5", params={"as_of": "2024-11-15"}).json()["payments"] == EXPECTED_LAST5
        assert client.get("/health").status_code == 200


def test_the_role_file_runs_under_psql_as_documented(warehouse_url, readonly_role):
    psql = shutil.which("psql")
    if not psql:
        pytest.skip("psql is not installed")
    role, password = readonly_role
    done = subprocess.run(
        [
            psql,
            warehouse_url,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"role={role}",
            "-v",
            f"schema={SCHEMA}",
            "-f",
            str(SQL_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert_select_only(as_role(warehouse_url, role, password))


# ------------------------------------------------------------------------------------------
# The OpenAPI document and the one-command server
# ------------------------------------------------------------------------------------------


def test_openapi_documents_both_endpoints(api):
    doc = api.get("/openapi.json").json()
    assert doc["info"]["title"] == "Terrific Totes payments API"
    assert doc["info"]["description"].strip()
    for path in ("/payments/last5", "/payments/next5"):
        op = doc["paths"][path]["get"]
        assert op["summary"]
        assert op["description"]
        assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PaymentList"}
        assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ValidationErrorMessage")
        assert op["responses"]["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorMessage")
        (param,) = op["parameters"]
        assert param["name"] == "as_of"
        assert param["in"] == "query"
        assert not param["required"]
        assert param["description"]
        assert {"type": "string", "format": "date"} in param["schema"]["anyOf"]
    assert "/health" in doc["paths"]
    payment = doc["components"]["schemas"]["Payment"]["properties"]
    assert set(payment) == {"payment_id", "amount", "currency", "counterparty", "payment_date", "paid"}
    assert all(payment[name].get("description") for name in ("payment_id", "amount", "payment_date", "paid"))
    assert payment["amount"]["type"] == "string"
    assert payment["amount"]["pattern"]


def test_python_m_payments_api_serves_on_loopback_to_readers_only_and_logs_no_credential(warehouse_url, tokens):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTES_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TOTES_WAREHOUSE_URL": warehouse_url,
            "TOTES_WAREHOUSE_SCHEMA": SCHEMA,
            "TOTES_PAYMENTS_API_PORT": str(port),
            "TOTES_PAYMENTS_API_TOKENS_FILE": str(tokens.path),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "payments_api"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wrong = secrets.token_urlsafe(32)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "python -m payments_api did not answer"
            time.sleep(0.2)
        url, params = f"http://127.0.0.1:{port}/payments/last5", {"as_of": "2024-11-15"}
        statuses = {
            who: httpx.get(url, params=params, headers=headers, timeout=10).status_code
            for who, headers in {
                "nobody": {},
                "a wrong token": {"Authorization": f"Bearer {wrong}"},
                "an outsider": {"Authorization": f"Bearer {tokens.outsider}"},
            }.items()
        }
        assert statuses == {"nobody": 401, "a wrong token": 401, "an outsider": 403}
        r = httpx.get(url, params=params, headers={"Authorization": f"Bearer {tokens.reader}"}, timeout=10)
        assert r.json()["payments"] == EXPECTED_LAST5
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", port)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    logged = proc.stdout.read().decode()
    # the refusals are in the log with their reasons; no credential is, nor any part of one
    assert "401 on GET /payments/last5: no bearer token" in logged
    assert "401 on GET /payments/last5: unknown token" in logged
    assert "403 on GET /payments/last5: marketing-dashboard is not in the group finance" in logged
    for credential in (wrong, tokens.reader, tokens.outsider):
        assert credential[:12] not in logged
    assert "Bearer" not in logged


# ------------------------------------------------------------------------------------------
# Who may read
# ------------------------------------------------------------------------------------------


def test_with_bearer_tokens_only_a_reader_is_let_in(warehouse_url, tokens):
    with serve(Settings(warehouse_url=warehouse_url, schema=SCHEMA), tokens) as client:
        for path in ("/payments/last5", "/payments/next5"):
            for headers, status in [
                ({"Authorization": ""}, 401),
                ({"Authorization": f"Basic {tokens.reader}"}, 401),
                ({"Authorization": f"Bearer {tokens.reader}x"}, 401),
                ({"Authorization": f"Bearer {tokens.outsider}"}, 403),
            ]:
                r = client.get(path, params={"as_of": "2024-11-15"}, headers=headers)
                assert r.status_code == status, (path, headers)
                assert r.headers["content-type"] == "application/json"
                assert set(r.json()) == {"detail"}
                assert (r.headers.get("www-authenticate") == 'Bearer realm="payments"') == (status == 401)
            assert client.get(path, params={"as_of": "2024-11-15"}).status_code == 200  # the reader's own token
        assert client.get("/health", headers={"Authorization": ""}).status_code == 200
        assert client.get("/openapi.json", headers={"Authorization": ""}).status_code == 200


class KeyServer:
    """AWS's regional endpoint of load-balancer public keys (GET /<key id> -> PEM), on loopback."""

    def __init__(self, keys: dict[str, str]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                pem = keys.get(self.path.lstrip("/"))
                self.send_response(200 if pem else 404)
                self.end_headers()
                self.wfile.write((pem or "no such key").encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_behind_the_load_balancer_only_its_signed_claims_of_a_reader_are_let_in(warehouse_url):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    alb_key, forger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pem = alb_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keys = KeyServer({"6f2b-key": pem.decode()})
    alb = "arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/app/totes-payments-api/50dc6c495c0c9188"

    def signed(groups=("finance",), *, signer=alb, kid="6f2b-key", key=alb_key, expires_in=120) -> str:
        claims = {"sub": "a1b2", "email": "fin@terrifictotes.com", "groups": list(groups), "exp": int(time.time()) + expires_in}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "signer": signer, "client": "totes"})

    settings = Settings(warehouse_url=warehouse_url, schema=SCHEMA, auth="alb-oidc", alb_arn=alb, alb_keys_url=keys.url)
    try:
        with Served(create_app(settings)) as client:

            def get(data: str | None) -> httpx.Response:
                headers = {"x-amzn-oidc-data": data} if data is not None else {}
                return client.get("/payments/last5", params={"as_of": "2024-11-15"}, headers=headers)

            refused = {
                "no claims": get(None),
                "not a JWT": get("not.a.jwt"),
                "signed by another key": get(signed(key=forger)),
                "another load balancer": get(signed(signer=alb.replace("50dc", "ffff"))),
                "an unknown key id": get(signed(kid="0000-key")),
                "a key id that is a path": get(signed(kid="../etc/passwd")),
                "expired": get(signed(expires_in=-60)),
            }
            assert {why: r.status_code for why, r in refused.items()} == dict.fromkeys(refused, 401)
            assert get(signed(groups=["marketing"])).status_code == 403
            ok = get(signed(groups=["marketing", "finance"]))
            assert ok.status_code == 200
            assert ok.json()["payments"] == EXPECTED_LAST5
    finally:
        keys.server.shutdown()


def test_python_m_payments_api_without_a_url_says_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTES_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "payments_api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "set TOTES_WAREHOUSE_URL" in done.stderr


def test_python_m_payments_api_without_a_way_to_authenticate_refuses_to_start(warehouse_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTES_")}
    env.update({"PYTHONPATH": str(ROOT), "TOTES_WAREHOUSE_URL": warehouse_url})
    for extra, says in [
        ({}, "set TOTES_PAYMENTS_API_TOKENS_FILE"),
        ({"TOTES_PAYMENTS_API_TOKENS_FILE": str(tmp_path / "absent.json")}, "cannot read the tokens file"),
        ({"TOTES_PAYMENTS_API_AUTH": "none"}, "must be token or alb-oidc"),
        ({"TOTES_PAYMENTS_API_AUTH": "alb-oidc"}, "alb-oidc needs TOTES_PAYMENTS_API_ALB_ARN"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "payments_api"],
            cwd=ROOT,
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, extra
        assert says in done.stderr, (extra, done.stderr)


# Keep an eye on the fixture data itself: the hand-written expectations rely on these facts.
def test_the_fixture_has_history_on_both_sides():
    versions = {}
    for x in VERSIONS:
        versions.setdefault(x.payment_id, []).append(x)
    assert sum(len(vs) > 1 for vs in versions.values()) >= 4
    assert sum(x.payment_date <= AS_OF for x in VERSIONS) > 5
    assert sum(x.payment_date > AS_OF for x in VERSIONS) > 5
