"""File feeds (README "File feeds"): JSON documents in a partner's bucket -> the ingestion bucket -> the warehouse.

A feed is declared in include.registry (``FileFeed``); this module reads the declaration, so a
second feed needs no code here. Two stages, as for the database:

* ``pick_up`` (ingest) lists the feed's prefix (paginated), takes every object the warehouse's
  ledger (``etl_file``) has not seen at that ETag, reads it once (at most ``max_bytes``, and only
  if it is still that ETag), and for each one either
  - keeps it: the bytes unchanged under ``<feed>_files/date=/run=/`` of the ingestion bucket,
    its records as one parquet part under ``<feed>/date=/run=/``, both listed in the run's
    manifest (the commit), or
  - quarantines it whole (not JSON, not the declared schema, an unknown staff member or
    currency, too large) under ``quarantine/<feed>/date=/run=/`` with ``reason.json``, and
    records it in the ledger at once, so that it is mailed once and not taken again (a
    corrected file has another ETag, or another key, and is taken);
* ``load_feed`` (load) merges the manifest's files in one transaction: each file's ledger row
  first (ON CONFLICT DO NOTHING: a file loads once, whatever reruns or duplicate notifications
  do), then, if it is the latest document of its scope (published_at, then the object's
  LastModified), it replaces every row of the scope; an older one is recorded as superseded
  and changes nothing.

Object keys are data, never paths: keys written here are made of the run's prefix, a counter
and a digest of the source key; the source key itself is kept in the manifest, the parquet
rows, the ledger and the reason, and HTML-escaped in mails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from psycopg import sql

from include import bookkeeping, quarantine
from include.lake import Part, publish, quarantine_prefix, run_prefix, to_naive_utc
from include.registry import FILE_FEEDS, FileFeed, JsonField
from include.results import FeedLoadResult, FeedPickUpResult

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from include.lake import Lake

log = logging.getLogger(__name__)

FEEDS: dict[str, FileFeed] = {f.name: f for f in FILE_FEEDS}
QUARANTINED_FILE = "file.body"  # as it was in the partner's bucket: it may not be JSON at all
MAX_PROBLEMS = 20  # listed in a reason; the count says how many more
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # fullmatch: no trailing newline, ASCII digits only
_CODE = re.compile(r"[A-Z]+")
MAX_COPY_BYTES = 5 * 2**30  # S3's largest single CopyObject
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
INT_LIMIT = 2**31


def feed(name: str) -> FileFeed:
    try:
        return FEEDS[name]
    except KeyError:
        raise ValueError(f"unknown file feed {name!r}: one of {sorted(FEEDS)}") from None


def files_table(f: FileFeed) -> str:
    """The lake table of a feed's files as they came (beside ``<feed>``, its records)."""
    return f"{f.name}_files"


# ------------------------------------------------------------------------------------------
# The partner's bucket
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceObject:
    key: str
    etag: str  # without S3's quotes
    size: int
    last_modified: datetime  # naive UTC
    version_id: str | None = None

    @property
    def digest(self) -> str:
        """A short name for the object, safe in any key whatever its key holds."""
        return hashlib.sha256(f"{self.key}\0{self.etag}".encode()).hexdigest()[:16]

    def uri(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


def list_objects(client: Any, bucket: str, prefix: str, *, page_size: int = 1000) -> list[SourceObject]:
    """Every object under ``prefix``, page after page (S3 gives at most 1,000 keys a page); "folder" markers skipped."""
    found = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for o in page.get("Contents", []):
            if o["Key"].endswith("/") and int(o["Size"]) == 0:
                continue  # a "folder" marker; a key ending in "/" with content is taken like any other
            found.append(SourceObject(o["Key"], o["ETag"].strip('"'), int(o["Size"]), to_naive_utc(o["LastModified"])))
    return found


class ObjectChanged(Exception):
    """The object was replaced between the listing and the read: the next pick-up takes the new one."""


def read_object(client: Any, bucket: str, obj: SourceObject, max_bytes: int) -> tuple[bytes, str | None]:
    """At most ``max_bytes`` + 1 bytes of the object, only if it still has the listed ETag; and its VersionId."""
    from botocore.exceptions import ClientError

    # An empty object has no byte range to ask for (S3 answers 416): read it whole.
    ranged = {"Range": f"bytes=0-{max_bytes}"} if obj.size else {}
    try:
        answer = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=f'"{obj.etag}"', **ranged)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "NoSuchKey"):
            raise ObjectChanged(f"s3://{bucket}/{obj.key} changed or went away since it was listed") from None
        raise
    return answer["Body"].read(), answer.get("VersionId")


