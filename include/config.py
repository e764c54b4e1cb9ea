"""The configuration contract: connection ids, variables and their defaults.

The same names are used on MWAA (connections in AWS Secrets Manager), in docker-compose and in
the embedded local stack (both through AIRFLOW_CONN_* / AIRFLOW_VAR_* environment variables).
"""

from __future__ import annotations

from datetime import timedelta

SOURCE_CONN_ID = "totesys_db"
WAREHOUSE_CONN_ID = "warehouse_db"
AWS_CONN_ID = "aws_default"  # an "endpoint_url" in its extra points S3 at MinIO or moto
SMTP_CONN_ID = "smtp_default"
# The health page in the UI (include/health.py): a warehouse role that may only read the run
# figures and the quarantine (include.health.grant_reader).
HEALTH_CONN_ID = "warehouse_health"
# The exchange-rates API of totes_fx (conn_type http; its host is the base URL). The documented
# value is https://api.frankfurter.app (ECB reference rates, GET /<YYYY-MM-DD>?base=GBP&symbols=...);
# there is no fallback: where the pipeline may reach is decided by whoever sets the connection.
FX_API_CONN_ID = "fx_api"

# Airflow variables and their defaults (used when the variable is not set).
VARIABLES: dict[str, str] = {
    "totes_ingestion_bucket": "totes-ingestion",
    "totes_processed_bucket": "totes-processed",
    "totes_warehouse_schema": "public",
    "totes_alert_emails": "data-alerts@terrifictotes.com",
    # The sales targets feed (include.registry.SALES_TARGETS): the sales department's bucket.
    "totes_targets_bucket": "totes-sales-targets",
    "totes_targets_prefix": "sales-targets/",
}


def variable_template(name: str) -> str:
    """A Jinja expression reading an Airflow variable at run time (never at DAG parse time)."""
    return f"{{{{ var.value.get({name!r}, {VARIABLES[name]!r}) }}}}"


DAG_ID = "totes_etl"
SCHEDULE_CRON = "*/15 * * * *"
SCHEDULE_PERIOD = timedelta(minutes=15)  # the interval SCHEDULE_CRON gives each run
# Rows may commit after a run read their window (last_updated is set before commit): every
# incremental extract reaches this far back before the previous successful run's end. The
# warehouse load deduplicates what is read twice.
LOOKBACK = timedelta(minutes=30)
# The promise: a change in totesys is in the warehouse within this (check.freshness, the health page).
FRESHNESS_LIMIT = timedelta(minutes=30)
# Rows per Arrow batch and per parquet row group: what bounds the memory of every task.
BATCH_ROWS = 100_000

# totes_fx (docs/fx_rates.md): once a day, the rates of the day the run's interval starts on.
# totes_reports (README, "Assets and lineage"): no clock; it runs when a table its reports read changes.
REPORTS_DAG_ID = "totes_reports"

FX_DAG_ID = "totes_fx"
FX_SCHEDULE_CRON = "0 6 * * *"  # 06:00 UTC: the ECB publishes a day's rates at about 16:00 CET
FX_SCHEDULE_PERIOD = timedelta(days=1)
FX_LAKE_TABLE = "fx_rates"  # the key prefix of its answers in the ingestion bucket: fx_rates/date=<day>/run=<run>/
# On a weekend or an ECB holiday the API answers with the last business day's rates. The longest
# ECB closure (Good Friday to Easter Monday) makes them 4 days old; older than this is refused.
FX_MAX_RATE_AGE = timedelta(days=5)

# File feeds (dags/totes_files.py): a pick-up's tasks are short, and a file waits at most one sweep.
FEED_SWEEP_PERIOD = timedelta(minutes=15)
