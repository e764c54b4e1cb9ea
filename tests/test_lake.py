"""Window and key logic of the lake (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from include.lake import Manifest, Part, ingest_window, manifest_key, part_key, run_prefix, schema_description

END = datetime(2024, 11, 15, 15, 15, tzinfo=UTC)
START = END - timedelta(minutes=15)
LOOKBACK = timedelta(minutes=30)


def window(**kw):
    args = {
        "interval_start": START,
        "interval_end": END,
        "prev_success_end": START,
        "is_first_run": False,
        "table_in_lake": True,
        "full_refresh": False,
        "lookback": LOOKBACK,
    }
    return ingest_window(**(args | kw))


def test_an_ordinary_run_reads_from_the_previous_success_minus_the_lookback():
    w = window()
    assert w.mode == "incremental"
    assert w.start == datetime(2024, 11, 15, 14, 30)  # naive UTC, as totesys stores it
    assert w.start.tzinfo is None


def test_after_failed_runs_the_window_reaches_back_to_the_last_success():
    w = window(prev_success_end=END - timedelta(hours=6))
    assert w.start == datetime(2024, 11, 15, 8, 45)


def test_first_run_empty_lake_or_full_refresh_take_a_snapshot():
    assert window(is_first_run=True, prev_success_end=None).start is None
    assert window(table_in_lake=False).start is None
    assert window(full_refresh=True).mode == "snapshot"


def test_keys_are_deterministic_per_run_and_safe():
    prefix = run_prefix("sales_order", END, "scheduled__2024-11-15T15:00:00+00:00")
    assert prefix == "sales_order/date=2024-11-15/run=scheduled__2024-11-15T15-00-00-00-00/"
    assert part_key(prefix, 3).endswith("/part-00003.parquet")
    assert manifest_key(prefix).endswith("/manifest.json")
    assert run_prefix("x", END, "manual__a/../b c") == "x/date=2024-11-15/run=manual__a-..-b-c/"


def test_manifest_round_trips():
    m = Manifest(
        table="t",
        run_id="r",
        rows=3,
        parts=[Part("k", 3)],
        columns=schema_description(pa.schema([("a", pa.int32())])),
        window={"start": None, "interval_end": "2024-11-15T15:15:00"},
        mode="snapshot",
    )
    assert Manifest.from_json(m.to_json()) == m
