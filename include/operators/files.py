"""File feeds: a partner's bucket -> the ingestion bucket -> the feed's warehouse table (include.files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include import assets
from include.operators._common import TotesOperator, run_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.registry import FileFeed


def _feed(name: str) -> FileFeed:
    from include.files import feed

    return feed(name)


class FileFeedToIngestionOperator(TotesOperator):
    """Pick up what landed in a file feed's prefix (include.files.pick_up): every object the
    ledger has not seen at its ETag is kept (its bytes and its records as parquet, one manifest)
    or quarantined whole with its reason. Files quarantined by this run are mailed to
    ``totes_alert_emails``; the task still succeeds, so the good files load. Pushes the
    manifest key and the counts.

    :param feed: the feed's name in include.registry.FILE_FEEDS
    :param source_bucket: the partner's bucket (templated)
    :param source_prefix: the feed's key prefix in it (templated)
    :param bucket: the ingestion bucket (templated)
    :param schema: the warehouse schema holding the ledger and the lookups' tables (templated)
    """

    template_fields: Sequence[str] = ("source_bucket", "source_prefix", "bucket", "schema")
    ui_color = "#d9ead3"

    def __init__(self, *, feed: str, source_bucket: str, source_prefix: str, bucket: str, schema: str, **kwargs: Any) -> None:
        super().__init__(outlets=[assets.declared(assets.INGESTION, feed)], **kwargs)
        self.feed, self.source_bucket, self.source_prefix, self.bucket, self.schema = (
            feed, source_bucket, source_prefix, bucket, schema,
        )  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile

        from include.files import pick_up, quarantined_by_run

        f = _feed(self.feed)
        run = run_of(context, period=None)
        partner, lake = self.lakes(self.source_bucket, self.bucket)
        with self.warehouse() as wh, tempfile.TemporaryDirectory(prefix=f"totes-{f.name}-") as workdir:
            result = pick_up(
                f, partner, lake, wh, self.schema, prefix=self.source_prefix, run_id=run.run_id,
                interval_end=run.interval_end, workdir=workdir,
            )  # fmt: skip
            refused = quarantined_by_run(wh, self.schema, f, run.run_id)
        if refused:
            from include.alerts import file_quarantine_notifier

            file_quarantine_notifier(f.name, self.source_bucket, refused, lake.bucket)(context)
        wrote = assets.lake_asset(self.bucket, f.name) if result.manifest_key else None
        self.announce(context, wrote, files=result.kept, rows=result.rows, manifest=result.manifest_key)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import s3_dataset

        return [s3_dataset(self.source_bucket, self.source_prefix.rstrip("/"))], [s3_dataset(self.bucket, self.feed)]


class FileFeedToWarehouseOperator(TotesOperator):
    """Merge the files a pick-up kept into the feed's warehouse table, in one transaction
    (include.files.load_feed): a file loads once; the latest document of a scope replaces its
    rows; an older one is recorded as superseded. Skips when the pick-up kept nothing.

    :param feed: the feed's name in include.registry.FILE_FEEDS
    :param picked: the pick-up task's XCom result (templated)
    :param bucket: the ingestion bucket (templated)
    :param schema: the warehouse schema (templated)
    """

    template_fields: Sequence[str] = ("picked", "bucket", "schema")
    ui_color = "#fce5cd"

    def __init__(self, *, feed: str, picked: Mapping[str, Any] | str | None, bucket: str, schema: str, **kwargs: Any) -> None:
        super().__init__(outlets=[assets.declared(assets.WAREHOUSE, _feed(feed).table.name)], **kwargs)
        self.feed, self.picked, self.bucket, self.schema = feed, picked, bucket, schema

    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile

        from airflow.sdk.exceptions import AirflowSkipException

        from include.files import load_feed
        from include.results import FeedPickUpResult

        f = _feed(self.feed)
        picked = FeedPickUpResult.from_xcom(self.picked)
        if picked is None or not picked.manifest_key:
            raise AirflowSkipException("the pick-up kept no new file: nothing to load")
        with self.warehouse() as conn, tempfile.TemporaryDirectory(prefix=f"totes-{f.name}-") as workdir:
            result = load_feed(
                f, conn, self.lake(self.bucket), self.schema, picked, run_id=context["dag_run"].run_id, workdir=workdir
            )
            wrote = self.warehouse_asset(conn, self.schema, f.table.name) if result.written else None
        self.announce(context, wrote, loaded=result.loaded, superseded=result.superseded, written=result.written)
        return result.to_xcom()

    def lineage(self) -> tuple[list[Any], list[Any]]:
        from include.operators._lineage import postgres_dataset, s3_dataset

        table = _feed(self.feed).table.name
        return [s3_dataset(self.bucket, self.feed)], [postgres_dataset(self.warehouse_conn_id, self.schema, table)]
