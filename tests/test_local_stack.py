"""The embedded local stack, for real: `devtools.stack demo` runs totes_etl through Airflow's own
scheduler and LocalExecutor, every listening socket it opens is on loopback, a real
`airflow backfill create` beside it changes nothing, and `down` stops it all."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg import sql

from devtools.pg import with_database
from devtools.smtp import body_text
from devtools.statsd import read_samples
from tests.conftest import stack_cli
from tests.expected import assert_warehouse_equals, expected_warehouse, warehouse_snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(demo_stack):
    return demo_stack.env, demo_stack.output


def stack_pids(stack_dir: Path) -> set[int]:
    roots = {int(p.read_text()) for p in (stack_dir / "pids").glob("*.pid")}
    roots.add(int((stack_dir / "pg" / "data" / "postmaster.pid").read_text().split()[0]))
    found = set()
    for pid in roots:
        proc = psutil.Process(pid)
        found |= {pid, *(c.pid for c in proc.children(recursive=True))}
    return found


def test_demo_fills_the_warehouse(stack):
    env, out = stack
    for table in ("dim_date", "dim_counterparty", "fact_sales_order", "fact_purchase_orders", "fact_payment"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(table))
        assert int(line.split()[-1].replace(",", "")) > 0, line
    assert f"http://127.0.0.1:{env['TOTES_AIRFLOW_PORT']}" in out


def test_the_demos_targets_file_arrived_through_its_notification_without_waiting_for_the_sweep(stack):
    """The sales targets feed end to end (README "File feeds"): the demo drops a month's file into
    the stack's targets bucket; moto's S3 notifies the feed's queue, the triggerer's AssetWatcher
    turns the message into an Asset event, the scheduler runs totes_feed_sales_targets, and the
    file's rows are in sales_target. The run was started by the file, not by the 15-minute clock."""
    env, out = stack
    admin = f"postgresql://postgres@127.0.0.1:{env['TOTES_PG_PORT']}/postgres"
    with psycopg.connect(with_database(admin, "totes_airflow"), autocommit=True) as meta:
        runs = meta.execute(
            "SELECT r.run_id, r.state, r.run_type, extract(epoch FROM r.end_date - r.queued_at), "
            "(SELECT count(*) FROM dagrun_asset_event e WHERE e.dag_run_id = r.id) "
            "FROM dag_run r WHERE r.dag_id = 'totes_feed_sales_targets' ORDER BY r.id"
        ).fetchall()
        events = meta.execute(
            "SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = 'sales_targets_arrivals'"
        ).fetchone()[0]
    woken = [r for r in runs if r[2] == "asset_triggered"]
    assert woken, runs
    run_id, state, _, seconds, consumed = woken[0]
    assert state == "success"
    assert consumed >= 1
    assert events >= 1
    assert seconds < 300, f"the run took {seconds:.0f} s from its queueing"
    line = next(ln for ln in out.splitlines() if "woken by the file's notification" in ln)
    assert run_id in line
    assert "finished: success" in line
    with psycopg.connect(with_database(admin, "warehouse")) as wh:
        rows = wh.execute("SELECT count(*), count(DISTINCT source_key), min(target_month) FROM sales_target").fetchone()
        (loaded,) = wh.execute("SELECT count(*) FROM etl_file WHERE outcome = 'loaded'").fetchone()
        staff, currencies = (wh.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("dim_staff", "dim_currency"))  # nosec B608
    assert rows[0] == staff * currencies
    assert rows[1] == 1
    assert str(rows[2]) == "2024-11-01"
    assert loaded == 1


def logged_metrics(stack_dir: Path) -> list[dict]:
    """The metric lines of every task log of the stack (JSON lines, as MWAA ships them to CloudWatch)."""
    out = []
    for path in (stack_dir / "airflow" / "logs").rglob("*.log"):
        for line in path.read_text().splitlines():
            if '"totes_metric"' in line:
                out.append(json.loads(line))
    return out


