"""The one place that declares every table: the totesys source and the warehouse star schema.

Everything else reads this module: the DDL of both databases (include.ddl), the data contract
that ingest checks against the live source, the arrow schemas of the lake, the transform and
load of each warehouse table, and the shape of the DAG (which ingests feed which transforms,
which dimensions a fact references). The declarations follow ../shared/spec/totesys.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    on_delete: Literal["RESTRICT", "SET NULL", "CASCADE", "NO ACTION"] = "RESTRICT"
    on_update: Literal["RESTRICT", "SET NULL", "CASCADE", "NO ACTION"] = "CASCADE"


@dataclass(frozen=True)
class Column:
    """A column as the database declares it.

    ``sql_type`` is the type exactly as written in DDL (``integer``, ``text``, ``varchar(3)``,
    ``numeric(10,2)``, ``timestamp(3)``, ``boolean``, ``date``, ``time``, ``varchar``, or a quoted
    enum type name). ``serial`` marks an integer key fed by its own sequence.
    """

    name: str
    sql_type: str
    nullable: bool = False
    serial: bool = False
    references: ForeignKey | None = None
    unique: bool = False


def _pk(name: str) -> Column:
    return Column(name, "integer", serial=True)


def _fk(name: str, table: str, *, nullable: bool = False, on_delete: str = "RESTRICT", unique: bool = False) -> Column:
    """An integer foreign key to ``table``'s ``<table>_id`` (ON UPDATE CASCADE, as in totesys)."""
    ref = ForeignKey(table, f"{table}_id", on_delete=on_delete)  # type: ignore[arg-type]
    return Column(name, "integer", nullable=nullable, references=ref, unique=unique)


CREATED_AT = Column("created_at", "timestamp(3)")  # NOT NULL DEFAULT CURRENT_TIMESTAMP in the source
LAST_UPDATED = Column("last_updated", "timestamp(3)")  # NOT NULL, set by the application


def _text(name: str, *, nullable: bool = False) -> Column:
    return Column(name, "text", nullable=nullable)


# --------------------------------------------------------------------------------------------
# Source: totesys
# --------------------------------------------------------------------------------------------

ENUM_TYPES: dict[str, tuple[str, ...]] = {
    "PaymentTypeName": ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND"),
    "TransactionType": ("SALE", "PURCHASE"),
}


@dataclass(frozen=True)
class SourceTable:
    """A totesys table: its columns in their real order, its key and its change cursor."""

    name: str
    columns: tuple[Column, ...]
    # The application sets last_updated on every insert and update; incremental ingest reads by it.
    cursor_column: str = "last_updated"

    @property
    def primary_key(self) -> str:
        return f"{self.name}_id"

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _source(name: str, *columns: Column) -> SourceTable:
    return SourceTable(name, columns)


def _addr_fk(name: str) -> Column:
    return _fk(name, "address")


