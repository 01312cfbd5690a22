"""Cohort retention (crmlens.metrics.cohorts) against a plain-pandas oracle and hand-made answers.

The oracle reads the tiny company's frames (rows a scope allows come from the shared oracle's
``rows``, which applies filters independently of crmlens) and follows the module's written
definitions; the planted demo company is checked in test_lifecycle_status.py, which generates it.
"""

from __future__ import annotations

import doctest
import importlib
from datetime import date
from itertools import product
from typing import Any

import pandas as pd
import pytest

from crmlens.errors import ConfigError
from crmlens.metrics import Scope, cohort_table, triangle
from crmlens.warehouse import Warehouse

MONTHS = Scope(date(2019, 12, 1), date(2021, 3, 31), "month")
# ISO weeks 2020-W49 .. 2021-W08, across 2020-W53 (2020-12-28 .. 2021-01-03)
WEEKS = Scope(date(2020, 11, 30), date(2021, 2, 28), "week")
DAY = pd.Timedelta(days=1)


def _label(p: pd.Period, grain: str) -> str:
    if grain == "week":
        year, week, _ = p.start_time.isocalendar()
        return f"{year}-W{week:02d}"
    return str(p)


def expected_cohorts(
    oracle: Any,
    scope: Scope,
    *,
    cohort_by: str = "first_order",
    mode: str = "on",
    measure: str = "customers",
    first_time_only: bool = True,
    periods: int = 12,
    **filters: object,
) -> pd.DataFrame:
    """The cohort table by the module docstring's definitions, with pandas periods."""
    freq = {"month": "M", "week": "W-SUN"}[scope.grain]
    buckets = pd.period_range(scope.start, scope.end, freq=freq)
    index = {p: i for i, p in enumerate(buckets)}
    lo, hi = pd.Timestamp(scope.start), pd.Timestamp(scope.end) + DAY

    def place(ts: pd.Series) -> pd.Series:
        inside = (ts >= lo) & (ts < hi)
        return ts[inside].dt.to_period(freq).map(index)

    orders = oracle.rows("orders", scope.end, filters)
    orders = orders[orders["customer_id"].notna()]
    done = orders[~orders["is_refund"]]
    done_at = place(done["order_time"])
    active = set(zip(done_at, done.loc[done_at.index, "customer_id"], strict=True))
    last: dict[str, int] = {}
    for i, c in active:
        last[c] = max(last.get(c, -1), i)
    members: dict[int, set[str]] = {i: set() for i in range(len(buckets))}
    if not first_time_only:
        for i, c in active:
            members[i].add(c)
    else:
        if cohort_by == "first_order":
            when = done.groupby("customer_id")["order_time"].min()
        else:
            customers = oracle.rows("customers", scope.end, filters)
            when = customers.set_index("customer_id")["signup_date"].dropna()
        for c, i in place(when).items():
            members[int(i)].add(c)
    rows_at = place(orders["order_time"])
    revenue = orders.loc[rows_at.index].assign(i=rows_at.astype(int))
    rows = []
    for i, cohort in members.items():
        for k in range(min(periods, len(buckets) - 1 - i) + 1):
            if measure == "revenue":
                mine = revenue[revenue["customer_id"].isin(cohort)]
                value = float(mine.loc[mine["i"] == i + k, "amount"].sum())
                base = float(mine.loc[mine["i"] == i, "amount"].sum())
            elif mode == "on":
                value, base = float(sum((i + k, c) in active for c in cohort)), len(cohort)
            else:
                value, base = float(sum(last.get(c, -1) >= i + k for c in cohort)), len(cohort)
            rate = value / base if base else None
            rows.append((_label(buckets[i], scope.grain), k, len(cohort), value, rate))
    return pd.DataFrame(rows, columns=["cohort", "period_index", "cohort_size", "value", "rate"])


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert got[["cohort", "period_index", "cohort_size"]].values.tolist() == (
        expected[["cohort", "period_index", "cohort_size"]].values.tolist()
    )
    assert got["value"].tolist() == pytest.approx(expected["value"].tolist(), abs=1e-6)
    for g, e in zip(got["rate"], expected["rate"].astype(object), strict=True):
        if e is None or pd.isna(e):
            assert g is None
        else:
            assert g == pytest.approx(e, abs=1e-9)


