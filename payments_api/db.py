"""Warehouse access: read-only connections and the two payment queries.

One short-lived connection per request (the API answers a handful of finance queries, not a
stream of them): nothing to keep alive, and an unreachable warehouse is noticed within the
connect timeout. Every connection is read-only three times over: the session default
(``default_transaction_read_only=on``, sent in the startup packet), psycopg's ``read_only``
transactions (``BEGIN READ ONLY``), and, in production, a role with SELECT only
(``sql/readonly_role.sql``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Literal, NamedTuple

import psycopg
from psycopg import errors, sql

from payments_api.settings import Settings

log = logging.getLogger("payments_api")

APPLICATION_NAME = "totes-payments-api"
PAGE_SIZE = 5


class WarehouseUnavailable(Exception):
    """The warehouse cannot answer; ``message`` is safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PaymentRow(NamedTuple):
    payment_id: int
    amount: Decimal
    currency_code: str
    currency_name: str
    counterparty_id: int
    counterparty_legal_name: str
    payment_date: date
    paid: bool


def connect(settings: Settings) -> psycopg.Connection:
    """A new read-only connection to the warehouse (the caller closes it)."""
    if not settings.warehouse_url:
        raise WarehouseUnavailable("the warehouse is not configured (set TOTES_WAREHOUSE_URL)")
    conn = psycopg.connect(
        settings.warehouse_url,
        connect_timeout=settings.connect_timeout,
        application_name=APPLICATION_NAME,
        options=f"-c default_transaction_read_only=on -c statement_timeout={int(settings.statement_timeout_ms)}",
    )
    conn.read_only = True
    return conn


# Facts keep history: one row per version of a payment, a version being (payment_id,
# last_updated_date, last_updated_time). The latest version of each payment is picked first and
# only then filtered by date, so a payment whose date was moved appears only where it is now.
_LATEST_PAYMENTS = """
WITH latest AS (
    SELECT DISTINCT ON (payment_id)
           payment_id, payment_amount, currency_id, counterparty_id, payment_date, paid
      FROM {fact_payment}
     ORDER BY payment_id, last_updated_date DESC, last_updated_time DESC
)
SELECT p.payment_id, p.payment_amount, c.currency_code, c.currency_name,
       cp.counterparty_id, cp.counterparty_legal_name, p.payment_date, p.paid
  FROM latest p
  JOIN {dim_currency} c ON c.currency_id = p.currency_id
  JOIN {dim_counterparty} cp ON cp.counterparty_id = p.counterparty_id
 WHERE {window}
 ORDER BY {order}
 LIMIT %(limit)s
"""

_DIRECTIONS = {
    # the last payments scheduled on or before the day, most recent first
    "last": (sql.SQL("p.payment_date <= %(as_of)s"), sql.SQL("p.payment_date DESC, p.payment_id DESC")),
    # the next payments scheduled after the day, soonest first
    "next": (sql.SQL("p.payment_date > %(as_of)s"), sql.SQL("p.payment_date ASC, p.payment_id ASC")),
}


def payments_query(schema: str, direction: Literal["last", "next"]) -> sql.Composed:
    window, order = _DIRECTIONS[direction]
    return sql.SQL(_LATEST_PAYMENTS).format(
        fact_payment=sql.Identifier(schema, "fact_payment"),
        dim_currency=sql.Identifier(schema, "dim_currency"),
        dim_counterparty=sql.Identifier(schema, "dim_counterparty"),
        window=window,
        order=order,
    )


def fetch_payments(
    settings: Settings, direction: Literal["last", "next"], as_of: date, limit: int = PAGE_SIZE
) -> list[PaymentRow]:
    """The latest version of the ``limit`` payments before/after ``as_of`` (see ``_DIRECTIONS``)."""
    query = payments_query(settings.schema, direction)
    with _translated_errors(settings), connect(settings) as conn, conn.cursor() as cur:
        cur.execute(query, {"as_of": as_of, "limit": limit})
        return [PaymentRow(*row) for row in cur.fetchall()]


def ping(settings: Settings) -> None:
    """Raise WarehouseUnavailable unless the warehouse answers a query on the payments tables."""
    probe = sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(settings.schema, "fact_payment"))
    with _translated_errors(settings), connect(settings) as conn:
        conn.execute(probe)


@contextmanager
def _translated_errors(settings: Settings) -> Iterator[None]:
    """Turn database errors into WarehouseUnavailable with a message fit for a client.

    The full error goes to the log; the client never sees a stack trace, a URL or a password.
    """
    try:
        yield
    except psycopg.Error as exc:
        log.warning("warehouse error: %s: %s", type(exc).__name__, str(exc).strip())
        if isinstance(exc, errors.UndefinedTable | errors.InvalidSchemaName):
            message = f"the warehouse has no payments tables in schema {settings.schema!r} yet"
        elif isinstance(exc, errors.InsufficientPrivilege):
            message = "the API's database role may not read the payments tables"
        elif isinstance(exc, errors.QueryCanceled):
            message = "the warehouse took too long to answer; try again later"
        elif isinstance(exc, psycopg.OperationalError):
            message = "the warehouse is unreachable; try again later"
        else:
            message = "the warehouse could not answer the query"
        raise WarehouseUnavailable(message) from exc
