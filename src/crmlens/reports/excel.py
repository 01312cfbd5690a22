"""The report as an Excel workbook (XlsxWriter): sheets 概览 / 多维分析 / 趋势 (Overview,
Breakdown, Trend), each opening with the seed-002 header block.

Cells hold the metrics layer's values as numbers and show them through number formats derived from
the KPI's declared format (¥ #,##0.00, 0.0 %, #,##0), so sorting, sums and charts in Excel work.
Two exceptions, because Excel cannot scale a format by 100 or 1000 without a % sign:

- a per-mille KPI (complaint rate, shown 4.44‰) is shown as a percentage with one more decimal
  (0.444 %), its value unchanged;
- a change in percentage points (a rate's 环比 / 同比) is written in points (-6.4 for -6.4 pp,
  i.e. the change × the KPI's display scale), so it cannot be misread as a relative change.

The font is Microsoft YaHei with the GB2312 character set: where YaHei is missing, Excel and
LibreOffice substitute a Chinese font of that character set (SimSun), so Chinese never shows as
boxes. Fonts are names in the file; nothing is embedded or installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format as CellFormat
from xlsxwriter.worksheet import Worksheet

from crmlens.metrics import Metric
from crmlens.reports.labels import (
    Lang,
    check_lang,
    dimension_label,
    metric_label,
    percent,
    period_range,
    text,
)
from crmlens.reports.present import (
    BAD,
    BAD_FILL,
    GOOD,
    GOOD_FILL,
    HEAD_FILL,
    MUTED,
    anomaly_lines,
    compared_text,
    heading,
    met_text,
    report_title,
    tone,
)
from crmlens.reports.template import Report, SegmentTable, Trend

FONT = {"font_name": "Microsoft YaHei", "font_charset": 134, "font_size": 10}
#: Rows of the header block; tables start below it.
HEADER_ROWS = 6
_MISSING = "—"
_TONE_COLOR = {"good": GOOD, "bad": BAD, "flat": MUTED}


def number_format(m: Metric) -> str:
    """The Excel number format of a KPI's values, from its declared :class:`Format`.

    >>> from crmlens.metrics import metric
    >>> number_format(metric("aov")), number_format(metric("orders")), number_format(metric("churn_rate"))
    ('"¥"#,##0.00', '#,##0', '0.0%')
    >>> number_format(metric("complaint_rate"))
    '0.000%'
    """
    f = m.fmt
    if f.scale != 1:
        decimals = f.decimals + round(math.log10(f.scale / 100))
        return f"0{_decimals(decimals)}%"
    return f"{_quote(f.prefix)}#,##0{_decimals(f.decimals)}{_quote(f.suffix)}"


def change_cell(m: Metric, change: float | None) -> tuple[float | None, str]:
    """The value written for a 环比 / 同比 change and its number format, with ▲ / ▼ arrows.

    >>> from crmlens.metrics import metric
    >>> change_cell(metric("retention_30d"), -0.064)
    (-6.4, '"▲ "+0.0"pp";"▼ "-0.0"pp";0.0"pp"')
    """
    if m.change == "relative":
        return change, '"▲ "+0.0%;"▼ "-0.0%;0.0%'
    f = m.fmt
    unit = ("pp" if f.scale == 100 else f.suffix) if m.unit == "ratio" else ""
    scale = f.scale if m.unit == "ratio" else 1.0
    body = f"0{_decimals(f.decimals)}{_quote(unit)}"
    scaled = None if change is None else change * scale
    return scaled, f'"▲ "+{body};"▼ "-{body};{body}'


def _decimals(n: int) -> str:
    return "." + "0" * n if n > 0 else ""


def _quote(literal: str) -> str:
    return f'"{literal}"' if literal else ""


class _Styles:
    """Cell formats, created once per distinct set of properties (XlsxWriter keeps every one)."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.book = book
        self._made: dict[tuple[tuple[str, Any], ...], CellFormat] = {}

    def get(self, **props: Any) -> CellFormat:
        key = tuple(sorted(props.items()))
        if key not in self._made:
            self._made[key] = self.book.add_format(props)
        return self._made[key]

    def head(self) -> CellFormat:
        return self.get(bold=True, bg_color=HEAD_FILL, border=1, text_wrap=True, valign="vcenter")

    def number(self, num_format: str, color: str | None = None, bold: bool = False) -> CellFormat:
        props: dict[str, Any] = {"num_format": num_format, "border": 1, "bold": bold}
        if color:
            props["font_color"] = color
        return self.get(**props)


def write_xlsx(report: Report, path: str | Path, lang: str = "zh") -> Path:
    """Write the workbook to ``path`` and return the path."""
    chosen = check_lang(lang)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    book = xlsxwriter.Workbook(str(out), {"default_format_properties": dict(FONT)})
    book.set_properties({"title": text("title", chosen), "comments": text("privacy", chosen)})
    styles = _Styles(book)
    # the overview sheet (with the anomalies) first, then the other sections in template order
    _overview(book.add_worksheet(text("sheet_overview", chosen)), report, chosen, styles)
    for section in report.template.sections:
        if section == "segments" and report.segments is not None:
            sheet = book.add_worksheet(text("sheet_breakdown", chosen))
            _breakdown(sheet, report, report.segments, chosen, styles)
        elif section == "trend" and report.trend is not None:
            sheet = book.add_worksheet(text("sheet_trend", chosen))
            _trend(book, sheet, report, report.trend, chosen, styles)
    book.close()
    return out


