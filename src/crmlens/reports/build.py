"""Filling the report template for one period from the metrics layer (P5).

>>> report_period("2021-W45")
(Period(label='2021-W45', start=datetime.date(2021, 11, 8), end=datetime.date(2021, 11, 14)), 'week')
>>> report_period("2021-Q4")[1]
'quarter'

Every number of the report is a value returned by :func:`crmlens.metrics.overview`,
:func:`~crmlens.metrics.segment_table`, :func:`~crmlens.metrics.timeseries`,
:func:`~crmlens.metrics.breakdown` or :func:`~crmlens.metrics.value`; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from crmlens.errors import ConfigError
from crmlens.metrics import (
    GRAINS,
    Grain,
    Period,
    Scope,
    dimension,
    metrics,
    overview,
    parse_period,
    segment_table,
    timeseries,
    value,
)
from crmlens.metrics.periods import check_grain, period_label, period_start
from crmlens.metrics.summary import history_scope
from crmlens.reports.anomalies import Names, as_float, display_value, find_anomalies
from crmlens.reports.template import (
    DEFAULT_TEMPLATE,
    SECTIONS,
    Header,
    KpiLine,
    Report,
    SegmentRow,
    SegmentTable,
    Template,
    Trend,
)
from crmlens.warehouse import Warehouse

#: Grains a trend is shown at by default for a report period of each grain: a quarterly or annual
#: report shows months, as the seed's monthly review does.
_TREND_GRAIN: dict[str, Grain] = {
    "day": "day",
    "week": "week",
    "month": "month",
    "quarter": "month",
    "year": "month",
}


def report_period(text: str) -> tuple[Period, Grain]:
    """The period written as ``2021-11``, ``2021-W45``, ``2021-Q4``, ``2021`` (or a day), and its
    grain: the one whose label it is."""
    period = parse_period(text)
    grains = [check_grain(g) for g in GRAINS]
    return period, next(g for g in grains if period_label(period.start, g) == period.label)


def build_report(
    wh: Warehouse,
    period: str,
    *,
    grain: str | None = None,
    department: str | None = None,
    reviewer: str | None = None,
    template: Template = DEFAULT_TEMPLATE,
    generated_at: datetime | None = None,
) -> Report:
    """The report for ``period``: header, KPI overview, anomalies, multi-dimensional table, trend.

    The overview compares with the previous period and the same period last year of the period's
    own grain (2021-W45 with 2021-W44 and 2020-W45); ``grain`` is that of the trend (default: the
    period's, months for a quarter or a year). A period starting after the last loaded order is an
    error; one that is not over yet is reported with a note in the header.
    """
    check_template(template)
    span, kind = report_period(period)
    trend_grain = check_grain(grain) if grain else _TREND_GRAIN[kind]
    data_until = history_scope(wh).end
    if span.start > data_until:
        raise ConfigError(
            f"no data for {span.label}: the warehouse's orders end on {data_until.isoformat()}"
        )
    scope = Scope(span.start, span.end, kind)
    lines = tuple(_kpi_line(rec) for rec in overview(wh, template.kpis, scope).to_dict("records"))
    names = reference_names(wh)
    header = Header(
        kind=kind,
        period=span.label,
        start=span.start,
        end=span.end,
        grain=trend_grain,
        department=department or None,
        reviewer=reviewer or None,
        generated_at=generated_at or datetime.now().replace(microsecond=0),
        data_until=data_until,
    )
    wanted = set(template.sections)
    return Report(
        template=template,
        header=header,
        kpis=lines,
        segments=_segments(wh, scope, template, lines, names) if "segments" in wanted else None,
        trend=_trend(wh, span, trend_grain, template) if "trend" in wanted else None,
        anomalies=(
            find_anomalies(wh, lines, scope, template, names) if "anomalies" in wanted else ()
        ),
    )


def check_template(template: Template) -> None:
    """:class:`ConfigError` naming what is wrong with a template: unknown or repeated sections,
    no KPI overview, unknown KPIs or dimensions (checked before any query runs)."""
    sections = list(template.sections)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or len(set(sections)) != len(sections) or "overview" not in sections:
        raise ConfigError(
            f"report sections {sections}: each of {', '.join(SECTIONS)} at most once, "
            "the overview always"
        )
    metrics([*template.kpis, *template.segment_metrics, *template.trend_metrics])
    for name in template.segment_by:
        dimension(name)
    if template.trend_periods < 1 or template.max_anomalies < 0:
        raise ConfigError(
            "a report trend needs at least 1 period; max_anomalies cannot be negative"
        )


def reference_names(wh: Warehouse) -> Names:
    """Display names of the dimension values stored as ids: channels and stores."""
    out: dict[str, dict[str, str]] = {}
    for dim, table, key, name in (
        ("channel", "channels", "channel_id", "channel_name"),
        ("store", "stores", "store_id", "store_name"),
    ):
        t = wh.table(table)
        frame = wh.execute(t.select(key, name).filter(t[name].notnull()))
        out[dim] = dict(zip(frame[key].astype(str), frame[name].astype(str), strict=True))
    return out


def _kpi_line(rec: Mapping[str, Any]) -> KpiLine:
    """An overview record (None for missing values, see ``with_nulls``) as a typed line."""
    floats = {
        k: as_float(rec[k])
        for k in ("value", "previous", "change", "last_year", "change_yoy", "target", "attainment")
    }
    return KpiLine(
        metric=metrics([rec["metric"]])[0],
        met=None if rec["met"] is None else bool(rec["met"]),
        previous_period=rec["previous_period"],
        last_year_period=rec["last_year_period"],
        note=rec["note"],
        **floats,
    )


def _segments(
    wh: Warehouse, scope: Scope, template: Template, lines: tuple[KpiLine, ...], names: Names
) -> SegmentTable:
    """The seed-002 table by ``segment_by``, and a total row: the KPI over the whole scope, taken
    from the overview when the overview has it (same scope, same value) to save a query."""
    chosen = tuple(metrics(template.segment_metrics))
    share_of = next((m for m in chosen if m.additive), None)
    frame = segment_table(wh, scope, template.segment_by, template.segment_metrics)
    rows = []
    for rec in frame.to_dict("records"):
        keys = tuple(display_value(names, dim, str(rec[dim])) for dim in template.segment_by)
        share = rec.get(f"{share_of.name}_share") if share_of else None
        rows.append(
            SegmentRow(keys, {m.name: as_float(rec[m.name]) for m in chosen}, as_float(share))
        )
    known = {line.metric.name: line.value for line in lines if line.note is None}
    total = {m.name: known[m.name] if m.name in known else value(wh, m, scope) for m in chosen}
    return SegmentTable(
        dims=tuple(dimension(d) for d in template.segment_by),
        metrics=chosen,
        share_of=share_of,
        rows=tuple(rows),
        total={k: as_float(v) for k, v in total.items()},
    )


def _trend(wh: Warehouse, span: Period, grain: Grain, template: Template) -> Trend:
    """The last ``trend_periods`` periods of ``grain`` up to the report period's end."""
    start = period_start(span.end, grain)
    for _ in range(template.trend_periods - 1):
        start = period_start(start - timedelta(days=1), grain)
    chosen = tuple(metrics(template.trend_metrics))
    frame = timeseries(wh, chosen, Scope(start, span.end, grain))
    labels = tuple(dict.fromkeys(frame["period"]))
    values = {
        m.name: tuple(as_float(v) for v in frame.loc[frame["metric"] == m.name, "value"])
        for m in chosen
    }
    return Trend(metrics=chosen, periods=labels, values=values)
