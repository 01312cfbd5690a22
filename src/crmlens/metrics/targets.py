"""Targets (M4): a KPI's target for a period from the ``targets`` table, and value vs target.

Which targets rows belong to a KPI and how they add up over time is declared on the metric
(``target_names``, ``target_how``); :meth:`crmlens.metrics.query.Query.targets` does the matching,
so the overview, time series, ``sales_target_attainment`` and :func:`vs_target` agree.
The loader fills ``period_start``/``period_end`` from ``period`` (YYYY-MM, YYYY-Qn, YYYY).
"""

from __future__ import annotations

import pandas as pd

from crmlens.errors import ConfigError
from crmlens.metrics.evaluate import MetricRef, compute, target_frame, whole, with_nulls
from crmlens.metrics.query import TARGET_DIMENSIONS
from crmlens.metrics.registry import metric as lookup
from crmlens.metrics.scope import Scope
from crmlens.warehouse import Warehouse


def target(wh: Warehouse, metric: MetricRef, scope: Scope) -> float | None:
    """The target of a KPI for the scope's whole range, None if there is none."""
    m = lookup(metric) if isinstance(metric, str) else metric
    frame = target_frame(wh, m, scope, [whole(scope)])
    return None if frame.empty else float(frame["target"].iloc[0])


def vs_target(wh: Warehouse, metric: MetricRef, scope: Scope, by: str) -> pd.DataFrame:
    """Per value of ``by`` (region, city or store): ``value``, ``target``, ``attainment``
    (value / target), ``gap`` (target - value: what is still missing, negative when beaten) and
    ``met``, over the scope's whole range; values without a target have target None. Members per
    city against the 2021-12 goal (M4): ``vs_target(wh, "members", Scope.parse("2021-12"), "city")``.
    """
    m = lookup(metric) if isinstance(metric, str) else metric
    if by not in TARGET_DIMENSIONS:
        raise ConfigError(f"targets are set per {', '.join(TARGET_DIMENSIONS)}, not {by!r}")
    period = [whole(scope)]
    values = compute(wh, m, scope, period, (by,)).drop(columns="period_id")
    goals = target_frame(wh, m, scope, period, (by,)).drop(columns="period_id")
    frame = values.merge(goals, on=by, how="outer")
    out = []
    for row in frame.itertuples(index=False):
        v = row.value
        v = m.empty_value if pd.isna(v) else float(v)
        t = None if pd.isna(row.target) else float(row.target)
        out.append(
            {
                by: getattr(row, by),
                "value": v,
                "target": t,
                "attainment": m.attainment(v, t),
                "gap": None if t is None or v is None else t - v,
                "met": m.is_met(v, t),
            }
        )
    result = pd.DataFrame(out, columns=[by, "value", "target", "attainment", "gap", "met"])
    order = result["attainment"].astype(float).fillna(-1.0)
    result = result.iloc[order.sort_values(ascending=False, kind="stable").index]
    return with_nulls(result.reset_index(drop=True))
