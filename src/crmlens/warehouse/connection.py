"""The warehouse: the one place that opens connections, writes, and runs queries.

Metrics and models build Ibis expressions; :meth:`Warehouse.execute` runs them. Loaders write only
through :meth:`Warehouse.transaction`, so a load either commits whole or leaves the file as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Expr
from ibis.expr.types import Table as IbisTable

from crmlens.errors import WarehouseError
from crmlens.schema import TABLES
from crmlens.schema import table as schema_table
from crmlens.warehouse.migrations import migrate, stored_version

#: Where the warehouse lives unless told otherwise (``--warehouse`` or ``CRMLENS_WAREHOUSE``).
DEFAULT_PATH = Path("crmlens.duckdb")


def default_path() -> Path:
    """The warehouse path from ``CRMLENS_WAREHOUSE``, else ``./crmlens.duckdb``."""
    return Path(os.environ.get("CRMLENS_WAREHOUSE", DEFAULT_PATH))


class Warehouse:
    """A DuckDB file opened through Ibis, migrated to the current schema on open.

    >>> import tempfile, pathlib
    >>> with Warehouse(pathlib.Path(tempfile.mkdtemp()) / "w.duckdb") as wh:
    ...     wh.row_count("customers")
    0
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise WarehouseError(f"{self.path}: no warehouse there; run `crmlens load` first")
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._ibis = ibis.duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise WarehouseError(f"{self.path}: cannot open the warehouse: {exc}") from exc
        if not read_only:
            migrate(self.raw)
        elif stored_version(self.raw) == 0:
            raise WarehouseError(f"{self.path}: not a crmlens warehouse")

    # -- connection -------------------------------------------------------------------------
    @property
    def raw(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, for the loaders' bulk SQL (never for metrics or models)."""
        return self._ibis.con

    @property
    def backend(self) -> Any:
        """The Ibis backend."""
        return self._ibis

    def close(self) -> None:
        self._ibis.disconnect()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------
    def table(self, name: str) -> IbisTable:
        """The Ibis table expression of a canonical table."""
        schema_table(name)  # a clear error for an unknown name
        return self._ibis.table(name)

    def execute(self, expr: Expr) -> pd.DataFrame | pd.Series | Any:
        """Run an Ibis expression and return pandas (a DataFrame, Series or scalar)."""
        return self._ibis.execute(expr)

    def to_arrow(self, expr: Expr) -> pa.Table:
        """Run an Ibis table expression and return Arrow."""
        return self._ibis.to_pyarrow(expr)

    def row_count(self, name: str) -> int:
        """Rows in a canonical table."""
        return int(self.execute(self.table(name).count()))

    # -- writing ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All writes in the block commit together or not at all.

        DuckDB's write-ahead log only replays committed transactions, so a process killed inside the
        block also leaves the previous state.
        """
        if self.read_only:
            raise WarehouseError(f"{self.path}: opened read-only")
        con = self.raw
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (after large loads)."""
        self.raw.execute("CHECKPOINT")

    # -- describing -------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        return stored_version(self.raw)

    def describe(self) -> list[dict[str, Any]]:
        """Per canonical table: kind, rows, and the earliest and latest value of its time column."""
        out = []
        for tbl in TABLES.values():
            expr = self._ibis.table(tbl.name)
            aggs = {"rows": expr.count()}
            if tbl.time_column:
                aggs |= {"min": expr[tbl.time_column].min(), "max": expr[tbl.time_column].max()}
            values = self.execute(expr.aggregate(**aggs)).iloc[0].to_dict()
            out.append(
                {"table": tbl.name, "kind": tbl.kind, "time_column": tbl.time_column}
                | {k: (None if pd.isna(v) else v) for k, v in values.items()}
            )
        return out
