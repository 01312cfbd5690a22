"""The building blocks of the canonical schema: logical types, columns, tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ibis.expr.datatypes as dt

from crmlens.errors import ConfigError

LogicalType = Literal["string", "int", "float", "money", "bool", "date", "timestamp"]
#: "data": the company's data; "system": crmlens' bookkeeping; "model": outputs of `crmlens build`.
TableKind = Literal["data", "system", "model"]


# Money is stored as float64 in one currency (CNY by default): sums are exact to the cent for any
# realistic total, and every engine and every model library reads it without Decimal conversions.
_IBIS_TYPES: dict[str, dt.DataType] = {
    "string": dt.string,
    "int": dt.int64,
    "float": dt.float64,
    "money": dt.float64,
    "bool": dt.boolean,
    "date": dt.date,
    "timestamp": dt.timestamp,
}


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, labels in Chinese and English, and what it means."""

    name: str
    type: LogicalType
    label_zh: str
    label_en: str
    description: str
    nullable: bool = True
    #: Personal data (names, phone numbers, e-mails, ID numbers): never shown unmasked in reports (D7).
    pii: bool = False

    @property
    def ibis_type(self) -> dt.DataType:
        """The Ibis data type this column is stored as."""
        return _IBIS_TYPES[self.type].copy(nullable=self.nullable)


@dataclass(frozen=True)
class Table:
    """One canonical table."""

    name: str
    label_zh: str
    label_en: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    #: "data" tables hold the company's data; "system" tables are crmlens' own bookkeeping;
    #: "model" tables hold the customer models' outputs, replaced whole by each `crmlens build`.
    kind: TableKind = "data"
    #: The column that places a row in time (for freshness, date ranges and period filters).
    time_column: str | None = None

    def column(self, name: str) -> Column:
        """The column called ``name``; :class:`ConfigError` naming the table if there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise ConfigError(
            f"table {self.name!r} has no column {name!r}; expected one of: "
            + ", ".join(self.column_names)
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns)

    def ibis_schema(self) -> dict[str, dt.DataType]:
        """Column name → Ibis type, in declaration order (what ``create_table`` takes)."""
        return {col.name: col.ibis_type for col in self.columns}


def column(
    name: str,
    type_: LogicalType,
    label_zh: str,
    label_en: str,
    description: str,
    *,
    required: bool = False,
    pii: bool = False,
) -> Column:
    """Declare a column (``required`` means NOT NULL)."""
    return Column(name, type_, label_zh, label_en, description, nullable=not required, pii=pii)


def declare(
    name: str,
    label_zh: str,
    label_en: str,
    description: str,
    key: tuple[str, ...],
    *columns: Column,
    kind: TableKind = "data",
    time: str | None = None,
) -> Table:
    """Declare a table, checking that its key and time columns exist."""
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ConfigError(f"table {name!r} declares a column twice: {names}")
    missing = [k for k in (*key, *([time] if time else [])) if k not in names]
    if missing:
        raise ConfigError(f"table {name!r}: key or time columns {missing} are not declared")
    return Table(name, label_zh, label_en, description, tuple(columns), key, kind, time)


LOADED_AT = column(
    "loaded_at", "timestamp", "入库时间", "Loaded at", "When this row was last loaded."
)
LOAD_ID = column("load_id", "string", "批次号", "Load ID", "The load that last wrote this row.")
AUDIT = (LOAD_ID, LOADED_AT)
