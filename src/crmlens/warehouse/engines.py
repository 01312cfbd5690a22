"""Running the metrics on another Ibis backend: Spark, ClickHouse, BigQuery, Postgres, …

The metrics and cohort code only ever call ``wh.table(name)`` and ``wh.execute(expr)``, so any
object with :class:`Warehouse`'s read API runs them. :class:`IbisWarehouse` is that object over any
connected Ibis backend whose catalog holds the canonical tables (same names, same columns — see
``docs/schema.md``); :class:`SparkWarehouse` is the same over a Spark session. Writing (loading,
migrations) stays with the DuckDB :class:`Warehouse`: the usual path to a bigger engine is to load
with crmlens, then copy the tables over (:func:`copy_tables`, :func:`copy_to_spark`) or export them
to Parquet and register them in the engine's catalog.

>>> import ibis
>>> from crmlens.warehouse import Warehouse
>>> import tempfile, pathlib
>>> src = Warehouse(pathlib.Path(tempfile.mkdtemp()) / "w.duckdb")
>>> other = IbisWarehouse(ibis.duckdb.connect())
>>> copy_tables(src, other, ["customers"])
{'customers': 0}
>>> other.row_count("customers")
0
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import ibis
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Expr
from ibis.expr.types import Table as IbisTable

from crmlens.errors import WarehouseError
from crmlens.schema import TABLES
from crmlens.schema import table as schema_table
from crmlens.warehouse.derived import check_derived, is_derived
from crmlens.warehouse.templates import reuse_compiled_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class ReadableWarehouse(Protocol):
    """What the metrics layer needs of a warehouse: :class:`Warehouse` and :class:`IbisWarehouse`
    both provide it."""

    def table(self, name: str) -> IbisTable: ...

    def execute(self, expr: Expr) -> pd.DataFrame | pd.Series | Any: ...


#: The canonical tables that hold business data (not the loader's own bookkeeping).
DATA_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES.values() if t.kind == "data")


class IbisWarehouse:
    """The read API of :class:`~crmlens.warehouse.Warehouse` over any connected Ibis backend.

    ``database`` names where the canonical tables live when it is not the connection's current
    database (a Spark/Hive database, a BigQuery dataset, a Postgres schema); Ibis takes a string or
    a ``(catalog, database)`` tuple. The backend stays the caller's: :meth:`close` disconnects it
    only when ``owns_backend`` is true.
    """

    def __init__(
        self,
        backend: Any,
        *,
        database: str | tuple[str, str] | None = None,
        owns_backend: bool = False,
    ) -> None:
        self._ibis = backend
        self.database = database
        self.owns_backend = owns_backend
        # one connection is not safe for use by several threads at once (the API serves requests
        # from a thread pool), so reads through this object take turns; DuckDB still runs each
        # query on all cores
        self._read_lock = threading.RLock()
        #: Counts the writes committed through this object (see :meth:`Warehouse.transaction`):
        #: what callers key facts about the tables on, e.g. which derived tables are present.
        self.generation = 0
        if getattr(backend, "name", None) == "pyspark":
            _use_double_literals(backend)
        reuse_compiled_sql(backend)

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> IbisWarehouse:
        """Open an Ibis connection from a URL (``clickhouse://user:pw@host:8123/db``,
        ``bigquery://project/dataset``, ``postgres://…``) and wrap it; it is closed with this."""
        try:
            backend = ibis.connect(url, **kwargs)
        except Exception as exc:  # each driver raises its own errors; name the URL's engine
            raise WarehouseError(f"cannot connect to {url.split('://')[0]}: {exc}") from exc
        return cls(backend, owns_backend=True)

    @property
    def backend(self) -> Any:
        """The Ibis backend."""
        return self._ibis

    @property
    def engine(self) -> str:
        """The backend's Ibis name: ``pyspark``, ``clickhouse``, ``bigquery``, ``duckdb``, …"""
        return str(self._ibis.name)

    def close(self) -> None:
        """Disconnect the backend if this object opened it (a Spark session is left running)."""
        if self.owns_backend:
            self._ibis.disconnect()

    def __enter__(self) -> IbisWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------
    def table(self, name: str) -> IbisTable:
        """The Ibis table expression of a canonical table."""
        schema_table(name)  # a clear error for an unknown name, as Warehouse gives
        try:
            with self._read_lock:
                return self._ibis.table(name, database=self.database)
        except Exception as exc:  # backends raise their own "not found"; say what is missing
            raise WarehouseError(
                f"{self.engine}: canonical table {name!r} not found"
                + (f" in {self.database!r}" if self.database else "")
                + f" ({exc.__class__.__name__}); copy it with copy_tables() or register it"
            ) from exc

    def derived_table(self, name: str) -> IbisTable:
        """The Ibis table expression of a derived table (:mod:`crmlens.warehouse.derived`)."""
        with self._read_lock:
            return self._ibis.table(check_derived(name), database=self.database)

    def derived_names(self) -> frozenset[str]:
        """The derived tables present (none in a backend the canonical tables were copied to,
        unless they were copied too)."""
        with self._read_lock:
            names = self._ibis.list_tables(database=self.database)
        return frozenset(n for n in names if is_derived(n))

    def execute(self, expr: Expr) -> pd.DataFrame | pd.Series | Any:
        """Run an Ibis expression and return pandas (a DataFrame, Series or scalar)."""
        with self._read_lock:
            return self._ibis.execute(expr)

    def to_arrow(self, expr: Expr) -> pa.Table:
        """Run an Ibis table expression and return Arrow."""
        with self._read_lock:
            return self._ibis.to_pyarrow(expr)

    def row_count(self, name: str) -> int:
        """Rows in a canonical table."""
        return int(self.execute(self.table(name).count()))

    def tables(self) -> list[str]:
        """The canonical tables present in the backend."""
        present = set(self._ibis.list_tables(database=self.database))
        return [name for name in TABLES if name in present]

    def describe(self) -> list[dict[str, Any]]:
        """Per canonical table present: kind, rows, and the earliest and latest value of its time
        column (as :meth:`Warehouse.describe`; one query per table)."""
        out = []
        for name in self.tables():
            tbl = TABLES[name]
            expr = self.table(name)
            aggs = {"rows": expr.count()}
            if tbl.time_column:
                aggs |= {"min": expr[tbl.time_column].min(), "max": expr[tbl.time_column].max()}
            values = self.execute(expr.aggregate(**aggs)).iloc[0].to_dict()
            out.append(
                {"table": name, "kind": tbl.kind, "time_column": tbl.time_column}
                | {k: (None if pd.isna(v) else v) for k, v in values.items()}
            )
        return out


class SparkWarehouse(IbisWarehouse):
    """:class:`IbisWarehouse` over a Spark session (the canonical tables in its catalog).

    Ibis sets the session's time zone to UTC. crmlens stores naive local timestamps; Spark keeps
    them as instants read in that zone, so days, months and hours come out as they were written.
    """

    def __init__(self, session: SparkSession, *, database: str | None = None) -> None:
        super().__init__(ibis.pyspark.connect(session), database=database)
        self.session = session


def local_spark_session(
    *,
    cores: int = 2,
    driver_memory: str = "1g",
    shuffle_partitions: int = 4,
    warehouse_dir: str | Path | None = None,
    app_name: str = "crmlens",
) -> SparkSession:
    """A local Spark session for tests, benchmarks and trying crmlens on Spark on one machine.

    No web UI, bound to 127.0.0.1 (nothing listens on other interfaces), few shuffle partitions
    (the default 200 makes every small query pay for 200 tasks), Arrow transfers to pandas, and
    the UTC session time zone Ibis expects. ``driver_memory`` only applies when the JVM is not
    running yet. ``warehouse_dir`` is where Spark keeps saved tables; Spark creates it on start
    (its default is ./spark-warehouse, so tests pass a temporary folder).
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if warehouse_dir is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(warehouse_dir))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def copy_tables(
    source: ReadableWarehouse,
    target: IbisWarehouse | Any,
    tables: Iterable[str] | None = None,
) -> dict[str, int]:
    """Copy canonical tables (default: every data table) from ``source`` into ``target`` and
    return rows per table.

    ``target`` is an :class:`IbisWarehouse` or a bare Ibis backend. Rows travel as Arrow. On Spark
    each table becomes a temporary view over the copied rows (in no database, gone with the
    session): enough for tests and trying things out, while a real deployment writes Parquet and
    registers tables. On other backends it is ``create_table(..., overwrite=True)`` from the
    Arrow table.
    """
    wh = target if isinstance(target, IbisWarehouse) else IbisWarehouse(target)
    names = list(DATA_TABLES if tables is None else tables)
    counts: dict[str, int] = {}
    for name in names:
        expr = source.table(name)
        data = _to_arrow(source, expr)
        if wh.engine == "pyspark":
            _spark_view(wh.backend, name, expr.schema(), data)
        else:
            # Arrow carries the column types; the backend maps them to its own
            wh.backend.create_table(name, data, database=wh.database, overwrite=True)
        counts[name] = data.num_rows
    return counts


def copy_to_spark(
    source: ReadableWarehouse, session: SparkSession, tables: Iterable[str] | None = None
) -> SparkWarehouse:
    """The canonical tables of ``source`` as temporary views of ``session``, ready for metrics."""
    spark = SparkWarehouse(session)  # connect first: Ibis fixes the time zone the copy relies on
    copy_tables(source, spark, tables)
    return spark


# -- internals ------------------------------------------------------------------------------
def _to_arrow(source: ReadableWarehouse, expr: IbisTable) -> pa.Table:
    to_arrow = getattr(source, "to_arrow", None)
    if to_arrow is not None:
        return to_arrow(expr)
    return pa.Table.from_pandas(source.execute(expr), preserve_index=False)


def _spark_view(backend: Any, name: str, schema: Any, data: pa.Table) -> None:
    """Register ``data`` as temporary view ``name`` with the Spark types of the Ibis ``schema``."""
    from ibis.backends.pyspark.datatypes import PySparkSchema

    session = backend._session
    if session.conf.get("spark.sql.session.timeZone") != "UTC":
        # Spark reads naive Arrow timestamps in the session zone; anything but UTC shifts them
        raise WarehouseError("the Spark session time zone must be UTC (connect with Ibis first)")
    spark_schema = PySparkSchema.from_ibis(schema)
    frame = session.createDataFrame(data, schema=spark_schema)
    frame.createOrReplaceTempView(name)


def _use_double_literals(backend: Any) -> None:
    """Make the Spark backend write float literals as DOUBLE.

    Ibis 12 writes ``1.0`` for a float64 literal, and Spark SQL reads an unsuffixed ``1.0`` as
    DECIMAL(2,1). Arithmetic then runs in decimal with Spark's limited scale: the mean of
    ``IF(c, 1.0, 0.0)`` is rounded to 5 decimals (a 30-day retention of 0.123456789 reads 0.12346)
    and ``seconds / 3600.0`` loses digits. Casting the literal's text to DOUBLE gives exactly the
    double Python holds, so results match DuckDB's.
    """
    compiler = _double_literal_compiler()
    if not isinstance(backend.compiler, compiler):
        # an instance attribute: other Spark connections in the process keep Ibis' own compiler
        backend.compiler = compiler()


@cache
def _double_literal_compiler() -> type:
    """The Spark SQL compiler with float literals as ``CAST('<repr>' AS DOUBLE)``; built on first
    use, since importing Ibis' Spark compiler is only worth it when Spark is used."""
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class DoubleLiteralCompiler(PySparkCompiler):
        def visit_NonNullLiteral(self, op: Any, *, value: Any, dtype: Any) -> Any:
            # NaN and infinities keep Ibis' spelling; a finite literal is never NaN, so Ibis'
            # treat_nan_as_null wrapping has nothing to do here
            if dtype.is_floating() and math.isfinite(value):
                return self.cast(repr(float(value)), dtype)
            return super().visit_NonNullLiteral(op, value=value, dtype=dtype)

    return DoubleLiteralCompiler


__all__ = [
    "DATA_TABLES",
    "IbisWarehouse",
    "ReadableWarehouse",
    "SparkWarehouse",
    "copy_tables",
    "copy_to_spark",
    "local_spark_session",
]
