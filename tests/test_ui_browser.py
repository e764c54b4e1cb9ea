"""The Airflow UI, as a person sees it: a real headless Chromium logs in to the local stack's
Airflow and finds every task of the demo's totes_etl runs green in the DAG's grid.

The stack is the session's `demo_stack` (tests/conftest.py), shared with tests/test_local_stack.py
(a temporary stack dir, free ports, scale 0.05, no simulator, `python -m devtools.stack demo`). Chromium is
Debian's (`scripts/install_chromium.sh`), driven by playwright through `executable_path`;
playwright's own browser download is never used. Without /usr/bin/chromium the test skips.

What it checks, for every run the demo waited for:
* the grid (DOM): with every task group expanded, each task has a cell in the run's column, and
  the tooltip the UI shows on hovering it says "State: Success";
* the UI's own REST API, called from the logged-in page (its session cookie, no token of ours):
  the run is a success and so is each of its task instances, which include all 34 pipeline tasks
  (ensure_warehouse_schema, 11 ingest.*, 11 transform.*, 11 load.*) the registry implies.
* Assets: every warehouse table is an Asset (postgres://.../<schema>/<table>) whose events, in
  the REST API, name the task that produced it (load.<table>); fact_payment's Asset page shows
  its URI and the event from totes_etl.
Screenshots of the expanded grid and of an Asset's page are saved to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
DAG_ID = "totes_etl"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root; Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The pipeline's tasks, from the registry: what the run must contain at least.
PIPELINE_TASKS = {
    "ensure_warehouse_schema",
    *(f"ingest.{t.name}" for t in SOURCE_TABLES),
    *(f"transform.{t.name}" for t in WAREHOUSE_TABLES),
    *(f"load.{t.name}" for t in WAREHOUSE_TABLES),
}


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium with scripts/install_chromium.sh")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(chromium, demo_stack):
    """The session's local stack after `demo`: (base URL, admin password, run ids the demo waited for)."""
    runs = re.findall(rf"{DAG_ID}: run (\S+) finished: (\w+)", demo_stack.output)
    assert runs, demo_stack.output[-3000:]
    password = json.loads((demo_stack.stack_dir / "secrets.json").read_text())["admin_password"]
    return f"http://127.0.0.1:{demo_stack.env['TOTES_AIRFLOW_PORT']}", password, [run_id for run_id, _ in runs]


# ------------------------------------------------------------------------------------------
# What the browser does (also usable against any running stack)
# ------------------------------------------------------------------------------------------


def log_in(page, base_url: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_url(re.compile(r".*/auth/login.*"))  # the UI sends a visitor without a session to log in
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)


@contextlib.contextmanager
def logged_in_page(pw, chromium: Path, profile: Path, base_url: str, password: str, height: int = 1100):
    """A page of a fresh Chromium profile, logged in to the UI as admin."""
    browser = pw.chromium.launch_persistent_context(
        str(profile), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": height},
    )  # fmt: skip
    try:
        page = browser.new_page()
        log_in(page, base_url, password)
        yield page
    finally:
        browser.close()


def api_get(page, path: str) -> dict:
    """GET on the UI's own REST API from the logged-in page (its cookie authenticates it)."""
    status, body = page.evaluate(
        "async (path) => { const r = await fetch(path, {headers: {Accept: 'application/json'}});"
        " return [r.status, await r.text()]; }",
        path,
    )
    assert status == 200, f"GET {path}: {status} {body[:500]}"
    return json.loads(body)


