"""The workbook read back (python-calamine) holds the metrics layer's numbers; its styles (read from
the file's XML, openpyxl not being a dependency) hold the formats, font, colours and frozen rows."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook
from xlsxwriter.color import Color
from xlsxwriter.utility import xl_rowcol_to_cell

from crmlens.metrics import Scope, metric, overview, segment_table, timeseries
from crmlens.reports import REPORT_KPIS, Report, write_xlsx
from crmlens.reports.excel import FONT, _Styles, change_cell, number_format
from crmlens.reports.present import BAD_FILL, GOOD_FILL
from crmlens.warehouse import Warehouse

NOVEMBER = Scope.parse("2021-11")
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
#: Excel's built-in number formats that XlsxWriter writes by id instead of by code.
BUILTIN = {0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%"}


def rows_of(path: Path, sheet: str) -> list[list[Any]]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python()


def table_after(rows: list[list[Any]], first_head: str) -> tuple[int, list[list[Any]]]:
    """The index of the header row starting with ``first_head`` and the rows below it, up to the
    first blank row."""
    start = next(i for i, row in enumerate(rows) if row and row[0] == first_head)
    body = []
    for row in rows[start + 1 :]:
        if not any(cell != "" for cell in row):
            break
        body.append(row)
    return start, body


def close(cell: Any, expected: float | None) -> bool:
    if expected is None:
        return cell == "—"
    return isinstance(cell, float) and math.isclose(cell, expected, rel_tol=1e-12, abs_tol=1e-12)


class Styles:
    """Per cell of one sheet: number format code, font, fill colour; and the sheet's pane."""

    def __init__(self, path: Path, sheet_no: int) -> None:
        with zipfile.ZipFile(path) as z:
            styles = ElementTree.fromstring(z.read("xl/styles.xml"))
            self.sheet = ElementTree.fromstring(z.read(f"xl/worksheets/sheet{sheet_no}.xml"))
        codes = dict(BUILTIN)
        for n in styles.iterfind("m:numFmts/m:numFmt", NS):
            codes[int(n.get("numFmtId", "0"))] = n.get("formatCode", "")
        self.fonts = [
            (f.find("m:name", NS), f.find("m:charset", NS))
            for f in styles.iterfind("m:fonts/m:font", NS)
        ]
        fills = []
        for fill in styles.iterfind("m:fills/m:fill", NS):
            fg = fill.find("m:patternFill/m:fgColor", NS)
            fills.append(None if fg is None else fg.get("rgb"))
        xfs = [
            (codes[int(x.get("numFmtId", "0"))], fills[int(x.get("fillId", "0"))])
            for x in styles.iterfind("m:cellXfs/m:xf", NS)
        ]
        self.cells = {
            c.get("r"): xfs[int(c.get("s", "0"))] for c in self.sheet.iterfind(".//m:c", NS)
        }

    def num_format(self, row: int, col: int) -> str:
        return self.cells[xl_rowcol_to_cell(row, col)][0]

    def fill(self, row: int, col: int) -> str | None:
        return self.cells[xl_rowcol_to_cell(row, col)][1]

    def frozen_below(self) -> int | None:
        pane = self.sheet.find("m:sheetViews/m:sheetView/m:pane", NS)
        return (
            None if pane is None or pane.get("state") != "frozen" else int(pane.get("ySplit", "0"))
        )


def test_three_sheets_with_the_header_block(monthly_xlsx: Path) -> None:
    book = CalamineWorkbook.from_path(str(monthly_xlsx))
    assert book.sheet_names == ["概览", "多维分析", "趋势"]
    for name in book.sheet_names:
        rows = rows_of(monthly_xlsx, name)
        assert rows[0][0] == "客户关系管理多维数据报告 · 月报 2021-11"
        assert rows[1][:2] == ["报告周期", "2021年11月1日至2021年11月30日(2021-11)"]
        assert rows[2][:5] == ["制作部门", "市场部", "", "审核人", "张经理"]
        assert rows[3][0] == "生成时间" and rows[3][1] == "2021-12-06 09:30"


def test_overview_values_are_the_metrics_layers(monthly_xlsx: Path, wh: Warehouse) -> None:
    expected = {r["metric"]: r for r in overview(wh, REPORT_KPIS, NOVEMBER).to_dict("records")}
    _, body = table_after(rows_of(monthly_xlsx, "概览"), "指标名称")
    assert [row[-1] for row in body] == list(REPORT_KPIS)
    for row in body:
        rec = expected[row[-1]]
        m = metric(row[-1])
        assert row[0] == m.label_zh
        for col, field in ((1, "value"), (2, "previous"), (4, "last_year"), (6, "target")):
            assert close(row[col], rec[field]), (m.name, field)
        for col, field in ((3, "change"), (5, "change_yoy")):
            assert close(row[col], change_cell(m, rec[field])[0]), (m.name, field)
        assert close(row[7], rec["attainment"])
        assert row[8] == {True: "✓ 达标", False: "✗ 未达标", None: "—"}[rec["met"]]
    retention = next(row for row in body if row[-1] == "retention_30d")
    change = expected["retention_30d"]["change"]
    assert close(retention[3], change * 100)  # percentage points, not a fraction


