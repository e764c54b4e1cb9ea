"""The embedded local stack, for real: `devtools.stack demo` runs totes_etl through Airflow's own
scheduler and LocalExecutor, every listening socket it opens is on loopback, a real
`airflow backfill create` beside it changes nothing, and `down` stops it all."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from devtools.pg import with_database
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
