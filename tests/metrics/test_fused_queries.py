"""KPIs evaluated together: the measures of one fact in one query, the rest in one UNION ALL, shares
from the groups where they add up — the same numbers as each KPI alone, in fewer queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from importlib import import_module
from typing import Any

import pandas as pd
import pytest

from crmlens.errors import ConfigError
from crmlens.metrics import (
    REGISTRY,
    SEED_OVERVIEW,
    Metric,
    Scope,
    breakdown,
    compute,
    compute_many,
    overview,
    timeseries,
    value,
)
from crmlens.metrics.evaluate import whole
from crmlens.metrics.measures import Measure
from crmlens.metrics.query import Query

YEAR = Scope(date(2020, 1, 1), date(2020, 12, 31))
QUARTERS = Scope(date(2019, 12, 1), date(2021, 3, 31), "quarter")
SALES = ["revenue", "customers", "aov"]
#: The module (``crmlens.metrics.breakdown`` is also the name of its function).
BREAKDOWN = import_module("crmlens.metrics.breakdown")


def applicable(scope: Scope, by: tuple[str, ...]) -> list[Metric]:
    """Every declared KPI that can be filtered and grouped as asked."""
    dims = {*by, *scope.constraints()}
    return [m for m in REGISTRY.values() if all(d in m.dimensions for d in dims)]


@pytest.fixture
def queries(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The queries the tiny warehouse runs during the test: expressions it executes, and
    compiled ones (:mod:`crmlens.warehouse.plans`)."""
    ran: list[object] = []
    for name in ("execute", "run_compiled"):
        run = getattr(tiny.wh, name)

        def counted(query: object, run: Any = run) -> object:
            ran.append(query)
            return run(query)

        monkeypatch.setattr(tiny.wh, name, counted)
    yield ran


@pytest.mark.parametrize(
    "scope, by",
    [
        (QUARTERS, ()),
        (YEAR, ("region", "tier")),
        (YEAR, ("store",)),
        (YEAR, ("category",)),  # orders split over their categories; tickets by their SKU's
        (YEAR.narrow(category="零食"), ()),
        (YEAR.narrow(customer_type="企业"), ("order_channel",)),
    ],
    ids=["quarters", "region-tier", "store", "category", "category-filter", "channel-filter"],
)
def test_kpis_computed_together_equal_each_alone(tiny: Any, scope: Scope, by: tuple) -> None:
    chosen = applicable(scope, by)
    assert sum(isinstance(m.builder, Measure) for m in chosen) > 3  # some are fused
    periods = scope.periods()
    together = compute_many(tiny.wh, chosen, scope, periods, by)
    assert set(together) == {m.name for m in chosen}
    for m in chosen:
        alone = compute(tiny.wh, m, scope, periods, by)
        # same groups (a group without kept rows is absent either way), same values
        pd.testing.assert_frame_equal(together[m.name], alone, check_exact=False, rtol=1e-12)


def test_a_breakdown_by_customer_attributes_is_one_query(tiny: Any, queries: list) -> None:
    dims = ["region", "customer_type", "tier"]
    table = breakdown(tiny.wh, SALES, YEAR, dims)
    assert len(queries) == 1  # the three KPIs fused; totals are the sums of the groups
    for name in ("revenue", "customers"):
        total = value(tiny.wh, name, YEAR)
        assert table[name].sum() == pytest.approx(total)
        assert list(table[f"{name}_share"]) == pytest.approx(list(table[name] / total))


def test_a_total_that_is_not_the_sum_of_the_groups_is_queried(tiny: Any, queries: list) -> None:
    table = breakdown(tiny.wh, SALES, YEAR, ["store"])
    assert len(queries) == 2  # a customer may buy in two stores: customers need their own total
    total = value(tiny.wh, "customers", YEAR)
    assert table["customers"].sum() > total
    assert list(table["customers_share"]) == pytest.approx(list(table["customers"] / total))
    revenue = value(tiny.wh, "revenue", YEAR)
    assert list(table["revenue_share"]) == pytest.approx(list(table["revenue"] / revenue))


def test_a_top_n_with_no_more_values_than_n_is_its_ranking(tiny: Any, queries: list) -> None:
    table = breakdown(tiny.wh, ["revenue", "orders"], YEAR, ["region"], top=50)
    assert len(queries) == 1  # the ranking and the breakdown are one fused aggregate
    full = breakdown(tiny.wh, ["revenue", "orders"], YEAR, ["region"])
    pd.testing.assert_frame_equal(table, full)
    folded = breakdown(tiny.wh, ["revenue", "orders"], YEAR, ["store"], top=2)
    assert len(folded) == 3 and folded["store"].iloc[-1] == "其他"
    assert folded["revenue"].sum() == pytest.approx(full["revenue"].sum())