# ------------------------------------------------------------------------------------------
# Documents
# ------------------------------------------------------------------------------------------


class BadFile(ValueError):
    """A file that cannot be loaded as it is: quarantined whole, with every problem found."""

    def __init__(self, problems: list[str]) -> None:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        super().__init__("; ".join(shown))
        self.problems = shown


@dataclass(frozen=True)
class Document:
    scope: date
    published: datetime  # naive UTC, to the millisecond
    records: list[dict[str, Any]]  # field name -> value, in the file's order


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a field twice (json keeps the last one, silently)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the field {_short(key)} appears twice in one object")
        found[key] = value
    return found


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_value(spec: JsonField, value: object) -> Any:
    """The stored value of one JSON value of ``spec``, or ValueError saying why not."""
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"is not an integer: {_short(value)}")
        if not 0 <= value < INT_LIMIT:
            raise ValueError(f"is out of range: {value}")
        return value
    if spec.kind == "decimal":
        precision, scale = spec.type.args
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise ValueError(f"is not a number: {_short(value)}")
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"is not a finite number: {number}")
        if number < 0:
            raise ValueError(f"is negative: {number}")
        # the size first: quantize below then needs at most ``precision`` digits
        if number >= Decimal(10) ** (precision - scale):
            raise ValueError(f"is too large for numeric({precision},{scale}): {_short(number)}")
        step = Decimal(1).scaleb(-scale)
        with localcontext() as ctx:
            ctx.prec = max(precision, 28) + scale + 2
            exact = number.quantize(step)
        if exact != number:
            raise ValueError(f"has more than {scale} decimals: {_short(number)}")
        return exact
    if spec.kind == "code":
        (length,) = spec.type.args
        if not isinstance(value, str) or len(value) != length or not _CODE.fullmatch(value):
            raise ValueError(f"is not {length} capital letters: {_short(value)}")
        return value
    if spec.kind == "month":
        match = _MONTH.fullmatch(value) if isinstance(value, str) else None
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValueError(f"is not a YYYY-MM month: {_short(value)}")
        return date(int(match[1]), int(match[2]), 1)
    if spec.kind == "timestamp":
        try:
            if not isinstance(value, str):
                raise ValueError
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is not an ISO 8601 timestamp: {_short(value)}") from None
        if moment.tzinfo is None:
            raise ValueError(f"has no time zone: {_short(value)}")
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"is out of range in UTC: {_short(value)}") from None
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    raise AssertionError(spec.kind)


def parse_document(f: FileFeed, body: bytes) -> Document:
    """The document of a file of feed ``f``, or BadFile listing every problem found.

    Refused: not UTF-8 JSON; not an object; a missing or unexpected top-level field; a header
    value or a record field not of its declared kind (``read_value``); records not a list; a
    record not an object, or with a missing or unexpected field; two records with the same
    ``record_key``."""
    if not body.strip():
        raise BadFile(["the file is empty"])
    try:
        data = json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=_no_repeats
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFile([f"the file is not JSON ({exc})"]) from None
    except RecursionError:
        raise BadFile(["the file is not JSON we read: nested too deeply"]) from None
    if not isinstance(data, dict):
        raise BadFile([f"the file is not a JSON object: {_short(data)}"])
    header, problems = _read_fields(f.header, data, "", also=(f.records,))
    raw_records = data.get(f.records, [])
    if not isinstance(raw_records, list):
        problems.append(f"{f.records} is not a list: {_short(raw_records)}")
        raw_records = []
    records: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    for i, raw in enumerate(raw_records):
        where = f"{f.records}[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where} is not an object: {_short(raw)}")
            continue
        record, bad = _read_fields(f.fields, raw, where)
        problems += bad
        if bad:
            continue
        key = tuple(record[k] for k in f.record_key)
        if key in seen:
            problems.append(f"{where} repeats {dict(zip(f.record_key, key, strict=True))} of {f.records}[{seen[key]}]")
            continue
        seen[key] = i
        records.append(record)
    if problems:
        raise BadFile(problems)
    return Document(scope=header[f.scope.name], published=header[f.published.name], records=records)


