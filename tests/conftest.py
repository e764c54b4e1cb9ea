"""Test harness: real PostgreSQL, a real S3 API, a real SMTP server, an isolated Airflow.

PostgreSQL: set TOTES_TEST_PG_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) to use an
existing server; otherwise a throwaway cluster is created from the system's PostgreSQL binaries
for the session. Either way every database a test uses is created with a unique name and
dropped afterwards; nothing the harness did not create is ever dropped.

S3: moto's HTTP server on loopback, reached through the provider's S3Hook with an endpoint URL
in the aws_default connection (exactly how MinIO or AWS is reached).

Airflow: a temporary AIRFLOW_HOME with its own SQLite metadata database, set before Airflow is
imported; connections and variables come from AIRFLOW_CONN_* / AIRFLOW_VAR_* variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXTRACT = ROOT.parent / "shared" / "data" / "totesys-2024-11-15"

# Airflow reads its configuration when first imported: isolate it before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="totes-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
# The project's plugins, as on every deployment: test_deadline decodes the DAG's deadline alert
# as the scheduler does, which looks its reference up among them (plugins/totes_deadline.py).
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("PYTHONPATH", str(ROOT))

sys.path.insert(0, str(ROOT))

from devtools.pg import LocalCluster, create_database, drop_database, free_port  # noqa: E402
from devtools.pg import airflow_connection as pg_airflow_connection  # noqa: E402
from devtools.s3 import ThreadedS3Server, airflow_connection, create_buckets  # noqa: E402
from devtools.smtp import SmtpServer  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


# `make test` runs two pytest-xdist workers, each with its own AIRFLOW_HOME, PostgreSQL cluster,
# S3 and SMTP servers. The local stack (`demo_stack`) is one per worker that asks for it: the
# files whose tests use it go to one worker, as one scope, and first, so that its ten minutes
# run beside the rest rather than after it.
STACK_TEST_FILES = ("test_local_stack.py", "test_ui_browser.py")


def _uses_the_stack(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in STACK_TEST_FILES


def pytest_collection_modifyitems(config, items):
    strays = [i.nodeid for i in items if "demo_stack" in getattr(i, "fixturenames", ()) and not _uses_the_stack(i.nodeid)]
    if strays:
        raise pytest.UsageError(f"tests outside STACK_TEST_FILES use the local stack (add their files): {strays}")
    items.sort(key=lambda item: not _uses_the_stack(item.nodeid))  # stable: file order otherwise kept


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown when it is not loaded (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    # (xdist's own `loadgroup` cannot group under pytest 9: it renames items through an attribute
    # pytest 9 no longer reads.) Every other test is a scope of its own: spread as `load` does.
    from xdist.scheduler import LoadScopeScheduling

    class StackTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "local_stack" if _uses_the_stack(nodeid) else nodeid

    return StackTestsTogether(config, log)


# ------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    configured = os.environ.get("TOTES_TEST_PG_URL")
    if configured:
        yield configured
        return
    base = Path(tempfile.mkdtemp(prefix="totes-pg-"))
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start(fast_unsafe=True)
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def _session_databases(pg_admin_url: str) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    for name in created:
        drop_database(pg_admin_url, name)


@pytest.fixture
def new_database(pg_admin_url: str, _session_databases: list[str]):
    """Factory: a fresh, uniquely named database; dropped when the test ends."""
    mine: list[str] = []

    def make(label: str) -> str:
        name = f"totes_test_{uuid.uuid4().hex[:10]}_{label}"
        url = create_database(pg_admin_url, name)
        mine.append(name)
        return url

    yield make
    for name in mine:
        drop_database(pg_admin_url, name)


# ------------------------------------------------------------------------------------------
# S3 and SMTP
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedS3Server(free_port())
    server.start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture
def new_buckets(s3_endpoint: str):
    def make(*labels: str) -> list[str]:
        names = [f"totes-{label}-{uuid.uuid4().hex[:8]}" for label in labels]
        create_buckets(s3_endpoint, *names)
        return names

    return make


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------
# Airflow
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the metadata database of the isolated AIRFLOW_HOME (once per session)."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return _AIRFLOW_HOME


def parse_dag(dag_file: str, dag_id: str):
    """Parse a DAG file as the DAG processor does, with the environment as it is now (the Assets
    a DAG declares are read from it: include/assets.py)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / dag_file))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture(scope="session")
def totes_dag(airflow_db):
    return parse_dag("totes_etl.py", "totes_etl")


def smtp_connection_json(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "totes-etl@terrifictotes.com"},
        }
    )


