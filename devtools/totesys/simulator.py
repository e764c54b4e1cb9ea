"""Changes to a live totesys, made the way the application makes them.

Each business action is its own transaction and sets ``last_updated`` (and ``created_at`` on
insert) to the action's instant, as the application does:

* a new sales or purchase order, with its transaction and its payment;
* a new design;
* due payments flipped to paid;
* an update to any table: an address (which reaches dim_location and every counterparty using
  it), a department (which reaches every staff member in it), a counterparty, a staff member, a
  design, an order (a new fact version), a payment's date, and a bare touch of the static
  reference rows (currency, payment_type, transaction) that changes only last_updated.

Rows are never deleted. ``simulate`` returns what it changed, so tests can check the pipeline
picked up exactly that.

    python -m devtools.totesys.simulator --url ... [--every 300]   # the local stack runs this
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from devtools.totesys import words
from include.registry import SOURCE


@dataclass(frozen=True)
class ChangePlan:
    new_sales_orders: int = 4
    new_purchase_orders: int = 2
    new_designs: int = 1
    payments_to_pay: int = 3
    # Updates per table (rows picked at random among existing ones).
    updates: dict[str, int] = field(
        default_factory=lambda: {
            "address": 1,
            "department": 1,
            "counterparty": 1,
            "staff": 1,
            "design": 1,
            "sales_order": 1,
            "purchase_order": 1,
            "payment": 1,
            "currency": 1,
            "payment_type": 1,
            "transaction": 1,
        }
    )

    @classmethod
    def of_size(cls, rows: int) -> ChangePlan:
        """A plan touching about ``rows`` rows, in the live mix (for benchmarks)."""
        orders = max(1, rows // 6)  # each new order writes 3 rows
        return cls(
            new_sales_orders=orders,
            new_purchase_orders=max(1, orders // 2),
            new_designs=max(1, rows // 200),
            payments_to_pay=max(1, rows // 8),
            updates={t: max(1, rows // 40) for t in ("sales_order", "purchase_order", "payment", "design")}
            | dict.fromkeys(("address", "department", "counterparty", "staff", "currency", "payment_type", "transaction"), 1),
        )


@dataclass
class ChangeSummary:
    """Ids of the rows each table got (inserted or updated), and the instant used."""

    at: datetime
    inserted: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    updated: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def changed(self, table: str) -> set[int]:
        return set(self.inserted.get(table, set())) | set(self.updated.get(table, set()))

    @property
    def rows(self) -> int:
        return sum(len(self.changed(t)) for t in SOURCE)


def utc_now_ms() -> datetime:
    """Now as totesys stores it: naive UTC wall-clock with millisecond precision."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Clock:
    """Consecutive instants 1 ms apart from ``at``: distinct versions stay distinct."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.n = 0

    def tick(self) -> datetime:
        self.n += 1
        return self.at + timedelta(milliseconds=self.n - 1)


def _ids(conn: psycopg.Connection, table: str) -> list[int]:
    pk = SOURCE[table].primary_key
    return [r[0] for r in conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY 1").format(sql.Identifier(pk), sql.Identifier(table)))]


def _new_order(
    conn: psycopg.Connection, rng: random.Random, when: datetime, kind: str, ref: dict[str, list[int]], s: ChangeSummary
) -> None:
    agreed_delivery = (when.date() + timedelta(days=rng.randint(0, 7))).isoformat()
    agreed_payment = (when.date() + timedelta(days=rng.randint(0, 6))).isoformat()
    counterparty = rng.choice(ref["counterparty"])
    currency = rng.choice(ref["currency"])
    with conn.transaction():
        if kind == "SALE":
            units, price = rng.randint(1_000, 100_000), rng.randint(200, 400)
            order_id = conn.execute(
                "INSERT INTO sales_order (created_at, last_updated, design_id, staff_id, counterparty_id, units_sold, "
                "unit_price, currency_id, agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s::numeric / 100, %s, %s, %s, %s) RETURNING sales_order_id",
                (
                    when,
                    when,
                    rng.choice(ref["design"]),
                    rng.choice(ref["staff"]),
                    counterparty,
                    units,
                    price,
                    currency,
                    agreed_delivery,
                    agreed_payment,
                    rng.choice(ref["address"]),
                ),
            ).fetchone()[0]
            s.inserted["sales_order"].add(order_id)
            amount_cents, payment_type = units * price, 1
        else:
            qty, price = rng.randint(1, 999), rng.randint(300, 100_000)
            code = "".join(rng.choices(string.ascii_uppercase + string.digits, k=7))
            order_id = conn.execute(
                "INSERT INTO purchase_order (created_at, last_updated, staff_id, counterparty_id, item_code, item_quantity, "
                "item_unit_price, currency_id, agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s::numeric / 100, %s, %s, %s, %s) RETURNING purchase_order_id",
                (
                    when,
                    when,
                    rng.choice(ref["staff"]),
                    counterparty,
                    code,
                    qty,
                    price,
                    currency,
                    agreed_delivery,
                    agreed_payment,
                    rng.choice(ref["address"]),
                ),
            ).fetchone()[0]
            s.inserted["purchase_order"].add(order_id)
            amount_cents, payment_type = qty * price, 3
        column = "sales_order_id" if kind == "SALE" else "purchase_order_id"
        tx_id = conn.execute(
            sql.SQL(
                "INSERT INTO transaction (transaction_type, {}, created_at, last_updated) VALUES (%s, %s, %s, %s) "
                "RETURNING transaction_id"
            ).format(sql.Identifier(column)),
            (kind, order_id, when, when),
        ).fetchone()[0]
        s.inserted["transaction"].add(tx_id)
        payment_id = conn.execute(
            "INSERT INTO payment (created_at, last_updated, transaction_id, counterparty_id, payment_amount, currency_id, "
            "payment_type_id, paid, payment_date, company_ac_number, counterparty_ac_number) "
            "VALUES (%s, %s, %s, %s, %s::numeric / 100, %s, %s, false, %s, %s, %s) RETURNING payment_id",
            (
                when,
                when,
                tx_id,
                counterparty,
                amount_cents,
                currency,
                payment_type,
                agreed_payment,
                rng.randint(10_000_000, 99_999_999),
                rng.randint(10_000_000, 99_999_999),
            ),
        ).fetchone()[0]
        s.inserted["payment"].add(payment_id)


# Updates per table: (SQL SET clause, parameter factory). Each also sets last_updated.
def _update_values(table: str, rng: random.Random, ref: dict[str, list[int]]) -> dict[str, object]:
    if table == "address":
        return {
            "phone": f"{rng.randint(0, 9999):04d} {rng.randint(0, 999999):06d}",
            "address_line_1": f"{rng.randint(1, 99999)} {rng.choice(words.LAST_NAMES)} {rng.choice(words.STREET_SUFFIXES)}",
        }
    if table == "department":
        return {
            "location": rng.choice(["Manchester", "Leeds", "Liverpool"]),
            "manager": f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}",
        }
    if table == "counterparty":
        return {
            "commercial_contact": f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}",
            "legal_address_id": rng.choice(ref["address"]),
        }
    if table == "staff":
        return {"department_id": rng.choice(ref["department"])}
    if table == "design":
        return {"file_location": rng.choice(words.FILE_LOCATIONS)}
    if table == "sales_order":
        return {"units_sold": rng.randint(1_000, 100_000)}
    if table == "purchase_order":
        return {"item_quantity": rng.randint(1, 999)}
    if table == "payment":
        return {"payment_date": (date(2024, 1, 1) + timedelta(days=rng.randint(0, 900))).isoformat()}
    return {}  # currency, payment_type, transaction: the application touches them without change


def simulate(
    conn: psycopg.Connection, *, at: datetime | None = None, seed: int = 0, plan: ChangePlan | None = None
) -> ChangeSummary:
    """Apply ``plan`` to totesys at instant ``at`` (default: now); return what changed."""
    plan = plan or ChangePlan()
    clock = _Clock(at or utc_now_ms())
    summary = ChangeSummary(at=clock.at)
    rng = random.Random(seed)
    conn.autocommit = True  # each action below opens its own transaction
    ref = {t: _ids(conn, t) for t in ("address", "counterparty", "currency", "department", "design", "staff")}

    for _ in range(plan.new_designs):
        when = clock.tick()
        name = rng.choice(words.DESIGN_NAMES)
        design_id = conn.execute(
            "INSERT INTO design (created_at, design_name, file_location, file_name, last_updated) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING design_id",
            (when, name, rng.choice(words.FILE_LOCATIONS), f"{name.lower()}-{when:%Y%m%d}-{rng.randrange(36**4):04x}.json", when),
        ).fetchone()[0]
        summary.inserted["design"].add(design_id)
        ref["design"].append(design_id)

    for kind, n in (("SALE", plan.new_sales_orders), ("PURCHASE", plan.new_purchase_orders)):
        for _ in range(n):
            _new_order(conn, rng, clock.tick(), kind, ref, summary)

    if plan.payments_to_pay:
        due = [
            r[0]
            for r in conn.execute(
                "SELECT payment_id FROM payment WHERE NOT paid AND payment_date <= %s ORDER BY payment_id DESC LIMIT %s",
                (clock.at.date().isoformat(), plan.payments_to_pay * 4),
            )
        ]
        for payment_id in rng.sample(due, min(len(due), plan.payments_to_pay)):
            conn.execute("UPDATE payment SET paid = true, last_updated = %s WHERE payment_id = %s", (clock.tick(), payment_id))
            summary.updated["payment"].add(payment_id)

    for table, n in plan.updates.items():
        ids = _ids(conn, table) if table not in ref else ref[table]
        pk = SOURCE[table].primary_key
        for row_id in rng.sample(ids, min(n, len(ids))):
            values = _update_values(table, rng, ref) | {"last_updated": clock.tick()}
            conn.execute(
                sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values),
                    sql.Identifier(pk),
                ),
                (*values.values(), row_id),
            )
            summary.updated[table].add(row_id)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--seed", type=int, default=None, help="default: a new seed each round")
    parser.add_argument("--every", type=float, default=0, help="repeat every N seconds (0: once)")
    parser.add_argument("--rows", type=int, default=0, help="change about this many rows per round")
    args = parser.parse_args(argv)
    plan = ChangePlan.of_size(args.rows) if args.rows else ChangePlan()
    round_no = 0
    while True:
        round_no += 1
        seed = args.seed if args.seed is not None else time.time_ns()
        with psycopg.connect(args.url) as conn:
            s = simulate(conn, seed=seed + round_no, plan=plan)
        print(
            f"{s.at.isoformat()} changed {s.rows} rows: " + ", ".join(f"{t}={len(s.changed(t))}" for t in SOURCE if s.changed(t)),
            flush=True,
        )
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
