"""When a file feed's DAG runs (dags/totes_files.py): on its sweep's clock, and as files land.

Parsing may do no I/O, so the queue is known from the environment alone: Airflow's ``[totes]``
configuration, ``<feed>_queue_url`` (``AIRFLOW__TOTES__SALES_TARGETS_QUEUE_URL``), set by
terraform/mwaa on AWS and by the local stack. Without it the feed is swept only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from include.config import AWS_CONN_ID
from include.registry import FileFeed

# How the triggerer polls the queue: a long poll of 20 s (SQS's longest), then again at once.
QUEUE_WAIT_SECONDS = 20
QUEUE_POLL_DELAY_SECONDS = 1


def queue_url(feed: FileFeed, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(f"AIRFLOW__TOTES__{feed.name.upper()}_QUEUE_URL") or None


def arrivals_asset(feed: FileFeed, url: str) -> Any:
    """The Asset that the feed's notifications update: one event per batch of S3 notifications."""
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
    from airflow.sdk import Asset, AssetWatcher

    trigger = SqsSensorTrigger(
        sqs_queue=url,
        aws_conn_id=AWS_CONN_ID,
        max_messages=10,
        wait_time_seconds=QUEUE_WAIT_SECONDS,
        waiter_delay=QUEUE_POLL_DELAY_SECONDS,
    )
    return Asset(
        name=f"{feed.name}_arrivals",
        uri=f"totes-feed://{feed.name}/arrivals",
        watchers=[AssetWatcher(name=f"{feed.name}_queue", trigger=trigger)],
    )


def feed_schedule(feed: FileFeed, environ: Mapping[str, str] | None = None) -> Any:
    """The sweep's cron alone, or the sweep or a landed file, whichever comes first."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    sweep = CronTriggerTimetable(feed.sweep_cron, timezone="UTC")
    url = queue_url(feed, environ)
    if url is None:
        return sweep
    return AssetOrTimeSchedule(timetable=sweep, assets=arrivals_asset(feed, url))
