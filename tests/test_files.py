"""File feeds: the sales targets, JSON files in a partner's bucket -> the lake -> sales_target.

Real services only: moto's S3 and SQS over HTTP on loopback (the partner's bucket is a bucket
there, its notifications go to a moto queue), PostgreSQL and the SMTP server of the harness
(tests/conftest.py). The feed's DAG runs in-process with dag.test(); a run is what a sweep, or a
notification, starts: a duplicate notification is one more run, a lost one is a run that only
the sweep's clock started. The documents come from devtools.totesys.targets.
"""

from __future__ import annotations

import asyncio
import html
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote_plus

import psycopg
import pyarrow.parquet as pq
import pytest

from devtools.s3 import client as s3_client
from devtools.s3 import notify_queue
from devtools.smtp import body_text
from devtools.totesys.targets import drop, encode, target_key, targets_document
from include.ddl import ensure_warehouse_schema
from include.files import BadFile, parse_document, raw_copy_key
from include.lake import run_key
from include.registry import FILE_PROVENANCE, SALES_TARGET, SALES_TARGETS, FileFeed, JsonField, check_feeds
from tests.conftest import forget_dag_runs, parse_dag
from tests.harness import task_states

PREFIX = "sales-targets/"
NOV, DEC = date(2024, 11, 1), date(2024, 12, 1)
STAFF = {1: "Ann", 2: "Ben", 3: "Cat"}
CURRENCIES = {1: "GBP", 2: "USD", 3: "EUR"}
CURRENCY_ID = {code: i for i, code in CURRENCIES.items()}


def published(day: int, hour: int = 9) -> datetime:
    return datetime(2024, 10, day, hour, tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# The feed's DAG wired to a fresh warehouse, buckets and mail recipient
# ------------------------------------------------------------------------------------------


@dataclass
class FeedRig:
    dag: object
    warehouse_url: str
    partner: str
    ingestion: str
    s3_endpoint: str
    alerts: str
    schema: str = "public"
    runs: int = 0

    @property
    def s3(self):
        return s3_client(self.s3_endpoint)

    def drop(self, document: dict, key: str | None = None, body: bytes | None = None) -> str:
        if body is not None:
            self.s3.put_object(Bucket=self.partner, Key=key, Body=body)
            return key
        return drop(self.s3, self.partner, PREFIX, document, key)

    def run(self, *, expect: str = "success"):
        """The next sweep: a run 15 minutes after the last one."""
        self.runs += 1
        dr = self.dag.test(logical_date=datetime(2024, 11, 15, 12, tzinfo=UTC) + self.runs * timedelta(minutes=15))
        assert dr.state == expect, f"run {dr.run_id} ended {dr.state}, expected {expect}: {task_states(dr)}"
        return dr

    def sql(self, query: str, params=None) -> list[tuple]:
        with psycopg.connect(self.warehouse_url, options=f"-c search_path={self.schema}") as wh:
            return wh.execute(query, params).fetchall()

    def targets(self) -> dict[tuple[int, date, int], tuple[int, Decimal, str]]:
        rows = self.sql("SELECT staff_id, target_month, currency_id, target_units, target_value, source_key FROM sales_target")
        return {(s, m, c): (u, v, k) for s, m, c, u, v, k in rows}

    def ledger(self) -> dict[tuple[str, str], tuple[str, str | None]]:
        """(key, etag) -> (outcome, superseded_by)."""
        rows = self.sql("SELECT object_key, etag, outcome, superseded_by FROM etl_file WHERE feed = 'sales_targets'")
        return {(k, e): (o, s) for k, e, o, s in rows}

    def objects(self, bucket: str | None = None) -> dict[str, str]:
        found = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.ingestion):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj["ETag"].strip('"')
        return found

    def read(self, key: str, bucket: str | None = None) -> bytes:
        return self.s3.get_object(Bucket=bucket or self.ingestion, Key=key)["Body"].read()

    def etag(self, key: str) -> str:
        return self.s3.head_object(Bucket=self.partner, Key=key)["ETag"].strip('"')

    def mails(self, smtp_server, dr) -> list:
        return smtp_server.sink.wait_for(lambda m: self.alerts in str(m["To"]) and dr.run_id in m["Subject"])

    def no_mail(self, smtp_server, dr) -> bool:
        return not [m for m in smtp_server.sink.messages if self.alerts in str(m["To"]) and dr.run_id in m["Subject"]]


