"""Load the real totesys extract (parquet, one file per table) into an empty totesys database.

The extract's types are those of its writer (int64 keys, float64 money, float64 nullable order
ids, nanosecond timestamps), not of the database; each column is converted to the database type
declared in include.registry, and a value that does not convert exactly is an error.

    python -m devtools.totesys.real_extract --url postgresql://.../totesys [--dir ../shared/data/totesys-2024-11-15]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from devtools.totesys.generator import _decimal, copy_table
from devtools.totesys.schema import create_totesys_schema
from include.pgarrow import arrow_schema
from include.registry import SOURCE, SOURCE_TABLES

DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "totesys-2024-11-15"


def _convert(column: pa.ChunkedArray, target: pa.DataType, where: str) -> pa.Array:
    column = column.combine_chunks()
    if pa.types.is_decimal(target) and pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        cents = np.round(values * 100)
        if not np.allclose(cents / 100, values, rtol=0, atol=1e-6):
            raise ValueError(f"{where}: money values with more than 2 decimals")
        return _decimal(cents.astype(np.int64), target.precision, target.scale)
    if pa.types.is_integer(target) and pa.types.is_floating(column.type):
        # Nullable integer ids arrive as floats with NaN for NULL.
        mask = pc.fill_null(pc.is_nan(column), True).to_numpy(zero_copy_only=False)
        values = np.nan_to_num(column.to_numpy(zero_copy_only=False), nan=0)
        if not np.array_equal(values, np.round(values)):
            raise ValueError(f"{where}: non-integer id")
        return pa.array(values.astype(np.int64), target, mask=mask)
    return column.cast(target)  # safe cast: raises on overflow or lost precision


def read_extract_table(directory: Path, name: str) -> pa.Table:
    table = pq.read_table(directory / f"{name}.parquet")
    schema = arrow_schema(SOURCE[name].columns)
    if set(table.column_names) != set(schema.names):
        raise ValueError(f"{name}: extract columns {sorted(table.column_names)} differ from the spec's {sorted(schema.names)}")
    arrays = [_convert(table.column(f.name), f.type, f"{name}.{f.name}") for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def load_extract(conn: psycopg.Connection, directory: Path = DEFAULT_DIR) -> dict[str, int]:
    """Create the totesys schema in an empty database and load the extract; rows per table."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no totesys extract at {directory}")
    counts: dict[str, int] = {}

    def fill(c: psycopg.Connection) -> None:
        for t in SOURCE_TABLES:
            counts[t.name] = copy_table(c, t.name, read_extract_table(directory, t.name))

    create_totesys_schema(conn, populate=fill)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    with psycopg.connect(args.url) as conn:
        for name, n in load_extract(conn, args.dir).items():
            print(f"{name:>15} {n:>8,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
