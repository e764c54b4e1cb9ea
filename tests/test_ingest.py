"""The ingest stage's reads (include.ingest): COPY of a window, and the data contract, on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from psycopg import sql

from include.ingest import ContractViolation, Window, check_contract, extract_batches, ingest_window, source_schema
from include.pgarrow import copy_in_batches
from include.registry import SOURCE

T0 = datetime(2024, 11, 15, 9, 30, 5, 123000)
T1 = datetime(2024, 11, 15, 9, 45, 0, 1000)
T2 = datetime(2024, 11, 15, 10, 0, 0, 0)

AWKWARD_TEXT = ["", 'quote " inside', "comma, inside", "new\nline", "back\\slash", "Ünïcödé ✓", "  spaces  ", "NULL", r"\N"]


def test_copy_round_trip_keeps_nulls_empty_strings_and_awkward_text(totesys):
    rows = [
        {
            "address_id": i + 1,
            "address_line_1": text,
            "address_line_2": None if i % 2 else text,
            "district": None,
            "city": "c",
            "postal_code": "p",
            "country": "x",
            "phone": "1",
            "created_at": T0,
            "last_updated": T0,
        }
        for i, text in enumerate(AWKWARD_TEXT)
    ]
    data = pa.Table.from_pylist(rows, schema=source_schema(SOURCE["address"]))
    with totesys.cursor() as cur:
        assert copy_in_batches(cur, sql.Identifier("address"), data.column_names, data.to_batches()) == len(rows)
    back = pa.Table.from_batches(list(extract_batches(totesys, SOURCE["address"], Window(None, T2))))
    assert back.sort_by("address_id").to_pylist() == rows


def test_an_empty_result_gives_no_batches(totesys):
    assert list(extract_batches(totesys, SOURCE["staff"], Window(None, T2))) == []


def test_the_window_reads_from_its_start(totesys):
    totesys.execute(
        "INSERT INTO department (department_name, created_at, last_updated) VALUES ('a', %s, %s), ('b', %s, %s), ('c', %s, %s)",
        (T0, T0, T1, T1, T2, T2),
    )
    read = pa.Table.from_batches(list(extract_batches(totesys, SOURCE["department"], Window(T1, T2))))
    assert sorted(read.column("department_name").to_pylist()) == ["b", "c"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("ALTER TABLE staff ADD COLUMN nickname text", "column nickname is new"),
        ("ALTER TABLE staff DROP COLUMN email_address", "column email_address is missing"),
        ("ALTER TABLE staff RENAME COLUMN last_name TO surname", "column last_name is missing"),
        ("ALTER TABLE staff ALTER COLUMN first_name TYPE varchar(20)", "column first_name has data_type"),
        ("ALTER TABLE staff ALTER COLUMN email_address DROP NOT NULL", "column email_address became nullable"),
        ("ALTER TABLE payment ALTER COLUMN payment_amount TYPE numeric(12,4)", "column payment_amount has numeric_precision"),
    ],
)
def test_schema_drift_breaks_the_contract_and_names_table_and_column(totesys, change, expected):
    for table in SOURCE.values():
        check_contract(totesys, table)  # the DDL we built honours every contract
    totesys.execute(change)
    table = change.split()[2]
    with pytest.raises(ContractViolation, match=expected) as err:
        check_contract(totesys, SOURCE[table])
    assert err.value.table == table


# The window (pure)

WINDOW_END = datetime(2024, 11, 15, 15, 15, tzinfo=UTC)
START = WINDOW_END - timedelta(minutes=15)
LOOKBACK = timedelta(minutes=30)


def window(**kw):
    args = {
        "interval_start": START,
        "interval_end": WINDOW_END,
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
    w = window(prev_success_end=WINDOW_END - timedelta(hours=6))
    assert w.start == datetime(2024, 11, 15, 8, 45)


def test_first_run_empty_lake_or_full_refresh_take_a_snapshot():
    assert window(is_first_run=True, prev_success_end=None).start is None
    assert window(table_in_lake=False).start is None
    assert window(full_refresh=True).mode == "snapshot"
