"""Source specs: where a source file is, how to read it, and how it maps onto a canonical table.

A :class:`SourceSpec` is a :class:`~crmlens.warehouse.loading.TableMapping` (the columns, rules,
references and de-duplication that the warehouse executes) plus what the readers need: the file's
path inside the export folder, its format, encoding, sheet and header row.

>>> spec = SourceSpec(path="crm/stores.csv", table="stores",
...                   columns=(ColumnSpec("store_id", "store_id"),))
>>> spec.format, spec.encoding
('csv', 'utf-8')
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

__all__ = [
    "ColumnSpec",
    "Derive",
    "Infer",
    "Reference",
    "RowRule",
    "SourceSpec",
    "TableMapping",
    "Unpivot",
]


@dataclass(frozen=True, kw_only=True)
class SourceSpec(TableMapping):
    """One source file of an export and its mapping onto one canonical table."""

    #: Relative to the export folder, with ``/`` separators; also the source's name in reports.
    path: str
    format: Literal["csv", "excel"] = "csv"
    #: A Python codec name (``utf-8``, ``utf-8-sig``, ``gbk``, ``gb18030``, ``big5``, …) or ``auto``.
    encoding: str = "utf-8"
    delimiter: str = ","
    #: Excel only: the sheet to read (default: the first).
    sheet: str | None = None
    #: The line (CSV) or row (Excel) holding the headers; the data starts on the next one.
    header_row: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.header_row < 1:
            raise ConfigError(f"{self.path}: header_row counts from 1, got {self.header_row}")
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"{self.path}: unknown encoding {self.encoding!r}") from None
        if self.format == "csv" and len(self.delimiter) != 1:
            raise ConfigError(f"{self.path}: the delimiter must be one character")

    @property
    def source_headers(self) -> tuple[str, ...]:
        """The headers the file must have."""
        names = [c.source for c in self.columns if c.source]
        if self.unpivot:
            names = [n for n in names if n not in (self.unpivot.name, self.unpivot.value)]
            names += self.unpivot.columns
        return tuple(dict.fromkeys(names))
