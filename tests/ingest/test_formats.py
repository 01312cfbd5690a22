"""Formats: delimited text of any delimiter, whitespace-separated and header-less text, Parquet,
JSON lines and Excel all load the same warehouse; sniffing guesses how to read each."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from crmlens.errors import ConfigError, EncodingError, SourceError
from crmlens.ingest import load_sources
from crmlens.ingest.readers import ExportReader, read_source
from crmlens.ingest.sniff import guess_format, sniff
from crmlens.ingest.spec import ColumnSpec, Derive, SourceSpec
from crmlens.warehouse import Warehouse

from . import canonical_customers as cc

DATASETS = Path(__file__).parents[2].parent / "shared" / "datasets"
CDNOW = DATASETS / "cdnow"
needs_cdnow = pytest.mark.skipif(
    not (CDNOW / "CDNOW_master.txt").is_file(), reason=f"real datasets not found at {DATASETS}"
)


@pytest.mark.parametrize(
    ("name", "reading", "delimiter"),
    [
        ("semicolon.csv", {}, ";"),
        ("pipe.txt", {}, "|"),
        ("tabs.tsv", {"format": "tsv"}, "\t"),
    ],
)
def test_any_delimiter_with_quotes_and_crlf(
    tmp_path: Path, name: str, reading: dict[str, str], delimiter: str
) -> None:
    src = cc.write_csv(tmp_path / name, "utf-8", delimiter)
    spec = cc.spec(name, delimiter=delimiter, **reading)
    with cc.load(tmp_path, src, spec) as wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine_lines(wh) == [6, 7]


def test_a_csv_header_below_title_lines(tmp_path: Path) -> None:
    src = cc.write_csv(tmp_path / "titled.csv", "big5", title_lines=2)
    with cc.load(tmp_path, src, cc.spec(src.name, encoding="auto", header_row=3)) as wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine_lines(wh) == [8, 9]


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    src = cc.write_parquet(tmp_path / "customers.parquet")
    with cc.load(tmp_path, src, cc.spec(src.name, format="parquet")) as wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine(wh) == cc.EXPECTED_QUARANTINE
        assert cc.quarantine_lines(wh) == [4, 5]  # row ordinals


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_json_lines(tmp_path: Path, encoding: str) -> None:
    src = cc.write_jsonl(tmp_path / "customers.jsonl", encoding)
    with cc.load(tmp_path, src, cc.spec(src.name, format="jsonl", encoding="auto")) as wh:
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine(wh) == cc.EXPECTED_QUARANTINE
        assert cc.quarantine_lines(wh) == [5, 6]  # file lines: a blank line after the first


def test_whitespace_separated_text_keeps_its_lines(tmp_path: Path) -> None:
    src = tmp_path / "stores.txt"
    src.write_bytes(
        "store_id   store_name  area_sqm\r\n  S01 煙臺店\t 1200.5\r\n\r\nS02  青島店 abc\r\n".encode(
            "big5"
        )
    )
    spec = SourceSpec(
        path=src.name,
        table="stores",
        delimiter="whitespace",
        encoding="auto",
        columns=(ColumnSpec("store_id", "store_id"), ColumnSpec("store_name", "store_name"),
                 ColumnSpec("area_sqm", "area_sqm")),
    )  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb") as wh:
        load_sources(wh, tmp_path, [spec])
        rows = wh.raw.execute("SELECT store_id, store_name, area_sqm FROM stores ORDER BY 1")
        assert rows.fetchall() == [("S01", "煙臺店", 1200.5), ("S02", "青島店", None)]
        assert wh.raw.execute("SELECT line_no, rule FROM quarantine").fetchall() == [
            (4, "bad_number")
        ]


def test_a_record_with_too_many_fields_is_an_error_naming_its_line(tmp_path: Path) -> None:
    src = tmp_path / "stores.txt"
    src.write_text("store_id store_name\nS01 a\nS02 b c\n", encoding="utf-8")
    spec = SourceSpec(path=src.name, table="stores", delimiter="whitespace",
                      columns=(ColumnSpec("store_id", "store_id"),))  # fmt: skip
    with pytest.raises(
        SourceError, match=r"stores\.txt, row 3: expected at most 2 fields, found 3"
    ):
        read_source(spec, tmp_path, tmp_path)


def test_a_file_without_header_gets_numbered_columns(tmp_path: Path) -> None:
    src = tmp_path / "stores.csv"
    src.write_text('S01,"煙臺店, 一號"\r\nS02,青島店\r\n', encoding="utf-8")
    spec = SourceSpec(path=src.name, table="stores", header_row=0,
                      columns=(ColumnSpec("store_id", "column_1"),
                               ColumnSpec("store_name", "column_2")))  # fmt: skip
    rows = read_source(spec, tmp_path, tmp_path)
    assert rows.headers == ("column_1", "column_2") and rows.arrow is not None
    assert rows.arrow.to_pylist()[0] == {"column_1": "S01", "column_2": "煙臺店, 一號", "__line": 1}


def test_excel_sheet_and_missing_columns_are_named(tmp_path: Path) -> None:
    src = cc.write_xlsx(tmp_path / "customers.xlsx")
    with pytest.raises(SourceError, match=r"expected a sheet '客户', found \['說明', '客戶'\]"):
        read_source(cc.spec(src.name, format="excel", sheet="客户"), tmp_path, tmp_path)
    with pytest.raises(SourceError, match=r"customers\.xlsx, row 1: expected columns"):
        read_source(cc.spec(src.name, format="excel"), tmp_path, tmp_path)  # the first sheet


def test_garbled_text_in_a_workbook_or_parquet_file_is_refused(tmp_path: Path) -> None:
    """U+FFFD is what an earlier broken conversion leaves: such text never loads."""
    book = tmp_path / "garbled.xlsx"
    wb = xlsxwriter.Workbook(str(book))
    sheet = wb.add_worksheet("客戶")
    sheet.write_row(0, 0, cc.HEADERS)
    sheet.write_row(1, 0, ["C001", "陳\ufffd玲"])
    wb.close()
    with pytest.raises(
        EncodingError, match=r"garbled\.xlsx, row 2, column 姓名: found the replacement"
    ):
        read_source(cc.spec(book.name, format="excel"), tmp_path, tmp_path)
    pq.write_table(
        pa.table({"客戶編號": ["C1", "C2"], "姓名": ["王", "\ufffd"]}), str(tmp_path / "g.parquet")
    )
    with pytest.raises(EncodingError, match=r"g\.parquet, row 2, column 姓名"):
        read_source(cc.spec("g.parquet", format="parquet"), tmp_path, tmp_path)


def test_a_shared_source_is_read_once(tmp_path: Path) -> None:
    cc.write_parquet(tmp_path / "customers.parquet")
    reader = ExportReader(tmp_path, tmp_path / "work")
    (tmp_path / "work").mkdir()
    first = reader.read(cc.spec("customers.parquet", format="parquet"))
    second = reader.read(cc.spec("customers.parquet", format="parquet"))
    assert first.arrow is second.arrow
    assert len(list((tmp_path / "work").iterdir())) == 1


def test_nested_and_binary_parquet_values_become_text(tmp_path: Path) -> None:
    table = pa.table({"id": ["S01"], "tags": [["a", "王"]], "raw": [b"\x01\xff"], "n": [3.0]})
    pq.write_table(table, str(tmp_path / "odd.parquet"))
    spec = SourceSpec(path="odd.parquet", format="parquet", table="stores",
                      columns=(ColumnSpec("store_id", "id"),))  # fmt: skip
    rows = read_source(spec, tmp_path, tmp_path)
    assert rows.arrow is not None
    assert rows.arrow.to_pylist() == [
        {"id": "S01", "tags": '["a", "王"]', "raw": "01ff", "n": "3", "__line": 1}
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": ";;"}, "the delimiter must be one character"),
        ({"delimiter": '"'}, "the delimiter must be one character"),
        ({"format": "postgres"}, "needs a dsn and either source_table or query"),
        ({"format": "postgres", "dsn": "", "query": "x", "source_table": "t"}, "either"),
        ({"dsn": "host=x"}, "for postgres only"),
        ({"format": "excel", "header_row": 0}, "header_row counts from 1"),
        ({"format": "xml"}, "expected a format in"),
    ],
)
def test_bad_reading_options_are_config_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cc.spec("customers.csv", **options)


# ---- sniffing -------------------------------------------------------------------------------


def test_sniff_finds_encoding_delimiter_and_header_below_a_title(tmp_path: Path) -> None:
    src = cc.write_csv(tmp_path / "customers.txt", "big5", ";", title_lines=2)
    found = sniff(src, rows=3)
    assert (found.format, found.encoding, found.delimiter, found.header_row) == (
        "csv", "big5", ";", 3
    )  # fmt: skip
    assert found.confidence is not None and found.confidence > 0.5
    assert found.headers == cc.HEADERS
    assert found.rows[0] == ("C001", "陳美玲", "女", "1985-03-02", "臺北市", "白金", "是",
                             "2021-03-05 10:21:00", None)  # fmt: skip
    assert found.rows[2][8] == "香港\n分公司"
    # what sniffing found reads the file into the same warehouse
    with cc.load(tmp_path, src, cc.spec(src.name, **found.spec_options())) as wh:
        assert cc.contents(wh) == cc.EXPECTED


def test_sniff_excel_lists_sheets_and_finds_the_header_row(tmp_path: Path) -> None:
    src = cc.write_xlsx(tmp_path / "customers.xlsx")
    assert sniff(src).sheets == ("說明", "客戶")
    found = sniff(src, sheet="客戶")
    assert (found.format, found.sheet, found.header_row) == ("excel", "客戶", 3)
    assert found.headers == cc.HEADERS
    assert found.rows[0][:4] == ("C001", "陳美玲", "女", "1985-03-02")
    assert found.spec_options() == {"format": "excel", "sheet": "客戶", "header_row": 3}


def test_sniff_parquet_and_json_lines(tmp_path: Path) -> None:
    pq_found = sniff(cc.write_parquet(tmp_path / "c.parquet"), rows=2)
    assert pq_found.format == "parquet" and pq_found.headers == cc.HEADERS
    assert pq_found.rows[0][6:8] == ("true", "2021-03-05 10:21:00")
    js = sniff(cc.write_jsonl(tmp_path / "c.ndjson", "gbk"), rows=2)
    assert (js.format, js.encoding) == ("jsonl", "gb18030")
    assert set(js.headers) == set(cc.HEADERS) and js.rows[0][0] == "C001"
    renamed = tmp_path / "c.dat"  # the leading bytes decide, not the name
    renamed.write_bytes((tmp_path / "c.parquet").read_bytes())
    assert guess_format(renamed) == "parquet"


@needs_cdnow
def test_the_cdnow_master_file_loads_with_its_published_figures(tmp_path: Path) -> None:
    """Whitespace-separated, CRLF, leading spaces: 69,659 rows, 23,570 customers."""
    found = sniff(CDNOW / "CDNOW_master.txt")
    assert (found.delimiter, found.header_row) == ("whitespace", 1)
    assert found.headers == ("customer_id", "date", "number_of_cds", "dollar_value")
    spec = SourceSpec(
        path="CDNOW_master.txt",
        table="orders",
        **found.spec_options(),  # type: ignore[arg-type]
        columns=(ColumnSpec("customer_id", "customer_id"), ColumnSpec("order_time", "date"),
                 ColumnSpec("amount", "dollar_value")),
        derive=(Derive("order_id", "customer_id || '-' || strftime(order_time, '%Y%m%d')"),),
    )  # fmt: skip
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = load_sources(wh, CDNOW, [spec])
        result = report.source("CDNOW_master.txt")
        assert result.rows_read == 69_659 and result.balanced and result.rows_quarantined == 0
        stats = wh.raw.execute(
            "SELECT count(DISTINCT customer_id), min(order_time)::DATE::VARCHAR, "
            "max(order_time)::DATE::VARCHAR FROM orders"
        ).fetchone()
        assert stats == (23_570, "1997-01-01", "1998-06-30")


@needs_cdnow
def test_the_cdnow_sample_has_no_header(tmp_path: Path) -> None:
    found = sniff(CDNOW / "CDNOW_sample.txt")
    assert (found.delimiter, found.header_row) == ("whitespace", 0)
    assert found.headers == tuple(f"column_{i}" for i in range(1, 6))
    spec = SourceSpec(path="CDNOW_sample.txt", table="stores", **found.spec_options(),  # type: ignore[arg-type]
                      columns=(ColumnSpec("store_id", "column_1"),))  # fmt: skip
    table = read_source(spec, CDNOW, tmp_path).arrow
    assert table is not None and table.num_rows == 6_919
    assert len(set(table.column("column_1").to_pylist())) == 2_357