def _read_fields(
    specs: tuple[JsonField, ...], raw: dict[str, Any], where: str, *, also: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """The values of ``specs`` in the JSON object ``raw`` (``where`` names it in problems), and
    the problems: a missing or unexpected field (``also``: other fields it may hold), a value not
    of its kind."""
    names = [s.name for s in specs] + list(also)
    at, dot = (f"{where}: ", f"{where}.") if where else ("", "")
    problems = [f"{at}field {n!r} is missing" for n in names if n not in raw]
    problems += [f"{at}unexpected field {_short(n)}" for n in raw if n not in names]
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in raw:
            try:
                values[spec.name] = read_value(spec, raw[spec.name])
            except ValueError as exc:
                problems.append(f"{dot}{spec.name} {exc}")
    return values, problems


def _listed(values: list) -> str:
    return ", ".join(map(str, values[:10])) + (f" and {len(values) - 10} more" if len(values) > 10 else "")


def unknown_references(conn: psycopg.Connection, schema: str, f: FileFeed, records: list[dict[str, Any]]) -> list[str]:
    """A problem for each record value of a lookup field that names no row of its warehouse table."""
    problems = []
    for lk in f.lookups:
        wanted = sorted({r[lk.field] for r in records})
        if not wanted:
            continue
        rows = conn.execute(
            sql.SQL("SELECT {col}, count(*) FROM {table} WHERE {col} = ANY(%s) GROUP BY 1").format(
                col=sql.Identifier(lk.column), table=sql.Identifier(schema, lk.table)
            ),
            (wanted,),
        ).fetchall()
        matches = {r[0]: r[1] for r in rows}
        missing = [v for v in wanted if v not in matches]
        if missing:
            problems.append(f"{lk.field} not in {lk.table}: {_listed(missing)}")
        ambiguous = [v for v in wanted if matches.get(v, 0) > 1]
        if ambiguous:  # the load could not tell which row a value means
            problems.append(f"{lk.field} names more than one row of {lk.table}: {_listed(ambiguous)}")
    return problems


# ------------------------------------------------------------------------------------------
# The lake: records as parquet
# ------------------------------------------------------------------------------------------


def records_schema(f: FileFeed) -> pa.Schema:
    """A feed's records in the lake: the scope, the fields as the file names them, and where each came from."""
    import pyarrow as pa

    from include.pgarrow import arrow_type

    fields = [pa.field(f.scope.name, arrow_type(f.scope.type), False), pa.field(f.published.name, pa.timestamp("ms"), False)]
    fields += [pa.field(s.name, arrow_type(s.type), False) for s in f.fields]
    fields += [
        pa.field("source_key", pa.string(), False),
        pa.field("source_etag", pa.string(), False),
        pa.field("source_version", pa.string(), True),
        pa.field("source_last_modified", pa.timestamp("ms"), False),
    ]
    return pa.schema(fields)


def records_table(f: FileFeed, doc: Document, obj: SourceObject) -> pa.Table:
    import pyarrow as pa

    n = len(doc.records)
    columns: dict[str, list] = {f.scope.name: [doc.scope] * n, f.published.name: [doc.published] * n}
    for s in f.fields:
        columns[s.name] = [r[s.name] for r in doc.records]
    columns |= {
        "source_key": [obj.key] * n,
        "source_etag": [obj.etag] * n,
        "source_version": [obj.version_id] * n,
        "source_last_modified": [obj.last_modified] * n,
    }
    meta = {
        f.scope.name: doc.scope.isoformat(),
        f.published.name: doc.published.isoformat(),
        "source_key": obj.key,
        "source_etag": obj.etag,
        "source_version": obj.version_id,
        "source_last_modified": obj.last_modified.isoformat(),
        "source_size": obj.size,
    }
    schema = records_schema(f).with_metadata({FILE_METADATA: json.dumps(meta).encode()})
    return pa.table(columns, schema=schema)


# ------------------------------------------------------------------------------------------
# The ledger: etl_file
# ------------------------------------------------------------------------------------------


def taken(conn: psycopg.Connection, schema: str, f: FileFeed) -> set[tuple[str, str]]:
    """(key, ETag) of every object of the feed the ledger holds, whatever became of it."""
    rows = conn.execute(
        sql.SQL("SELECT object_key, etag FROM {} WHERE feed = %s").format(bookkeeping.table(schema, bookkeeping.FILE_LEDGER)),
        (f.name,),
    ).fetchall()
    return {(k, e) for k, e in rows}


def record_quarantined(
    conn: psycopg.Connection, schema: str, f: FileFeed, obj: SourceObject, *, run_id: str, problems: list[str], key: str
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (feed, object_key, etag, version_id, size, last_modified, outcome, reason, lake_key, run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'quarantined', %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(bookkeeping.table(schema, bookkeeping.FILE_LEDGER)),
        (f.name, obj.key, obj.etag, obj.version_id, obj.size, obj.last_modified, "; ".join(problems), key, run_id),
    )


def quarantined_by_run(conn: psycopg.Connection, schema: str, f: FileFeed, run_id: str) -> list[tuple[str, str, str]]:
    """(source key, reason, quarantine key) of the files ``run_id`` quarantined: what its mail lists."""
    rows = conn.execute(
        sql.SQL(
            "SELECT object_key, reason, lake_key FROM {} WHERE feed = %s AND run_id = %s AND outcome = 'quarantined' "
            "ORDER BY taken_at, object_key"
        ).format(bookkeeping.table(schema, bookkeeping.FILE_LEDGER)),
        (f.name, run_id),
    ).fetchall()
    return [tuple(r) for r in rows]


# ------------------------------------------------------------------------------------------
# Ingest: pick up what landed
# ------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    kept: list[tuple[SourceObject, Document]] = field(default_factory=list)
    quarantined: list[SourceObject] = field(default_factory=list)
    changed: int = 0


def pick_up(
    f: FileFeed,
    partner: Lake,
    lake: Lake,
    wh: psycopg.Connection,
    schema: str,
    *,
    prefix: str,
    run_id: str,
    interval_end: datetime,
    workdir: str,
    max_files: int = 500,
) -> FeedPickUpResult:
    """Take every object under ``prefix`` of the partner's bucket that the ledger has not seen
    at its ETag, oldest first (at most ``max_files``; the next pick-up takes the rest), and commit
    the kept ones as one manifest (module docstring). A rerun of the run that finds nothing new
    leaves what an earlier attempt committed as it is."""

    seen = list_objects(partner.client, partner.bucket, prefix)
    done = taken(wh, schema, f)
    new = sorted((o for o in seen if (o.key, o.etag) not in done), key=lambda o: (o.last_modified, o.key))
    todo = new[:max_files]
    records_prefix = run_prefix(f.name, interval_end, run_id)
    files_prefix = run_prefix(files_table(f), interval_end, run_id)
    refused_prefix = quarantine_prefix(f.name, interval_end, run_id)
    outcome = _Outcome()
    for obj in todo:
        try:
            problems, body, obj = _read_and_check(f, partner, wh, schema, obj)
        except ObjectChanged as changed:
            log.warning("%s", changed)
            outcome.changed += 1
            continue
        if problems:
            where = f"{refused_prefix}{obj.digest}/"
            reason = {
                "feed": f.name,
                "bucket": partner.bucket,
                "key": obj.key,
                "etag": obj.etag,
                "version_id": obj.version_id,
                "size": obj.size,
                "problems": problems,
            }
            if body is None and obj.size > MAX_COPY_BYTES:  # beyond one CopyObject: the reason alone, the file stays where it is
                key = quarantine.store(
                    lake, where, "reason.json", json.dumps(reason | {"kept_in_place": True}, indent=1).encode()
                )
            elif body is None:  # too large: copied as it is, never read into memory
                key = f"{where}{QUARANTINED_FILE}"
                try:
                    _copy(partner, lake, obj, key)
                except ObjectChanged as changed:
                    log.warning("%s", changed)
                    outcome.changed += 1
                    continue
                quarantine.store(lake, where, "reason.json", json.dumps(reason, indent=1).encode())
            else:
                key = quarantine.store(lake, where, QUARANTINED_FILE, body, reason)
            with wh.transaction():
                record_quarantined(wh, schema, f, obj, run_id=run_id, problems=problems, key=key)
            log.error("%s quarantined at s3://%s/%s: %s", obj.uri(partner.bucket), lake.bucket, key, "; ".join(problems))
            outcome.quarantined.append(obj)
            continue
        raw_key = f"{files_prefix}{len(outcome.kept):05d}-{obj.digest}.json"  # raw_copy_key of its part
        lake.put_bytes(body, raw_key)  # unchanged: the bytes that were parsed
        outcome.kept.append((obj, parse_document(f, body)))

    schema_ = records_schema(f)
    parts = [
        _write_part(lake, f"{records_prefix}{n:05d}-{obj.digest}.parquet", records_table(f, doc, obj), workdir)
        for n, (obj, doc) in enumerate(outcome.kept)
    ]
    manifest_key = None
    if parts:
        inputs = [f"{obj.uri(partner.bucket)}#{obj.etag}" for obj, _ in outcome.kept]
        manifest_key = publish(lake, records_prefix, parts, schema_, table=f.name, run_id=run_id, mode="files", inputs=inputs)
        # copies an earlier attempt of this run kept of files it took then and not now
        copies = {raw_copy_key(f, p.key) for p in parts}
        lake.delete(k for k in lake.keys(files_prefix) if k not in copies)
    rows = sum(len(d.records) for _, d in outcome.kept)
    log.info(
        "%s: %d object(s) listed, %d new, %d kept (%d records), %d quarantined, %d changed while read, %d left for the next pick-up",
        f.name, len(seen), len(new), len(outcome.kept), rows, len(outcome.quarantined), outcome.changed, len(new) - len(todo),
    )  # fmt: skip
    return FeedPickUpResult(
        feed=f.name,
        listed=len(seen),
        new=len(new),
        kept=len(outcome.kept),
        quarantined=len(outcome.quarantined),
        rows=rows,
        manifest_key=manifest_key,
        bytes=sum(o.size for o, _ in outcome.kept),
    )


def raw_copy_key(f: FileFeed, part_key: str) -> str:
    """Where a kept file's bytes are, from its records' part: the same run prefix under
    ``<feed>_files/`` and the same name (counter and digest)."""
    if not part_key.startswith(f"{f.name}/") or not part_key.endswith(".parquet"):
        raise ValueError(f"{part_key!r} is not a part of feed {f.name}")
    return files_table(f) + part_key[len(f.name) : -len(".parquet")] + ".json"


def _write_part(lake: Lake, key: str, table: pa.Table, workdir: str) -> Part:
    """One file's records as one parquet object, written even when the document holds none:
    an empty document still replaces its scope's rows."""
    from include.lake import parquet_writer

    path = os.path.join(workdir, "records.parquet")
    writer = parquet_writer(path, table.schema)
    writer.write_table(table)
    writer.close()
    size = os.path.getsize(path)
    try:
        lake.put_file(path, key)
    finally:
        os.remove(path)
    return Part(key=key, rows=table.num_rows, bytes=size)


def _read_and_check(
    f: FileFeed, partner: Lake, wh: psycopg.Connection, schema: str, obj: SourceObject
) -> tuple[list[str], bytes | None, SourceObject]:
    """(problems, body, object with its VersionId): no problem means the file can be kept.
    A file over the limit is not read (body None)."""
    if obj.size > f.max_bytes:
        return [f"the file is {obj.size:,} bytes, over the feed's limit of {f.max_bytes:,}"], None, obj
    body, version = read_object(partner.client, partner.bucket, obj, f.max_bytes)
    obj = SourceObject(obj.key, obj.etag, obj.size, obj.last_modified, version)
    if len(body) > f.max_bytes:
        return [f"the file is over the feed's limit of {f.max_bytes:,} bytes"], None, obj
    try:
        doc = parse_document(f, body)
    except BadFile as bad:
        return bad.problems, body, obj
    except Exception as exc:  # a partner's file must never stop the feed: quarantined with what went wrong
        return [f"the file could not be read ({type(exc).__name__}: {_short(str(exc))})"], body, obj
    return unknown_references(wh, schema, f, doc.records), body, obj


def _copy(partner: Lake, lake: Lake, obj: SourceObject, key: str) -> None:
    """Server-side copy of the object at its listed ETag (no byte of it passes through the task)."""
    from botocore.exceptions import ClientError

    try:
        lake.client.copy_object(
            Bucket=lake.bucket, Key=key, CopySource={"Bucket": partner.bucket, "Key": obj.key}, CopySourceIfMatch=f'"{obj.etag}"'
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "NoSuchKey"):
            raise ObjectChanged(f"s3://{partner.bucket}/{obj.key} changed or went away since it was listed") from None
        raise


# ------------------------------------------------------------------------------------------
# Load: merge into the warehouse
# ------------------------------------------------------------------------------------------


def load_feed(
    f: FileFeed, conn: psycopg.Connection, lake: Lake, schema: str, picked: FeedPickUpResult, *, run_id: str, workdir: str
) -> FeedLoadResult:
    """Merge the files one pick-up kept into the feed's warehouse table, in one transaction
    (module docstring). Returns how many files loaded, were superseded or had been loaded already."""
    import pyarrow.parquet as pq

    manifest = lake.read_manifest(picked.manifest_key)
    files: list[tuple[pa.Table, str]] = []
    for part, path in zip(manifest.parts, lake.iter_parts(manifest, workdir), strict=True):
        files.append((pq.read_table(path), raw_copy_key(f, part.key)))
    # oldest first, so that the latest document of a scope is the one left standing
    files.sort(key=lambda p: _order(f, p[0]))
    ledger = bookkeeping.table(schema, bookkeeping.FILE_LEDGER)
    target = sql.Identifier(schema, f.table.name)
    loaded = superseded = again = written = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"totes_etl.load.{schema}.{f.table.name}",))
        bookkeeping.mark_pipeline_write(conn, run_id)
        for t, raw_key in files:
            first = _provenance(t)
            scope, published = first[f.scope.name], first[f.published.name]
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (feed, object_key, etag, version_id, size, last_modified, outcome, scope, published_at, lake_key, run_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, 'loaded', %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1"
                ).format(ledger),
                (f.name, first["source_key"], first["source_etag"], first["source_version"], first["source_size"], first["source_last_modified"],
                 scope.isoformat(), published, raw_key, run_id),
            )  # fmt: skip
            if cur.fetchone() is None:
                again += 1  # a rerun, or a second notification of a file already loaded
                continue
            cur.execute(
                sql.SQL(
                    "SELECT object_key, published_at, last_modified FROM {} WHERE feed = %s AND scope = %s AND outcome = 'loaded' "
                    "AND NOT (object_key = %s AND etag = %s) ORDER BY published_at DESC, last_modified DESC, object_key DESC LIMIT 1"
                ).format(ledger),
                (f.name, scope.isoformat(), first["source_key"], first["source_etag"]),
            )
            current = cur.fetchone()
            this = (published, first["source_last_modified"], first["source_key"])
            if current is not None and (current[1], current[2], current[0]) > this:
                cur.execute(
                    sql.SQL("UPDATE {} SET outcome = 'superseded', superseded_by = %s WHERE feed = %s AND object_key = %s AND etag = %s").format(ledger),
                    (current[0], f.name, first["source_key"], first["source_etag"]),
                )  # fmt: skip
                superseded += 1
                continue
            cur.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(target, sql.Identifier(f.scope_column)), (scope,))
            written += cur.rowcount
            written += _insert_records(cur, f, schema, t)
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET outcome = 'superseded', superseded_by = %s WHERE feed = %s AND scope = %s AND outcome = 'loaded' "
                    "AND NOT (object_key = %s AND etag = %s)"
                ).format(ledger),
                (first["source_key"], f.name, scope.isoformat(), first["source_key"], first["source_etag"]),
            )
            loaded += 1
        bookkeeping.log_load(
            conn, schema, f.table.name, run_id=run_id, manifest_key=picked.manifest_key, source_max=None,
            staged=sum(t.num_rows for t, _ in files), written=written,
        )  # fmt: skip
    log.info("%s: %d file(s) loaded, %d superseded by a later one, %d loaded before", f.table.name, loaded, superseded, again)
    return FeedLoadResult(feed=f.name, files=len(files), loaded=loaded, superseded=superseded, again=again, written=written)