def _header(sheet: Worksheet, report: Report, lang: Lang, styles: _Styles, width: int) -> int:
    """The seed-002 header block; returns the first free row."""
    h = report.header
    title = report_title(report, lang)
    sheet.merge_range(0, 0, 0, width - 1, title, styles.get(bold=True, font_size=14))
    label = styles.get(font_color=MUTED)
    rows = [
        [(text("period", lang), f"{period_range(h.start, h.end, lang)}({h.period})")],
        [
            (text("department", lang), h.department or _MISSING),
            (text("reviewer", lang), h.reviewer or _MISSING),
        ],
        [
            (text("generated_at", lang), h.generated_at.strftime("%Y-%m-%d %H:%M")),
            (text("data_until", lang), h.data_until.isoformat()),
        ],
    ]
    for r, pairs in enumerate(rows, start=1):
        for i, (key, value) in enumerate(pairs):
            sheet.write_string(r, 3 * i, key, label)
            sheet.write_string(r, 3 * i + 1, value, styles.get(bold=True))
    note = text("privacy", lang)
    if h.end > h.data_until:
        note = text("partial", lang, day=h.data_until) + " " + note
    sheet.write_string(4, 0, note, styles.get(font_color=MUTED, italic=True))
    return HEADER_ROWS


def _print_setup(sheet: Worksheet, header_row: int) -> None:
    """Landscape, one page wide, the table header repeated on every printed page."""
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(header_row)
    sheet.freeze_panes(header_row + 1, 1)


def _overview(sheet: Worksheet, report: Report, lang: Lang, styles: _Styles) -> None:
    keys = ("kpi", "value", "previous", "mom", "last_year", "yoy", "target", "attainment", "met")
    row = _header(sheet, report, lang, styles, len(keys) + 1)
    sheet.write_string(
        row, 0, heading(report, "overview", lang), styles.get(bold=True, font_size=12)
    )
    sheet.write_string(row + 1, 0, compared_text(report, lang), styles.get(font_color=MUTED))
    head_row = row + 2
    sheet.write_row(
        head_row, 0, [*(text(k, lang) for k in keys), text("metric_id", lang)], styles.head()
    )
    row = head_row + 1
    for line in report.kpis:
        m = line.metric
        fmt = number_format(m)
        sheet.write_string(row, 0, metric_label(m, lang), styles.get(border=1))
        if line.note is None:
            _number(sheet, row, 1, line.value, styles.number(fmt))
        else:
            sheet.write_string(row, 1, text("not_applicable", lang), styles.get(border=1))
            sheet.write_comment(row, 1, line.note)
        _number(sheet, row, 2, line.previous, styles.number(fmt))
        _number(sheet, row, 4, line.last_year, styles.number(fmt))
        for col, change in ((3, line.change), (5, line.change_yoy)):
            scaled, change_fmt = change_cell(m, change)
            color = _TONE_COLOR.get(tone(m, change) or "")
            _number(sheet, row, col, scaled, styles.number(change_fmt, color))
        _number(sheet, row, 6, line.target, styles.number(fmt))
        _number(sheet, row, 7, line.attainment, styles.number("0.0%"))
        met_style: dict[str, Any] = {"border": 1, "align": "center"}
        if line.met is not None:
            met_style |= {"font_color": GOOD if line.met else BAD}
            met_style |= {"bg_color": GOOD_FILL if line.met else BAD_FILL}
        sheet.write_string(row, 8, met_text(line.met, lang), styles.get(**met_style))
        sheet.write_string(row, 9, m.name, styles.get(border=1, font_color=MUTED))
        row += 1
    if "anomalies" in report.template.sections:
        _anomaly_block(sheet, report, lang, styles, row + 1)
    sheet.set_column(0, 0, 22)
    sheet.set_column(1, 7, 14)
    sheet.set_column(8, 9, 16)
    _print_setup(sheet, head_row)


def _anomaly_block(sheet: Worksheet, report: Report, lang: Lang, styles: _Styles, row: int) -> None:
    sheet.write_string(
        row, 0, heading(report, "anomalies", lang), styles.get(bold=True, font_size=12)
    )
    rule = text("anomaly_rule", lang, threshold=percent(report.template.anomaly_threshold))
    sheet.write_string(row + 1, 0, rule, styles.get(font_color=MUTED))
    lines = anomaly_lines(report, lang)
    if not lines:
        sheet.write_string(row + 2, 0, text("no_anomalies", lang))
        return
    heads = [text(k, lang) for k in ("anomaly_col_kpi", "anomaly_col_text", "anomaly_col_cause")]
    sheet.write_string(row + 2, 0, heads[0], styles.head())
    sheet.merge_range(row + 2, 1, row + 2, 4, heads[1], styles.head())
    sheet.merge_range(row + 2, 5, row + 2, 9, heads[2], styles.head())
    for i, a in enumerate(lines, start=row + 3):
        what = styles.get(
            border=1, text_wrap=True, font_color=_TONE_COLOR.get(a.tone or "", "#000000")
        )
        sheet.write_string(i, 0, a.kpi, styles.get(border=1))
        sheet.merge_range(i, 1, i, 4, a.what, what)
        sheet.merge_range(i, 5, i, 9, a.cause, styles.get(border=1, text_wrap=True))
        sheet.set_row(i, 30)


