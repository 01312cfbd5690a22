"""The KPI overview (M1, seed 002 section 1): per KPI the period's value, 环比, 同比, target, met?

The previous period and the same period last year are those of
:func:`crmlens.metrics.periods.previous_range` and :func:`~crmlens.metrics.periods.last_year_range`
(2021-03 → 2021-02 and 2020-03). Changes are relative for counts, money and durations and absolute
(percentage points, score points) for rates and scores (:attr:`Metric.change`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from crmlens.metrics.evaluate import (
    MetricRef,
    change,
    compute_many,
    last_year,
    previous,
    target_frame,
    whole,
    with_nulls,
)
from crmlens.metrics.registry import metrics as lookup_all
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.warehouse import Warehouse

#: The seed-002 template's KPIs: new customers, 客单价, 30-day retention, NPS.
SEED_OVERVIEW = ("new_customers", "aov", "retention_30d", "nps")

COLUMNS = [
    "metric",
    "label_zh",
    "label_en",
    "unit",
    "period",
    "value",
    "previous_period",
    "previous",
    "change",
    "last_year_period",
    "last_year",
    "change_yoy",
    "change_kind",
    "target",
    "attainment",
    "met",
    "note",
]


def overview(wh: Warehouse, metrics: Sequence[MetricRef], scope: Scope) -> pd.DataFrame:
    """One row per KPI with the columns of :data:`COLUMNS`.

    ``change`` is 环比 and ``change_yoy`` 同比; ``attainment`` is value / target and ``met``
    whether the value is on the good side of the target (:attr:`Metric.direction`). A KPI that
    cannot be restricted as the scope asks (CAC filtered by gender) gets no values and the reason
    in ``note``, so one such KPI does not blank the whole overview. The seed-002 overview is
    ``overview(wh, SEED_OVERVIEW, scope)``.
    """
    current = whole(scope)
    before = previous(current, scope.grain)
    year_ago = last_year(current, scope.grain)
    chosen = lookup_all(metrics)
    errors: dict[str, NotApplicableError] = {}
    computed = compute_many(wh, chosen, scope, [current, before, year_ago], errors=errors)
    rows: list[dict[str, Any]] = []
    for m in chosen:
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row |= {
            "metric": m.name,
            "label_zh": m.label_zh,
            "label_en": m.label_en,
            "unit": m.unit,
            "period": current.label,
            "previous_period": before.label,
            "last_year_period": year_ago.label,
            "change_kind": m.change,
        }
        if m.name in errors:
            rows.append(row | {"note": str(errors[m.name])})
            continue
        now, prev, last = computed[m.name]["value"].tolist()
        goal = target_frame(wh, m, scope, [current])
        target = None if goal.empty else float(goal["target"].iloc[0])
        rows.append(
            row
            | {
                "value": now,
                "previous": prev,
                "change": change(m, now, prev),
                "last_year": last,
                "change_yoy": change(m, now, last),
                "target": target,
                "attainment": m.attainment(now, target),
                "met": m.is_met(now, target),
            }
        )
    return with_nulls(pd.DataFrame(rows, columns=COLUMNS))
