"""SQL templates: the SQL filled in from a shape equals a full compile, on a real DuckDB."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import ibis
import ibis.expr.operations as ops
import pandas as pd
import pyarrow as pa
import pytest
from ibis.expr.types import Expr

from crmlens.warehouse.templates import MAX_VALUES, SqlTemplates, reuse_compiled_sql

ROWS = pd.DataFrame(
    {
        "city": ["烟台", "青岛", "O'Brien", "烟台", "济南"],
        "day": [
            date(2021, 1, 5),
            date(2021, 2, 1),
            date(2021, 2, 3),
            date(2021, 3, 1),
            date(2021, 3, 9),
        ],
        "ts": pd.to_datetime(
            [
                "2021-01-05 10:00",
                "2021-02-01 09:30",
                "2021-02-03 23:59",
                "2021-03-01 00:00",
                "2021-03-09 00:00",
            ]
        ),
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
    }
)


@pytest.fixture
def con() -> Any:
    backend = ibis.duckdb.connect()
    backend.create_table("orders", ROWS)
    return backend


def _templated(con: Any) -> SqlTemplates:
    """The backend compiling through templates (as every crmlens warehouse does), and them."""
    reuse_compiled_sql(con)
    return con.compile.__self__


def _full(con: Any, expr: Expr) -> str:
    return con.compile.__self__._full_compile(expr)


def revenue(con: Any, city: str, since: date, until: datetime) -> Expr:
    t = con.table("orders")
    t = t.filter((t.city == city) & (t.day >= since) & (t.ts < until))
    return t.aggregate(revenue=t.amount.sum(), n=t.count())


def test_other_values_reuse_the_shape_and_give_the_full_compile(con: Any) -> None:
    templates = _templated(con)
    asked = [
        ("烟台", date(2021, 1, 1), datetime(2021, 4, 1)),
        ("青岛", date(2021, 1, 1), datetime(2021, 2, 2)),
        ("O'Brien", date(2021, 2, 1), datetime(2021, 2, 3, 23, 59, 1)),  # a quote to escape
        ("烟台", date(2021, 3, 1), datetime(2021, 3, 1, 12)),
    ]
    for city, since, until in asked:
        expr = revenue(con, city, since, until)
        assert templates.compile(expr) == _full(con, expr)
        got = con.execute(expr).iloc[0]
        rows = ROWS[(ROWS.city == city) & (ROWS.day >= since) & (ROWS.ts < until)]
        assert got["n"] == len(rows) and got["revenue"] == pytest.approx(rows.amount.sum())
    # each query is compiled twice (here and by execute): the first two compiles meet the
    # shape (the second makes its template), the other six fill it in
    assert (templates.misses, templates.hits) == (2, 6)


def test_in_memory_tables_are_values_of_the_shape(con: Any) -> None:
    templates = _templated(con)
    t = con.table("orders")
    results = []
    for bounds in (
        [("2021-01-01", "2021-02-01")],
        [("2021-02-01", "2021-03-01"), ("2021-03-01", "2021-04-01")],
    ):
        periods = ibis.memtable(
            pa.table(
                {
                    "period_id": pa.array(range(len(bounds)), pa.int64()),
                    "lo": pa.array([pd.Timestamp(lo) for lo, _ in bounds], pa.timestamp("us")),
                    "hi": pa.array([pd.Timestamp(hi) for _, hi in bounds], pa.timestamp("us")),
                }
            )
        )
        j = t.join(periods, [t.ts >= periods.lo, t.ts < periods.hi])
        expr = j.group_by("period_id").aggregate(revenue=j.amount.sum()).order_by("period_id")
        assert templates.compile(expr) == _full(con, expr)
        results.append(con.execute(expr)["revenue"].tolist())
    assert results == [[10.0], [50.0, 90.0]]
    assert templates.misses == 2  # same shape, but the second sight makes the template


def test_views_numbered_apart_share_a_shape(con: Any) -> None:
    """A self-join's sides are numbered by Ibis from a process-wide counter; two builds of the
    same query have different numbers but one shape."""
    templates = _templated(con)
    for city in ("烟台", "青岛", "济南"):
        t = con.table("orders")
        a = t.filter(t.city == city).view()
        b = t.view()
        j = a.join(b, a.day == b.day, lname="a_{name}", rname="b_{name}")
        expr = j.select("a_city", "b_city").aggregate(n=ibis._.count())
        assert templates.compile(expr) == _full(con, expr)
    assert (templates.misses, templates.hits) == (2, 1)


def test_equal_values_in_two_places_are_another_shape(con: Any) -> None:
    """Two literals with one value are one node in Ibis's graph: a different shape from two
    values, so a template is never filled with one value where two are needed."""
    templates = _templated(con)
    t = con.table("orders")

    def two_cities(a: str, b: str) -> Expr:
        return t.filter((t.city == a) | (t.city == b)).aggregate(n=ibis._.count())

    for a, b in (
        ("烟台", "烟台"),
        ("烟台", "青岛"),
        ("青岛", "青岛"),
        ("济南", "青岛"),
        ("烟台", "烟台"),
    ):
        expr = two_cities(a, b)
        assert templates.compile(expr) == _full(con, expr)
        assert con.execute(expr).iloc[0]["n"] == len(ROWS[ROWS.city.isin([a, b])])


class _LeakyBackend:
    """An Ibis DuckDB backend whose compile also writes its string values in another form (as
    a compiler folding a value into a pattern would)."""

    def __init__(self) -> None:
        self.inner = ibis.duckdb.connect()
        self.compiler = self.inner.compiler

    def compile(self, expr: Expr, **kwargs: Any) -> str:
        values = [n.value for n in expr.op().find(ops.Literal) if n.dtype.is_string()]
        return self.inner.compile(expr, **kwargs) + " -- " + "%".join(values).upper()


def test_a_value_written_in_another_form_is_never_templated() -> None:
    backend = _LeakyBackend()
    templates = SqlTemplates(backend)
    t = ibis.table({"city": "string"}, name="orders")
    for city in ("yantai", "qingdao", "jinan", "weihai"):
        expr = t.filter(t.city == city)
        sql = templates.compile(expr)
        assert sql == backend.compile(expr) and city.upper() in sql
    assert templates.hits == 0
    assert list(templates._shapes.values()) == [None]  # known as one to compile in full


def test_what_is_not_a_plain_compile_goes_to_the_backend(con: Any) -> None:
    templates = _templated(con)
    t = con.table("orders")
    many = t.filter(t.city.isin([f"c{i}" for i in range(MAX_VALUES + 1)]))
    assert templates.compile(many) == _full(con, many)
    limited = t.filter(t.city == "烟台")
    assert templates.compile(limited, limit=2) == _full(con, limited.limit(2))
    assert (templates.hits, templates.misses, len(templates._shapes)) == (0, 0, 0)


def test_shapes_are_bounded(con: Any) -> None:
    templates = SqlTemplates(con, maxsize=2)
    t = con.table("orders")
    for column in ("city", "day", "ts", "amount"):
        templates.compile(t.select(column))
    assert len(templates._shapes) == 2


def test_every_warehouse_compiles_through_templates(tmp_path: Any) -> None:
    from crmlens.warehouse import Warehouse

    with Warehouse(tmp_path / "w.duckdb") as wh:
        templates = wh.backend.compile.__self__
        assert isinstance(templates, SqlTemplates)
        reuse_compiled_sql(wh.backend)  # idempotent: not wrapped twice
        assert wh.backend.compile.__self__ is templates
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        t = wh.table("customers")
        for city in ("烟台", "青岛", "济南"):
            assert wh.execute(t.filter(t.city == city).count()) == 0
        assert isinstance(wh._reader().compile.__self__, SqlTemplates)
        assert wh._reader().compile.__self__.hits == 1


def test_the_readers_of_every_thread_share_the_templates(tmp_path: Any) -> None:
    """A read-only warehouse reads on a backend per thread; a shape made into a template by one
    thread's queries is filled in for another's (a server answers requests on any free thread)."""
    import threading

    from crmlens.warehouse import Warehouse

    Warehouse(tmp_path / "w.duckdb").close()
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        t = wh.table("customers")

        def count(city: str) -> None:
            assert wh.execute(t.filter(t.city == city).count()) == 0

        for city in ("烟台", "青岛"):  # met, then made a template, on this thread
            count(city)
        other = threading.Thread(target=count, args=("济南",))
        other.start()
        other.join()
        templates = wh.backend.compile.__self__
        assert (templates.misses, templates.hits) == (2, 1)
        assert wh._reader().compile.__self__ is templates
        assert wh._reader() is not wh.backend


def test_a_query_without_values_is_compiled_until_its_sql_is_kept(con: Any) -> None:
    templates = _templated(con)
    t = con.table("orders")
    for _ in range(3):
        expr = t.aggregate(n=ibis._.count())
        assert templates.compile(expr) == _full(con, expr)
    assert (templates.misses, templates.hits) == (2, 1)


def test_a_dropped_backend_is_freed_at_once(tmp_path: Any) -> None:
    """The templates hold their backend weakly: dropping the last reference closes the
    connection there and then (no cycle left for the collector), so the file can be reopened
    with other settings, as a failed read-only open followed by a load does."""
    import gc
    import weakref

    gc.disable()
    try:
        backend = ibis.duckdb.connect(str(tmp_path / "w.duckdb"), read_only=False)
        reuse_compiled_sql(backend)
        backend.create_table("t", pd.DataFrame({"a": ["x", "y"]}))
        for value in ("x", "y", "z"):  # met, templated, filled in
            t = backend.table("t")
            assert backend.execute(t.filter(t.a == value).count()) == (value != "z")
        del t
        gone = weakref.ref(backend)
        del backend
        assert gone() is None
    finally:
        gc.enable()


def test_a_value_written_as_a_keyword_is_kept_in_the_template(con: Any) -> None:
    """The unit of a date difference is a string literal that Ibis writes as a keyword, so its
    sentinel never appears: the template keeps it as it is and serves only that unit, while the
    city is still filled in. Before, the whole shape was compiled in full every time."""
    templates = _templated(con)
    t = con.table("orders")

    def span(city: str, unit: str) -> Expr:
        f = t.filter(t.city == city)
        return f.aggregate(n=f.ts.max().delta(f.ts.min(), unit=unit))

    asked = [("烟台", "day"), ("青岛", "day"), ("济南", "day"), ("烟台", "hour"), ("烟台", "day")]
    for city, unit in asked:
        expr = span(city, unit)
        assert templates.compile(expr) == _full(con, expr)
    # 烟台/day and 青岛/day make the template (unit kept), 济南/day fills it in; another unit
    # is compiled in full, and the template still serves the first
    assert (templates.misses, templates.hits) == (3, 2)
    got = con.execute(span("烟台", "hour")).iloc[0]["n"]
    assert got == (datetime(2021, 3, 1) - datetime(2021, 1, 5, 10)).total_seconds() // 3600
