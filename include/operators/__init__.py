"""Custom operators of totes_etl, totes_fx and the file feeds: shells around the stage functions of include/.

They follow the providers' operators: keyword-only constructors that only store arguments,
``template_fields``, hooks created in ``execute``, then one call into the stage function
(include.ingest, include.transform, include.load, include.checks, include.fx, include.reports,
include.files), whose typed
result goes to XCom as a dict. Heavy imports (pyarrow, psycopg, boto3) stay inside ``execute``
so that parsing a DAG stays cheap.
"""

from include.operators.checks import QuarantineReportOperator, RunOutcomeOperator, WarehouseCheckOperator
from include.operators.files import FileFeedToIngestionOperator, FileFeedToWarehouseOperator
from include.operators.fx import FxRatesToS3Operator, FxRatesToWarehouseOperator
from include.operators.ingest import TotesysToIngestionOperator
from include.operators.load import ProcessedToWarehouseOperator, WarehouseSchemaOperator
from include.operators.reports import WarehouseReportOperator
from include.operators.transform import IngestionToProcessedOperator

__all__ = [
    "FileFeedToIngestionOperator",
    "FileFeedToWarehouseOperator",
    "FxRatesToS3Operator",
    "FxRatesToWarehouseOperator",
    "IngestionToProcessedOperator",
    "ProcessedToWarehouseOperator",
    "QuarantineReportOperator",
    "RunOutcomeOperator",
    "TotesysToIngestionOperator",
    "WarehouseCheckOperator",
    "WarehouseReportOperator",
    "WarehouseSchemaOperator",
]