def expected_rows(document: dict, key: str) -> dict[tuple[int, date, int], tuple[int, Decimal, str]]:
    month = date.fromisoformat(document["month"] + "-01")
    return {
        (t["staff_id"], month, CURRENCY_ID[t["currency_code"]]): (
            t["target_units"],
            Decimal(str(t["target_value"])).quantize(Decimal("0.01")),
            key,
        )
        for t in document["targets"]
    }


@pytest.fixture(scope="module")
def feed_dag(airflow_db):
    return parse_dag("totes_files.py", SALES_TARGETS.dag_id)


@pytest.fixture
def feed(feed_dag, new_database, new_buckets, airflow_connections, s3_endpoint, monkeypatch):
    """Factory: the sales targets feed against a fresh warehouse (three salespeople, the three
    currencies), a fresh partner bucket and ingestion bucket, with no earlier runs in Airflow."""
    from tests.harness import fast_retries

    def make() -> FeedRig:
        forget_dag_runs(feed_dag.dag_id)
        warehouse_url = new_database("warehouse")
        partner, ingestion = new_buckets("partner", "ingestion")
        alerts = f"feed-{uuid.uuid4().hex[:8]}@example.com"
        airflow_connections(
            totesys_url=warehouse_url, warehouse_url=warehouse_url, ingestion=ingestion, processed=ingestion, alerts=alerts
        )
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_TARGETS_BUCKET", partner)
        monkeypatch.setenv("AIRFLOW_VAR_TOTES_TARGETS_PREFIX", PREFIX)
        with psycopg.connect(warehouse_url, autocommit=True) as wh:
            ensure_warehouse_schema(wh, "public")
            for staff_id, name in STAFF.items():
                wh.execute(
                    "INSERT INTO dim_staff VALUES (%s, %s, 'Lee', 'Sales', 'Leeds', 'x@terrifictotes.com')", (staff_id, name)
                )
            for currency_id, code in CURRENCIES.items():
                wh.execute("INSERT INTO dim_currency VALUES (%s, %s, %s)", (currency_id, code, code))
        return FeedRig(feed_dag, warehouse_url, partner, ingestion, s3_endpoint, alerts)

    with fast_retries(feed_dag):
        yield make


def november(**kw) -> dict:
    return targets_document(STAFF, CURRENCIES.values(), NOV, published_at=kw.pop("published_at", published(28)), **kw)


# ------------------------------------------------------------------------------------------
# A file lands, once
# ------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_file_dropped_is_in_the_warehouse_after_one_pick_up_and_kept_as_it_came(feed, tmp_path):
    rig = feed()
    doc = november()
    key = rig.drop(doc)
    assert key == "sales-targets/2024/11/targets-2024-11.json"
    dr = rig.run()
    assert task_states(dr) == {"ensure_warehouse_schema": "success", "ingest": "success", "load": "success"}
    assert rig.targets() == expected_rows(doc, key)
    assert len(rig.targets()) == 9  # three salespeople in three currencies
    assert rig.ledger() == {(key, rig.etag(key)): ("loaded", None)}

    # in the lake: the file byte for byte, its records as parquet, the manifest listing them
    prefix = f"sales_targets/date=2024-11-15/run={run_key(dr.run_id)}/"
    objects = rig.objects()
    manifest = json.loads(rig.read(f"{prefix}manifest.json"))
    (part,) = manifest["parts"]
    assert manifest["rows"] == 9
    assert manifest["inputs"] == [f"s3://{rig.partner}/{key}#{rig.etag(key)}"]
    assert rig.read(raw_copy_key(SALES_TARGETS, part["key"])) == rig.read(key, rig.partner)
    assert set(objects) == {f"{prefix}manifest.json", part["key"], raw_copy_key(SALES_TARGETS, part["key"])}
    local = tmp_path / "part.parquet"
    local.write_bytes(rig.read(part["key"]))
    table = pq.read_table(local)
    assert table.num_rows == 9
    assert set(table["source_key"].to_pylist()) == {key}
    # the warehouse row says which object it came from, at which version
    assert rig.sql("SELECT DISTINCT source_etag, published_at FROM sales_target") == [(rig.etag(key), datetime(2024, 10, 28, 9))]


