"""The embedded local stack: everything totes_etl needs on one machine, no Docker, loopback only.

    python -m devtools.stack up       # start it all (idempotent)
    python -m devtools.stack demo     # up, run totes_etl once, drop a sales targets file and see it
                                      # arrive, show the warehouse, leave it running
    python -m devtools.stack status
    python -m devtools.stack down     # stop it all
    python -m devtools.stack airflow dags list   # the airflow CLI, with the stack's settings

What runs (state under .stack/):
* PostgreSQL: the server in $TOTES_PG_URL if set (an admin URL), otherwise a cluster created in
  .stack/pg from the system's binaries on 127.0.0.1:$TOTES_PG_PORT (55432). Databases: totesys
  (generated, seed 42, scale $TOTES_SCALE), warehouse, and totes_airflow (Airflow's metadata).
* S3 and SQS: moto's server on 127.0.0.1:55000 with the ingestion and processed buckets, and the
  sales department's targets bucket, whose notifications go to a queue the triggerer polls.
* SMTP: a server on 127.0.0.1:55025 that keeps every mail in .stack/mail/*.eml.
* StatsD: a receiver on 127.0.0.1:58125 (UDP) that appends Airflow's and the pipeline's metrics
  to .stack/metrics/statsd.txt.
* Airflow 3: the four components `airflow standalone` starts (scheduler, dag-processor,
  api-server on 127.0.0.1:8080, triggerer), started one by one so that each binds to loopback
  (standalone's built-in log servers would listen on every interface); LocalExecutor.
* the change simulator, writing application-like changes to totesys every 5 minutes
  ($TOTES_SIMULATE_EVERY seconds; 0 turns it off).
* the finance payments API (payments_api/) on 127.0.0.1:$TOTES_PAYMENTS_API_PORT (8081), reading
  the warehouse over read-only connections.

State lives in .stack/ ($TOTES_STACK_DIR).

Every connection and variable is given to Airflow through AIRFLOW_CONN_* / AIRFLOW_VAR_*.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal

# Starts our own components with fixed argv.
import subprocess  # nosec B404
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from devtools.pg import LocalCluster, create_database, with_database
from devtools.pg import airflow_connection as pg_airflow_connection
from devtools.s3 import airflow_connection, create_buckets, notify_queue
from include.config import VARIABLES
from include.registry import FILE_FEEDS, FileFeed

ROOT = Path(__file__).resolve().parents[1]
STACK = Path(os.environ.get("TOTES_STACK_DIR", ROOT / ".stack"))
VENV_BIN = Path(sys.executable).parent

PG_PORT = int(os.environ.get("TOTES_PG_PORT", "55432"))
S3_PORT = int(os.environ.get("TOTES_S3_PORT", "55000"))
SMTP_PORT = int(os.environ.get("TOTES_SMTP_PORT", "55025"))
STATSD_PORT = int(os.environ.get("TOTES_STATSD_PORT", "58125"))  # UDP
API_PORT = int(os.environ.get("TOTES_AIRFLOW_PORT", "8080"))
PAYMENTS_API_PORT = int(os.environ.get("TOTES_PAYMENTS_API_PORT", "8081"))
SCALE = float(os.environ.get("TOTES_SCALE", "1"))
SIMULATE_EVERY = int(os.environ.get("TOTES_SIMULATE_EVERY", "300"))
DATABASES = {"totesys": "totesys", "warehouse": "warehouse", "airflow": "totes_airflow"}
AIRFLOW_COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(API_PORT)],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# ------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------


def pg_admin_url() -> str:
    return os.environ.get("TOTES_PG_URL") or LocalCluster(STACK / "pg", PG_PORT).url


def start_postgres() -> str:
    if os.environ.get("TOTES_PG_URL"):
        log(f"PostgreSQL: using the configured server {os.environ['TOTES_PG_URL'].split('@')[-1]}")
        return os.environ["TOTES_PG_URL"]
    cluster = LocalCluster(STACK / "pg", PG_PORT)
    if not cluster.is_running():
        log(f"PostgreSQL: starting the cluster in {cluster.base_dir} on 127.0.0.1:{PG_PORT}")
        cluster.start()
    return cluster.url


def prepare_databases(admin: str) -> dict[str, str]:
    from devtools.totesys.generator import GeneratorSettings, generate
    from devtools.totesys.schema import cursor_index_ddl

    urls = {role: create_database(admin, name, exist_ok=True) for role, name in DATABASES.items()}
    with psycopg.connect(urls["totesys"]) as conn:
        has_tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    if not has_tables:
        log(f"totesys: generating (seed 42, scale {SCALE:g})")
        with psycopg.connect(urls["totesys"]) as conn:
            counts = generate(conn, GeneratorSettings(seed=42, scale=SCALE))
        log("totesys: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    with psycopg.connect(urls["totesys"], autocommit=True) as conn:
        for stmt in cursor_index_ddl():
            conn.execute(stmt)
    grant_health_reader(urls["warehouse"])
    return urls


HEALTH_ROLE = "totes_health"


def health_password() -> str:
    """The password of the health page's role (include.health), made once and kept owner-only
    in the stack's secrets."""
    from payments_api.auth import write_private

    secret = STACK / "secrets" / "health-role.password"
    if not secret.exists():
        write_private(secret, secrets.token_urlsafe(24))
    return secret.read_text().strip()