def test_the_seed_overview_is_two_queries(tiny: Any, queries: list) -> None:
    month = Scope.parse("2021-01")
    frame = overview(tiny.wh, SEED_OVERVIEW, month)
    assert len(queries) == 2  # the four KPIs as one UNION ALL, and the new-customer target
    for row in frame.itertuples():
        assert row.value == pytest.approx(value(tiny.wh, row.metric, month)), row.metric


def test_a_timeseries_runs_one_query_per_fact(tiny: Any, queries: list) -> None:
    names = ["revenue", "orders", "aov", "tickets", "complaints", "nps", "retention_30d"]
    series = timeseries(tiny.wh, names, QUARTERS, compare=True)
    assert len(queries) == 3  # the orders and the tickets measures each; the rest as a union
    for name in names:
        alone = timeseries(tiny.wh, name, QUARTERS, compare=True)
        got = series[series["metric"] == name].reset_index(drop=True)
        # dtypes differ: a column of several KPIs is object where one of them has None
        pd.testing.assert_frame_equal(got, alone, check_exact=False, rtol=1e-12, check_dtype=False)


def test_completed_orders_are_counted_distinct_only_when_split(tiny: Any) -> None:
    def sql(scope: Scope, by: tuple[str, ...]) -> str:
        q = Query(tiny.wh, scope, scope.periods(), by)
        return str(tiny.wh.backend.compile(REGISTRY["orders"].builder(q))).upper()

    # order_id is the key: one row per order unless orders are split over their categories
    assert "DISTINCT" not in sql(YEAR, ("region",))
    assert "COUNT(DISTINCT" in sql(YEAR, ("category",))
    assert "COUNT(DISTINCT" in sql(YEAR.narrow(category=["零食", "饮料"]), ())


def test_a_conditional_measure_is_fused_only_for_the_queries_it_holds_for(tiny: Any) -> None:
    from crmlens.errors import ConfigError
    from crmlens.metrics.measures import fusable, row_count

    with pytest.raises(ConfigError, match="go together"):
        Measure("orders", row_count, when=lambda q: True)
    odd = Measure("orders", row_count, when=lambda q: len(q.periods) > 1, otherwise=row_count)
    one, two = (Query(tiny.wh, YEAR, YEAR.periods()[:n]) for n in (1, 2))
    assert fusable(odd, two) == ("orders", odd.window)
    assert fusable(odd, one) is None and fusable(odd) is None  # without a query: not known


def _each_scope(tiny: Any, monkeypatch: pytest.MonkeyPatch, ask: Any, scopes: list[Scope]) -> None:
    """``ask(scope)`` through the warehouse's query plans equals it built every time, for each
    scope in turn (the third scope of a shape on runs from its plan)."""
    tiny.wh.plans.clear()
    hits = tiny.wh.plans.hits
    planned = [ask(s) for s in scopes]
    with monkeypatch.context() as m:
        m.setattr(tiny.wh, "plans", None)
        built = [ask(s) for s in scopes]
    for got, expected in zip(planned, built, strict=True):
        if isinstance(got, dict):
            assert got.keys() == expected.keys()
            for name in got:
                pd.testing.assert_frame_equal(got[name], expected[name])
        else:
            pd.testing.assert_frame_equal(got, expected)
    assert tiny.wh.plans.hits > hits


@pytest.mark.parametrize("by", [(), ("tier",), ("store",)])
def test_kpis_from_query_plans_equal_kpis_built_anew(
    tiny: Any, monkeypatch: pytest.MonkeyPatch, by: tuple
) -> None:
    """Filters of one, two and the unknown value (built otherwise: part of a plan's key)."""
    scopes = [YEAR.narrow(city=c) for c in ("烟台", "青岛", "广州", "烟台")]
    scopes += [YEAR.narrow(city=c) for c in (["烟台", "青岛"], ["青岛", "广州"], ["广州", "烟台"])]
    scopes += [QUARTERS.narrow(gender=g) for g in ("男", "未知", "女", "未知", ["男", "未知"])]
    scopes += [
        QUARTERS.restrict({"region": "华东"}).narrow(tier=t) for t in ("白金", "黄金", "普通")
    ]

    def ask(scope: Scope) -> dict[str, pd.DataFrame]:
        errors: dict[str, Any] = {}
        got = compute_many(
            tiny.wh, list(REGISTRY.values()), scope, scope.periods(), by, errors=errors
        )
        assert set(got) | set(errors) == set(REGISTRY)
        return got

    _each_scope(tiny, monkeypatch, ask, scopes)


