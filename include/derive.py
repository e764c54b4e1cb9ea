"""Warehouse rows from source rows: the registry's derivations evaluated over Arrow (pure).

Each follows ../shared/spec/totesys.md section 2. Nothing here does I/O, and exact types are
kept: ids stay int32 (never floats), money stays decimal(10,2), dates become date32 and times
time64. The transform stage (include.transform) feeds these functions batch by batch, so a
table of any size streams through in bounded memory; joined dimensions are built from the latest
known version of both sides (include.state).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.pgarrow import arrow_type
from include.quarantine import REASON_COLUMN
from include.registry import (
    CALENDAR,
    Col,
    CurrencyName,
    DateOf,
    Derivation,
    TextDate,
    TimeOf,
    WarehouseTable,
    calendar_inputs,
)

VERSION_COLUMN = "_version"  # source last_updated of each contributing row, for dimensions

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class TransformError(ValueError):
    """Input that cannot become a correct warehouse row (the message names table and values)."""


def processed_schema(table: WarehouseTable) -> pa.Schema:
    """The parquet schema of a warehouse table in the processed bucket."""
    fields = [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in table.columns if not c.serial]
    if table.versioned:
        fields.append(pa.field(VERSION_COLUMN, pa.list_(pa.timestamp("ms")), nullable=False))
    return pa.schema(fields)


def _conform(table: WarehouseTable, columns: dict[str, pa.Array]) -> pa.Table:
    schema = processed_schema(table)
    arrays = []
    for f in schema:
        arr = columns[f.name]
        if not f.nullable and arr.null_count:
            raise TransformError(f"{table.name}.{f.name}: {arr.null_count} NULL value(s) where the warehouse forbids NULL")
        arrays.append(arr.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------


def date_part(ts: pa.Array) -> pa.Array:
    return pc.cast(ts, pa.date32())


def time_part(ts: pa.Array) -> pa.Array:
    """The wall-clock time of a timestamp(ms), as time64(us)."""
    return pc.cast(ts, pa.time64("us"))


def parse_text_date(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``YYYY-MM-DD`` text to date32, and a mask of the values that are not such a date
    (they become NULL). A NULL input is not marked: nullability is checked separately."""
    values = values.cast(pa.string())
    well_formed = pc.fill_null(pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}$"), True)
    parsed = pc.cast(pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True), pa.date32())
    # strptime rolls impossible days over ("2024-02-30" -> 1 March): the date must print back
    # as the very text it came from.
    round_trip = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), values), False)
    bad = pc.and_(pc.is_valid(values), pc.or_(pc.invert(well_formed), pc.invert(round_trip)))
    return pc.if_else(bad, None, parsed), bad


def versions(*timestamps: pa.Array) -> pa.Array:
    """One list<timestamp> per row: the last_updated of each contributing source row, in order."""
    k, n = len(timestamps), len(timestamps[0])
    concatenated = pa.concat_arrays([t.cast(pa.timestamp("ms")) for t in timestamps])
    # Element j of input i sits at i*n + j; row j of the result lists inputs 0..k-1.
    take = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, concatenated.take(pa.array(take)))


def currency_name(code: str) -> str | None:
    """The ISO 4217 English name of a currency code (pycountry), None when the code is unknown."""
    import pycountry

    found = pycountry.currencies.get(alpha_3=code)
    return found.name if found else None


def iso4217_names(codes: pa.Array) -> tuple[pa.Array, pa.Array]:
    """ISO 4217 English names of currency codes, and a mask of the unknown codes (NULL names)."""
    names = {code: currency_name(code) for code in pc.unique(codes).to_pylist() if code is not None}
    named = pa.array([names.get(code) for code in codes.to_pylist()], pa.string())
    return named, pc.and_(pc.is_valid(codes), pc.is_null(named))


# ------------------------------------------------------------------------------------------
# The registry's derivations, evaluated
# ------------------------------------------------------------------------------------------


@dataclass
class Derived:
    values: pa.Array
    bad: pa.Array | None = None  # rows whose value cannot be derived
    problem: str = ""  # what is wrong with them


def input_name(table: WarehouseTable, derivation: Derivation) -> str:
    """The column of ``rows`` a derivation reads: a joined table's columns come as ``<table>.<column>``."""
    return f"{derivation.table}.{derivation.column}" if derivation.table else derivation.column


def evaluate(table: WarehouseTable, derivation: Derivation, rows: pa.Table) -> Derived:
    """The one place a registry ``Derivation`` becomes values."""
    values = rows[input_name(table, derivation)].combine_chunks()
    match derivation:
        case Col():
            return Derived(values)
        case DateOf():
            return Derived(date_part(values))
        case TimeOf():
            return Derived(time_part(values))
        case TextDate():
            return Derived(*parse_text_date(values), f"{derivation.column} is not a YYYY-MM-DD date")
        case CurrencyName():
            return Derived(*iso4217_names(values), f"{derivation.column} is not an ISO 4217 currency code")
    raise ValueError(f"{table.name}: unknown derivation {derivation!r}")


@dataclass
class Built:
    """Warehouse rows, and the source rows that could not become one (with ``_reason``)."""

    rows: pa.Table
    rejected: pa.Table | None = None


