"""Readers: streaming transcoding, encoding detection, Excel sheets, header checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmlens.errors import EncodingError, SourceError
from crmlens.ingest import DEMO_SOURCES
from crmlens.ingest.readers import (
    ExportReader,
    canonical_encoding,
    detect_encoding,
    read_sheet,
    transcode,
)

from .conftest import SURVEY_HEADERS

SIMPLIFIED = "会员卡号,姓名,城市\r\nM0000001,王秀英,烟台\r\nM0000002,李娟,青岛\r\n" * 50
TRADITIONAL = "會員卡號,姓名,城市\r\nM0000001,王秀英,煙台\r\nM0000002,李娟,青島\r\n" * 50


@pytest.mark.parametrize(
    ("encoding", "text"),
    [("gb18030", SIMPLIFIED), ("big5", TRADITIONAL), ("utf-16", SIMPLIFIED)],
)
def test_transcoding_streams_characters_across_chunk_boundaries(
    tmp_path: Path, encoding: str, text: str
) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(text.encode(encoding))
    transcode(src, dst, encoding, chunk_size=7)  # odd-sized chunks split most characters
    assert dst.read_bytes().decode("utf-8") == text  # CRLF line ends are kept


def test_a_bad_byte_is_reported_with_its_line(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes("a,b\n王,1\n".encode("gbk") + b"x,\x80\x20\n")
    with pytest.raises(EncodingError, match=r"in\.csv, row 3: expected gb18030"):
        transcode(src, tmp_path / "out.csv", "gb18030", chunk_size=4)


def test_encodings_are_detected_and_widened(tmp_path: Path) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(
        ("会员卡号,姓名,城市,会员等级\n" + "M0000001,王秀英,烟台,白金\n" * 20).encode("gbk")
    )
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "工单号\nW1\n".encode())
    assert detect_encoding(gbk) == "gb18030"
    assert detect_encoding(bom) == "utf-8-sig"
    assert canonical_encoding("GB2312") == "gb18030"


def test_sheets_are_read_from_their_header_row_with_sheet_row_numbers(demo_export: Path) -> None:
    headers, table = read_sheet(demo_export / "survey" / "store_survey.xlsx", "问卷数据", 3)
    assert list(headers) == SURVEY_HEADERS
    data = table.to_pylist()
    assert [r["__line"] for r in data] == [4, 5, 7, 8]  # row 6 is blank
    assert data[0]["提交时间"] == "2021-04-01 10:00:00"
    assert data[0]["推荐意愿(0-10)"] == "9"  # whole numbers without ".0"
    assert data[2]["会员卡号"] is None
    with pytest.raises(SourceError, match="expected a sheet 'Sheet9'"):
        read_sheet(demo_export / "survey" / "store_survey.xlsx", "Sheet9", 3)


def test_the_reader_reads_a_shared_file_once_and_checks_headers(
    demo_export: Path, tmp_path: Path
) -> None:
    reader = ExportReader(demo_export, tmp_path)
    survey = [s for s in DEMO_SOURCES if s.path.endswith(".xlsx")]
    first, second = (reader.read(s) for s in survey)
    assert first.arrow is second.arrow
    members = reader.read(next(s for s in DEMO_SOURCES if s.table == "customers"))
    assert members.csv_path != demo_export / "crm" / "members.csv"  # a UTF-8 copy
    assert members.headers[:3] == ("会员卡号", "姓名", "性别")
    tickets = reader.read(next(s for s in DEMO_SOURCES if s.table == "service_tickets"))
    assert tickets.csv_path == demo_export / "service" / "tickets.csv"  # DuckDB skips the BOM
    assert tickets.headers[0] == "工单号" and tickets.may_span_lines
    stores = reader.read(next(s for s in DEMO_SOURCES if s.table == "stores"))
    assert not stores.may_span_lines  # no quote character: no value can hold a line break
