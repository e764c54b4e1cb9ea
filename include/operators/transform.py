"""Transform what one run ingested into one warehouse table, in the processed bucket."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include.config import AWS_CONN_ID
from include.operators._common import run_interval, s3_hook

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from include.lake import Lake, Manifest


class LakeTransformOperator(BaseOperator):
    """Build one warehouse table (a dimension or a fact) from the ingested rows of its sources.

    Reads only the manifests its upstream ingest tasks pushed (``ingested``: source table ->
    that task's XCom result) and writes parquet parts plus a manifest to the processed bucket.
    Row-wise tables stream batch by batch; dim_counterparty and dim_staff rebuild every row a
    change reaches, through the join state (include.state); dim_date covers every date the
    facts of this run refer to. Writes nothing when its inputs are empty.

    :param table: a warehouse table declared in include.registry
    :param ingested: source table -> ingest result (an XComArg; templated)
    """

    template_fields: Sequence[str] = ("ingested", "ingestion_bucket", "processed_bucket")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        table: str,
        ingested: Mapping[str, Any],
        ingestion_bucket: str,
        processed_bucket: str,
        aws_conn_id: str = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.ingested = ingested
        self.ingestion_bucket = ingestion_bucket
        self.processed_bucket = processed_bucket
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import os
        import tempfile

        from include.lake import Lake, Manifest, Spool, quarantine_prefix, run_prefix, schema_description, write_parquet_parts
        from include.registry import WAREHOUSE
        from include.transform import processed_schema, transform_kind

        table = WAREHOUSE[self.table]
        hook = s3_hook(self.aws_conn_id)
        ingestion, processed = Lake(hook, self.ingestion_bucket), Lake(hook, self.processed_bucket)
        dag_run = context["dag_run"]
        interval_end = run_interval(context)[1]
        prefix = run_prefix(table.name, interval_end, dag_run.run_id)
        quarantine = quarantine_prefix(table.name, interval_end, dag_run.run_id)
        inputs = {
            src: ingestion.read_manifest(r["manifest_key"]) for src, r in self.ingested.items() if r and r.get("manifest_key")
        }
        result: dict[str, Any] = {"table": table.name, "rows": 0, "manifest_key": None, "rejected": 0, "quarantine_key": None}
        # The newest change of each source read, loaded or quarantined: the freshness check's input.
        result["source_max"] = {src: m.max_last_updated for src, m in inputs.items() if m.max_last_updated}
        if not inputs:
            processed.discard(prefix)
            processed.discard(quarantine)
            self.log.info("No ingested rows for %s: nothing to transform", table.name)
            return result

        kind = transform_kind(table)
        schema = processed_schema(table)
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "rowwise":
                (source,) = table.sources
                out = self._rowwise(ingestion, inputs.get(source), table, tmp)
            elif kind == "joined":
                out = iter([self._joined(ingestion, processed, table, inputs, tmp)])
            else:
                out = iter([self._dates(ingestion, inputs, tmp)])
            rows = 0
            rejects = Spool(os.path.join(tmp, "rejects.parquet"))

            def counted(built: Iterator) -> Iterator[pa.RecordBatch]:
                nonlocal rows
                for b in built:
                    rejects.write(b.rejected)
                    rows += b.rows.num_rows
                    yield from b.rows.to_batches()

            parts = write_parquet_parts(processed, prefix, counted(out), schema, tmp)
            if rejects.close():
                result.update(
                    rejected=rejects.rows,
                    quarantine_key=self._quarantine(processed, quarantine, rejects, table.name, dag_run.run_id),
                )
            else:
                processed.discard(quarantine)
        if not parts:
            processed.discard(prefix)
            return result
        manifest = Manifest(
            table=table.name,
            run_id=dag_run.run_id,
            rows=rows,
            parts=parts,
            columns=schema_description(schema),
            inputs=sorted(r["manifest_key"] for r in self.ingested.values() if r and r.get("manifest_key")),
            max_last_updated=max((m.max_last_updated for m in inputs.values() if m.max_last_updated), default=None),
            source_max={src: m.max_last_updated for src, m in inputs.items() if m.max_last_updated},
        )
        result.update(rows=rows, manifest_key=processed.commit(prefix, manifest))
        self.log.info("Wrote %d rows of %s", rows, table.name)
        return result

    def _quarantine(self, lake: Lake, prefix: str, rejects, table: str, run_id: str) -> str:
        """Upload the rejected source rows and a summary of the reasons; return the parquet key."""
        import json
        from collections import Counter

        import pyarrow.parquet as pq

        from include.transform import REASON_COLUMN

        reasons = Counter(
            r.split(":", 1)[0] for r in pq.read_table(rejects.path, columns=[REASON_COLUMN])[REASON_COLUMN].to_pylist()
        )
        key = f"{prefix}transform-rejects.parquet"
        lake.put_file(rejects.path, key)
        summary = {
            "table": table,
            "run_id": run_id,
            "stage": "transform",
            "rows": rejects.rows,
            "reasons": dict(reasons),
            "rows_key": key,
        }
        lake.put_bytes(json.dumps(summary, indent=1).encode(), f"{prefix}transform-rejects.json")
        self.log.warning("Quarantined %d %s row(s) at s3://%s/%s: %s", rejects.rows, table, lake.bucket, key, dict(reasons))
        return key

    @staticmethod
    def _read_all(lake: Lake, manifest: Manifest | None, workdir: str) -> pa.Table | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if manifest is None:
            return None
        tables = []
        for path in lake.iter_parts(manifest, workdir):
            tables.append(pq.read_table(path))
        return pa.concat_tables(tables)

    def _rowwise(self, lake: Lake, manifest: Manifest | None, table, workdir: str) -> Iterator:
        import pyarrow as pa

        from include.lake import read_parquet_batches
        from include.transform import warehouse_rows

        if manifest is None:
            return
        for path in lake.iter_parts(manifest, workdir):
            for batch in read_parquet_batches(path):
                yield warehouse_rows(table, pa.Table.from_batches([batch]))

    def _joined(self, ingestion: Lake, processed: Lake, table, inputs: dict[str, Manifest], workdir: str):
        from include.extract import source_schema
        from include.registry import SOURCE
        from include.state import StateStore
        from include.transform import affected_ids, join_rows, warehouse_rows

        join = table.join
        store = StateStore(processed)
        changed = {}
        states = {}
        for side in (join.left, join.right):
            schema = source_schema(SOURCE[side])
            rows = self._read_all(ingestion, inputs.get(side), workdir)
            changed[side] = rows.cast(schema) if rows is not None else schema.empty_table()
            states[side] = store.merge(side, changed[side], SOURCE[side].primary_key)
        ids = affected_ids(join, changed[join.left], changed[join.right], states[join.left])
        self.log.info("%s: %d %s row(s) to rebuild", table.name, len(ids), join.left)
        return warehouse_rows(table, join_rows(join, ids, states[join.left], states[join.right]))

    def _dates(self, ingestion: Lake, inputs: dict[str, Manifest], workdir: str):
        import pyarrow as pa
        import pyarrow.compute as pc

        from include.lake import read_parquet_batches
        from include.transform import DATE_SOURCES, Built, dim_date, referenced_dates

        found = [pa.array([], pa.date32())]
        for source, manifest in inputs.items():
            for path in ingestion.iter_parts(manifest, workdir):
                for batch in read_parquet_batches(path, columns=list(DATE_SOURCES[source])):
                    found.append(referenced_dates(source, pa.Table.from_batches([batch])))
        return Built(dim_date(pc.unique(pa.concat_arrays(found))))