def test_airflows_metrics_and_the_pipelines_own_reach_the_stacks_statsd(stack):
    from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES

    env, _ = stack
    stack_dir = Path(env["TOTES_STACK_DIR"])
    admin = f"postgresql://postgres@127.0.0.1:{env['TOTES_PG_PORT']}/postgres"
    with psycopg.connect(with_database(admin, "totes_airflow"), autocommit=True) as meta:
        deadline = time.monotonic() + 600
        while meta.execute("SELECT count(*) FROM dag_run WHERE state IN ('running', 'queued')").fetchone()[0]:
            assert time.monotonic() < deadline, "a run did not finish"
            time.sleep(2)  # a scheduled run began: its metrics are on their way
    time.sleep(1)
    samples = read_samples(stack_dir / "metrics" / "statsd.txt")
    names = {s.name for s in samples}
    # Airflow's own, as MWAA would publish them (e.g. dagrun.duration.success -> DAGDurationSuccess)
    assert "airflow.dagrun.duration.success.totes_etl" in names
    assert "airflow.scheduler_heartbeat" in names

    def total(metric: str) -> dict[str, float]:
        sums: dict[str, float] = {}
        for s in samples:
            if s.name.startswith(f"airflow.totes.{metric}."):
                table = s.name.rsplit(".", 1)[1]
                sums[table] = sums.get(table, 0) + s.value
        return sums

    loaded, lag = total("rows_loaded"), {s.name.rsplit(".", 1)[1] for s in samples if ".totes.freshness_lag_seconds." in s.name}
    assert set(loaded) == {w.name for w in WAREHOUSE_TABLES}
    assert lag == {t.name for t in SOURCE_TABLES}
    with psycopg.connect(with_database(admin, "warehouse")) as wh:
        for w in WAREHOUSE_TABLES:
            (n,) = wh.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", w.name))).fetchone()
            if w.is_fact:  # a fact's loads insert versions: what they loaded is what it holds
                assert loaded[w.name] == n, (w.name, loaded[w.name], n)
            else:
                assert loaded[w.name] >= n > 0, (w.name, loaded[w.name], n)
    # the same figures in the task logs' structured lines, the fields CloudWatch's filters read
    logged: dict[str, float] = {}
    for line in logged_metrics(stack_dir):
        assert isinstance(line["value"], int | float), line
        if line["totes_metric"] == "rows_loaded":
            logged[line["table"]] = logged.get(line["table"], 0) + line["value"]
    assert logged == loaded


def test_the_stacks_payments_api_serves_its_reader_only(stack):
    env, out = stack
    token_file = Path(env["TOTES_STACK_DIR"]) / "secrets" / "payments-api.token"
    assert str(token_file) in out
    assert token_file.stat().st_mode & 0o777 == 0o600
    url = f"http://127.0.0.1:{env['TOTES_PAYMENTS_API_PORT']}/payments/last5"
    assert httpx.get(url, timeout=10).status_code == 401
    r = httpx.get(url, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}, timeout=10)
    assert r.status_code == 200
    assert len(r.json()["payments"]) == 5


