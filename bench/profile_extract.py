"""Where an extract's time goes: each step of the ingest path on its own, on one table.

    python -m bench.profile_extract postgresql://postgres@127.0.0.1:5432/totesys [table]

Prints the rows/s of: the raw ``COPY (SELECT ...) TO STDOUT`` read (the limit); our COPY reader
(ADBC's PostgreSQL driver, cast to the exact types); the parquet write with and without dictionaries for
non-text columns; and the whole extract into local files. Run it on a totesys made by
``make generate ARGS="--scale 100 ..."`` (payment: 1.6 M rows); the README quotes one run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql


def best_of(n: int, step: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.ingest import Window, extract_batches, extract_query, source_schema
    from include.lake import parquet_writer
    from include.registry import SOURCE

    url, name = argv[0], (argv[1] if len(argv) > 1 else "payment")
    table = SOURCE[name]
    schema = source_schema(table)
    everything = Window(None, datetime(9999, 1, 1))
    query = extract_query(table, everything)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()[0]

        def raw() -> None:
            with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
                for _ in copy:
                    pass

        batches: list[pa.RecordBatch] = []

        def read() -> None:
            batches[:] = list(extract_batches(conn, table, everything))

        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "out.parquet")

            def write(dictionaries: bool) -> Callable[[], None]:
                def step() -> None:
                    writer = pq.ParquetWriter(path, schema, compression="zstd") if dictionaries else parquet_writer(path, schema)
                    for b in batches:
                        writer.write_batch(b)
                    writer.close()

                return step

            def whole() -> None:
                writer = parquet_writer(path, schema)
                for b in extract_batches(conn, table, everything):
                    writer.write_batch(b)
                writer.close()

            figures = {
                "raw COPY TO, drained": best_of(2, raw),
                "our reader (COPY -> Arrow batches)": best_of(2, read),
                "parquet write, dictionaries on every column": best_of(2, write(True)),
                "parquet write, dictionaries for text only": best_of(2, write(False)),
                "whole extract into a local file": best_of(2, whole),
            }
    print(f"{name}: {rows:,} rows")
    for step, seconds in figures.items():
        print(f"  {step:45s} {seconds:6.2f} s  {rows / seconds / 1000:8,.0f}k rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