VARIANTS = [
    {"cohort_by": c, "mode": m, "first_time_only": f}
    for c, m, f in product(["first_order", "signup"], ["on", "on_or_after"], [True, False])
    if f or c == "first_order"
] + [{"measure": "revenue"}, {"measure": "revenue", "first_time_only": False}]


@pytest.mark.parametrize("scope", [MONTHS, WEEKS], ids=["month", "week"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_cohort_table_matches_the_oracle(tiny, oracle, scope: Scope, variant: dict) -> None:
    periods = 12 if scope.grain == "month" else 6
    got = cohort_table(tiny.wh, scope, periods=periods, **variant)
    assert_same(got, expected_cohorts(oracle, scope, periods=periods, **variant))


@pytest.mark.parametrize(
    "filters",
    [{"region": "华东"}, {"store": "S01"}, {"tier": ["白金", "黄金"], "customer_type": "个人"}],
)
def test_scope_filters_change_the_cohorts_as_the_oracle_says(tiny, oracle, filters) -> None:
    scope = MONTHS.narrow(**filters)
    unfiltered = cohort_table(tiny.wh, MONTHS, mode="on_or_after")
    for variant in ({"mode": "on_or_after"}, {"cohort_by": "signup"}, {"measure": "revenue"}):
        got = cohort_table(tiny.wh, scope, **variant)
        assert_same(got, expected_cohorts(oracle, scope, **variant, **filters))
    got = cohort_table(tiny.wh, scope, mode="on_or_after")
    assert got["cohort_size"].sum() < unfiltered["cohort_size"].sum()
    # row limits go through the same path: a limit equal to the filter gives the same table
    limited = cohort_table(tiny.wh, MONTHS.restrict(filters), mode="on_or_after")
    pd.testing.assert_frame_equal(limited, got)


def test_week_cohorts_across_the_year_end(tiny) -> None:
    table = cohort_table(tiny.wh, WEEKS, periods=3)
    labels = list(dict.fromkeys(table["cohort"]))
    assert labels[:6] == ["2020-W49", "2020-W50", "2020-W51", "2020-W52", "2020-W53", "2021-W01"]
    assert labels[-1] == "2021-W08" and len(labels) == 13
    # a triangle: the last cohorts have fewer cells, none past the scope's last week
    counts = table.groupby("cohort", sort=False).size().tolist()
    assert counts == [4] * 10 + [3, 2, 1]
    first = table[table["period_index"] == 0]
    assert all(r == 1.0 for r, n in zip(first["rate"], first["cohort_size"], strict=True) if n)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, insert):
    """Five customers and a walk-in, January to April 2021, with hand-known answers."""
    wh = Warehouse(tmp_path_factory.mktemp("cohorts") / "small.duckdb")
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "region": ["华东", "华东", "华南", "华东", "华东"],
            "signup_date": pd.to_datetime(
                ["2020-06-01", "2021-01-05", "2021-02-01", "2020-01-01", "2021-01-20"]
            ),
        }
    )
    rows = [  # id, customer, time, amount, refund
        ("O1", "A", "2021-01-10 10:00", 100.0, False),
        ("O2", "A", "2021-03-03 10:00", 50.0, False),
        ("O3", "B", "2021-01-31 23:59", 80.0, False),
        ("R3", "B", "2021-02-02 09:00", -30.0, True),  # a refund is not activity
        ("O4", "C", "2021-02-14 12:00", 40.0, False),  # the only order
        ("O5", "D", "2020-12-20 12:00", 10.0, False),  # first order before the scope
        ("O6", "D", "2021-01-02 12:00", 20.0, False),
        ("O7", "E", "2021-03-15 12:00", 70.0, False),  # signed up in January
        ("O8", None, "2021-01-15 12:00", 99.0, False),  # a walk-in: nobody to follow
    ]
    orders = pd.DataFrame(rows, columns=["order_id", "customer_id", "order_time", "amount", "x"])
    orders = orders.assign(order_time=pd.to_datetime(orders["order_time"]), store_id="S01")
    orders = orders.rename(columns={"x": "is_refund"})
    insert(wh, "customers", customers)
    insert(wh, "orders", orders)
    yield wh
    wh.close()