def _breakdown(
    sheet: Worksheet, report: Report, seg: SegmentTable, lang: Lang, styles: _Styles
) -> None:
    width = len(seg.dims) + len(seg.metrics) + (seg.share_of is not None)
    row = _header(sheet, report, lang, styles, max(width, 6))
    dims = " × ".join(dimension_label(d, lang) for d in seg.dims)
    title = f"{heading(report, 'segments', lang)}({text('segments_by', lang, dims=dims)})"
    sheet.write_string(row, 0, title, styles.get(bold=True, font_size=12))
    head_row = row + 1
    heads = [dimension_label(d, lang) for d in seg.dims] + [
        metric_label(m, lang) for m in seg.metrics
    ]
    if seg.share_of is not None:
        heads.append(text("share_of", lang, label=metric_label(seg.share_of, lang)))
    sheet.write_row(head_row, 0, heads, styles.head())
    row = head_row + 1
    for seg_row in seg.rows:
        for col, key in enumerate(seg_row.keys):
            sheet.write_string(row, col, key, styles.get(border=1))
        _segment_values(sheet, seg, row, seg_row.values, seg_row.share, styles, bold=False)
        row += 1
    sheet.write_string(row, 0, text("total", lang), styles.get(border=1, bold=True))
    for col in range(1, len(seg.dims)):
        sheet.write_blank(row, col, None, styles.get(border=1, bold=True))
    _segment_values(sheet, seg, row, seg.total, 1.0 if seg.share_of else None, styles, bold=True)
    sheet.set_column(0, len(seg.dims) - 1, 16)
    sheet.set_column(len(seg.dims), width - 1, 15)
    _print_setup(sheet, head_row)


def _segment_values(
    sheet: Worksheet,
    seg: SegmentTable,
    row: int,
    values: Mapping[str, float | None],
    share: float | None,
    styles: _Styles,
    bold: bool,
) -> None:
    """A row's KPI values and share, after its dimension cells."""
    col = len(seg.dims)
    for m in seg.metrics:
        _number(sheet, row, col, values[m.name], styles.number(number_format(m), bold=bold))
        col += 1
    if seg.share_of is not None:
        _number(sheet, row, col, share, styles.number("0.0%", bold=bold))


def _trend(
    book: xlsxwriter.Workbook,
    sheet: Worksheet,
    report: Report,
    trend: Trend,
    lang: Lang,
    styles: _Styles,
) -> None:
    row = _header(sheet, report, lang, styles, 6)
    sheet.write_string(row, 0, heading(report, "trend", lang), styles.get(bold=True, font_size=12))
    head_row = row + 1
    heads = [text("trend_period", lang)] + [metric_label(m, lang) for m in trend.metrics]
    sheet.write_row(head_row, 0, heads, styles.head())
    for i, label in enumerate(trend.periods, start=head_row + 1):
        sheet.write_string(i, 0, label, styles.get(border=1))
        for col, m in enumerate(trend.metrics, start=1):
            _number(
                sheet,
                i,
                col,
                trend.values[m.name][i - head_row - 1],
                styles.number(number_format(m)),
            )
    first, last = head_row + 1, head_row + len(trend.periods)
    sheet.set_column(0, len(trend.metrics), 16)
    _print_setup(sheet, head_row)
    for k, m in enumerate(trend.metrics):
        chart = book.add_chart({"type": "line"})
        chart.add_series(
            {
                "name": metric_label(m, lang),
                "categories": [sheet.name, first, 0, last, 0],
                "values": [sheet.name, first, k + 1, last, k + 1],
                "marker": {"type": "circle", "size": 5},
            }
        )
        chart.set_title(
            {"name": metric_label(m, lang), "name_font": {"name": FONT["font_name"], "size": 11}}
        )
        chart.set_legend({"none": True})
        chart.set_y_axis({"num_format": number_format(m), "major_gridlines": {"visible": True}})
        chart.set_size({"width": 560, "height": 260})
        # the charts stack to the right of the table, one per KPI (their units differ)
        sheet.insert_chart(head_row, len(trend.metrics) + 2, chart, {"y_offset": 280 * k})


def _number(sheet: Worksheet, row: int, col: int, value: float | None, style: CellFormat) -> None:
    """A number cell, or ``—`` where the metrics layer has no value (a rate without a base)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        sheet.write_string(row, col, _MISSING, style)
    else:
        sheet.write_number(row, col, value, style)
