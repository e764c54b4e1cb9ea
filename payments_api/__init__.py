"""Payments API for the finance department: the last and next scheduled payments, read from the warehouse.

A small FastAPI application over the warehouse's Payments star schema (``fact_payment`` with
``dim_currency`` and ``dim_counterparty``). It only ever reads: every connection it opens is
read-only, and in production it logs in as a role that may only SELECT (``sql/readonly_role.sql``).

    TOTES_WAREHOUSE_URL=postgresql://... python -m payments_api     # http://127.0.0.1:8081/docs

See docs/payments_api.md.
"""

from payments_api.app import create_app
from payments_api.settings import Settings

__all__ = ["Settings", "create_app"]