def grant_health_reader(warehouse_url: str) -> None:
    """The health page's role may read the run figures and the quarantine only. The warehouse
    schema is made first, as the pipeline's first run would make it."""
    from include.ddl import ensure_warehouse_schema
    from include.health import grant_reader
    from payments_api.provision import login_role

    schema = os.environ.get("AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA", VARIABLES["totes_warehouse_schema"])
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        ensure_warehouse_schema(conn, schema)
        login_role(conn, HEALTH_ROLE, health_password())  # a SCRAM verifier: no clear text in any server log
        grant_reader(conn, schema, HEALTH_ROLE)


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------


def pid_file(name: str) -> Path:
    return STACK / "pids" / f"{name}.pid"


def running_pid(name: str) -> int | None:
    path = pid_file(name)
    if not path.exists():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, 0)
    except OSError:
        path.unlink()
        return None
    return pid


def start_process(name: str, argv: list[str], env: dict[str, str]) -> None:
    if running_pid(name):
        return
    (STACK / "pids").mkdir(parents=True, exist_ok=True)
    (STACK / "logs").mkdir(parents=True, exist_ok=True)
    with open(STACK / "logs" / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)  # nosec B603
    pid_file(name).write_text(str(proc.pid))
    log(f"{name}: started (pid {proc.pid}, log .stack/logs/{name}.log)")


def stop_process(name: str) -> None:
    pid = running_pid(name)
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    for _ in range(300):  # Airflow's components take a few seconds to shut down cleanly
        with contextlib.suppress(ChildProcessError):  # started by this process (bench.soak): reap it
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.killpg(pid, signal.SIGKILL)
    pid_file(name).unlink(missing_ok=True)
    log(f"{name}: stopped")


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Only http://127.0.0.1 URLs built here.
            with urllib.request.urlopen(url, timeout=3):  # noqa: S310  # nosec B310
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(1)


# ------------------------------------------------------------------------------------------
# Airflow
# ------------------------------------------------------------------------------------------


def stack_secrets() -> dict[str, str]:
    """Keys the Airflow components must share, and the UI password; made once, kept 0600."""
    path = STACK / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "admin_password": secrets.token_urlsafe(12),
    }
    STACK.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def feed_queue_name(feed: FileFeed) -> str:
    return f"totes-{feed.name.replace('_', '-')}"


def feed_queue_url(feed: FileFeed) -> str:
    """The URL moto gives the feed's queue (its default account): known before the queue exists."""
    return f"http://127.0.0.1:{S3_PORT}/123456789012/{feed_queue_name(feed)}"


def feed_location(feed: FileFeed) -> tuple[str, str]:
    """(bucket, prefix) of a feed, from its variables as the stack sets them."""
    bucket = os.environ.get(f"AIRFLOW_VAR_{feed.bucket_variable.upper()}", VARIABLES[feed.bucket_variable])
    return bucket, os.environ.get(f"AIRFLOW_VAR_{feed.prefix_variable.upper()}", VARIABLES[feed.prefix_variable])


