"""``python -m payments_api.healthcheck``: exit 0 when the API on this host answers /health with 200.

The container's HEALTHCHECK (docker/payments_api/Dockerfile) and the ECS task's health check
(terraform/payments_api) run it inside the container: the slim image has no curl. It asks
127.0.0.1 on $TOTES_PAYMENTS_API_PORT (8081) and fails on anything but 200 within the timeout:
a 503 (warehouse unreachable), a refused connection or no answer.
"""

from __future__ import annotations

import http.client
import os
import sys

from payments_api.settings import DEFAULT_PORT


def check(port: int, *, host: str = "127.0.0.1", timeout: float = 4.0) -> tuple[bool, str]:
    """(healthy, what was seen) for GET http://host:port/health."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(500).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"no answer from {host}:{port}: {exc}"
    finally:
        conn.close()
    return response.status == 200, f"{response.status} {body}"


def main() -> int:
    port = int(os.environ.get("TOTES_PAYMENTS_API_PORT") or DEFAULT_PORT)
    healthy, seen = check(port)
    print(seen, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
