"""Create (or update) the payments API's read-only login role in the warehouse.

    TOTES_WAREHOUSE_ADMIN_URL=postgresql://<owner of the warehouse tables>@host/warehouse \\
    TOTES_WAREHOUSE_URL=postgresql://totes_payments_api:<password>@host/warehouse \\
    TOTES_WAREHOUSE_SCHEMA=public \\
    python -m payments_api.provision [--create-tables]

The role name and password are those of ``TOTES_WAREHOUSE_URL``, the URL the API itself logs in
with, so the two can never disagree. What it does, idempotently, as the admin:

1. creates the role (LOGIN, no other attribute) or, if it exists, sets its password again (so
   changing the password in the API's URL and running this again rotates it). The password is
   sent as a SCRAM-SHA-256 verifier computed here: the clear text never reaches the server, its
   logs or ``pg_stat_activity``;
2. with ``--create-tables``: creates whatever of the warehouse schema is missing, exactly as the
   pipeline's ``ensure_warehouse_schema`` task does (``include.ddl``; only needed where the API
   may start before the first pipeline run, e.g. docker-compose);
3. grants the role SELECT on the three payments tables and nothing else
   (``sql/readonly_role.sql``, through ``payments_api.readonly_role``).

With ``TOTES_HEALTH_URL`` set (docker-compose: the ``warehouse_health`` connection), it does the
same for the health page's role: created or its password set again from that URL, granted
``include.health.grant_reader`` (SELECT on the run figures and the quarantine only).

docker-compose runs this as the one-shot ``warehouse-init`` (docs/deployment.md). Exit codes: 0
done, 2 configuration error (nothing changed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Mapping

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from payments_api import readonly_role

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


class ConfigError(Exception):
    """The environment does not describe a role that can be provisioned safely."""


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` verifier PostgreSQL stores for ``password`` (RFC 5802 / 7677).

    Only printable ASCII is accepted: for it SASLprep (which libpq applies at login) is the
    identity, so the verifier computed here matches what the client proves.
    """
    if not password or not all(32 < ord(ch) < 127 for ch in password):
        raise ConfigError("the API password must be non-empty printable ASCII without spaces")
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def api_login(api_url: str, name: str = "TOTES_WAREHOUSE_URL") -> tuple[str, str]:
    """(role, password) of a reader's warehouse URL (the API's, or the health page's: ``name``)."""
    params = conninfo_to_dict(api_url)
    role, password = params.get("user"), params.get("password")
    if not role or not password:
        raise ConfigError(f"{name} must name its role and the role's password (postgresql://role:password@...)")
    return str(role), str(password)


def login_role(conn: psycopg.Connection, role: str, password: str) -> None:
    """Create ``role`` as a plain login role, or set its password again (a SCRAM verifier)."""
    verifier = scram_sha256_verifier(password)
    admin = conn.execute("SELECT current_user").fetchone()[0]
    if role == admin:
        raise ConfigError(f"the role {role!r} is the admin login itself: give it a role of its own")
    with conn.transaction():
        found = conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if found and any(found):
            raise ConfigError(f"role {role!r} exists with SUPERUSER or CREATEROLE: refusing to use it for a reader")
        verb = "ALTER" if found else "CREATE"
        conn.execute(
            sql.SQL(
                "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD {}"
            ).format(sql.SQL(verb), sql.Identifier(role), sql.Literal(verifier))
        )


def provision_health(admin_url: str, health_url: str, schema: str) -> str:
    """Create or update the health page's role and let it read what the page reads; its name."""
    from include.health import grant_reader  # the pipeline's own grants (mounted in compose)

    role, password = api_login(health_url, "TOTES_HEALTH_URL")
    with psycopg.connect(admin_url) as conn:
        login_role(conn, role, password)
        grant_reader(conn, schema, role)
    return role


def provision(admin_url: str, api_url: str, schema: str, *, create_tables: bool = False) -> str:
    """Create or update the API's role and grant it read access; return the role name."""
    role, password = api_login(api_url)
    with psycopg.connect(admin_url) as conn:
        login_role(conn, role, password)
        if create_tables:
            from include.ddl import ensure_warehouse_schema  # the pipeline's own DDL (mounted in compose)

            ensure_warehouse_schema(conn, schema)
        readonly_role.apply(conn, role, schema)
    return role


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payments_api.provision", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--create-tables", action="store_true", help="first create whatever of the warehouse schema is missing (include.ddl)"
    )
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    admin_url, api_url = env.get("TOTES_WAREHOUSE_ADMIN_URL"), env.get("TOTES_WAREHOUSE_URL")
    schema = env.get("TOTES_WAREHOUSE_SCHEMA") or "public"
    if not admin_url or not api_url:
        print("payments_api.provision: set TOTES_WAREHOUSE_ADMIN_URL and TOTES_WAREHOUSE_URL", file=sys.stderr)
        return 2
    try:
        if env.get("TOTES_HEALTH_URL"):  # both URLs checked before anything changes
            scram_sha256_verifier(api_login(env["TOTES_HEALTH_URL"], "TOTES_HEALTH_URL")[1])
        role = provision(admin_url, api_url, schema, create_tables=args.create_tables)
    except ConfigError as exc:
        print(f"payments_api.provision: {exc}", file=sys.stderr)
        return 2
    print(f"payments_api.provision: role {role} may read {schema}.fact_payment, dim_currency, dim_counterparty")
    if env.get("TOTES_HEALTH_URL"):
        try:
            health = provision_health(admin_url, env["TOTES_HEALTH_URL"], schema)
        except ConfigError as exc:
            print(f"payments_api.provision: {exc}", file=sys.stderr)
            return 2
        print(f"payments_api.provision: role {health} may read {schema}'s run figures and quarantine (the health page)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
