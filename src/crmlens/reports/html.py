"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script and no
external reference of any kind, so it opens offline, prints cleanly and can be mailed as a file.

Every number cell carries its exact value in ``data-value`` (and the KPI in ``data-metric``), so
the page can be checked against the metrics layer, or scraped, without parsing formatted text.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

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
    change_text,
    compared_text,
    heading,
    met_text,
    ratio_text,
    report_title,
    tone,
    value_text,
)
from crmlens.reports.svg import line_chart
from crmlens.reports.template import Report

_FONTS = (
    '"Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC", "Source Han Sans SC", SimSun, sans-serif'
)
_CHART_COLORS = ("#2563eb", "#d97706", "#7c3aed")

_CSS = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: {_FONTS}; color: #1f2937; background: #f8fafc; line-height: 1.5; }}
.report {{ max-width: 1100px; margin: 0 auto; padding: 24px 16px; }}
header {{ border-bottom: 2px solid #1f2937; margin-bottom: 16px; }}
h1 {{ font-size: 1.5rem; margin: 0 0 8px; }}
h2 {{ font-size: 1.15rem; margin: 24px 0 8px; }}
dl.meta {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr));
  gap: 2px 16px; margin: 0 0 8px; }}
dl.meta div {{ display: flex; gap: 6px; }}
dt {{ color: {MUTED}; }} dt::after {{ content: ":"; }}
dd {{ margin: 0; font-weight: 600; }}
.note, .hint {{ color: {MUTED}; font-size: .875rem; margin: 4px 0; }}
.warn {{ color: {BAD}; }}
.table-wrap {{ overflow-x: auto; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ padding: 6px 10px; border-bottom: 1px solid #e5e7eb; text-align: left;
  white-space: nowrap; }}
