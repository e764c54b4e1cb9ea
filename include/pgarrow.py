"""Move rows between PostgreSQL and Arrow through COPY, in bounded batches; the registry's SQL
types as Arrow types.

* Out: ``COPY (SELECT ...) TO STDOUT`` through Arrow ADBC's PostgreSQL driver, which decodes
  the binary format in C (measured against our own CSV reader and kept: README, "Dependencies"),
  then safe casts to the exact Arrow types.
* In: ``COPY ... FROM STDIN`` in the CSV format, fed by ``pyarrow.csv.write_csv`` on the
  load's own psycopg connection (the load is one transaction with its merge, which a second
  connection could not join). The CSV conventions of both sides agree on the two cases that
  matter: NULL is an unquoted empty field and an empty string is ``""``.

No value is converted in Python. Memory is bounded by the batch size, never by the table size.
"""

from __future__ import annotations

import io
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


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch as the driver gives it -> ``schema``'s exact types, by safe casts only: numeric
    arrives as its text (an opaque extension type), timestamp(3) as microseconds. A value that
    does not fit (more decimals than the scale, a sub-millisecond part, text that is no
    timestamp) raises instead of being coerced."""
    if batch.num_columns != len(schema):
        raise ValueError(f"the query gives {batch.num_columns} columns, the schema has {len(schema)}")
    arrays = []
    for column, field in zip(batch.columns, schema, strict=True):
        if isinstance(column, pa.ExtensionArray):
            column = column.storage
        arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _database_error(exc: Exception) -> Exception:
    """An ADBC error as the psycopg error of its SQLSTATE, so that callers see one kind of error."""
    import psycopg

    sqlstate = getattr(exc, "sqlstate", None)
    try:
        kind = psycopg.errors.lookup(sqlstate) if sqlstate else psycopg.OperationalError
    except KeyError:
        kind = psycopg.DatabaseError
    return kind(str(exc))


def copy_out_batches(
    conn: psycopg.Connection, query: sql.Composable, schema: pa.Schema, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``query`` (no bound parameters) as record batches of ``schema``
    (columns in query order), in about ``batch_rows`` rows each.

    The rows come through Arrow ADBC's PostgreSQL driver, on a connection of its own with the
    parameters of ``conn``: it runs ``COPY (query) TO STDOUT`` in the binary format and decodes it
    into Arrow in C, faster and in less memory than parsing CSV on our side (README,
    "Dependencies"). A query with bound parameters would not be streamed by the driver, hence
    none. Memory is bounded by the batch size, never by the table size.
    """
    import adbc_driver_manager
    from adbc_driver_postgresql import dbapi
    from psycopg.conninfo import make_conninfo

    text = query.as_string(conn)
    conninfo = make_conninfo(conn.info.dsn, **({"password": conn.info.password} if conn.info.password else {}))
    try:
        with dbapi.connect(conninfo, autocommit=True) as adbc, adbc.cursor() as cur:
            cur.execute("SET default_transaction_read_only = on")  # it only ever reads
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(_block_size(schema, batch_rows))})
            cur.execute(text)
            with cur.fetch_record_batch() as reader:
                for batch in reader:
                    yield _conform(batch, schema)
    except adbc_driver_manager.Error as exc:
        raise _database_error(exc) from exc


def _block_size(schema: pa.Schema, batch_rows: int) -> int:
    # Batches are cut by bytes; aim at about batch_rows rows of this width.
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
