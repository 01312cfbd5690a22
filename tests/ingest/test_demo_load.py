"""Loading the miniature demo export: exact row accounting, cleaning rules, idempotence, rollback."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from python_calamine import CalamineWorkbook

from crmlens.errors import LoadError
from crmlens.ingest import DEMO_SOURCES, LoadReport, load_demo_export
from crmlens.schema import TABLES, data_tables
from crmlens.warehouse import Warehouse
from crmlens.warehouse.migrations import META_TABLE, quote

from .conftest import make_export

# (source, table): rows read, loaded, quarantined, merged; values cleared, inferred
EXPECTED = {
    ("crm/stores.csv", "stores"): (3, 3, 0, 0, 0, 0),
    ("shop/products.csv", "products"): (4, 4, 0, 0, 0, 0),
    ("marketing/channels.csv", "channels"): (3, 3, 0, 0, 0, 0),
    ("crm/members.csv", "customers"): (9, 6, 1, 2, 5, 0),
    ("shop/orders.csv", "orders"): (9, 5, 3, 1, 0, 0),
    ("shop/order_lines.csv", "order_lines"): (10, 5, 4, 1, 0, 2),
    ("marketing/channel_spend.csv", "channel_spend"): (2, 2, 0, 0, 0, 0),
    ("marketing/campaigns.csv", "campaigns"): (1, 1, 0, 0, 0, 0),
    ("marketing/campaign_touches.csv", "campaign_touches"): (3, 3, 0, 0, 0, 0),
    ("service/tickets.csv", "service_tickets"): (5, 5, 0, 0, 4, 0),
    ("survey/store_survey.xlsx", "survey_responses"): (4, 3, 1, 0, 1, 0),
    ("survey/store_survey.xlsx", "survey_scores"): (15, 11, 4, 0, 0, 0),
    ("app/app_events.csv", "app_events"): (4, 3, 1, 0, 0, 0),
    ("sales/crm_usage_log.csv", "app_events"): (2, 2, 0, 0, 0, 0),
    ("sales/sales_reps.csv", "sales_reps"): (2, 2, 0, 0, 0, 0),
    ("sales/leads.csv", "leads"): (2, 2, 0, 0, 1, 0),
    ("sales/lead_stage_history.csv", "lead_stage_history"): (5, 5, 0, 0, 0, 0),
    ("sales/sales_activities.csv", "sales_activities"): (2, 2, 0, 0, 0, 0),
    ("planning/targets.csv", "targets"): (5, 4, 1, 0, 0, 0),
    ("planning/experiments.csv", "experiments"): (2, 2, 0, 0, 0, 0),
    ("planning/experiment_units.csv", "experiment_units"): (4, 4, 0, 0, 0, 0),
}
# every quarantine record: (table, source, line, column, rule, action)
QUARANTINE = Counter(
    {
        ("customers", "crm/members.csv", 4, "手机号", "invalid_phone", "cleared"): 1,
        ("customers", "crm/members.csv", 4, "电子邮箱", "invalid_email", "cleared"): 1,
        ("customers", "crm/members.csv", 8, "会员卡号", "missing_required", "rejected"): 1,
        ("customers", "crm/members.csv", 9, "出生日期", "bad_date", "cleared"): 1,
        ("customers", "crm/members.csv", 9, "注册时间", "bad_timestamp", "cleared"): 1,
        ("customers", "crm/members.csv", 10, "营销授权", "bad_bool", "cleared"): 1,
        ("orders", "shop/orders.csv", 6, "paid_amount", "negative_amount_not_refund", "rejected"): 1,
        ("orders", "shop/orders.csv", 7, "order_time", "bad_timestamp", "rejected"): 1,
        ("orders", "shop/orders.csv", 9, "paid_amount", "missing_required", "rejected"): 1,
        ("order_lines", "shop/order_lines.csv", 3, "quantity", "missing_quantity", "inferred"): 1,
        ("order_lines", "shop/order_lines.csv", 5, "sku", "unknown_sku", "rejected"): 1,
        ("order_lines", "shop/order_lines.csv", 6, "quantity", "missing_quantity", "rejected"): 1,
        ("order_lines", "shop/order_lines.csv", 8, "order_id", "orphan_line", "rejected"): 1,
        ("order_lines", "shop/order_lines.csv", 9, "order_id", "orphan_line", "rejected"): 1,
        ("order_lines", "shop/order_lines.csv", 10, "quantity", "missing_quantity", "inferred"): 1,
        ("service_tickets", "service/tickets.csv", 3, "联系电话", "invalid_phone", "cleared"): 1,
        ("service_tickets", "service/tickets.csv", 5, "关闭时间", "closed_before_opened", "cleared"): 1,
        ("service_tickets", "service/tickets.csv", 6, "创建时间", "bad_timestamp", "cleared"): 1,
        ("service_tickets", "service/tickets.csv", 7, "满意度", "out_of_range", "cleared"): 1,
        ("survey_responses", "survey/store_survey.xlsx", 7, "推荐意愿(0-10)", "out_of_range", "cleared"): 1,
        ("survey_responses", "survey/store_survey.xlsx", 8, "问卷编号", "missing_required", "rejected"): 1,
        # one record per long row: the four dimension scores of that response
        ("survey_scores", "survey/store_survey.xlsx", 8, "问卷编号", "missing_required", "rejected"): 4,
        ("app_events", "app/app_events.csv", 5, "event_time", "missing_required", "rejected"): 1,
        ("leads", "sales/leads.csv", 3, "contact_phone", "invalid_phone", "cleared"): 1,
        ("targets", "planning/targets.csv", 6, "period", "bad_period", "rejected"): 1,
    }
)  # fmt: skip
ENCODING = {"crm/members.csv": "gbk", "service/tickets.csv": "utf-8-sig"}


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Warehouse, LoadReport, Path]]:
    """One load of the fixture export, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("loaded")
    export = make_export(root / "export")
    with Warehouse(root / "w.duckdb") as wh:
        yield wh, load_demo_export(wh, export), export


