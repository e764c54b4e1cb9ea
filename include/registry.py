"""The one place that declares every table: the totesys source and the warehouse star schema.

Everything else reads this module: the warehouse DDL (include.ddl), the data contract that ingest
checks against the live source, the Arrow schemas of the lake, the transform and load of each
warehouse table, the checks, and the shape of the DAG (which ingests feed which transforms, which
dimensions a fact references). The declarations follow ../shared/spec/totesys.md.

Declarations are typed values: a column's SQL type is a ``SqlType`` (its DDL and how
information_schema describes it; include.pgarrow maps it to Arrow), and where a warehouse column comes from is a
``Derivation`` such as ``DateOf("created_at")`` or ``Joined("address", "city")``, evaluated by
include.transform. A warehouse table's whole path is its declaration: its kind, the source table
its rows come from (and the one joined in), and each column with its derivation.

What only the development tools need (the totesys DDL: serial keys, unique indexes, the source's
foreign keys, enum labels) lives in devtools/totesys/schema.py.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

# --------------------------------------------------------------------------------------------
# SQL types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlType:
    """A PostgreSQL column type: ``base`` with its ``args`` (``numeric`` (10, 2)), or an enum type."""

    base: Literal["integer", "serial", "text", "varchar", "numeric", "timestamp", "boolean", "date", "time", "enum"]
    args: tuple[int, ...] = ()
    enum: str | None = None  # the enum type's name (a quoted identifier in SQL)

    @property
    def ddl(self) -> str:
        """The type as DDL writes it (an enum: its quoted name)."""
        if self.enum:
            return f'"{self.enum}"'
        return self.base + (f"({','.join(map(str, self.args))})" if self.args else "")

    def information_schema(self) -> dict[str, object]:
        """How information_schema.columns describes a column of this type (the data contract)."""
        if self.enum:
            return {"data_type": "USER-DEFINED", "udt_name": self.enum}
        if self.base == "varchar":
            return {"data_type": "character varying", "char_length": self.args[0] if self.args else None}
        if self.base == "numeric":
            return {"data_type": "numeric", "numeric_precision": self.args[0], "numeric_scale": self.args[1]}
        if self.base == "timestamp":
            return {"data_type": "timestamp without time zone", "datetime_precision": self.args[0]}
        if self.base == "time":
            return {"data_type": "time without time zone"}
        return {"data_type": "integer" if self.base == "serial" else self.base}


INTEGER = SqlType("integer")
SERIAL = SqlType("serial")  # an integer key fed by its own sequence
TEXT = SqlType("text")
VARCHAR = SqlType("varchar")
BOOLEAN = SqlType("boolean")
DATE = SqlType("date")
TIME = SqlType("time")
TIMESTAMP_MS = SqlType("timestamp", (3,))


def varchar(length: int) -> SqlType:
    return SqlType("varchar", (length,))


def numeric(precision: int, scale: int) -> SqlType:
    return SqlType("numeric", (precision, scale))


def enum(name: str) -> SqlType:
    return SqlType("enum", enum=name)


# --------------------------------------------------------------------------------------------
# Where a warehouse column comes from
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Derivation:
    """A warehouse column computed from one source column: ``column`` of ``table`` (None: the
    warehouse table's own source). The subclass says how; include.transform evaluates it."""

    column: str
    table: str | None = None


class Col(Derivation):
    """The source column as it is (under the warehouse column's name)."""


class DateOf(Derivation):
    """The date of a timestamp."""


class TimeOf(Derivation):
    """The time of day of a timestamp."""


class TextDate(Derivation):
    """A ``YYYY-MM-DD`` text column as a date (anything else is quarantined)."""


class CurrencyName(Derivation):
    """The ISO 4217 English name of a currency code (an unknown code is quarantined)."""


def Joined(table: str, column: str) -> Col:
    """A column of the table joined in (``Joined("address", "city")``)."""
    return Col(column, table)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column as the database declares it; for the warehouse also where it comes from
    (``derive``, default: the source column of the same name) and the warehouse table whose
    primary key it holds (``references``)."""

    name: str
    type: SqlType
    nullable: bool = False
    references: str | None = None
    derive: Derivation | None = None

    @property
    def serial(self) -> bool:
        return self.type == SERIAL


@dataclass(frozen=True)
class SourceTable:
    """A totesys table: its columns in their real order. Its key is ``<table>_id``; the
    application sets ``last_updated`` on every insert and update, and incremental ingest reads by it."""

    name: str
    columns: tuple[Column, ...]
    cursor_column: str = "last_updated"

    @property
    def primary_key(self) -> str:
        return f"{self.name}_id"

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class Join:
    """The source table joined into a dimension, through the foreign key ``on`` of the
    dimension's own source. A change to a joined row must reach every row built on it."""

    table: str
    on: str


Kind = Literal["calendar", "dimension", "fact"]


@dataclass(frozen=True)
class WarehouseTable:
    """A warehouse table and how it is built.

    * ``dimension``: one row per row of ``source`` (with ``join`` joined in), upserted, never to
      an older version;
    * ``fact``: one row per version of a ``source`` row, (natural id, last_updated_date,
      last_updated_time) UNIQUE, appended;
    * ``calendar``: dim_date, one row per date that any fact refers to (what it reads is
      computed from the facts' date columns), inserted once.
    """

    name: str
    kind: Kind
    columns: tuple[Column, ...]
    source: str | None = None
    join: Join | None = None
    # The spec's compatibility name for the table, as a view over it.
    compatibility_view: str | None = None

    @property
    def primary_key(self) -> str:
        return self.columns[0].name

    @property
    def is_fact(self) -> bool:
        return self.kind == "fact"

    @property
    def versioned(self) -> bool:
        """Dimensions carry the source versions each row was built from (a calendar row never changes)."""
        return self.kind == "dimension"

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def load_columns(self) -> tuple[str, ...]:
        """Columns the pipeline writes: all but a fact's serial surrogate key."""
        return tuple(c.name for c in self.columns if not c.serial)

    def derivation(self, column: Column) -> Derivation:
        return column.derive or Col(column.name)

    def input_of(self, column: Column) -> tuple[str, str]:
        """(source table, source column) a warehouse column is computed from."""
        d = self.derivation(column)
        return (d.table or self.source, d.column)

    @cached_property
    def sources(self) -> tuple[str, ...]:
        """Source tables whose ingested rows the transform reads."""
        if self.kind == "calendar":
            return tuple(calendar_inputs())
        return (self.source, self.join.table) if self.join else (self.source,)

    @property
    def natural_id(self) -> str:
        """A fact's id of its source row (the source's primary key, under the same name)."""
        return SOURCE[self.source].primary_key

    @property
    def source_key(self) -> str:
        """The source column the table's key comes from (location_id <- address_id)."""
        return self.natural_id if self.is_fact else self.input_of(self.columns[0])[1]

    @property
    def version_key(self) -> tuple[str, ...]:
        if not self.is_fact:
            return (self.primary_key,)
        return (self.natural_id, *FACT_VERSION_COLUMNS)

    @cached_property
    def references(self) -> tuple[str, ...]:
        """Warehouse tables this one has foreign keys to, in column order, without repeats."""
        return tuple(dict.fromkeys(c.references for c in self.columns if c.references and c.references != self.name))


# --------------------------------------------------------------------------------------------
# Source: totesys
# --------------------------------------------------------------------------------------------


def _key(name: str) -> Column:
    return Column(name, INTEGER)


def _text(name: str, *, nullable: bool = False) -> Column:
    return Column(name, TEXT, nullable=nullable)


CREATED_AT = Column("created_at", TIMESTAMP_MS)  # NOT NULL DEFAULT CURRENT_TIMESTAMP in the source
LAST_UPDATED = Column("last_updated", TIMESTAMP_MS)  # NOT NULL, set by the application
MONEY = numeric(10, 2)

# In the order the spec lists them; foreign keys of the source are devtools' business.
SOURCE_TABLES: tuple[SourceTable, ...] = (
    SourceTable("counterparty", (
        _key("counterparty_id"), _text("counterparty_legal_name"), _key("legal_address_id"),
        _text("commercial_contact", nullable=True), _text("delivery_contact", nullable=True), CREATED_AT, LAST_UPDATED,
    )),
    SourceTable("currency", (_key("currency_id"), Column("currency_code", varchar(3)), CREATED_AT, LAST_UPDATED)),
    SourceTable("department", (
        _key("department_id"), _text("department_name"), _text("location", nullable=True), _text("manager", nullable=True),
        CREATED_AT, LAST_UPDATED,
    )),
    SourceTable("design", (
        _key("design_id"), CREATED_AT, _text("design_name"), _text("file_location"), _text("file_name"), LAST_UPDATED,
    )),
    SourceTable("staff", (
        _key("staff_id"), _text("first_name"), _text("last_name"), _key("department_id"), _text("email_address"),
        CREATED_AT, LAST_UPDATED,
    )),
    SourceTable("sales_order", (
        _key("sales_order_id"), CREATED_AT, LAST_UPDATED, _key("design_id"), _key("staff_id"), _key("counterparty_id"),
        Column("units_sold", INTEGER), Column("unit_price", MONEY), _key("currency_id"), _text("agreed_delivery_date"),
        _text("agreed_payment_date"), _key("agreed_delivery_location_id"),
    )),
    SourceTable("address", (
        _key("address_id"), _text("address_line_1"), _text("address_line_2", nullable=True), _text("district", nullable=True),
        _text("city"), _text("postal_code"), _text("country"), _text("phone"), CREATED_AT, LAST_UPDATED,
    )),
    SourceTable("payment", (
        _key("payment_id"), CREATED_AT, LAST_UPDATED, _key("transaction_id"), _key("counterparty_id"),
        Column("payment_amount", MONEY), _key("currency_id"), _key("payment_type_id"), Column("paid", BOOLEAN),
        _text("payment_date"), Column("company_ac_number", INTEGER), Column("counterparty_ac_number", INTEGER),
    )),
    SourceTable("purchase_order", (
        _key("purchase_order_id"), CREATED_AT, LAST_UPDATED, _key("staff_id"), _key("counterparty_id"), _text("item_code"),
        Column("item_quantity", INTEGER), Column("item_unit_price", MONEY), _key("currency_id"),
        _text("agreed_delivery_date"), _text("agreed_payment_date"), _key("agreed_delivery_location_id"),
    )),
    SourceTable("payment_type", (
        _key("payment_type_id"), Column("payment_type_name", enum("PaymentTypeName")), CREATED_AT, LAST_UPDATED,
    )),
    SourceTable("transaction", (
        _key("transaction_id"), Column("transaction_type", enum("TransactionType")),
        Column("sales_order_id", INTEGER, nullable=True), Column("purchase_order_id", INTEGER, nullable=True),
        CREATED_AT, LAST_UPDATED,
    )),
)  # fmt: skip

SOURCE: dict[str, SourceTable] = {t.name: t for t in SOURCE_TABLES}


# --------------------------------------------------------------------------------------------
# Warehouse: three overlapping star schemas
# --------------------------------------------------------------------------------------------


def _v(name: str, *, nullable: bool = False, derive: Derivation | None = None) -> Column:
    return Column(name, VARCHAR, nullable=nullable, derive=derive)


def _int(name: str, *, nullable: bool = False, references: str | None = None, derive: Derivation | None = None) -> Column:
    return Column(name, INTEGER, nullable=nullable, references=references, derive=derive)


def _date(name: str, derive: Derivation) -> Column:
    return Column(name, DATE, references="dim_date", derive=derive)


# Every fact splits the source's two timestamps into a date (a dim_date key) and a time; the
# last two name a row's version, with the natural id.
FACT_TIMESTAMPS: tuple[Column, ...] = (
    _date("created_date", DateOf("created_at")),
    Column("created_time", TIME, derive=TimeOf("created_at")),
    _date("last_updated_date", DateOf("last_updated")),
    Column("last_updated_time", TIME, derive=TimeOf("last_updated")),
)
FACT_VERSION_COLUMNS = ("last_updated_date", "last_updated_time")

WAREHOUSE_TABLES: tuple[WarehouseTable, ...] = (
    WarehouseTable("dim_date", "calendar", (
        Column("date_id", DATE), _int("year"), _int("month"), _int("day"), _int("day_of_week"), _v("day_name"),
        _v("month_name"), _int("quarter"),
    )),
    WarehouseTable("dim_staff", "dimension", (
        _int("staff_id"), _v("first_name"), _v("last_name"),
        _v("department_name", derive=Joined("department", "department_name")),
        _v("location", nullable=True, derive=Joined("department", "location")), _v("email_address"),
    ), source="staff", join=Join("department", on="department_id")),
    WarehouseTable("dim_location", "dimension", (
        _int("location_id", derive=Col("address_id")), _v("address_line_1"), _v("address_line_2", nullable=True),
        _v("district", nullable=True), _v("city"), _v("postal_code"), _v("country"), _v("phone"),
    ), source="address"),
    WarehouseTable("dim_design", "dimension", (
        _int("design_id"), _v("design_name"), _v("file_location"), _v("file_name"),
    ), source="design"),
    WarehouseTable("dim_currency", "dimension", (
        _int("currency_id"), _v("currency_code"), _v("currency_name", derive=CurrencyName("currency_code")),
    ), source="currency"),
    WarehouseTable("dim_counterparty", "dimension", (
        _int("counterparty_id"), _v("counterparty_legal_name"),
        _v("counterparty_legal_address_line_1", derive=Joined("address", "address_line_1")),
        _v("counterparty_legal_address_line_2", nullable=True, derive=Joined("address", "address_line_2")),
        _v("counterparty_legal_district", nullable=True, derive=Joined("address", "district")),
        _v("counterparty_legal_city", derive=Joined("address", "city")),
        _v("counterparty_legal_postal_code", derive=Joined("address", "postal_code")),
        _v("counterparty_legal_country", derive=Joined("address", "country")),
        _v("counterparty_legal_phone_number", derive=Joined("address", "phone")),
    ), source="counterparty", join=Join("address", on="legal_address_id")),
    WarehouseTable("dim_transaction", "dimension", (
        _int("transaction_id"), _v("transaction_type"), _int("sales_order_id", nullable=True),
        _int("purchase_order_id", nullable=True),
    ), source="transaction"),
    WarehouseTable("dim_payment_type", "dimension", (
        _int("payment_type_id"), _v("payment_type_name"),
    ), source="payment_type"),
    WarehouseTable("fact_sales_order", "fact", (
        Column("sales_record_id", SERIAL), _int("sales_order_id"), *FACT_TIMESTAMPS,
        _int("sales_staff_id", references="dim_staff", derive=Col("staff_id")),
        _int("counterparty_id", references="dim_counterparty"), _int("units_sold"), Column("unit_price", MONEY),
        _int("currency_id", references="dim_currency"), _int("design_id", references="dim_design"),
        _date("agreed_payment_date", TextDate("agreed_payment_date")),
        _date("agreed_delivery_date", TextDate("agreed_delivery_date")),
        _int("agreed_delivery_location_id", references="dim_location"),
    ), source="sales_order"),
    WarehouseTable("fact_purchase_orders", "fact", (
        Column("purchase_record_id", SERIAL), _int("purchase_order_id"), *FACT_TIMESTAMPS,
        _int("staff_id", references="dim_staff"), _int("counterparty_id", references="dim_counterparty"),
        _v("item_code"), _int("item_quantity"), Column("item_unit_price", MONEY),
        _int("currency_id", references="dim_currency"),
        _date("agreed_delivery_date", TextDate("agreed_delivery_date")),
        _date("agreed_payment_date", TextDate("agreed_payment_date")),
        _int("agreed_delivery_location_id", references="dim_location"),
    ), source="purchase_order", compatibility_view="fact_purchase_order"),
    WarehouseTable("fact_payment", "fact", (
        Column("payment_record_id", SERIAL), _int("payment_id"), *FACT_TIMESTAMPS,
        _int("transaction_id", references="dim_transaction"), _int("counterparty_id", references="dim_counterparty"),
        Column("payment_amount", MONEY), _int("currency_id", references="dim_currency"),
        _int("payment_type_id", references="dim_payment_type"), Column("paid", BOOLEAN),
        _date("payment_date", TextDate("payment_date")),
    ), source="payment"),
)  # fmt: skip

WAREHOUSE: dict[str, WarehouseTable] = {t.name: t for t in WAREHOUSE_TABLES}
FACTS: tuple[WarehouseTable, ...] = tuple(t for t in WAREHOUSE_TABLES if t.is_fact)
CALENDAR: WarehouseTable = next(t for t in WAREHOUSE_TABLES if t.kind == "calendar")


def calendar_inputs(tables: tuple[WarehouseTable, ...] = WAREHOUSE_TABLES) -> dict[str, tuple[str, ...]]:
    """What the calendar reads: for each fact's source, the source columns of its date keys
    (timestamps and YYYY-MM-DD text), so that dim_date holds every date a fact refers to."""
    calendars = {t.name for t in tables if t.kind == "calendar"}
    found: dict[str, dict[str, None]] = {}
    for t in tables:
        for c in t.columns:
            if c.references in calendars:
                source, column = t.input_of(c)
                found.setdefault(source, {})[column] = None
    return {source: tuple(columns) for source, columns in found.items()}


def waits_for(table: WarehouseTable) -> frozenset[str]:
    """The source tables whose failure (schema drift, a failing ingest) holds ``table`` back:
    those it reads, and those of every dimension its rows reference, since a fact row waits in
    the quarantine for its dimension row. Not the calendar's sources: the calendar is built from
    whichever of its ingests ran, and the dates of a fact's rows come with its own source."""
    if table.kind == "calendar":
        return frozenset(table.sources)
    found = set(table.sources)
    for name in table.references:
        if WAREHOUSE[name].kind != "calendar":
            found |= waits_for(WAREHOUSE[name])
    return frozenset(found)


# --------------------------------------------------------------------------------------------
# Extensions: warehouse objects beside the star schema, loaded by DAGs of their own
# --------------------------------------------------------------------------------------------
# Deliberately NOT part of WAREHOUSE_TABLES: totes_etl builds one transform and one load task per
# entry there, and these objects do not come from totesys. include.ddl creates them with the rest
# of the warehouse (ensure_warehouse_schema), after the tables they reference.


@dataclass(frozen=True)
class ExtensionTable:
    """A warehouse table filled by a DAG other than totes_etl (``loaded_by``)."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    loaded_by: str

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class ExtensionView:
    """A view over warehouse tables. ``query`` names every table it reads as ``{table}``;
    include.ddl substitutes the schema-qualified, quoted identifier.

    With a ``unique_key`` it is a materialized view: its rows are kept until the DAG that the
    Assets of what it reads schedule (totes_reports) refreshes it; the key's unique index lets
    ``REFRESH ... CONCURRENTLY`` leave it readable meanwhile."""

    name: str
    reads: tuple[str, ...]
    query: str
    unique_key: tuple[str, ...] = ()

    @property
    def materialized(self) -> bool:
        return bool(self.unique_key)


# fx_rate (the totes_fx DAG, docs/fx_rates.md): for each dim_date day, how many units of each
# warehouse currency one pound sterling buys, exactly as the rates API quotes it with base GBP
# (ECB reference rates). GBP itself is 1. ``rate_date`` is the rate's own date: on a weekend or
# an ECB holiday the API answers with the previous business day's rates. ``source`` is the API's
# base URL. An amount in a currency is amount / units_per_gbp pounds.
FX_BASE_CURRENCY = "GBP"

FX_RATE = ExtensionTable(
    "fx_rate",
    (
        Column("date_id", DATE, references="dim_date"),
        _int("currency_id", references="dim_currency"),
        Column("units_per_gbp", numeric(18, 8)),
        Column("rate_date", DATE),
        _v("source"),
    ),
    primary_key=("date_id", "currency_id"),
    loaded_by="totes_fx",
)

# sales_in_gbp: every sales order once, at its latest version (the fact keeps one row per
# version), with its amount in its own currency and in GBP at the rate of the day the order was
# agreed (created_date). amount_gbp is NULL while that day has no rate in fx_rate (backfill
# totes_fx for the day: docs/fx_rates.md).
SALES_IN_GBP = ExtensionView(
    "sales_in_gbp",
    reads=("fact_sales_order", "dim_currency", "fx_rate"),
    query=(
        "SELECT s.sales_record_id, s.sales_order_id, s.created_date, c.currency_code, s.units_sold, s.unit_price, "
        "s.units_sold * s.unit_price AS amount, r.units_per_gbp, r.rate_date, "
        "round(s.units_sold * s.unit_price / r.units_per_gbp, 2) AS amount_gbp "
        "FROM (SELECT DISTINCT ON (sales_order_id) * FROM {fact_sales_order} "
        "ORDER BY sales_order_id, last_updated_date DESC, last_updated_time DESC) s "
        "JOIN {dim_currency} c ON c.currency_id = s.currency_id "
        "LEFT JOIN {fx_rate} r ON r.date_id = s.created_date AND r.currency_id = s.currency_id"
    ),
)

# sales_by_month_gbp: the finance team's monthly figures per currency, and in GBP where every
# order of the month has its day's rate (``orders_without_rate`` says how many lack one).
# Materialized: refreshed by totes_reports whenever fact_sales_order or fx_rate changes.
SALES_BY_MONTH_GBP = ExtensionView(
    "sales_by_month_gbp",
    reads=("sales_in_gbp",),
    query=(
        "SELECT date_trunc('month', created_date)::date AS month, currency_code, count(*) AS orders, "
        "sum(units_sold) AS units_sold, sum(amount) AS amount, sum(amount_gbp) AS amount_gbp, "
        "count(*) FILTER (WHERE amount_gbp IS NULL) AS orders_without_rate "
        "FROM {sales_in_gbp} GROUP BY 1, 2"
    ),
    unique_key=("month", "currency_code"),
)


def tables_under(view: ExtensionView) -> tuple[str, ...]:
    """The tables a view reads, through the views it reads: what its freshness depends on."""
    views = {v.name: v for v in EXTENSION_VIEWS}
    found: list[str] = []
    for name in view.reads:
        found += tables_under(views[name]) if name in views else [name]
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------------------------
# File feeds: JSON documents a partner drops into a bucket of its own (include.files)
# --------------------------------------------------------------------------------------------
# A feed is a declaration: where its files land, what one document holds, which records it
# identifies and how a later document supersedes an earlier one. dags/totes_files.py makes one
# DAG per feed and include.files reads the declaration; a second feed adds an entry to
# FILE_FEEDS (and its warehouse table to EXTENSION_TABLES), no code.


@dataclass(frozen=True)
class JsonField:
    """A field of a feed's JSON document, as it must appear, and the SQL type it is stored as.

    ``kind`` says what JSON value is accepted (include.files.read_value):
    * ``integer``: a JSON integer (not a boolean, not 1.0), 0 <= value < 2**31;
    * ``decimal``: a JSON number with at most ``type``'s scale of decimals that fits its
      precision, not negative;
    * ``code``: a string of exactly ``type``'s length of capital letters (a currency code);
    * ``month``: ``YYYY-MM`` (stored as the month's first day);
    * ``timestamp``: ISO 8601 with a time zone (stored in UTC, to the millisecond).
    """

    name: str
    kind: Literal["integer", "decimal", "code", "month", "timestamp"]
    type: SqlType


@dataclass(frozen=True)
class Lookup:
    """A record field whose value must name a row of a warehouse table: matched on ``column``
    of ``table``, stored as that table's key ``stored_as``. An unknown value quarantines the file."""

    field: str
    table: str
    column: str
    stored_as: str


@dataclass(frozen=True)
class FileFeed:
    """A feed of JSON documents in a partner's bucket (include.files, README "File feeds").

    Each document covers one ``scope`` (a header field: the sales targets' month) and was
    published at ``published`` (a header timestamp); its ``records`` list holds records of
    ``fields``, unique by ``record_key`` within the document. A document replaces every record
    its scope had: the one with the latest (``published``, the object's LastModified) wins, and
    an older one arriving later changes nothing.

    The bucket and key prefix are Airflow variables (``bucket_variable``, ``prefix_variable``);
    an object larger than ``max_bytes`` is quarantined without being parsed. The feed is swept
    every ``sweep_cron`` (listing the prefix) and, where a queue of the bucket's notifications is
    configured, picked up as files land (dags/totes_files.py)."""

    name: str  # the lake table (<name>/date=/run=/ in the ingestion bucket) and the DAG's suffix
    table: ExtensionTable
    bucket_variable: str
    prefix_variable: str
    scope: JsonField
    scope_column: str  # the warehouse column the scope is stored in
    published: JsonField
    records: str
    fields: tuple[JsonField, ...]
    record_key: tuple[str, ...]
    lookups: tuple[Lookup, ...] = ()
    max_bytes: int = 1 << 20
    sweep_cron: str = "*/15 * * * *"

    @property
    def dag_id(self) -> str:
        return f"totes_feed_{self.name}"

    @property
    def header(self) -> tuple[JsonField, ...]:
        return (self.scope, self.published)

    def stored_name(self, field_name: str) -> str:
        """The warehouse column a record field is stored in (a lookup: the table's key)."""
        return next((lk.stored_as for lk in self.lookups if lk.field == field_name), field_name)


# Provenance every feed's warehouse table carries: which object, at which version, a row came from.
FILE_PROVENANCE: tuple[Column, ...] = (
    Column("published_at", TIMESTAMP_MS),
    _v("source_key"),
    _v("source_etag"),
    _v("source_version", nullable=True),  # the object's VersionId where the bucket keeps versions
)

# sales_target: the sales team's monthly targets per salesperson and currency, from
# s3://<totes_targets_bucket>/sales-targets/YYYY/MM/targets-YYYY-MM.json.
SALES_TARGET = ExtensionTable(
    "sales_target",
    (
        _int("staff_id", references="dim_staff"),
        Column("target_month", DATE),
        _int("currency_id", references="dim_currency"),
        _int("target_units"),
        Column("target_value", numeric(12, 2)),
        *FILE_PROVENANCE,
    ),
    primary_key=("staff_id", "target_month", "currency_id"),
    loaded_by="totes_feed_sales_targets",
)

SALES_TARGETS = FileFeed(
    name="sales_targets",
    table=SALES_TARGET,
    bucket_variable="totes_targets_bucket",
    prefix_variable="totes_targets_prefix",
    scope=JsonField("month", "month", DATE),
    scope_column="target_month",
    published=JsonField("published_at", "timestamp", TIMESTAMP_MS),
    records="targets",
    fields=(
        JsonField("staff_id", "integer", INTEGER),
        JsonField("currency_code", "code", varchar(3)),
        JsonField("target_units", "integer", INTEGER),
        JsonField("target_value", "decimal", numeric(12, 2)),
    ),
    record_key=("staff_id", "currency_code"),
    lookups=(
        Lookup("staff_id", "dim_staff", "staff_id", "staff_id"),
        Lookup("currency_code", "dim_currency", "currency_code", "currency_id"),
    ),
)

FILE_FEEDS: tuple[FileFeed, ...] = (SALES_TARGETS,)

# sales_vs_target: each salesperson's sales per month and currency (every sales order once, at
# its latest version, in the month it was agreed: created_date) beside the month's target; a
# month with a target and no sale shows 0 sold, a sale without a target a NULL target.
SALES_VS_TARGET = ExtensionView(
    "sales_vs_target",
    reads=("fact_sales_order", "sales_target"),
    query=(
        "WITH sold AS ("
        "  SELECT sales_staff_id AS staff_id, date_trunc('month', created_date)::date AS target_month, currency_id,"
        "         sum(units_sold)::bigint AS units_sold, sum(units_sold * unit_price) AS value_sold"
        "  FROM (SELECT DISTINCT ON (sales_order_id) * FROM {fact_sales_order}"
        "        ORDER BY sales_order_id, last_updated_date DESC, last_updated_time DESC) latest"
        "  GROUP BY 1, 2, 3"
        ") SELECT staff_id, target_month, currency_id,"
        " coalesce(s.units_sold, 0) AS units_sold, coalesce(s.value_sold, 0) AS value_sold,"
        " t.target_units, t.target_value,"
        " round(100.0 * coalesce(s.value_sold, 0) / nullif(t.target_value, 0), 1) AS value_pct_of_target"
        " FROM sold s FULL JOIN {sales_target} t USING (staff_id, target_month, currency_id)"
    ),
)

EXTENSION_TABLES: tuple[ExtensionTable, ...] = (FX_RATE, *(f.table for f in FILE_FEEDS))
# In creation order: a view comes after the views it reads.
EXTENSION_VIEWS: tuple[ExtensionView, ...] = (SALES_IN_GBP, SALES_BY_MONTH_GBP, SALES_VS_TARGET)
# The reports totes_reports refreshes.
MATERIALIZED_VIEWS: tuple[ExtensionView, ...] = tuple(v for v in EXTENSION_VIEWS if v.materialized)


# --------------------------------------------------------------------------------------------
# Self-checks (at import, and by the tests)
# --------------------------------------------------------------------------------------------

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _identifiers(*names: str) -> None:
    for name in names:
        if not IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")


def check_registry(
    source_tables: tuple[SourceTable, ...] = SOURCE_TABLES, warehouse_tables: tuple[WarehouseTable, ...] = WAREHOUSE_TABLES
) -> None:
    """Fail fast on a declaration that contradicts itself or names something that is not a plain
    SQL identifier. SQL is only ever built from these names."""
    sources = {t.name: t for t in source_tables}
    tables = {t.name: t for t in warehouse_tables}
    for t in (*source_tables, *warehouse_tables):
        _identifiers(t.name, *(c.name for c in t.columns))
    for s in source_tables:
        if s.primary_key not in s.column_names or s.cursor_column not in s.column_names:
            raise ValueError(f"{s.name} lacks its key {s.primary_key} or its cursor {s.cursor_column}")
    if sum(t.kind == "calendar" for t in warehouse_tables) != 1:
        raise ValueError("the warehouse needs exactly one calendar table")
    for t in warehouse_tables:
        for ref in t.references:
            if ref not in tables:
                raise ValueError(f"{t.name} references unknown table {ref}")
        if t.kind == "calendar":
            if t.source or t.join or any(c.derive for c in t.columns):
                raise ValueError(f"{t.name}: a calendar is computed from the facts' dates, not from a source")
            continue
        if t.source not in sources or (t.join and t.join.table not in sources):
            raise ValueError(f"{t.name} reads an unknown source table")
        if t.join and t.join.on not in sources[t.source].column_names:
            raise ValueError(f"{t.name}: {t.source} has no column {t.join.on} to join on")
        if t.is_fact and (t.natural_id not in t.column_names or not set(FACT_VERSION_COLUMNS) <= set(t.column_names)):
            raise ValueError(f"{t.name}: a fact needs its natural id and {FACT_VERSION_COLUMNS}")
        for c in t.columns:
            if c.serial:
                continue
            d = t.derivation(c)
            table, column = t.input_of(c)
            if d.table not in (None, t.join and t.join.table) or column not in sources[table].column_names:
                raise ValueError(f"{t.name}.{c.name} derives from unknown {d!r}")


def check_extensions(
    tables: tuple[ExtensionTable, ...] = EXTENSION_TABLES, views: tuple[ExtensionView, ...] = EXTENSION_VIEWS
) -> None:
    """The same checks for the extension objects: plain identifiers, no clash with the star
    schema, keys that exist, references to known tables, views that name exactly what they read."""
    known = {t.name for t in WAREHOUSE_TABLES} | {t.name for t in tables}
    names = [t.name for t in WAREHOUSE_TABLES] + [t.compatibility_view for t in FACTS if t.compatibility_view]
    names += [t.name for t in tables] + [v.name for v in views]
    if len(names) != len(set(names)):
        raise ValueError("an extension object has the name of another warehouse object")
    for t in tables:
        _identifiers(t.name, *t.column_names)
        if not t.primary_key or not set(t.primary_key) <= set(t.column_names):
            raise ValueError(f"{t.name}: primary key {t.primary_key} is not among its columns")
        for c in t.columns:
            if c.references and c.references not in known:
                raise ValueError(f"{t.name}.{c.name} references unknown table {c.references}")
    for v in views:
        _identifiers(v.name, *v.unique_key)
        placeholders = {field for _, field, _, _ in string.Formatter().parse(v.query) if field is not None}
        if placeholders != set(v.reads) or not set(v.reads) <= known:
            raise ValueError(f"{v.name} must name exactly the known tables and earlier views it reads as {{table}}")
        known.add(v.name)


def check_feeds(feeds: tuple[FileFeed, ...] = FILE_FEEDS) -> None:
    """A feed's fields are plain identifiers; its record key and lookups name its fields; its
    warehouse table holds the scope, every stored field and the provenance, keyed by the scope
    and the record key (as stored)."""
    names = [f.name for f in feeds]
    if len(names) != len(set(names)):
        raise ValueError("two file feeds share a name")
    for feed in feeds:
        _identifiers(feed.name, feed.records, *(f.name for f in (*feed.header, *feed.fields)))
        field_names = [f.name for f in feed.fields]
        if not feed.record_key or not set(feed.record_key) <= set(field_names):
            raise ValueError(f"{feed.name}: record key {feed.record_key} is not among its fields")
        for lk in feed.lookups:
            if lk.field not in field_names or lk.table not in WAREHOUSE:
                raise ValueError(f"{feed.name}: lookup {lk} names an unknown field or table")
            if lk.column not in WAREHOUSE[lk.table].column_names or lk.stored_as != WAREHOUSE[lk.table].primary_key:
                raise ValueError(f"{feed.name}: lookup {lk} must match a column of {lk.table} and store its key")
        stored = [feed.stored_name(f) for f in field_names]
        table_scope = feed.scope_column
        wanted = [*stored, table_scope, *(c.name for c in FILE_PROVENANCE)]
        if sorted(wanted) != sorted(feed.table.column_names):
            raise ValueError(f"{feed.name}: {feed.table.name} must hold exactly {wanted}")
        key = {table_scope, *(feed.stored_name(k) for k in feed.record_key)}
        if set(feed.table.primary_key) != key:
            raise ValueError(f"{feed.name}: {feed.table.name}'s key must be {sorted(key)}")


check_registry()
check_extensions()
check_feeds()