@pytest.mark.e2e
def test_the_same_file_again_a_second_notification_and_a_rerun_leave_the_same_warehouse(feed, tmp_path):
    from include.files import pick_up
    from include.lake import Lake
    from include.operators._common import psycopg_connection, s3_hook

    rig = feed()
    key = rig.drop(november())
    first = rig.run()
    before, ledger = rig.targets(), rig.ledger()
    lake_before = rig.objects()

    # a second notification, or the next sweep: a run that finds nothing new
    again = rig.run()
    assert task_states(again) == {"ensure_warehouse_schema": "success", "ingest": "success", "load": "skipped"}
    assert rig.targets() == before
    assert rig.ledger() == ledger
    assert rig.objects() == lake_before  # nothing written, nothing removed

    # the same bytes uploaded again: S3 gives the same ETag, so the object is not taken again
    rig.drop(november(), key)
    rig.run()
    assert rig.targets() == before
    assert rig.ledger() == ledger

    # a rerun of the first run's pick-up (its task cleared): nothing new, its commit stays as it was
    hook = s3_hook("aws_default")
    with psycopg_connection("warehouse_db") as wh:
        result = pick_up(
            SALES_TARGETS, Lake(hook, rig.partner), Lake(hook, rig.ingestion), wh, "public", prefix=PREFIX,
            run_id=first.run_id, interval_end=datetime(2024, 11, 15, 12, 15, tzinfo=UTC), workdir=str(tmp_path),
        )  # fmt: skip
    assert (result.listed, result.new, result.kept, result.manifest_key) == (1, 0, 0, None)
    assert rig.objects() == lake_before
    assert rig.sql("SELECT count(*) FROM etl_load_log WHERE table_name = 'sales_target'") == [(1,)]


@pytest.mark.e2e
def test_a_correction_supersedes_and_an_older_file_arriving_later_changes_nothing(feed):
    rig = feed()
    first = november()
    key = rig.drop(first)
    rig.run()

    # the correction: a new key for November, published later; Cat left, Ann's GBP target went up
    correction = november(published_at=published(30))
    correction["targets"] = [t for t in correction["targets"] if t["staff_id"] != 3]
    correction["targets"][0]["target_units"] += 100
    fixed_key = rig.drop(correction, "sales-targets/2024/11/targets-2024-11-corrected.json")
    december = targets_document(STAFF, ["GBP"], DEC, published_at=published(31))
    dec_key = rig.drop(december)
    rig.run()
    assert rig.targets() == expected_rows(correction, fixed_key) | expected_rows(december, dec_key)
    ledger = rig.ledger()
    assert ledger[(key, rig.etag(key))] == ("superseded", fixed_key)
    assert ledger[(fixed_key, rig.etag(fixed_key))] == ("loaded", None)

    # an older document of November dropped now (a resend of a draft): recorded, changes nothing
    draft = november(published_at=published(20))
    draft_key = rig.drop(draft, "sales-targets/2024/11/targets-2024-11-draft.json")
    rig.run()
    assert rig.targets() == expected_rows(correction, fixed_key) | expected_rows(december, dec_key)
    assert rig.ledger()[(draft_key, rig.etag(draft_key))] == ("superseded", fixed_key)

    # the same key overwritten with a later correction: a new ETag, taken, and it wins
    last = november(published_at=published(31, 12))
    last["targets"] = last["targets"][:2]
    rig.drop(last, fixed_key)
    rig.run()
    assert rig.targets() == expected_rows(last, fixed_key) | expected_rows(december, dec_key)
    outcomes = sorted(o for o, _ in rig.ledger().values())
    assert outcomes == ["loaded", "loaded", "superseded", "superseded", "superseded"]

    # a month published with no targets at all empties that month
    empty = targets_document([], [], DEC, published_at=published(31, 13))
    rig.drop(empty, "sales-targets/2024/12/targets-2024-12-none.json")
    rig.run()
    assert rig.targets() == expected_rows(last, fixed_key)


