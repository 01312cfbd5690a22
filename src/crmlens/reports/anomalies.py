"""Anomalies (P3): KPIs whose 环比 or 同比 moved beyond the template's threshold, each with a
probable cause taken from the data — the dimension value that moved most the same way.

No cause is invented: the cause line names a value of one of the KPI's first default dimensions
(:attr:`Metric.default_dims`, ``Template.cause_dims`` of them) with its own before and after, as
:func:`crmlens.metrics.timeseries` breaks them down. For a count or total the value with the
largest contribution to the change is named; for a rate or average the value whose own rate moved
most, among the values holding at least ``cause_min_share`` of the KPI's volume (orders, new
customers, tickets), so that a segment of one customer cannot be "the cause".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from crmlens.metrics import (
    Metric,
    NotApplicableError,
    Scope,
    dimension,
    metric,
    timeseries,
    value,
)
from crmlens.reports.template import (
    COMPARISONS,
    Anomaly,
    Cause,
    Comparison,
    KpiLine,
    Template,
)
from crmlens.schema import table as schema_table
from crmlens.warehouse import Warehouse

#: The count that measures how much of a fact a dimension value holds (its weight for a cause).
VOLUME_BY_FACT: dict[str, str] = {
    "orders": "orders",
    "customers": "new_customers",
    "tickets": "tickets",
}

#: dimension → raw value → the value as shown (a channel's or store's name).
Names = Mapping[str, Mapping[str, str]]


def display_value(names: Names, dim: str, raw: str) -> str:
    """A dimension value as shown: ``抖音广告 (C04)`` for an id with a name, else as stored."""
    shown = names.get(dim, {}).get(raw)
    return f"{shown} ({raw})" if shown and shown != raw else raw


def size_of(line: KpiLine, comparison: Comparison) -> float | None:
    """How far the KPI moved, for comparison with the threshold.

    A relative change (counts, money, durations) is its own size. An absolute change (rates in
    percentage points, scores in points) is taken relative to the base value, so one threshold
    serves a 30-day retention falling from 11 % to 5 % and an NPS falling from 48 to 30.
    """
    base, change, _ = line.compared(comparison)
    if change is None:
        return None
    if line.metric.change == "relative":
        return abs(change)
    return abs(change / base) if base else None


def find_anomalies(
    wh: Warehouse,
    lines: Sequence[KpiLine],
    scope: Scope,
    template: Template,
    names: Names,
) -> tuple[Anomaly, ...]:
    """The overview's KPIs that moved by at least ``template.anomaly_threshold``, largest first,
    at most ``template.max_anomalies``, each with its probable :class:`Cause` (or None)."""
    found: list[tuple[float, KpiLine, Comparison]] = []
    for line in lines:
        if line.note is not None:
            continue
        for comparison in COMPARISONS:
            size = size_of(line, comparison)
            if size is not None and size >= template.anomaly_threshold:
                found.append((size, line, comparison))
    found.sort(key=lambda item: item[0], reverse=True)
    explain = _Explainer(wh, scope, template, names)
    return tuple(
        Anomaly(line, comparison, size, explain.cause(line, comparison))
        for size, line, comparison in found[: template.max_anomalies]
    )


def _shown(name: str) -> bool:
    """Whether a dimension may be named in a report: never one read from a personal-data column
    (D7). None of the declared dimensions is, but a new one added carelessly would be caught."""
    d = dimension(name)
    if d.source != "customer" or d.column is None:
        return True
    return not schema_table("customers").column(d.column).pii


class _Explainer:
    """Finds causes. One :func:`crmlens.metrics.timeseries` call with ``compare`` per KPI and
    dimension gives every value's current, previous and last-year figures at once, so 环比 and
    同比 of one KPI share it."""

    def __init__(self, wh: Warehouse, scope: Scope, template: Template, names: Names) -> None:
        self.wh = wh
        self.scope = scope
        self.template = template
        self.names = names
        self._frames: dict[tuple[str, str], pd.DataFrame] = {}
        self._totals: dict[str, float | None] = {}

    def cause(self, line: KpiLine, comparison: Comparison) -> Cause | None:
        m = line.metric
        _, change, _ = line.compared(comparison)
        if not change:
            return None
        sign = 1.0 if change > 0 else -1.0
        best: tuple[float, Cause] | None = None
        for dim in [d for d in m.default_dims if _shown(d)][: self.template.cause_dims]:
            try:
                frame = self._frame(m, dim)
            except NotApplicableError:
                continue  # the scope's filters reach this KPI but not this dimension
            for moved, candidate in self._candidates(m, dim, frame, comparison):
                if moved * sign > 0 and (best is None or moved * sign > best[0]):
                    best = (moved * sign, candidate)
        return None if best is None else best[1]

    def _candidates(
        self, m: Metric, dim: str, frame: pd.DataFrame, comparison: Comparison
    ) -> list[tuple[float, Cause]]:
        """Each value of ``dim`` that can be compared: (its move, the cause naming it)."""
        column = "previous" if comparison == "mom" else "last_year"
        volume = self._volume(m, dim)
        weights: dict[str, float | None] = {}
        if volume is not None:
            total = self._total(volume)
            rows = frame[frame["metric"] == volume]
            weights = {
                str(k): (as_float(v) or 0.0) / total if total else None
                for k, v in zip(rows[dim], rows["value"], strict=True)
            }
        out = []
        for rec in frame[frame["metric"] == m.name].to_dict(orient="records"):
            raw = str(rec[dim])
            current, base = as_float(rec["value"]), as_float(rec[column])
            if current is None or base is None:
                continue  # a rate that appears or vanishes has no comparable move
            if volume is not None:
                share = weights.get(raw)
                if share is None or share < self.template.cause_min_share:
                    continue
            shown = display_value(self.names, dim, raw)
            out.append((current - base, Cause(dimension(dim), raw, shown, current, base)))
        return out

    def _volume(self, m: Metric, dim: str) -> str | None:
        """The count weighing ``m``'s dimension values, if its facts have one that reaches ``dim``."""
        if m.additive:
            return None  # a count's values weigh themselves: the largest contribution wins
        for fact in m.facts:
            name = VOLUME_BY_FACT.get(fact)
            if name and dim in metric(name).dimensions:
                return name
        return None

    def _frame(self, m: Metric, dim: str) -> pd.DataFrame:
        key = (m.name, dim)
        if key not in self._frames:
            volume = self._volume(m, dim)
            chosen = [m.name] if volume is None else [m.name, volume]
            # counts of a value without rows are 0 here (timeseries fills them), as in totals
            self._frames[key] = timeseries(self.wh, chosen, self.scope, [dim], compare=True)
        return self._frames[key]

    def _total(self, volume: str) -> float | None:
        if volume not in self._totals:
            self._totals[volume] = value(self.wh, volume, self.scope)
        return self._totals[volume]


def as_float(value: Any) -> float | None:
    """A cell of a metrics-layer frame as a float; None (or NaN) when missing."""
    if value is None or pd.isna(value):
        return None
    return float(value)
