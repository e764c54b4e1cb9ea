"""The FastAPI application: routes, parameter validation, error handling."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from payments_api import db
from payments_api.auth import Forbidden, Identity, Unauthenticated, authorize
from payments_api.models import (
    Counterparty,
    Currency,
    ErrorMessage,
    FieldError,
    Health,
    Payment,
    PaymentList,
    ValidationErrorMessage,
)
from payments_api.settings import Settings

log = logging.getLogger("payments_api")

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RETRY_AFTER_SECONDS = "30"


def _iso_date(value: Any) -> Any:
    """Accept exactly YYYY-MM-DD (no timestamps, no other layouts) and a real calendar day."""
    if value is None or isinstance(value, date):
        return value
    text = str(value)
    shown = text if len(text) <= 40 else text[:40] + "..."
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"as_of must be a calendar date in YYYY-MM-DD form, e.g. 2024-11-15; got {shown!r}")


AsOf = Annotated[
    date | None,
    BeforeValidator(_iso_date),
    Query(
        description="The day the list is relative to, YYYY-MM-DD. Default: today's date in UTC.",
        examples=["2024-11-15"],
    ),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "No credential, or one that does not hold (see the API's description)."},
    403: {"model": ErrorMessage, "description": "The caller is authenticated but not in the group that may read payments."},
    422: {"model": ValidationErrorMessage, "description": "A parameter is invalid (e.g. as_of is not a YYYY-MM-DD date)."},
    503: {"model": ErrorMessage, "description": "The warehouse is unreachable or not ready; retry later (see Retry-After)."},
}

DESCRIPTION = """
Scheduled payments from the Terrific Totes data warehouse, for the finance department.

Payments are the warehouse's `fact_payment` rows with their currency (`dim_currency`) and
counterparty (`dim_counterparty`). The warehouse keeps every version of a payment; this API
always answers with each payment's **latest version** (greatest `last_updated_date`,
`last_updated_time`), so a payment whose date changed is listed only where it is now.

Amounts are exact decimal strings with two places. Read-only: the API never writes.

Every payments route needs a caller in the reader group (`finance` by default): on AWS the load
balancer signs users in with the company's identity provider; elsewhere send
`Authorization: Bearer <token>`. No credential or a wrong one is a 401, a caller outside the
group a 403. `/health` and this document need none.
"""


def _today_utc() -> date:
    return datetime.now(UTC).date()


def _to_model(row: db.PaymentRow) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        amount=f"{row.amount:.2f}",
        currency=Currency(code=row.currency_code, name=row.currency_name),
        counterparty=Counterparty(id=row.counterparty_id, legal_name=row.counterparty_legal_name),
        payment_date=row.payment_date,
        paid=row.paid,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings`` (default: from the environment, see Settings); raises
    payments_api.auth.AuthConfigError when nobody could be authenticated with them."""
    settings = settings or Settings.from_env()
    authenticator = settings.authenticator()
    app = FastAPI(
        title="Terrific Totes payments API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "payments", "description": "Scheduled payments, latest version of each."},
            {"name": "operations", "description": "Health of the service and its warehouse."},
        ],
    )
    app.state.settings = settings

    def reader(request: Request) -> Identity:
        """The caller, if authenticated and in the reader group; the reason is logged, never the credential."""
        try:
            return authorize(authenticator.authenticate(request.headers), settings.reader_group)
        except Unauthenticated as refused:
            log.warning("401 on %s %s: %s", request.method, request.url.path, refused)
            challenge = {"WWW-Authenticate": 'Bearer realm="payments"'} if settings.auth == "token" else {}
            raise HTTPException(401, "authentication required: see the API's description", headers=challenge) from None
        except Forbidden as refused:
            log.warning("403 on %s %s: %s", request.method, request.url.path, refused)
            raise HTTPException(403, f"not allowed: payments are for the group {settings.reader_group}") from None

    def listing(direction: Literal["last", "next"], as_of: date | None) -> PaymentList:
        day = as_of or _today_utc()
        rows = db.fetch_payments(settings, direction, day)
        return PaymentList(as_of=day, payments=[_to_model(r) for r in rows])

    @app.get(
        "/payments/last5",
        dependencies=[Depends(reader)],
        response_model=PaymentList,
        tags=["payments"],
        summary="The last five scheduled payments",
        response_description="The payments and the day they are relative to.",
        description="The five payments scheduled on or before `as_of` (payment_date <= as_of), most recent first; "
        "payments on the same day by descending payment_id.",
        responses=_ERRORS,
    )
    def last_five(as_of: AsOf = None) -> PaymentList:
        return listing("last", as_of)

    @app.get(
        "/payments/next5",
        dependencies=[Depends(reader)],
        response_model=PaymentList,
        tags=["payments"],
        summary="The next five scheduled payments",
        response_description="The payments and the day they are relative to.",
        description="The five payments scheduled after `as_of` (payment_date > as_of), soonest first; "
        "payments on the same day by ascending payment_id.",
        responses=_ERRORS,
    )
    def next_five(as_of: AsOf = None) -> PaymentList:
        return listing("next", as_of)

    @app.get(
        "/health",
        response_model=Health,
        tags=["operations"],
        summary="Service and warehouse health",
        description="200 when the warehouse answers a query on the payments tables, 503 otherwise.",
        responses={503: {"model": Health, "description": "The warehouse is unreachable or not ready."}},
    )
    def health() -> Health | JSONResponse:
        try:
            db.ping(settings)
        except db.WarehouseUnavailable as exc:
            body = Health(status="unavailable", warehouse="unreachable", detail=exc.message)
            return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})
        return Health(status="ok", warehouse="reachable")

    @app.exception_handler(db.WarehouseUnavailable)
    async def warehouse_unavailable(request: Request, exc: db.WarehouseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            location = ".".join(str(part) for part in err.get("loc", ()))
            ctx_error = (err.get("ctx") or {}).get("error")
            message = str(ctx_error) if err.get("type") == "value_error" and ctx_error else err.get("msg", "invalid value")
            problems.append(FieldError(location=location, message=message))
        body = ValidationErrorMessage(
            detail="invalid request: " + "; ".join(f"{p.location}: {p.message}" for p in problems), errors=problems
        )
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service log has the details"}, status_code=500)

    return app
