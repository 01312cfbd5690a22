"""Lifecycle status and the member trend (crmlens.metrics.lifecycle): a plain-pandas oracle on the
tiny company, hand-known answers, and the planted COVID dip of the demo company (which is
generated once here and also used for the cohort-retention sanity checks)."""

from __future__ import annotations

import doctest
import importlib
import json
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from typing import Any

import pandas as pd
import pytest

from crmlens.errors import ConfigError
from crmlens.metrics import (
    STATUSES,
    NotApplicableError,
    Scope,
    cohort_table,
    lifecycle,
    loyal_members,
    member_trend,
    timeseries,
)
from crmlens.metrics.registry import check_metric
from crmlens.warehouse import Warehouse

#: The lifecycle module (as an attribute, ``crmlens.metrics.lifecycle`` is the function).
lifecycle_module = importlib.import_module("crmlens.metrics.lifecycle")

MONTHS = Scope(date(2019, 12, 1), date(2021, 3, 31), "month")
WEEKS = Scope(date(2020, 11, 30), date(2021, 2, 28), "week")  # across 2020-W53
DAY = pd.Timedelta(days=1)
FREQ = {"month": "M", "week": "W-SUN"}


def _label(p: pd.Period) -> str:
    if p.freqstr.startswith("W"):
        year, week, _ = p.start_time.isocalendar()
        return f"{year}-W{week:02d}"
    return str(p)


def _buckets(scope: Scope) -> pd.PeriodIndex:
    return pd.period_range(scope.start, scope.end, freq=FREQ[scope.grain])


def _completed(oracle: Any, scope: Scope, filters: dict) -> pd.DataFrame:
    o = oracle.rows("orders", scope.end, filters)
    return o[o["customer_id"].notna() & ~o["is_refund"]]


def expected_lifecycle(oracle: Any, scope: Scope, **filters: object) -> pd.DataFrame:
    """PostHog's four statuses, by sets of customers per period."""
    buckets = _buckets(scope)
    done = _completed(oracle, scope, filters)
    at = done["order_time"].dt.to_period(FREQ[scope.grain])
    first = done.groupby("customer_id")["order_time"].min()
    rows = []
    for prev, cur in pairwise([buckets[0] - 1, *buckets]):
        now = set(done.loc[at == cur, "customer_id"])
        was = set(done.loc[at == prev, "customer_id"])
        new = {c for c in now if first[c] >= cur.start_time}
        counts = [len(new), len(now & was), len(now - was - new), -len(was - now)]
        rows += [(_label(cur), s, n) for s, n in zip(STATUSES, counts, strict=True)]
    return pd.DataFrame(rows, columns=["period", "status", "customers"])


def expected_trend(
    oracle: Any, scope: Scope, churn_days: int = 90, loyal_months: int = 3, **filters: object
) -> pd.DataFrame:
    """New / loyal / churned / all members per period, restated without the KPI windows."""
    customers = oracle.rows("customers", scope.end, filters)
    signup = customers["signup_date"].dropna()
    done = _completed(oracle, scope, filters)
    # churn: a customer lapses churn_days after an order not followed by another within
    # churn_days, and counts for the period of that day unless they buy again before it ends
    # (the KPI's "active at the start, inactive at the end" for periods up to churn_days long)
    days = done.assign(day=done["order_time"].dt.normalize())[["customer_id", "day"]]
    days = days.drop_duplicates().sort_values(["customer_id", "day"])
    following = days.groupby("customer_id")["day"].shift(-1)
    lapse = days["day"] + churn_days * DAY
    rows = []
    for p in _buckets(scope):
        lo, hi = p.start_time, p.end_time.normalize() + DAY
        loyal = None
        for j in range(loyal_months):
            a, b = hi - pd.DateOffset(months=j + 1), hi - pd.DateOffset(months=j)
            buyers = set(
                done.loc[(done["order_time"] >= a) & (done["order_time"] < b), "customer_id"]
            )
            loyal = buyers if loyal is None else loyal & buyers
        rows.append(
            (
                _label(p),
                int(((signup >= lo) & (signup < hi)).sum()),
                len(loyal or ()),
                int(((lapse >= lo) & (lapse < hi) & ~(following < hi)).sum()),
                int((signup < hi).sum()),
            )
        )
    columns = ["period", "new_members", "loyal_members", "churned_members", "members"]
    return pd.DataFrame(rows, columns=columns)


@pytest.mark.parametrize("scope", [MONTHS, WEEKS], ids=["month", "week"])
@pytest.mark.parametrize("filters", [{}, {"region": "华东"}, {"store": "S01"}], ids=str)
def test_lifecycle_matches_the_oracle(tiny, oracle, scope: Scope, filters: dict) -> None:
    got = lifecycle(tiny.wh, scope.narrow(**filters))
    pd.testing.assert_frame_equal(got, expected_lifecycle(oracle, scope, **filters))