# Declared in the order the spec lists the source tables; creation order (for foreign keys) is
# resolved by include.ddl, not by this order.
SOURCE_TABLES: tuple[SourceTable, ...] = (
    _source(
        "counterparty",
        _pk("counterparty_id"),
        _text("counterparty_legal_name"),
        _addr_fk("legal_address_id"),
        _text("commercial_contact", nullable=True),
        _text("delivery_contact", nullable=True),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "currency",
        _pk("currency_id"),
        Column("currency_code", "varchar(3)"),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "department",
        _pk("department_id"),
        _text("department_name"),
        _text("location", nullable=True),
        _text("manager", nullable=True),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "design",
        _pk("design_id"),
        CREATED_AT,
        _text("design_name"),
        _text("file_location"),
        _text("file_name"),
        LAST_UPDATED,
    ),
    _source(
        "staff",
        _pk("staff_id"),
        _text("first_name"),
        _text("last_name"),
        _fk("department_id", "department"),
        _text("email_address"),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "sales_order",
        _pk("sales_order_id"),
        CREATED_AT,
        LAST_UPDATED,
        _fk("design_id", "design"),
        _fk("staff_id", "staff"),
        _fk("counterparty_id", "counterparty"),
        Column("units_sold", "integer"),
        Column("unit_price", "numeric(10,2)"),
        _fk("currency_id", "currency"),
        _text("agreed_delivery_date"),
        _text("agreed_payment_date"),
        _addr_fk("agreed_delivery_location_id"),
    ),
    _source(
        "address",
        _pk("address_id"),
        _text("address_line_1"),
        _text("address_line_2", nullable=True),
        _text("district", nullable=True),
        _text("city"),
        _text("postal_code"),
        _text("country"),
        _text("phone"),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "payment",
        _pk("payment_id"),
        CREATED_AT,
        LAST_UPDATED,
        _fk("transaction_id", "transaction", unique=True),
        _fk("counterparty_id", "counterparty"),
        Column("payment_amount", "numeric(10,2)"),
        _fk("currency_id", "currency"),
        _fk("payment_type_id", "payment_type"),
        Column("paid", "boolean"),
        _text("payment_date"),
        Column("company_ac_number", "integer"),
        Column("counterparty_ac_number", "integer"),
    ),
    _source(
        "purchase_order",
        _pk("purchase_order_id"),
        CREATED_AT,
        LAST_UPDATED,
        _fk("staff_id", "staff"),
        _fk("counterparty_id", "counterparty"),
        _text("item_code"),
        Column("item_quantity", "integer"),
        Column("item_unit_price", "numeric(10,2)"),
        _fk("currency_id", "currency"),
        _text("agreed_delivery_date"),
        _text("agreed_payment_date"),
        _addr_fk("agreed_delivery_location_id"),
    ),
    _source(
        "payment_type",
        _pk("payment_type_id"),
        Column("payment_type_name", '"PaymentTypeName"'),
        CREATED_AT,
        LAST_UPDATED,
    ),
    _source(
        "transaction",
        _pk("transaction_id"),
        Column("transaction_type", '"TransactionType"'),
        _fk("sales_order_id", "sales_order", nullable=True, on_delete="SET NULL", unique=True),
        _fk("purchase_order_id", "purchase_order", nullable=True, on_delete="SET NULL", unique=True),
        CREATED_AT,
        LAST_UPDATED,
    ),
)

SOURCE: dict[str, SourceTable] = {t.name: t for t in SOURCE_TABLES}


# --------------------------------------------------------------------------------------------
# Warehouse: three overlapping star schemas
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinSpec:
    """A dimension built from a source table joined to another one by a foreign key.

    A change on either side must reach the dimension: when a ``right`` row changes, every
    ``left`` row pointing at it is rebuilt.
    """

    left: str  # the table whose key is the dimension key (counterparty, staff)
    right: str  # the table joined in (address, department)
    left_column: str  # the foreign key on the left (legal_address_id, department_id)


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    kind: Literal["dimension", "fact"]
    columns: tuple[Column, ...]
    # Source tables whose ingested rows the transform reads.
    sources: tuple[str, ...]
    # For facts: the natural id of the source row; (natural id, last_updated_date,
    # last_updated_time) identifies one version and is UNIQUE.
    natural_id: str | None = None
    join: JoinSpec | None = None
    # Extra DDL names a view over the table (the spec's compatibility view).
    compatibility_view: str | None = None
    # Where each column comes from, when it is not the source column of the same name:
    #   "col"              a column of the (left) source table
    #   "table.col"        a column of the joined (right) table
    #   "date(col)"        the date of a timestamp; "time(col)" its time of day
    #   "text_date(col)"   a YYYY-MM-DD text column as a date
    #   "iso4217_name(col)"  the ISO 4217 English name of a currency code
    # include.transform evaluates these; dim_date is computed from the facts' dates instead.
    derive: Mapping[str, str] = field(default_factory=dict)

    @property
    def primary_key(self) -> str:
        return self.columns[0].name

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def load_columns(self) -> tuple[str, ...]:
        """Columns the pipeline writes: all but a fact's serial surrogate key."""
        return tuple(c.name for c in self.columns if not c.serial)

    def source_of(self, column: str) -> str:
        return self.derive.get(column, column)

    @property
    def version_key(self) -> tuple[str, ...]:
        if self.kind != "fact":
            return (self.primary_key,)
        return (self.natural_id, "last_updated_date", "last_updated_time")

    @cached_property
    def references(self) -> tuple[str, ...]:
        """Warehouse tables this one has foreign keys to, in column order, without repeats."""
        seen: list[str] = []
        for c in self.columns:
            if c.references and c.references.table not in seen and c.references.table != self.name:
                seen.append(c.references.table)
        return tuple(seen)