def task_states_from_api(page, run_id: str) -> tuple[str, dict[str, str]]:
    run = api_get(page, f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")
    tis = api_get(page, f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=1000")
    assert tis["total_entries"] == len(tis["task_instances"])
    return run["state"], {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}


def open_grid_expanded(page, base_url: str, run_id: str | None = None) -> None:
    """The DAG's page (or one run's page) with its grid, every task group expanded."""
    page.goto(f"{base_url}/dags/{DAG_ID}" + (f"/runs/{quote(run_id, safe='')}" if run_id else ""))
    page.wait_for_load_state("networkidle")
    page.locator('[data-testid="task-ensure_warehouse_schema"]').first.wait_for()
    expand_all = page.get_by_test_id("expand-all-button")  # the grid's own "Expand all task groups"
    if expand_all.is_enabled():  # disabled when every group is open already (the UI remembers it)
        expand_all.click()
    for toggle in page.locator('span[aria-label="Toggle group"]').all():
        group = toggle.get_attribute("data-group-id")
        # an expanded group shows its tasks' cells, whose ids are grid-<run id>-<group>.<task>
        page.locator(f'a[id^="grid-"][id*="-{group}."]').first.wait_for(timeout=10_000)


def grid_cell_states(page, run_id: str, task_ids: set[str]) -> dict[str, str]:
    """The state the grid shows for each task of the run: the tooltip of its cell says 'State: X'."""
    states = {}
    for task_id in sorted(task_ids):
        cell = page.locator(f'a[id="grid-{run_id}-{task_id}"]')
        assert cell.count() == 1, f"the grid has no cell for {task_id} in run {run_id}"
        cell.scroll_into_view_if_needed()
        cell.hover()
        tooltip = page.locator('[data-scope="tooltip"][data-part="content"]', has_text=f"Task ID: {task_id}").filter(
            has_text=f"Run ID: {run_id}"
        )
        try:
            tooltip.first.wait_for(timeout=10_000)
        except Exception:  # a busy machine can miss the hover: move away and hover again, once
            page.mouse.move(0, 0)
            cell.hover()
            try:
                tooltip.first.wait_for(timeout=30_000)
            except Exception:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "ui-grid-failure.png"), full_page=True)
                raise
        match = re.search(r"State:\s*([^\n]+)", tooltip.first.inner_text())
        assert match, tooltip.first.inner_text()
        states[task_id] = match.group(1).strip().lower().replace(" ", "_")  # "Upstream Failed" -> upstream_failed
        page.mouse.move(0, 0)  # let the tooltip close before the next one
    return states


# ------------------------------------------------------------------------------------------
# The test
# ------------------------------------------------------------------------------------------


def test_grid_shows_every_task_of_the_demo_run_succeeded(stack, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    base_url, password, run_ids = stack
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile each time
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1400},
        )
        try:
            page = browser.new_page()
            log_in(page, base_url, password)
            me = api_get(page, "/ui/auth/me")
            assert me.get("username", me.get("name")) == "admin", me

            api_states = {}
            for run_id in run_ids:
                run_state, states = task_states_from_api(page, run_id)
                missing = PIPELINE_TASKS - states.keys()
                assert not missing, f"run {run_id} lacks pipeline tasks: {sorted(missing)}"
                not_ok = {t: s for t, s in states.items() if s != "success"}
                assert not not_ok, f"run {run_id}: tasks not successful: {not_ok}"
                assert run_state == "success", run_id
                api_states[run_id] = states

            open_grid_expanded(page, base_url)
            for run_id in run_ids:
                shown = grid_cell_states(page, run_id, set(api_states[run_id]))
                assert len(shown) >= len(PIPELINE_TASKS) == 34
                assert shown == dict.fromkeys(api_states[run_id], "success"), shown
            # the picture: the last run's page, its grid expanded, no tooltip in the way
            open_grid_expanded(page, base_url, run_ids[-1])
            page.locator('[data-scope="tooltip"][data-part="content"]').first.wait_for(state="hidden", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "ui-grid.png"), full_page=True)

            check_assets_view(page, base_url)
        finally:
            browser.close()
    assert (ARTIFACTS / "ui-grid.png").stat().st_size > 10_000
    assert (ARTIFACTS / "ui-asset.png").stat().st_size > 10_000
    assert (ARTIFACTS / "ui-assets.png").stat().st_size > 10_000


