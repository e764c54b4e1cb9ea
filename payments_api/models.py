"""The API's response models: what /openapi.json documents and what every answer is checked against."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class Currency(BaseModel):
    code: str = Field(description="ISO 4217 code (dim_currency.currency_code).", examples=["GBP"])
    name: str = Field(description="ISO 4217 English name (dim_currency.currency_name).", examples=["Pound Sterling"])


class Counterparty(BaseModel):
    id: int = Field(description="Counterparty id (dim_counterparty.counterparty_id).", examples=[12])
    legal_name: str = Field(
        description="Legal name of the counterparty (dim_counterparty.counterparty_legal_name).", examples=["Fahey and Sons"]
    )


class Payment(BaseModel):
    """The latest version of one scheduled payment."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payment_id": 4521,
                    "amount": "12345.60",
                    "currency": {"code": "GBP", "name": "Pound Sterling"},
                    "counterparty": {"id": 12, "legal_name": "Fahey and Sons"},
                    "payment_date": "2024-11-15",
                    "paid": False,
                }
            ]
        }
    )

    payment_id: int = Field(description="Payment id in totesys (fact_payment.payment_id).")
    amount: str = Field(
        pattern=r"^-?\d+\.\d{2}$",
        description="Exact amount in the payment's currency, as a decimal string with two places (no float rounding).",
        examples=["12345.60"],
    )
    currency: Currency
    counterparty: Counterparty
    payment_date: date = Field(description="The day the payment is scheduled for (YYYY-MM-DD).")
    paid: bool = Field(description="Whether the payment has been made.")


class PaymentList(BaseModel):
    as_of: date = Field(description="The day the list is relative to: the as_of parameter, or today's UTC date.")
    payments: list[Payment] = Field(description="At most five payments, in the order the endpoint describes.", max_length=5)


class Health(BaseModel):
    status: str = Field(description='"ok" when the warehouse answers, else "unavailable".', examples=["ok"])
    warehouse: str = Field(description='"reachable" or "unreachable".', examples=["reachable"])
    detail: str | None = Field(default=None, description="Why the warehouse is unavailable.")


class ErrorMessage(BaseModel):
    """An error the client can act on; never a stack trace."""

    detail: str = Field(examples=["the warehouse is unreachable; try again later"])


class FieldError(BaseModel):
    location: str = Field(description="Where the bad value is, e.g. query.as_of.", examples=["query.as_of"])
    message: str = Field(examples=["as_of must be a calendar date in YYYY-MM-DD form, e.g. 2024-11-15; got '15/11/2024'"])


class ValidationErrorMessage(BaseModel):
    """A request with a bad parameter (HTTP 422)."""

    detail: str = Field(
        description="Every problem, in one sentence.",
        examples=["invalid request: query.as_of: as_of must be a calendar date in YYYY-MM-DD form, e.g. 2024-11-15; got 'x'"],
    )
    errors: list[FieldError]