def warehouse_rows(table: WarehouseTable, rows: pa.Table) -> Built:
    """The rows of a dimension or fact built from source rows (for a joined dimension: the
    source rows with the joined table's columns alongside as ``<joined table>.<column>``).

    A row that cannot become a correct warehouse row (a date that is not YYYY-MM-DD, an unknown
    currency code, a NULL where the warehouse forbids it) is not loaded half-right and not
    dropped: it comes back in ``rejected`` with the reason, for the quarantine.
    """
    n = rows.num_rows
    reason = pa.nulls(n, pa.string())
    columns: dict[str, pa.Array] = {}
    for c in table.columns:
        if c.serial:
            continue
        derivation = table.derivation(c)
        d = evaluate(table, derivation, rows)
        columns[c.name] = d.values
        checks = [(d.bad, d.problem)] if d.bad is not None else []
        if not c.nullable:
            checks.append((pc.is_null(d.values), f"{c.name} is NULL"))
        for bad, problem in checks:
            bad = pc.and_(pc.fill_null(bad, False), pc.is_null(reason))
            if pc.any(bad).as_py():
                source = rows[input_name(table, derivation)].combine_chunks().cast(pa.string())
                detail = pc.binary_join_element_wise(f"{problem}: ", pc.fill_null(source, "NULL"), "")
                reason = pc.if_else(bad, detail, reason)
    if table.versioned:
        contributing = [rows["last_updated"].combine_chunks()]
        if table.join:
            contributing.append(rows[f"{table.join.table}.last_updated"].combine_chunks())
        columns[VERSION_COLUMN] = versions(*contributing)
    good = pc.is_null(reason)
    if pc.all(good).as_py():
        return Built(_conform(table, columns))
    kept = {name: pc.filter(values, good) for name, values in columns.items()}
    rejected = rows.filter(pc.invert(good)).append_column(REASON_COLUMN, pc.filter(reason, pc.invert(good)))
    return Built(_conform(table, kept), rejected)


# ------------------------------------------------------------------------------------------
# The calendar: every date the facts refer to
# ------------------------------------------------------------------------------------------


def referenced_dates(source: str, rows: pa.Table) -> pa.Array:
    """The distinct dates that the facts built from ``rows`` will refer to."""
    found = []
    for col in calendar_inputs()[source]:
        values = rows[col].combine_chunks()
        # A malformed text date becomes NULL here (no date to add); the fact built from the
        # same row is quarantined with the reason.
        found.append(date_part(values) if pa.types.is_timestamp(values.type) else parse_text_date(values)[0])
    return pc.drop_null(pc.unique(pa.concat_arrays(found)))


def dim_date(dates: pa.Array) -> pa.Table:
    """One row per distinct date, ISO conventions (day_of_week 1 = Monday)."""
    dates = pc.unique(pc.drop_null(dates.cast(pa.date32())))
    iso_dow = pc.day_of_week(dates, count_from_zero=False, week_start=1)
    month = pc.month(dates)
    return _conform(
        CALENDAR,
        {
            "date_id": dates,
            "year": pc.year(dates),
            "month": month,
            "day": pc.day(dates),
            "day_of_week": iso_dow,
            "day_name": pc.take(pa.array(DAY_NAMES), pc.subtract(iso_dow, 1)),
            "month_name": pc.take(pa.array(MONTH_NAMES), pc.subtract(month, 1)),
            "quarter": pc.quarter(dates),
        },
    )


# ------------------------------------------------------------------------------------------
# Joined dimensions
# ------------------------------------------------------------------------------------------


def affected_ids(table: WarehouseTable, changed: pa.Table, joined_changed: pa.Table, state: pa.Table) -> pa.Array:
    """Keys of a joined dimension's source whose rows must be rebuilt: its changed rows, and
    every row (from the latest state) that points at a changed row of the joined table."""
    key = f"{table.source}_id"
    joined_key = f"{table.join.table}_id"
    via_joined = pc.filter(state[key], pc.is_in(state[table.join.on], value_set=joined_changed[joined_key].combine_chunks()))
    return pc.unique(
        pa.concat_arrays([changed[key].combine_chunks().cast(pa.int32()), via_joined.combine_chunks().cast(pa.int32())])
    )


def join_rows(table: WarehouseTable, ids: pa.Array, state: pa.Table, joined_state: pa.Table) -> pa.Table:
    """The source rows with these ids joined to their row of the joined table (latest versions
    of both). A row whose partner is unknown is an error, never a dimension row with NULLs."""
    key = f"{table.source}_id"
    other = table.join.table
    left = state.filter(pc.is_in(state[key], value_set=ids))
    right = joined_state.rename_columns([f"{other}.{n}" for n in joined_state.column_names])
    joined = left.join(right, keys=table.join.on, right_keys=f"{other}.{other}_id", join_type="left outer")
    # Acero drops the right key column; a missing partner shows as NULL right-side columns.
    missing = pc.is_null(joined[f"{other}.last_updated"])
    if pc.any(missing).as_py():
        bad = pc.filter(joined[key], missing).to_pylist()
        raise TransformError(
            f"{table.source} rows {sorted(bad)[:10]} point at {other} rows the pipeline has never seen "
            f"(state incomplete: trigger totes_etl with full_refresh=true)"
        )
    return joined.sort_by(key)


def latest_versions(rows: Iterable[pa.Table], key: str) -> pa.Table:
    """One row per key: the one with the greatest last_updated (ties: the later input wins)."""
    table = pa.concat_tables(list(rows))
    if table.num_rows == 0:
        return table
    order = pa.array(range(table.num_rows), pa.int64())
    table = table.append_column("_order", order)
    ranked = table.sort_by([(key, "ascending"), ("last_updated", "descending"), ("_order", "descending")])
    keys = ranked[key].combine_chunks().to_numpy(zero_copy_only=False)
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return ranked.filter(pa.array(first)).drop_columns(["_order"])
