"""Write .env for docker-compose from .env.example, generating every secret left empty there.

    .venv/bin/python scripts/compose_env.py            # writes .env (refuses to overwrite it)
    .venv/bin/python scripts/compose_env.py --force    # new secrets, over an existing .env

Passwords are URL-safe (they go into connection URIs); the Fernet key is 32 random bytes in
URL-safe base64, as cryptography's Fernet.generate_key() makes it. The file is written 0600.

It also writes secrets/payments-api-tokens.json, the payments API's tokens file, with one
reader's bearer token (group finance), printed once: the file keeps only its SHA-256 digest.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from payments_api.auth import add_token  # noqa: E402  (standard library only: any python3 runs this)

LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def generate(key: str) -> str:
    """A fresh value for the secret ``key``."""
    if key == "AIRFLOW__CORE__FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    if key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        return secrets.token_urlsafe(32)
    return secrets.token_hex(16)  # passwords: URL-safe, no quoting needed anywhere


def render(example: str) -> tuple[str, list[str]]:
    """The .env text for ``example`` (the text of .env.example) and the keys generated."""
    out: list[str] = []
    generated: list[str] = []
    for line in example.splitlines():
        m = LINE.match(line)
        if m and m["value"] == "":
            out.append(f"{m['key']}={generate(m['key'])}")
            generated.append(m["key"])
        else:
            out.append(line)
    return "\n".join(out) + "\n", generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    parser.add_argument("--tokens", type=Path, default=ROOT / "secrets" / "payments-api-tokens.json")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists: keeping it (--force writes new secrets)", file=sys.stderr)
        return 1
    text, generated = render(args.example.read_text())
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    args.output.chmod(0o600)
    print(f"wrote {args.output} ({len(generated)} secrets generated: {', '.join(generated)})")
    args.tokens.unlink(missing_ok=True)
    token = add_token(args.tokens, "compose-finance", ["finance"])
    args.tokens.chmod(0o644)  # digests only; the API's container user must read it (compose keeps the mode)
    print(f"wrote {args.tokens}; the payments API's reader token (shown once): {token}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
