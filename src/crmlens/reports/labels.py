"""The static texts of the report in Chinese (default) and English, and the sentences built from
them (anomaly lines, period ranges).

KPI and dimension names are not repeated here: they come from the metrics layer's declarations
(``label_zh`` / ``label_en``), so the report always names a KPI as the dashboard and docs do.

>>> text("overview", "en")
'KPI overview'
>>> period_range(date(2021, 11, 1), date(2021, 11, 30), "zh")
'2021年11月1日至2021年11月30日'
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from crmlens.errors import ConfigError
from crmlens.metrics import OTHER, UNKNOWN, Dimension, Metric
from crmlens.reports.template import Comparison

Lang = Literal["zh", "en"]
LANGS: tuple[str, ...] = get_args(Lang)

# fmt: off
#: key → (Chinese, English).
TEXTS: dict[str, tuple[str, str]] = {
    "title": ("客户关系管理多维数据报告", "CRM multi-dimensional report"),
    "kind_day": ("日报", "daily report"),
    "kind_week": ("周报", "weekly report"),
    "kind_month": ("月报", "monthly report"),
    "kind_quarter": ("季报", "quarterly report"),
    "kind_year": ("年报", "annual report"),
    "period": ("报告周期", "Report period"),
    "department": ("制作部门", "Department"),
    "reviewer": ("审核人", "Reviewer"),
    "generated_at": ("生成时间", "Generated at"),
    "data_until": ("数据截至", "Data up to"),
    "partial": ("报告周期尚未结束,数据截至 {day}", "The period is not over; data up to {day}"),
    "overview": ("核心指标概览", "KPI overview"),
    "kpi": ("指标名称", "KPI"),
    "value": ("周期内数值", "Value"),
    "previous": ("上期数值", "Previous period"),
    "mom": ("环比变化", "vs previous period"),
    "last_year": ("去年同期", "Same period last year"),
    "yoy": ("同比变化", "vs last year"),
    "target": ("目标值", "Target"),
    "attainment": ("达成率", "Attainment"),
    "met": ("达标情况", "Met?"),
    "metric_id": ("指标代码", "Metric id"),
    "met_yes": ("✓ 达标", "✓ met"),
    "met_no": ("✗ 未达标", "✗ missed"),
    "compared": ("环比对比 {previous},同比对比 {last_year}", "Compared with {previous} and {last_year}"),
    "not_applicable": ("不适用", "n/a"),
    "segments": ("多维度分析", "Multi-dimensional analysis"),
    "segments_by": ("按{dims}", "By {dims}"),
    "share_of": ("占总{label}比例", "Share of {label}"),
    "total": ("合计", "Total"),
    "trend": ("趋势(最近{n}期)", "Trend (last {n} periods)"),
    "trend_period": ("周期", "Period"),
    "anomalies": ("异常指标与原因推测", "Anomalies and probable causes"),
    "anomaly_rule": (
        "环比或同比变化幅度 ≥ {threshold} 的指标(比率与评分按变化点数相对上期值计算)",
        "KPIs that moved by {threshold} or more (rates and scores: the point change relative to the base)",
    ),
    "no_anomalies": ("本期无超过阈值的异常变化。", "No KPI moved beyond the threshold."),
    "anomaly_col_kpi": ("指标", "KPI"),
    "anomaly_col_text": ("异常描述", "What moved"),
    "anomaly_col_cause": ("原因推测", "Probable cause"),
    "no_cause": ("各维度无明显集中的变化", "No dimension value stands out"),
    "up": ("上升", "up"),
    "down": ("下降", "down"),
    "flat": ("持平", "flat"),
    "mom_short": ("环比", "vs previous period"),
    "yoy_short": ("同比", "year on year"),
    "sheet_overview": ("概览", "Overview"),
    "sheet_breakdown": ("多维分析", "Breakdown"),
    "sheet_trend": ("趋势", "Trend"),
    "privacy": (
        "本报告仅含汇总数据,不含客户姓名、证件号、手机号等个人信息。",
        "Aggregates only: no customer names, ID numbers or phone numbers.",
    ),
}
# fmt: on

#: System values of dimensions (not data), which an English report translates.
_VALUE_EN = {UNKNOWN: "Unknown", OTHER: "Other"}


def check_lang(lang: str) -> Lang:
    """``lang`` if it is a supported report language, else :class:`ConfigError`."""
    if lang not in LANGS:
        raise ConfigError(f"unknown report language {lang!r}; expected one of: {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]


def text(key: str, lang: Lang, **values: object) -> str:
    """The static text ``key`` in ``lang``, with ``{placeholders}`` filled from ``values``."""
    zh, en = TEXTS[key]
    return (zh if lang == "zh" else en).format(**values)


def metric_label(m: Metric, lang: Lang) -> str:
    """The KPI's name as declared in the metrics layer."""
    return m.label_zh if lang == "zh" else m.label_en


def dimension_label(d: Dimension, lang: Lang) -> str:
    """The dimension's name as declared in the metrics layer."""
    return d.label_zh if lang == "zh" else d.label_en


def value_label(value: str, lang: Lang) -> str:
    """A dimension value for display; only the system values 未知 / 其他 are translated, data
    values (regions, customer types) are shown as they are stored."""
    return _VALUE_EN.get(value, value) if lang == "en" else value


def period_range(start: date, end: date, lang: Lang) -> str:
    """The report period as the seed-002 header writes it: 2021年11月1日至2021年11月30日."""
    if lang == "zh":
        return f"{start.year}年{start.month}月{start.day}日至{end.year}年{end.month}月{end.day}日"
    return f"{start.isoformat()} to {end.isoformat()}"


def percent(share: float) -> str:
    """A threshold or share as a percentage: 0.2 → ``20%``."""
    return f"{share:.0%}"


def change_sentence(
    m: Metric, comparison: Comparison, change: float, base_text: str, now_text: str, lang: Lang
) -> str:
    """One anomaly line: ``获客成本 同比上升 20.0%(¥20.00 → ¥24.00)`` (P3).

    The size is the metrics layer's change as :meth:`Metric.format_change` prints it, without its
    sign, because the verb already says which way it went.
    """
    verb = text("up" if change > 0 else "down" if change < 0 else "flat", lang)
    size = m.format_change(abs(change)).lstrip("+")
    when = text(f"{comparison}_short", lang)
    if lang == "zh":
        return f"{m.label_zh} {when}{verb} {size}({base_text} → {now_text})"
    return f"{m.label_en} {verb} {size} {when} ({base_text} → {now_text})"


def cause_sentence(d: Dimension, value: str, base_text: str, now_text: str, lang: Lang) -> str:
    """The probable cause: the dimension value that moved most, with its own before and after."""
    name = value_label(value, lang)
    if lang == "zh":
        return f"{d.label_zh}「{name}」变化最大:{base_text} → {now_text}"
    return f"Largest move in {d.label_en.lower()} {name}: {base_text} → {now_text}"