def _wcol(name: str, sql_type: str = "varchar", *, nullable: bool = False) -> Column:
    return Column(name, sql_type, nullable=nullable)


def _wint(name: str, *, nullable: bool = False) -> Column:
    return Column(name, "integer", nullable=nullable)


def _wref(name: str, table: str, column: str, sql_type: str = "integer") -> Column:
    return Column(name, sql_type, references=ForeignKey(table, column, on_delete="NO ACTION", on_update="NO ACTION"))


def _date_ref(name: str) -> Column:
    return _wref(name, "dim_date", "date_id", "date")


def _dim_pk(name: str, sql_type: str = "integer") -> Column:
    return Column(name, sql_type)


def _fact_pk(name: str) -> Column:
    return Column(name, "integer", serial=True)


# Every fact splits the source's timestamps into date and time.
FACT_TIMESTAMPS = {
    "created_date": "date(created_at)",
    "created_time": "time(created_at)",
    "last_updated_date": "date(last_updated)",
    "last_updated_time": "time(last_updated)",
}

WAREHOUSE_TABLES: tuple[WarehouseTable, ...] = (
    WarehouseTable(
        "dim_date",
        "dimension",
        (
            _dim_pk("date_id", "date"),
            _wint("year"),
            _wint("month"),
            _wint("day"),
            _wint("day_of_week"),
            _wcol("day_name"),
            _wcol("month_name"),
            _wint("quarter"),
        ),
        # Every date any fact refers to: read from the same rows the facts are built from.
        sources=("sales_order", "purchase_order", "payment"),
    ),
    WarehouseTable(
        "dim_staff",
        "dimension",
        (
            _dim_pk("staff_id"),
            _wcol("first_name"),
            _wcol("last_name"),
            _wcol("department_name"),
            _wcol("location", nullable=True),
            _wcol("email_address"),
        ),
        sources=("staff", "department"),
        join=JoinSpec(left="staff", right="department", left_column="department_id"),
        derive={"department_name": "department.department_name", "location": "department.location"},
    ),
    WarehouseTable(
        "dim_location",
        "dimension",
        (
            _dim_pk("location_id"),
            _wcol("address_line_1"),
            _wcol("address_line_2", nullable=True),
            _wcol("district", nullable=True),
            _wcol("city"),
            _wcol("postal_code"),
            _wcol("country"),
            _wcol("phone"),
        ),
        sources=("address",),
        derive={"location_id": "address_id"},
    ),
    WarehouseTable(
        "dim_design",
        "dimension",
        (_dim_pk("design_id"), _wcol("design_name"), _wcol("file_location"), _wcol("file_name")),
        sources=("design",),
    ),
    WarehouseTable(
        "dim_currency",
        "dimension",
        (_dim_pk("currency_id"), _wcol("currency_code"), _wcol("currency_name")),
        sources=("currency",),
        derive={"currency_name": "iso4217_name(currency_code)"},
    ),
    WarehouseTable(
        "dim_counterparty",
        "dimension",
        (
            _dim_pk("counterparty_id"),
            _wcol("counterparty_legal_name"),
            _wcol("counterparty_legal_address_line_1"),
            _wcol("counterparty_legal_address_line_2", nullable=True),
            _wcol("counterparty_legal_district", nullable=True),
            _wcol("counterparty_legal_city"),
            _wcol("counterparty_legal_postal_code"),
            _wcol("counterparty_legal_country"),
            _wcol("counterparty_legal_phone_number"),
        ),
        sources=("counterparty", "address"),
        join=JoinSpec(left="counterparty", right="address", left_column="legal_address_id"),
        derive={
            "counterparty_legal_address_line_1": "address.address_line_1",
            "counterparty_legal_address_line_2": "address.address_line_2",
            "counterparty_legal_district": "address.district",
            "counterparty_legal_city": "address.city",
            "counterparty_legal_postal_code": "address.postal_code",
            "counterparty_legal_country": "address.country",
            "counterparty_legal_phone_number": "address.phone",
        },
    ),
    WarehouseTable(
        "dim_transaction",
        "dimension",
        (
            _dim_pk("transaction_id"),
            _wcol("transaction_type"),
            _wint("sales_order_id", nullable=True),
            _wint("purchase_order_id", nullable=True),
        ),
        sources=("transaction",),
    ),
    WarehouseTable(
        "dim_payment_type",
        "dimension",
        (_dim_pk("payment_type_id"), _wcol("payment_type_name")),
        sources=("payment_type",),
    ),
    WarehouseTable(
        "fact_sales_order",
        "fact",
        (
            _fact_pk("sales_record_id"),
            _wint("sales_order_id"),
            _date_ref("created_date"),
            _wcol("created_time", "time"),
            _date_ref("last_updated_date"),
            _wcol("last_updated_time", "time"),
            _wref("sales_staff_id", "dim_staff", "staff_id"),
            _wref("counterparty_id", "dim_counterparty", "counterparty_id"),
            _wint("units_sold"),
            _wcol("unit_price", "numeric(10,2)"),
            _wref("currency_id", "dim_currency", "currency_id"),
            _wref("design_id", "dim_design", "design_id"),
            _date_ref("agreed_payment_date"),
            _date_ref("agreed_delivery_date"),
            _wref("agreed_delivery_location_id", "dim_location", "location_id"),
        ),
        sources=("sales_order",),
        natural_id="sales_order_id",
        derive={
            **FACT_TIMESTAMPS,
            "sales_staff_id": "staff_id",
            "agreed_payment_date": "text_date(agreed_payment_date)",
            "agreed_delivery_date": "text_date(agreed_delivery_date)",
        },
    ),
    WarehouseTable(
        "fact_purchase_orders",
        "fact",
        (
            _fact_pk("purchase_record_id"),
            _wint("purchase_order_id"),
            _date_ref("created_date"),
            _wcol("created_time", "time"),
            _date_ref("last_updated_date"),
            _wcol("last_updated_time", "time"),
            _wref("staff_id", "dim_staff", "staff_id"),
            _wref("counterparty_id", "dim_counterparty", "counterparty_id"),
            _wcol("item_code"),
            _wint("item_quantity"),
            _wcol("item_unit_price", "numeric(10,2)"),
            _wref("currency_id", "dim_currency", "currency_id"),
            _date_ref("agreed_delivery_date"),
            _date_ref("agreed_payment_date"),
            _wref("agreed_delivery_location_id", "dim_location", "location_id"),
        ),
        sources=("purchase_order",),
        natural_id="purchase_order_id",
        compatibility_view="fact_purchase_order",
        derive={
            **FACT_TIMESTAMPS,
            "agreed_delivery_date": "text_date(agreed_delivery_date)",
            "agreed_payment_date": "text_date(agreed_payment_date)",
        },
    ),
    WarehouseTable(
        "fact_payment",
        "fact",
        (
            _fact_pk("payment_record_id"),
            _wint("payment_id"),
            _date_ref("created_date"),
            _wcol("created_time", "time"),
            _date_ref("last_updated_date"),
            _wcol("last_updated_time", "time"),
            _wref("transaction_id", "dim_transaction", "transaction_id"),
            _wref("counterparty_id", "dim_counterparty", "counterparty_id"),
            _wcol("payment_amount", "numeric(10,2)"),
            _wref("currency_id", "dim_currency", "currency_id"),
            _wref("payment_type_id", "dim_payment_type", "payment_type_id"),
            _wcol("paid", "boolean"),
            _date_ref("payment_date"),
        ),
        sources=("payment",),
        natural_id="payment_id",
        derive={**FACT_TIMESTAMPS, "payment_date": "text_date(payment_date)"},
    ),
)

