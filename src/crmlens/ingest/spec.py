"""Source specs: where a source file is, how to read it, and how it maps onto a canonical table.

A :class:`SourceSpec` is a :class:`~crmlens.warehouse.loading.TableMapping` (the columns, rules,
references and de-duplication that the warehouse executes) plus what the readers need: the file's
path inside the export folder, its format, encoding, delimiter, sheet and header row, or for a
PostgreSQL source the connection string and the table or query.

>>> spec = SourceSpec(path="crm/stores.csv", table="stores",
...                   columns=(ColumnSpec("store_id", "store_id"),))
>>> spec.format, spec.encoding
('csv', 'utf-8')
>>> SourceSpec(path="crm/stores.tsv", format="tsv", table="stores",
...            columns=(ColumnSpec("store_id", "store_id"),)).delimiter == chr(9)
True
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

from crmlens.errors import ConfigError
from crmlens.warehouse.loading import (
    ColumnSpec,
    Derive,
    Infer,
    Reference,
    RowRule,
    TableMapping,
    Unpivot,
)

#: How a source is read: delimited text, an Excel workbook (.xlsx/.xls), Parquet, JSON lines, or a
#: PostgreSQL table or query.
Format = Literal["csv", "tsv", "excel", "parquet", "jsonl", "postgres"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "excel", "parquet", "jsonl", "postgres")
#: The delimiter of text split on runs of spaces and tabs (e.g. the CDNOW master file).
WHITESPACE = "whitespace"

__all__ = [
    "FORMATS",
    "WHITESPACE",
    "ColumnSpec",
    "Derive",
    "Format",
    "Infer",
    "Reference",
    "RowRule",
    "SourceSpec",
    "TableMapping",
    "Unpivot",
    "check_text_options",
]


def check_text_options(encoding: str, delimiter: str | None) -> None:
    """:class:`ConfigError` for an unknown encoding (``auto`` is known) or a ``delimiter`` that
    is neither one character (not a quote or line break) nor ``whitespace``; None: no delimiter.

    >>> check_text_options("gbk", ";")
    >>> check_text_options("utf-8", '"')
    Traceback (most recent call last):
    crmlens.errors.ConfigError: the delimiter must be one character (not a quote or line break) or 'whitespace', got '"'
    """
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {encoding!r}") from None
    if delimiter is not None and not (
        delimiter == WHITESPACE or (len(delimiter) == 1 and delimiter not in '"\r\n')
    ):
        raise ConfigError(
            "the delimiter must be one character (not a quote or line break) "
            f"or {WHITESPACE!r}, got {delimiter!r}"
        )


@dataclass(frozen=True, kw_only=True)
class SourceSpec(TableMapping):
    """One source file of an export and its mapping onto one canonical table."""

    #: Relative to the export folder, with ``/`` separators; also the source's name in reports.
    #: For a PostgreSQL source only that name (e.g. ``pg:crm.members``): never the password.
    path: str
    format: Format = "csv"
    #: A Python codec name (``utf-8``, ``utf-8-sig``, ``gbk``, ``gb18030``, ``big5``, …) or ``auto``.
    encoding: str = "utf-8"
    #: One character, or ``whitespace`` (runs of spaces and tabs); a ``tsv`` source defaults to tab.
    delimiter: str = ","
    #: Excel only: the sheet to read (default: the first).
    sheet: str | None = None
    #: The line (CSV) or row (Excel) holding the headers; the data starts on the next one.
    #: 0 (CSV/TSV only): no header line; the columns are named ``column_1``, ``column_2``, ….
    header_row: int = 1
    #: PostgreSQL only: a libpq connection string or URI, and either a table or a query.
    dsn: str | None = None
    source_table: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in FORMATS:
            raise ConfigError(f"{self.path}: expected a format in {FORMATS}, got {self.format!r}")
        if self.format == "tsv" and self.delimiter == ",":
            object.__setattr__(self, "delimiter", "\t")  # frozen: set once, before any use
        text = self.format in ("csv", "tsv")
        if self.header_row < (0 if text else 1):
            raise ConfigError(f"{self.path}: header_row counts from 1, got {self.header_row}")
        try:
            check_text_options(self.encoding, self.delimiter if text else None)
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None
        database = (self.dsn, self.source_table, self.query)
        if self.format == "postgres":
            if self.dsn is None or (self.source_table is None) == (self.query is None):
                raise ConfigError(
                    f"{self.path}: a postgres source needs a dsn and either source_table or query"
                )
        elif any(v is not None for v in database):
            raise ConfigError(f"{self.path}: dsn, source_table and query are for postgres only")

    @property
    def source_headers(self) -> tuple[str, ...]:
        """The headers the file must have."""
        names = [c.source for c in self.columns if c.source]
        if self.unpivot:
            names = [n for n in names if n not in (self.unpivot.name, self.unpivot.value)]
            names += self.unpivot.columns
        return tuple(dict.fromkeys(names))
