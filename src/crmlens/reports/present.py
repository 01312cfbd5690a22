"""What the Excel and HTML writers show alike: the colour of a change, arrows, ✓/✗, anomaly lines.

A change is good or bad by the KPI's declared direction (:attr:`Metric.direction`): new customers
up is good, CAC up is bad. Values and changes are printed with the metrics layer's own formats
(:attr:`Metric.fmt`, :meth:`Metric.format_change`), so a report reads like the dashboard.

>>> from crmlens.metrics import metric
>>> tone(metric("cac"), 0.2), arrow(0.2)
('bad', '▲')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crmlens.metrics import Metric
from crmlens.reports.labels import Lang, cause_sentence, change_sentence, metric_label, text
from crmlens.reports.template import Anomaly, KpiLine, Report, Section

Tone = Literal["good", "bad", "flat"]

#: Colours of the report (met / good, missed / bad, neutral), shared by both formats.
GOOD = "#1a7f37"
BAD = "#c62828"
GOOD_FILL = "#e6f4ea"
BAD_FILL = "#fdecea"
HEAD_FILL = "#eef2f7"
MUTED = "#6b7280"


def tone(m: Metric, change: float | None) -> Tone | None:
    """Whether a change is good, bad or flat for this KPI; None without a change."""
    if change is None:
        return None
    if change == 0:
        return "flat"
    return "good" if (change > 0) == (m.direction == "up") else "bad"


def arrow(change: float | None) -> str:
    """▲ for up, ▼ for down, – for no change, nothing without a change."""
    if change is None:
        return ""
    return "▲" if change > 0 else "▼" if change < 0 else "–"


def change_text(m: Metric, change: float | None) -> str:
    """A change with its arrow: ``▲ +15.0%``, ``▼ -3.0pp``; ``—`` without one."""
    shown = m.format_change(change)
    return f"{arrow(change)} {shown}" if change is not None else shown


def met_text(met: bool | None, lang: Lang) -> str:
    """✓ 达标 / ✗ 未达标, ``—`` without a target."""
    if met is None:
        return "—"
    return text("met_yes" if met else "met_no", lang)


def ratio_text(share: float | None) -> str:
    """A share or an attainment: ``25.6%``; ``—`` when missing."""
    return "—" if share is None else f"{share:.1%}"


def value_text(line: KpiLine, lang: Lang) -> str:
    """The KPI's value, or 不适用 when it cannot be restricted as the scope asks."""
    return text("not_applicable", lang) if line.note is not None else line.metric.fmt(line.value)


def report_title(report: Report, lang: Lang) -> str:
    """``客户关系管理多维数据报告 · 月报 2021-11``."""
    kind = text(f"kind_{report.header.kind}", lang)
    return f"{text('title', lang)} · {kind} {report.header.period}"


def heading(report: Report, section: Section, lang: Lang) -> str:
    """A section's numbered title: ``3. 多维度分析``."""
    values = {"n": len(report.trend.periods)} if section == "trend" and report.trend else {}
    return f"{report.number(section)}. {text(section, lang, **values)}"


def compared_text(report: Report, lang: Lang) -> str:
    """Which periods 环比 and 同比 compare with: ``环比对比 2021-10,同比对比 2020-11``."""
    if not report.kpis:
        return ""
    first = report.kpis[0]
    return text("compared", lang, previous=first.previous_period, last_year=first.last_year_period)


@dataclass(frozen=True)
class AnomalyLine:
    """One anomaly as printed: the KPI, what moved (P3), the probable cause, the tone."""

    kpi: str
    what: str
    cause: str
    tone: Tone | None


def anomaly_lines(report: Report, lang: Lang) -> list[AnomalyLine]:
    """The report's anomalies as sentences, largest move first."""
    return [_anomaly_line(a, lang) for a in report.anomalies]


def _anomaly_line(a: Anomaly, lang: Lang) -> AnomalyLine:
    m = a.metric
    base, change, _ = a.line.compared(a.comparison)
    what = change_sentence(m, a.comparison, change or 0.0, m.fmt(base), m.fmt(a.line.value), lang)
    if a.cause is None:
        cause = text("no_cause", lang)
    else:
        c = a.cause
        cause = cause_sentence(c.dimension, c.display, m.fmt(c.base), m.fmt(c.now), lang)
    return AnomalyLine(metric_label(m, lang), what, cause, tone(m, change))
