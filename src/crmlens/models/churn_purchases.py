"""What churned customers used to buy, and how those categories' SKU ranges changed (A6).

Seed 000 ④: churned members' top-5 categories, then the number of SKUs on sale in those categories
month by month, to see whether a shrinking range may have driven them away::

    bought = churned_purchases(wh, as_of=date(2021, 12, 31))
    bought.top_by_lines, bought.top_by_lift, bought.sku_trend

The line and SKU counts are Ibis expressions run by the warehouse; ranking and trends are pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models.features import Tables, as_of_day, customer_features, transactions
from crmlens.warehouse import Warehouse


def category_lines(tables: Tables, *, as_of: datetime | date, inactive_days: int = 90) -> ir.Table:
    """Purchased lines per ``category`` and customer group up to ``as_of``.

    A buyer is ``churned`` when their last purchase is ``inactive_days`` or more days before the
    cutoff day (no purchase in the last ``inactive_days`` days, cutoff day included), else active.
    Lines with a positive quantity of purchase orders count; columns ``category``, ``churned``
    (bool), ``lines`` and ``customers``.
    """
    if not isinstance(inactive_days, int) or inactive_days < 1:
        raise ConfigError(f"inactive_days must be a whole number >= 1; got {inactive_days!r}")
    status = customer_features(tables, as_of=as_of)
    status = status.select("customer_id", churned=status.recency_days >= inactive_days)
    tx = transactions(tables, as_of=as_of).select("order_id", "customer_id")
    lines = tables("order_lines")
    lines = lines.filter(lines.quantity > 0).select("order_id", "sku")
    products = tables("products")
    products = products.filter(products.category.notnull()).select("sku", "category")
    bought = tx.join(lines, "order_id").join(products, "sku").join(status, "customer_id")
    return bought.group_by("category", "churned").aggregate(
        lines=bought.count(), customers=bought.customer_id.nunique()
    )


def active_sku_counts(
    tables: Tables, *, month_ends: Sequence[date], categories: Sequence[str]
) -> ir.Table:
    """SKUs on sale per ``category`` at each of ``month_ends`` (columns ``category``, ``day``, ``skus``).

    A SKU is on sale on a day when ``listed_date`` is on or before it (or unknown) and
    ``delisted_date`` is empty or on or after it. Category-days without SKUs have no row.
    """
    days = ibis.memtable({"day": list(month_ends)}, schema={"day": "date"})
    products = tables("products")
    products = products.filter(products.category.isin(list(categories)))
    pairs = products.cross_join(days)
    on_sale = (pairs.listed_date.isnull() | (pairs.listed_date <= pairs.day)) & (
        pairs.delisted_date.isnull() | (pairs.delisted_date >= pairs.day)
    )
    pairs = pairs.filter(on_sale)
    return pairs.group_by("category", "day").aggregate(skus=pairs.sku.nunique())


@dataclass(frozen=True)
class ChurnedPurchases:
    """What churned customers used to buy (A6, seed 000 ④).

    ``categories``: per category the lines and line share of churned and active customers and the
    ``lift`` (churned share / active share), by churned lines. ``sku_counts``: SKUs on sale at each
    month end (index: month) for the reported categories; ``sku_trend``: per category the first
    and last month's count, ``change`` (last / first - 1), ``slope`` (SKUs per month, least
    squares) and ``trend`` (shrinking / stable / growing).
    """

    as_of: date
    churned_customers: int
    active_customers: int
    top_by_lines: list[str]
    top_by_lift: list[str]
    categories: pd.DataFrame
    sku_counts: pd.DataFrame
    sku_trend: pd.DataFrame


def _sku_trend(counts: pd.DataFrame, threshold: float) -> pd.DataFrame:
    months = np.arange(len(counts))
    rows = []
    for category in counts.columns:
        series = counts[category].to_numpy(dtype=float)
        first, last = series[0], series[-1]
        change = last / first - 1 if first > 0 else np.nan
        # rounded (and + 0.0 turns -0.0 into 0.0): a flat series fits a slope of ~1e-16
        slope = round(float(np.polyfit(months, series, 1)[0]), 6) + 0.0
        trend = "stable"
        if (first == 0 and last > 0) or change >= threshold:
            trend = "growing"
        elif change <= -threshold:
            trend = "shrinking"
        rows.append(
            (
                category,
                str(counts.index[0]),
                str(counts.index[-1]),
                int(first),
                int(last),
                change,
                slope,
                trend,
            )
        )
    columns = [
        "category",
        "first_month",
        "last_month",
        "first_skus",
        "last_skus",
        "change",
        "slope",
        "trend",
    ]
    return pd.DataFrame(rows, columns=columns)


def churned_purchases(
    warehouse: Warehouse,
    *,
    as_of: datetime | date,
    inactive_days: int = 90,
    top: int = 5,
    trend_months: int = 24,
    min_lines: int = 30,
    shrink_threshold: float = 0.1,
) -> ChurnedPurchases:
    """Top categories of churned customers (by lines and by lift) and their SKU ranges over time.

    Churned: bought before but not in the last ``inactive_days`` days up to ``as_of``; active: the
    other buyers. Only categories with at least ``min_lines`` churned lines are ranked by lift (a
    rare category's share is noise). SKU counts run from ``trend_months`` months before the month
    of ``as_of`` to that month (2019-12 → 2021-12 for ``as_of`` 2021-12-31); a change of
    ``shrink_threshold`` or more either way is a trend.
    """
    if not isinstance(top, int) or top < 1 or not isinstance(trend_months, int) or trend_months < 1:
        raise ConfigError(
            f"top and trend_months must be whole numbers >= 1; got {top!r}, {trend_months!r}"
        )
    lines = warehouse.execute(
        category_lines(warehouse.table, as_of=as_of, inactive_days=inactive_days)
    )
    table = lines.pivot_table(
        index="category", columns="churned", values="lines", aggfunc="sum", fill_value=0
    )
    table = table.reindex(columns=[True, False], fill_value=0)
    if table[True].sum() == 0 or table[False].sum() == 0:
        raise InsufficientDataError(
            f"at {as_of} need order lines with product categories from both churned and active "
            f"customers; found {int(table[True].sum())} churned and {int(table[False].sum())} active lines"
        )
    categories = pd.DataFrame(
        {"churned_lines": table[True].astype(int), "active_lines": table[False].astype(int)}
    )
    categories["churned_share"] = categories["churned_lines"] / categories["churned_lines"].sum()
    categories["active_share"] = categories["active_lines"] / categories["active_lines"].sum()
    # a category only churned customers bought has an infinite lift: the clearest signal there is
    categories["lift"] = categories["churned_share"] / categories["active_share"]
    categories = categories.sort_values(["churned_lines", "lift"], ascending=False).reset_index()
    by_lines = categories["category"].head(top).tolist()
    supported = categories[categories["churned_lines"] >= min_lines]
    by_lift = (
        supported.sort_values("lift", ascending=False, kind="stable")["category"].head(top).tolist()
    )

    day = as_of_day(as_of)
    months = pd.period_range(pd.Period(day, "M") - trend_months, pd.Period(day, "M"), freq="M")
    ends = [min(m.end_time.date(), day) for m in months]
    reported = list(dict.fromkeys(by_lines + by_lift))
    skus = warehouse.execute(
        active_sku_counts(warehouse.table, month_ends=ends, categories=reported)
    )
    counts = (
        skus.assign(month=pd.PeriodIndex(pd.to_datetime(skus["day"]), freq="M"))
        .pivot_table(index="month", columns="category", values="skus", aggfunc="sum")
        .reindex(index=months, columns=reported)
        .fillna(0)
        .astype(int)
    )
    recency = warehouse.execute(customer_features(warehouse.table, as_of=as_of).recency_days)
    churned = int((recency >= inactive_days).sum())
    return ChurnedPurchases(
        as_of=day,
        churned_customers=churned,
        active_customers=len(recency) - churned,
        top_by_lines=by_lines,
        top_by_lift=by_lift,
        categories=categories,
        sku_counts=counts,
        sku_trend=_sku_trend(counts, shrink_threshold),
    )
