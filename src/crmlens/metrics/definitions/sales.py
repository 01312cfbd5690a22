"""Sales KPIs: revenue, orders, 客单价, buying customers, frequency, repurchase, target attainment.

Shared conventions: a *completed order* is an ``orders`` row that is not a refund
(``is_refund`` false); a *refund* is a row with ``is_refund`` true and a negative ``amount``, dated
when it was refunded. ``amount`` is what was paid, after discounts.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import IntegerValue, Table, Value

from crmlens.metrics.facts import PREV, bought, done
from crmlens.metrics.measures import Measure
from crmlens.metrics.metric import Format, Metric
from crmlens.metrics.query import TARGET_DIMENSIONS, Query

_CUSTOMER_DIMS = ("region", "customer_type", "tier")
#: ``targets.metric`` rows holding revenue targets (revenue and sales target attainment).
REVENUE_TARGETS = ("revenue",)


def completed(t: Table) -> Table:
    """Completed orders (not refunds) of an orders table."""
    return t.filter(done(t))


def buyers(t: Table) -> Table:
    """Completed orders placed by an identified customer."""
    return t.filter(bought(t))


def _order_count(q: Query, t: Table) -> IntegerValue:
    return q.count_distinct(t, "order_id", "orders")


def _customer_count(q: Query, t: Table) -> IntegerValue:
    return q.buyer_count(t)


def _aov(q: Query, t: Table) -> Value:
    count = q.count_distinct(t, "order_id", "orders", where=done(t))
    return t.amount.sum() / count.nullif(0)


def _purchase_frequency(q: Query, t: Table) -> Value:
    # the denominator is never 0 in a group with buyers, but fused with other measures it is also
    # computed for groups without (dropped afterwards), and Spark in ANSI mode (its default since
    # 4.0) fails on a division by zero
    return _order_count(q, t) / _customer_count(q, t).nullif(0)


#: Net revenue per period: completed orders plus refunds.
revenue = Measure("orders", lambda q, t: t.amount.sum(), adds_up="rows")
#: Completed orders per period.
orders = Measure("orders", _order_count, keep=done, adds_up="rows")
#: Distinct buying customers per period.
buying_customers = Measure("orders", _customer_count, keep=bought, adds_up="customers")


def _repurchase_share(q: Query, t: Table) -> Value:
    # on sequenced rows: each customer's last order in the period, and whether the one before is
    # in it too (kept to completed orders of identified customers, one last order per buyer)
    last = q.last_order(t)
    return t.count(where=last & (t[PREV] >= t.q__lo)) / t.count(where=last).nullif(0)


def _repurchase_by_customer(q: Query) -> Table:
    t = buyers(q.rows("orders"))
    per = t.group_by([*q.keys, "customer_id"]).aggregate(n=_order_count(q, t))
    return q.group(per, ibis.ifelse(per.n >= 2, 1.0, 0.0).mean())


#: Share of buying customers with two or more completed orders: one aggregate over the orders
#: (fused with the other KPIs over them) when they carry each order's neighbours.
_repurchase_rate = Measure(
    "orders",
    _repurchase_share,
    keep=bought,
    when=lambda q: q.sequenced,
    otherwise=_repurchase_by_customer,
)


def _sales_target_attainment(q: Query) -> Table:
    return q.ratio(revenue(q), q.targets(REVENUE_TARGETS, "sum"))


METRICS = (
    Metric(
        "revenue",
        "销售额(净)",
        "Revenue (net)",
        "Sum of orders.amount over every order row whose order_time falls in the period: completed "
        "orders plus refund rows (negative amounts), so a refund lowers the revenue of the period "
        "in which it is refunded, not that of the original order. Amounts are paid amounts after "
        "discounts. By category, each order's amount is split over its categories pro rata to the "
        "line amounts.",
        "money",
        revenue,
        ("orders",),
        "Sales",
        additive=True,
        default_dims=("city", "store", "category"),
        target_names=REVENUE_TARGETS,
        target_how="sum",
    ),
    Metric(
        "orders",
        "订单数",
        "Orders",
        "Number of distinct completed orders (is_refund false) whose order_time falls in the "
        "period; refunds are not orders. By category, an order counts once in each category it "
        "contains.",
        "count",
        orders,
        ("orders",),
        "Sales",
        additive=True,
        default_dims=("store", "order_channel"),
    ),
    Metric(
        "aov",
        "客单价",
        "Average order value",
        "Net revenue / completed orders of the period (both as defined above): refunds lower it "
        "rather than vanish. None when the period has no completed order.",
        "money",
        Measure("orders", _aov),
        ("orders",),
        "Sales",
        default_dims=_CUSTOMER_DIMS,
    ),
    Metric(
        "customers",
        "购买客户数",
        "Buying customers",
        "Number of distinct customers with at least one completed order in the period; walk-in "
        "orders without a customer_id are not counted.",
        "count",
        buying_customers,
        ("orders",),
        "Sales",
        additive=True,
        default_dims=_CUSTOMER_DIMS,
    ),
    Metric(
        "purchase_frequency",
        "购买频次",
        "Purchase frequency",
        "Completed orders placed by identified customers in the period / buying customers of the "
        "period: orders per buying customer. None when nobody bought.",
        "count",
        Measure("orders", _purchase_frequency, keep=bought),
        ("orders",),
        "Sales",
        format=Format(2),
        default_dims=_CUSTOMER_DIMS,
    ),
    Metric(
        "repurchase_rate",
        "复购率",
        "Repurchase rate",
        "Share of the period's buying customers who placed two or more completed orders in the "
        "period (two orders on the same day count as two). None when nobody bought.",
        "ratio",
        _repurchase_rate,
        ("orders",),
        "Sales",
        default_dims=_CUSTOMER_DIMS,
    ),
    Metric(
        "sales_target_attainment",
        "销售目标达成率",
        "Sales target attainment",
        "Net revenue / revenue target of the period. The target is the sum of the targets rows "
        "with metric revenue whose periods lie inside the period and cover all of its days (a "
        "quarter's own target if there is one, else its months'), for the whole company "
        "(dimension all) or for the one region, city or store filtered or grouped by. None "
        "without a complete target.",
        "ratio",
        _sales_target_attainment,
        ("orders",),
        "Targets",
        only_dims=TARGET_DIMENSIONS,
    ),
)
