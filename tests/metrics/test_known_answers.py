"""Every KPI against the pandas oracle on the tiny company, plus hand-computed edge cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from crmlens.metrics import REGISTRY, Period, Scope, compute, overview, timeseries, value

Oracle = Callable[..., float | None]
WHOLE = Scope(date(2019, 12, 1), date(2021, 3, 31), "month")
# other windows of the families, to check that the window really is a parameter
VARIANTS = ["retention_7d", "churn_rate_30d", "churned_customers_30d", "active_customers_30d"]
VARIANTS += ["ltv_90d", "ltv_cac_90d"]


def close(got: float | None, expected: float | None) -> bool:
    if expected is None or got is None:
        return got is None and expected is None
    return got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", [*REGISTRY, *VARIANTS])
def test_every_kpi_per_month_matches_the_oracle(tiny, oracle: Oracle, name: str) -> None:
    series = timeseries(tiny.wh, name, WHOLE)
    assert list(series["period"]) == [p.label for p in WHOLE.periods()]
    wrong = [
        (row.period, row.value, oracle(name, row.start, row.end))
        for row in series.itertuples()
        if not close(row.value, oracle(name, row.start, row.end))
    ]
    assert not wrong, wrong


ODD = [
    Period("leap", date(2020, 2, 15), date(2020, 3, 14)),  # across the leap day, not whole months
    Period("all", date(2019, 12, 1), date(2021, 3, 31)),  # everything
    Period("none", date(2019, 1, 1), date(2019, 1, 31)),  # before any data
]


def test_every_kpi_over_odd_overlapping_ranges_matches_the_oracle(tiny, oracle: Oracle) -> None:
    # one query per KPI evaluates all three (overlapping) periods at once
    scope = Scope(date(2019, 1, 1), date(2021, 3, 31), "day")
    wrong = []
    for name, m in REGISTRY.items():
        got = compute(tiny.wh, m, scope, ODD)["value"].tolist()
        expected = [oracle(name, p.start, p.end) for p in ODD]
        wrong += [(name, g, e) for g, e in zip(got, expected, strict=True) if not close(g, e)]
        # before any data: 0 for counts and totals, None for everything else
        assert got[2] == m.empty_value, name
    assert not wrong, wrong


def test_iso_weeks_across_the_year_end(tiny, oracle: Oracle) -> None:
    scope = Scope(date(2020, 12, 16), date(2021, 1, 12), "week")
    series = timeseries(tiny.wh, ["revenue", "orders", "customers", "aov"], scope)
    revenue = series[series["metric"] == "revenue"]
    assert list(revenue["period"]) == ["2020-W51", "2020-W52", "2020-W53", "2021-W01", "2021-W02"]
    # 2020-W53 runs Monday 2020-12-28 to Sunday 2021-01-03; the first and last weeks are clipped
    w53 = revenue.iloc[2]
    assert (w53.start, w53.end) == (date(2020, 12, 28), date(2021, 1, 3))
    assert (revenue.iloc[0].start, revenue.iloc[-1].end) == (date(2020, 12, 16), date(2021, 1, 12))
    for row in series.itertuples():
        assert close(row.value, oracle(row.metric, row.start, row.end)), row


def test_day_boundaries_are_local_midnight(tiny, oracle: Oracle) -> None:
    # 2020-12-31 23:59:59 belongs to 2020, 2021-01-01 00:00:00 to 2021 (naive local time)
    series = timeseries(tiny.wh, "revenue", Scope(date(2020, 12, 31), date(2021, 1, 1), "day"))
    for row in series.itertuples():
        assert close(row.value, oracle("revenue", row.start, row.end))
    frame = tiny.frames["orders"]
    on_new_year = frame[frame["order_time"].dt.strftime("%Y-%m-%d") == "2021-01-01"]
    assert series.iloc[1].value == pytest.approx(on_new_year["amount"].sum())


def test_leap_day(tiny) -> None:
    day = Scope(date(2020, 2, 29), date(2020, 2, 29), "day")
    got = {n: value(tiny.wh, n, day) for n in ("revenue", "orders", "customers", "aov")}
    assert got == {"revenue": 100.0, "orders": 1.0, "customers": 1.0, "aov": 100.0}
    february = overview(tiny.wh, ["revenue"], Scope(date(2021, 2, 1), date(2021, 2, 28)))
    assert february.loc[0, "last_year_period"] == "2020-02"  # 2020-02-01..2020-02-29
    whole_feb = value(tiny.wh, "revenue", Scope(date(2020, 2, 1), date(2020, 2, 29)))
    assert february.loc[0, "last_year"] == pytest.approx(whole_feb)


def test_a_month_without_orders(tiny) -> None:
    june = Scope(date(2020, 6, 1), date(2020, 6, 30))
    zero = ("revenue", "orders", "customers")
    undefined = ("aov", "purchase_frequency", "repurchase_rate", "retention_30d")
    assert {n: value(tiny.wh, n, june) for n in zero} == dict.fromkeys(zero, 0.0)
    assert {n: value(tiny.wh, n, june) for n in undefined} == dict.fromkeys(undefined)
    # everyone active at the start of June went 30 days without buying: all churned
    assert value(tiny.wh, "churn_rate_30d", june) == 1.0


def test_refunds_lower_revenue_when_refunded(tiny, oracle: Oracle) -> None:
    frame = tiny.frames["orders"]
    assert (frame["order_id"] == "RCROSS").sum() == 1  # a 2021-01-31 order refunded on 2021-02-01
    feb_first = Scope(date(2021, 2, 1), date(2021, 2, 1), "day")
    on_day = frame[frame["order_time"].dt.strftime("%Y-%m-%d") == "2021-02-01"]
    assert value(tiny.wh, "revenue", feb_first) == pytest.approx(on_day["amount"].sum())
    assert -55.0 in set(on_day["amount"])
    # refunds are not orders: orders that day = sales rows only
    assert value(tiny.wh, "orders", feb_first) == (~on_day["is_refund"]).sum()


def test_a_customer_with_one_order_is_a_buyer_who_did_not_repurchase(tiny) -> None:
    c001 = tiny.frames["orders"].query("customer_id == 'C001' and not is_refund")
    assert len(c001) == 1
    march_10 = Scope(date(2020, 3, 10), date(2020, 3, 10), "day")
    buyers = tiny.frames["orders"].query(
        "customer_id.notna() and not is_refund and order_time.dt.strftime('%Y-%m-%d') == '2020-03-10'"
    )
    counts = buyers.groupby("customer_id").size()
    assert value(tiny.wh, "repurchase_rate", march_10) == pytest.approx((counts >= 2).mean())
