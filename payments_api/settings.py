"""Configuration of the payments API, read from the environment once, when the app is created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 8081


@dataclass(frozen=True)
class Settings:
    """Where the warehouse is and how to reach it, and who may read (payments_api.auth).

    * ``TOTES_WAREHOUSE_URL``: libpq URL of the warehouse database (required to serve payments).
    * ``TOTES_WAREHOUSE_SCHEMA``: the schema of the star schema (default ``public``), the same
      value as the pipeline's ``totes_warehouse_schema`` variable.
    * ``TOTES_WAREHOUSE_CONNECT_TIMEOUT``: seconds to wait for a connection (default 3).
    * ``TOTES_WAREHOUSE_STATEMENT_TIMEOUT_MS``: longest a query may run (default 5000).
    * ``TOTES_PAYMENTS_API_AUTH``: ``token`` (default) or ``alb-oidc``.
    * ``TOTES_PAYMENTS_API_TOKENS_FILE``: the secret file of bearer tokens (``token``).
    * ``TOTES_PAYMENTS_API_READER_GROUP``: the group that may read payments (default ``finance``).
    * ``TOTES_PAYMENTS_API_ALB_ARN``, ``TOTES_PAYMENTS_API_ALB_KEYS_URL``,
      ``TOTES_PAYMENTS_API_GROUPS_CLAIM`` (default ``groups``): the load balancer that signs the
      users' claims, where its public keys are, and the claim holding the groups (``alb-oidc``).
    """

    warehouse_url: str | None
    schema: str = "public"
    connect_timeout: int = 3
    statement_timeout_ms: int = 5000
    auth: str = "token"
    tokens_file: str | None = None
    reader_group: str = "finance"
    alb_arn: str | None = None
    alb_keys_url: str | None = None
    groups_claim: str = "groups"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            warehouse_url=env.get("TOTES_WAREHOUSE_URL") or None,
            schema=env.get("TOTES_WAREHOUSE_SCHEMA") or "public",
            connect_timeout=int(env.get("TOTES_WAREHOUSE_CONNECT_TIMEOUT") or 3),
            statement_timeout_ms=int(env.get("TOTES_WAREHOUSE_STATEMENT_TIMEOUT_MS") or 5000),
            auth=env.get("TOTES_PAYMENTS_API_AUTH") or "token",
            tokens_file=env.get("TOTES_PAYMENTS_API_TOKENS_FILE") or None,
            reader_group=env.get("TOTES_PAYMENTS_API_READER_GROUP") or "finance",
            alb_arn=env.get("TOTES_PAYMENTS_API_ALB_ARN") or None,
            alb_keys_url=env.get("TOTES_PAYMENTS_API_ALB_KEYS_URL") or None,
            groups_claim=env.get("TOTES_PAYMENTS_API_GROUPS_CLAIM") or "groups",
        )

    def authenticator(self) -> Any:
        """The authenticator of ``auth`` (payments_api.auth); AuthConfigError when it cannot work."""
        from payments_api.auth import AlbOidcAuthenticator, AuthConfigError, TokenAuthenticator

        if self.auth == "token":
            if not self.tokens_file:
                raise AuthConfigError("set TOTES_PAYMENTS_API_TOKENS_FILE to the secret file of bearer tokens")
            return TokenAuthenticator.from_file(self.tokens_file)
        if self.auth == "alb-oidc":
            return AlbOidcAuthenticator(
                alb_arn=self.alb_arn or "", keys_url=self.alb_keys_url or "", groups_claim=self.groups_claim
            )
        raise AuthConfigError(f"TOTES_PAYMENTS_API_AUTH must be token or alb-oidc, not {self.auth!r}")
