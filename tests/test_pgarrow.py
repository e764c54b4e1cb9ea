"""COPY in and out between PostgreSQL and Arrow (include.pgarrow), on real PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from include.pgarrow import copy_out_batches


def test_copy_out_keeps_exact_types(totesys):
    query = sql.SQL(
        "SELECT 2147483647::int, 12345678.91::numeric(10,2), '2024-02-29 23:59:59.999'::timestamp(3), true, NULL::int"
    )
    schema = pa.schema(
        [("i", pa.int32()), ("n", pa.decimal128(10, 2)), ("t", pa.timestamp("ms")), ("b", pa.bool_()), ("z", pa.int32())]
    )
    (batch,) = list(copy_out_batches(totesys, query, schema))
    assert batch.to_pylist() == [
        {"i": 2147483647, "n": Decimal("12345678.91"), "t": datetime(2024, 2, 29, 23, 59, 59, 999000), "b": True, "z": None}
    ]


SERIES = sql.SQL("SELECT g, 'row ' || g, '2024-11-15'::timestamp(3) + g * interval '1 second' FROM generate_series(1, 50000) g")
SERIES_SCHEMA = pa.schema([("g", pa.int32()), ("s", pa.string()), ("t", pa.timestamp("ms"))])


def test_copy_out_streams_many_blocks_in_order_with_nothing_lost(totesys):
    batches = list(copy_out_batches(totesys, SERIES, SERIES_SCHEMA, batch_rows=1000))
    assert len(batches) > 10  # many blocks went through the reader
    assert max(b.num_rows for b in batches) < 5000  # each bounded by the batch size, not the result
    ids = pa.concat_arrays([b.column("g") for b in batches]).to_pylist()
    assert ids == list(range(1, 50001))
    assert batches[-1].to_pylist()[-1] == {"g": 50000, "s": "row 50000", "t": datetime(2024, 11, 15, 13, 53, 20)}


def test_a_value_that_does_not_fit_raises_and_the_connection_stays_usable(totesys):
    bad = sql.SQL("SELECT g, 'x', CASE WHEN g = 40000 THEN 'not a time' ELSE '2024-11-15' END FROM generate_series(1, 50000) g")
    with pytest.raises(pa.ArrowInvalid, match="not a time"):
        for _ in copy_out_batches(totesys, bad, SERIES_SCHEMA, batch_rows=1000):
            pass
    assert totesys.execute("SELECT 1").fetchone() == (1,)


def test_a_reader_that_stops_early_cancels_the_copy_and_leaves_the_connection_usable(totesys):
    import threading

    stream = copy_out_batches(totesys, SERIES, SERIES_SCHEMA, batch_rows=1000)
    first = next(stream)
    stream.close()
    assert first.column("g").to_pylist()[0] == 1
    assert not [t for t in threading.enumerate() if t.name == "copy-out"]
    assert totesys.execute("SELECT count(*) FROM generate_series(1, 3)").fetchone() == (3,)


def test_a_failing_query_raises_its_database_error(totesys):
    with pytest.raises(psycopg.errors.UndefinedTable):
        list(copy_out_batches(totesys, sql.SQL("SELECT * FROM no_such_table"), SERIES_SCHEMA))
    assert totesys.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1.234::numeric AS n, '2024-11-15'::timestamp AS t",  # more decimals than numeric(10,2)
        "SELECT 1.23::numeric AS n, '2024-11-15 09:30:00.000123'::timestamp AS t",  # finer than milliseconds
    ],
)
def test_a_value_finer_than_its_type_raises_rather_than_being_rounded(totesys, query):
    schema = pa.schema([("n", pa.decimal128(10, 2)), ("t", pa.timestamp("ms"))])
    with pytest.raises(pa.ArrowInvalid):
        list(copy_out_batches(totesys, sql.SQL(query), schema))


def test_the_reader_reads_in_a_read_only_session_with_the_callers_credentials(totesys):
    query = sql.SQL("SELECT current_setting('default_transaction_read_only'), current_user, current_database()")
    schema = pa.schema([("ro", pa.string()), ("user", pa.string()), ("db", pa.string())])
    (batch,) = list(copy_out_batches(totesys, query, schema))
    assert batch.to_pylist() == [{"ro": "on", "user": totesys.info.user, "db": totesys.info.dbname}]