def rows(wh: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return wh.raw.execute(sql, params or []).fetchall()


def snapshot(wh: Warehouse, *, audit: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted; without load_id/loaded_at unless ``audit``."""
    out = {}
    for tbl in TABLES.values():
        cols = [c for c in tbl.column_names if audit or c not in ("load_id", "loaded_at")]
        out[tbl.name] = sorted(
            rows(wh, f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(tbl.name)}"),
            key=repr,
        )
    out[META_TABLE] = sorted(rows(wh, f"SELECT * FROM {META_TABLE}"))
    return out


def test_every_source_balances_with_the_exact_planted_counts(loaded) -> None:
    _, report, _ = loaded
    got = {
        (s.source, s.table): (
            s.rows_read, s.rows_loaded, s.rows_quarantined, s.rows_merged,
            s.values_cleared, s.values_inferred,
        )
        for s in report.sources
    }  # fmt: skip
    assert got == EXPECTED
    assert report.balanced and all(s.balanced for s in report.sources)
    assert report.totals() == {
        "rows_read": 96, "rows_loaded": 77, "rows_quarantined": 15, "rows_merged": 4,
        "values_cleared": 11,
    }  # fmt: skip
    assert [s.path for s in DEMO_SOURCES] == [s.source for s in report.sources]


def test_quarantine_records_every_rejected_row_and_changed_value(loaded) -> None:
    wh, report, _ = loaded
    got = Counter(
        rows(wh, "SELECT table_name, source, line_no, column_name, rule, action FROM quarantine")
    )
    assert got == QUARANTINE
    assert report.source("shop/order_lines.csv").rejected_by_rule == {
        "missing_quantity": 1, "orphan_line": 2, "unknown_sku": 1,
    }  # fmt: skip
    assert report.source("crm/members.csv").cleared_by_rule == {
        "bad_bool": 1, "bad_date": 1, "bad_timestamp": 1, "invalid_email": 1, "invalid_phone": 1,
    }  # fmt: skip
    # rejected rows carry the whole source row, keyed by the source headers
    (row_json,) = rows(wh, "SELECT row_json FROM quarantine WHERE rule = 'bad_timestamp' AND table_name = 'orders'")[0]  # fmt: skip
    assert json.loads(row_json) | {} == json.loads(row_json)
    assert json.loads(row_json)["order_id"] == "O0006"
    assert json.loads(row_json)["order_time"] == "#N/A"


def test_quarantine_line_numbers_point_at_the_source_lines(loaded) -> None:
    wh, _, export = loaded
    records = rows(wh, "SELECT source, line_no, original_value, row_json FROM quarantine")
    for source, line_no, original, row_json in records:
        if source.endswith(".xlsx"):
            grid = CalamineWorkbook.from_path(str(export / source)).get_sheet_by_name("问卷数据")
            line = " ".join(str(c) for c in grid.to_python(skip_empty_area=False)[line_no - 1])
        else:
            text = (export / source).read_bytes().decode(ENCODING.get(source, "utf-8"))
            line = text.split("\n")[line_no - 1]
        values = [original] if original else [v for v in json.loads(row_json).values() if v][:3]
        assert values and all(str(v).removesuffix(".0") in line for v in values), (source, line_no)


def test_line_numbers_count_the_lines_of_multi_line_records(loaded) -> None:
    wh, _, export = loaded
    # ticket W0002 spans lines 3-4 (a line break inside its quoted text): W0003 is on line 5
    (line_no,) = rows(wh, "SELECT line_no FROM quarantine WHERE rule = 'closed_before_opened'")[0]
    lines = (export / "service/tickets.csv").read_bytes().decode("utf-8-sig").split("\r\n")
    assert line_no == 5 and lines[4].startswith("W0003,")


def test_gbk_chinese_headers_and_values_arrive_intact(loaded) -> None:
    wh, _, _ = loaded
    got = rows(
        wh, "SELECT customer_id, name, city, member_tier, customer_type FROM customers ORDER BY 1"
    )
    assert got[0] == ("M0000001", "王秀英", "烟台", "白金", "个人")
    assert ("M0000004", "刘建国", "青岛", "普通", "企业") in got
    assert rows(wh, "SELECT company_name FROM customers WHERE customer_id = 'M0000004'") == [
        ("青岛海鲜贸易有限公司",)
    ]
    (text,) = rows(wh, "SELECT text FROM service_tickets WHERE ticket_id = 'W0005'")[0]
    assert text == '他说"太咸了"'
    (text,) = rows(wh, "SELECT text FROM service_tickets WHERE ticket_id = 'W0002'")[0]
    assert text == "请问周末几点开门？\r\n谢谢"


def test_key_duplicates_keep_the_newest_version(loaded) -> None:
    wh, _, _ = loaded
    assert rows(wh, "SELECT member_tier, phone, email, updated_at FROM customers WHERE customer_id = 'M0000002'") == [
        ("白金", "13800000002", "li.juan@example.com", datetime(2021, 6, 1, 9))
    ]  # fmt: skip
    assert rows(wh, "SELECT count(*) FROM customers WHERE customer_id = 'M0000001'") == [(1,)]


def test_phones_and_emails_are_normalised_or_cleared(loaded) -> None:
    wh, _, _ = loaded
    got = dict(
        (r[0], r[1:])
        for r in rows(wh, "SELECT customer_id, phone, email, birth_date, consent_marketing FROM customers")
    )  # fmt: skip
    assert got["M0000003"][:2] == (None, None)  # 10 digits; no @
    assert got["M0000006"] == ("13800000006", None, date(1980, 1, 1), None)  # 'maybe' cleared
    assert got["M0000005"][2] is None  # 1975-13-40 cleared
    assert rows(wh, "SELECT contact_phone FROM service_tickets WHERE ticket_id = 'W0002'") == [
        (None,)
    ]


def test_mixed_date_formats_all_parse(loaded) -> None:
    wh, _, _ = loaded
    signup = dict(rows(wh, "SELECT customer_id, signup_date FROM customers"))
    assert signup["M0000001"] == signup["M0000002"] == datetime(2019, 3, 5, 10, 21)
    assert signup["M0000003"] == signup["M0000004"] == datetime(2019, 3, 5)
    assert signup["M0000005"] is None  # '#N/A' cleared: signup time is optional
    order_time = dict(rows(wh, "SELECT order_id, order_time FROM orders"))
    assert order_time["O0002"] == datetime(2021, 3, 5, 14, 23)
    assert order_time["O0008"] == datetime(2021, 3, 10)
    assert rows(wh, "SELECT opened_date FROM stores WHERE store_id = 'S02'") == [
        (date(2016, 7, 15),)
    ]
    assert rows(wh, "SELECT responded_at FROM survey_responses ORDER BY 1") == [
        (datetime(2021, 4, 1, 10),), (datetime(2021, 4, 2, 11),), (datetime(2021, 4, 3),),
    ]  # fmt: skip


def test_refunds_load_and_entry_errors_are_quarantined(loaded) -> None:
    wh, _, _ = loaded
    got = rows(wh, "SELECT order_id, amount, is_refund, original_order_id FROM orders ORDER BY 1")
    assert ("O0004", -30.0, True, "O0001") in got
    assert {r[0] for r in got} == {"O0001", "O0002", "O0003", "O0004", "O0008"}
    assert all(r[2] is False for r in got if r[0] != "O0004")
    assert rows(wh, "SELECT sum(amount) FROM order_lines WHERE order_id = 'O0004'") == [(-11.0,)]


def test_missing_quantities_are_inferred_from_amount_and_price(loaded) -> None:
    wh, _, _ = loaded
    got = rows(wh, "SELECT order_id, line_no, quantity FROM order_lines ORDER BY 1, 2")
    assert got == [
        ("O0001", 1, 2.0), ("O0001", 2, 2.0), ("O0002", 1, 1.0), ("O0004", 1, -2.0),
        ("O0008", 1, 2.0),
    ]  # fmt: skip


def test_behaviour_is_keyed_by_the_salted_anonymous_id(loaded) -> None:
    wh, _, _ = loaded
    ((salt,),) = rows(wh, f"SELECT value FROM {META_TABLE} WHERE key = 'anon_salt'")
    expected = hashlib.sha256((salt + "M0000001").encode()).hexdigest()[:16]
    assert rows(wh, "SELECT anon_id FROM customers WHERE customer_id = 'M0000001'") == [(expected,)]
    users = dict(rows(wh, "SELECT event_id, user_id FROM app_events"))
    assert users["E0001"] == users["E0002"] == expected
    assert users["U0001"] == "R01"  # CRM users are reps, not customers
    apps = Counter(r[0] for r in rows(wh, "SELECT app FROM app_events"))
    assert apps == {"shop_app": 3, "crm": 2}


def test_targets_get_their_period_bounds(loaded) -> None:
    wh, _, _ = loaded
    got = rows(wh, "SELECT period, period_start, period_end FROM targets ORDER BY 1, 2")
    assert set(got) == {
        ("2021", date(2021, 1, 1), date(2021, 12, 31)),
        ("2021-12", date(2021, 12, 1), date(2021, 12, 31)),
        ("2021-Q4", date(2021, 10, 1), date(2021, 12, 31)),
    }


def test_the_wide_survey_becomes_responses_and_long_scores(loaded) -> None:
    wh, _, _ = loaded
    assert rows(wh, "SELECT response_id, nps_score, csat_score, comment FROM survey_responses ORDER BY 1") == [
        ("Q001", 9, 5, "结账排队太长"), ("Q002", 7, 4, None), ("Q003", None, 3, "盒饭种类少"),
    ]  # fmt: skip
    scores = rows(
        wh, "SELECT dimension, score FROM survey_scores WHERE response_id = 'Q003' ORDER BY 1"
    )
    assert scores == [("商品丰富度", 2.0), ("商品价格", 5.0), ("购物环境", 4.0)]
    assert rows(wh, "SELECT DISTINCT survey_id FROM survey_responses") == [("store_survey",)]


def test_load_log_has_one_balanced_row_per_table(loaded) -> None:
    wh, report, _ = loaded
    log = rows(wh, "SELECT table_name, source, rows_read, rows_loaded, rows_quarantined, rows_merged, status FROM load_log WHERE load_id = ?", [report.load_id])  # fmt: skip
    # every table the demo exports (the attribute and web-session tables are for other sources)
    assert sorted(r[0] for r in log) == sorted({s.table for s in DEMO_SOURCES})
    assert {s.table for s in DEMO_SOURCES} >= {t.name for t in data_tables()} - {
        "customer_attributes",
        "web_sessions",
        "session_attributes",
    }
    for table, _source, read, loaded_, quarantined, merged, status in log:
        assert read == loaded_ + quarantined + merged and status == "ok"
        assert rows(wh, f"SELECT count(*) FROM {quote(table)}") == [(loaded_,)]
    events = next(r for r in log if r[0] == "app_events")
    assert events[1:3] == ("app/app_events.csv; sales/crm_usage_log.csv", 6)


def test_reloading_the_same_export_changes_nothing_but_the_audit_columns(
    demo_export: Path, warehouse: Warehouse
) -> None:
    first = load_demo_export(warehouse, demo_export)
    before = snapshot(warehouse, audit=False)
    second = load_demo_export(warehouse, demo_export)
    after = snapshot(warehouse, audit=False)
    for name in before:
        if name not in ("load_log", "quarantine"):
            assert after[name] == before[name], name
    assert [(s.rows_read, s.rows_loaded) for s in second.sources] == [
        (s.rows_read, s.rows_loaded) for s in first.sources
    ]
    assert {r[0] for r in rows(warehouse, "SELECT load_id FROM load_log")} == {
        first.load_id, second.load_id,
    }  # fmt: skip
    assert rows(warehouse, "SELECT DISTINCT load_id FROM customers") == [(second.load_id,)]


def test_a_later_load_updates_rows_by_key_and_keeps_the_others(
    demo_export: Path, warehouse: Warehouse
) -> None:
    load_demo_export(warehouse, demo_export)
    stores = demo_export / "crm" / "stores.csv"
    stores.write_text(
        "store_id,store_name,region,province,city,store_type,opened_date,area_sqm\n"
        "S02,青岛市南旗舰店,华东,山东,青岛,大卖场,2016-07-15,5000\n"
        "S03,济南泉城店,华东,山东,济南,社区店,2021-05-01,900\n",
        encoding="utf-8",
    )
    load_demo_export(warehouse, demo_export)
    assert rows(warehouse, "SELECT store_id, store_name FROM stores ORDER BY 1") == [
        ("S00", "线上商城"), ("S01", "烟台芝罘店"), ("S02", "青岛市南旗舰店"), ("S03", "济南泉城店"),
    ]  # fmt: skip


@pytest.mark.parametrize("fresh", [True, False], ids=["empty-warehouse", "loaded-warehouse"])
def test_a_failure_late_in_the_load_leaves_the_warehouse_untouched(
    demo_export: Path, warehouse: Warehouse, fresh: bool
) -> None:
    if not fresh:
        load_demo_export(warehouse, demo_export)
    # an early file with changes that would be written, and a late file that cannot be read
    (demo_export / "crm" / "stores.csv").write_text(
        "store_id,store_name,region,province,city,store_type,opened_date,area_sqm\n"
        "S09,新店,华东,山东,烟台,社区店,2021-01-01,100\n",
        encoding="utf-8",
    )
    (demo_export / "planning" / "targets.csv").write_bytes(
        b"metric,period,dimension,dimension_value,target_value\nmembers,2021-12,city,\xff\xfe,1\n"
    )
    before = snapshot(warehouse, audit=True)
    with pytest.raises(LoadError, match=r"planning/targets\.csv"):
        load_demo_export(warehouse, demo_export)
    assert snapshot(warehouse, audit=True) == before


def test_a_bad_byte_in_the_gbk_file_names_file_and_line(
    demo_export: Path, warehouse: Warehouse
) -> None:
    members = demo_export / "crm" / "members.csv"
    data = members.read_bytes().split(b"\n")
    data[5] = data[5] + b"\x80\xff"  # not GB18030: on line 6
    members.write_bytes(b"\n".join(data))
    with pytest.raises(LoadError, match=r"crm/members\.csv, row 6: expected gb18030"):
        load_demo_export(warehouse, demo_export)
    assert warehouse.row_count("stores") == 0


def test_missing_columns_and_files_are_named(demo_export: Path, warehouse: Warehouse) -> None:
    orders = demo_export / "shop" / "orders.csv"
    orders.write_text(orders.read_text().replace("paid_amount", "paid"), encoding="utf-8")
    with pytest.raises(LoadError, match=r"orders\.csv, row 1: expected columns \['paid_amount'\]"):
        load_demo_export(warehouse, demo_export)
    orders.unlink()
    with pytest.raises(LoadError, match=r"orders\.csv: missing file"):
        load_demo_export(warehouse, demo_export)


def test_progress_is_reported_per_source(demo_export: Path, warehouse: Warehouse) -> None:
    calls: list[tuple[str, int, int]] = []
    load_demo_export(warehouse, demo_export, progress=lambda *a: calls.append(a))
    n = len(DEMO_SOURCES)
    assert calls == [("load", i, n) for i in range(n + 1)]


# -- the real generator ----------------------------------------------------------------------
def test_a_generated_export_loads_with_the_planted_dirt_accounted_for(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    demo = pytest.importorskip("crmlens.demo")
    manifest = demo.generate(demo.DemoConfig(customers=3000, seed=7, out_dir=tmp_path / "demo"))
    dirt = json.loads((tmp_path / "demo" / "planted.json").read_text(encoding="utf-8"))["dirt"]
    report = load_demo_export(warehouse, tmp_path / "demo")
    assert report.balanced
    for s in report.sources:
        assert s.rows_read == manifest["files"][s.source]["rows"] * (
            4 if s.table == "survey_scores" else 1
        ), s.source

    members = report.source("crm/members.csv")
    assert members.rows_merged == (
        dirt["crm/members.csv.exact_duplicates"] + dirt["crm/members.csv.key_duplicates"]
    )
    assert members.rows_loaded == 3000 and members.rows_quarantined == 0
    assert members.cleared_by_rule == {
        "invalid_email": dirt["crm/members.csv.invalid_email"],
        "invalid_phone": dirt["crm/members.csv.invalid_phone"],
    }
    # every one of the mixed signup-time formats parses
    assert rows(warehouse, "SELECT count(*) FROM customers WHERE signup_date IS NULL") == [(0,)]

    orders = report.source("shop/orders.csv")
    assert orders.rows_merged == dirt["shop/orders.csv.exact_duplicates"]
    assert orders.rejected_by_rule == {
        "negative_amount_not_refund": dirt["shop/orders.csv.entry_errors"],
        "bad_timestamp": dirt["shop/orders.csv.bad_times"],
    }
    assert rows(warehouse, "SELECT count(*) FROM orders WHERE is_refund") == [
        (dirt["shop/orders.csv.refunds"],)
    ]

    lines = report.source("shop/order_lines.csv")
    assert lines.cleared_by_rule == {
        "missing_quantity": dirt["shop/order_lines.csv.missing_quantity"]
    }
    rejected_orders = {
        json.loads(r[0])["order_id"]
        for r in rows(warehouse, "SELECT row_json FROM quarantine WHERE table_name = 'orders'")
    }
    csv_lines = (tmp_path / "demo" / "shop" / "order_lines.csv").read_text().splitlines()[1:]
    orphans = sum(line.split(",", 1)[0] in rejected_orders for line in csv_lines)
    assert lines.rejected_by_rule == {
        "unknown_sku": dirt["shop/order_lines.csv.unknown_sku"],
        "orphan_line": orphans,
    }

    tickets = report.source("service/tickets.csv")
    assert (
        tickets.cleared_by_rule["closed_before_opened"]
        == dirt["service/tickets.csv.close_before_open"]
    )
    # behaviour in the shop app is keyed by the customers' anonymous IDs only
    assert rows(
        warehouse,
        "SELECT count(*) FROM app_events WHERE app = 'shop_app' "
        "AND user_id NOT IN (SELECT anon_id FROM customers)",
    ) == [(0,)]
