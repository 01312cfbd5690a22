"""Marketing KPIs: acquisition cost and conversion by channel, LTV, e-mail/SMS funnel rates.

Spend and clicks (``channel_spend``) exist only per channel and day, so the KPIs that use them can
be filtered and broken down by channel only.
"""

from __future__ import annotations

from functools import cache, partial

import ibis
from ibis.expr.types import Table, Value

from crmlens.metrics.definitions.customers import new_customers
from crmlens.metrics.measures import Measure
from crmlens.metrics.metric import Metric
from crmlens.metrics.query import Query

LTV_DAYS = 365


#: Marketing spend per period.
_spend = Measure("spend", lambda q, t: t.spend.sum())
#: Ad clicks per period.
_clicks = Measure("spend", lambda q, t: t.clicks.sum())


def _cac(q: Query) -> Table:
    return q.ratio(_spend(q), new_customers(q))


def _conversion(q: Query) -> Table:
    return q.ratio(new_customers(q), _clicks(q))


def _cohort_revenue(q: Query, days: int) -> Table:
    """Per customer who signed up in a period: net revenue of their orders in ``days`` days from
    signup (0 when none)."""
    cohort = q.rows("customers").select(*q.keys, "customer_id", signup=ibis._.ts)
    o = q.history("orders", dims=())
    o = o.filter(o.customer_id.notnull()).select(
        o__customer=o.customer_id, o__ts=o.ts, o__amount=o.amount
    )
    j = cohort.left_join(
        o,
        [
            cohort.customer_id == o.o__customer,
            o.o__ts >= cohort.signup,
            o.o__ts < cohort.signup + ibis.interval(days=days),
        ],
    )
    return j.group_by([*q.keys, "customer_id"]).aggregate(revenue=j.o__amount.sum().fill_null(0))


def _ltv(q: Query, days: int) -> Table:
    per = _cohort_revenue(q, days)
    return q.group(per, per.revenue.mean())


def _ltv_cac(q: Query, days: int) -> Table:
    per = _cohort_revenue(q, days)
    return q.ratio(q.group(per, per.revenue.sum()), _spend(q))


def _touch_rate(q: Query, t: Table, hit: str) -> Value:
    flag: Value = t[hit] if hit == "bounced" else t[hit].notnull()
    return ibis.ifelse(flag.fill_null(False), 1.0, 0.0).mean()


@cache  # one object per argument: equal metrics are the same key (query plans)
def ltv(days: int = LTV_DAYS) -> Metric:
    """Revenue of the period's new customers in their first ``days`` days, per customer."""
    return Metric(
        "ltv" if days == LTV_DAYS else f"ltv_{days}d",
        f"客户终身价值({days}天)",
        f"Customer lifetime value ({days} days)",
        f"For the customers who signed up in the period: net revenue (orders.amount, refunds "
        f"included) of their orders placed from signup_date to {days} days later, divided by "
        "the number of those customers (those who never bought count as 0). Historical and "
        f"revenue-based (no margin, no discounting); cohorts younger than {days} days read low. "
        "Model-based CLV is in crmlens.models.",
        "money",
        partial(_ltv, days=days),
        ("customers", "orders"),
        "Marketing",
        default_dims=("channel", "customer_type"),
        days=days,
        family="ltv_{days}d",
        vary=ltv,
    )


@cache  # one object per argument: equal metrics are the same key (query plans)
def ltv_cac(days: int = LTV_DAYS) -> Metric:
    """Cohort revenue in the first ``days`` days / acquisition spend, i.e. LTV / CAC."""
    return Metric(
        "ltv_cac" if days == LTV_DAYS else f"ltv_cac_{days}d",
        "LTV/CAC",
        f"LTV / CAC ({days} days)",
        f"LTV ({days} days, as above) / CAC of the same period, which equals the new customers' "
        f"net revenue in their first {days} days / marketing spend of the period; by channel, "
        "both for that channel. None without spend.",
        "score",
        partial(_ltv_cac, days=days),
        ("customers", "orders", "spend"),
        "Marketing",
        default_dims=("channel",),
        days=days,
        family="ltv_cac_{days}d",
        vary=ltv_cac,
    )


def _touch_metric(name: str, zh: str, en: str, hit: str, what: str, up: bool = True) -> Metric:
    return Metric(
        name,
        zh,
        en,
        f"Share of campaign_touches sent in the period (sent_at) {what}, over all touches sent "
        "(bounced ones included). None when nothing was sent.",
        "ratio",
        Measure("touches", partial(_touch_rate, hit=hit)),
        ("touches",),
        "Marketing",
        direction="up" if up else "down",
        default_dims=("customer_type", "tier"),
    )


METRICS = (
    Metric(
        "cac",
        "获客成本",
        "Customer acquisition cost",
        "Marketing spend (channel_spend.spend on days in the period) / new customers (signup_date "
        "in the period). By channel: the channel's spend / the customers whose signup channel it "
        "is; a channel without spend rows (organic, referral) has CAC 0. None when the period has "
        "no new customer.",
        "money",
        _cac,
        ("spend", "customers"),
        "Marketing",
        direction="down",
        default_dims=("channel",),
    ),
    Metric(
        "channel_conversion_rate",
        "渠道转化率",
        "Channel conversion rate",
        "New customers (signup_date in the period) / ad clicks (channel_spend.clicks on days in "
        "the period); by channel, both for that channel. None without clicks (organic channels).",
        "ratio",
        _conversion,
        ("spend", "customers"),
        "Marketing",
        default_dims=("channel",),
    ),
    ltv(),
    ltv_cac(),
    _touch_metric(
        "email_open_rate", "邮件打开率", "E-mail open rate", "opened_at", "with opened_at set"
    ),
    _touch_metric(
        "email_click_rate", "邮件点击率", "E-mail click rate", "clicked_at", "with clicked_at set"
    ),
    _touch_metric(
        "email_conversion_rate",
        "邮件转化率",
        "E-mail conversion rate",
        "converted_at",
        "with converted_at set",
    ),
    _touch_metric(
        "email_bounce_rate",
        "邮件退信率",
        "E-mail bounce rate",
        "bounced",
        "with bounced true",
        up=False,
    ),
)