def test_nothing_listens_beyond_loopback(stack):
    env, _ = stack
    listening = []
    for pid in stack_pids(Path(env["TOTES_STACK_DIR"])):
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [(pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    ports = {port for _, _, port in listening}
    for name in ("TOTES_PG_PORT", "TOTES_S3_PORT", "TOTES_SMTP_PORT", "TOTES_AIRFLOW_PORT"):
        assert int(env[name]) in ports, f"nothing listens on {name}"
    assert all(ip in ("127.0.0.1", "::1") for _, ip, _ in listening), listening


def test_a_backfill_beside_the_schedule_changes_nothing(stack):
    env, _ = stack
    admin = f"postgresql://postgres@127.0.0.1:{env['TOTES_PG_PORT']}/postgres"
    urls = {name: with_database(admin, name) for name in ("totesys", "warehouse", "totes_airflow")}
    with psycopg.connect(urls["totes_airflow"], autocommit=True) as meta:
        first_start = meta.execute("SELECT min(data_interval_start) FROM dag_run WHERE dag_id = 'totes_etl'").fetchone()[0]
        (last_backfill,) = meta.execute("SELECT coalesce(max(id), 0) FROM backfill").fetchone()  # this one's come after
    with psycopg.connect(urls["warehouse"]) as wh:
        before = warehouse_snapshot(wh, "public")

    # two 15-minute intervals before the first scheduled run
    created = stack_cli(
        env, "airflow", "backfill", "create", "--dag-id", "totes_etl",
        "--from-date", (first_start - timedelta(minutes=30)).isoformat(),
        "--to-date", (first_start - timedelta(minutes=15)).isoformat(),
        "--max-active-runs", "1", timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]

    deadline = time.monotonic() + 600
    with psycopg.connect(urls["totes_airflow"], autocommit=True) as meta:
        while True:
            runs = meta.execute(
                "SELECT r.state FROM dag_run r JOIN backfill_dag_run b ON b.dag_run_id = r.id "
                "WHERE r.dag_id = 'totes_etl' AND r.run_type = 'backfill' AND b.backfill_id > %s",
                (last_backfill,),
            ).fetchall()
            if len(runs) == 2 and all(s in ("success", "failed") for (s,) in runs):
                break
            assert time.monotonic() < deadline, f"backfill unfinished: {runs}"
            time.sleep(3)
    assert all(s == "success" for (s,) in runs), runs

    with psycopg.connect(urls["totesys"]) as src, psycopg.connect(urls["warehouse"]) as wh:
        after = warehouse_snapshot(wh, "public")
        assert after == before
        assert_warehouse_equals(after, expected_warehouse(src, wh, "public", facts_before=before))


def deadline_mails(stack_dir: Path) -> list:
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted((stack_dir / "mail").glob("*.eml"))]
    return [m for m in mails if "missed its deadline" in str(m["Subject"])]


def test_a_run_unfinished_at_its_deadline_sends_exactly_one_mail(stack):
    """The deadline alert end to end: the scheduler stores the run's deadline, marks it missed,
    the triggerer runs include.deadline's callback, the mail reaches the stack's SMTP server."""
    env, _ = stack
    stack_dir = Path(env["TOTES_STACK_DIR"])
    admin = f"postgresql://postgres@127.0.0.1:{env['TOTES_PG_PORT']}/postgres"
    urls = {name: with_database(admin, name) for name in ("totesys", "warehouse", "totes_airflow")}
    # Every run so far finished in time or had no deadline (a backfill's): no mail yet.
    assert deadline_mails(stack_dir) == []
    with psycopg.connect(urls["totes_airflow"], autocommit=True) as meta:
        first_start = meta.execute("SELECT min(data_interval_start) FROM dag_run WHERE dag_id = 'totes_etl'").fetchone()[0]
    with psycopg.connect(urls["warehouse"]) as wh:
        before = warehouse_snapshot(wh, "public")

    # A run of an interval before every other run's, whose deadline is 10 s from now: a whole
    # run takes far longer, so it is still running when the deadline passes.
    end = first_start - timedelta(minutes=45)
    minutes = ((datetime.now(UTC) - end).total_seconds() + 10) / 60
    base = f"http://127.0.0.1:{env['TOTES_AIRFLOW_PORT']}"
    password = json.loads((stack_dir / "secrets.json").read_text())["admin_password"]
    token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30).json()["access_token"]
    run_id = f"deadline_test__{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{base}/api/v2/dags/totes_etl/dagRuns",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "dag_run_id": run_id,
            "logical_date": (end - timedelta(minutes=15)).isoformat(),  # the interval's start, as the schedule's
            "data_interval_start": (end - timedelta(minutes=15)).isoformat(),
            "data_interval_end": end.isoformat(),
            "conf": {"deadline_minutes": minutes},
        },
        timeout=30,
    )
    assert created.status_code == 200, created.text

    deadline = time.monotonic() + 600
    with psycopg.connect(urls["totes_airflow"], autocommit=True) as meta:
        while True:
            (state,) = meta.execute("SELECT state FROM dag_run WHERE dag_id = 'totes_etl' AND run_id = %s", (run_id,)).fetchone()
            if state in ("success", "failed"):
                break
            assert time.monotonic() < deadline, f"{run_id} unfinished: {state}"
            time.sleep(2)
        (missed,) = meta.execute(
            "SELECT array_agg(d.missed) FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id WHERE r.run_id = %s", (run_id,)
        ).fetchone()
    assert state == "success"  # late, not failed: the run went on
    assert missed == [True]

    mails = []
    until = time.monotonic() + 60  # the triggerer sends it; give it a moment after the run
    while not mails and time.monotonic() < until:
        mails = deadline_mails(stack_dir)
        time.sleep(1)
    time.sleep(5)  # and a little longer, to see that there is no second one
    mails = deadline_mails(stack_dir)
    assert len(mails) == 1, [str(m["Subject"]) for m in mails]
    subject, body = str(mails[0]["Subject"]), body_text(mails[0])
    assert run_id in subject
    assert "totes_etl" in body
    assert run_id in body
    assert "Deadline" in body
    expected = end + timedelta(minutes=minutes)
    named = datetime.fromisoformat(subject.rsplit(" ", 1)[1])
    assert abs((named - expected).total_seconds()) < 1, (named, expected)

    with psycopg.connect(urls["warehouse"]) as wh:
        assert warehouse_snapshot(wh, "public") == before  # an old interval again: nothing new
