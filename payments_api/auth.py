"""Who may read payments: every payments route needs an authenticated caller in the reader group.

Two ways to authenticate, chosen by ``TOTES_PAYMENTS_API_AUTH`` (payments_api.settings):

* ``token`` (local stack, docker-compose): ``Authorization: Bearer <token>``. The tokens live in
  a secret file (``TOTES_PAYMENTS_API_TOKENS_FILE``), never in code, and only as SHA-256
  digests, each with the caller it stands for and that caller's groups::

      {"tokens": [{"sha256": "<hex digest of the token>", "subject": "finance-reports",
                   "groups": ["finance"]}]}

  ``python -m payments_api.auth new-token --subject S --group G --file F`` adds one and prints
  the token once.
* ``alb-oidc`` (AWS): the load balancer has already signed the user in with the company's
  identity provider (OIDC) and forwards the user's claims as ``x-amzn-oidc-data``, a JWT it signs
  with ES256. The service checks that signature against the load balancer's public key
  (fetched by key id from ``TOTES_PAYMENTS_API_ALB_KEYS_URL``, AWS's regional endpoint, and
  kept), that the ``signer`` is this load balancer (``TOTES_PAYMENTS_API_ALB_ARN``), that it has
  not expired, and reads the groups from the claim ``TOTES_PAYMENTS_API_GROUPS_CLAIM``.

No credential, valid or not, is ever logged: failures log the reason and the caller's subject
when one is known, never the token or the header.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("payments_api.auth")

ALB_DATA_HEADER = "x-amzn-oidc-data"


@dataclass(frozen=True)
class Identity:
    subject: str
    groups: frozenset[str]


class Unauthenticated(Exception):
    """No credential, or one that does not hold: HTTP 401."""


class Forbidden(Exception):
    """An authenticated caller outside the reader group: HTTP 403."""


class AuthConfigError(Exception):
    """The service cannot authenticate anyone with this configuration (it refuses to start)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenAuthenticator:
    """Bearer tokens of a secret file, compared by their SHA-256 digests in constant time."""

    def __init__(self, entries: Sequence[tuple[str, Identity]]) -> None:
        self.entries = list(entries)

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuthenticator:
        try:
            document = json.loads(Path(path).read_text())
            entries = [
                (str(t["sha256"]).lower(), Identity(str(t["subject"]), frozenset(map(str, t.get("groups", [])))))
                for t in document["tokens"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuthConfigError(f"cannot read the tokens file {path}: {type(exc).__name__}: {exc}") from None
        if not entries:
            raise AuthConfigError(f"the tokens file {path} holds no token: nobody could read payments")
        return cls(entries)

    def authenticate(self, headers: Any) -> Identity:
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("no bearer token")
        given = digest(token.strip())
        found = None
        for known, identity in self.entries:  # every entry compared: the time says nothing
            if hmac.compare_digest(known, given):
                found = identity
        if found is None:
            raise Unauthenticated("unknown token")
        return found


class AlbOidcAuthenticator:
    """The claims an AWS Application Load Balancer forwards after an OIDC sign-in."""

    def __init__(
        self, *, alb_arn: str, keys_url: str, groups_claim: str = "groups", fetch: Callable[[str], str] | None = None
    ) -> None:
        if not alb_arn or not keys_url:
            raise AuthConfigError("alb-oidc needs TOTES_PAYMENTS_API_ALB_ARN and TOTES_PAYMENTS_API_ALB_KEYS_URL")
        self.alb_arn, self.keys_url, self.groups_claim = alb_arn, keys_url.rstrip("/"), groups_claim
        self.fetch = fetch or _https_get
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _key(self, kid: str) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        if not kid or not all(c.isalnum() or c in "-_" for c in kid):
            raise Unauthenticated("the token names no valid key id")
        with self._lock:
            if kid not in self._keys:
                try:
                    self._keys[kid] = load_pem_public_key(self.fetch(f"{self.keys_url}/{kid}").encode())
                except Exception as exc:  # unreachable endpoint, not a key: nobody is let in
                    raise Unauthenticated(f"no public key for key id {kid}: {type(exc).__name__}") from None
            return self._keys[kid]

    def authenticate(self, headers: Any) -> Identity:
        import jwt

        data = headers.get(ALB_DATA_HEADER)
        if not data:
            raise Unauthenticated(f"no {ALB_DATA_HEADER} header (not signed in through the load balancer)")
        try:
            header = jwt.get_unverified_header(data)
        except jwt.PyJWTError:
            raise Unauthenticated("the load balancer's token is malformed") from None
        if header.get("signer") != self.alb_arn:
            raise Unauthenticated("the token was not signed by this service's load balancer")
        try:
            claims = jwt.decode(
                data, self._key(str(header.get("kid", ""))), algorithms=["ES256"], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the load balancer's token does not hold: {type(exc).__name__}") from None
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = groups.split(",") if "," in groups else groups.split()
        return Identity(str(claims["sub"]), frozenset(str(g).strip() for g in groups))


def _https_get(url: str) -> str:
    """GET a public key (PEM); the URL is the service's own setting, http(s) only."""
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise ValueError("the key URL must be http(s)")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # nosec B310 (scheme checked above)
        return response.read(64 * 1024).decode()


def authorize(identity: Identity, group: str) -> Identity:
    if group not in identity.groups:
        raise Forbidden(f"{identity.subject} is not in the group {group}")
    return identity


# ------------------------------------------------------------------------------------------
# python -m payments_api.auth new-token
# ------------------------------------------------------------------------------------------


def add_token(path: Path, subject: str, groups: Sequence[str]) -> str:
    """Add a new random token for ``subject`` to the tokens file (created 0600); return it."""
    token = secrets.token_urlsafe(32)
    document = json.loads(path.read_text()) if path.exists() else {"tokens": []}
    document["tokens"].append({"sha256": digest(token), "subject": subject, "groups": list(groups)})
    write_private(path, json.dumps(document, indent=2))
    return token


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (created so: never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m payments_api.auth")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-token", help="add a token to a tokens file and print it once")
    new.add_argument("--file", type=Path, required=True)
    new.add_argument("--subject", required=True)
    new.add_argument("--group", action="append", default=[], help="repeatable")
    args = parser.parse_args(argv)
    print(add_token(args.file, args.subject, args.group or ["finance"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
