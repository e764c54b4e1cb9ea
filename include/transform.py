"""Transform: what one run ingested -> one warehouse table's rows, as parquet in the processed bucket.

``transform_table`` is the stage. It reads only the manifests of the ingests it depends on and
builds the table as its registry declaration says (include.derive evaluates it):

* a fact or a dimension without a join streams batch by batch, in bounded memory;
* a joined dimension (dim_counterparty, dim_staff) rebuilds every row a change reaches on either
  side, from the latest known version of both (include.state);
* the calendar (dim_date) holds every date the run's fact rows refer to.

Rows that cannot become correct warehouse rows are quarantined with their reason (README,
"Quarantine"); the rest are written. Writes nothing when its inputs are empty.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include import quarantine
from include.derive import Built, affected_ids, dim_date, join_rows, processed_schema, referenced_dates, warehouse_rows
from include.ingest import source_schema
from include.lake import (
    Lake,
    Manifest,
    Spool,
    publish,
    quarantine_prefix,
    read_parquet_batches,
    run_prefix,
    write_parquet_parts,
)
from include.registry import SOURCE, WarehouseTable, calendar_inputs
from include.results import IngestResult, Run, TransformResult
from include.state import StateStore

log = logging.getLogger(__name__)


def transform_table(
    ingestion: Lake, processed: Lake, table: WarehouseTable, ingested: Mapping[str, IngestResult | None], run: Run
) -> TransformResult:
    """Build ``table`` from what its ingests wrote in this run (``ingested``: source table -> the
    ingest's result, None when it produced none)."""
    prefix = run_prefix(table.name, run.interval_end, run.run_id)
    rejects_prefix = quarantine_prefix(table.name, run.interval_end, run.run_id)
    keys = {src: r.manifest_key for src, r in ingested.items() if r is not None and r.manifest_key}
    inputs = {src: ingestion.read_manifest(key) for src, key in keys.items()}
    source_max = {src: m.max_last_updated for src, m in inputs.items() if m.max_last_updated}
    result = TransformResult(table=table.name, source_max=source_max, rows_read=sum(m.rows for m in inputs.values()))
    if not inputs:
        processed.discard(prefix)
        processed.discard(rejects_prefix)
        log.info("No ingested rows for %s: nothing to transform", table.name)
        return result

    schema = processed_schema(table)
    with tempfile.TemporaryDirectory() as tmp:
        if table.kind == "calendar":
            built: Iterator[Built] = iter([_calendar(ingestion, inputs, tmp)])
        elif table.join:
            built = iter([_joined(ingestion, processed, table, inputs, tmp)])
        else:
            built = _rowwise(ingestion, inputs.get(table.source), table, tmp)
        rejects = Spool(os.path.join(tmp, "rejects.parquet"))

        def good_rows() -> Iterator[pa.RecordBatch]:
            for b in built:
                rejects.write(b.rejected)
                yield from b.rows.to_batches()

        parts = write_parquet_parts(processed, prefix, good_rows(), schema, tmp)
        if rejects.close():
            quarantine_key = _quarantine(processed, rejects_prefix, rejects, table.name, run.run_id)
            result = replace(result, rejected=rejects.rows, quarantine_key=quarantine_key)
        else:
            processed.discard(rejects_prefix)
    details = {"inputs": sorted(keys.values()), "max_last_updated": max(source_max.values(), default=None)}
    key = publish(processed, prefix, parts, schema, table=table.name, run_id=run.run_id, source_max=source_max, **details)
    rows = sum(p.rows for p in parts)
    log.info("Wrote %d rows of %s", rows, table.name)
    return replace(result, rows=rows, manifest_key=key, bytes=sum(p.bytes for p in parts))


def _quarantine(lake: Lake, prefix: str, rejects: Spool, table: str, run_id: str) -> str:
    """Upload the rejected source rows and a summary of the reasons; return the parquet key."""
    column = pq.read_table(rejects.path, columns=[quarantine.REASON_COLUMN])[quarantine.REASON_COLUMN]
    reasons = Counter(r.split(":", 1)[0] for r in column.to_pylist())
    name = "transform-rejects.parquet"
    summary = {
        "table": table,
        "run_id": run_id,
        "stage": "transform",
        "rows": rejects.rows,
        "reasons": dict(reasons),
        "rows_key": f"{prefix}{name}",
    }
    log.warning("Quarantining %d %s row(s): %s", rejects.rows, table, dict(reasons))
    return quarantine.store(lake, prefix, name, rejects.path, summary, "transform-rejects.json")


def _read_all(lake: Lake, manifest: Manifest | None, workdir: str) -> pa.Table | None:
    if manifest is None:
        return None
    return pa.concat_tables([pq.read_table(path) for path in lake.iter_parts(manifest, workdir)])


def _rowwise(lake: Lake, manifest: Manifest | None, table: WarehouseTable, workdir: str) -> Iterator[Built]:
    if manifest is None:
        return
    for path in lake.iter_parts(manifest, workdir):
        for batch in read_parquet_batches(path):
            yield warehouse_rows(table, pa.Table.from_batches([batch]))


def _joined(ingestion: Lake, processed: Lake, table: WarehouseTable, inputs: dict[str, Manifest], workdir: str) -> Built:
    store = StateStore(processed)
    changed, states = {}, {}
    for side in (table.source, table.join.table):
        schema = source_schema(SOURCE[side])
        rows = _read_all(ingestion, inputs.get(side), workdir)
        changed[side] = rows.cast(schema) if rows is not None else schema.empty_table()
        states[side] = store.merge(side, changed[side], SOURCE[side].primary_key)
    ids = affected_ids(table, changed[table.source], changed[table.join.table], states[table.source])
    log.info("%s: %d %s row(s) to rebuild", table.name, len(ids), table.source)
    return warehouse_rows(table, join_rows(table, ids, states[table.source], states[table.join.table]))


def _calendar(ingestion: Lake, inputs: dict[str, Manifest], workdir: str) -> Built:
    found = [pa.array([], pa.date32())]
    for source, manifest in inputs.items():
        for path in ingestion.iter_parts(manifest, workdir):
            for batch in read_parquet_batches(path, columns=list(calendar_inputs()[source])):
                found.append(referenced_dates(source, pa.Table.from_batches([batch])))
    return Built(dim_date(pc.unique(pa.concat_arrays(found))))