WAREHOUSE: dict[str, WarehouseTable] = {t.name: t for t in WAREHOUSE_TABLES}
DIMENSIONS: tuple[WarehouseTable, ...] = tuple(t for t in WAREHOUSE_TABLES if t.kind == "dimension")
FACTS: tuple[WarehouseTable, ...] = tuple(t for t in WAREHOUSE_TABLES if t.kind == "fact")


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
    include.ddl substitutes the schema-qualified, quoted identifier."""

    name: str
    reads: tuple[str, ...]
    query: str


# fx_rate (the totes_fx DAG, docs/fx_rates.md): for each dim_date day, how many units of each
# warehouse currency one pound sterling buys, exactly as the rates API quotes it with base GBP
# (ECB reference rates). GBP itself is 1. ``rate_date`` is the rate's own date: on a weekend or
# an ECB holiday the API answers with the previous business day's rates. ``source`` is the API's
# base URL. An amount in a currency is amount / units_per_gbp pounds.
FX_BASE_CURRENCY = "GBP"

FX_RATE = ExtensionTable(
    "fx_rate",
    (
        _date_ref("date_id"),
        _wref("currency_id", "dim_currency", "currency_id"),
        _wcol("units_per_gbp", "numeric(18,8)"),
        _wcol("rate_date", "date"),
        _wcol("source"),
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

EXTENSION_TABLES: tuple[ExtensionTable, ...] = (FX_RATE,)
EXTENSION_VIEWS: tuple[ExtensionView, ...] = (SALES_IN_GBP,)


IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_registry(
    source_tables: tuple[SourceTable, ...] = SOURCE_TABLES, warehouse_tables: tuple[WarehouseTable, ...] = WAREHOUSE_TABLES
) -> None:
    """Fail fast on a declaration that contradicts itself or names something that is not a plain
    SQL identifier (run at import, and by the tests). SQL is only ever built from these names."""
    for t in (*source_tables, *warehouse_tables):
        for name in (t.name, *(c.name for c in t.columns)):
            if not IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
    for t in warehouse_tables:
        for s in t.sources:
            if s not in SOURCE:
                raise ValueError(f"{t.name} reads unknown source table {s}")
        for ref in t.references:
            if ref not in WAREHOUSE:
                raise ValueError(f"{t.name} references unknown table {ref}")
        if t.join and {t.join.left, t.join.right} != set(t.sources):
            raise ValueError(f"{t.name}: join sides must be its sources")
        if t.name != "dim_date":
            for c in t.columns:
                if c.serial:
                    continue
                ref = t.source_of(c.name)
                inner = ref[ref.index("(") + 1 : -1] if "(" in ref else ref
                table, _, col = inner.rpartition(".")
                table = table or t.sources[0]
                if table not in t.sources or col not in SOURCE[table].column_names:
                    raise ValueError(f"{t.name}.{c.name} derives from unknown {ref!r}")
    for s in source_tables:
        for c in s.columns:
            if c.references and c.references.table not in SOURCE:
                raise ValueError(f"{s.name}.{c.name} references unknown table")


def check_extensions(
    tables: tuple[ExtensionTable, ...] = EXTENSION_TABLES, views: tuple[ExtensionView, ...] = EXTENSION_VIEWS
) -> None:
    """The same checks for the extension objects: plain identifiers, no clash with the star
    schema, keys that exist, references to known tables, views that name exactly what they read."""
    import string

    known = {t.name for t in WAREHOUSE_TABLES} | {t.name for t in tables}
    names = [t.name for t in WAREHOUSE_TABLES] + [t.compatibility_view for t in FACTS if t.compatibility_view]
    names += [t.name for t in tables] + [v.name for v in views]
    if len(names) != len(set(names)):
        raise ValueError("an extension object has the name of another warehouse object")
    for t in tables:
        for name in (t.name, *t.column_names):
            if not IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
        if not t.primary_key or not set(t.primary_key) <= set(t.column_names):
            raise ValueError(f"{t.name}: primary key {t.primary_key} is not among its columns")
        for c in t.columns:
            if c.references and c.references.table not in known:
                raise ValueError(f"{t.name}.{c.name} references unknown table {c.references.table}")
    for v in views:
        if not IDENTIFIER.match(v.name):
            raise ValueError(f"{v.name!r} is not a plain lower-case SQL identifier")
        placeholders = {field for _, field, _, _ in string.Formatter().parse(v.query) if field is not None}
        if placeholders != set(v.reads) or not set(v.reads) <= known:
            raise ValueError(f"{v.name} must name exactly the known tables it reads as {{table}}")


check_registry()
check_extensions()