@pytest.mark.parametrize("scope", [MONTHS, WEEKS], ids=["month", "week"])
@pytest.mark.parametrize(
    "filters, churn_days, loyal_months",
    [({}, 90, 3), ({"region": "华东"}, 90, 3), ({"store": "S01"}, 45, 2), ({}, 60, 1)],
    ids=str,
)
@pytest.mark.parametrize("mask_bits", [62, 0], ids=["bits", "grouped"])
def test_member_trend_matches_the_oracle(
    tiny,
    oracle,
    scope: Scope,
    filters: dict,
    churn_days: int,
    loyal_months: int,
    mask_bits: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # loyal members by each customer's windows as bits, and (too many windows) grouped
    monkeypatch.setattr(lifecycle_module, "_MASK_BITS", mask_bits)
    got = member_trend(
        tiny.wh, scope.narrow(**filters), churn_days=churn_days, loyal_months=loyal_months
    )
    assert list(got["start"]) == [p.start for p in scope.periods()]
    expected = expected_trend(oracle, scope, churn_days, loyal_months, **filters)
    pd.testing.assert_frame_equal(got.drop(columns=["start", "end"]), expected)


def test_active_statuses_add_up_to_the_buying_customers(tiny) -> None:
    table = lifecycle(tiny.wh, MONTHS).pivot(index="period", columns="status", values="customers")
    buyers = timeseries(tiny.wh, "customers", MONTHS).set_index("period")["value"]
    assert (table[["new", "returning", "resurrecting"]].sum(axis=1) == buyers).all()
    # dormant = last period's buyers who did not come back; the empty month has no activity
    assert (
        -table["dormant"].iloc[1:] == buyers.shift().iloc[1:] - table["returning"].iloc[1:]
    ).all()
    assert table.loc["2020-06", ["new", "returning", "resurrecting"]].sum() == 0
    assert table.loc["2020-07", "returning"] == 0 and table.loc["2020-07", "dormant"] == 0
    assert table.loc["2020-06", "dormant"] == -buyers["2020-05"]


def test_grain_argument_overrides_the_scopes(tiny) -> None:
    as_weeks = Scope(WEEKS.start, WEEKS.end, "month")
    pd.testing.assert_frame_equal(
        lifecycle(tiny.wh, as_weeks, grain="week"), lifecycle(tiny.wh, WEEKS)
    )
    pd.testing.assert_frame_equal(
        member_trend(tiny.wh, as_weeks, grain="week"), member_trend(tiny.wh, WEEKS)
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, insert) -> Iterator[Warehouse]:
    """Four customers and a walk-in around January to April 2021, with hand-known answers."""
    wh = Warehouse(tmp_path_factory.mktemp("lifecycle") / "small.duckdb")
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "E"],
            "region": ["华东", "华东", "华南", "华东"],
            "signup_date": pd.to_datetime(["2020-06-01", "2021-01-05", "2020-01-01", "2021-03-15"]),
        }
    )
    rows = [  # id, customer, time, amount, refund
        ("O1", "A", "2021-01-10 10:00", 100.0, False),
        ("O2", "A", "2021-02-05 10:00", 60.0, False),
        ("O3", "A", "2021-03-03 10:00", 50.0, False),
        ("O4", "B", "2021-01-20 10:00", 80.0, False),
        ("R4", "B", "2021-02-02 10:00", -80.0, True),  # a refund is not activity
        ("O5", "B", "2021-04-01 10:00", 30.0, False),
        ("O6", "C", "2020-11-15 10:00", 40.0, False),  # 90 days later: 2021-02-13
        ("O7", "C", "2021-03-20 10:00", 40.0, False),
        ("O8", None, "2021-01-15 10:00", 99.0, False),  # a walk-in
    ]
    orders = pd.DataFrame(rows, columns=["order_id", "customer_id", "order_time", "amount", "x"])
    orders = orders.assign(order_time=pd.to_datetime(orders["order_time"]), store_id="S01")
    insert(wh, "customers", customers)
    insert(wh, "orders", orders.rename(columns={"x": "is_refund"}))
    yield wh
    wh.close()


SMALL = Scope(date(2021, 1, 1), date(2021, 4, 30))


def test_lifecycle_known_answers(small) -> None:
    table = lifecycle(small, SMALL).pivot(index="period", columns="status", values="customers")
    assert table[list(STATUSES)].values.tolist() == [
        [2, 0, 0, 0],  # A and B buy for the first time; C's November is two months back
        [0, 1, 0, -1],  # A returns; B only has a refund
        [0, 1, 1, 0],  # C comes back after four months
        [0, 0, 1, -2],  # B comes back; A and C do not
    ]


@pytest.mark.parametrize(
    "churn_days, loyal_months, loyal, churned, south",
    [
        # A bought Jan-Mar; C (华南) lapsed on 2021-02-13
        (90, 3, [0, 0, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0]),
        # B lapses in Feb (the refund does not count); A and C (华南) in April
        (30, 2, [0, 1, 1, 0], [0, 1, 0, 2], [0, 0, 0, 1]),
    ],
)
def test_member_trend_known_answers(small, churn_days, loyal_months, loyal, churned, south) -> None:
    trend = member_trend(small, SMALL, churn_days=churn_days, loyal_months=loyal_months)
    assert trend["period"].tolist() == ["2021-01", "2021-02", "2021-03", "2021-04"]
    assert trend["new_members"].tolist() == [1, 0, 1, 0]
    assert trend["members"].tolist() == [3, 3, 4, 4]
    assert trend["loyal_members"].tolist() == loyal
    assert trend["churned_members"].tolist() == churned
    only_south = member_trend(small, SMALL.narrow(region="华南"), churn_days=churn_days)
    assert only_south["churned_members"].tolist() == south
    assert only_south["members"].tolist() == [1, 1, 1, 1]


