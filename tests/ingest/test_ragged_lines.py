"""A CSV export with ragged lines (more or fewer fields than the header) loads through
``load_sources``: those lines are quarantined as ``malformed_line`` with their physical line, the
rest loads, and every count adds up; an invalid byte still fails the load."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmlens.errors import LoadError
from crmlens.ingest import load_sources
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading import SourceResult

from . import canonical_customers as cc

TOO_FEW = "C007,李小龍,男"
TOO_MANY = "C008,周杰倫,男,1979-01-18,新北市,白金,是,2021-09-09 09:09:09,,杰威爾"


def _load_ragged(wh: Warehouse, src: Path) -> SourceResult:
    """Load the customers file ``src`` (two ragged lines, one bad date, one row without an ID):
    the rows around them load as ever and the accounting adds up."""
    report = load_sources(wh, src.parent, [cc.spec(src.name, encoding="auto")])
    (result,) = report.sources
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 5, 3)
    assert report.balanced
    assert cc.contents(wh) == cc.EXPECTED
    return result


def _quarantine(wh: Warehouse) -> list[tuple[object, ...]]:
    return wh.raw.execute(
        "SELECT line_no, column_name, rule, action, original_value FROM quarantine ORDER BY 1"
    ).fetchall()


@pytest.mark.parametrize("encoding", ["utf-8", "big5"])
def test_ragged_lines_are_quarantined_and_everything_adds_up(tmp_path: Path, encoding: str) -> None:
    records = cc.csv_text().split("\r\n")  # C003's value spans lines 4 and 5 (a bare LF)
    records.insert(4, TOO_FEW)  # line 6, after the two-line value
    records.insert(6, TOO_MANY)  # line 8, after C004 (line 7, a bad date)
    src = tmp_path / "customers.csv"
    src.write_bytes("\r\n".join(records).encode(encoding))
    with Warehouse(tmp_path / "w.duckdb") as wh:
        result = _load_ragged(wh, src)
        assert result.rejected_by_rule == {"malformed_line": 2, "missing_required": 1}
        assert _quarantine(wh) == [
            (6, "客戶編號", "malformed_line", "rejected", TOO_FEW),
            (7, "出生日期", "bad_date", "cleared", "1985-13-45"),
            (8, "客戶編號", "malformed_line", "rejected", TOO_MANY),
            (9, "客戶編號", "missing_required", "rejected", None),
        ]
        log = wh.raw.execute(
            "SELECT rows_read, rows_loaded, rows_quarantined, rows_merged FROM load_log"
        ).fetchall()
        assert log == [(8, 5, 3, 0)]

        # an invalid byte after a ragged line still fails the load, naming its line
        src.write_bytes("\r\n".join(records).encode().replace(b"C006", b"C\xff06"))
        with pytest.raises(LoadError, match=r"customers\.csv, row 10: expected utf-8"):
            load_sources(wh, tmp_path, [cc.spec(src.name, encoding="utf-8")])
        assert wh.row_count("quarantine") == 4


@pytest.mark.parametrize("encoding", ["utf-8", "big5"])
def test_blank_lines_around_ragged_and_bad_rows_keep_line_numbers(
    tmp_path: Path, encoding: str
) -> None:
    """Blank lines (CRLF) are skipped, neither read nor quarantined; every record after them
    names its physical line."""
    header, c1, c2, c3, c4, no_id, c6, _ = cc.csv_text().split("\r\n")
    # lines: 1 header, 2 blank, 3 C001, 4 C002, 5-6 C003 (a bare LF inside), 7-8 blank,
    # 9 TOO_FEW, 10 C004 (a bad date), 11 TOO_MANY, 12 blank, 13 no ID, 14 C006, 15 blank
    records = [header, "", c1, c2, c3, "", "", TOO_FEW, c4, TOO_MANY, "", no_id, c6, "", ""]
    src = tmp_path / "customers.csv"
    src.write_bytes("\r\n".join(records).encode(encoding))
    with Warehouse(tmp_path / "w.duckdb") as wh:
        _load_ragged(wh, src)
        assert _quarantine(wh) == [
            (9, "客戶編號", "malformed_line", "rejected", TOO_FEW),
            (10, "出生日期", "bad_date", "cleared", "1985-13-45"),
            (11, "客戶編號", "malformed_line", "rejected", TOO_MANY),
            (13, "客戶編號", "missing_required", "rejected", None),
        ]
