"""Key and manifest logic of the lake (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from include.lake import Manifest, Part, manifest_key, part_key, run_prefix, schema_description

END = datetime(2024, 11, 15, 15, 15, tzinfo=UTC)


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
