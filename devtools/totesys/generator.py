"""A deterministic, seeded, scalable generator of the totesys database.

Scale 1 reproduces the sizes and value shapes of the real database (the extract of 2024-11-15;
see the spec): 30 addresses, 20 counterparties, 3 currencies, 8 departments, 20 staff, 4 payment
types, a few designs a week, about 21 sales orders a working day (Mon-Fri, 08:00-19:00), 0.42
purchase orders per sales order, one transaction and one payment per order, and the daily
07:55 batch that flips payments to paid on their payment date. Scale N multiplies the growing
tables (design, sales_order, purchase_order, transaction, payment); the reference tables keep
their real sizes.

Rows are built with numpy, a month at a time (bounded memory), and written with COPY; the
constraints are added once the data is in, as pg_dump does. The same seed and scale always give
the same database, byte for byte.

    python -m devtools.totesys.generator --url postgresql://.../totesys --scale 1 --seed 42
"""

from __future__ import annotations

import argparse
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import psycopg
import pyarrow as pa
import pycountry
from psycopg import sql

from devtools.totesys import words
from devtools.totesys.schema import ENUM_LABELS, create_totesys_schema
from include.pgarrow import arrow_schema, copy_in_batches
from include.registry import SOURCE

# The real database was created at this instant; reference rows carry it.
REFERENCE_EPOCH = datetime(2022, 11, 3, 14, 20, 49, 962000)
STAFF_EPOCH = datetime(2022, 11, 3, 14, 20, 51, 563000)
FIRST_ORDERS_AT = datetime(2022, 11, 3, 14, 20, 52, 186000)
DEFAULT_AS_OF = datetime(2024, 11, 15, 14, 45)

SALES_ORDERS_PER_WORKING_DAY = 21.1
PURCHASE_ORDERS_PER_SALES_ORDER = 0.4156
DESIGNS_PER_WEEK = 4.4
PAID_SHARE = 0.655  # of the payments whose date has come; the rest are never flipped
# Agreed dates: days after creation, with the observed frequencies.
DELIVERY_OFFSET_WEIGHTS = np.array([0.058, 0.144, 0.142, 0.146, 0.145, 0.144, 0.135, 0.080, 0.006])
PAYMENT_OFFSET_WEIGHTS = np.array([0.072, 0.168, 0.160, 0.167, 0.165, 0.171, 0.097])

EPOCH = datetime(1970, 1, 1)
MS_PER_DAY = 86_400_000


def _ms(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class GeneratorSettings:
    seed: int = 42
    scale: float = 1.0
    start: datetime = FIRST_ORDERS_AT
    as_of: datetime = DEFAULT_AS_OF
    chunk_days: int = 31


def _rng(settings: GeneratorSettings, *stream: int) -> np.random.Generator:
    """An independent random stream per purpose (and per chunk), from the one seed."""
    return np.random.default_rng(np.random.SeedSequence([settings.seed, *stream]))


def _decimal(cents: np.ndarray, precision: int = 10, scale: int = 2) -> pa.Array:
    """numeric(precision, scale) from integer hundredths, exactly (no float rounding)."""
    cents = cents.astype(np.int64)
    words128 = np.stack([cents, np.where(cents < 0, -1, 0).astype(np.int64)], axis=1).ravel()
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(cents), [None, pa.py_buffer(words128.tobytes())])


def _ts(ms: np.ndarray) -> pa.Array:
    return pa.array(ms.astype(np.int64), pa.timestamp("ms"))


def _date_text(days: np.ndarray) -> pa.Array:
    """YYYY-MM-DD text (the source keeps agreed and payment dates as text)."""
    return pa.array(days.astype(np.int32), pa.date32()).cast(pa.string())