def airflow_env(urls: dict[str, str]) -> dict[str, str]:
    keys = stack_secrets()
    home = STACK / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": keys["admin_password"]}))
    passwords.chmod(0o600)
    metadata = urls["airflow"].replace("postgresql://", "postgresql+psycopg://", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__"))}
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{API_PORT}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(API_PORT),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{API_PORT}",
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # Airflow's metrics and the pipeline's own (include/metrics.py) to the stack's StatsD
            # receiver: .stack/metrics/statsd.txt
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(STATSD_PORT),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            # The configuration contract (README): the same names as on MWAA and in compose.
            "AIRFLOW_CONN_TOTESYS_DB": pg_airflow_connection(urls["totesys"]),
            "AIRFLOW_CONN_WAREHOUSE_DB": pg_airflow_connection(urls["warehouse"]),
            "AIRFLOW_CONN_WAREHOUSE_HEALTH": pg_airflow_connection(
                urls["warehouse"], login=HEALTH_ROLE, password=health_password()
            ),
            "AIRFLOW_CONN_AWS_DEFAULT": airflow_connection(f"http://127.0.0.1:{S3_PORT}"),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
                {"conn_type": "smtp", "host": "127.0.0.1", "port": SMTP_PORT, "extra": {"disable_tls": True, "disable_ssl": True}}
            ),
        }
    )
    for name, default in VARIABLES.items():
        env[f"AIRFLOW_VAR_{name.upper()}"] = os.environ.get(f"AIRFLOW_VAR_{name.upper()}", default)
    # Each file feed is picked up as its files land: its bucket's notifications go to a moto queue
    # that the feed's AssetWatcher polls from the triggerer (include/feeds.py).
    for feed in FILE_FEEDS:
        env[f"AIRFLOW__TOTES__{feed.name.upper()}_QUEUE_URL"] = feed_queue_url(feed)
    return env


def airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "airflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=check)  # nosec B603


# ------------------------------------------------------------------------------------------
# Payments API (payments_api/)
# ------------------------------------------------------------------------------------------


PAYMENTS_API_TOKEN = STACK / "secrets" / "payments-api.token"


def payments_api_tokens() -> Path:
    """The stack's tokens file of the payments API (payments_api.auth), with one reader's token
    (group finance) made once and kept, like the file, readable by its owner only."""
    from payments_api.auth import add_token, write_private

    tokens = STACK / "secrets" / "payments-api-tokens.json"
    if not tokens.exists() or not PAYMENTS_API_TOKEN.exists():
        tokens.unlink(missing_ok=True)
        write_private(PAYMENTS_API_TOKEN, add_token(tokens, "local-finance", ["finance"]) + "\n")
    return tokens


def start_payments_api(urls: dict[str, str]) -> None:
    """Serve the finance payments API over the warehouse; never fails the stack if it cannot."""
    if running_pid("payments-api"):
        return
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PAYMENTS_API_PORT)) == 0:
            log(f"payments-api: port {PAYMENTS_API_PORT} is taken, not started (set TOTES_PAYMENTS_API_PORT)")
            return
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TOTES_PAYMENTS_API_AUTH="token",
        TOTES_PAYMENTS_API_TOKENS_FILE=str(payments_api_tokens()),
        TOTES_WAREHOUSE_URL=urls["warehouse"],
        TOTES_WAREHOUSE_SCHEMA=os.environ.get("AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA", VARIABLES["totes_warehouse_schema"]),
        TOTES_PAYMENTS_API_PORT=str(PAYMENTS_API_PORT),
    )
    start_process("payments-api", [sys.executable, "-m", "payments_api", "--host", "127.0.0.1"], env)
    try:
        wait_http(f"http://127.0.0.1:{PAYMENTS_API_PORT}/openapi.json", 60)
    except TimeoutError:
        stop_process("payments-api")
        log("payments-api: did not start, see .stack/logs/payments-api.log")
        return
    log(f"payments-api: http://127.0.0.1:{PAYMENTS_API_PORT}/docs (a reader's bearer token: {PAYMENTS_API_TOKEN})")


# ------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------


