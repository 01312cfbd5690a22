"""Encodings: the same table as UTF-8, UTF-8 with BOM, GBK, GB18030, Big5 and Excel loads the
same warehouse; detection picks the codec; a wrong encoding or garbled text never loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmlens.errors import EncodingError, LoadError
from crmlens.ingest import load_sources
from crmlens.ingest.encoding import check_plausible, detect, iter_lines, transcode
from crmlens.ingest.readers import ExportReader
from crmlens.warehouse import Warehouse

from . import canonical_customers as cc

CODECS = [
    ("utf-8", "utf-8"),
    ("utf-8-sig", "utf-8-sig"),
    ("gbk", "gb18030"),  # GBK is read as its superset GB18030
    ("gb18030", "gb18030"),
    ("big5", "big5"),
]


@pytest.mark.parametrize(("written", "detected"), CODECS)
def test_every_encoding_loads_the_same_warehouse(
    tmp_path: Path, written: str, detected: str
) -> None:
    src = cc.write_csv(tmp_path / f"customers-{written}.csv", written)
    assert detect(src).encoding == detected
    wh = cc.load(tmp_path, src, cc.spec(src.name, encoding="auto"))
    with wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine(wh) == cc.EXPECTED_QUARANTINE
        assert cc.quarantine_lines(wh) == [6, 7]  # C004 follows a value spanning two lines


def test_an_excel_copy_loads_the_same_warehouse(tmp_path: Path) -> None:
    src = cc.write_xlsx(tmp_path / "customers.xlsx")
    with cc.load(
        tmp_path, src, cc.spec(src.name, format="excel", sheet="客戶", header_row=3)
    ) as wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine(wh) == cc.EXPECTED_QUARANTINE
        assert cc.quarantine_lines(wh) == [8, 9]  # sheet rows: headers on 3, a blank row on 7


@pytest.mark.parametrize(
    ("text", "written", "detected"),
    [
        *((t, "gbk", "gb18030") for t in ("王", "烟台", "会员", "李娟,青岛", "煙臺", "香港")),
        *((t, "big5", "big5") for t in ("王", "煙臺", "會員卡號", "香港")),
    ],
)
def test_short_chinese_samples_are_told_apart(
    tmp_path: Path, text: str, written: str, detected: str
) -> None:
    """Nearly every Big5 byte pair is valid GBK: a few characters must still decide."""
    src = tmp_path / "short.csv"
    src.write_bytes(b"id,name\r\n1," + text.encode(written) + b"\r\n")
    assert detect(src).encoding == detected


def test_an_explicit_encoding_is_used_as_given(tmp_path: Path) -> None:
    src = cc.write_csv(tmp_path / "customers.csv", "big5")
    with cc.load(tmp_path, src, cc.spec(src.name, encoding="big5")) as wh:
        assert cc.contents(wh) == cc.EXPECTED


@pytest.mark.parametrize(
    ("written", "declared", "found"),
    [
        ("big5", "gbk", "garbled text"),  # every byte is valid GBK: caught by the garbling
        ("gbk", "big5", "garbled text"),
        ("utf-8", "gbk", "garbled text"),
        ("gbk", "utf-8", "garbled text"),
        ("utf-8", "latin-1", "garbled text"),
    ],
)
def test_a_wrong_encoding_is_an_error_and_nothing_is_loaded(
    tmp_path: Path, written: str, declared: str, found: str
) -> None:
    src = cc.write_csv(tmp_path / "customers.csv", written)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(LoadError, match=rf"customers\.csv, row 1: expected .*{found}"):
            load_sources(wh, tmp_path, [cc.spec(src.name, encoding=declared)])
        assert wh.row_count("customers") == 0
        assert wh.row_count("quarantine") == 0


def test_a_wrong_encoding_names_the_encoding_the_file_looks_like(tmp_path: Path) -> None:
    src = cc.write_csv(tmp_path / "customers.csv", "big5")
    with pytest.raises(EncodingError, match="the file looks like big5"):
        check_plausible(src, "gb18030")


def test_an_invalid_byte_deep_in_a_file_names_its_line(tmp_path: Path) -> None:
    """The sample looks fine; the strict decoding of the whole file finds the bad byte."""
    src = tmp_path / "customers.csv"
    good = cc.csv_text().encode("gbk") + "C9,王,女,,青島,普通,是,,\r\n".encode("gbk") * 3000
    src.write_bytes(good + b"C10,\x81\x20,x,,,,,,\r\n")
    with pytest.raises(EncodingError, match=r"row 3009: expected gb18030, found bytes"):
        ExportReader(tmp_path, tmp_path).read(cc.spec(src.name, encoding="gbk"))


@pytest.mark.parametrize("rows_before", [0, 30_000])
def test_utf8_files_are_checked_strictly_though_duckdb_reads_them(
    tmp_path: Path, rows_before: int
) -> None:
    """DuckDB finds the invalid byte as it reads (in the typed read's sample, or after it); the
    failed load then names the line as a strict decoding finds it, and loads nothing."""
    src = tmp_path / "customers.csv"
    head = cc.csv_text().encode()
    filler = b"".join(f"D{i},name,女,,青岛,普通,是,,\r\n".encode() for i in range(rows_before))
    src.write_bytes(head + filler + "C9,王".encode() + b"\xff\r\n")
    line = 9 + rows_before
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(LoadError, match=rf"customers\.csv, row {line}: expected utf-8, found"):
            load_sources(wh, tmp_path, [cc.spec(src.name, encoding="utf-8")])
        assert wh.row_count("customers") == 0
        assert wh.row_count("quarantine") == 0


def test_a_replacement_character_is_refused_with_its_line(tmp_path: Path) -> None:
    """U+FFFD is the trace of an earlier broken conversion: such text is already mojibake."""
    src = tmp_path / "customers.csv"
    src.write_text(cc.csv_text() + "C9,王\ufffd,女,,,,,,\r\n", encoding="utf-8")
    with pytest.raises(EncodingError, match=r"row 9: found the replacement character"):
        ExportReader(tmp_path, tmp_path).read(cc.spec(src.name, encoding="auto"))
    gbk = tmp_path / "gbk.csv"
    gbk.write_text(cc.csv_text() + "C9,王\ufffd,女,,,,,,\r\n", encoding="gb18030")
    with pytest.raises(EncodingError, match=r"row 9: found the replacement character"):
        transcode(gbk, tmp_path / "out.csv", "gb18030")


def test_detection_looks_past_a_long_ascii_head(tmp_path: Path) -> None:
    """A GBK file whose first megabyte is ASCII: the first Chinese line still decides."""
    src = tmp_path / "late.csv"
    head = "id,city\r\n" + "".join(f"{i},Yantai\r\n" for i in range(120_000))
    src.write_bytes(head.encode() + "120000,煙臺市\r\n120001,臺北市\r\n".encode("gbk") * 20)
    assert src.stat().st_size > 1 << 20
    assert detect(src).encoding == "gb18030"
    with pytest.raises(EncodingError, match=r"row 120002: expected utf-8 text, but decoding"):
        check_plausible(src, "utf-8")


def test_lines_stream_across_chunk_boundaries(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes("甲 乙\r\n丙\r\n\r\n丁".encode("big5"))
    assert list(iter_lines(src, "big5")) == [(1, "甲 乙"), (2, "丙"), (3, ""), (4, "丁")]


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_mixed_line_ends_fail_naming_the_first_line_that_differs(
    tmp_path: Path, encoding: str
) -> None:
    """DuckDB's parser rejects CRLF and LF in one file without naming a line; the load says
    which line first ends otherwise, and loads nothing."""
    src = tmp_path / "customers.csv"
    text = cc.csv_text()  # CRLF throughout, with a quoted value spanning two lines
    lines = text.split("\r\n")
    # the record of C006 (physical line 8: C003's value spans lines 4-5) ends in LF
    mixed = "\r\n".join(lines[:7]) + "\n" + "\r\n".join(lines[7:])
    src.write_bytes(mixed.encode(encoding))
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(LoadError, match=r"customers\.csv, row 8: lines end in both CRLF"):
            load_sources(wh, tmp_path, [cc.spec(src.name, encoding=encoding)])
        assert wh.row_count("customers") == 0