SMALL = Scope(date(2021, 1, 1), date(2021, 4, 30))
NONE = None


@pytest.mark.parametrize(
    "variant, values, rates",
    [
        (
            {},
            [2, 0, 1, 0, 1, 0, 0, 1, 0, 0],
            [1, 0, 0.5, 0, 1, 0, 0, 1, 0, NONE],
        ),
        (
            {"mode": "on_or_after"},
            [2, 1, 1, 0, 1, 0, 0, 1, 0, 0],
            [1, 0.5, 0.5, 0, 1, 0, 0, 1, 0, NONE],
        ),
        (
            {"measure": "revenue"},
            [180, -30, 50, 0, 40, 0, 0, 70, 0, 0],
            [1, -1 / 6, 5 / 18, 0, 1, 0, 0, 1, 0, NONE],
        ),
        (
            {"cohort_by": "signup"},
            [1, 0, 1, 0, 1, 0, 0, 0, 0, 0],
            [0.5, 0, 0.5, 0, 1, 0, 0, NONE, NONE, NONE],
        ),
        (
            {"first_time_only": False},
            [3, 0, 1, 0, 1, 0, 0, 2, 0, 0],
            [1, 0, 1 / 3, 0, 1, 0, 0, 1, 0, NONE],
        ),
    ],
    ids=["first-order", "on-or-after", "revenue", "signup", "recurring"],
)
def test_known_answers(small, variant: dict, values: list, rates: list) -> None:
    table = cohort_table(small, SMALL, periods=3, **variant)
    cells = [("2021-01", k) for k in range(4)] + [("2021-02", k) for k in range(3)]
    cells += [("2021-03", 0), ("2021-03", 1), ("2021-04", 0)]
    assert list(zip(table["cohort"], table["period_index"], strict=True)) == cells
    assert table["value"].tolist() == pytest.approx(values)
    for got, want in zip(table["rate"], rates, strict=True):
        assert (got is None and want is None) or got == pytest.approx(want)


def test_scope_end_bounds_the_triangle_and_periods_caps_it(small) -> None:
    short = cohort_table(small, SMALL, periods=1)
    assert short["period_index"].max() == 1 and len(short) == 7
    # a scope ending in February: on_or_after no longer sees A's March order
    feb = cohort_table(small, Scope(date(2021, 1, 1), date(2021, 2, 28)), mode="on_or_after")
    assert feb["value"].tolist() == [2.0, 0.0, 1.0]
    # an April-only scope: B's January first order keeps B out of April's first-time cohort
    april = cohort_table(small, Scope(date(2021, 4, 1), date(2021, 4, 30)))
    assert april[["cohort_size", "value"]].values.tolist() == [[0, 0.0]]


def test_triangle_pivots_the_long_table(small) -> None:
    table = cohort_table(small, SMALL, periods=3, mode="on_or_after")
    tri = triangle(table)
    assert list(tri.index) == ["2021-01", "2021-02", "2021-03", "2021-04"]
    assert list(tri.columns) == ["cohort_size", 0, 1, 2, 3]
    assert tri.loc["2021-01"].tolist() == [2, 1.0, 0.5, 0.5, 0.0]
    assert tri.loc["2021-03", 2] is None and tri.loc["2021-04", 0] is None
    assert triangle(table, "value").loc["2021-01", 1] == 1.0
    with pytest.raises(ConfigError):
        triangle(table, "cohort_size")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cohort_by": "first_purchase"},
        {"mode": "after"},
        {"measure": "orders"},
        {"cohort_by": "signup", "first_time_only": False},
        {"measure": "revenue", "mode": "on_or_after"},
        {"periods": -1},
        {"periods": 2.5},
        {"grain": "fortnight"},
    ],
)
def test_invalid_arguments_are_refused(small, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        cohort_table(small, SMALL, **kwargs)


def test_doctests() -> None:
    result = doctest.testmod(importlib.import_module("crmlens.metrics.cohorts"))
    assert result.failed == 0 and result.attempted > 0
