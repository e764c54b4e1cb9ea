"""Pure functions from ingested totesys rows (Arrow) to warehouse rows (Arrow).

Each follows ../shared/spec/totesys.md section 2. They do no I/O and keep exact types: ids stay
int32 (never floats), money stays decimal(10,2), dates become date32 and times time64.

Row-wise tables (facts, dim_design, dim_transaction, ...) are transformed batch by batch, so a
table of any size streams through in bounded memory; joined dimensions are built from the
latest known version of both sides (see include.state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.pgarrow import arrow_type
from include.registry import WAREHOUSE, JoinSpec, WarehouseTable

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
    fields = [pa.field(c.name, arrow_type(c.sql_type), nullable=c.nullable) for c in table.columns if not c.serial]
    if table.kind == "dimension" and table.name != "dim_date":
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


def text_date(values: pa.Array, where: str) -> pa.Array:
    """``YYYY-MM-DD`` text to date32; anything else is an error naming the bad values."""
    values = values.cast(pa.string())
    well_formed = pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}$")
    parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    bad = pc.or_kleene(pc.invert(pc.fill_null(well_formed, False)), pc.is_null(parsed))
    bad = pc.and_(bad, pc.is_valid(values))
    if pc.any(bad).as_py():
        sample = pc.filter(values, bad).slice(0, 5).to_pylist()
        raise TransformError(f"{where}: not a YYYY-MM-DD date: {sample}")
    return pc.cast(parsed, pa.date32())


def versions(*timestamps: pa.Array) -> pa.Array:
    """One list<timestamp> per row: the last_updated of each contributing source row, in order."""
    k, n = len(timestamps), len(timestamps[0])
    concatenated = pa.concat_arrays([t.cast(pa.timestamp("ms")) for t in timestamps])
    # Element j of input i sits at i*n + j; row j of the result lists inputs 0..k-1.
    take = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, concatenated.take(pa.array(take)))


# ------------------------------------------------------------------------------------------
# Row-wise tables
# ------------------------------------------------------------------------------------------


def dim_location(address: pa.Table) -> pa.Table:
    c = address
    return _conform(
        WAREHOUSE["dim_location"],
        {
            "location_id": c["address_id"],
            **{k: c[k] for k in ("address_line_1", "address_line_2", "district", "city", "postal_code", "country", "phone")},
            VERSION_COLUMN: versions(c["last_updated"].combine_chunks()),
        },
    )


def dim_design(design: pa.Table) -> pa.Table:
    c = design
    return _conform(
        WAREHOUSE["dim_design"],
        {
            "design_id": c["design_id"],
            "design_name": c["design_name"],
            "file_location": c["file_location"],
            "file_name": c["file_name"],
            VERSION_COLUMN: versions(c["last_updated"].combine_chunks()),
        },
    )


def currency_name(code: str) -> str | None:
    """The ISO 4217 English name of a currency code (pycountry), None when the code is unknown."""
    import pycountry

    found = pycountry.currencies.get(alpha_3=code)
    return found.name if found else None


def dim_currency(currency: pa.Table) -> pa.Table:
    codes = currency["currency_code"].to_pylist()
    names = [currency_name(code) if code else None for code in codes]
    unknown = sorted({str(code) for code, name in zip(codes, names, strict=True) if name is None})
    if unknown:
        raise TransformError(f"dim_currency: unknown ISO 4217 currency code(s) {unknown}")
    return _conform(
        WAREHOUSE["dim_currency"],
        {
            "currency_id": currency["currency_id"],
            "currency_code": currency["currency_code"],
            "currency_name": pa.array(names, pa.string()),
            VERSION_COLUMN: versions(currency["last_updated"].combine_chunks()),
        },
    )


def dim_payment_type(payment_type: pa.Table) -> pa.Table:
    return _conform(
        WAREHOUSE["dim_payment_type"],
        {
            "payment_type_id": payment_type["payment_type_id"],
            "payment_type_name": payment_type["payment_type_name"],
            VERSION_COLUMN: versions(payment_type["last_updated"].combine_chunks()),
        },
    )


def dim_transaction(transaction: pa.Table) -> pa.Table:
    c = transaction
    return _conform(
        WAREHOUSE["dim_transaction"],
        {
            "transaction_id": c["transaction_id"],
            "transaction_type": c["transaction_type"],
            "sales_order_id": c["sales_order_id"],
            "purchase_order_id": c["purchase_order_id"],
            VERSION_COLUMN: versions(c["last_updated"].combine_chunks()),
        },
    )


def _timestamps(c: pa.Table) -> dict[str, pa.Array]:
    created = c["created_at"].combine_chunks()
    updated = c["last_updated"].combine_chunks()
    return {
        "created_date": date_part(created),
        "created_time": time_part(created),
        "last_updated_date": date_part(updated),
        "last_updated_time": time_part(updated),
    }


def fact_sales_order(sales_order: pa.Table) -> pa.Table:
    c = sales_order
    return _conform(
        WAREHOUSE["fact_sales_order"],
        {
            "sales_order_id": c["sales_order_id"],
            **_timestamps(c),
            "sales_staff_id": c["staff_id"],
            "counterparty_id": c["counterparty_id"],
            "units_sold": c["units_sold"],
            "unit_price": c["unit_price"],
            "currency_id": c["currency_id"],
            "design_id": c["design_id"],
            "agreed_payment_date": text_date(c["agreed_payment_date"].combine_chunks(), "sales_order.agreed_payment_date"),
            "agreed_delivery_date": text_date(c["agreed_delivery_date"].combine_chunks(), "sales_order.agreed_delivery_date"),
            "agreed_delivery_location_id": c["agreed_delivery_location_id"],
        },
    )


def fact_purchase_orders(purchase_order: pa.Table) -> pa.Table:
    c = purchase_order
    return _conform(
        WAREHOUSE["fact_purchase_orders"],
        {
            "purchase_order_id": c["purchase_order_id"],
            **_timestamps(c),
            "staff_id": c["staff_id"],
            "counterparty_id": c["counterparty_id"],
            "item_code": c["item_code"],
            "item_quantity": c["item_quantity"],
            "item_unit_price": c["item_unit_price"],
            "currency_id": c["currency_id"],
            "agreed_delivery_date": text_date(c["agreed_delivery_date"].combine_chunks(), "purchase_order.agreed_delivery_date"),
            "agreed_payment_date": text_date(c["agreed_payment_date"].combine_chunks(), "purchase_order.agreed_payment_date"),
            "agreed_delivery_location_id": c["agreed_delivery_location_id"],
        },
    )


def fact_payment(payment: pa.Table) -> pa.Table:
    c = payment
    return _conform(
        WAREHOUSE["fact_payment"],
        {
            "payment_id": c["payment_id"],
            **_timestamps(c),
            "transaction_id": c["transaction_id"],
            "counterparty_id": c["counterparty_id"],
            "payment_amount": c["payment_amount"],
            "currency_id": c["currency_id"],
            "payment_type_id": c["payment_type_id"],
            "paid": c["paid"],
            "payment_date": text_date(c["payment_date"].combine_chunks(), "payment.payment_date"),
        },
    )


# ------------------------------------------------------------------------------------------
# dim_date: every date the facts refer to
# ------------------------------------------------------------------------------------------

# The date columns each fact source contributes (timestamps and YYYY-MM-DD text).
DATE_SOURCES: dict[str, tuple[str, ...]] = {
    "sales_order": ("created_at", "last_updated", "agreed_delivery_date", "agreed_payment_date"),
    "purchase_order": ("created_at", "last_updated", "agreed_delivery_date", "agreed_payment_date"),
    "payment": ("created_at", "last_updated", "payment_date"),
}


def referenced_dates(source: str, rows: pa.Table) -> pa.Array:
    """The distinct dates that the facts built from ``rows`` will refer to."""
    found = []
    for col in DATE_SOURCES[source]:
        values = rows[col].combine_chunks()
        found.append(date_part(values) if pa.types.is_timestamp(values.type) else text_date(values, f"{source}.{col}"))
    return pc.unique(pa.concat_arrays(found))


def dim_date(dates: pa.Array) -> pa.Table:
    """One row per distinct date, ISO conventions (day_of_week 1 = Monday)."""
    dates = pc.unique(pc.drop_null(dates.cast(pa.date32())))
    iso_dow = pc.day_of_week(dates, count_from_zero=False, week_start=1)
    month = pc.month(dates)
    return _conform(
        WAREHOUSE["dim_date"],
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


def affected_ids(join: JoinSpec, left_changed: pa.Table, right_changed: pa.Table, left_state: pa.Table) -> pa.Array:
    """Left keys whose dimension row must be rebuilt: changed left rows, and every left row
    (from the latest state) that points at a changed right row."""
    left_key = f"{join.left}_id"
    right_key = f"{join.right}_id"
    via_right = pc.filter(
        left_state[left_key], pc.is_in(left_state[join.left_column], value_set=right_changed[right_key].combine_chunks())
    )
    return pc.unique(
        pa.concat_arrays([left_changed[left_key].combine_chunks().cast(pa.int32()), via_right.combine_chunks().cast(pa.int32())])
    )


def join_rows(join: JoinSpec, ids: pa.Array, left_state: pa.Table, right_state: pa.Table) -> pa.Table:
    """The left rows with these ids joined to their right row (latest versions of both).

    A left row whose right row is unknown is an error, never a dimension row with NULLs.
    """
    left_key = f"{join.left}_id"
    right_key = f"{join.right}_id"
    left = left_state.filter(pc.is_in(left_state[left_key], value_set=ids))
    right = right_state.rename_columns([f"r.{n}" for n in right_state.column_names])
    joined = left.join(right, keys=join.left_column, right_keys=f"r.{right_key}", join_type="left outer")
    # Acero drops the right key column; a missing partner shows as NULL right-side columns.
    missing = pc.is_null(joined["r.last_updated"])
    if pc.any(missing).as_py():
        bad = pc.filter(joined[left_key], missing).to_pylist()
        raise TransformError(
            f"{join.left} rows {sorted(bad)[:10]} point at {join.right} rows the pipeline has never seen "
            f"(state incomplete: trigger totes_etl with full_refresh=true)"
        )
    return joined.sort_by(left_key)


def dim_counterparty(joined: pa.Table) -> pa.Table:
    c = joined
    return _conform(
        WAREHOUSE["dim_counterparty"],
        {
            "counterparty_id": c["counterparty_id"],
            "counterparty_legal_name": c["counterparty_legal_name"],
            "counterparty_legal_address_line_1": c["r.address_line_1"],
            "counterparty_legal_address_line_2": c["r.address_line_2"],
            "counterparty_legal_district": c["r.district"],
            "counterparty_legal_city": c["r.city"],
            "counterparty_legal_postal_code": c["r.postal_code"],
            "counterparty_legal_country": c["r.country"],
            "counterparty_legal_phone_number": c["r.phone"],
            VERSION_COLUMN: versions(c["last_updated"].combine_chunks(), c["r.last_updated"].combine_chunks()),
        },
    )


def dim_staff(joined: pa.Table) -> pa.Table:
    c = joined
    return _conform(
        WAREHOUSE["dim_staff"],
        {
            "staff_id": c["staff_id"],
            "first_name": c["first_name"],
            "last_name": c["last_name"],
            "department_name": c["r.department_name"],
            "location": c["r.location"],
            "email_address": c["email_address"],
            VERSION_COLUMN: versions(c["last_updated"].combine_chunks(), c["r.last_updated"].combine_chunks()),
        },
    )


# ------------------------------------------------------------------------------------------
# Dispatch
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformSpec:
    """How a warehouse table is computed: per input batch, or from a join."""

    rowwise: Callable[[pa.Table], pa.Table] | None = None
    joined: Callable[[pa.Table], pa.Table] | None = None


TRANSFORMS: dict[str, TransformSpec] = {
    "dim_location": TransformSpec(rowwise=dim_location),
    "dim_design": TransformSpec(rowwise=dim_design),
    "dim_currency": TransformSpec(rowwise=dim_currency),
    "dim_payment_type": TransformSpec(rowwise=dim_payment_type),
    "dim_transaction": TransformSpec(rowwise=dim_transaction),
    "fact_sales_order": TransformSpec(rowwise=fact_sales_order),
    "fact_purchase_orders": TransformSpec(rowwise=fact_purchase_orders),
    "fact_payment": TransformSpec(rowwise=fact_payment),
    "dim_counterparty": TransformSpec(joined=dim_counterparty),
    "dim_staff": TransformSpec(joined=dim_staff),
    "dim_date": TransformSpec(),  # built from referenced_dates over all its sources
}

_unmatched = {t.name for t in WAREHOUSE.values()} ^ set(TRANSFORMS)
if _unmatched:
    raise RuntimeError(f"transforms and registry disagree on {sorted(_unmatched)}")


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
