"""Configuration of the payments API, read from the environment once, when the app is created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 8081


@dataclass(frozen=True)
class Settings:
    """Where the warehouse is and how to reach it.

    * ``TOTES_WAREHOUSE_URL``: libpq URL of the warehouse database (required to serve payments).
    * ``TOTES_WAREHOUSE_SCHEMA``: the schema of the star schema (default ``public``), the same
      value as the pipeline's ``totes_warehouse_schema`` variable.
    * ``TOTES_WAREHOUSE_CONNECT_TIMEOUT``: seconds to wait for a connection (default 3).
    * ``TOTES_WAREHOUSE_STATEMENT_TIMEOUT_MS``: longest a query may run (default 5000).
    """

    warehouse_url: str | None
    schema: str = "public"
    connect_timeout: int = 3
    statement_timeout_ms: int = 5000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            warehouse_url=env.get("TOTES_WAREHOUSE_URL") or None,
            schema=env.get("TOTES_WAREHOUSE_SCHEMA") or "public",
            connect_timeout=int(env.get("TOTES_WAREHOUSE_CONNECT_TIMEOUT") or 3),
            statement_timeout_ms=int(env.get("TOTES_WAREHOUSE_STATEMENT_TIMEOUT_MS") or 5000),
        )
