"""The latest known version of each row of the source tables that feed joined dimensions.

dim_counterparty joins counterparty to address and dim_staff joins staff to department. When an
address changes, every counterparty using it must be rebuilt, although no counterparty row
changed in that window: the transform needs the current state of both sides. That state lives
in the processed bucket, one small parquet object per source table:

    _state/<source table>.parquet

Updating it is a merge that keeps, per id, the row with the greatest last_updated: the merge is
idempotent and order-independent, so reruns, backfills and retries all converge. Concurrent
writers (a backfill beside the schedule) are serialised by S3 conditional writes: each write
names the ETag it read (or "must not exist"), and a writer that lost the race re-reads and merges
again. Only the reference tables of a join are kept here (tens of rows in totesys); large
tables are never copied into state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from include.derive import latest_versions
from include.lake import Lake

STATE_PREFIX = "_state/"
MAX_ATTEMPTS = 8


class StateConflict(Exception):
    """Another writer changed the state between our read and our write."""


def state_key(source_table: str) -> str:
    return f"{STATE_PREFIX}{source_table}.parquet"


@dataclass
class StateStore:
    lake: Lake

    def read(self, source_table: str) -> tuple[pa.Table | None, str | None]:
        client = self.lake.client
        try:
            obj = client.get_object(Bucket=self.lake.bucket, Key=state_key(source_table))
        except client.exceptions.NoSuchKey:
            return None, None
        return pq.read_table(io.BytesIO(obj["Body"].read())), obj["ETag"]

    def write(self, source_table: str, table: pa.Table, etag: str | None) -> None:
        from botocore.exceptions import ClientError

        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.lake.client.put_object(Bucket=self.lake.bucket, Key=state_key(source_table), Body=buf.getvalue(), **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise StateConflict(source_table) from exc
            raise

    def merge(self, source_table: str, changed: pa.Table, key: str) -> pa.Table:
        """Merge changed rows into the state of ``source_table``; return the new state."""
        for _ in range(MAX_ATTEMPTS):
            current, etag = self.read(source_table)
            if current is not None:
                current = current.cast(changed.schema)
            merged = latest_versions([t for t in (current, changed) if t is not None], key)
            if current is not None and etag and merged.equals(current):
                return current  # nothing new: no write
            try:
                self.write(source_table, merged, etag)
            except StateConflict:
                continue
            return merged
        raise StateConflict(f"{source_table}: gave up after {MAX_ATTEMPTS} concurrent updates")
