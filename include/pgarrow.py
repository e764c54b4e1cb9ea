"""Move rows between PostgreSQL and Arrow through COPY, in bounded batches.

Both directions go through PostgreSQL's CSV COPY format, parsed and written by Arrow's C++ CSV
code, so no value is converted in Python: ``COPY (SELECT ...) TO STDOUT`` is cut into blocks
of whole rows parsed by ``pyarrow.csv.read_csv``, and ``COPY ... FROM STDIN`` is fed by
``pyarrow.csv.write_csv``.
Memory is bounded by the batch size, never by the table size.

The CSV conventions of both sides agree on the two cases that matter: NULL is an unquoted
empty field and an empty string is ``""``.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from include.registry import Column, SqlType

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

DEFAULT_BATCH_ROWS = 100_000


def arrow_type(sql_type: SqlType) -> pa.DataType:
    """The Arrow type that holds a registry SQL type without loss (enums travel as their labels)."""
    if sql_type.base in ("integer", "serial"):
        return pa.int32()
    if sql_type.base == "numeric":
        return pa.decimal128(*sql_type.args)
    if sql_type.base == "timestamp":
        return pa.timestamp("ms")  # timestamp(3): milliseconds
    return {"boolean": pa.bool_(), "date": pa.date32(), "time": pa.time64("us")}.get(sql_type.base, pa.string())


def arrow_schema(columns: Iterable[Column]) -> pa.Schema:
    """The Arrow schema of registry columns."""
    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in columns])


class _Stopped(Exception):
    """The consumer of a COPY's blocks has gone: leave the COPY (psycopg cancels it)."""


_END = object()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped


def _produce_blocks(
    cursor: psycopg.Cursor,
    copy_sql: sql.Composable,
    params: Iterable | None,
    block_bytes: int,
    q: queue.Queue,
    stop: threading.Event,
) -> None:
    """Read ``COPY ... TO STDOUT`` and hand it on in blocks of whole rows of about ``block_bytes``.

    PostgreSQL sends one message per row; gathering them into a bytearray costs little more than
    reading them, while handing each row to Arrow through a Python file object would cost
    more than the read itself (README, "Performance")."""
    try:
        with cursor.copy(copy_sql, params) as copy:
            block = bytearray()
            for row in copy:
                block += row
                if len(block) >= block_bytes:
                    _put(q, block, stop)
                    block = bytearray()
            if block:
                _put(q, block, stop)
        _put(q, _END, stop)
    except _Stopped:
        pass
    except BaseException as exc:  # handed to the consumer, which raises it
        with contextlib.suppress(_Stopped):
            _put(q, exc, stop)


def copy_out_batches(
    cursor: psycopg.Cursor,
    query: sql.Composable,
    schema: pa.Schema,
    *,
    params: Iterable | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``query`` as record batches of ``schema`` (columns in query order).

    A second thread reads the COPY while this one parses the previous block with Arrow and the
    caller writes it (Arrow releases the GIL), so reading and parsing overlap. At most two
    blocks wait between them: memory is bounded by the batch size.

    Values are converted by Arrow with the exact column types: a value that does not fit its
    type (a malformed timestamp, text in an integer column) raises instead of being coerced.
    """
    from psycopg import sql as _sql

    copy_sql = _sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(query)
    options = {
        "read_options": pacsv.ReadOptions(column_names=schema.names),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types=schema,
            # PostgreSQL writes NULL as an unquoted empty field and nothing else: Arrow's
            # default null spellings ("NULL", "NaN", "N/A", ...) would turn real text into NULL.
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    }
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce_blocks,
        args=(cursor, copy_sql, params, _block_size(schema, batch_rows), q, stop),
        name="copy-out",
        daemon=True,
    )
    producer.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            table = pacsv.read_csv(pa.py_buffer(item), **options)
            del item
            # One batch per block (Arrow parses in 1 MB pieces): one parquet row group per batch.
            for batch in table.combine_chunks().to_batches():
                # Same columns and types; carry the declared nullability (the database enforces it).
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    finally:
        stop.set()
        while producer.is_alive():  # unblock it if it waits on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        producer.join()


def _block_size(schema: pa.Schema, batch_rows: int) -> int:
    # Blocks are cut by bytes; aim at about batch_rows rows of this width.
    approx_row_bytes = 12 * len(schema.names)
    return max(1 << 16, min(64 << 20, batch_rows * approx_row_bytes))


def copy_in_batches(
    cursor: psycopg.Cursor,
    target: sql.Composable,
    columns: Iterable[str],
    batches: Iterable[pa.RecordBatch | pa.Table],
) -> int:
    """``COPY target (columns) FROM STDIN`` from Arrow data; returns the number of rows sent."""
    from psycopg import sql as _sql

    cols = list(columns)
    copy_sql = _sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        target, _sql.SQL(", ").join(_sql.Identifier(c) for c in cols)
    )
    rows = 0
    options = pacsv.WriteOptions(include_header=False)
    with cursor.copy(copy_sql) as copy:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            buf = io.BytesIO()
            pacsv.write_csv(batch.select(cols), buf, options)
            copy.write(buf.getbuffer())
            rows += batch.num_rows
    return rows
