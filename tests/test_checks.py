"""The checks (include.checks), on a warehouse built by the stage functions themselves.

The pipeline's stages are plain functions: here they run one after the other without Airflow's
scheduling (S3 through the provider's hook, PostgreSQL for real), and the checks are asked about
the warehouse they built, before and after it is damaged in ways the checks exist to catch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from devtools.totesys.generator import GeneratorSettings, generate
from include.checks import CheckFailed, run_check
from include.ddl import ensure_warehouse_schema
from include.ingest import ingest_table
from include.lake import Lake
from include.load import load_table
from include.operators._common import s3_hook
from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES
from include.results import Run
from include.transform import transform_table

END = datetime(2024, 11, 15, 15, 30)  # the cut-off (15:00) is after every generated row
RUN = Run("manual__checks", END - timedelta(minutes=15), END)


@pytest.fixture
def built(new_database, new_buckets, airflow_connections):
    """totesys (generated), and a warehouse loaded from it by ingest, transform and load."""
    src_url, wh_url = new_database("totesys"), new_database("warehouse")
    ingestion_bucket, processed_bucket = new_buckets("ingestion", "processed")
    airflow_connections(totesys_url=src_url, warehouse_url=wh_url, ingestion=ingestion_bucket, processed=processed_bucket)
    with psycopg.connect(src_url) as conn:
        generate(conn, GeneratorSettings(seed=31, scale=0.03))
    ingestion, processed = Lake(s3_hook("aws_default"), ingestion_bucket), Lake(s3_hook("aws_default"), processed_bucket)
    with psycopg.connect(src_url, autocommit=True) as src, psycopg.connect(wh_url, autocommit=True) as wh:
        ensure_warehouse_schema(wh, "public")
        ingested = {t.name: ingest_table(src, ingestion, t, RUN) for t in SOURCE_TABLES}
        for w in WAREHOUSE_TABLES:  # declared dimensions first, as the loads must run
            transformed = transform_table(ingestion, processed, w, {s: ingested[s] for s in w.sources}, RUN)
            assert transformed.rejected == 0
            load_table(wh, processed, "public", w, transformed, RUN)
        yield src, wh


def problems(check: str, src, wh) -> str:
    with pytest.raises(CheckFailed) as failed:
        run_check(check, src, wh, "public", RUN)
    return str(failed.value)


def test_a_warehouse_built_by_the_stages_passes_both_checks(built):
    src, wh = built
    assert run_check("reconcile", src, wh, "public", RUN).tables == len(WAREHOUSE_TABLES) - 1  # all but the calendar
    assert run_check("freshness", src, wh, "public", RUN).tables == len(SOURCE_TABLES)


def test_reconcile_catches_a_lost_fact_and_excepts_it_while_it_waits_in_the_quarantine(built):
    src, wh = built
    (lost,) = wh.execute(
        "DELETE FROM fact_payment WHERE payment_id = (SELECT min(payment_id) FROM fact_payment) RETURNING payment_id"
    ).fetchone()
    assert "fact_payment: 1 source row(s) missing" in problems("reconcile", src, wh)
    wh.execute(
        "INSERT INTO etl_quarantine (table_name, stage, source_id, reason, row_data, run_id, object_key) "
        "VALUES ('fact_payment', 'load', %s, 'test', '{}', 'r', 'k')",
        (lost,),
    )
    assert run_check("reconcile", src, wh, "public", RUN).check == "reconcile"


# (where, statement, its parameter, the check that must catch it, what it must say)
DAMAGE = {
    "an id the source lacks": (
        "warehouse", "INSERT INTO dim_design VALUES (999999, 'ghost', '/x', %s)", "x.json",
        "reconcile", "dim_design: 1 id(s) that the source does not have",
    ),
    "a recent change that did not arrive": (
        "source", "UPDATE design SET design_name = 'changed', last_updated = %s WHERE design_id = 1", END - timedelta(minutes=40),
        "reconcile", "dim_design: 1 of 1 recent change(s) not in the warehouse",
    ),
    "a foreign key no longer in force": (
        "warehouse", "ALTER TABLE fact_sales_order DROP CONSTRAINT fact_sales_order_design_id_fkey", None,
        "reconcile", "fact_sales_order: not every foreign key to its dimensions is in force",
    ),
    "a warehouse more than 30 minutes behind": (
        "source", "UPDATE staff SET last_updated = %s WHERE staff_id = 1", END - timedelta(minutes=1),
        "freshness", "staff: the warehouse is",
    ),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_kind_of_damage_is_caught_by_its_check(built, damage):
    src, wh = built
    where, statement, parameter, check, says = DAMAGE[damage]
    (src if where == "source" else wh).execute(statement, (parameter,) if parameter is not None else None)
    assert says in problems(check, src, wh)