# ------------------------------------------------------------------------------------------
# Bad files
# ------------------------------------------------------------------------------------------

# key -> (body, what the reason says)
BAD_FILES = {
    "not_json": (b"month,staff_id\n2024-11,1\n", "not JSON"),
    "schema": (
        b'{"month": "2024-11", "published_at": "2024-10-28T09:00:00Z", "targets": [{"staff_id": "one"}]}',
        "is not an integer",
    ),
    "unknown_staff": (None, "staff_id not in dim_staff: 99"),
    "unknown_currency": (None, "currency_code not in dim_currency: JPY"),
    "too_large": (b'{"month": "2024-11", ' + b" " * (SALES_TARGETS.max_bytes + 1) + b"}", "over the feed's limit"),
    "empty": (b"", "the file is empty"),
    "ends_in_slash": (b"not json", "not JSON"),  # a key like a folder's, with content: taken like any other
}


def bad_key(kind: str) -> str:
    return f"sales-targets/bad/{kind}/" if kind == "ends_in_slash" else f"sales-targets/bad/{kind}/../{kind}.json"


def bad_body(kind: str) -> bytes:
    body, _ = BAD_FILES[kind]
    if body is not None:
        return body
    doc = targets_document([1], ["GBP"], DEC, published_at=published(25))
    if kind == "unknown_staff":
        doc["targets"][0]["staff_id"] = 99
    else:
        doc["targets"][0]["currency_code"] = "JPY"
    return encode(doc)


@pytest.mark.e2e
@pytest.mark.slow
def test_each_kind_of_bad_file_is_quarantined_with_its_reason_and_mailed_while_good_files_load(feed, smtp_server):
    rig = feed()
    good = november()
    # hostile keys: path tricks and odd characters are only data
    good_key = rig.drop(good, "sales-targets/../../etc/targets <2024-11> ünïcode & 'quotes'.json")
    bad_keys = {kind: rig.drop({}, bad_key(kind), bad_body(kind)) for kind in BAD_FILES}
    dr = rig.run()
    assert task_states(dr) == {"ensure_warehouse_schema": "success", "ingest": "success", "load": "success"}
    assert rig.targets() == expected_rows(good, good_key)

    ledger = rig.ledger()
    assert ledger[(good_key, rig.etag(good_key))] == ("loaded", None)
    reasons = dict(rig.sql("SELECT object_key, reason FROM etl_file WHERE outcome = 'quarantined'"))
    assert set(reasons) == set(bad_keys.values())
    quarantine = f"quarantine/sales_targets/date=2024-11-15/run={run_key(dr.run_id)}/"
    for kind, key in bad_keys.items():
        assert BAD_FILES[kind][1] in reasons[key], (kind, reasons[key])
        (where,) = rig.sql("SELECT lake_key FROM etl_file WHERE object_key = %s", (key,))[0]
        assert where.startswith(quarantine)
        assert ".." not in where
        assert " " not in where
        assert rig.read(where) == bad_body(kind)  # kept whole, as it was
        reason = json.loads(rig.read(where.rsplit("/", 1)[0] + "/reason.json"))
        assert reason["key"] == key
        assert reason["bucket"] == rig.partner
        assert reason["etag"] == rig.etag(key)
    # every key written is made of safe characters, whatever the partner's keys hold
    assert all(k.isascii() and " " not in k and ".." not in k for k in rig.objects())

    (mail,) = rig.mails(smtp_server, dr)
    assert f"{len(BAD_FILES)} file(s) of sales_targets quarantined" in mail["Subject"]
    text = html.unescape(body_text(mail))
    for kind, key in bad_keys.items():
        assert f"s3://{rig.partner}/{key}" in text
        assert BAD_FILES[kind][1] in text

    # the next sweep takes none of them again, and mails nothing
    later = rig.run()
    assert rig.ledger() == ledger
    assert rig.no_mail(smtp_server, later)

    # a corrected file under the same key: a new ETag, taken and loaded
    fixed = targets_document([1], ["GBP"], DEC, published_at=published(26))
    rig.drop(fixed, bad_keys["unknown_staff"])
    rig.run()
    assert rig.targets() == expected_rows(good, good_key) | expected_rows(fixed, bad_keys["unknown_staff"])


