"""The HTML page: self-contained, numbers equal to the metrics layer, escaped, both languages."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

from python_calamine import CalamineWorkbook

from crmlens.metrics import Scope, overview, segment_table
from crmlens.reports import REPORT_KPIS, Report, render_html, write_html
from crmlens.reports.svg import line_chart
from crmlens.warehouse import Warehouse

NOVEMBER = Scope.parse("2021-11")
CELL = re.compile(r'data-metric="(\w+)" data-field="([\w-]+)" data-value="([^"]+)"')


def cells(page: str) -> list[tuple[str, str, float]]:
    """Every number cell as (metric, field, exact value), in page order."""
    return [(m, f, float(v)) for m, f, v in CELL.findall(page)]


def section(page: str, name: str) -> str:
    return re.search(rf'<section id="{name}">(.*?)</section>', page, re.S).group(1)  # type: ignore[union-attr]


def body_rows(html: str) -> list[str]:
    """The rows of a section's table body, without the header row."""
    tbody = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)  # type: ignore[union-attr]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, re.S)


def test_self_contained(monthly_html: str) -> None:
    lowered = monthly_html.lower()
    for ref in (
        "http://",
        "https://",
        "//cdn",
        "<script",
        "<link",
        "<img",
        "@import",
        "url(",
        "src=",
    ):
        assert ref not in lowered, ref
    assert lowered.startswith("<!doctype html>") and '<meta charset="utf-8">' in lowered
    assert "<style>" in lowered and "@media print" in lowered and "@media (max-width" in lowered
    assert lowered.count("<svg") == 2


def test_header(monthly_html: str) -> None:
    assert "<title>客户关系管理多维数据报告 · 月报 2021-11</title>" in monthly_html
    header = monthly_html.split("</header>")[0]
    for shown in (
        "2021年11月1日至2021年11月30日",
        "<dd>市场部</dd>",
        "<dd>张经理</dd>",
        "2021-12-06 09:30",
    ):
        assert shown in header
    assert "报告周期尚未结束" not in header  # November is over; 2021-W52 would say so


def test_overview_numbers_are_the_metrics_layers(monthly_html: str, wh: Warehouse) -> None:
    expected = {r["metric"]: r for r in overview(wh, REPORT_KPIS, NOVEMBER).to_dict("records")}
    found = cells(section(monthly_html, "overview"))
    assert {m for m, _, _ in found} == set(REPORT_KPIS)
    for name, field, value in found:
        assert math.isclose(value, expected[name][field], rel_tol=1e-15), (name, field)
    # and every defined value is there (a missing one shows —, without data-value)
    for name, rec in expected.items():
        fields = {f for m, f, _ in found if m == name}
        assert fields == {
            k
            for k in (
                "value",
                "previous",
                "change",
                "last_year",
                "change_yoy",
                "target",
                "attainment",
            )
            if rec[k] is not None
        }
    text = section(monthly_html, "overview")
    for rec in expected.values():
        assert f'data-value="{rec["value"]!r}">' in text


def test_formatted_as_the_dashboard(monthly_html: str, monthly: Report) -> None:
    rows = dict(re.findall(r'<tr data-metric="(\w+)">(.*?)</tr>', monthly_html, re.S))
    for line in monthly.kpis:
        m = line.metric
        assert f">{m.fmt(line.value)}<" in rows[m.name]
        if line.change is not None:
            assert m.format_change(line.change) in rows[m.name]
    assert 'class="num met"' in rows["revenue"] and "✓ 达标" in rows["revenue"]
    cac = rows["cac"]
    assert 'class="num good"' in cac  # CAC fell year on year: good, whatever the arrow says


def test_segment_table(monthly_html: str, wh: Warehouse) -> None:
    expected = segment_table(wh, NOVEMBER).to_dict("records")
    body = section(monthly_html, "segments")
    rows = body_rows(body)[:-1]  # the last is the total
    assert len(rows) == len(expected)
    for row, rec in zip(rows, expected, strict=True):
        assert row.startswith(f"<td>{rec['region']}</td><td>{rec['customer_type']}</td>")
        for name, field, value in cells(row):
            key = "customers_share" if field == "share" else name
            assert math.isclose(value, rec[key], rel_tol=1e-15)
    assert '<tr class="total"><td>合计</td>' in body


def test_anomalies_and_trend(monthly_html: str, monthly: Report) -> None:
    anomalies = section(monthly_html, "anomalies")
    assert len(body_rows(anomalies)) == len(monthly.anomalies)
    assert "获客成本 同比下降" in anomalies
    trend = section(monthly_html, "trend")
    assert "2020-12" in trend and "2021-11" in trend
    revenue = [v for m, _, v in cells(trend) if m == "revenue"]
    assert revenue == [v for v in monthly.trend.values["revenue"] if v is not None]


def test_text_is_escaped(monthly: Report) -> None:
    hostile = replace(
        monthly, header=replace(monthly.header, department='<b onclick="x">市场部</b>')
    )
    page = render_html(hostile)
    assert "<b onclick" not in page and "&lt;b onclick=&quot;x&quot;&gt;市场部&lt;/b&gt;" in page


def test_english_page(monthly: Report, tmp_path: Path) -> None:
    path = write_html(monthly, tmp_path / "r.html", lang="en")
    page = path.read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "CRM multi-dimensional report · monthly report" in page
    assert "KPI overview" in page and "New customers" in page and "2021-11-01 to 2021-11-30" in page
    assert "核心指标概览" not in page


def test_no_personal_data(
    monthly_html: str, monthly_xlsx: Path, customers_pii: dict[str, set[str]]
) -> None:
    book = CalamineWorkbook.from_path(str(monthly_xlsx))
    strings = {
        str(cell)
        for name in book.sheet_names
        for row in book.get_sheet_by_name(name).to_python()
        for cell in row
        if isinstance(cell, str) and cell
    }
    text = "\n".join(strings)
    assert sum(len(v) for v in customers_pii.values()) > 10_000
    for column, values in customers_pii.items():
        leaked = [v for v in values if v in monthly_html or v in text]
        assert not leaked, (column, leaked[:5])


def test_chart_breaks_at_missing_values() -> None:
    svg = line_chart("NPS", ["a", "b", "c", "d"], [1.0, None, 3.0, 4.0], str)
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3
    assert "<title>c: 3.0</title>" in svg and "http" not in svg