def up() -> dict[str, str]:
    STACK.mkdir(exist_ok=True)
    admin = start_postgres()
    urls = prepare_databases(admin)
    start_process("s3", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)], dict(os.environ))
    wait_http(f"http://127.0.0.1:{S3_PORT}/moto-api/", 30)
    create_buckets(f"http://127.0.0.1:{S3_PORT}", VARIABLES["totes_ingestion_bucket"], VARIABLES["totes_processed_bucket"])
    for feed in FILE_FEEDS:  # the partner's bucket, as the partner would have it, notifying the feed's queue
        bucket, prefix = feed_location(feed)
        create_buckets(f"http://127.0.0.1:{S3_PORT}", bucket)
        url = notify_queue(f"http://127.0.0.1:{S3_PORT}", bucket, prefix, feed_queue_name(feed))
        if url != feed_queue_url(feed):
            raise RuntimeError(f"moto named the queue {url}, not {feed_queue_url(feed)}")
    start_process(
        "smtp",
        [sys.executable, "-m", "devtools.smtp", "--port", str(SMTP_PORT), "--maildir", str(STACK / "mail")],
        dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    start_process(
        "statsd",
        [sys.executable, "-m", "devtools.statsd", "--port", str(STATSD_PORT), "--out", str(STACK / "metrics" / "statsd.txt")],
        dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    env = airflow_env(urls)
    log("Airflow: migrating the metadata database")
    airflow(env, "db", "migrate")
    for name, args in AIRFLOW_COMPONENTS.items():
        start_process(f"airflow-{name}", [str(VENV_BIN / "airflow"), *args], env)
    if SIMULATE_EVERY > 0:
        start_process(
            "simulator",
            [sys.executable, "-m", "devtools.totesys.simulator", "--url", urls["totesys"], "--every", str(SIMULATE_EVERY)],
            dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    start_payments_api(urls)
    wait_http(f"http://127.0.0.1:{API_PORT}/api/v2/monitor/health", 180)
    log(f"Airflow UI: http://127.0.0.1:{API_PORT}  (user admin, password {stack_secrets()['admin_password']})")
    return urls


def wait_for_dag(urls: dict[str, str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(urls["airflow"], autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT 1 FROM dag WHERE dag_id = 'totes_etl'").fetchone() if _has_table(conn, "dag") else None
            if row:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the dag-processor did not register totes_etl (see .stack/logs/airflow-dag-processor.log)")
            time.sleep(2)


def _has_table(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0])


def wait_for_runs(urls: dict[str, str], since_runs: int, timeout: float = 900) -> list[tuple[str, str]]:
    """Wait until every totes_etl run created after the first ``since_runs`` has finished."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(urls["airflow"], autocommit=True) as conn:
        while True:
            runs = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = 'totes_etl' ORDER BY id").fetchall()[
                since_runs:
            ]
            if runs and all(state in ("success", "failed") for _, state in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError("totes_etl did not finish in time (see the UI or .stack/logs)")
            time.sleep(3)


def warehouse_counts(url: str, schema: str) -> dict[str, int]:
    from psycopg import sql

    from include.registry import WAREHOUSE_TABLES

    with psycopg.connect(url) as conn:
        return {
            t.name: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, t.name))).fetchone()[0]
            for t in WAREHOUSE_TABLES
        }


def demo() -> int:
    urls = up()
    env = airflow_env(urls)
    wait_for_dag(urls)
    with psycopg.connect(urls["airflow"], autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM dag_run WHERE dag_id = 'totes_etl'").fetchone()[0]
    # totes_reports has no clock: the Asset events of totes_etl's loads queue it.
    airflow(env, "dags", "unpause", "totes_reports")
    # Unpausing schedules the latest 15-minute interval; the trigger makes sure a run starts now.
    airflow(env, "dags", "unpause", "totes_etl")
    airflow(env, "dags", "trigger", "totes_etl")
    log("totes_etl: triggered, waiting for the run to finish")
    runs = wait_for_runs(urls, before)
    for run_id, state in runs:
        log(f"totes_etl: run {run_id} finished: {state}")
    ok = all(state == "success" for _, state in runs)
    ok = demo_feed(urls, env) and ok
    counts = warehouse_counts(urls["warehouse"], env["AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA"])
    print("\nWarehouse (schema {}):".format(env["AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA"]))
    for table, n in counts.items():
        print(f"  {table:<22}{n:>10,}")
    simulator = f"; the simulator changes totesys every {SIMULATE_EVERY} s" if SIMULATE_EVERY > 0 else ""
    print(
        f"\nAirflow UI: http://127.0.0.1:{API_PORT}  user admin, password {stack_secrets()['admin_password']}\n"
        f"totes_etl runs every 15 minutes{simulator}.\n"
        f"Failure mails land in {STACK / 'mail'}. Stop everything with: make down"
    )
    return 0 if ok and all(counts.values()) else 1


def demo_feed(urls: dict[str, str], env: dict[str, str], timeout: float = 300) -> bool:
    """Drop one month of sales targets into the sales department's bucket and show it arrive:
    the bucket's notification wakes totes_feed_sales_targets (an asset-triggered run, not the
    15-minute sweep), which loads sales_target. Needs dim_staff and dim_currency: after totes_etl."""
    from datetime import date

    from psycopg import sql

    from devtools.s3 import client
    from devtools.totesys.targets import drop, targets_document
    from include.registry import SALES_TARGETS

    schema = env["AIRFLOW_VAR_TOTES_WAREHOUSE_SCHEMA"]
    with psycopg.connect(urls["warehouse"]) as wh:
        staff = [r[0] for r in wh.execute(sql.SQL("SELECT staff_id FROM {}").format(sql.Identifier(schema, "dim_staff")))]
        codes = [r[0] for r in wh.execute(sql.SQL("SELECT currency_code FROM {}").format(sql.Identifier(schema, "dim_currency")))]
    airflow(env, "dags", "unpause", SALES_TARGETS.dag_id)
    time.sleep(10)  # the triggerer takes up the feed's watcher once the DAG is unpaused
    bucket, prefix = feed_location(SALES_TARGETS)
    document = targets_document(staff, codes, date(2024, 11, 1))
    key = drop(client(f"http://127.0.0.1:{S3_PORT}"), bucket, prefix, document)
    log(f"{SALES_TARGETS.dag_id}: dropped s3://{bucket}/{key} ({len(document['targets'])} targets), waiting for it to arrive")
    deadline = time.monotonic() + timeout
    with psycopg.connect(urls["airflow"], autocommit=True) as conn:
        while True:
            runs = conn.execute(
                "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s AND run_type = 'asset_triggered' ORDER BY id",
                (SALES_TARGETS.dag_id,),
            ).fetchall()
            if runs and runs[-1][2] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                log(
                    f"{SALES_TARGETS.dag_id}: no notification-triggered run finished in {timeout:.0f} s (see the triggerer's log)"
                )
                return False
            time.sleep(2)
    run_id, _, state = runs[-1]
    with psycopg.connect(urls["warehouse"]) as wh:
        (rows,) = wh.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE source_key = %s").format(sql.Identifier(schema, "sales_target")), (key,)
        ).fetchone()
    log(
        f"{SALES_TARGETS.dag_id}: run {run_id} (woken by the file's notification) finished: {state}; sales_target holds its {rows} rows"
    )
    return state == "success" and rows == len(document["targets"])


def down() -> int:
    for name in ["payments-api", "simulator", *(f"airflow-{n}" for n in AIRFLOW_COMPONENTS), "statsd", "smtp", "s3"]:
        stop_process(name)
    if not os.environ.get("TOTES_PG_URL"):
        cluster = LocalCluster(STACK / "pg", PG_PORT)
        if cluster.is_running():
            cluster.stop()
            log("PostgreSQL: stopped")
    return 0


def status() -> int:
    names = ["s3", "smtp", "statsd", *(f"airflow-{n}" for n in AIRFLOW_COMPONENTS), "simulator", "payments-api"]
    for name in names:
        pid = running_pid(name)
        print(f"{name:<24}{f'running (pid {pid})' if pid else 'stopped'}")
    cluster = LocalCluster(STACK / "pg", PG_PORT)
    print(
        f"{'postgres':<24}{'configured server' if os.environ.get('TOTES_PG_URL') else ('running' if cluster.is_running() else 'stopped')}"
    )
    return 0


def airflow_cli(args: list[str]) -> int:
    """The airflow CLI with the running stack's configuration (e.g. ``backfill create ...``)."""
    urls = {role: with_database(pg_admin_url(), name) for role, name in DATABASES.items()}
    done = subprocess.run([str(VENV_BIN / "airflow"), *args], env=airflow_env(urls), cwd=ROOT, check=False)  # nosec B603
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "demo", "airflow"])
    parser.add_argument("args", nargs=argparse.REMAINDER, help="for 'airflow': the CLI arguments")
    args = parser.parse_args(argv)
    if args.command == "airflow":
        return airflow_cli(args.args)
    if args.command == "up":
        up()
        return 0
    return {"down": down, "status": status, "demo": demo}[args.command]()


if __name__ == "__main__":
    raise SystemExit(main())