def test_the_sweep_lists_every_page_of_the_prefix_and_nothing_outside_it(s3_endpoint, new_buckets):
    from include.files import list_objects

    (bucket,) = new_buckets("partner")
    s3 = s3_client(s3_endpoint)
    keys = [f"{PREFIX}2024/{m:02d}/targets-2024-{m:02d}.json" for m in range(1, 8)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}2024/", Body=b"")  # a console's "folder"
    s3.put_object(Bucket=bucket, Key="sales-targets-old/x.json", Body=b"{}")  # shares the prefix's letters, not its slash
    found = list_objects(s3, bucket, PREFIX, page_size=2)
    # one page holds two keys: finding all seven took four pages
    assert s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX, MaxKeys=2)["IsTruncated"] is True
    assert sorted(o.key for o in found) == keys
    assert {o.size for o in found} == {2}
    assert all(o.etag and '"' not in o.etag for o in found)


def test_what_the_registry_refuses_in_a_feed():
    import dataclasses

    check_feeds()
    without_provenance = dataclasses.replace(
        SALES_TARGET, columns=tuple(c for c in SALES_TARGET.columns if c not in FILE_PROVENANCE)
    )
    with pytest.raises(ValueError, match="must hold exactly"):
        check_feeds((dataclasses.replace(SALES_TARGETS, table=without_provenance),))
    with pytest.raises(ValueError, match="record key"):
        check_feeds((dataclasses.replace(SALES_TARGETS, record_key=("units",)),))
    with pytest.raises(ValueError, match="key must be"):
        check_feeds((dataclasses.replace(SALES_TARGETS, record_key=("staff_id",)),))
    bad = (dataclasses.replace(SALES_TARGETS.lookups[0], stored_as="first_name"),)
    with pytest.raises(ValueError, match="lookup"):
        check_feeds((dataclasses.replace(SALES_TARGETS, lookups=bad),))
    assert isinstance(SALES_TARGETS, FileFeed)
    assert isinstance(SALES_TARGETS.scope, JsonField)


