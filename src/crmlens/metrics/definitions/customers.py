"""Customer-base KPIs: members, new and active customers, retention and churn.

The KPIs with a window in days are families: ``retention(7)`` declares ``retention_7d``, and the
registry resolves such names (see :func:`crmlens.metrics.registry.metric`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache, partial

import ibis
from ibis.expr.types import Table

from crmlens.metrics.definitions.sales import buyers, buying_customers
from crmlens.metrics.measures import Measure, row_count
from crmlens.metrics.metric import Metric
from crmlens.metrics.query import UP_TO_END, Query, Window

ACTIVE_DAYS = 90
CHURN_DAYS = 90
RETENTION_DAYS = 30
_CUSTOMER_DIMS = ("region", "customer_type", "tier")


#: Customers who signed up in each period.
new_customers = Measure("customers", row_count, adds_up="rows")
#: Customers signed up by each period's end.
_members = Measure("customers", row_count, window=UP_TO_END, adds_up="rows")


def _churn_flags(q: Query, days: int) -> Table:
    """Customers active at each period's start, with ``churned`` when they have no completed order
    in the ``days`` days ending on the period's last day."""
    keys = [*q.keys, "customer_id"]
    base = q.customers_in(buyers(q.rows("orders", Window.days_before(days))), keys)
    recent = q.customers_in(buyers(q.rows("orders", Window.days_ending(days))), keys)
    recent = recent.rename({f"r__{k}": k for k in keys})
    j = base.left_join(recent, [base[k] == recent[f"r__{k}"] for k in keys])
    return j.select(*keys, churned=ibis.ifelse(j.r__customer_id.isnull(), 1.0, 0.0))


def _churn_counts(q: Query, days: int) -> tuple[Table, Table]:
    """Per period and dimension values: customers who churned, and customers active at the
    start, each a count of one completed order per customer (for :attr:`Query.sequenced` rows and
    periods of at most ``days`` days).

    Active at the start: the last order before the first day is in the ``days`` days before it.
    Churned: the last order before the day after the period is at least ``days`` days before that
    day, and (the period being no longer than ``days``) so before the first day, in its ``days``
    days: the customer was active at the start.
    """
    before = buyers(q.rows("orders", Window.days_before(days)))
    base = q.group(before, q.buyer_count(before))
    quiet = buyers(q.rows("orders", Window(("start", -days), ("end", 1 - days))))
    churned = q.group(quiet, q.buyer_count(quiet, quiet.q__hi + ibis.interval(days=days)))
    return churned, base


def _short_periods(q: Query, days: int) -> bool:
    return q.sequenced and all(p.days <= days for p in q.periods)


def _churned(q: Query, days: int) -> Table:
    if _short_periods(q, days):
        churned, base = _churn_counts(q, days)
        return q.combine(churned, base, lambda n, d: n)
    flags = _churn_flags(q, days)
    return q.group(flags, flags.churned.sum())


def _churn_rate(q: Query, days: int) -> Table:
    if _short_periods(q, days):
        return q.ratio(*_churn_counts(q, days))
    flags = _churn_flags(q, days)
    return q.group(flags, flags.churned.mean())


def _retention(q: Query, days: int) -> Table:
    cohort = q.tag(q.first_orders(), "ts")
    day = cohort.ts.truncate("D")
    if "return_ts" in cohort.columns:  # the first orders read from their derived table
        came_back = cohort.return_ts < day + ibis.interval(days=days + 1)
        return q.group(cohort, cohort.count(where=came_back) / cohort.count())
    # a first order in a period is on its first day or later: a return 1 to N days after it
    history = buyers(q.history("orders", within=Window(("start", 1), ("end", days + 1))))
    who = [*q.by, "customer_id"]
    # "1 to N days after the day of the first order" as a time range on the order rows, so the
    # small cohort joins the order rows directly (no distinct over every customer-day of history)
    cohort = cohort.select(
        *q.keys,
        "customer_id",
        r__lo=day + ibis.interval(days=1),
        r__hi=day + ibis.interval(days=days + 1),
    ).view()  # a fresh reference: the projected period join cannot take more join predicates
    later = history.select(**{f"l__{k}": history[k] for k in who}, l__ts=history.ts)
    j = cohort.left_join(
        later,
        [
            *[cohort[k] == later[f"l__{k}"] for k in who],
            later.l__ts >= cohort.r__lo,
            later.l__ts < cohort.r__hi,
        ],
    )
    # a cohort member is one row per period and dimension values, or several with later orders:
    # distinct counts give members who came back / members
    return q.group(j, j.l__customer_id.nunique() / j.customer_id.nunique())


