"""The mapping vocabulary: how the rows of a source become rows of a canonical table.

``crmlens.ingest`` declares its sources with these classes; :mod:`crmlens.warehouse.loading.plan`
turns them into SQL. Expressions (``Derive.expr``, ``Infer.expr``, ``RowRule.when``) are DuckDB SQL
over the canonical column names of the parsed row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa

from crmlens.errors import ConfigError
from crmlens.schema import table

#: How a source value is parsed; the default is the canonical column's type.
Kind = Literal[
    "string", "int", "float", "money", "bool", "date", "timestamp",
    "phone", "email", "anon_id", "period_start", "period_end",
]  # fmt: skip

# what the kinds that are not a schema type produce
_STORED_AS = {"phone": "string", "email": "string", "anon_id": "string",
              "period_start": "date", "period_end": "date"}  # fmt: skip


@dataclass(frozen=True)
class ColumnSpec:
    """A canonical column filled from a source header (or a constant), parsed as ``kind``."""

    target: str
    source: str | None = None
    kind: Kind | None = None
    #: A constant for every row instead of a source column (e.g. ``app = "crm"``).
    value: str | None = None
    #: Reject the row when the value is missing or unparseable; default: the column is NOT NULL.
    required: bool | None = None


@dataclass(frozen=True)
class Derive:
    """A canonical column computed from parsed columns (a DuckDB SQL expression)."""

    target: str
    expr: str


@dataclass(frozen=True)
class Infer:
    """Fill a missing value from other columns; reject the row if that is impossible too."""

    target: str
    expr: str
    rule: str
    reject_if_missing: bool = True


@dataclass(frozen=True)
class RowRule:
    """A row-level check over parsed columns, applied where ``when`` holds: reject the row, clear
    ``column``, or flag it (an outlier: loaded unchanged, recorded in the quarantine log)."""

    rule: str
    column: str
    when: str
    action: Literal["rejected", "cleared", "flagged"] = "rejected"


@dataclass(frozen=True)
class Reference:
    """``column`` must exist as ``table.target_column`` (loaded earlier), else the row is rejected."""

    column: str
    table: str
    target_column: str
    rule: str


@dataclass(frozen=True)
class Unpivot:
    """Wide to long: each non-empty cell of ``columns`` becomes a row with ``name`` and ``value``."""

    columns: tuple[str, ...]
    name: str
    value: str


@dataclass(frozen=True, kw_only=True)
class TableMapping:
    """How the rows of one source become rows of one canonical table."""

    table: str
    columns: tuple[ColumnSpec, ...]
    derive: tuple[Derive, ...] = ()
    infer: tuple[Infer, ...] = ()
    rules: tuple[RowRule, ...] = ()
    references: tuple[Reference, ...] = ()
    #: Among rows with the same key the newest by this column wins (else the last in the file).
    updated_column: str | None = None
    unpivot: Unpivot | None = None

    def __post_init__(self) -> None:
        tbl = table(self.table)
        targets = [c.target for c in self.columns] + [d.target for d in self.derive]
        inferred = [i.target for i in self.infer]
        if set(inferred) - {c.target for c in self.columns} or len(set(inferred)) < len(inferred):
            raise ConfigError(f"{self.table}: infer only mapped columns, once each: {inferred}")
        for name in [
            *targets,
            *(r.column for r in self.rules),
            *(r.column for r in self.references),
        ]:
            tbl.column(name)  # ConfigError naming the table for an unknown column
        if len(set(targets)) != len(targets):
            raise ConfigError(f"{self.table}: a column is mapped twice in {targets}")
        missing = [c.name for c in tbl.columns if not c.nullable and c.name not in targets]
        if missing:
            raise ConfigError(f"{self.table}: required columns {missing} are not mapped")
        if self.updated_column and self.updated_column not in targets:
            raise ConfigError(f"{self.table}: updated_column {self.updated_column} is not mapped")
        for col in self.columns:
            if (col.source is None) == (col.value is None):
                raise ConfigError(f"{self.table}.{col.target}: give a source column or a value")
            stored = _STORED_AS.get(self.kind(col), tbl.column(col.target).type)
            if stored != tbl.column(col.target).type:
                raise ConfigError(f"{self.table}.{col.target}: kind {col.kind} gives a {stored}")
        for rule in self.rules:
            if rule.action == "cleared" and not tbl.column(rule.column).nullable:
                raise ConfigError(
                    f"{self.table}: rule {rule.rule} would clear required {rule.column}"
                )

    def kind(self, col: ColumnSpec) -> Kind:
        """How ``col`` is parsed."""
        return col.kind or table(self.table).column(col.target).type

    def required(self, col: ColumnSpec) -> bool:
        """Whether a missing or bad ``col`` rejects the row."""
        if col.required is not None:
            return col.required
        return not table(self.table).column(col.target).nullable


@dataclass(frozen=True)
class SourceRows:
    """The rows of a source: a UTF-8 CSV file DuckDB reads itself, or an Arrow table in memory."""

    label: str
    headers: tuple[str, ...]
    csv_path: Path | None = None
    delimiter: str = ","
    #: Line of the header row; data starts on the next line.
    header_line: int = 1
    #: All-string columns named like ``headers`` plus ``__line``, the row's line in the source.
    arrow: pa.Table | None = None
    #: Whether a quoted value may hold a line break (the file has a quote character at all);
    #: only then are line breaks inside values counted, to keep the line numbers right.
    may_span_lines: bool = True


@dataclass
class SourceResult:
    """What loading one source did; ``rows_read = rows_loaded + rows_quarantined + rows_merged``."""

    source: str
    table: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_merged: int = 0
    values_cleared: int = 0
    #: Outliers recorded by a flagging rule; their rows load unchanged.
    values_flagged: int = 0
    values_inferred: int = 0
    seconds: float = 0.0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Quarantine records by rule: rejected rows, cleared and inferred values.
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    cleared_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.rows_merged
