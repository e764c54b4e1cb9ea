"""Move rows between PostgreSQL and Arrow through COPY, in bounded batches.

Both directions go through PostgreSQL's CSV COPY format, parsed and written by Arrow's C++ CSV
code, so no row passes through a Python loop: ``COPY (SELECT ...) TO STDOUT`` streams into
``pyarrow.csv.open_csv`` and ``COPY ... FROM STDIN`` is fed by ``pyarrow.csv.write_csv``.
Memory is bounded by the batch size, never by the table size.

The CSV conventions of both sides agree on the two cases that matter: NULL is an unquoted
empty field and an empty string is ``""``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from include.registry import Column

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

DEFAULT_BATCH_ROWS = 100_000


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type that holds a PostgreSQL column type without loss."""
    t = sql_type.lower()
    if t in ("integer", "serial"):
        return pa.int32()
    if t.startswith("numeric("):
        precision, scale = (int(x) for x in t[len("numeric(") : -1].split(","))
        return pa.decimal128(precision, scale)
    if t == "timestamp(3)":
        return pa.timestamp("ms")
    if t == "boolean":
        return pa.bool_()
    if t == "date":
        return pa.date32()
    if t == "time":
        return pa.time64("us")
    if t in ("text", "varchar") or t.startswith("varchar(") or t.startswith('"'):
        return pa.string()  # enums travel as their labels
    raise ValueError(f"no Arrow type for SQL type {sql_type!r}")


def arrow_schema(columns: Iterable[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.sql_type), nullable=c.nullable) for c in columns])


class _CopyReader(io.RawIOBase):
    """A read-only file over the chunks of a psycopg ``COPY ... TO STDOUT``."""

    def __init__(self, copy: psycopg.Copy) -> None:
        self._chunks = iter(copy)
        self._pending = memoryview(b"")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def has_data(self) -> bool:
        """Whether the COPY produced any bytes at all (pulls the first chunk)."""
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return False
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.bytes_read += n
        return n


def copy_out_batches(
    cursor: psycopg.Cursor,
    query: sql.Composable,
    schema: pa.Schema,
    *,
    params: Iterable | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``query`` as record batches of ``schema`` (columns in query order).

    Values are converted by Arrow with the exact column types: a value that does not fit its
    type (a malformed timestamp, text in an integer column) raises instead of being coerced.
    """
    from psycopg import sql as _sql

    copy_sql = _sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(query)
    with cursor.copy(copy_sql, params) as copy:
        source = _CopyReader(copy)
        if not source.has_data():
            return  # no rows (Arrow's reader refuses an empty stream)
        reader = pacsv.open_csv(
            io.BufferedReader(source, buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(column_names=schema.names, block_size=_block_size(schema, batch_rows)),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                # PostgreSQL writes NULL as an unquoted empty field and nothing else: Arrow's
                # default null spellings ("NULL", "NaN", "N/A", ...) would turn real text into NULL.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        for batch in reader:
            if batch.num_rows:
                # Same columns and types; carry the declared nullability (the database enforces it).
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)


def _block_size(schema: pa.Schema, batch_rows: int) -> int:
    # Arrow's reader cuts batches by bytes; aim at about batch_rows rows of this width.
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
