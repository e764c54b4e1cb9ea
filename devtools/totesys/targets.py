"""The sales team's monthly targets, as the sales department publishes them (the sales targets feed).

One JSON document per month, at ``<prefix><YYYY>/<MM>/targets-<YYYY>-<MM>.json``:

    {"month": "2024-11", "published_at": "2024-10-28T09:00:00+00:00",
     "targets": [{"staff_id": 3, "currency_code": "GBP", "target_units": 1200, "target_value": 5400.00}, ...]}

Deterministic: the same staff, currencies, month and seed give the same bytes. ``drop`` puts one
into a bucket (the demo does: ``python -m devtools.totesys.targets --endpoint ... --bucket ...``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any


def targets_document(
    staff_ids: Iterable[int],
    currency_codes: Iterable[str],
    month: date,
    *,
    published_at: datetime | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Targets for every salesperson in every currency for ``month``, published (by default) at
    09:00 UTC four days before the month begins."""
    rng = random.Random(f"{seed}:{month:%Y-%m}")
    published = published_at or datetime.combine(month - timedelta(days=4), datetime.min.time(), UTC).replace(hour=9)
    targets = []
    for staff_id in sorted(staff_ids):
        for code in sorted(currency_codes):
            units = rng.randrange(100, 2000, 10)
            price = Decimal(rng.randrange(250, 1500)) / 100  # a tote bag's price
            targets.append(
                {"staff_id": staff_id, "currency_code": code, "target_units": units, "target_value": float(units * price)}
            )
    return {"month": f"{month:%Y-%m}", "published_at": published.isoformat(), "targets": targets}


def encode(document: dict[str, Any]) -> bytes:
    """The document as JSON. A value with two decimals is written as a float whose shortest form
    is those two decimals (Python's repr), so a reader that parses numbers as decimals gets them exactly."""
    return json.dumps(document, indent=1).encode()


def target_key(prefix: str, month: date) -> str:
    return f"{prefix}{month:%Y}/{month:%m}/targets-{month:%Y-%m}.json"


def drop(client: Any, bucket: str, prefix: str, document: dict[str, Any], key: str | None = None) -> str:
    """Put a document into the bucket as the sales department does; its key."""
    month = date.fromisoformat(document["month"] + "-01")
    key = key or target_key(prefix, month)
    client.put_object(Bucket=bucket, Key=key, Body=encode(document), ContentType="application/json")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="the S3 endpoint (moto or MinIO)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="sales-targets/")
    parser.add_argument("--month", default="2024-11", help="YYYY-MM")
    parser.add_argument("--staff", default="1-20", help="staff ids, as a range a-b")
    parser.add_argument("--currencies", default="GBP,USD,EUR")
    args = parser.parse_args(argv)
    import os

    import boto3

    from devtools.s3 import client

    first, _, last = args.staff.partition("-")
    document = targets_document(
        range(int(first), int(last or first) + 1), args.currencies.split(","), date.fromisoformat(args.month + "-01")
    )
    # MinIO (docker-compose): its credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; moto takes any
    s3 = boto3.client("s3", endpoint_url=args.endpoint) if os.environ.get("AWS_ACCESS_KEY_ID") else client(args.endpoint)
    key = drop(s3, args.bucket, args.prefix, document)
    print(f"s3://{args.bucket}/{key}: {len(document['targets'])} targets for {args.month}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
