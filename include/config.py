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

# Airflow variables and their defaults (used when the variable is not set).
VARIABLES: dict[str, str] = {
    "totes_ingestion_bucket": "totes-ingestion",
    "totes_processed_bucket": "totes-processed",
    "totes_warehouse_schema": "public",
    "totes_alert_emails": "data-alerts@terrifictotes.com",
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
# Rows per Arrow batch and per parquet row group: what bounds the memory of every task.
BATCH_ROWS = 100_000