def test_top_n_breakdowns_from_query_plans_equal_those_built_anew(
    tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top-N's values (which stores are kept) are a plan's values too."""
    scopes = [YEAR.narrow(tier=t) for t in ("白金", "黄金", "白银", "普通")]
    _each_scope(
        tiny,
        monkeypatch,
        lambda s: breakdown(tiny.wh, ["revenue", "customers", "aov"], s, ["store"], top=2),
        scopes,
    )
    _each_scope(tiny, monkeypatch, lambda s: overview(tiny.wh, SEED_OVERVIEW, s), scopes)


@pytest.mark.parametrize(
    "names, dim, top, sort_by, month",
    [
        (["revenue", "customers", "aov"], "category", 3, None, None),
        (["revenue", "customers"], "category", 2, "customers", None),
        (["customers", "orders"], "tier", 2, None, None),
        (["revenue", "orders"], "store", 1, None, None),
        (["aov", "revenue"], "category", 2, "aov", None),
        # ties at the cut: 乳品 and 蔬菜 48 orders each; 白金 and 黄金 19 customers; S01 and S03
        (["orders", "revenue"], "category", 1, None, "2020-01"),
        (["customers", "aov"], "tier", 1, None, "2020-01"),
        (["orders"], "store", 1, None, "2020-02"),
    ],
)
def test_a_top_n_folded_in_the_query_equals_ranking_then_folding(
    tiny: Any,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    dim: str,
    top: int,
    sort_by: str | None,
    month: str | None,
) -> None:
    """The fold done in SQL keeps the groups pandas' stable ranking keeps (ties by the value's
    name, missing values last), and every metric of 其他 is computed on its rows; ranking first
    (what a shape that folded nothing last time does) gives the same frame."""
    scope = QUARTERS if month is None else Scope.parse(month)
    learned: dict[tuple[object, ...], bool] = {}
    monkeypatch.setattr(BREAKDOWN, "_FOLDED", learned)
    got = breakdown(tiny.wh, names, scope, [dim], top=top, sort_by=sort_by)
    assert list(learned.values()) == [True]  # folded in the query, and learned that it folds
    learned[next(iter(learned))] = False
    ranked_first = breakdown(tiny.wh, names, scope, [dim], top=top, sort_by=sort_by)
    pd.testing.assert_frame_equal(ranked_first, got)
    assert list(learned.values()) == [True]
    key = sort_by or names[0]
    period = [whole(scope)]
    ranked = compute_many(tiny.wh, [REGISTRY[key]], scope, period, (dim,))[key]
    ranked = ranked.sort_values("value", ascending=False, na_position="last", kind="stable")
    assert len(ranked) > top  # there is something to fold
    kept = frozenset(ranked[dim].head(top))
    expected = compute_many(
        tiny.wh, [REGISTRY[n] for n in names], scope, period, (dim,), {dim: kept}
    )
    assert set(got[dim]) == kept | {"其他"}
    for name in names:
        want = expected[name].set_index(dim)["value"]
        have = got.set_index(dim)[name].loc[want.index]
        pd.testing.assert_series_equal(
            have.astype(float),
            want.astype(float),
            check_names=False,
            check_index_type=False,
            rtol=1e-12,
        )


def test_a_top_n_folded_in_the_query_takes_measures_of_one_fact_by_one_dimension(
    tiny: Any,
) -> None:
    period = [whole(YEAR)]
    ok = compute_many(tiny.wh, [REGISTRY["revenue"]], YEAR, period, ("store",), top=("revenue", 1))
    stores = ok["revenue"]["store"].tolist()
    assert len(stores) == 2 and "其他" in stores  # the top store, and the rest
    for metrics, by, top in (
        (["revenue", "nps"], ("store",), "revenue"),  # two facts
        (["revenue"], ("store", "tier"), "revenue"),  # two dimensions
        (["revenue"], ("store",), "orders"),  # ranked by a KPI not asked for
    ):
        with pytest.raises(ConfigError, match="top-N is folded"):
            compute_many(tiny.wh, [REGISTRY[n] for n in metrics], YEAR, period, by, top=(top, 1))
