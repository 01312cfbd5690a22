"""Filters, row limits, breakdowns and targets on the tiny company, against the pandas oracle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import pytest

from crmlens.errors import ConfigError
from crmlens.metrics import (
    OTHER,
    UNKNOWN,
    NotApplicableError,
    Scope,
    breakdown,
    overview,
    segment_table,
    target,
    timeseries,
    value,
    vs_target,
)

Oracle = Callable[..., float | None]
YEAR = Scope(date(2020, 1, 1), date(2020, 12, 31))


def close(got: float | None, expected: float | None) -> bool:
    if expected is None or got is None:
        return got is None and expected is None
    return got == pytest.approx(expected, rel=1e-9, abs=1e-9)


FILTERS: list[tuple[dict[str, object], tuple[str, ...]]] = [
    ({"region": "华南"}, ("revenue", "aov", "new_customers", "members", "churn_rate", "ltv")),
    ({"customer_type": "企业"}, ("customers", "repurchase_rate", "retention_30d", "nps")),
    (
        {"tier": ["白金", "黄金"]},
        ("revenue", "email_open_rate", "service_csat", "active_customers"),
    ),
    ({"store": "S01"}, ("revenue", "orders", "members", "tickets", "csat")),
    ({"channel": "CH1"}, ("cac", "channel_conversion_rate", "ltv_cac", "new_customers")),
    ({"gender": UNKNOWN}, ("revenue", "customers")),  # missing values are a filterable value
    ({"age_band": "40-49"}, ("revenue", "members")),
    ({"category": "零食"}, ("revenue", "orders", "aov", "complaint_rate", "complaints")),
    ({"category": UNKNOWN}, ("revenue", "orders")),  # orders without lines, lines of unknown SKUs
    ({"order_channel": "app"}, ("revenue", "customers", "purchase_frequency")),
    ({"region": "华东", "customer_type": "个人"}, ("revenue", "repurchase_rate")),
]


@pytest.mark.parametrize("filters, names", FILTERS, ids=lambda v: str(v))
def test_filters_change_results_as_the_oracle_says(tiny, oracle: Oracle, filters, names) -> None:
    scope = YEAR.narrow(**filters)  # type: ignore[arg-type]
    for name in names:
        got = value(tiny.wh, name, scope)
        assert close(got, oracle(name, YEAR.start, YEAR.end, **filters)), (name, got)
    unfiltered = value(tiny.wh, names[0], YEAR)
    assert value(tiny.wh, names[0], scope) != unfiltered  # the filter did something


def test_category_split_preserves_totals(tiny) -> None:
    by_category = breakdown(tiny.wh, ["revenue", "orders"], YEAR, ["category"])
    assert by_category["revenue"].sum() == pytest.approx(value(tiny.wh, "revenue", YEAR))
    assert by_category["revenue_share"].sum() == pytest.approx(1.0)
    # an order with two categories counts once in each, so orders by category add up to more
    assert by_category["orders"].sum() > value(tiny.wh, "orders", YEAR)


def test_row_limits_apply_and_cannot_be_widened(tiny, oracle: Oracle) -> None:
    limited = YEAR.restrict({"region": "华东"})
    east = oracle("revenue", YEAR.start, YEAR.end, region="华东")
    assert close(value(tiny.wh, "revenue", limited), east)
    assert close(value(tiny.wh, "revenue", limited.narrow(region=["华东", "华南"])), east)
    assert value(tiny.wh, "revenue", limited.narrow(region="华南")) == 0.0
    assert value(tiny.wh, "aov", limited.narrow(region="华南")) is None
    table = breakdown(tiny.wh, ["revenue", "customers"], limited, ["region", "customer_type"])
    assert set(table["region"]) == {"华东"}
    series = timeseries(tiny.wh, "revenue", limited, ["region"])
    assert set(series["region"]) == {"华东"}
    # a KPI whose rows cannot be restricted to a region is refused, not shown unrestricted
    with pytest.raises(NotApplicableError, match="cac cannot be filtered"):
        value(tiny.wh, "cac", limited)
    row = overview(tiny.wh, ["revenue", "cac"], limited).set_index("metric")
    assert close(row.loc["revenue", "value"], east) and row.loc["cac", "value"] is None
    assert "region" in row.loc["cac", "note"]


def test_not_applicable_and_bad_breakdowns(tiny) -> None:
    with pytest.raises(NotApplicableError, match="supports: channel"):
        value(tiny.wh, "cac", YEAR.narrow(gender="女"))
    with pytest.raises(NotApplicableError):
        breakdown(tiny.wh, ["revenue"], YEAR, ["ticket_type"])
    with pytest.raises(ConfigError, match="1 to 3"):
        breakdown(tiny.wh, ["revenue"], YEAR, ["region", "city", "store", "tier"])
    with pytest.raises(ConfigError, match="unknown metric"):
        value(tiny.wh, "profit", YEAR)


def test_segment_table_is_the_seed_002_table(tiny, oracle: Oracle) -> None:
    table = segment_table(tiny.wh, YEAR)
    assert list(table.columns) == [
        "region",
        "customer_type",
        "customers",
        "aov",
        "repurchase_rate",
        "csat",
        "customers_share",
    ]
    total = oracle("customers", YEAR.start, YEAR.end)
    for row in table.itertuples():
        f = {"region": row.region, "customer_type": row.customer_type}
        for name in ("customers", "aov", "repurchase_rate", "csat"):
            assert close(getattr(row, name), oracle(name, YEAR.start, YEAR.end, **f)), (f, name)
        assert row.customers_share == pytest.approx(row.customers / total)
    assert list(table["customers"]) == sorted(table["customers"], reverse=True)


def test_top_n_folds_the_rest_into_other_with_exact_values(tiny, oracle: Oracle) -> None:
    table = breakdown(tiny.wh, ["revenue", "aov"], YEAR, ["category"], top=2)
    assert len(table) == 3 and table["category"].iloc[-1] == OTHER
    full = breakdown(tiny.wh, ["revenue"], YEAR, ["category"])
    top2 = list(full["category"][:2])
    assert list(table["category"][:2]) == top2
    rest = [c for c in full["category"] if c not in top2]
    other = table.iloc[-1]
    assert other["revenue"] == pytest.approx(full["revenue"][2:].sum())
    # 其他's 客单价 is its own revenue / its own orders, not an average of the categories' values
    assert close(other["aov"], oracle("aov", YEAR.start, YEAR.end, category=rest))


def test_timeseries_with_dimensions_fills_empty_cells(tiny) -> None:
    scope = Scope(date(2020, 5, 1), date(2020, 7, 31))
    series = timeseries(tiny.wh, ["orders", "aov"], scope, ["region"])
    june = series[series["period"] == "2020-06"]
    assert set(june["region"]) >= {"华东", "华南"}
    assert set(june.loc[june["metric"] == "orders", "value"]) == {0.0}
    assert set(june.loc[june["metric"] == "aov", "value"]) == {None}


def test_compare_columns_per_period(tiny, oracle: Oracle) -> None:
    scope = Scope(date(2021, 1, 1), date(2021, 3, 31))
    series = timeseries(tiny.wh, ["revenue", "repurchase_rate"], scope, compare=True)
    for row in series.itertuples():
        prev = oracle(row.metric, *_prev(row.start, row.end))
        year = oracle(row.metric, row.start.replace(year=2020), _month_end(row.end, 2020))
        assert close(row.previous, prev) and close(row.last_year, year)
        if row.metric == "revenue":
            assert row.change == pytest.approx(row.value / prev - 1)
        else:  # a rate changes in percentage points
            assert row.change_yoy == pytest.approx(row.value - year)


def _prev(start: date, end: date) -> tuple[date, date]:
    first = (pd.Timestamp(start) - pd.DateOffset(months=1)).date()
    return first, (pd.Timestamp(start) - pd.Timedelta(days=1)).date()


def _month_end(day: date, year: int) -> date:
    return (pd.Timestamp(year=year, month=day.month, day=1) + pd.offsets.MonthEnd(0)).date()


def test_targets(tiny, oracle: Oracle) -> None:
    jan = Scope(date(2021, 1, 1), date(2021, 1, 31))
    assert target(tiny.wh, "revenue", jan) == 3120.0
    q1 = Scope(date(2021, 1, 1), date(2021, 3, 31), "quarter")
    assert target(tiny.wh, "revenue", q1) == 9999.0  # the quarter's own target wins
    q4 = Scope(date(2020, 10, 1), date(2020, 12, 31), "quarter")
    assert target(tiny.wh, "revenue", q4) == 3090.0 + 3100.0 + 3110.0  # its months add up
    assert target(tiny.wh, "revenue", Scope(date(2021, 1, 1), date(2021, 1, 30))) is None
    assert target(tiny.wh, "revenue", jan.narrow(city="烟台")) == 1500.0
    assert target(tiny.wh, "revenue", jan.narrow(city="青岛")) is None
    assert target(tiny.wh, "revenue", jan.narrow(gender="女")) is None
    assert target(tiny.wh, "new_customers", q1.narrow(city="烟台")) == 9.0  # new_members rows
    assert target(tiny.wh, "aov", jan) is None
    # a stock's target is the one ending on the period's last day
    december = Scope(date(2020, 12, 1), date(2020, 12, 31))
    assert target(tiny.wh, "members", december.narrow(city="烟台")) == 50.0
    year_2020 = Scope(date(2020, 1, 1), date(2020, 12, 31), "year")
    assert target(tiny.wh, "members", year_2020.narrow(city=["烟台", "青岛"])) == 90.0

    table = vs_target(tiny.wh, "members", december, "city").set_index("city")
    for city, goal in (("烟台", 50.0), ("青岛", 40.0)):
        members = oracle("members", december.start, december.end, city=city)
        assert table.loc[city, "value"] == members and table.loc[city, "target"] == goal
        assert table.loc[city, "met"] == (members >= goal)
        assert table.loc[city, "gap"] == goal - members
    assert table.loc["广州", "target"] is None and table.loc["广州", "met"] is None

    row = overview(tiny.wh, ["revenue", "sales_target_attainment"], jan).set_index("metric")
    assert row.loc["revenue", "target"] == 3120.0
    assert row.loc["revenue", "attainment"] == pytest.approx(row.loc["revenue", "value"] / 3120.0)
    assert row.loc["revenue", "met"] == (row.loc["revenue", "value"] >= 3120.0)
    assert row.loc["sales_target_attainment", "value"] == pytest.approx(
        row.loc["revenue", "attainment"]
    )
    series = timeseries(tiny.wh, "revenue", q1, targets=True)
    assert series.loc[0, "target"] == 9999.0 and series.loc[0, "met"] is not None