def _doc(**changes) -> bytes:
    doc = {"month": "2024-11", "published_at": "2024-10-28T09:00:00+00:00",
           "targets": [{"staff_id": 1, "currency_code": "GBP", "target_units": 10, "target_value": 12.5}]}  # fmt: skip
    for path, value in changes.items():
        where, _, name = path.rpartition("__")
        target = doc["targets"][0] if where == "record" else doc
        if value is ...:
            target.pop(name)
        else:
            target[name] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"month": "2024-11", "published_at": "2024-10-28T09:00:00Z", "targets": [], "month": NaN}', "not JSON"),
        (_doc(month=...), "field 'month' is missing"),
        (_doc(extra=1), "unexpected field 'extra'"),
        (_doc(month="2024-13"), "month is not a YYYY-MM month"),
        (_doc(month="Nov 2024"), "month is not a YYYY-MM month"),
        (_doc(published_at="2024-10-28T09:00:00"), "published_at has no time zone"),
        (_doc(published_at="yesterday"), "published_at is not an ISO 8601 timestamp"),
        (_doc(targets={"staff_id": 1}), "targets is not a list"),
        (_doc(record__staff_id=...), "targets[0]: field 'staff_id' is missing"),
        (_doc(record__bonus=5), "targets[0]: unexpected field 'bonus'"),
        (_doc(record__staff_id=True), "targets[0].staff_id is not an integer"),
        (_doc(record__staff_id=1.0), "targets[0].staff_id is not an integer"),
        (_doc(record__target_units=-1), "targets[0].target_units is out of range"),
        (_doc(record__target_value=1.005), "targets[0].target_value has more than 2 decimals"),
        (_doc(record__target_value=-3), "targets[0].target_value is negative"),
        (_doc(record__target_value=1e10), "targets[0].target_value is too large"),
        (_doc(record__target_value="12.50"), "targets[0].target_value is not a number"),
        (_doc(record__currency_code="gbp"), "targets[0].currency_code is not 3 capital letters"),
        (_doc(record__currency_code="GBPX"), "targets[0].currency_code is not 3 capital letters"),
        (_doc(record__currency_code="GB\n"), "targets[0].currency_code is not 3 capital letters"),
        (_doc(month="2024-11\n"), "month is not a YYYY-MM month"),
        (_doc(month="\uff12\uff10\uff12\uff14-11"), "month is not a YYYY-MM month"),  # full-width digits
        (_doc(published_at="0001-01-01T00:00:00+01:00"), "published_at is out of range in UTC"),
        (_doc(record__target_value=1.5).replace(b"1.5", b"12345678901234567890123456789.001"), "is too large"),
        (_doc(record__target_value=1.5).replace(b"1.5", b"1.0000000000000000000000000000000001"), "more than 2 decimals"),
        (b"", "the file is empty"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"month": "2024-11", "month": "2024-12", "published_at": "2024-10-28T09:00:00Z", "targets": []}', "appears twice"),
        (
            b'{"month": "2024-11", "published_at": "2024-10-28T09:00:00Z", '
            b'"targets": [{"staff_id": 1, "staff_id": 2, "currency_code": "GBP", "target_units": 1, "target_value": 1}]}',
            "appears twice",
        ),
    ],
)
def test_each_kind_of_bad_document_is_refused_with_its_reason(body, says):
    with pytest.raises(BadFile) as refused:
        parse_document(SALES_TARGETS, body)
    assert any(says in p for p in refused.value.problems), refused.value.problems


def test_a_document_is_read_exactly_and_every_problem_is_reported_at_once():
    doc = parse_document(SALES_TARGETS, _doc(published_at="2024-10-28T10:00:00.123456+01:00", record__target_value=12.5))
    assert doc.scope == NOV
    assert doc.published == datetime(2024, 10, 28, 9, 0, 0, 123000)
    assert doc.records == [{"staff_id": 1, "currency_code": "GBP", "target_units": 10, "target_value": Decimal("12.50")}]
    twice = json.loads(_doc())
    twice["targets"] *= 2
    twice["targets"].append({"staff_id": "x"})
    with pytest.raises(BadFile) as refused:
        parse_document(SALES_TARGETS, json.dumps(twice).encode())
    problems = refused.value.problems
    assert any("targets[1] repeats {'staff_id': 1, 'currency_code': 'GBP'}" in p for p in problems)
    assert any("targets[2].staff_id is not an integer" in p for p in problems)
    assert any("targets[2]: field 'target_units' is missing" in p for p in problems)
    many = {"month": "2024-11", "published_at": "2024-10-28T09:00:00Z", "targets": [{"staff_id": -i} for i in range(1, 40)]}
    with pytest.raises(BadFile) as refused:
        parse_document(SALES_TARGETS, json.dumps(many).encode())
    assert len(refused.value.problems) == 21
    assert refused.value.problems[-1].endswith("more")