FILE_METADATA = b"totes.file"  # a part's schema metadata: the file's header and source (an empty part has no rows to carry them)


def _provenance(t: pa.Table) -> dict[str, Any]:
    """The header and source of the file a part holds, from its schema metadata."""
    raw = json.loads((t.schema.metadata or {})[FILE_METADATA])
    return {k: _decode_meta(k, v) for k, v in raw.items()}


def _decode_meta(name: str, value: Any) -> Any:
    if value is None or name in ("source_key", "source_etag", "source_version", "source_size"):
        return value
    return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)


def _order(f: FileFeed, t: pa.Table) -> tuple:
    p = _provenance(t)
    return (p[f.published.name], p["source_last_modified"], p["source_key"])


def _insert_records(cur: psycopg.Cursor, f: FileFeed, schema: str, t: pa.Table) -> int:
    """Insert one file's records, lookups resolved to their tables' keys in SQL. A value that no
    longer names a row (deleted since the pick-up checked it) fails the load: nothing is half-done."""
    n = t.num_rows
    if n == 0:
        return 0
    lookups = {lk.field: lk for lk in f.lookups}
    params: dict[str, Any] = {}
    selects, joins = [], []
    for i, s in enumerate(f.fields):
        params[f"f{i}"] = t[s.name].to_pylist()
        if s.name in lookups:
            lk = lookups[s.name]
            alias = sql.Identifier(f"l{i}")
            joins.append(
                sql.SQL("JOIN {table} {alias} ON {alias}.{col} = r.{field}").format(
                    table=sql.Identifier(schema, lk.table),
                    alias=alias,
                    col=sql.Identifier(lk.column),
                    field=sql.Identifier(s.name),
                )
            )
            selects.append(sql.SQL("{}.{}").format(alias, sql.Identifier(lk.stored_as)))
        else:
            selects.append(sql.SQL("r.{}").format(sql.Identifier(s.name)))
    unnest = sql.SQL(", ").join(
        sql.SQL("%({p})s::{typ}[]").format(p=sql.SQL(f"f{i}"), typ=sql.SQL(s.type.ddl)) for i, s in enumerate(f.fields)
    )
    columns = [f.stored_name(s.name) for s in f.fields] + [
        f.scope_column,
        "published_at",
        "source_key",
        "source_etag",
        "source_version",
    ]
    p = _provenance(t)
    first = {c: p[c] for c in ("source_key", "source_etag", "source_version")}
    params |= {"scope": p[f.scope.name], "published": p[f.published.name], **first}
    cur.execute(
        sql.SQL(
            "INSERT INTO {target} ({cols}) SELECT {selects}, %(scope)s, %(published)s, %(source_key)s, %(source_etag)s, %(source_version)s "
            "FROM unnest({unnest}) AS r({fields}) {joins}"
        ).format(
            target=sql.Identifier(schema, f.table.name),
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            selects=sql.SQL(", ").join(selects),
            unnest=unnest,
            fields=sql.SQL(", ").join(sql.Identifier(s.name) for s in f.fields),
            joins=sql.SQL(" ").join(joins),
        ),
        params,
    )
    if cur.rowcount != n:
        raise RuntimeError(
            f"{f.table.name}: {n - cur.rowcount} record(s) of s3 object {first['source_key']!r} no longer name a row of "
            f"{', '.join(lk.table for lk in f.lookups)}; nothing of this load is kept"
        )
    return n