def test_anomalies_are_listed_on_the_overview(monthly_xlsx: Path, monthly: Report) -> None:
    _, body = table_after(rows_of(monthly_xlsx, "概览"), "指标")
    assert len(body) == len(monthly.anomalies) > 0
    assert any(row[1].startswith("获客成本 同比下降") for row in body)


def test_breakdown_is_the_segment_table(monthly_xlsx: Path, wh: Warehouse) -> None:
    expected = segment_table(wh, NOVEMBER).to_dict("records")
    _, body = table_after(rows_of(monthly_xlsx, "多维分析"), "大区")
    assert len(body) == len(expected) + 1  # and the total row
    names = ["customers", "aov", "repurchase_rate", "csat", "customers_share"]
    for row, rec in zip(body, expected, strict=False):
        assert row[:2] == [rec["region"], rec["customer_type"]]
        assert all(close(row[2 + i], rec[n]) for i, n in enumerate(names)), row
    assert body[-1][0] == "合计" and body[-1][-1] == 1.0


def test_trend_sheet(monthly_xlsx: Path, wh: Warehouse) -> None:
    _, body = table_after(rows_of(monthly_xlsx, "趋势"), "周期")
    frame = timeseries(wh, ["revenue", "new_customers"], Scope.parse("2020-12", "2021-11"))
    assert [row[0] for row in body] == ["2020-12", *(f"2021-{m:02d}" for m in range(1, 12))]
    for col, name in ((1, "revenue"), (2, "new_customers")):
        got = frame.loc[frame["metric"] == name, "value"].tolist()
        assert all(close(row[col], v) for row, v in zip(body, got, strict=True))
    with zipfile.ZipFile(monthly_xlsx) as z:
        assert sum(n.startswith("xl/charts/chart") for n in z.namelist()) == 2


def test_number_formats_colours_font_and_frozen_rows(monthly_xlsx: Path) -> None:
    rows = rows_of(monthly_xlsx, "概览")
    head, body = table_after(rows, "指标名称")
    styles = Styles(monthly_xlsx, 1)
    assert styles.frozen_below() == head + 1
    by_id = {row[-1]: head + 1 + i for i, row in enumerate(body)}
    assert styles.num_format(by_id["aov"], 1) == '"¥"#,##0.00'
    assert styles.num_format(by_id["new_customers"], 1) == "#,##0"
    assert styles.num_format(by_id["retention_30d"], 1) == "0.0%"
    assert styles.num_format(by_id["aov"], 3) == '"▲ "+0.0%;"▼ "-0.0%;0.0%'
    assert styles.num_format(by_id["retention_30d"], 3).endswith('0.0"pp"')
    assert styles.fill(by_id["revenue"], 8) == "FF" + GOOD_FILL.lstrip("#").upper()
    names = {name.get("val") for name, _ in styles.fonts if name is not None}
    assert names == {FONT["font_name"]}
    assert all(charset is not None and charset.get("val") == "134" for _, charset in styles.fonts)
    breakdown = Styles(monthly_xlsx, 2)
    head, _ = table_after(rows_of(monthly_xlsx, "多维分析"), "大区")
    assert breakdown.frozen_below() == head + 1
    assert [breakdown.num_format(head + 1, c) for c in range(2, 7)] == [
        "#,##0",
        '"¥"#,##0.00',
        "0.0%",
        "#,##0.00",
        "0.0%",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("revenue", '"¥"#,##0.00'),
        ("orders", "#,##0"),
        ("churn_rate", "0.0%"),
        ("complaint_rate", "0.000%"),  # 4.44‰ as 0.444%: same value, Excel has no ‰ scaling
        ("nps", "#,##0.0"),
        ("csat", "#,##0.00"),
        ("resolution_hours", '#,##0.0" h"'),
    ],
)
def test_number_format_per_unit(name: str, expected: str) -> None:
    assert number_format(metric(name)) == expected


def test_change_cells_by_kind() -> None:
    assert change_cell(metric("cac"), 0.2) == (0.2, '"▲ "+0.0%;"▼ "-0.0%;0.0%')
    value, fmt = change_cell(metric("complaint_rate"), -0.00358)
    assert value == pytest.approx(-3.58) and fmt.endswith('0.00"‰"')
    assert change_cell(metric("nps"), 5.0) == (5.0, '"▲ "+0.0;"▼ "-0.0;0.0')
    assert change_cell(metric("aov"), None)[0] is None


def test_formats_are_made_once(tmp_path: Path) -> None:
    book = xlsxwriter.Workbook(str(tmp_path / "x.xlsx"))
    styles = _Styles(book)
    a = styles.number("0.0%", "#1a7f37")
    assert styles.number("0.0%", "#1a7f37") is a and styles.number("0.0%") is not a
    # Color has no equality of its own; its repr names the RGB value
    assert a.num_format == "0.0%" and repr(a.font_color) == repr(Color("#1a7f37"))
    assert repr(styles.get(bg_color=BAD_FILL).bg_color) == repr(Color(BAD_FILL))
    book.close()


def test_english_workbook(monthly: Report, tmp_path: Path) -> None:
    path = write_xlsx(monthly, tmp_path / "en.xlsx", lang="en")
    assert CalamineWorkbook.from_path(str(path)).sheet_names == ["Overview", "Breakdown", "Trend"]
    rows = rows_of(path, "Overview")
    assert rows[2][0] == "Department" and rows[2][1] == "市场部"
    _, body = table_after(rows, "KPI")
    assert body[0][0] == "New customers"
