"""Column-level lineage, computed from the registry: which source column every warehouse column
comes from, and how. The operators hand it to OpenLineage (include/operators/_lineage.py), and
docs/architecture.md draws it (scripts/schema_diagram.py); nothing restates it by hand.

Each stage has its own lineage, as OpenLineage composes it: ingest copies totesys columns into
the ingestion bucket unchanged, transform computes the warehouse columns from the ingested ones
(``warehouse_column_inputs``), load copies them into the warehouse unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.registry import (
    CurrencyName,
    DateOf,
    Derivation,
    TextDate,
    TimeOf,
    WarehouseTable,
    calendar_inputs,
)

# OpenLineage's transformation types: DIRECT (the value is computed from the input) with the
# subtype IDENTITY (the same value) or TRANSFORMATION (changed on the way).
IDENTITY, TRANSFORMATION = "IDENTITY", "TRANSFORMATION"

# How a derivation changes its input: (a short label for diagrams, the description).
_HOW: dict[type[Derivation], tuple[str, str]] = {
    DateOf: ("date of", "the date of a timestamp"),
    TimeOf: ("time of", "the time of day of a timestamp"),
    TextDate: ("text date", "a YYYY-MM-DD text as a date"),
    CurrencyName: ("ISO 4217 name", "the ISO 4217 name of a currency code"),
}
CALENDAR_HOW = ("calendar", "the calendar attributes of every date any fact refers to")


@dataclass(frozen=True)
class ColumnInput:
    """One input of a warehouse column: ``column`` of the source table ``table``."""

    table: str
    column: str
    subtype: str = IDENTITY
    description: str | None = None
    label: str | None = None  # the description in a word or two


def warehouse_column_inputs(table: WarehouseTable) -> dict[str, tuple[ColumnInput, ...]]:
    """warehouse column -> the source columns it is computed from, for every column the pipeline
    writes (a fact's serial key is the warehouse's own: it has no input and is not listed)."""
    if table.kind == "calendar":
        dates = tuple(
            ColumnInput(source, column, TRANSFORMATION, CALENDAR_HOW[1], CALENDAR_HOW[0])
            for source, columns in calendar_inputs().items()
            for column in columns
        )
        return {c.name: dates for c in table.columns}
    found = {}
    for c in table.columns:
        if c.serial:
            continue
        source, column = table.input_of(c)
        how = _HOW.get(type(table.derivation(c)))
        found[c.name] = (ColumnInput(source, column, TRANSFORMATION, how[1], how[0]) if how else ColumnInput(source, column),)
    return found
