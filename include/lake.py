"""The lake: object key layout, manifests (one writer: ``publish``), parquet parts, and bucket access.

Key layout (both buckets, README "Key layout"):

    <table>/date=<YYYY-MM-DD>/run=<run id>/part-00000.parquet
    <table>/date=<YYYY-MM-DD>/run=<run id>/manifest.json

``date`` is the UTC day of the run's data interval end; ``run`` is the Airflow run id made safe
for keys. A rerun of the same run writes the same keys (idempotent), two different runs never
share a key. The manifest is written last and is the commit: readers only read the parts it lists,
so a task killed half-way leaves nothing that anyone reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_FORMAT = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def run_key(run_id: str) -> str:
    """The run id as a key segment: ``scheduled__2024-11-15T14:15:00+00:00`` -> ``scheduled__2024-11-15T14-15-00-00-00``."""
    return _UNSAFE.sub("-", run_id).strip("-")


def run_prefix(table: str, interval_end: datetime, run_id: str) -> str:
    day = to_naive_utc(interval_end).date().isoformat()
    return f"{table}/date={day}/run={run_key(run_id)}/"


QUARANTINE = "quarantine/"


def quarantine_prefix(table: str, interval_end: datetime, run_id: str) -> str:
    """Where a run's rejected rows of ``table`` go (README, "Quarantine")."""
    return QUARANTINE + run_prefix(table, interval_end, run_id)


def part_key(prefix: str, n: int) -> str:
    return f"{prefix}part-{n:05d}.parquet"


def manifest_key(prefix: str) -> str:
    return f"{prefix}manifest.json"


def to_naive_utc(value: datetime) -> datetime:
    """totesys stores UTC wall-clock time without zone: compare in the same terms."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


# ------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------


@dataclass
class Part:
    key: str
    rows: int
    bytes: int = 0  # 0 in a manifest written before parts recorded their size


@dataclass
class Manifest:
    """What one task wrote for one table in one run."""

    table: str
    run_id: str
    rows: int
    parts: list[Part]
    columns: list[dict[str, Any]]
    window: dict[str, str | None] = field(default_factory=dict)
    mode: str | None = None
    max_last_updated: str | None = None
    # For processed tables: the newest last_updated of each source table read (freshness).
    source_max: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        data = json.loads(raw)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unsupported manifest format {data.get('format')!r}")
        data["parts"] = [Part(**p) for p in data["parts"]]
        return cls(**data)


def schema_description(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def publish(
    lake: Lake, prefix: str, parts: list[Part], schema: pa.Schema, *, table: str, run_id: str, **details: Any
) -> str | None:
    """Commit what a task wrote under ``prefix``: the manifest listing ``parts`` of ``schema``
    (with the ``details`` of Manifest: window, inputs...), or, when there are no parts, nothing
    at all: whatever an earlier attempt of this run left there is removed. Returns the manifest key."""
    if not parts:
        lake.discard(prefix)
        return None
    rows = sum(p.rows for p in parts)
    manifest = Manifest(table=table, run_id=run_id, rows=rows, parts=parts, columns=schema_description(schema), **details)
    return lake.commit(prefix, manifest)


# ------------------------------------------------------------------------------------------
# Object store access (through the Amazon provider's S3Hook)
# ------------------------------------------------------------------------------------------


class Lake:
    """One bucket, read and written through an ``S3Hook`` (so the same code runs on AWS, MinIO
    or moto: the endpoint comes from the Airflow connection)."""

    def __init__(self, hook: Any, bucket: str) -> None:
        self.hook = hook
        self.bucket = bucket

    @property
    def client(self) -> Any:
        return self.hook.get_conn()

    def has_prefix(self, prefix: str) -> bool:
        """Whether anything exists under ``prefix`` (one LIST call of one key, whatever the size)."""
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return resp.get("KeyCount", 0) > 0

    def keys(self, prefix: str) -> list[str]:
        return self.hook.list_keys(bucket_name=self.bucket, prefix=prefix) or []

    def put_file(self, path: str, key: str) -> None:
        self.hook.load_file(filename=path, key=key, bucket_name=self.bucket, replace=True)

    def put_bytes(self, data: bytes, key: str) -> None:
        self.hook.load_bytes(data, key=key, bucket_name=self.bucket, replace=True)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def download(self, key: str, path: str) -> None:
        self.client.download_file(self.bucket, key, path)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self.hook.delete_objects(bucket=self.bucket, keys=keys)

    def read_manifest(self, key: str) -> Manifest:
        return Manifest.from_json(self.get_bytes(key))

    def commit(self, prefix: str, manifest: Manifest) -> str:
        """Write the manifest (the commit point), then drop leftovers of earlier attempts."""
        key = manifest_key(prefix)
        self.put_bytes(manifest.to_json(), key)
        keep = {p.key for p in manifest.parts} | {key}
        self.delete(k for k in self.keys(prefix) if k not in keep)
        return key

    def discard(self, prefix: str) -> None:
        """Remove what an earlier attempt of this run left under ``prefix`` (nothing to commit now)."""
        self.delete(self.keys(prefix))

    def iter_parts(self, manifest: Manifest, workdir: str) -> Iterator[str]:
        """Download the manifest's parts one at a time; yields a local path, removed afterwards."""
        import os

        for i, part in enumerate(manifest.parts):
            path = os.path.join(workdir, f"in-{i:05d}.parquet")
            self.download(part.key, path)
            try:
                yield path
            finally:
                os.remove(path)