def test_the_generator_writes_what_the_feed_reads():
    doc = targets_document(STAFF, CURRENCIES.values(), NOV, seed=7)
    assert doc == targets_document(STAFF, CURRENCIES.values(), NOV, seed=7)  # deterministic
    parsed = parse_document(SALES_TARGETS, encode(doc))
    assert parsed.scope == NOV
    assert parsed.published == datetime(2024, 10, 28, 9)
    assert [(r["staff_id"], r["currency_code"]) for r in parsed.records] == [
        (s, c) for s in sorted(STAFF) for c in sorted(CURRENCIES.values())
    ]
    assert all(r["target_value"] == Decimal(str(t["target_value"])) for r, t in zip(parsed.records, doc["targets"], strict=True))
    assert target_key(PREFIX, NOV) == "sales-targets/2024/11/targets-2024-11.json"


# ------------------------------------------------------------------------------------------
# Picked up as files land: S3 notifications -> SQS -> the AssetWatcher's trigger
# ------------------------------------------------------------------------------------------


def test_a_landed_file_wakes_the_feed_through_its_queue_and_the_dag_schedules_on_it(
    airflow_db, s3_endpoint, new_buckets, monkeypatch
):
    from devtools.s3 import airflow_connection
    from include.feeds import feed_schedule, queue_url

    (partner,) = new_buckets("partner")
    url = notify_queue(s3_endpoint, partner, PREFIX, f"targets-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", airflow_connection(s3_endpoint))
    monkeypatch.setenv("AIRFLOW__TOTES__SALES_TARGETS_QUEUE_URL", url)
    assert queue_url(SALES_TARGETS) == url
    dag = parse_dag("totes_files.py", SALES_TARGETS.dag_id)
    schedule = dag.timetable
    (watcher,) = schedule.asset_condition.watchers
    assert type(watcher.trigger).__name__ == "SqsSensorTrigger"
    assert watcher.trigger.sqs_queue == url
    assert schedule.timetable.expression == SALES_TARGETS.sweep_cron  # and the sweep still runs

    # moto's S3 sends S3's own test event when the notification is set: drain it first
    asyncio.run(_first_event(watcher.trigger))
    key = drop(s3_client(s3_endpoint), partner, PREFIX, november())
    s3_client(s3_endpoint).put_object(Bucket=partner, Key="elsewhere/x.json", Body=b"{}")  # outside the prefix: no notification
    event = asyncio.run(_first_event(watcher.trigger))
    bodies = [json.loads(m["Body"]) for m in event.payload["message_batch"]]
    # S3 URL-encodes the key in a notification (as AWS does): one more reason the run lists the prefix
    assert [unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b["Records"]] == [key]
    assert [r["eventName"] for b in bodies for r in b["Records"]] == ["ObjectCreated:Put"]

    # without a queue the feed is swept only
    monkeypatch.delenv("AIRFLOW__TOTES__SALES_TARGETS_QUEUE_URL")
    assert type(feed_schedule(SALES_TARGETS)).__name__ == "CronTriggerTimetable"


async def _first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event

    return await asyncio.wait_for(first(), timeout=60)