@cache  # one object per argument: equal metrics are the same key (query plans)
def active_customers(days: int = ACTIVE_DAYS) -> Metric:
    """Customers with a completed order in the ``days`` days ending on the period's last day."""
    return Metric(
        "active_customers" if days == ACTIVE_DAYS else f"active_customers_{days}d",
        f"活跃客户({days}天)",
        f"Active customers ({days} days)",
        f"Number of distinct customers with at least one completed order in the {days} days "
        "ending on the period's last day (a stock at the period end, whatever the period's "
        "length).",
        "count",
        replace(buying_customers, window=Window.days_ending(days)),
        ("orders",),
        "Customers",
        additive=True,
        default_dims=_CUSTOMER_DIMS,
        days=days,
        family="active_customers_{days}d",
        vary=active_customers,
    )


@cache  # one object per argument: equal metrics are the same key (query plans)
def churned_customers(days: int = CHURN_DAYS) -> Metric:
    """Customers active at the period start who then went ``days`` days without buying."""
    return Metric(
        "churned_customers" if days == CHURN_DAYS else f"churned_customers_{days}d",
        "流失客户数",
        f"Churned customers ({days} days)",
        f"Customers active at the period's start — at least one completed order in the {days} "
        f"days before its first day — who have no completed order in the {days} days ending on "
        f"its last day: they became churned during the period ({days} days after their last "
        "order). Customers who first bought during the period are not counted.",
        "count",
        partial(_churned, days=days),
        ("orders",),
        "Customers",
        direction="down",
        additive=True,
        default_dims=_CUSTOMER_DIMS,
        days=days,
        family="churned_customers_{days}d",
        vary=churned_customers,
    )


@cache  # one object per argument: equal metrics are the same key (query plans)
def churn_rate(days: int = CHURN_DAYS) -> Metric:
    """Churned customers / customers active at the period start."""
    return Metric(
        "churn_rate" if days == CHURN_DAYS else f"churn_rate_{days}d",
        "流失率",
        f"Churn rate ({days} days)",
        f"Churned customers ({days}-day inactivity, as above) / customers active at the period's "
        f"start (a completed order in the {days} days before its first day). None when nobody "
        "was active at the start.",
        "ratio",
        partial(_churn_rate, days=days),
        ("orders",),
        "Customers",
        direction="down",
        default_dims=_CUSTOMER_DIMS,
        days=days,
        family="churn_rate_{days}d",
        vary=churn_rate,
    )


@cache  # one object per argument: equal metrics are the same key (query plans)
def retention(days: int = RETENTION_DAYS) -> Metric:
    """N-day retention of the customers whose first order falls in the period."""
    return Metric(
        f"retention_{days}d",
        f"{days}天留存率",
        f"{days}-day retention",
        "Of the customers whose first completed order ever falls in the period (first within the "
        "scope's filters: with a store filter, the first order at that store), the share with "
        f"another completed order 1 to {days} days after the day of that first order (a later "
        f"day; same-day orders do not count). Cohorts whose {days}-day window runs past the "
        "latest loaded order are still maturing and read low. None when the period has no "
        "first-time buyer.",
        "ratio",
        partial(_retention, days=days),
        ("orders",),
        "Customers",
        default_dims=("channel", "region", "customer_type"),
        days=days,
        family="retention_{days}d",
        vary=retention,
    )


METRICS = (
    Metric(
        "new_customers",
        "新增客户数",
        "New customers",
        "Number of customers whose signup_date falls in the period (customers without a signup "
        "date are never new). Targets: rows with metric new_customers or new_members.",
        "count",
        new_customers,
        ("customers",),
        "Customers",
        additive=True,
        default_dims=("channel", "city", "store"),
        target_names=("new_customers", "new_members"),
        target_how="sum",
    ),
    Metric(
        "members",
        "会员数",
        "Members",
        "Cumulative number of customers signed up on or before the period's last day (a stock; "
        "customers without a signup date are not counted). By store: the home store (注册门店); "
        "by city: the customer's city. Target: the targets row with metric members whose period "
        "ends on the period's last day (e.g. a year-end goal).",
        "count",
        _members,
        ("customers",),
        "Customers",
        additive=True,
        default_dims=("city", "store"),
        target_names=("members",),
        target_how="last",
    ),
    active_customers(),
    churned_customers(),
    churn_rate(),
    retention(),
)