def check_assets_view(page, base_url: str) -> None:
    """Every warehouse table is an active Asset declared by its load task, whose events come
    from that task (REST API, as the Assets view reads it); the Assets view lists each one with
    its producing task; a person opening a table's Asset page sees its URI and its events."""
    assets = api_get(page, "/api/v2/assets?limit=200&uri_pattern=postgres")["assets"]  # active ones only
    by_table = {a["uri"].rsplit("/", 1)[-1]: a for a in assets if a["uri"].startswith("postgres://")}
    assert set(by_table) >= {t.name for t in WAREHOUSE_TABLES}, sorted(by_table)
    for t in WAREHOUSE_TABLES:
        producers = {(r["dag_id"], r["task_id"]) for r in by_table[t.name]["producing_tasks"]}
        assert producers == {(DAG_ID, f"load.{t.name}")}, t.name
        events = api_get(page, f"/api/v2/assets/events?asset_id={by_table[t.name]['id']}")["asset_events"]
        assert events, t.name
        assert {(e["source_dag_id"], e["source_task_id"]) for e in events} == {(DAG_ID, f"load.{t.name}")}, t.name
        assert all(e["extra"]["written"] > 0 for e in events), t.name
    assert {d["dag_id"] for d in by_table["fact_sales_order"]["scheduled_dags"]} == {"totes_reports"}

    # The Assets view: each warehouse table on a row of its own, with its one producing task,
    # which a click on the count names.
    page.goto(f"{base_url}/assets")
    page.wait_for_load_state("networkidle")
    rows = {}
    for t in WAREHOUSE_TABLES:
        row = page.get_by_role("row").filter(has=page.get_by_text(by_table[t.name]["name"], exact=True))
        row.first.wait_for(timeout=30_000)
        assert row.count() == 1, t.name
        assert re.search(r"\b1 Task\b", row.inner_text()), (t.name, row.inner_text())
        rows[t.name] = row
    page.screenshot(path=str(ARTIFACTS / "ui-assets.png"), full_page=True)
    rows["fact_payment"].get_by_text("1 Task").click()
    page.get_by_text(re.compile(r"load\.fact_payment")).first.wait_for(timeout=30_000)

    payment = by_table["fact_payment"]
    page.goto(f"{base_url}/assets/{payment['id']}")
    page.wait_for_load_state("networkidle")
    page.get_by_text(payment["uri"]).first.wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"^\d+ Asset Events?$")).first.wait_for(timeout=30_000)
    page.get_by_role("link", name=DAG_ID).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "ui-asset.png"), full_page=True)


def test_the_health_page_in_the_ui_shows_the_warehouses_own_figures(stack, chromium, demo_stack, tmp_path):
    """The "Pipeline health" entry of the UI's navigation opens the plugin's page (README,
    "Health page"); each figure it shows is the one the warehouse keeps for that run and table."""
    import psycopg
    from playwright.sync_api import sync_playwright

    from include.registry import SOURCE_TABLES as SOURCES

    base_url, password, run_ids = stack
    server = f"postgresql://postgres@127.0.0.1:{demo_stack.env['TOTES_PG_PORT']}"
    # the DAG stays unpaused: a scheduled run may start meanwhile; its figures are still moving,
    # so only the runs finished by now are compared
    with psycopg.connect(f"{server}/totes_airflow") as meta:
        finished = {
            r[0] for r in meta.execute("SELECT run_id FROM dag_run WHERE dag_id = %s AND end_date IS NOT NULL", (DAG_ID,))
        }
    admin = f"{server}/warehouse"
    with psycopg.connect(admin) as wh:
        loaded = dict(
            wh.execute("SELECT run_id, sum(rows_written) FROM etl_stage_figures WHERE stage = 'load' GROUP BY 1").fetchall()
        )
        lags = dict(
            wh.execute(
                "SELECT DISTINCT ON (table_name) table_name, lag_seconds FROM etl_check_result WHERE check_name = 'freshness' "
                "ORDER BY table_name, interval_end DESC, recorded_at DESC"
            ).fetchall()
        )
    assert set(run_ids) <= set(loaded), (run_ids, loaded)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        # without the UI's login the page answers nothing (a request context has no cookie)
        anonymous = pw.request.new_context()
        try:
            assert anonymous.get(f"{base_url}/totes-health/").status == 401
        finally:
            anonymous.dispose()
        with logged_in_page(pw, chromium, tmp_path / "chromium-profile", base_url, password, height=1200) as page:
            page.goto(f"{base_url}/")
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Pipeline health").click()
            page.wait_for_url(re.compile(r".*/plugin/totes-health"))
            frame = page.frame_locator("iframe").first
            frame.locator("#runs").wait_for(timeout=30_000)
            shown = {
                row.get_attribute("data-run"): int(row.locator("td[data-figure='load']").inner_text().replace(",", ""))
                for row in frame.locator("#runs tr[data-run]").all()
            }
            assert shown, "the page lists no run"
            done = {run_id: n for run_id, n in shown.items() if run_id in finished}
            assert done == {run_id: loaded[run_id] for run_id in done}
            assert set(run_ids) <= set(done)
            fresh = {
                row.get_attribute("data-table"): float(row.locator("td[data-figure='lag_seconds']").get_attribute("data-value"))
                for row in frame.locator("#freshness tr[data-table]").all()
            }
            assert fresh == {t.name: lags[t.name] for t in SOURCES}
            assert frame.locator("#reconcile tr[data-status='passed']").count() == len(WAREHOUSE_TABLES) - 1  # not the calendar
            assert frame.locator("svg[data-plot='rows loaded']").count() == 1
            page.screenshot(path=str(ARTIFACTS / "ui-health.png"), full_page=True)
    assert (ARTIFACTS / "ui-health.png").stat().st_size > 10_000