th {{ background: {HEAD_FILL}; font-weight: 600; position: sticky; top: 0; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.wrap {{ white-space: normal; }}
tr.total td {{ font-weight: 700; border-top: 2px solid #9ca3af; }}
.good {{ color: {GOOD}; }} .bad {{ color: {BAD}; }} .flat {{ color: {MUTED}; }}
td.met {{ color: {GOOD}; background: {GOOD_FILL}; }}
td.missed {{ color: {BAD}; background: {BAD_FILL}; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px;
  margin-bottom: 12px; }}
svg.chart {{ width: 100%; height: auto; background: #fff; border: 1px solid #e5e7eb;
  border-radius: 6px; }}
svg .grid {{ stroke: #e5e7eb; }} svg .axis {{ font-size: 11px; fill: {MUTED}; }}
svg .chart-title {{ font-size: 13px; font-weight: 600; fill: #1f2937; }}
@media (max-width: 640px) {{
  .report {{ padding: 12px 8px; }} table {{ font-size: .8rem; }} th, td {{ padding: 4px 6px; }}
}}
@media print {{
  body {{ background: #fff; font-size: 10pt; }} .report {{ max-width: none; padding: 0; }}
  .table-wrap {{ overflow: visible; border: none; }} th {{ position: static; }}
  section {{ break-inside: avoid; page-break-inside: avoid; }}
  td.met, td.missed {{ -webkit-print-color-adjust: exact; print-color-adjust: exact; }}
}}
"""


def render_html(report: Report, lang: str = "zh") -> str:
    """The whole page as a string."""
    chosen = check_lang(lang)
    title = report_title(report, chosen)
    sections = {
        "overview": _overview,
        "anomalies": _anomalies,
        "segments": _segments,
        "trend": _trend,
    }
    body = _header(report, chosen, title) + "".join(
        sections[name](report, chosen) for name in report.template.sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if chosen == "zh" else "en"}">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body>\n<main class="report">\n{body}</main>\n</body>\n</html>\n'
    )


def write_html(report: Report, path: str | Path, lang: str = "zh") -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report, lang), encoding="utf-8")
    return out


def _num(m: Metric, field: str, value: float | None, shown: str, css: str = "") -> str:
    """A number cell with its exact value for checks; ``shown`` is already formatted."""
    exact = "" if value is None else f' data-value="{value!r}"'
    classes = f"num {css}".strip()
    return (
        f'<td class="{classes}" data-metric="{m.name}" data-field="{escape(field)}"{exact}>'
        f"{escape(shown)}</td>"
    )


def _header(report: Report, lang: Lang, title: str) -> str:
    h = report.header
    items = [
        (text("period", lang), f"{period_range(h.start, h.end, lang)}({h.period})"),
        (text("department", lang), h.department or "—"),
        (text("reviewer", lang), h.reviewer or "—"),
        (text("generated_at", lang), h.generated_at.strftime("%Y-%m-%d %H:%M")),
        (text("data_until", lang), h.data_until.isoformat()),
    ]
    meta = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items)
    note = ""
    if h.end > h.data_until:
        note = f'<p class="note warn">{escape(text("partial", lang, day=h.data_until))}</p>'
    return (
        f'<header>\n<h1>{escape(title)}</h1>\n<dl class="meta">{meta}</dl>\n{note}'
        f'<p class="note">{escape(text("privacy", lang))}</p>\n</header>\n'
    )


def _table(head: list[tuple[str, bool]], rows: list[str]) -> str:
    """A table in its scroll wrapper; ``head`` is (label, numeric?) per column."""
    numeric = ' class="num"'
    cells = "".join(f"<th{numeric if n else ''}>{escape(label)}</th>" for label, n in head)
    return (
        f'<div class="table-wrap"><table>\n<thead><tr>{cells}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>\n"
    )


def _overview(report: Report, lang: Lang) -> str:
    keys = ("kpi", "value", "previous", "mom", "last_year", "yoy", "target", "attainment", "met")
    head = [(text(k, lang), k != "kpi") for k in keys]
    rows = []
    for line in report.kpis:
        m = line.metric
        met_css = "" if line.met is None else "met" if line.met else "missed"
        cells = [
            f'<td title="{escape(line.note or m.name)}">{escape(metric_label(m, lang))}</td>',
            _num(m, "value", line.value, value_text(line, lang)),
            _num(m, "previous", line.previous, m.fmt(line.previous)),
            _num(m, "change", line.change, change_text(m, line.change), tone(m, line.change) or ""),
            _num(m, "last_year", line.last_year, m.fmt(line.last_year)),
            _num(
                m,
                "change_yoy",
                line.change_yoy,
                change_text(m, line.change_yoy),
                tone(m, line.change_yoy) or "",
            ),
            _num(m, "target", line.target, m.fmt(line.target)),
            _num(m, "attainment", line.attainment, ratio_text(line.attainment)),
            f'<td class="num {met_css}">{escape(met_text(line.met, lang))}</td>',
        ]
        rows.append(f'<tr data-metric="{m.name}">{"".join(cells)}</tr>')
    return (
        f'<section id="overview">\n<h2>{escape(heading(report, "overview", lang))}</h2>\n'
        f'<p class="hint">{escape(compared_text(report, lang))}</p>\n'
        f"{_table(head, rows)}</section>\n"
    )


def _anomalies(report: Report, lang: Lang) -> str:
    threshold = percent(report.template.anomaly_threshold)
    intro = f'<p class="hint">{escape(text("anomaly_rule", lang, threshold=threshold))}</p>\n'
    lines = anomaly_lines(report, lang)
    if not lines:
        body = f"<p>{escape(text('no_anomalies', lang))}</p>\n"
    else:
        head = [(text(k, lang), False) for k in ("anomaly_col_kpi", "anomaly_col_text")]
        head.append((text("anomaly_col_cause", lang), False))
        rows = [
            f"<tr><td>{escape(a.kpi)}</td>"
            f'<td class="wrap {a.tone or ""}">{escape(a.what)}</td>'
            f'<td class="wrap">{escape(a.cause)}</td></tr>'
            for a in lines
        ]
        body = _table(head, rows)
    return (
        f'<section id="anomalies">\n<h2>{escape(heading(report, "anomalies", lang))}</h2>\n'
        f"{intro}{body}</section>\n"
    )


def _segments(report: Report, lang: Lang) -> str:
    seg = report.segments
    if seg is None:
        return ""
    head = [(dimension_label(d, lang), False) for d in seg.dims]
    head += [(metric_label(m, lang), True) for m in seg.metrics]
    if seg.share_of is not None:
        head.append((text("share_of", lang, label=metric_label(seg.share_of, lang)), True))
    rows = []
    for row in seg.rows:
        cells = [f"<td>{escape(k)}</td>" for k in row.keys]
        cells += [
            _num(m, "value", row.values[m.name], m.fmt(row.values[m.name])) for m in seg.metrics
        ]
        if seg.share_of is not None:
            cells.append(_num(seg.share_of, "share", row.share, ratio_text(row.share)))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    total = [f"<td>{escape(text('total', lang))}</td>"] + ["<td></td>"] * (len(seg.dims) - 1)
    total += [_num(m, "total", seg.total[m.name], m.fmt(seg.total[m.name])) for m in seg.metrics]
    if seg.share_of is not None:
        total.append(f'<td class="num">{ratio_text(1.0)}</td>')
    rows.append(f'<tr class="total">{"".join(total)}</tr>')
    dims = " × ".join(dimension_label(d, lang) for d in seg.dims)
    return (
        f'<section id="segments">\n<h2>{escape(heading(report, "segments", lang))}</h2>\n'
        f'<p class="hint">{escape(text("segments_by", lang, dims=dims))}</p>\n'
        f"{_table(head, rows)}</section>\n"
    )


def _trend(report: Report, lang: Lang) -> str:
    trend = report.trend
    if trend is None:
        return ""
    charts = "".join(
        line_chart(
            metric_label(m, lang),
            trend.periods,
            trend.values[m.name],
            m.fmt,
            _CHART_COLORS[i % len(_CHART_COLORS)],
        )
        for i, m in enumerate(trend.metrics)
    )
    head = [(text("trend_period", lang), False)]
    head += [(metric_label(m, lang), True) for m in trend.metrics]
    rows = []
    for i, label in enumerate(trend.periods):
        cells = [f"<td>{escape(label)}</td>"]
        cells += [
            _num(m, label, trend.values[m.name][i], m.fmt(trend.values[m.name][i]))
            for m in trend.metrics
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<section id="trend">\n<h2>{escape(heading(report, "trend", lang))}</h2>\n'
        f'<div class="charts">{charts}</div>\n{_table(head, rows)}</section>\n'
    )
