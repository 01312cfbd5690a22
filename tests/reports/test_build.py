"""The filled report equals the metrics layer for the same scope: overview, table, trend, causes."""

from __future__ import annotations

import doctest
import importlib
import math
from datetime import date
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from crmlens.errors import ConfigError
from crmlens.metrics import (
    Scope,
    breakdown,
    overview,
    segment_table,
    timeseries,
    value,
)
from crmlens.metrics.periods import last_year_range, previous_range
from crmlens.metrics.summary import history_scope
from crmlens.reports import (
    REPORT_KPIS,
    Report,
    Template,
    build_report,
    render_html,
    report_period,
    write_xlsx,
)
from crmlens.reports.build import check_template
from crmlens.reports.labels import change_sentence
from crmlens.reports.present import anomaly_lines
from crmlens.warehouse import Warehouse

NOVEMBER = Scope.parse("2021-11")


def same(a: float | None, b: float | None) -> bool:
    """Equal, both missing, or equal up to float noise."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("text", "grain", "start", "end"),
    [
        ("2021-11", "month", date(2021, 11, 1), date(2021, 11, 30)),
        ("2021-W45", "week", date(2021, 11, 8), date(2021, 11, 14)),
        ("2021-Q4", "quarter", date(2021, 10, 1), date(2021, 12, 31)),
        ("2021", "year", date(2021, 1, 1), date(2021, 12, 31)),
    ],
)
def test_report_periods(text: str, grain: str, start: date, end: date) -> None:
    period, found = report_period(text)
    assert (found, period.start, period.end, period.label) == (grain, start, end, text)


def test_header(monthly: Report, wh: Warehouse) -> None:
    h = monthly.header
    assert (h.kind, h.grain, h.period) == ("month", "month", "2021-11")
    assert (h.start, h.end) == (date(2021, 11, 1), date(2021, 11, 30))
    assert (h.department, h.reviewer) == ("市场部", "张经理")
    assert h.data_until == history_scope(wh).end == date(2021, 12, 31)


def test_overview_is_the_metrics_layers(monthly: Report, wh: Warehouse) -> None:
    expected = overview(wh, REPORT_KPIS, NOVEMBER).to_dict("records")
    assert [line.metric.name for line in monthly.kpis] == list(REPORT_KPIS)
    for line, rec in zip(monthly.kpis, expected, strict=True):
        for field in ("value", "previous", "change", "last_year", "change_yoy", "target"):
            assert same(getattr(line, field), rec[field]), (line.metric.name, field)
        assert line.met == rec["met"] and line.note == rec["note"]
        assert (line.previous_period, line.last_year_period) == ("2021-10", "2020-11")
    revenue = next(line for line in monthly.kpis if line.metric.name == "revenue")
    assert revenue.target is not None and revenue.met is True  # the demo's revenue target


def test_segment_table_is_the_metrics_layers(monthly: Report, wh: Warehouse) -> None:
    expected = segment_table(wh, NOVEMBER).to_dict("records")
    seg = monthly.segments
    assert [d.name for d in seg.dims] == ["region", "customer_type"]
    assert [m.name for m in seg.metrics] == ["customers", "aov", "repurchase_rate", "csat"]
    assert len(seg.rows) == len(expected) >= 4
    for row, rec in zip(seg.rows, expected, strict=True):
        assert row.keys == (rec["region"], rec["customer_type"])
        assert all(same(row.values[m.name], rec[m.name]) for m in seg.metrics)
        assert same(row.share, rec["customers_share"])
    for m in seg.metrics:
        assert same(seg.total[m.name], value(wh, m, NOVEMBER))
    assert {row.keys[1] for row in seg.rows} >= {"个人", "企业"}


def test_trend_is_the_last_twelve_months(monthly: Report, wh: Warehouse) -> None:
    trend = monthly.trend
    assert trend.periods[0] == "2020-12" and trend.periods[-1] == "2021-11"
    assert len(trend.periods) == 12
    frame = timeseries(wh, ["revenue", "new_customers"], Scope.parse("2020-12", "2021-11"))
    for name in ("revenue", "new_customers"):
        got = frame.loc[frame["metric"] == name, "value"].tolist()
        assert all(same(a, b) for a, b in zip(trend.values[name], got, strict=True))


def _size(base: float | None, change: float | None, relative: bool) -> float | None:
    if change is None:
        return None
    if relative:
        return abs(change)
    return abs(change / base) if base else None


def test_anomalies_are_the_moves_beyond_the_threshold(monthly: Report) -> None:
    threshold = monthly.template.anomaly_threshold
    expected = []
    for line in monthly.kpis:
        for comparison in ("mom", "yoy"):
            base, change, _ = line.compared(comparison)  # type: ignore[arg-type]
            size = _size(base, change, line.metric.change == "relative")
            if size is not None and size >= threshold:
                expected.append((size, line.metric.name, comparison))
    expected.sort(reverse=True)
    found = [(a.metric.name, a.comparison) for a in monthly.anomalies]
    assert found == [(n, c) for _, n, c in expected][: monthly.template.max_anomalies]
    assert ("cac", "yoy") in found  # the seed's own example: CAC 同比 (here down, by about half)
    sizes = [a.size for a in monthly.anomalies]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= threshold


def test_anomaly_lines_say_which_way_and_how_much(monthly: Report) -> None:
    lines = anomaly_lines(monthly, "zh")
    for a, line in zip(monthly.anomalies, lines, strict=True):
        m = a.metric
        base, change, _ = a.line.compared(a.comparison)
        assert change is not None
        assert line.what == change_sentence(
            m, a.comparison, change, m.fmt(base), m.fmt(a.line.value), "zh"
        )
        assert ("环比" if a.comparison == "mom" else "同比") in line.what
        assert ("上升" if change > 0 else "下降") in line.what
        assert m.format_change(abs(change)).lstrip("+") in line.what
    cac = next(x for x, a in zip(lines, monthly.anomalies, strict=True) if a.metric.name == "cac")
    assert cac.what.startswith("获客成本 同比下降") and cac.tone == "good"


def test_causes_are_dimension_values_that_moved_the_same_way(
    monthly: Report, wh: Warehouse
) -> None:
    explained = [a for a in monthly.anomalies if a.cause is not None]
    assert len(explained) >= len(monthly.anomalies) - 2
    for a in explained[:4]:
        cause = a.cause
        assert cause is not None and cause.dimension.name in a.metric.default_dims
        _, change, _ = a.line.compared(a.comparison)
        assert change is not None and cause.now is not None and cause.base is not None
        assert (cause.now - cause.base) * change > 0
        dim = cause.dimension.name
        days = (NOVEMBER.start, NOVEMBER.end)
        before = previous_range(*days) if a.comparison == "mom" else last_year_range(*days)
        for scope, expected in ((NOVEMBER, cause.now), (NOVEMBER.with_range(*before), cause.base)):
            frame = breakdown(wh, [a.metric], scope, [dim])
            got = frame.loc[frame[dim] == cause.value, a.metric.name]
            assert same(float(got.iloc[0]) if len(got) else 0.0, expected), (a.metric.name, dim)


def test_channel_and_store_ids_are_shown_with_their_names(monthly: Report) -> None:
    causes = [a.cause for a in monthly.anomalies if a.cause is not None]
    by_id = [c for c in causes if c.dimension.name in ("channel", "store")]
    assert by_id and all(c.display.endswith(f"({c.value})") for c in by_id)
    assert all(len(c.display) > len(c.value) + 3 for c in by_id)


def test_a_custom_template(wh: Warehouse) -> None:
    template = Template(
        kpis=("new_customers", "cac"),
        segment_by=("channel",),
        segment_metrics=("new_customers", "cac"),
        trend_metrics=("cac",),
        trend_periods=3,
        anomaly_threshold=10.0,
    )
    report = build_report(wh, "2021-11", template=template)
    assert [line.metric.name for line in report.kpis] == ["new_customers", "cac"]
    assert report.trend.periods == ("2021-09", "2021-10", "2021-11")
    assert report.anomalies == ()
    assert report.segments.share_of is not None and report.segments.share_of.name == "new_customers"
    shown = {row.keys[0] for row in report.segments.rows}
    assert "抖音广告 (C04)" in shown
    total = sum(row.values["new_customers"] or 0 for row in report.segments.rows)
    assert total == report.segments.total["new_customers"] == report.kpis[0].value


def test_a_weekly_report_at_the_end_of_the_data(wh: Warehouse) -> None:
    """2021-W52 runs to 2022-01-02, past the last order (2021-12-31): reported, with a note."""
    light = Template(kpis=("revenue", "aov"), segment_metrics=("customers",), max_anomalies=1)
    report = build_report(wh, "2021-W52", template=light)
    h = report.header
    assert (h.kind, h.grain, h.start, h.end) == (
        "week",
        "week",
        date(2021, 12, 27),
        date(2022, 1, 2),
    )
    assert h.end > h.data_until
    line = report.kpis[0]
    assert (line.previous_period, line.last_year_period) == ("2021-W51", "2020-W52")
    assert report.trend.periods[0] == "2021-W41" and report.trend.periods[-1] == "2021-W52"
    expected = overview(wh, ["revenue"], Scope(h.start, h.end, "week"))["value"].iloc[0]
    revenue = next(line for line in report.kpis if line.metric.name == "revenue")
    assert same(revenue.value, expected)


def test_a_period_without_data_is_an_error(wh: Warehouse) -> None:
    with pytest.raises(ConfigError, match="no data for 2022-03"):
        build_report(wh, "2022-03")
    with pytest.raises(ConfigError):
        build_report(wh, "2021-13")
    with pytest.raises(ConfigError):
        build_report(wh, "2021-11", grain="fortnight")


def test_sections_are_data(wh: Warehouse, tmp_path: Path) -> None:
    template = Template(
        sections=("overview", "trend"),
        kpis=("revenue",),
        trend_metrics=("revenue",),
        trend_periods=2,
    )
    report = build_report(wh, "2021-11", template=template)
    assert report.segments is None and report.anomalies == () and report.trend is not None
    page = render_html(report)
    assert '<section id="segments">' not in page and '<section id="anomalies">' not in page
    assert "<h2>2. 趋势(最近2期)</h2>" in page
    book = CalamineWorkbook.from_path(str(write_xlsx(report, tmp_path / "r.xlsx")))
    assert book.sheet_names == ["概览", "趋势"]


@pytest.mark.parametrize(
    "template",
    [
        Template(sections=("trend",)),
        Template(sections=("overview", "overview")),
        Template(sections=("overview", "charts")),  # type: ignore[arg-type]
        Template(kpis=("happiness",)),
        Template(segment_by=("colour",)),
        Template(trend_periods=0),
    ],
)
def test_bad_templates_fail_before_any_query(template: Template) -> None:
    with pytest.raises(ConfigError):
        check_template(template)


def test_doctests() -> None:
    for name in ("build", "excel", "labels", "present", "svg", "template", "anomalies"):
        module = importlib.import_module(f"crmlens.reports.{name}")
        assert doctest.testmod(module).failed == 0, name