def parquet_writer(path: str, schema: pa.Schema) -> Any:
    """A parquet writer with the lake's settings: zstd, and dictionary encoding only for text.

    Dictionaries of ids, amounts and timestamps (nearly all distinct) cost time and size: on
    payment, zstd without them writes in less than half the time and a third fewer bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=text)


def write_parquet_parts(
    lake: Lake,
    prefix: str,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    workdir: str,
    *,
    rows_per_part: int = 1_000_000,
) -> list[Part]:
    """Write batches as parquet parts under ``prefix``; each part is spooled to disk, then uploaded.

    A part uploads on a second thread while the next one is written. Memory holds one batch at
    a time; an empty input writes nothing at all. If anything fails, the uploads under way end
    before the error propagates (the caller then discards the prefix: nothing is half-kept).
    """
    import os
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow.parquet as pq

    parts: list[Part] = []
    uploads: list[Future] = []
    writer: pq.ParquetWriter | None = None
    path = ""
    rows_in_part = 0

    def upload(local: str, key: str) -> None:
        try:
            lake.put_file(local, key)
        finally:
            os.remove(local)

    def close_part() -> None:
        nonlocal writer, rows_in_part
        if writer is None:
            return
        writer.close()
        key = part_key(prefix, len(parts))
        size = os.path.getsize(path)  # before the upload removes it
        uploads.append(uploader.submit(upload, path, key))
        parts.append(Part(key=key, rows=rows_in_part, bytes=size))
        writer, rows_in_part = None, 0

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-upload") as uploader:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                path = os.path.join(workdir, f"out-{len(parts):05d}.parquet")
                writer = parquet_writer(path, schema)
            writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
            rows_in_part += batch.num_rows
            if rows_in_part >= rows_per_part:
                close_part()
        close_part()
        for done in uploads:
            done.result()  # an upload's error is this call's error
    return parts


def read_parquet_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The row groups of a local parquet file, one at a time."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for i in range(f.num_row_groups):
            yield from f.read_row_group(i, columns=columns).to_batches()


class Spool:
    """Tables appended to one local parquet file, opened on the first non-empty write."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._writer = None

    def write(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        if self._writer is None:
            self._schema = table.schema
            self._writer = parquet_writer(self.path, table.schema)
        self._writer.write_table(table.cast(self._schema))
        self.rows += table.num_rows

    def close(self) -> bool:
        """Close the file; whether anything was written."""
        if self._writer is not None:
            self._writer.close()
        return self.rows > 0
