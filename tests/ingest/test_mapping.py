"""Mapping suggestions, the mapping TOML, and the cleaning rules of `crmlens ingest` on small files.

The cleaning tests load real files into a real warehouse and check the rows and the quarantine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmlens.errors import ConfigError, SourceError
from crmlens.ingest import dry_run, ingest, read_input
from crmlens.ingest.mapping import normalise_header, sniff_values, suggest_kind, suggest_mapping
from crmlens.ingest.mapping_file import (
    ColumnRule,
    Currency,
    IngestMapping,
    ReadOptions,
    dumps_mapping,
    load_mapping,
    loads_mapping,
    save_mapping,
)
from crmlens.warehouse import Warehouse


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse(tmp_path / "w.duckdb") as w:
        yield w


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.raw.execute(sql).fetchall()


# --- suggestions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ("客户编号", "customer_id"),
        ("会员卡号", "customer_id"),
        ("下单时间", "order_time"),
        ("交易日期", "order_time"),
        ("实付金额", "amount"),
        ("金额(元)", "amount"),
        ("金额（元）", "amount"),
        ("Customer ID", "customer_id"),
        ("InvoiceNo", "order_id"),
    ],
)
def test_synonyms_in_chinese_and_english(header: str, target: str) -> None:
    sample = {"customer_id": "M001", "order_time": "2021-03-05", "amount": "12.5", "order_id": "1"}
    s = suggest_mapping([header], [[sample[target]]], "orders")
    (choice,) = [c for c in s.columns if c.header]
    assert (choice.target, choice.header) == (target, header)
    assert choice.confidence >= 0.85


def test_values_decide_between_candidates_and_lower_confidence() -> None:
    # "电话" names a phone column; values that are not mobiles make the match weak
    good = suggest_mapping(["手机"], [["138 0013 8000"], ["+86 13900139000"]], "customers")
    bad = suggest_mapping(["手机"], [["hello"], ["world"]], "customers")
    assert good.columns[0].target == "phone" and good.columns[0].rule.kind == "phone"
    assert bad.columns[0].confidence < good.columns[0].confidence


def test_an_email_column_is_found_by_its_values() -> None:
    s = suggest_mapping(["会员卡号", "联络"], [["M1", "a@b.cn"], ["M2", "c@d.com"]], "customers")
    assert {c.target: c.header for c in s.columns}["email"] == "联络"


def test_words_are_matched_whole() -> None:
    # "OperatingSystems" does not contain the synonym "rating"
    s = suggest_mapping(["OperatingSystems"], [["2"]], "service_tickets")
    assert "satisfaction" not in {c.target for c in s.columns}


def test_float_ids_are_cleaned_and_line_files_describe_their_order() -> None:
    headers = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    row = ["536365", "85123A", "6", "2010-12-01 08:26:00", "2.55", "17850.0"]
    s = suggest_mapping(headers, [row], "order_lines")
    chosen = {c.target: c.rule for c in s.columns}
    assert chosen["orders.customer_id"].clean == "id"
    assert chosen["orders.order_time"].header == "InvoiceDate"
    assert chosen["line_no"].generate == "position"
    assert s.fits and not s.missing_required


def test_date_order_is_sniffed_or_reported_ambiguous() -> None:
    assert sniff_values(["25/12/2021", "3/5/2021"]).date_order == "dmy"
    assert sniff_values(["12/25/2021", "3/5/2021"]).date_order == "mdy"
    assert sniff_values(["3/5/2021"]).date_order == "ambiguous"
    s = suggest_mapping(["下单时间"], [["3/5/2021"]], "orders")
    assert s.date_order == "ambiguous"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["2021-03-05", "2021/3/5", "2021年3月5日", "20210305"], "date"),
        (["13800138000", "+86 139-0013-9000"], "phone"),
        (["a@b.cn"], "email"),
        (["¥1,234.50", "$12", "30元"], "money"),
        (["TRUE", "false", "是"], "bool"),
        (["1", "22"], "int"),
        (["1.5", "2"], "float"),
        (["", None, "NULL"], "empty"),
    ],
)
def test_value_sniffing(values: list[str | None], kind: str) -> None:
    assert sniff_values(values).kind == kind


def test_suggest_kind_refuses_files_that_fit_nothing() -> None:
    s = suggest_kind(["BounceRates", "ExitRates", "Month"], [["0.1", "0.2", "Feb"]])
    assert not s.fits
    assert (
        suggest_kind(["会员卡号", "姓名", "手机号"], [["M1", "张三", "13800138000"]]).kind
        == "customers"
    )


def test_normalise_header() -> None:
    assert (
        normalise_header("Ｃｕｓｔｏｍｅｒ－ID") == normalise_header("customer_id") == "customerid"
    )


# --- the mapping file --------------------------------------------------------------------------


def test_mapping_toml_round_trip(tmp_path: Path) -> None:
    m = IngestMapping(
        "order_lines",
        (
            ColumnRule("order_id", header="单号"),
            ColumnRule("line_no", generate="position"),
            ColumnRule("orders.customer_id", header="卡号", clean="id"),
            ColumnRule("orders.order_time", header="时间"),
            ColumnRule("quantity", header="数量", default="1"),
        ),
        read=ReadOptions(encoding="gbk", delimiter=";", header_row=2),
        rules={"refund": {"prefix": "R"}, "missing_customer": "quarantine"},
        currency=Currency("币种", {"USD": 7.1}),
    )
    save_mapping(m, tmp_path / "m.toml")
    back = load_mapping(tmp_path / "m.toml")
    assert set(back.columns) == set(m.columns)
    assert (back.kind, back.read, back.rules, back.currency) == (
        m.kind,
        m.read,
        m.rules,
        m.currency,
    )
    assert 'clean = "id"' in dumps_mapping(m)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('kind = "nope"\n[columns]\na = "b"', "unknown kind 'nope'"),
        ('kind = "orders"\n[columns]\nfoo = "b"', "has no column 'foo'"),
        ('kind = "customers"\n[columns]\n"orders.amount" = "b"', "may describe no other table"),
        ('kind = "orders"\n[columns]\namount = { header = "a", value = "1" }', "exactly one of"),
        ('kind = "orders"\n[columns]\n[rules]\ndate_order = "ydm"', "date_order is one of"),
        ('kind = "orders"\n[source]\ndelimiter = ";;"\n[columns]', "delimiter"),
        ("kind = ", "not valid TOML"),
    ],
)
def test_bad_mappings_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        loads_mapping(text, where="m.toml")
    assert str(info.value).startswith("m.toml: ")


# --- cleaning, end to end ----------------------------------------------------------------------

ORDERS = """订单号,会员卡号,下单时间,实付金额,币种,原订单号
O1,M1,2021-03-05 10:00:00,"¥1,280.50",CNY,
O2,M2,2021/3/6,$12,USD,
O3,M3,2021年3月7日,30元,,
O4,M1,7/3/2021,-30,CNY,O3
O5,M2,44265,-5,CNY,
O6,,2021-03-08,10,EUR,
O7,M3,not a date,10,CNY,
O1,M1,2021-03-05 10:00:00,"¥1,280.50",CNY,
"""


def _orders_mapping(**rules: object) -> IngestMapping:
    return IngestMapping(
        "orders",
        (
            ColumnRule("order_id", header="订单号"),
            ColumnRule("customer_id", header="会员卡号"),
            ColumnRule("order_time", header="下单时间"),
            ColumnRule("amount", header="实付金额"),
            ColumnRule("currency", header="币种"),
            ColumnRule("original_order_id", header="原订单号"),
        ),
        rules={"date_order": "dmy", **rules},
        currency=Currency("币种", {"USD": 7.0}),
    )


def test_orders_dates_money_currency_refunds(tmp_path: Path, wh: Warehouse) -> None:
    raw = read_input(_write(tmp_path / "orders.csv", ORDERS), ReadOptions())
    (res,) = ingest(wh, raw, _orders_mapping()).sources
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined, res.rows_merged) == (8, 4, 3, 1)
    got = _rows(
        wh,
        "SELECT order_id, customer_id, order_time::VARCHAR, amount, is_refund, status "
        "FROM orders ORDER BY order_id",
    )
    assert got == [
        ("O1", "M1", "2021-03-05 10:00:00", 1280.5, False, "completed"),  # ¥ and , gone
        ("O2", "M2", "2021-03-06 00:00:00", 84.0, False, "completed"),  # $12 at 7.0
        ("O3", "M3", "2021-03-07 00:00:00", 30.0, False, "completed"),  # 年月日, 元
        ("O4", "M1", "2021-03-07 00:00:00", -30.0, True, "refunded"),  # 7/3/2021, day first
    ]


def test_every_orders_rule_is_recorded(tmp_path: Path, wh: Warehouse) -> None:
    raw = read_input(_write(tmp_path / "orders.csv", ORDERS), ReadOptions())
    (res,) = ingest(wh, raw, _orders_mapping()).sources
    lines = dict(_rows(wh, "SELECT line_no, rule FROM quarantine WHERE action = 'rejected'"))
    # line numbers count the header as line 1. O5: negative, naming no order: an entry error;
    # O6: EUR has no rate (the text says so); O7: a date that is none
    assert lines == {6: "negative_amount_not_refund", 7: "bad_number", 8: "bad_timestamp"}
    assert _rows(wh, "SELECT original_value FROM quarantine WHERE line_no = 7") == [
        ("10 EUR (no rate to CNY)",)
    ]
    assert res.rows_merged == 1  # O1 twice


def test_excel_serial_dates_and_guests(tmp_path: Path, wh: Warehouse) -> None:
    text = "订单号,会员卡号,下单时间,实付金额\nA1,,44265,5\nA2,M9,44265.5,6\n"
    m = IngestMapping(
        "orders",
        (
            ColumnRule("order_id", header="订单号"),
            ColumnRule("customer_id", header="会员卡号"),
            ColumnRule("order_time", header="下单时间"),
            ColumnRule("amount", header="实付金额"),
        ),
    )
    raw = read_input(_write(tmp_path / "o.csv", text), ReadOptions())
    ingest(wh, raw, m)
    assert _rows(
        wh, "SELECT order_id, customer_id, order_time::VARCHAR FROM orders ORDER BY 1"
    ) == [
        ("A1", None, "2021-03-10 00:00:00"),  # Excel serial 44265
        ("A2", "M9", "2021-03-10 12:00:00"),
    ]
    guests_out = IngestMapping(m.kind, m.columns, rules={"missing_customer": "quarantine"})
    result = dry_run(raw, guests_out).report.sources[0]
    assert result.rejected_by_rule == {"missing_required": 1}


def test_customers_phones_emails_defaults_gbk(tmp_path: Path, wh: Warehouse) -> None:
    text = (
        "会员卡号,手机号,电子邮箱,会员等级\n"
        "M1,138-0013-8000,A@B.CN,黄金\n"
        "M2,+86 13900139000,bad-mail,\n"
        "M3,12345,c@d.com,白金\n"
        "M1,138-0013-8000,A@B.CN,黄金\n"
    )
    m = IngestMapping(
        "customers",
        (
            ColumnRule("customer_id", header="会员卡号"),
            ColumnRule("phone", header="手机号", kind="phone"),
            ColumnRule("email", header="电子邮箱", kind="email"),
            ColumnRule("member_tier", header="会员等级", default="普通"),
        ),
    )
    raw = read_input(_write(tmp_path / "members.csv", text, "gbk"), ReadOptions())
    (res,) = ingest(wh, raw, m).sources
    assert (res.rows_read, res.rows_loaded, res.rows_merged) == (4, 3, 1)
    assert _rows(wh, "SELECT customer_id, phone, email, member_tier FROM customers ORDER BY 1") == [
        ("M1", "13800138000", "a@b.cn", "黄金"),
        ("M2", "13900139000", None, "普通"),
        ("M3", None, "c@d.com", "白金"),
    ]
    # invalid values are cleared, the default tier is recorded as inferred
    assert res.cleared_by_rule == {"invalid_email": 1, "invalid_phone": 1, "default_member_tier": 1}
    assert (res.values_cleared, res.values_inferred) == (2, 1)


def test_folder_of_same_shaped_files_is_one_source(tmp_path: Path, wh: Warehouse) -> None:
    folder = tmp_path / "days"
    folder.mkdir()
    _write(folder / "d1.csv", "订单号,下单时间,实付金额\nX1,2021-01-01,1\n")
    _write(folder / "d2.csv", "订单号,下单时间,实付金额\nX2,2021-01-02,2\nX3,bad,3\n")
    m = suggest_mapping(["订单号", "下单时间", "实付金额"], [["X1", "2021-01-01", "1"]], "orders")
    raw = read_input(folder, ReadOptions())
    assert raw.rows == 3 and len(raw.files) == 2
    (res,) = ingest(wh, raw, m.to_mapping()).sources
    assert (res.rows_loaded, res.rows_quarantined) == (2, 1)
    row = _rows(
        wh, "SELECT line_no, json_extract_string(row_json, '$.source_file') FROM quarantine"
    )
    assert row == [(3, "d2.csv")]  # the line within its own file, and the file
    _write(folder / "d3.csv", "订单号,时间,实付金额\nX4,2021-01-03,4\n")
    with pytest.raises(SourceError, match=r"d3\.csv.*expected the headers of d1\.csv"):
        read_input(folder / "*.csv", ReadOptions())


def test_line_file_derives_orders_and_customers(tmp_path: Path, wh: Warehouse) -> None:
    text = (
        "单号,商品编码,数量,单价,卡号,时间,城市\n"
        "1,A,2,1.5,7.0,2021-01-01 10:00,济南\n"
        "1,B,1,4,7.0,2021-01-01 10:00,济南\n"
        "1,B,1,4,7.0,2021-01-01 10:00,济南\n"
        "R2,B,-1,4,7.0,2021-01-05 09:00,青岛\n"
        "3,A,1,1.5,,2021-01-06 09:00,烟台\n"
    )
    m = IngestMapping(
        "order_lines",
        (
            ColumnRule("order_id", header="单号"),
            ColumnRule("line_no", generate="position"),
            ColumnRule("sku", header="商品编码"),
            ColumnRule("quantity", header="数量"),
            ColumnRule("unit_price", header="单价"),
            ColumnRule("orders.customer_id", header="卡号", clean="id"),
            ColumnRule("orders.order_time", header="时间"),
            ColumnRule("customers.city", header="城市"),
        ),
        rules={"refund": {"prefix": "R"}, "refund_link": "customer_sku"},
    )
    raw = read_input(_write(tmp_path / "lines.csv", text), ReadOptions())
    report = ingest(wh, raw, m)
    assert [s.table for s in report.sources] == ["customers", "orders", "order_lines"]
    assert report.balanced
    lines = report.sources[2]
    assert (lines.rows_read, lines.rows_loaded, lines.rows_merged) == (5, 4, 1)  # exact copy
    assert _rows(
        wh,
        "SELECT order_id, customer_id, amount, is_refund, original_order_id FROM orders ORDER BY 1",
    ) == [
        ("1", "7", 7.0, False, None),  # 2 × 1.5 + 4: the merged copy does not count
        ("3", None, 1.5, False, None),  # a guest
        ("R2", "7", -4.0, True, "1"),  # linked to the earlier order holding B
    ]
    assert _rows(wh, "SELECT customer_id, city FROM customers") == [("7", "青岛")]


def test_excel_sheet_with_a_title_row(tmp_path: Path, wh: Warehouse) -> None:
    xlsxwriter = pytest.importorskip("xlsxwriter")
    from datetime import datetime

    path = tmp_path / "members.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("会员")
    sheet.write(0, 0, "会员名单 2021")
    sheet.write_row(1, 0, ["会员卡号", "注册时间", "手机号"])
    sheet.write_row(2, 0, ["M1"])
    sheet.write_datetime(
        2, 1, datetime(2021, 3, 5, 9, 30), book.add_format({"num_format": "yyyy-mm-dd"})
    )
    sheet.write_row(2, 2, [13800138000])
    sheet.write_row(3, 0, ["M2", 44265, "139 0013 9000"])  # a serial number typed as a number
    book.close()
    raw = read_input(path, ReadOptions(sheet="会员", header_row=2))
    s = suggest_mapping(raw.headers, raw.sample(), "customers")
    assert {c.target: c.header for c in s.columns if c.header}["signup_date"] == "注册时间"
    (res,) = ingest(wh, raw, s.to_mapping()).sources
    assert res.rows_loaded == 2
    assert _rows(
        wh, "SELECT customer_id, signup_date::VARCHAR, phone FROM customers ORDER BY 1"
    ) == [
        ("M1", "2021-03-05 09:30:00", "13800138000"),
        ("M2", "2021-03-10 00:00:00", "13900139000"),
    ]
