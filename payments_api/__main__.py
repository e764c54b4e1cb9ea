"""``python -m payments_api``: serve the API with uvicorn on 127.0.0.1 (port $TOTES_PAYMENTS_API_PORT, 8081)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from payments_api.app import create_app
from payments_api.auth import AuthConfigError
from payments_api.settings import DEFAULT_PORT, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m payments_api", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("TOTES_PAYMENTS_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TOTES_PAYMENTS_API_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if not settings.warehouse_url:
        print("payments_api: set TOTES_WAREHOUSE_URL to the warehouse's libpq URL", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        print(f"payments_api: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
