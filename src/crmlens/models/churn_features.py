"""Churn features and labels as of a cutoff, as Ibis expressions (A6).

Every function takes ``tables`` (a callable from a canonical table name to an Ibis table; pass
``wh.table``) and returns an *unexecuted* Ibis expression; run it with ``wh.execute(expr)``.

**No leakage.** Features as of a cutoff read only rows dated at or before it: orders by
``order_time`` (refunds after the cutoff are ignored, see :mod:`crmlens.models.features`), tickets
by ``opened_at`` (their satisfaction only once closed), surveys by ``responded_at``, campaign opens
and clicks by their own timestamps, app events by ``event_time``. The exceptions are the master
attributes ``member_tier`` and ``customer_type`` and the signup date, which the warehouse keeps as
one current snapshot per customer.

**Windows.** "Last 30/90 days" are the 30/90 days ending at the cutoff; "the 90 days before" are
days 91-180 before it. A ``date`` cutoff means the end of that day, as in ``features.py``.

**Sparse sources.** Service, survey, marketing and app signals are always present as columns; when
a source table is empty they are 0 or null for everyone, and the estimator drops such constant
columns, so a warehouse holding only orders still gets a model.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from crmlens.errors import ConfigError
from crmlens.models.features import Tables, as_of_day, customer_features, cutoff, transactions

#: Numeric feature columns of :func:`churn_feature_table`, in order.
NUMERIC_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "tenure_days",
    "member_days",
    "orders_30d",
    "orders_90d",
    "orders_prev_90d",
    "orders_change_90d",
    "spend_30d",
    "spend_90d",
    "spend_prev_90d",
    "spend_change_90d",
    "mean_gap_days",
    "last_gap_days",
    "overdue_ratio",
    "distinct_categories",
    "discount_share",
    "refund_share",
    "tickets_90d",
    "complaints_90d",
    "last_satisfaction",
    "last_nps",
    "touches_90d",
    "opens_90d",
    "clicks_90d",
    "app_sessions_30d",
)
#: Categorical columns (one-hot encoded by the estimator).
CATEGORICAL_FEATURES = ("member_tier", "customer_type")
#: ``service_tickets.ticket_type`` values counted as complaints.
COMPLAINT_TYPES = ("投诉", "complaint")
#: The ``app_events.app`` of the customers' shopping app (``crm`` events are staff, not customers).
SHOP_APP = "shop_app"


# Reason text per feature, one line each: name | zh, en when the value is above the population's
# typical value | zh, en when below it. The reason is the feature that moved the risk, so the
# wording says which way it moved.
_TEXT_TABLE = """
recency_days | {v:.0f}天未购买 | no purchase in {v:.0f} days | {v:.0f}天前刚购买 | bought {v:.0f} days ago
frequency | 购买{v:.0f}次 | {v:.0f} purchases | 购买次数少({v:.0f}次) | few purchases ({v:.0f})
monetary | 累计消费高({v:,.0f}元) | high total spend ({v:,.0f}) | 累计消费低({v:,.0f}元) | low total spend ({v:,.0f})
aov | 客单价高({v:,.0f}元) | high order value ({v:,.0f}) | 客单价低({v:,.0f}元) | low order value ({v:,.0f})
tenure_days | 老客户(首购于{v:.0f}天前) | long-standing customer (first order {v:.0f} days ago) | 新客户(首购于{v:.0f}天前) | new customer (first order {v:.0f} days ago)
member_days | 入会{v:.0f}天 | member for {v:.0f} days | 入会时间短({v:.0f}天) | recent member ({v:.0f} days)
orders_30d | 近30天购买{v:.0f}次 | {v:.0f} orders in the last 30 days | 近30天购买少({v:.0f}次) | few orders in the last 30 days ({v:.0f})
orders_90d | 近90天购买{v:.0f}次 | {v:.0f} orders in the last 90 days | 近90天购买少({v:.0f}次) | few orders in the last 90 days ({v:.0f})
orders_prev_90d | 此前90天购买{v:.0f}次 | {v:.0f} orders in the 90 days before | 此前90天购买少({v:.0f}次) | few orders in the 90 days before ({v:.0f})
orders_change_90d | 消费频次上升 | buying more often | 消费频次下降 | buying less often
spend_30d | 近30天消费{v:,.0f}元 | spent {v:,.0f} in the last 30 days | 近30天消费少({v:,.0f}元) | spent little in the last 30 days ({v:,.0f})
spend_90d | 近90天消费{v:,.0f}元 | spent {v:,.0f} in the last 90 days | 近90天消费少({v:,.0f}元) | spent little in the last 90 days ({v:,.0f})
spend_prev_90d | 此前90天消费{v:,.0f}元 | spent {v:,.0f} in the 90 days before | 此前90天消费少({v:,.0f}元) | spent little in the 90 days before ({v:,.0f})
spend_change_90d | 消费金额上升 | spending more | 消费金额下降 | spending less
mean_gap_days | 购买间隔长(平均{v:.0f}天) | long gaps between orders ({v:.0f} days on average) | 购买间隔短(平均{v:.0f}天) | short gaps between orders ({v:.0f} days on average)
last_gap_days | 上次购买间隔长({v:.0f}天) | long last gap between orders ({v:.0f} days) | 上次购买间隔短({v:.0f}天) | short last gap between orders ({v:.0f} days)
overdue_ratio | 超过平时购买间隔({v:.1f}倍) | overdue: {v:.1f} times the usual gap | 仍在平时购买间隔内 | within the usual gap between orders
distinct_categories | 购买品类多({v:.0f}类) | broad basket ({v:.0f} categories) | 购买品类少({v:.0f}类) | narrow basket ({v:.0f} categories)
discount_share | 依赖优惠(折扣占{v:.0%}) | buys on discount ({v:.0%} off) | 很少使用优惠({v:.0%}) | rarely uses discounts ({v:.0%})
refund_share | 退款较多({v:.0%}) | many refunds ({v:.0%}) | 退款少({v:.0%}) | few refunds ({v:.0%})
tickets_90d | 近90天服务工单{v:.0f}个 | {v:.0f} service tickets in 90 days | 近90天无服务工单 | no service tickets in 90 days
complaints_90d | 近期有投诉 | recent complaint | 近期无投诉 | no recent complaint
last_satisfaction | 满意度高({v:.0f}/5) | high satisfaction ({v:.0f}/5) | 满意度低({v:.0f}/5) | low satisfaction ({v:.0f}/5)
last_nps | 推荐意愿高(NPS {v:.0f}) | likely to recommend (NPS {v:.0f}) | 推荐意愿低(NPS {v:.0f}) | unlikely to recommend (NPS {v:.0f})
touches_90d | 近90天营销触达多({v:.0f}次) | many marketing messages in 90 days ({v:.0f}) | 近90天营销触达少({v:.0f}次) | few marketing messages in 90 days ({v:.0f})
opens_90d | 营销互动多(近90天打开{v:.0f}次) | opens marketing messages ({v:.0f} in 90 days) | 营销互动减少(近90天打开{v:.0f}次) | not opening marketing messages ({v:.0f} in 90 days)
clicks_90d | 营销点击多(近90天{v:.0f}次) | clicks marketing messages ({v:.0f} in 90 days) | 营销点击少(近90天{v:.0f}次) | not clicking marketing messages ({v:.0f} in 90 days)
app_sessions_30d | App活跃(近30天{v:.0f}次) | active in the app ({v:.0f} sessions in 30 days) | App活跃度低(近30天{v:.0f}次) | little app activity ({v:.0f} sessions in 30 days)
member_tier | 会员等级: {v} | member tier: {v} | 会员等级: {v} | member tier: {v}
customer_type | 客户类型: {v} | customer type: {v} | 客户类型: {v} | customer type: {v}
"""
_TEXT: dict[str, list[str]] = {
    row.split(" | ")[0]: row.split(" | ")[1:] for row in _TEXT_TABLE.strip().splitlines()
}


def describe_feature(name: str, value: Any, typical: Any) -> tuple[str, str]:
    """Chinese and English reason text for a feature ``value`` compared with the ``typical`` one.

    >>> describe_feature("recency_days", 120, 30)
    ('120天未购买', 'no purchase in 120 days')
    >>> describe_feature("orders_change_90d", -3, 0)
    ('消费频次下降', 'buying less often')
    """
    try:
        high_zh, high_en, low_zh, low_en = _TEXT[name]
    except KeyError:
        raise ConfigError(
            f"unknown churn feature {name!r}; expected one of: {', '.join(_TEXT)}"
        ) from None
    if name in CATEGORICAL_FEATURES:
        return high_zh.format(v=value), high_en.format(v=value)
    zh, en = (low_zh, low_en) if float(value) < float(typical) else (high_zh, high_en)
    return zh.format(v=float(value)), en.format(v=float(value))


def _up_to(column: ir.TimestampValue, as_of: datetime | date) -> ir.BooleanValue:
    """``column`` is at or before the cutoff."""
    bound, inclusive = cutoff(as_of)
    literal = ibis.timestamp(bound)
    return column <= literal if inclusive else column < literal


def _within(column: ir.TimestampValue, as_of: datetime | date, days: int) -> ir.BooleanValue:
    """``column`` falls in the ``days`` days ending at the cutoff."""
    bound, _ = cutoff(as_of)
    return (column >= ibis.timestamp(bound - timedelta(days=days))) & _up_to(column, as_of)


def _between(
    column: ir.TimestampValue, as_of: datetime | date, first: int, last: int
) -> ir.BooleanValue:
    """``column`` is in ``[cutoff - last days, cutoff - first days)``."""
    bound, _ = cutoff(as_of)
    start = ibis.timestamp(bound - timedelta(days=last))
    return (column >= start) & (column < ibis.timestamp(bound - timedelta(days=first)))


def _known_customer(column: ir.StringValue) -> ir.BooleanValue:
    return column.notnull() & (column.strip() != "")


def _attach(base: ir.Table, extra: ir.Table, fill: dict[str, object] | None = None) -> ir.Table:
    """Left-join per-customer ``extra`` columns onto ``base``, filling nulls from ``fill``."""
    joined = base.left_join(extra, base.customer_id == extra.customer_id)
    fill = fill or {}
    added = {
        name: (joined[name].fill_null(fill[name]) if name in fill else joined[name])
        for name in extra.columns
        if name != "customer_id"
    }
    return joined.select(*[joined[c] for c in base.columns], **added)


def _order_activity(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: windowed order counts and spend, and paid, gross and discount totals."""
    tx = transactions(tables, as_of=as_of)
    orders = tables("orders")
    money = orders.select(
        "order_id",
        paid=orders.amount,
        gross=orders.gross_amount,
        discount=orders.discount_amount,
    )
    tx = tx.join(money, "order_id")
    last_30, last_90 = _within(tx.order_time, as_of, 30), _within(tx.order_time, as_of, 90)
    prev_90 = _between(tx.order_time, as_of, 90, 180)
    return tx.group_by("customer_id").aggregate(
        orders_30d=tx.order_id.count(where=last_30),
        orders_90d=tx.order_id.count(where=last_90),
        orders_prev_90d=tx.order_id.count(where=prev_90),
        spend_30d=tx.amount.sum(where=last_30),
        spend_90d=tx.amount.sum(where=last_90),
        spend_prev_90d=tx.amount.sum(where=prev_90),
        paid_total=tx.paid.sum(),
        gross_total=tx.gross.sum(),
        discount_total=tx.discount.sum(),
    )


