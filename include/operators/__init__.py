"""Custom operators of totes_etl.

They follow the providers' operators: keyword-only constructors that only store arguments,
``template_fields``, hooks created in ``execute``, and heavy imports (pyarrow, psycopg, boto3)
inside ``execute`` so that parsing the DAG stays cheap. The data work is in the pure modules
include.extract, include.transform, include.load and include.fx.
"""

from include.operators.checks import QuarantineReportOperator, WarehouseCheckOperator
from include.operators.fx import FxRatesToS3Operator, FxRatesToWarehouseOperator
from include.operators.ingest import TotesysToS3Operator
from include.operators.load import S3ToWarehouseOperator, WarehouseSchemaOperator
from include.operators.transform import LakeTransformOperator

__all__ = [
    "FxRatesToS3Operator",
    "FxRatesToWarehouseOperator",
    "LakeTransformOperator",
    "QuarantineReportOperator",
    "S3ToWarehouseOperator",
    "TotesysToS3Operator",
    "WarehouseCheckOperator",
    "WarehouseSchemaOperator",
]