@pytest.mark.e2e
def test_sales_vs_target_sets_each_salespersons_month_beside_its_target(feed):
    from tests.warehouse_rows import add_sales_dimensions

    rig = feed()
    doc = targets_document([1, 2], ["GBP"], NOV, published_at=published(28))
    doc["targets"] = [
        {"staff_id": 1, "currency_code": "GBP", "target_units": 100, "target_value": 400.0},
        {"staff_id": 2, "currency_code": "GBP", "target_units": 10, "target_value": 50.0},
    ]
    rig.drop(doc)
    rig.run()
    with psycopg.connect(rig.warehouse_url, autocommit=True) as wh:
        add_sales_dimensions(wh, [date(2024, 10, 31), date(2024, 11, 2), date(2024, 11, 3), date(2024, 11, 20)])
        orders = [  # sales_order_id, created, last updated, time, staff, units, price, currency
            (1, "2024-11-02", "2024-11-02", "10:00", 1, 20, "5.00", 1),
            (1, "2024-11-02", "2024-11-03", "10:00", 1, 30, "5.00", 1),  # a later version of order 1: it counts
            (2, "2024-11-03", "2024-11-03", "11:00", 1, 10, "2.50", 1),
            (3, "2024-11-20", "2024-11-20", "12:00", 3, 4, "10.00", 1),  # Cat had no target
            (4, "2024-11-20", "2024-11-20", "12:00", 1, 7, "1.00", 2),  # in USD: no USD target
            (5, "2024-10-31", "2024-10-31", "12:00", 1, 99, "1.00", 1),  # October
        ]
        for order, created, lu_date, lu_time, staff, units, price, currency in orders:
            wh.execute(
                "INSERT INTO fact_sales_order (sales_order_id, created_date, created_time, last_updated_date, "
                "last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, design_id, "
                "agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id) "
                "VALUES (%s, %s, '08:00', %s, %s, %s, 1, %s, %s, %s, 1, '2024-11-20', '2024-11-20', 1)",
                (order, created, lu_date, lu_time, staff, units, Decimal(price), currency),
            )
    rows = rig.sql(
        "SELECT staff_id, target_month, currency_id, units_sold, value_sold, target_units, target_value, value_pct_of_target "
        "FROM sales_vs_target ORDER BY 2, 1, 3"
    )
    oct_ = date(2024, 10, 1)
    # worked by hand: Ann in November, GBP: 30 x 5.00 + 10 x 2.50 = 175.00 of 400.00 -> 43.8 %
    assert rows == [
        (1, oct_, 1, 99, Decimal("99.00"), None, None, None),
        (1, NOV, 1, 40, Decimal("175.00"), 100, Decimal("400.00"), Decimal("43.8")),
        (1, NOV, 2, 7, Decimal("7.00"), None, None, None),
        (2, NOV, 1, 0, Decimal("0"), 10, Decimal("50.00"), Decimal("0.0")),
        (3, NOV, 1, 4, Decimal("40.00"), None, None, None),
    ]


@pytest.mark.e2e
def test_a_feed_run_leaves_totes_etls_run_figures_alone_even_under_the_same_run_id(feed):
    """Run ids are per DAG (scheduled__<logical date>): the feed's and totes_fx's schema task
    must not forget totes_etl's figures of a run that happens to have the same id."""
    rig = feed()
    rig.drop(november())
    dr = rig.run()
    with psycopg.connect(rig.warehouse_url, autocommit=True) as wh:
        wh.execute(
            "INSERT INTO etl_stage_figures (run_id, stage, table_name, interval_start, interval_end, rows_written, seconds) "
            "VALUES (%s, 'load', 'fact_sales_order', now(), now(), 7, 1)",
            (dr.run_id,),
        )
    # the schema task of another DAG's run with that same id (its context as Airflow gives it)
    from types import SimpleNamespace

    from include.operators import WarehouseSchemaOperator

    run = SimpleNamespace(run_id=dr.run_id, run_type="scheduled", logical_date=dr.logical_date, run_after=dr.run_after)
    context = {"dag_run": run, "data_interval_start": dr.data_interval_start, "data_interval_end": dr.data_interval_end}
    for keep, left in ((False, [(7,)]), (True, [])):  # totes_etl's own schema task does forget its earlier tries
        WarehouseSchemaOperator(task_id=f"schema_{keep}", schema="public", keep_figures=keep).execute(context)
        assert rig.sql("SELECT rows_written FROM etl_stage_figures WHERE run_id = %s", (dr.run_id,)) == left
    for dag_file, dag_id in (("totes_files.py", SALES_TARGETS.dag_id), ("totes_fx.py", "totes_fx")):
        assert parse_dag(dag_file, dag_id).get_task("ensure_warehouse_schema").keep_figures is False
    assert parse_dag("totes_etl.py", "totes_etl").get_task("ensure_warehouse_schema").keep_figures is True