def _last_gap(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: whole days between the last two purchases (absent with one purchase)."""
    tx = transactions(tables, as_of=as_of)
    # order_id breaks ties between purchases at the same instant, so the result is deterministic;
    # newest first, the purchase before the last is the next row: one sort serves both
    backward = ibis.window(
        group_by=tx.customer_id, order_by=[ibis.desc(tx.order_time), ibis.desc(tx.order_id)]
    )
    ranked = tx.select(
        "customer_id",
        "order_time",
        previous=tx.order_time.lead().over(backward),
        rank=ibis.row_number().over(backward),
    )
    last = ranked.filter((ranked["rank"] == 0) & ranked.previous.notnull())
    return last.select(
        "customer_id",
        last_gap_days=last.order_time.date().delta(last.previous.date(), unit="day"),
    )


def _breadth(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: distinct product categories bought (lines with a positive quantity)."""
    tx = transactions(tables, as_of=as_of).select("order_id", "customer_id")
    lines = tables("order_lines")
    lines = lines.filter(lines.quantity > 0).select("order_id", "sku")
    products = tables("products").select("sku", "category")
    bought = tx.join(lines, "order_id").join(products, "sku")
    return bought.group_by("customer_id").aggregate(distinct_categories=bought.category.nunique())


def _service(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: tickets and complaints opened in the last 90 days, last satisfaction given."""
    tickets = tables("service_tickets")
    tickets = tickets.filter(
        _known_customer(tickets.customer_id) & _up_to(tickets.opened_at, as_of)
    )
    recent = _within(tickets.opened_at, as_of, 90)
    # satisfaction is given after closing: a ticket closed after the cutoff had no rating yet
    rated_at = tickets.closed_at.fill_null(tickets.opened_at)
    rated = tickets.satisfaction.notnull() & _up_to(rated_at, as_of)
    return tickets.group_by("customer_id").aggregate(
        tickets_90d=tickets.ticket_id.count(where=recent),
        complaints_90d=tickets.ticket_id.count(
            where=recent & tickets.ticket_type.isin(COMPLAINT_TYPES)
        ),
        last_satisfaction=tickets.satisfaction.argmax(rated_at, where=rated).cast("float64"),
    )


def _survey(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: the NPS answer (0-10) of the latest response up to the cutoff."""
    responses = tables("survey_responses")
    keep = (
        _known_customer(responses.customer_id)
        & responses.nps_score.notnull()
        & _up_to(responses.responded_at, as_of)
    )
    responses = responses.filter(keep)
    return responses.group_by("customer_id").aggregate(
        last_nps=responses.nps_score.argmax(responses.responded_at).cast("float64")
    )


def _marketing(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: messages sent, opened and clicked in the last 90 days."""
    touches = tables("campaign_touches")
    touches = touches.filter(_known_customer(touches.customer_id))
    return touches.group_by("customer_id").aggregate(
        touches_90d=touches.touch_id.count(where=_within(touches.sent_at, as_of, 90)),
        opens_90d=touches.touch_id.count(where=_within(touches.opened_at, as_of, 90)),
        clicks_90d=touches.touch_id.count(where=_within(touches.clicked_at, as_of, 90)),
    )


def _app(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: shopping-app sessions in the last 30 days, via ``customers.anon_id``."""
    events = tables("app_events")
    events = events.filter((events.app == SHOP_APP) & _within(events.event_time, as_of, 30))
    customers = tables("customers").select("customer_id", "anon_id")
    joined = events.join(customers, events.user_id == customers.anon_id)
    return joined.group_by("customer_id").aggregate(app_sessions_30d=joined.session_id.nunique())


def _master(tables: Tables, as_of: datetime | date) -> ir.Table:
    """Per customer: tier, type and days since signup (null when signed up after the cutoff)."""
    customers = tables("customers")
    signup = customers.signup_date
    member_days = ibis.date(as_of_day(as_of)).delta(signup.date(), unit="day")
    return customers.select(
        "customer_id",
        "member_tier",
        "customer_type",
        member_days=ibis.ifelse(_up_to(signup, as_of), member_days, ibis.null("int64")),
    )


def churn_feature_table(tables: Tables, *, as_of: datetime | date) -> ir.Table:
    """One row per customer with at least one purchase up to ``as_of``: ``customer_id``, then
    :data:`NUMERIC_FEATURES` and :data:`CATEGORICAL_FEATURES`, ordered by ``customer_id``.

    RFM columns come from :func:`~crmlens.models.features.customer_features`. Counts are 0 when a
    customer has none; ratios, gaps, satisfaction, NPS and ``member_days`` are null when undefined.
    ``mean_gap_days`` is the mean whole-day gap between first and last purchase; ``overdue_ratio``
    is ``recency_days / mean_gap_days`` (above 1: later than usual); ``discount_share`` is
    discounts / gross amount; ``refund_share`` is the part of the amount paid that was refunded.
    """
    rfm = customer_features(tables, as_of=as_of)
    base = rfm.select("customer_id", "recency_days", "frequency", "monetary", "aov", "tenure_days")
    windows = ("orders_30d", "orders_90d", "orders_prev_90d", "spend_30d", "spend_90d")
    base = _attach(
        base, _order_activity(tables, as_of), dict.fromkeys((*windows, "spend_prev_90d"), 0)
    )
    base = _attach(base, _last_gap(tables, as_of))
    base = _attach(base, _breadth(tables, as_of), {"distinct_categories": 0})
    base = _attach(base, _service(tables, as_of), {"tickets_90d": 0, "complaints_90d": 0})
    base = _attach(base, _survey(tables, as_of))
    base = _attach(
        base,
        _marketing(tables, as_of),
        dict.fromkeys(("touches_90d", "opens_90d", "clicks_90d"), 0),
    )
    base = _attach(base, _app(tables, as_of), {"app_sessions_30d": 0})
    base = _attach(base, _master(tables, as_of))

    repeat_days = (base.tenure_days - base.recency_days).cast("float64")
    mean_gap = ibis.ifelse(base.frequency > 1, repeat_days / (base.frequency - 1), ibis.null())
    paid = base.paid_total.nullif(0)
    derived = {
        "orders_change_90d": base.orders_90d - base.orders_prev_90d,
        "spend_change_90d": base.spend_90d - base.spend_prev_90d,
        "mean_gap_days": mean_gap,
        "overdue_ratio": base.recency_days / mean_gap.nullif(0),
        "discount_share": base.discount_total / base.gross_total.nullif(0),
        "refund_share": ((base.paid_total - base.monetary) / paid).clip(lower=0, upper=1),
    }
    # DuckDB's parallel float sums differ in the last bits from run to run; rounding to 1e-6 makes
    # the features, and so a fitted model, reproducible
    columns = {
        name: (derived[name] if name in derived else base[name]).cast("float64").round(6)
        for name in NUMERIC_FEATURES
    }
    return base.select(
        "customer_id", **columns, **{c: base[c] for c in CATEGORICAL_FEATURES}
    ).order_by("customer_id")


def horizon_end(as_of: datetime | date, horizon_days: int) -> datetime | date:
    """The end of the label window: ``as_of`` plus ``horizon_days`` (a date stays a date)."""
    if not isinstance(horizon_days, int) or isinstance(horizon_days, bool) or horizon_days < 1:
        raise ConfigError(f"horizon_days must be a whole number >= 1; got {horizon_days!r}")
    cutoff(as_of)  # validates the type
    return as_of + timedelta(days=horizon_days)


def churn_labels(tables: Tables, *, as_of: datetime | date, horizon_days: int = 90) -> ir.Table:
    """``customer_id`` and ``churned`` (1 = no purchase in the ``horizon_days`` after ``as_of``).

    Only customers with at least one purchase up to ``as_of`` get a row, ordered by id.
    """
    end = horizon_end(as_of, horizon_days)
    active = customer_features(tables, as_of=as_of).select("customer_id")
    future = transactions(tables, as_of=end)
    future = future.filter(~_up_to(future.order_time, as_of))
    buyers = future.select("customer_id").distinct()
    buyers = buyers.mutate(bought=ibis.literal(1))
    joined = active.left_join(buyers, active.customer_id == buyers.customer_id)
    return joined.select(
        customer_id=active.customer_id,
        churned=(1 - joined.bought.fill_null(0)).cast("int64"),
    ).order_by("customer_id")
