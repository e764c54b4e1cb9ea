"""Payments API for the finance department: the last and next scheduled payments, read from the warehouse.

A small FastAPI application over the warehouse's Payments star schema (``fact_payment`` with
``dim_currency`` and ``dim_counterparty``). It only ever reads: every connection it opens is
read-only, and in production it logs in as a role that may only SELECT (``sql/readonly_role.sql``).

    TOTES_WAREHOUSE_URL=postgresql://... python -m payments_api     # http://127.0.0.1:8081/docs

See docs/payments_api.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    """Imported when asked for: payments_api.auth (the tokens file) runs on the standard library
    alone, as scripts/compose_env.py does under any python3."""
    if name == "create_app":
        from payments_api.app import create_app

        return create_app
    if name == "Settings":
        from payments_api.settings import Settings

        return Settings
    raise AttributeError(f"module 'payments_api' has no attribute {name!r}")
