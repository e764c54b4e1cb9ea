"""Extract from totesys: the data contract check and the streaming, windowed read.

SQL here is built only from identifiers declared in include.registry, quoted with psycopg's
sql module; the window bounds are bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from psycopg import sql

from include.lake import Window
from include.pgarrow import DEFAULT_BATCH_ROWS, arrow_schema, copy_out_batches
from include.registry import SourceTable

if TYPE_CHECKING:
    import psycopg


class ContractViolation(Exception):
    """The live source no longer matches the declared contract of a table (schema drift)."""

    def __init__(self, table: str, problems: list[str]) -> None:
        self.table = table
        self.problems = problems
        super().__init__(f"totesys.{table} does not match its data contract: " + "; ".join(problems))


@dataclass(frozen=True)
class LiveColumn:
    name: str
    data_type: str
    udt_name: str
    nullable: bool
    char_length: int | None
    numeric_precision: int | None
    numeric_scale: int | None
    datetime_precision: int | None


def expected_type(sql_type: str) -> dict[str, object]:
    """How information_schema describes a declared type."""
    t = sql_type.lower()
    if t in ("integer", "serial"):
        return {"data_type": "integer"}
    if t == "text":
        return {"data_type": "text"}
    if t.startswith("varchar("):
        return {"data_type": "character varying", "char_length": int(t[8:-1])}
    if t.startswith("numeric("):
        p, s = (int(x) for x in t[8:-1].split(","))
        return {"data_type": "numeric", "numeric_precision": p, "numeric_scale": s}
    if t.startswith("timestamp("):
        return {"data_type": "timestamp without time zone", "datetime_precision": int(t[10:-1])}
    if t == "boolean":
        return {"data_type": "boolean"}
    if t.startswith('"'):
        return {"data_type": "USER-DEFINED", "udt_name": sql_type.strip('"')}
    raise ValueError(f"no contract for type {sql_type!r}")


def live_columns(conn: psycopg.Connection, table: str, schema: str = "public") -> list[LiveColumn]:
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name, is_nullable = 'YES', character_maximum_length, "
        "numeric_precision, numeric_scale, datetime_precision FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return [LiveColumn(*r) for r in rows]


def contract_problems(table: SourceTable, live: list[LiveColumn]) -> list[str]:
    """Every difference between the declared contract and the live columns (empty: it holds).

    Column order is not part of the contract (extracts select columns by name); names, types,
    and nullability are.
    """
    if not live:
        return [f"table {table.name} not found"]
    by_name = {c.name: c for c in live}
    problems: list[str] = []
    for col in table.columns:
        got = by_name.get(col.name)
        if got is None:
            problems.append(f"column {col.name} is missing")
            continue
        for attr, want in expected_type(col.sql_type).items():
            have = getattr(got, attr)
            if have != want:
                problems.append(f"column {col.name} has {attr} {have!r}, contract says {want!r}")
        if got.nullable and not col.nullable:
            problems.append(f"column {col.name} became nullable")
    declared = set(table.column_names)
    for name in by_name:
        if name not in declared:
            problems.append(f"column {name} is new (not in the contract)")
    return problems


def check_contract(conn: psycopg.Connection, table: SourceTable) -> None:
    problems = contract_problems(table, live_columns(conn, table.name))
    if problems:
        raise ContractViolation(table.name, problems)


def extract_query(table: SourceTable, window: Window) -> tuple[sql.Composable, dict[str, object] | None]:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)
    query = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(table.name))
    if window.start is None:
        return query, None
    cond = sql.SQL(" WHERE {} >= %(start)s").format(sql.Identifier(table.cursor_column))
    return query + cond, {"start": window.start}


def source_schema(table: SourceTable) -> pa.Schema:
    return arrow_schema(table.columns)


def extract_batches(
    conn: psycopg.Connection, table: SourceTable, window: Window, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream the window's rows of ``table`` as Arrow batches (one COPY, constant memory)."""
    query, params = extract_query(table, window)
    with conn.cursor() as cur:
        yield from copy_out_batches(cur, query, source_schema(table), params=params, batch_rows=batch_rows)
