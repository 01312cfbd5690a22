"""The report template (P5; seed 002 section 3) as data, and the shape of a filled report.

A :class:`Template` says *what* a report contains: the KPIs of its overview, the dimensions and
KPIs of its multi-dimensional table, the KPIs and length of its trend and the anomaly threshold.
:func:`crmlens.reports.build.build_report` fills it for one period into a :class:`Report`, which
the Excel and HTML writers only lay out: they never compute a number themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from crmlens.metrics import SEED_OVERVIEW, SEGMENT_METRICS, Dimension, Grain, Metric

#: The overview's KPIs: the seed-002 four (new customers, 客单价, 30-day retention, NPS), then
#: the ones each user group of the brief asks for first (revenue, repurchase, churn, CAC,
#: satisfaction, complaints, resolution time).
REPORT_KPIS: tuple[str, ...] = (
    *SEED_OVERVIEW,
    "revenue",
    "customers",
    "repurchase_rate",
    "churn_rate",
    "cac",
    "csat",
    "complaint_rate",
    "resolution_hours",
)

Section = Literal["overview", "anomalies", "segments", "trend"]
#: Every section, in the seed's order; the KPI overview is the one a report cannot leave out.
SECTIONS: tuple[Section, ...] = ("overview", "anomalies", "segments", "trend")

Comparison = Literal["mom", "yoy"]
#: 环比 (vs the previous period) and 同比 (vs the same period last year).
COMPARISONS: tuple[Comparison, ...] = ("mom", "yoy")


@dataclass(frozen=True)
class Template:
    """What a report contains; the default is the seed-002 template."""

    #: The sections, in the order they are laid out (and numbered).
    sections: tuple[Section, ...] = SECTIONS
    kpis: tuple[str, ...] = REPORT_KPIS
    #: The multi-dimensional table: 地域 × 客户类型 with the seed's columns.
    segment_by: tuple[str, ...] = ("region", "customer_type")
    segment_metrics: tuple[str, ...] = SEGMENT_METRICS
    trend_metrics: tuple[str, ...] = ("revenue", "new_customers")
    #: How many periods of the report's grain the trend shows, ending with the report period.
    trend_periods: int = 12
    #: A KPI is an anomaly when its 环比 or 同比 moved by at least this much (P3: "CAC +20 %").
    anomaly_threshold: float = 0.20
    #: A dimension value is named as a probable cause of a rate's or average's move only if it
    #: holds at least this share of the KPI's volume: a segment of one customer always swings.
    cause_min_share: float = 0.05
    #: Causes are looked for among this many of the KPI's default dimensions (each costs a query
    #: per KPI; the first two — e.g. channel and city for new customers — name the mover).
    cause_dims: int = 2
    #: At most this many anomalies are listed, the largest moves first.
    max_anomalies: int = 10


DEFAULT_TEMPLATE = Template()


@dataclass(frozen=True)
class Header:
    """The seed-002 header: period, department, reviewer; plus when and from which data."""

    #: The grain of the period as written (week → 周报, month → 月报).
    kind: Grain
    period: str
    start: date
    end: date
    #: The grain of the trend.
    grain: Grain
    department: str | None
    reviewer: str | None
    generated_at: datetime
    #: The last day with an order in the warehouse.
    data_until: date


@dataclass(frozen=True)
class KpiLine:
    """One overview row, as :func:`crmlens.metrics.overview` returned it."""

    metric: Metric
    value: float | None
    previous: float | None
    change: float | None
    last_year: float | None
    change_yoy: float | None
    target: float | None
    attainment: float | None
    met: bool | None
    previous_period: str
    last_year_period: str
    #: Why the KPI has no value for this scope (it cannot be restricted as asked), else None.
    note: str | None = None

    def compared(self, comparison: Comparison) -> tuple[float | None, float | None, str]:
        """The base value, the change and the base period's label of 环比 or 同比."""
        if comparison == "mom":
            return self.previous, self.change, self.previous_period
        return self.last_year, self.change_yoy, self.last_year_period


@dataclass(frozen=True)
class SegmentRow:
    """One row of the multi-dimensional table: dimension values, KPI values, share."""

    keys: tuple[str, ...]
    values: Mapping[str, float | None]
    share: float | None


@dataclass(frozen=True)
class SegmentTable:
    """The table from :func:`crmlens.metrics.segment_table`, with its total row."""

    dims: tuple[Dimension, ...]
    metrics: tuple[Metric, ...]
    #: The additive KPI whose share of the total the table shows (buying customers), if any.
    share_of: Metric | None
    rows: tuple[SegmentRow, ...]
    total: Mapping[str, float | None]


@dataclass(frozen=True)
class Trend:
    """KPI values per period of the report's grain, oldest first."""

    metrics: tuple[Metric, ...]
    periods: tuple[str, ...]
    values: Mapping[str, tuple[float | None, ...]]


@dataclass(frozen=True)
class Cause:
    """The dimension value that moved most in the KPI's direction of change."""

    dimension: Dimension
    value: str
    #: The value as shown (a channel's or store's name with its id).
    display: str
    now: float | None
    base: float | None


@dataclass(frozen=True)
class Anomaly:
    """A KPI whose 环比 or 同比 change passed the threshold, and what moved most."""

    line: KpiLine
    comparison: Comparison
    #: How far it moved, as compared with the threshold.
    size: float
    cause: Cause | None

    @property
    def metric(self) -> Metric:
        return self.line.metric


@dataclass(frozen=True)
class Report:
    """A filled template: everything a writer lays out; a section the template leaves out is
    None (or no anomalies)."""

    template: Template
    header: Header
    kpis: tuple[KpiLine, ...]
    segments: SegmentTable | None = None
    trend: Trend | None = None
    anomalies: tuple[Anomaly, ...] = field(default=())

    def number(self, section: Section) -> int:
        """The section's number in this report (1 for the first), as headings show it."""
        return self.template.sections.index(section) + 1