@pytest.fixture
def airflow_connections(monkeypatch, s3_endpoint, smtp_server):
    """Point the four connections and four variables at the given services (per test)."""

    def configure(
        *,
        totesys_url: str,
        warehouse_url: str,
        ingestion: str,
        processed: str,
        schema: str = "public",
        alerts: str = "alerts@example.com",
    ) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_TOTESYS_DB", pg_airflow_connection(totesys_url))
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", pg_airflow_connection(warehouse_url))
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", airflow_connection(s3_endpoint))
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(smtp_server.port))
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_INGESTION_BUCKET", ingestion)
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_PROCESSED_BUCKET", processed)
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA", schema)
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_ALERT_EMAILS", alerts)

    return configure


def forget_dag_runs(dag_id: str) -> None:
    """Delete the metadata of earlier runs, so each test starts with a DAG that never ran."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == dag_id).all():
            session.delete(run)


@pytest.fixture
def pipeline(airflow_db, new_database, new_buckets, airflow_connections, s3_endpoint):
    """Factory: totes_etl wired to fresh totesys and warehouse databases and fresh buckets, with
    no earlier runs in Airflow's metadata, parsed once they are configured (so that its Assets
    name them). Retries happen at once, and once (the DAG's real back-off would make a failing
    test wait minutes; test_dag_integrity checks the real values)."""
    from tests.harness import Pipeline, fast_retries

    with contextlib.ExitStack() as stack:

        def make(*, schema: str = "public", totesys_url: str | None = None, warehouse_url: str | None = None, **connections):
            forget_dag_runs("totes_etl")
            totesys_url = totesys_url or new_database("totesys")
            warehouse_url = warehouse_url or new_database("warehouse")
            ingestion, processed = new_buckets("ingestion", "processed")
            airflow_connections(
                totesys_url=totesys_url,
                warehouse_url=warehouse_url,
                ingestion=ingestion,
                processed=processed,
                schema=schema,
                **connections,
            )
            dag = parse_dag("totes_etl.py", "totes_etl")
            stack.enter_context(fast_retries(dag))
            return Pipeline(dag, totesys_url, warehouse_url, ingestion, processed, schema, s3_endpoint)

        yield make


@dataclass
class DemoStack:
    """The local stack after `python -m devtools.stack demo`, in a temporary directory."""

    env: dict[str, str]
    output: str
    stack_dir: Path

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return stack_cli(self.env, *args, timeout=timeout)


def stack_cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devtools.stack", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def demo_stack() -> Iterator[DemoStack]:
    """One embedded stack for the session (free ports, scale 0.05, no simulator), started with
    `demo` and stopped with `down`; the stack test and the browser test share it."""
    base = Path(tempfile.mkdtemp(prefix="totes-stack-"))  # under /tmp: the postgres user can reach it
    ports = (
        "TOTES_PG_PORT",
        "TOTES_S3_PORT",
        "TOTES_SMTP_PORT",
        "TOTES_AIRFLOW_PORT",
        "TOTES_PAYMENTS_API_PORT",
        "TOTES_STATSD_PORT",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TOTES_"))}
    env.update({name: str(free_port()) for name in ports})
    env.update(
        {"TOTES_STACK_DIR": str(base / "stack"), "TOTES_SCALE": "0.05", "TOTES_SIMULATE_EVERY": "0", "PYTHONPATH": str(ROOT)}
    )
    demo = stack_cli(env, "demo")
    try:
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        yield DemoStack(env, demo.stdout, base / "stack")
    finally:
        down = stack_cli(env, "down", timeout=120)
        leftover = list((base / "stack" / "pids").glob("*.pid"))
        shutil.rmtree(base, ignore_errors=True)
        assert down.returncode == 0, down.stderr
        assert not leftover, f"processes left running: {leftover}"


@pytest.fixture
def real_extract_dir() -> Path:
    if not SHARED_EXTRACT.is_dir():
        pytest.skip(f"the real totesys extract is not here ({SHARED_EXTRACT}): generated data covers the same ground")
    return SHARED_EXTRACT


# ------------------------------------------------------------------------------------------
# An empty totesys and an empty warehouse, for the stage modules' own tests
# ------------------------------------------------------------------------------------------


@pytest.fixture
def totesys(new_database):
    """A connection (autocommit) to a fresh database holding the empty totesys schema."""
    import psycopg

    from devtools.totesys.schema import create_totesys_schema

    url = new_database("src")
    with psycopg.connect(url) as conn:
        create_totesys_schema(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def warehouse(new_database):
    """A connection (autocommit) to a fresh database holding the empty warehouse schema ``public``."""
    import psycopg

    from include.ddl import ensure_warehouse_schema

    with psycopg.connect(new_database("wh"), autocommit=True) as conn:
        ensure_warehouse_schema(conn, "public")
        yield conn
