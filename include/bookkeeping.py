"""The pipeline's own tables in the warehouse, beside the star schema (README, "Warehouse bookkeeping").

* ``etl_dimension_version``: the source version each dimension row was built from, so that a
  load that arrives late (a backfill beside the schedule, a replay) never overwrites a newer row
  with an older one (include.load).
* ``etl_quarantine``: every row that could not be loaded, with the reason and the row itself,
  until a later version of it (or, for a fact refused for a missing dimension row, the row
  itself) loads (include.quarantine).
* ``etl_load_log``: one row per table per run that loaded something; the freshness check reads it.
* ``etl_stage_figures`` and ``etl_check_result``: what each run's stages did and what its
  checks found, per table, kept 90 days (include.figures).
* ``etl_file``: every object of a file feed taken, at its ETag, and what became of it
  (loaded, superseded, quarantined), so that each is taken once (include.files).
* ``etl_outside_write``: every statement that changed a warehouse table without being a
  pipeline load (a hand fix, a stray script), recorded by triggers (include.ddl) until a person
  accepts it; ``check.reconcile`` fails while one is not accepted (include.checks).

Every other module names these tables through this one. include.ddl creates them; a column
added here in a later version is added to an existing table (never dropped or changed).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

DIMENSION_VERSION = "etl_dimension_version"
QUARANTINE = "etl_quarantine"
LOAD_LOG = "etl_load_log"
OUTSIDE_WRITE = "etl_outside_write"
STAGE_FIGURES = "etl_stage_figures"
CHECK_RESULT = "etl_check_result"
FILE_LEDGER = "etl_file"

# A pipeline load names itself in this transaction-local setting; the triggers that record
# writes outside the pipeline skip a statement made under it (include.ddl, include.load).
WRITER_SETTING = "totes.writer"

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    DIMENSION_VERSION: (
        ("dimension", "varchar NOT NULL"),
        ("id", "integer NOT NULL"),
        ("version", "timestamp(3)[] NOT NULL"),
    ),
    QUARANTINE: (
        ("quarantine_id", "bigserial PRIMARY KEY"),
        ("table_name", "varchar NOT NULL"),
        ("stage", "varchar NOT NULL"),
        ("source_id", "integer"),
        ("source_last_updated", "timestamp(3)"),
        ("reason", "text NOT NULL"),
        ("row_data", "jsonb NOT NULL"),
        ("run_id", "varchar NOT NULL"),
        ("object_key", "varchar NOT NULL"),
        ("quarantined_at", "timestamptz NOT NULL DEFAULT now()"),
        ("resolved_at", "timestamptz"),
        ("resolved_by_run", "varchar"),
    ),
    LOAD_LOG: (
        ("load_id", "bigserial PRIMARY KEY"),
        ("table_name", "varchar NOT NULL"),
        ("run_id", "varchar NOT NULL"),
        ("manifest_key", "varchar NOT NULL"),
        ("rows_staged", "bigint NOT NULL"),
        ("rows_written", "bigint NOT NULL"),
        ("rows_rejected", "bigint NOT NULL DEFAULT 0"),
        ("source_max_last_updated", "jsonb"),
        ("loaded_at", "timestamptz NOT NULL DEFAULT now()"),
    ),
    OUTSIDE_WRITE: (
        ("write_id", "bigserial PRIMARY KEY"),
        ("table_name", "varchar NOT NULL"),
        ("operation", "varchar NOT NULL"),
        ("rows", "bigint"),  # NULL for a TRUNCATE: its rows are not counted
        ("ids", "text[]"),  # the first 100 ids the statement touched, as they were
        ("written_by", "varchar NOT NULL"),
        ("written_at", "timestamptz NOT NULL DEFAULT now()"),
        ("accepted_by", "varchar"),
        ("accepted_at", "timestamptz"),
    ),
    STAGE_FIGURES: (
        ("run_id", "varchar NOT NULL"),
        ("stage", "varchar NOT NULL"),
        ("table_name", "varchar NOT NULL"),
        ("interval_start", "timestamptz NOT NULL"),
        ("interval_end", "timestamptz NOT NULL"),
        ("rows_read", "bigint NOT NULL DEFAULT 0"),
        ("rows_written", "bigint NOT NULL DEFAULT 0"),
        ("rows_rejected", "bigint NOT NULL DEFAULT 0"),
        ("rows_quarantined", "bigint NOT NULL DEFAULT 0"),
        ("bytes", "bigint NOT NULL DEFAULT 0"),
        ("seconds", "double precision NOT NULL"),
        # where an ingest's read began (NULL: a snapshot); a read is not cut at the interval end
        ("window_start", "timestamp(3)"),
        ("newest_change", "timestamp(3)"),  # the newest source last_updated the stage handled
        ("recorded_at", "timestamptz NOT NULL DEFAULT clock_timestamp()"),
    ),
    CHECK_RESULT: (
        ("run_id", "varchar NOT NULL"),
        ("check_name", "varchar NOT NULL"),
        ("table_name", "varchar NOT NULL"),
        ("interval_end", "timestamptz NOT NULL"),
        ("passed", "boolean NOT NULL"),
        ("ids_expected", "bigint"),  # reconcile: the source's changes in the recent span
        ("ids_present", "bigint"),  # reconcile: of those, in the warehouse at their version
        ("ids_quarantined", "bigint"),  # reconcile: ids excepted because they wait in the quarantine
        ("lag_seconds", "double precision"),  # freshness: newest source change minus newest handled
        ("problems", "text"),
        ("recorded_at", "timestamptz NOT NULL DEFAULT clock_timestamp()"),
    ),
    # Every object of a file feed the pipeline took, at its ETag (include.files): a file is
    # taken once, whatever reruns, sweeps and duplicate notifications do.
    FILE_LEDGER: (
        ("feed", "varchar NOT NULL"),
        ("object_key", "varchar NOT NULL"),
        ("etag", "varchar NOT NULL"),
        ("version_id", "varchar"),
        ("size", "bigint"),
        ("last_modified", "timestamp(3)"),
        ("outcome", "varchar NOT NULL"),  # loaded, superseded or quarantined
        ("reason", "text"),  # why it was quarantined
        ("scope", "varchar"),  # the document's scope (the targets' month), once parsed
        ("published_at", "timestamp(3)"),
        ("lake_key", "varchar"),  # the file as it came (ingestion bucket), or its quarantine copy
        ("superseded_by", "varchar"),  # the key of the later document of its scope
        ("run_id", "varchar NOT NULL"),
        ("taken_at", "timestamptz NOT NULL DEFAULT clock_timestamp()"),
    ),
}
CONSTRAINTS: dict[str, str] = {
    DIMENSION_VERSION: "PRIMARY KEY (dimension, id)",
    STAGE_FIGURES: "PRIMARY KEY (run_id, stage, table_name)",
    CHECK_RESULT: "PRIMARY KEY (run_id, check_name, table_name)",
    FILE_LEDGER: "PRIMARY KEY (feed, object_key, etag)",
}


def table(schema: str, name: str) -> sql.Identifier:
    """The schema-qualified identifier of a bookkeeping table."""
    if name not in COLUMNS:
        raise ValueError(f"{name} is not a bookkeeping table")
    return sql.Identifier(schema, name)


def create_table_ddl(schema: str, name: str) -> sql.Composable:
    parts = [sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(typ)) for col, typ in COLUMNS[name]]
    if name in CONSTRAINTS:
        parts.append(sql.SQL(CONSTRAINTS[name]))
    return sql.SQL("CREATE TABLE {} ({})").format(table(schema, name), sql.SQL(", ").join(parts))


def create_index_ddl(schema: str, name: str) -> list[sql.Composable]:
    if name in (STAGE_FIGURES, CHECK_RESULT):
        # the health page reads the last runs, retention deletes by age
        return [
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{name}_{col}_idx"), table(schema, name), sql.Identifier(col)
            )
            for col in ("interval_end", "recorded_at")
        ]
    if name != QUARANTINE:
        return []
    # loads look up the rows still waiting for a table at every run
    return [
        sql.SQL("CREATE INDEX {} ON {} (table_name, stage, source_id) WHERE resolved_at IS NULL").format(
            sql.Identifier("etl_quarantine_waiting_idx"), table(schema, QUARANTINE)
        )
    ]


def mark_pipeline_write(conn: psycopg.Connection, run_id: str) -> None:
    """Say, for the rest of this transaction, that its writes are a pipeline load of ``run_id``."""
    conn.execute("SELECT set_config(%s, %s, true)", (WRITER_SETTING, run_id))


def log_load(
    conn: psycopg.Connection,
    schema: str,
    table_name: str,
    *,
    run_id: str,
    manifest_key: str,
    source_max: dict[str, str] | None,
    staged: int = 0,
    written: int = 0,
    rejected: int = 0,
) -> None:
    """One etl_load_log row: what a run did to a table, and the newest source change it handled."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (table_name, run_id, manifest_key, rows_staged, rows_written, rows_rejected, source_max_last_updated) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ).format(table(schema, LOAD_LOG)),
        (table_name, run_id, manifest_key, staged, written, rejected, json.dumps(source_max or {})),
    )
