"""The pipeline's health page in the Airflow UI: a FastAPI app the api-server mounts at
/totes-health/ and a "Pipeline health" entry in the UI's navigation (include/health.py).

The page reads the warehouse through the ``warehouse_health`` connection (a role that may only
read), in read-only transactions, and answers only to a user of the UI who may read totes_etl.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.health import URL_PREFIX, LazyApp


def _connect():
    from include.health import HEALTH_CONN_ID
    from include.operators._common import psycopg_connection

    return psycopg_connection(HEALTH_CONN_ID, read_only=True)


def _schema() -> str:
    from airflow.sdk import Variable

    from include.config import VARIABLES

    return Variable.get("totes_warehouse_schema", default=VARIABLES["totes_warehouse_schema"])


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)  # the page is a view of the figures as of the request


def _app():
    """The page's FastAPI app, guarded by the UI's own login: built by the api-server at the
    first request (include.health.LazyApp), never in the other processes that load plugins."""
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends

    from include.config import DAG_ID
    from include.health import make_app

    return make_app(_connect, _schema, _now, guard=Depends(requires_access_dag("GET", param_dag_id=DAG_ID)))


class TotesHealthPlugin(AirflowPlugin):
    name = "totes_health"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {
            "app": LazyApp(_app),
            "url_prefix": URL_PREFIX,
            "name": "totes_etl health",
        }
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Pipeline health",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "totes-health",
        }
    ]
