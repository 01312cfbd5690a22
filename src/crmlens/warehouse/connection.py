"""The warehouse: the one place that opens connections, writes, and runs queries.

Metrics and models build Ibis expressions; :meth:`Warehouse.execute` runs them. Loaders write only
through :meth:`Warehouse.transaction`, so a load either commits whole or leaves the file as it was.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.operations as ops
import pandas as pd
import pyarrow as pa
import pyarrow.types as pat
from ibis.backends.duckdb.converter import DuckDBPandasData
from ibis.expr.types import Expr
from ibis.expr.types import Table as IbisTable
from ibis.formats.pandas import PandasData

from crmlens.errors import ConfigError, SchemaError, WarehouseError
from crmlens.schema import SCHEMA_VERSION, Table
from crmlens.schema import table as schema_table
from crmlens.warehouse.derived import check_derived
from crmlens.warehouse.engines import IbisWarehouse
from crmlens.warehouse.migrations import migrate, quote, stored_version
from crmlens.warehouse.plans import Compiled, QueryPlans, render_text
from crmlens.warehouse.templates import SqlTemplates, reuse_compiled_sql

#: Where the warehouse lives unless told otherwise (``--warehouse`` or ``CRMLENS_WAREHOUSE``).
DEFAULT_PATH = Path("crmlens.duckdb")
#: The storage format a new warehouse file is written in: that of the oldest DuckDB crmlens runs on
#: (``duckdb>=1.4``), not DuckDB's default (0.10.2, readable by any 1.x). Its compression is
#: cheaper to write and to read: at 1M customers, the load's inserts took 29.3-32.2 CPU seconds
#: against 33.2-43.1 (three alternating runs), a join of the order lines to their orders 591 ms
#: against 788, for a file 3.5 % larger. A file keeps the format it was created in.
STORAGE_VERSION = "v1.4.0"


def _open_failure(exc: duckdb.Error, read_only: bool) -> str:
    """Why the file could not be opened, in our words when another process holds it.

    >>> _open_failure(duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting '
    ...     'lock is held in /usr/bin/python3 (PID 4242). However, you would …'), False)
    'the warehouse is in use by another process (PID 4242, e.g. a running `crmlens serve`); stop it to load or build, then start it again'
    """
    text = str(exc)
    if "Could not set lock" not in text:
        return f"cannot open the warehouse: {text}"
    pid = re.search(r"\(PID (\d+)\)", text)
    holder = f"PID {pid[1]}" if pid else "its PID unknown"
    if read_only:  # only a writer (a load or build in progress) keeps a reader out
        return (
            f"the warehouse is being written by another process ({holder}: a load or build); "
            "try again when it is done"
        )
    return (
        f"the warehouse is in use by another process ({holder}, e.g. a running `crmlens serve`); "
        "stop it to load or build, then start it again"
    )


def default_path() -> Path:
    """The warehouse path from ``CRMLENS_WAREHOUSE``, else ``./crmlens.duckdb``."""
    return Path(os.environ.get("CRMLENS_WAREHOUSE", DEFAULT_PATH))


class Warehouse(IbisWarehouse):
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
            backend = ibis.duckdb.connect(
                str(self.path),
                read_only=read_only,
                storage_compatibility_version=STORAGE_VERSION,
            )
        except duckdb.Error as exc:
            raise WarehouseError(f"{self.path}: {_open_failure(exc, read_only)}") from exc
        super().__init__(backend, owns_backend=True)
        # DuckDB draws its own bar on a terminal for queries over 2 s, through crmlens's bars
        self.raw.execute("SET enable_progress_bar = false")
        # a read-only warehouse reads on one cursor per thread (see execute)
        self._readers = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        #: the plans of queries built from text values (:mod:`crmlens.warehouse.plans`)
        self.plans = QueryPlans(self)
        if not read_only:
            migrate(self.raw)
        else:
            version = stored_version(self.raw)
            if version == 0:
                raise WarehouseError(f"{self.path}: not a crmlens warehouse")
            if version < SCHEMA_VERSION:
                # read-only cannot migrate; any write command (load, build) migrates it first
                raise WarehouseError(
                    f"{self.path}: schema version {version} is older than this crmlens "
                    f"({SCHEMA_VERSION}); run `crmlens load` or `crmlens build` once to upgrade it"
                )

    # -- connection -------------------------------------------------------------------------
    @property
    def raw(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, for the loaders' bulk SQL (never for metrics or models)."""
        return self._ibis.con

    def close(self) -> None:
        """Close the connection and the readers' cursors."""
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        super().close()

    # -- reading ----------------------------------------------------------------------------
    def execute(self, expr: Expr) -> pd.DataFrame | pd.Series | Any:
        """Run an Ibis expression and return pandas (a DataFrame, Series or scalar).

        Opened read-only (``crmlens serve``), each thread reads on a cursor of its own, so the
        queries of several requests run side by side: one user's slow view does not hold up
        another's, nor the health check. A read-write warehouse reads on its one connection, in
        turn, so reads see the writes of a transaction in progress.
        """
        if not self.read_only:
            return super().execute(expr)
        return self._reader().execute(expr)

    def to_arrow(self, expr: Expr) -> pa.Table:
        """Run an Ibis table expression and return Arrow (on this thread's cursor, as
        :meth:`execute`)."""
        if not self.read_only:
            return super().to_arrow(expr)
        return self._reader().to_pyarrow(expr)

    # -- running compiled queries (for :class:`~crmlens.warehouse.plans.QueryPlans`) ---------
    def compile_expr(self, expr: IbisTable, *, reuse: bool = True) -> Compiled:
        """``expr`` compiled to SQL (through the shared templates, unless not to ``reuse`` them:
        a query plan's stand-in build is compiled once, and a template of it would go unused),
        with its schema and the in-memory tables it reads; its UDFs, if any, registered on this
        thread's connection."""
        backend = self._reader() if self.read_only else self._ibis
        found = expr.op().find((ops.InMemoryTable, ops.ScalarUDF))
        if any(isinstance(node, ops.ScalarUDF) for node in found):
            with self._read_lock:
                backend._register_udfs(expr)
        memtables = tuple(node for node in found if isinstance(node, ops.InMemoryTable))
        compile_ = backend.compile
        templates = getattr(compile_, "__self__", None)
        if not reuse and isinstance(templates, SqlTemplates):
            compile_ = templates.full_compile
        return Compiled(compile_(expr), expr.schema(), memtables)

    def run_compiled(self, query: Compiled) -> pd.DataFrame:
        """Run a compiled query on this thread's connection and return pandas, converted as
        Ibis's own ``execute`` converts a table's result."""
        if not self.read_only:
            with self._read_lock:
                return _run_sql(self._ibis, query)
        return _run_sql(self._reader(), query)

    def render_text(self, value: str) -> str:
        """A text value as this warehouse's SQL compiler writes it."""
        return render_text(self._ibis.compiler, value)

    def _reader(self) -> Any:
        """This thread's Ibis backend over a cursor of the read-only connection (a cursor is a
        connection of its own to the same database: DuckDB runs them concurrently)."""
        backend = getattr(self._readers, "backend", None)
        if backend is None:
            with self._cursors_lock:
                cursor = self.raw.cursor()
                self._cursors.append(cursor)
            backend = ibis.duckdb.from_connection(cursor)
            reuse_compiled_sql(backend, like=self._ibis)  # the shapes of every thread
            self._readers.backend = backend
        return backend

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
        self.generation += 1

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (after large loads)."""
        self.raw.execute("CHECKPOINT")

    # -- describing -------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        return stored_version(self.raw)

    # -- writing derived tables -------------------------------------------------------------
    def write_derived(self, tables: Mapping[str, IbisTable]) -> dict[str, int]:
        """Create or replace derived tables (:mod:`crmlens.warehouse.derived`) from Ibis
        expressions over this warehouse, in one transaction; return the rows of each.

        Rows are written in the expression's order (DuckDB keeps it), so a table ordered by time
        keeps each period's rows together and a scan skips the row groups outside a period.
        """
        for name in tables:
            check_derived(name)
        with self.transaction() as con:
            _create_derived(con, tables)
        return self._derived_rows(tables)

    def _derived_rows(self, tables: Mapping[str, IbisTable]) -> dict[str, int]:
        return {name: int(self.execute(self.derived_table(name).count())) for name in tables}

    # -- replacing model tables -------------------------------------------------------------
    def replace_table(self, name: str, data: pd.DataFrame) -> int:
        """Replace every row of the canonical table ``name`` with ``data``; return the rows written.

        For tables computed from the others (the model outputs): the delete and the insert run in
        one transaction, so a reader sees the old rows or the new ones, never a mix or nothing.
        ``data`` must hold exactly the declared columns (any order) with values of their types,
        required columns filled and the primary key unique; otherwise :class:`SchemaError` says
        which column is wrong, before anything is written.
        """
        return self.replace_tables({name: data})[name]

    def replace_tables(
        self,
        tables: Mapping[str, pd.DataFrame],
        *,
        derived: Mapping[str, IbisTable] | None = None,
    ) -> dict[str, int]:
        """:meth:`replace_table` for several tables in one transaction: all are replaced or none.

        ``derived`` tables (as for :meth:`write_derived`) are written after them in the same
        transaction, so one computed from a replaced table holds its new rows, and no reader sees
        the one without the other. Every frame is checked before the first write. Call it outside
        :meth:`transaction`: DuckDB does not nest transactions.
        """
        checked = {name: _checked_frame(schema_table(name), data) for name, data in tables.items()}
        for name in derived or {}:
            check_derived(name)
        try:
            with self.transaction() as con:
                for name, frame in checked.items():
                    columns = ", ".join(quote(c) for c in frame.columns)
                    view = f"_crmlens_replace_{name}"
                    con.register(view, frame)
                    try:
                        con.execute(f"DELETE FROM {quote(name)}")
                        con.execute(
                            f"INSERT INTO {quote(name)} ({columns}) "
                            f"SELECT {columns} FROM {quote(view)}"
                        )
                    except duckdb.Error as exc:
                        raise WarehouseError(f"{name}: cannot write the new rows: {exc}") from exc
                    finally:
                        con.unregister(view)
                _create_derived(con, derived or {})
        except duckdb.TransactionException as exc:
            raise WarehouseError(
                f"cannot replace {', '.join(checked)}: {exc}; call replace_tables outside "
                "Warehouse.transaction() and pass every table to it at once"
            ) from exc
        rows = {name: len(frame) for name, frame in checked.items()}
        return rows | self._derived_rows(derived or {})


def _run_sql(backend: Any, query: Compiled) -> pd.DataFrame:
    """``query`` run on an Ibis DuckDB ``backend``, its in-memory tables registered first; the
    result converted to pandas as ``ibis.backends.duckdb.Backend.execute`` converts it (Ibis 12)."""
    for memtable in query.memtables:
        if memtable not in backend._memtables:
            backend._register_in_memory_table(memtable)
            backend._memtables.add(memtable)
    table = backend.con.sql(query.sql).to_arrow_table()
    frame = pd.DataFrame(
        {
            name: (
                column.to_pylist()
                if pat.is_nested(column.type) or pat.is_dictionary(column.type) or column.null_count
                else column.to_pandas()
            )
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )
    frame = DuckDBPandasData.convert_table(frame, query.schema)
    return PandasData.convert_table(frame, query.schema)


def _create_derived(con: duckdb.DuckDBPyConnection, tables: Mapping[str, IbisTable]) -> None:
    """Create or replace each derived table from its expression, in the given order (a table may
    be read from one written before it)."""
    for name, expr in tables.items():
        sql = ibis.to_sql(expr, dialect="duckdb")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {quote(name)} AS {sql}")
        except duckdb.Error as exc:
            raise WarehouseError(f"{name}: cannot write the derived table: {exc}") from exc


# pandas' inferred kind of values (pd.api.types.infer_dtype) that each logical type accepts
_ACCEPTED_VALUES: dict[str, frozenset[str]] = {
    "string": frozenset({"string", "empty"}),
    "int": frozenset({"integer", "empty"}),
    "float": frozenset({"integer", "floating", "mixed-integer-float", "decimal", "empty"}),
    "money": frozenset({"integer", "floating", "mixed-integer-float", "decimal", "empty"}),
    "bool": frozenset({"boolean", "empty"}),
    "date": frozenset({"date", "datetime64", "datetime", "empty"}),
    "timestamp": frozenset({"datetime64", "datetime", "date", "empty"}),
}


def _checked_frame(tbl: Table, data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with the declared columns in declared order, or SchemaError naming the problem.

    DuckDB would cast many wrong values silently on insert (1.5 into BIGINT becomes 2, a number
    into VARCHAR its text), so the values are checked here against the declared types.
    """
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"{tbl.name}: expected a pandas DataFrame; got {type(data).__name__}")
    names = [str(c) for c in data.columns]
    if len(set(names)) != len(names):
        raise SchemaError(f"{tbl.name}: the data has a column twice: {names}")
    missing = [c for c in tbl.column_names if c not in names]
    unexpected = [c for c in names if c not in tbl.column_names]
    if missing or unexpected:
        raise SchemaError(
            f"{tbl.name}: the data's columns do not match the declaration; missing {missing}, "
            f"not declared {unexpected} (declared: {', '.join(tbl.column_names)})"
        )
    frame = data.reset_index(drop=True)[list(tbl.column_names)].copy()
    for col in tbl.columns:
        values = frame[col.name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        if values.isna().all():  # an all-missing column (e.g. NaN floats) fits any type
            values = pd.Series([None] * len(values), index=values.index, dtype=object)
        kind = pd.api.types.infer_dtype(values, skipna=True)
        whole = kind == "floating" and bool((values.dropna() % 1 == 0).all())
        if col.type == "int" and whole:
            values = values.astype("Int64")  # whole numbers that a join with gaps made float
        elif kind not in _ACCEPTED_VALUES[col.type]:
            example = values.dropna().iloc[0]
            shown = repr(example) if isinstance(example, str) else str(example)
            raise SchemaError(
                f"{tbl.name}.{col.name} is declared {col.type} but holds {kind} values, "
                f"e.g. {shown}"
            )
        if col.type == "bool":
            values = values.astype("boolean")  # object True/False/NaN would reach DuckDB as mixed
        elif values.dtype == object:
            values = values.where(values.notna(), None)  # NaN in text columns is a missing value
        nulls = int(values.isna().sum())
        if nulls and not col.nullable:
            raise SchemaError(f"{tbl.name}.{col.name} is required but {nulls} row(s) are empty")
        frame[col.name] = values
    if tbl.primary_key and len(frame):
        repeated = frame.duplicated(list(tbl.primary_key), keep=False)
        if repeated.any():
            example = frame.loc[repeated, list(tbl.primary_key)].iloc[0].tolist()
            raise SchemaError(
                f"{tbl.name}: {int(repeated.sum())} rows share a key "
                f"({', '.join(tbl.primary_key)}), e.g. {example}"
            )
    return frame
