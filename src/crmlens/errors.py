"""The one exception tree of crmlens.

Every error a user can cause derives from :class:`CrmlensError`. Messages name the file, row and column
where there is one, say what was expected and what was found, so the CLI can print a single clear line.

    CrmlensError
    ├── ConfigError            bad option, unknown table/metric/column name
    ├── SchemaError            data does not fit the canonical schema
    ├── WarehouseError         the warehouse cannot be opened, migrated or written
    │   ├── LoadError          a load failed and was rolled back
    │   └── NotBuiltError      the model tables are empty: `crmlens build` has not run
    ├── SourceError            an input file or database cannot be read
    │   └── EncodingError      the text encoding cannot be determined or decoded
    └── ModelError             a model cannot be fitted or used
        ├── NotFittedError     used before ``fit``
        └── InsufficientDataError  the data cannot support the fit
"""

from __future__ import annotations

from pathlib import Path


class CrmlensError(Exception):
    """Base of every error crmlens raises on purpose."""


class ConfigError(CrmlensError):
    """A bad option or an unknown name (table, column, metric, dimension)."""


class SchemaError(CrmlensError):
    """Data that does not fit the canonical schema."""


class WarehouseError(CrmlensError):
    """The warehouse cannot be opened, migrated or written."""


class LoadError(WarehouseError):
    """A load failed; the warehouse was left as it was before the load."""


class NotBuiltError(WarehouseError):
    """The customer models' tables are empty or missing: run ``crmlens build`` first."""


class SourceError(CrmlensError):
    """An input cannot be read.

    >>> str(SourceError("bad date", path="orders.csv", row=12, column="order_time"))
    'orders.csv, row 12, column order_time: bad date'
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        where = [
            part
            for part in (
                self.path,
                None if row is None else f"row {row}",
                None if column is None else f"column {column}",
            )
            if part
        ]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class EncodingError(SourceError):
    """The text encoding of a file cannot be determined or decoded."""


class ModelError(CrmlensError):
    """A model cannot be fitted or used."""


class NotFittedError(ModelError, AttributeError):
    """A model was used before ``fit``."""


class InsufficientDataError(ModelError):
    """The data cannot support the requested fit (too few rows, no repeat buyers, …)."""
