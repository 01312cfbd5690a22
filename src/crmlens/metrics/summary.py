"""The short KPI summary printed after a load (``crmlens demo``, ``crmlens info --kpis``).

It is the registry's KPIs evaluated over the whole order history: from the first to the last day
with an order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from crmlens.metrics.evaluate import compute_many, whole
from crmlens.metrics.registry import metrics
from crmlens.metrics.scope import Scope
from crmlens.warehouse import Warehouse

#: The headline KPIs, by registry name.
SUMMARY_KPIS: tuple[str, ...] = (
    "members",
    "orders",
    "revenue",
    "aov",
    "active_customers",
    "repurchase_rate",
)


def history_scope(wh: Warehouse) -> Scope:
    """The scope from the first to the last day with an order (today alone if there is none)."""
    orders = wh.table("orders")
    first, last = wh.execute(
        orders.aggregate(first=orders.order_time.min(), last=orders.order_time.max())
    ).iloc[0]
    if pd.isna(first):
        today = date.today()
        return Scope(today, today)
    return Scope(first.date(), last.date())


def summary(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Every summary KPI as ``{name, label_zh, label_en, unit, value}`` (value None when undefined)."""
    scope = history_scope(warehouse)
    chosen = metrics(SUMMARY_KPIS)
    computed = compute_many(warehouse, chosen, scope, [whole(scope)])
    rows = []
    for m in chosen:
        v = computed[m.name]["value"].iloc[0]
        rows.append(
            {
                "name": m.name,
                "label_zh": m.label_zh,
                "label_en": m.label_en,
                "unit": m.unit,
                "value": None if v is None else float(v),
            }
        )
    return rows