def test_refused_arguments_and_filters(small) -> None:
    with pytest.raises(ConfigError):
        member_trend(small, SMALL, loyal_months=0)
    with pytest.raises(ConfigError):
        lifecycle(small, SMALL, grain="fortnight")
    # new members and members come from customers, which have no product category
    with pytest.raises(NotApplicableError):
        member_trend(small, SMALL.narrow(category="零食"))


def test_loyal_members_is_a_valid_kpi_declaration() -> None:
    for months in (1, 3, 6):
        check_metric(loyal_members(months))
    assert loyal_members(6).name == "loyal_members_6m"


def test_doctests() -> None:
    result = doctest.testmod(importlib.import_module("crmlens.metrics.lifecycle"))
    assert result.failed == 0 and result.attempted > 0


# -- the planted demo company --------------------------------------------------------------------
END = date(2021, 12, 31)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, dict]]:
    try:
        from crmlens.demo import DemoConfig, generate
        from crmlens.ingest import load_demo_export
    except ImportError as exc:  # the generator and loader are built alongside the metrics
        pytest.skip(f"demo generator or loader not available: {exc}")
    out = tmp_path_factory.mktemp("demo-lifecycle")
    generate(DemoConfig(customers=8_000, seed=42, out_dir=out / "export"))
    wh = Warehouse(out / "demo.duckdb")
    load_demo_export(wh, out / "export")
    planted = json.loads((out / "export" / "planted.json").read_text("utf-8"))
    yield wh, planted["effects"]
    wh.close()


def _change(series: pd.Series, first: str, last: str, base_first: str, base_last: str) -> float:
    return series[first:last].mean() / series[base_first:base_last].mean() - 1


def test_the_planted_dip_in_the_member_trend(demo) -> None:
    wh, effects = demo
    effect = effects["covid_dip"]
    r, tolerance = effect["realised"], effect["tolerance"]["relative_change"]
    trend = member_trend(wh, Scope(date(2019, 1, 1), END)).set_index("period")
    new = trend["new_members"].astype(float)
    assert new.to_dict() == {m: float(v) for m, v in r["monthly"]["new_members"].items()}
    dip = _change(new, "2020-10", "2021-02", "2019-10", "2020-02")
    assert dip == pytest.approx(r["new_members_change"], abs=tolerance) and dip < -0.2
    recovery = _change(new, "2021-03", "2021-06", "2020-10", "2021-02")
    assert recovery == pytest.approx(r["recovery_new_members_change"], abs=tolerance)
    assert recovery > 0

    # churn: planted.json counts only members who never come back (it knows the data's end);
    # ours also counts a lapse followed by a return, so it is never lower, and equal in the last
    # month (nobody who lapses in December 2021 can have come back by its end)
    churned = trend["churned_members"].astype(float)
    planted = pd.Series(r["monthly"]["churned"], dtype=float)
    assert (churned >= planted[churned.index]).all()
    assert churned["2021-12"] == planted["2021-12"]
    assert _change(churned, "2020-10", "2021-02", "2019-10", "2020-02") > 0.2
    assert churned["2021-03":"2021-06"].mean() < churned["2020-10":"2021-02"].mean()
    assert r["churned_change"] > 0.2 and r["recovery_churned_change"] < 0

    # loyal members and all members: plausible stocks
    assert (trend["loyal_members"] <= trend["members"]).all()
    assert trend["members"].is_monotonic_increasing and trend["members"].iloc[-1] == 8_000


def test_demo_lifecycle_and_cohorts_are_consistent(demo) -> None:
    wh, _ = demo
    months = Scope(date(2020, 1, 1), END)
    table = lifecycle(wh, months).pivot(index="period", columns="status", values="customers")
    buyers = timeseries(wh, "customers", months).set_index("period")["value"]
    assert (table[["new", "returning", "resurrecting"]].sum(axis=1) == buyers).all()
    assert (table["dormant"] < 0).all()

    on = cohort_table(wh, months)
    after = cohort_table(wh, months, mode="on_or_after")
    for t in (on, after):
        assert t["rate"].dropna().between(0, 1).all()
        assert (t.loc[t["period_index"] == 0, "rate"] == 1.0).all()
    assert (after["value"] >= on["value"]).all()
    # on_or_after never rises along a cohort
    assert (after.groupby("cohort")["value"].diff().dropna() <= 0).all()
    signup = cohort_table(wh, months, cohort_by="signup", mode="on_or_after")
    assert signup["rate"].dropna().between(0, 1).all()
