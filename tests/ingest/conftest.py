"""The miniature demo export (tests/fixtures/demo_export) with its survey workbook, and a warehouse.

The CSV files are committed as they are (members.csv in GBK, tickets.csv UTF-8 with BOM and CRLF);
the Excel file is written here with XlsxWriter so that no binary is committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import xlsxwriter

from crmlens.warehouse import Warehouse

FIXTURE = Path(__file__).parents[1] / "fixtures" / "demo_export"
SURVEY_HEADERS = [
    "问卷编号", "会员卡号", "门店", "提交时间", "推荐意愿(0-10)", "总体满意度(1-5)",
    "购物环境", "商品价格", "服务态度", "商品丰富度", "意见建议",
]  # fmt: skip


def write_survey(path: Path) -> None:
    """Sheet 问卷数据: title in row 1, blank row 2, headers in row 3, a blank row among the data.

    Row 7 scores 11 for NPS (out of range, cleared) and has no 服务态度 score (no score row);
    row 8 has no response id (rejected in both survey tables).
    """
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("问卷数据")
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write(0, 0, "2021年门店顾客满意度调查")
    sheet.write_row(2, 0, SURVEY_HEADERS)
    sheet.write_row(3, 0, ["Q001", "M0000001", "S01"])
    sheet.write_datetime(3, 3, datetime(2021, 4, 1, 10, 0), stamp)
    sheet.write_row(3, 4, [9, 5, 5, 4, 5, 3, "结账排队太长"])
    sheet.write_row(4, 0, ["Q002", "M0000002", "S02", "2021/4/2 11:00", 7, 4, 4, 4, 4, 3])
    sheet.write_row(6, 0, ["Q003", "", "S01", "2021-04-03", 11, 3, 4, 5, "", 2, "盒饭种类少"])
    sheet.write_row(7, 0, ["", "M0000003", "S02", "2021-04-04 12:00:00", 8, 4, 4, 4, 4, 4, "无"])
    book.close()


def make_export(out: Path) -> Path:
    """A copy of the miniature export at ``out``, with its survey workbook."""
    shutil.copytree(FIXTURE, out, ignore=shutil.ignore_patterns(".gitattributes"))
    (out / "survey").mkdir()
    write_survey(out / "survey" / "store_survey.xlsx")
    return out


@pytest.fixture
def demo_export(tmp_path: Path) -> Path:
    """A fresh copy of the miniature export, safe to modify."""
    return make_export(tmp_path / "export")


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        yield wh