def test_a_backfill_made_in_the_ui_runs_and_leaves_the_warehouse_unchanged(stack, chromium, demo_stack, tmp_path):
    """The runbook's first way to backfill: the DAG's Trigger button, Backfill, a date range in
    2023 (after start_date, before anything the demo ran; one interval, to keep the suite short),
    Run Backfill. Its run succeeds, does real work (each ingest read its table: figures in the
    warehouse) and changes no row."""
    import psycopg
    from playwright.sync_api import sync_playwright

    from tests.expected import warehouse_snapshot

    base_url, password, _ = stack
    server = f"postgresql://postgres@127.0.0.1:{demo_stack.env['TOTES_PG_PORT']}"
    with psycopg.connect(f"{server}/totes_airflow", autocommit=True) as meta:
        (last_backfill,) = meta.execute("SELECT coalesce(max(id), 0) FROM backfill").fetchone()
    with psycopg.connect(f"{server}/warehouse") as wh:
        before = warehouse_snapshot(wh, "public")
    with sync_playwright() as pw, logged_in_page(pw, chromium, tmp_path / "chromium-profile", base_url, password) as page:
        page.goto(f"{base_url}/dags/{DAG_ID}")
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Backfill", exact=True).click()
        dialog.locator("input[name='from_date']").fill("2023-06-01T10:00")
        dialog.locator("input[name='to_date']").fill("2023-06-01T10:00")
        dialog.get_by_text(re.compile(r"^1 runs? will be triggered")).wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "ui-backfill-form.png"))
        dialog.get_by_role("button", name="Run Backfill").click()
        dialog.wait_for(state="hidden", timeout=30_000)
        backfills = api_get(page, f"/api/v2/backfills?dag_id={DAG_ID}")["backfills"]
    (made,) = [b for b in backfills if b["id"] > last_backfill]
    assert (made["from_date"][:16], made["to_date"][:16]) == ("2023-06-01T10:00", "2023-06-01T10:00")

    deadline = time.monotonic() + 900
    with psycopg.connect(f"{server}/totes_airflow", autocommit=True) as meta:
        while True:
            runs = meta.execute(
                "SELECT r.run_id, r.state FROM backfill_dag_run b JOIN dag_run r ON r.id = b.dag_run_id WHERE b.backfill_id = %s",
                (made["id"],),
            ).fetchall()
            if len(runs) == 1 and all(state in ("success", "failed") for _, state in runs):
                break
            assert time.monotonic() < deadline, f"the backfill's runs did not finish: {runs}"
            time.sleep(5)
    assert {state for _, state in runs} == {"success"}, runs
    with psycopg.connect(f"{server}/warehouse") as wh:
        assert warehouse_snapshot(wh, "public") == before
        ((run_id, _),) = runs
        read = dict(
            wh.execute(
                "SELECT table_name, rows_read FROM etl_stage_figures WHERE stage = 'ingest' AND run_id = %s", (run_id,)
            ).fetchall()
        )
    # the run really ran its tasks (Airflow makes none before start_date, 2022-11-01 now): the
    # first run of those intervals, each ingest read its whole table
    assert set(read) == {t.name for t in SOURCE_TABLES}
    assert all(n > 0 for n in read.values()), read
