"""totes_etl's deadline reference (include/deadline.py), registered with Airflow.

The scheduler looks a DAG's custom deadline references up among the plugins' when it creates a
run: without this plugin it cannot create totes_etl's runs. It imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.deadline import RunDeadline


class TotesDeadlinePlugin(AirflowPlugin):
    name = "totes_deadline"
    deadline_references: ClassVar[list[Any]] = [RunDeadline]
