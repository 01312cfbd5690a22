"""Weekly and monthly reports (P5) from the seed-002 template, exported to Excel or HTML.

>>> from crmlens.reports import DEFAULT_TEMPLATE
>>> DEFAULT_TEMPLATE.segment_by
('region', 'customer_type')

Build once, write as often as needed::

    report = build_report(wh, "2021-11", department="市场部", reviewer="张经理")
    write_xlsx(report, "report.xlsx")            # 概览 / 多维分析 / 趋势
    write_html(report, "report.html", lang="en")  # one self-contained page

Reports contain aggregates only: no row of a customer, no personal data (D7).
"""

from crmlens.reports.build import build_report, report_period
from crmlens.reports.excel import write_xlsx
from crmlens.reports.html import render_html, write_html
from crmlens.reports.labels import LANGS, Lang
from crmlens.reports.template import DEFAULT_TEMPLATE, REPORT_KPIS, Report, Template

__all__ = [
    "DEFAULT_TEMPLATE",
    "LANGS",
    "REPORT_KPIS",
    "Lang",
    "Report",
    "Template",
    "build_report",
    "render_html",
    "report_period",
    "write_html",
    "write_xlsx",
]
