"""The metrics layer: KPIs declared as data, built as Ibis expressions, executed by the warehouse.

>>> from datetime import date
>>> from crmlens.metrics import Scope, metric
>>> metric("aov").label_zh
'客单价'
>>> Scope(date(2021, 1, 1), date(2021, 12, 31), "quarter").periods()[0].label
'2021-Q1'

Entry points, each taking one :class:`Scope` (days, grain, filters, row limits):

- :func:`value` — one KPI over the whole range;
- :func:`compute` / :func:`compute_many` — KPIs over given periods, as few queries as possible;
- :func:`timeseries` — KPIs per period, optionally with 环比/同比 and targets;
- :func:`overview` — the KPI overview: value, 环比, 同比, target, met (M1);
- :func:`breakdown` / :func:`segment_table` — by up to 3 dimensions, shares, top-N + 其他 (M3);
- :func:`vs_target` / :func:`target` — value against the ``targets`` table (M4);
- :func:`cohort_table` / :func:`triangle` — acquisition-cohort retention (A4);
- :func:`lifecycle` — new / returning / resurrecting / dormant customers per period (A4);
- :func:`member_trend` — new, loyal and churned members and all members per period (M5).
"""

from crmlens.metrics.breakdown import SEGMENT_METRICS, breakdown, segment_table
from crmlens.metrics.cohorts import cohort_table, triangle
from crmlens.metrics.dimensions import DIMENSIONS, OTHER, UNKNOWN, Dimension, dimension
from crmlens.metrics.evaluate import change, compute, compute_many, timeseries, value
from crmlens.metrics.lifecycle import STATUSES, lifecycle, loyal_members, member_trend
from crmlens.metrics.metric import Format, Metric
from crmlens.metrics.overview import SEED_OVERVIEW, overview
from crmlens.metrics.periods import GRAINS, Grain, Period, parse_period
from crmlens.metrics.query import FLOW, UP_TO_END, Query, Window
from crmlens.metrics.registry import REGISTRY, metric, metrics
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.metrics.summary import SUMMARY_KPIS, summary
from crmlens.metrics.targets import target, vs_target

__all__ = [
    "DIMENSIONS",
    "FLOW",
    "GRAINS",
    "OTHER",
    "REGISTRY",
    "SEED_OVERVIEW",
    "SEGMENT_METRICS",
    "STATUSES",
    "SUMMARY_KPIS",
    "UNKNOWN",
    "UP_TO_END",
    "Dimension",
    "Format",
    "Grain",
    "Metric",
    "NotApplicableError",
    "Period",
    "Query",
    "Scope",
    "Window",
    "breakdown",
    "change",
    "cohort_table",
    "compute",
    "compute_many",
    "dimension",
    "lifecycle",
    "loyal_members",
    "member_trend",
    "metric",
    "metrics",
    "overview",
    "parse_period",
    "segment_table",
    "summary",
    "target",
    "timeseries",
    "triangle",
    "value",
    "vs_target",
]
