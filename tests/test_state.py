"""The join state in the processed bucket: merges converge, concurrent writers lose nothing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from include.ingest import source_schema
from include.lake import Lake
from include.registry import SOURCE
from include.state import StateConflict, StateStore

T0 = datetime(2024, 11, 15, 9, 0)


def addresses(*rows: tuple[int, str, datetime]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "address_id": i,
                "address_line_1": "x",
                "address_line_2": None,
                "district": None,
                "city": "c",
                "postal_code": "p",
                "country": "k",
                "phone": phone,
                "created_at": T0,
                "last_updated": at,
            }
            for i, phone, at in rows
        ],
        schema=source_schema(SOURCE["address"]),
    )


@pytest.fixture
def store(new_buckets, s3_endpoint, airflow_connections):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    (bucket,) = new_buckets("processed")
    airflow_connections(totesys_url="postgresql://x/x", warehouse_url="postgresql://x/x", ingestion=bucket, processed=bucket)
    return StateStore(Lake(S3Hook(aws_conn_id="aws_default"), bucket))


def test_merge_keeps_the_newest_version_whatever_the_order(store):
    store.merge("address", addresses((1, "b", T0 + timedelta(minutes=5)), (2, "x", T0)), "address_id")
    merged = store.merge("address", addresses((1, "a", T0)), "address_id")  # a late, older version
    assert dict(zip(merged["address_id"].to_pylist(), merged["phone"].to_pylist(), strict=True)) == {1: "b", 2: "x"}
    state, _ = store.read("address")
    assert state.equals(merged)


def test_a_write_based_on_a_stale_read_is_refused(store):
    store.merge("address", addresses((1, "a", T0)), "address_id")
    _, etag = store.read("address")
    store.merge("address", addresses((2, "b", T0)), "address_id")  # someone else writes meanwhile
    with pytest.raises(StateConflict):
        store.write("address", addresses((3, "c", T0)), etag)


def test_concurrent_merges_lose_nothing(store):
    errors = []

    def writer(i: int) -> None:
        try:
            store.merge("address", addresses((i, f"p{i}", T0)), "address_id")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    state, _ = store.read("address")
    assert sorted(state["address_id"].to_pylist()) == [1, 2, 3, 4, 5, 6]