def _table(name: str, data: dict[str, pa.Array | np.ndarray | list]) -> pa.Table:
    schema = arrow_schema(SOURCE[name].columns)
    arrays = [
        pa.array(data[f.name], f.type) if not isinstance(data[f.name], pa.Array) else data[f.name].cast(f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


# ------------------------------------------------------------------------------------------
# Reference tables (real sizes at every scale)
# ------------------------------------------------------------------------------------------


def reference_tables(settings: GeneratorSettings) -> dict[str, pa.Table]:
    rng = _rng(settings, 1)
    ref_ms = _ms(REFERENCE_EPOCH)
    staff_ms = _ms(STAFF_EPOCH)

    n_addr = 30
    countries = sorted(c.name for c in pycountry.countries)
    line2 = [
        f"{rng.choice(words.LAST_NAMES)} {rng.choice(words.STREET_SUFFIXES)}" if rng.random() < 0.3 else None
        for _ in range(n_addr)
    ]
    district = [str(rng.choice(words.DISTRICTS)) if rng.random() < 0.5 else None for _ in range(n_addr)]
    postal = [
        f"{rng.integers(0, 100000):05d}" + (f"-{rng.integers(0, 10000):04d}" if rng.random() < 0.6 else "") for _ in range(n_addr)
    ]
    address = _table(
        "address",
        {
            "address_id": np.arange(1, n_addr + 1),
            "address_line_1": [
                f"{rng.integers(1, 99999)} {rng.choice(words.LAST_NAMES)} {rng.choice(words.STREET_SUFFIXES)}"
                for _ in range(n_addr)
            ],
            "address_line_2": line2,
            "district": district,
            "city": [f"{rng.choice(words.CITY_PARTS)}{rng.choice(words.CITY_SUFFIXES)}" for _ in range(n_addr)],
            "postal_code": postal,
            "country": [str(rng.choice(countries)) for _ in range(n_addr)],
            "phone": [f"{rng.integers(0, 10000):04d} {rng.integers(0, 1000000):06d}" for _ in range(n_addr)],
            "created_at": _ts(np.full(n_addr, ref_ms)),
            "last_updated": _ts(np.full(n_addr, ref_ms)),
        },
    )

    n_cp = 20

    def company() -> str:
        a, b, c = rng.choice(words.LAST_NAMES, 3, replace=False)
        form = rng.integers(0, 4)
        if form == 0:
            return f"{a}, {b} and {c}"
        if form == 1:
            return f"{a} - {b}"
        return f"{a} {rng.choice(words.COMPANY_SUFFIXES)}"

    def person() -> str:
        return f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"

    counterparty = _table(
        "counterparty",
        {
            "counterparty_id": np.arange(1, n_cp + 1),
            "counterparty_legal_name": [company() for _ in range(n_cp)],
            "legal_address_id": rng.integers(1, n_addr + 1, n_cp),
            "commercial_contact": [person() for _ in range(n_cp)],
            "delivery_contact": [person() for _ in range(n_cp)],
            "created_at": _ts(np.full(n_cp, staff_ms)),
            "last_updated": _ts(np.full(n_cp, staff_ms)),
        },
    )

    n_cur = len(words.CURRENCY_CODES)
    currency = _table(
        "currency",
        {
            "currency_id": np.arange(1, n_cur + 1),
            "currency_code": list(words.CURRENCY_CODES),
            "created_at": _ts(np.full(n_cur, ref_ms)),
            "last_updated": _ts(np.full(n_cur, ref_ms)),
        },
    )

    n_dep = len(words.DEPARTMENTS)
    department = _table(
        "department",
        {
            "department_id": np.arange(1, n_dep + 1),
            "department_name": [d[0] for d in words.DEPARTMENTS],
            "location": [d[1] for d in words.DEPARTMENTS],
            "manager": [person() for _ in range(n_dep)],
            "created_at": _ts(np.full(n_dep, ref_ms)),
            "last_updated": _ts(np.full(n_dep, ref_ms)),
        },
    )

    n_staff = 20
    firsts = [str(x) for x in rng.choice(words.FIRST_NAMES, n_staff, replace=False)]
    lasts = [str(x) for x in rng.choice(words.LAST_NAMES, n_staff, replace=False)]
    staff = _table(
        "staff",
        {
            "staff_id": np.arange(1, n_staff + 1),
            "first_name": firsts,
            "last_name": lasts,
            "department_id": rng.integers(1, n_dep + 1, n_staff),
            "email_address": [f"{f.lower()}.{last.lower()}@terrifictotes.com" for f, last in zip(firsts, lasts, strict=True)],
            "created_at": _ts(np.full(n_staff, staff_ms)),
            "last_updated": _ts(np.full(n_staff, staff_ms)),
        },
    )

    labels = ENUM_LABELS["PaymentTypeName"]
    payment_type = _table(
        "payment_type",
        {
            "payment_type_id": np.arange(1, len(labels) + 1),
            "payment_type_name": list(labels),
            "created_at": _ts(np.full(len(labels), ref_ms)),
            "last_updated": _ts(np.full(len(labels), ref_ms)),
        },
    )
    return {
        "address": address,
        "counterparty": counterparty,
        "currency": currency,
        "department": department,
        "staff": staff,
        "payment_type": payment_type,
    }


# ------------------------------------------------------------------------------------------
# Growing tables
# ------------------------------------------------------------------------------------------


def _working_day_times(rng: np.random.Generator, days: np.ndarray, per_day: float) -> np.ndarray:
    """Creation instants (ms) on working days: Poisson counts, 08:00-19:00, at hh:mm:09.9-10.5.

    The application writes orders in a batch a few seconds into each minute; real timestamps
    cluster there, and so do ours.
    """
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (weekday 3, Monday = 0)
    counts = np.where(weekday < 5, rng.poisson(per_day, len(days)), 0)
    day_of_row = np.repeat(days, counts)
    minutes = rng.integers(8 * 60, 19 * 60, len(day_of_row))
    millis = rng.integers(9_900, 10_520, len(day_of_row))
    return day_of_row.astype(np.int64) * MS_PER_DAY + minutes * 60_000 + millis


def designs(settings: GeneratorSettings) -> pa.Table:
    rng = _rng(settings, 2)
    start_day = _ms(settings.start) // MS_PER_DAY
    end_day = _ms(settings.as_of) // MS_PER_DAY
    days = np.arange(start_day, end_day + 1)
    created = _working_day_times(rng, days, DESIGNS_PER_WEEK / 5 * settings.scale)
    created = created[created < _ms(settings.as_of)]
    # The first design exists when the first order is taken.
    created = np.concatenate([[_ms(REFERENCE_EPOCH)], np.sort(created)])
    n = len(created)
    names = rng.choice(np.array(words.DESIGN_NAMES), n)
    stamp_days = rng.integers(_ms(datetime(2021, 1, 1)) // MS_PER_DAY, _ms(datetime(2023, 12, 31)) // MS_PER_DAY, n)
    stamps = pa.array(stamp_days.astype(np.int32), pa.date32()).cast(pa.string()).to_numpy(zero_copy_only=False)
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    suffix = ["".join(x) for x in rng.choice(alphabet, (n, 4))]
    file_names = [f"{nm.lower()}-{st.replace('-', '')}-{sf}.json" for nm, st, sf in zip(names, stamps, suffix, strict=True)]
    return _table(
        "design",
        {
            "design_id": np.arange(1, n + 1),
            "created_at": _ts(created),
            "design_name": names.tolist(),
            "file_location": rng.choice(np.array(words.FILE_LOCATIONS), n).tolist(),
            "file_name": file_names,
            "last_updated": _ts(created),
        },
    )


@dataclass
class _Counters:
    sales_order: int = 0
    purchase_order: int = 0
    transaction: int = 0


def _agreed_days(rng: np.random.Generator, created_ms: np.ndarray, weights: np.ndarray, long_tail: float) -> np.ndarray:
    """Days since epoch of an agreed date: creation day plus 0-7 days, rarely months later."""
    offsets = rng.choice(len(weights), len(created_ms), p=weights / weights.sum())
    tail = rng.random(len(created_ms)) < long_tail
    offsets = np.where(tail, rng.integers(10, 650, len(created_ms)), offsets)
    return created_ms // MS_PER_DAY + offsets


def order_chunks(settings: GeneratorSettings, design_created_ms: np.ndarray) -> Iterator[dict[str, pa.Table]]:
    """Sales and purchase orders with their transactions and payments, a chunk of days at a time."""
    counters = _Counters()
    start_day = _ms(settings.start) // MS_PER_DAY
    end_day = _ms(settings.as_of) // MS_PER_DAY
    as_of_ms = _ms(settings.as_of)
    for chunk_no, first in enumerate(range(start_day, end_day + 1, settings.chunk_days), start=1):
        rng = _rng(settings, 3, chunk_no)
        days = np.arange(first, min(first + settings.chunk_days, end_day + 1))
        so_created = _working_day_times(rng, days, SALES_ORDERS_PER_WORKING_DAY * settings.scale)
        po_created = _working_day_times(
            rng, days, SALES_ORDERS_PER_WORKING_DAY * PURCHASE_ORDERS_PER_SALES_ORDER * settings.scale
        )
        so_created = np.sort(so_created[(so_created >= _ms(settings.start)) & (so_created < as_of_ms)])
        po_created = np.sort(po_created[(po_created >= _ms(settings.start)) & (po_created < as_of_ms)])
        yield _orders_for(rng, settings, counters, so_created, po_created, design_created_ms, as_of_ms)


def _orders_for(
    rng: np.random.Generator,
    settings: GeneratorSettings,
    counters: _Counters,
    so_created: np.ndarray,
    po_created: np.ndarray,
    design_created_ms: np.ndarray,
    as_of_ms: int,
) -> dict[str, pa.Table]:
    n_so, n_po = len(so_created), len(po_created)

    # Sales orders: a design that exists at the time, any staff, counterparty and currency.
    designs_available = np.searchsorted(design_created_ms, so_created, side="right")
    so_design = (rng.random(n_so) * designs_available).astype(np.int64) + 1
    so_units = rng.integers(1_000, 100_001, n_so)
    so_price = rng.integers(200, 401, n_so)  # hundredths
    so_currency = rng.integers(1, 4, n_so)
    so_counterparty = rng.integers(1, 21, n_so)
    so_delivery = _agreed_days(rng, so_created, DELIVERY_OFFSET_WEIGHTS, 0.007)
    so_payment_day = _agreed_days(rng, so_created, PAYMENT_OFFSET_WEIGHTS, 0.0)
    so_ids = np.arange(counters.sales_order + 1, counters.sales_order + n_so + 1)
    counters.sales_order += n_so
    sales_order = _table(
        "sales_order",
        {
            "sales_order_id": so_ids,
            "created_at": _ts(so_created),
            "last_updated": _ts(so_created),
            "design_id": so_design,
            "staff_id": rng.integers(1, 21, n_so),
            "counterparty_id": so_counterparty,
            "units_sold": so_units,
            "unit_price": _decimal(so_price),
            "currency_id": so_currency,
            "agreed_delivery_date": _date_text(so_delivery),
            "agreed_payment_date": _date_text(so_payment_day),
            "agreed_delivery_location_id": rng.integers(1, 31, n_so),
        },
    )

    po_qty = rng.integers(1, 1_000, n_po)
    po_price = rng.integers(300, 100_001, n_po)
    po_currency = rng.integers(1, 4, n_po)
    po_counterparty = rng.integers(1, 21, n_po)
    po_delivery = _agreed_days(rng, po_created, DELIVERY_OFFSET_WEIGHTS, 0.012)
    po_payment_day = _agreed_days(rng, po_created, PAYMENT_OFFSET_WEIGHTS, 0.0)
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    item_codes = ["".join(x) for x in rng.choice(alphabet, (n_po, 7))]
    po_ids = np.arange(counters.purchase_order + 1, counters.purchase_order + n_po + 1)
    counters.purchase_order += n_po
    purchase_order = _table(
        "purchase_order",
        {
            "purchase_order_id": po_ids,
            "created_at": _ts(po_created),
            "last_updated": _ts(po_created),
            "staff_id": rng.integers(1, 21, n_po),
            "counterparty_id": po_counterparty,
            "item_code": item_codes,
            "item_quantity": po_qty,
            "item_unit_price": _decimal(po_price),
            "currency_id": po_currency,
            "agreed_delivery_date": _date_text(po_delivery),
            "agreed_payment_date": _date_text(po_payment_day),
            "agreed_delivery_location_id": rng.integers(1, 31, n_po),
        },
    )

    # One transaction per order, numbered in order of creation across both kinds.
    created = np.concatenate([so_created, po_created])
    is_sale = np.concatenate([np.ones(n_so, bool), np.zeros(n_po, bool)])
    order_id = np.concatenate([so_ids, po_ids])
    order = np.argsort(created, kind="stable")
    created, is_sale, order_id = created[order], is_sale[order], order_id[order]
    n_tx = len(created)
    tx_ids = np.arange(counters.transaction + 1, counters.transaction + n_tx + 1)
    counters.transaction += n_tx
    transaction = _table(
        "transaction",
        {
            "transaction_id": tx_ids,
            "transaction_type": pa.array(np.where(is_sale, "SALE", "PURCHASE").tolist()),
            "sales_order_id": pa.array(np.where(is_sale, order_id, 0), pa.int32(), mask=~is_sale),
            "purchase_order_id": pa.array(np.where(is_sale, 0, order_id), pa.int32(), mask=is_sale),
            "created_at": _ts(created),
            "last_updated": _ts(created),
        },
    )

    # One payment per transaction: the order's amount, currency, counterparty and payment date.
    amount = np.concatenate([so_units * so_price, po_qty * po_price])[order]
    currency = np.concatenate([so_currency, po_currency])[order]
    counterparty = np.concatenate([so_counterparty, po_counterparty])[order]
    pay_day = np.concatenate([so_payment_day, po_payment_day])[order]
    # The 07:55 batch marks payments paid on their payment date (one run a day, one instant).
    flip_ms = pay_day * MS_PER_DAY + (7 * 60 + 55) * 60_000 + 11_000 + (pay_day * 7919) % 1000
    paid = (flip_ms > created) & (flip_ms <= as_of_ms) & (rng.random(n_tx) < PAID_SHARE)
    payment = _table(
        "payment",
        {
            "payment_id": tx_ids,
            "created_at": _ts(created),
            "last_updated": _ts(np.where(paid, flip_ms, created)),
            "transaction_id": tx_ids,
            "counterparty_id": counterparty,
            "payment_amount": _decimal(amount),
            "currency_id": currency,
            "payment_type_id": np.where(is_sale, 1, 3),  # SALES_RECEIPT / PURCHASE_PAYMENT
            "paid": paid,
            "payment_date": _date_text(pay_day),
            "company_ac_number": rng.integers(10_000_000, 100_000_000, n_tx),
            "counterparty_ac_number": rng.integers(10_000_000, 100_000_000, n_tx),
        },
    )
    return {
        "sales_order": sales_order,
        "purchase_order": purchase_order,
        "transaction": transaction,
        "payment": payment,
    }


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def copy_table(conn: psycopg.Connection, name: str, data: pa.Table) -> int:
    with conn.cursor() as cur:
        return copy_in_batches(cur, sql.Identifier(name), data.column_names, data.to_batches(max_chunksize=200_000))


def populate(conn: psycopg.Connection, settings: GeneratorSettings) -> dict[str, int]:
    """Write generated rows into existing, empty totesys tables; return rows per table."""
    counts: dict[str, int] = {}
    for name, data in reference_tables(settings).items():
        counts[name] = copy_table(conn, name, data)
    design = designs(settings)
    counts["design"] = copy_table(conn, "design", design)
    design_created = design.column("created_at").cast(pa.int64()).to_numpy()
    for chunk in order_chunks(settings, design_created):
        # Orders before their transactions, transactions before payments (foreign keys).
        for name in ("sales_order", "purchase_order", "transaction", "payment"):
            counts[name] = counts.get(name, 0) + copy_table(conn, name, chunk[name])
    return counts


def generate(conn: psycopg.Connection, settings: GeneratorSettings | None = None) -> dict[str, int]:
    """Create the totesys schema in an empty database and fill it; return rows per table."""
    settings = settings or GeneratorSettings()
    counts: dict[str, int] = {}

    def fill(c: psycopg.Connection) -> None:
        counts.update(populate(c, settings))

    create_totesys_schema(conn, populate=fill)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="libpq URL of an empty totesys database")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="generate history up to this day")
    args = parser.parse_args(argv)
    settings = GeneratorSettings(seed=args.seed, scale=args.scale)
    if args.as_of:
        settings = GeneratorSettings(seed=args.seed, scale=args.scale, as_of=datetime.combine(args.as_of, datetime.min.time()))
    started = time.perf_counter()
    with psycopg.connect(args.url) as conn:
        counts = generate(conn, settings)
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    for name, n in counts.items():
        print(f"{name:>15} {n:>12,}")
    print(f"{'total':>15} {total:>12,} rows in {elapsed:.1f} s ({total / elapsed:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
