"""OpenLineage datasets and facets of the project's operators (the provider's facet methods).

Dataset names follow OpenLineage's naming: ``postgres://<host>:<port>`` with
``<database>.<schema>.<table>``, and ``s3://<bucket>`` with the table's key prefix; the same
places as the Assets of include/assets.py. Column lineage comes from include/lineage.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from include.lineage import ColumnInput

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    from include.registry import Column


def postgres_dataset(conn_id: str, schema: str, table: str, /, **facets: Any) -> Dataset:
    """A table of the database an Airflow connection points at."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return Dataset(namespace=f"postgres://{conn.host}:{conn.port or 5432}", name=f"{conn.schema}.{schema}.{table}", facets=facets)


def s3_dataset(bucket: str, table: str, /, **facets: Any) -> Dataset:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"s3://{bucket}", name=table, facets=facets)


def schema_facet(columns: Iterable[Column]) -> Any:
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    return SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=c.name, type=c.type.ddl) for c in columns])


def column_lineage(inputs: Mapping[str, tuple[ColumnInput, ...]], datasets: Mapping[str, Dataset]) -> Any:
    """The columnLineage facet of an output: output column -> its input columns, each in the
    input dataset of its table (``datasets``: table -> dataset)."""
    from airflow.providers.common.compat.openlineage.facet import ColumnLineageDatasetFacet, Fields, InputField
    from openlineage.client.generated.column_lineage_dataset import Transformation

    def field(i: ColumnInput) -> InputField:
        dataset = datasets[i.table]
        how = Transformation(type="DIRECT", subtype=i.subtype, description=i.description)
        return InputField(namespace=dataset.namespace, name=dataset.name, field=i.column, transformations=[how])

    return ColumnLineageDatasetFacet(
        fields={column: Fields(inputFields=[field(i) for i in ins]) for column, ins in inputs.items()}
    )


def identity(table: str, columns: Iterable[str]) -> dict[str, tuple[ColumnInput, ...]]:
    """Every column copied unchanged from the same column of ``table``."""
    return {c: (ColumnInput(table, c),) for c in columns}


def operator_lineage(inputs: list[Dataset], outputs: list[Dataset]) -> OperatorLineage:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs)
