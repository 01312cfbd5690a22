"""Identity resolution (D4): known answers, ambiguity, explanations, idempotence, demo plants."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from crmlens.cli import app
from crmlens.errors import ConfigError
from crmlens.ingest import DEMO_SOURCES, load_demo_export, load_sources
from crmlens.ingest.identity import explain, format_counts, stats
from crmlens.schema import SCHEMA_VERSION
from crmlens.warehouse import Warehouse
from crmlens.warehouse.identity_store import Contact, RecordSource

from .conftest import make_export

MEMBER_HEADER = (
    "会员卡号,姓名,性别,出生日期,手机号,电子邮箱,会员等级,客户类型,企业名称,行业,企业规模,"
    "大区,省份,城市,注册门店,注册渠道,注册方式,注册时间,推荐人卡号,营销授权,更新时间"
)
# card, phone, e-mail: M7 and M8 share a family phone, M1 and M9 an e-mail address
MEMBERS = [
    ("M0000001", "13800000001", "wang@example.com"),
    ("M0000002", "138 0000 0002", "li.juan@example.com"),
    ("M0000004", "13800000004", ""),
    ("M0000005", "13800000005", "zhao@example.com"),
    ("M0000006", "13800000006", ""),
    ("M0000007", "13900000077", ""),
    ("M0000008", "+86 139-0000-0077", "qian@example.com"),
    ("M0000009", "13700000009", "WANG@example.com"),
]
TICKET_HEADER = (
    "工单号,会员卡号,联系电话,工单类型,问题分类,商品编码,门店,受理渠道,创建时间,"
    "首次响应时间,关闭时间,状态,满意度,内容"
)
TICKETS = [
    ("T01", "M0000001", "13800000001"),  # card and own phone: nothing to record
    ("T02", "", "138-0000-0002"),  # phone only: M0000002
    ("T03", "", "+86 139 0000 0077"),  # the family phone: ambiguous, not merged
    ("T04", "", "13800000009"),  # nobody's phone
    ("T05", "M0000005", "13800000006"),  # card kept, although the phone is M0000006's
    ("T06", "", ""),  # nothing to go by
    ("T07", "", "0086 13800000005"),  # phone only: M0000005
]
# (source_table, source_key, rule, outcome, customer_id, matched_value, candidates)
EXPECTED_MAP = {
    ("service_tickets", "T02", "phone", "matched", "M0000002", "138****0002", None),
    ("service_tickets", "T03", "phone", "ambiguous", None, "139****0077", "M0000007;M0000008"),
    ("service_tickets", "T05", "member_card", "conflict", "M0000005", "138****0006", "M0000006"),
    ("service_tickets", "T07", "phone", "matched", "M0000005", "138****0005", None),
    ("customers", "M0000007", "phone", "shared", "M0000007", "139****0077", "M0000008"),
    ("customers", "M0000008", "phone", "shared", "M0000008", "139****0077", "M0000007"),
    ("customers", "M0000001", "email", "shared", "M0000001", "w***@example.com", "M0000009"),
    ("customers", "M0000009", "email", "shared", "M0000009", "w***@example.com", "M0000001"),
}
ENTRY = "source_table, source_key, rule, outcome, customer_id, matched_value, candidates"


def write_identity_export(out: Path, members: list[tuple[str, str, str]] = MEMBERS) -> Path:
    """The miniature export with hand-made members (GBK) and tickets (UTF-8 with BOM, CRLF)."""
    if not out.exists():
        make_export(out)
    rest = (
        ",测试,女,1970-01-01,{},{},普通,个人,,,,华东,山东,烟台,S01,C01,收银台,"
        "2020-01-01 10:00:00,,是,2021-01-01 09:00:00"
    )
    lines = [MEMBER_HEADER] + [card + rest.format(phone, mail) for card, phone, mail in members]
    (out / "crm" / "members.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    tail = (
        ",咨询,营业时间,,S01,电话,2021-03-05 10:00:00,2021-03-05 10:05:00,"
        "2021-03-05 12:00:00,已关闭,4,问题"
    )
    lines = [TICKET_HEADER] + [f"{t},{card},{phone}{tail}" for t, card, phone in TICKETS]
    (out / "service" / "tickets.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    return out


def rows(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return wh.raw.execute(sql).fetchall()


def ticket_customers(wh: Warehouse) -> dict[str, str | None]:
    return dict(rows(wh, "SELECT ticket_id, customer_id FROM service_tickets"))


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_identity_export(tmp_path / "export")


@pytest.fixture
def loaded(export: Path, tmp_path: Path) -> Iterator[tuple[Warehouse, Any]]:
    """A load of the hand-made export, for the tests that change it."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        yield wh, load_demo_export(wh, export)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, Any]]:
    """One load of the hand-made export, shared by the tests that only read."""
    root = tmp_path_factory.mktemp("identity")
    with Warehouse(root / "w.duckdb") as wh:
        yield wh, load_demo_export(wh, write_identity_export(root / "export"))


def test_known_answers_fixture(shared) -> None:
    wh, report = shared
    assert set(rows(wh, f"SELECT {ENTRY} FROM identity_map")) == EXPECTED_MAP
    assert ticket_customers(wh) == {
        "T01": "M0000001", "T02": "M0000002", "T03": None, "T04": None,
        "T05": "M0000005", "T06": None, "T07": "M0000005",
    }  # fmt: skip
    assert report.identity.entries == {
        ("customers", "email", "shared"): 2,
        ("customers", "phone", "shared"): 2,
        ("service_tickets", "member_card", "conflict"): 1,
        ("service_tickets", "phone", "ambiguous"): 1,
        ("service_tickets", "phone", "matched"): 2,
    }
    assert format_counts(report.identity) == (
        "identity: 2 matched by phone or e-mail, 1 ambiguous (not merged), 1 conflicts, "
        "4 shared contacts"
    )
    assert rows(wh, "SELECT DISTINCT load_id FROM identity_map") == [(report.load_id,)]
    assert stats(wh)["tables"] == [
        {
            "table": "service_tickets",
            "records": 7,
            "with_customer": 4,
            "by_member_card": 2,
            "by_contact": 2,
            "ambiguous": 1,
            "contact_matches_nobody": 1,
            "without_customer": 3,
        }
    ]


def test_a_shared_phone_is_never_merged(shared) -> None:
    wh, _ = shared
    assert ticket_customers(wh)["T03"] is None
    # the two customers stay two, each with its own card
    assert rows(wh, "SELECT customer_id FROM customers WHERE phone = '13900000077' ORDER BY 1") == [
        ("M0000007",),
        ("M0000008",),
    ]
    text = "\n".join(explain(wh, "M0000008"))
    assert "ticket T03: NOT merged: its phone 139****0077 belongs to several customers" in text
    assert "shares phone 139****0077 with M0000007: not merged" in text


def test_explanations_say_which_value_matched(shared) -> None:
    wh, report = shared
    lines = explain(wh, "M0000002")
    assert lines[0] == "M0000002: the member card number is the customer_id in every system."
    assert (
        f"service ticket T02: merged because phone 138****0002 matched (load {report.load_id})."
        in lines
    )
    five = "\n".join(explain(wh, "M0000005"))
    assert "service ticket T07: merged because phone 138****0005 matched" in five
    assert (
        "T05: kept on its member card although its contact value 138****0006 belongs to M0000006"
        in five
    )
    assert "Carry the member card: 1 service tickets" in five  # T05 only: T07 came by phone
    six = "\n".join(explain(wh, "M0000006"))
    assert (
        "T05: carries this customer's contact value 138****0006 but the member card of M0000005"
        in six
    )
    assert "shares e-mail w***@example.com with M0000009" in "\n".join(explain(wh, "M0000001"))
    assert explain(wh, "M0000004")[-1].startswith("No record was tied to this customer")
    with pytest.raises(ConfigError, match="no customer 'M404'"):
        explain(wh, "M404")


def test_the_map_holds_no_unmasked_phone_or_email(shared) -> None:
    wh, _ = shared
    text = " ".join(str(v) for row in rows(wh, "SELECT * FROM identity_map") for v in row)
    raw = rows(wh, "SELECT phone, email FROM customers") + rows(
        wh, "SELECT contact_phone, NULL FROM service_tickets"
    )
    values = {v for row in raw for v in row if v}
    assert len(values) > 10 and not [v for v in values if v in text]


def test_loading_twice_gives_the_same_map(loaded, export: Path) -> None:
    wh, first = loaded
    before = rows(wh, "SELECT * FROM identity_map ORDER BY ALL")
    second = load_demo_export(wh, export)
    assert rows(wh, "SELECT * FROM identity_map ORDER BY ALL") == before
    assert (second.identity.entries_added, second.identity.entries_removed) == (0, 0)
    assert second.identity.entries == first.identity.entries
    assert ticket_customers(wh)["T02"] == "M0000002"


def test_a_changed_phone_moves_the_link_on_a_later_load(loaded, export: Path) -> None:
    wh, first = loaded
    # only the member master is loaded again: M0000002 has a new phone, M0000004 takes the old one
    changed = [
        (c, {"M0000002": "13811112222", "M0000004": "13800000002"}.get(c, p), m)
        for c, p, m in MEMBERS
    ]
    write_identity_export(export, changed)
    members = [s for s in DEMO_SOURCES if s.path == "crm/members.csv"]
    later = load_sources(wh, export, members)
    assert later.identity.records_reset == 2  # T02 and T07, set by the first resolution
    assert ticket_customers(wh)["T02"] == "M0000004"
    assert ticket_customers(wh)["T07"] == "M0000005"
    t02, t07 = (
        rows(wh, f"SELECT customer_id, load_id FROM identity_map WHERE source_key = '{k}'")[0]
        for k in ("T02", "T07")
    )
    assert t02 == ("M0000004", later.load_id)  # a new link, made by the later load
    assert t07 == ("M0000005", first.load_id)  # unchanged: keeps when it was first made


def test_an_older_warehouse_gains_the_identity_map(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE identity_map")
    con.execute("UPDATE _crmlens_meta SET value = '2' WHERE key = 'schema_version'")
    con.execute("INSERT INTO customers (customer_id, phone) VALUES ('M1', '13800000001')")
    con.close()
    with Warehouse(path) as wh:
        assert wh.schema_version() == SCHEMA_VERSION >= 3
        assert rows(wh, "SELECT customer_id, phone FROM customers") == [("M1", "13800000001")]
        assert wh.row_count("identity_map") == 0
        assert "candidates" in wh.table("identity_map").columns


def test_an_identity_source_must_name_declared_columns() -> None:
    with pytest.raises(ConfigError, match=r"service_tickets.*no column 'mobile'"):
        RecordSource("service_tickets", "ticket_id", (Contact("mobile", "phone"),))
    with pytest.raises(ConfigError, match="one-column primary key"):
        RecordSource("service_tickets", "customer_id", (Contact("contact_phone", "phone"),))


def test_cli_explain_and_stats(loaded, tmp_path: Path) -> None:
    wh, _ = loaded
    wh.close()
    runner = CliRunner()
    path = str(tmp_path / "w.duckdb")
    result = runner.invoke(app, ["identity", "explain", "M0000002", "-w", path])
    assert result.exit_code == 0, result.output
    assert "merged because phone 138****0002 matched" in result.output
    result = runner.invoke(app, ["identity", "stats", "--json", "-w", path])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tables"][0]["by_contact"] == 2


# -- the real generator ----------------------------------------------------------------------
def _digits(phone: str) -> str:
    """The mobile in a ticket's phone text, independently of the loader's normaliser."""
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def test_the_demo_export_recovers_every_planted_phone_only_ticket(tmp_path: Path) -> None:
    demo = pytest.importorskip("crmlens.demo")
    out = tmp_path / "demo"
    demo.generate(demo.DemoConfig(customers=3000, seed=7, out_dir=out))
    planted = json.loads((out / "planted.json").read_text(encoding="utf-8"))
    phone_only = planted["effects"]["tickets_by_type"]["realised"]["phone_only"]
    # expected from the files alone: tickets without a card whose phone exactly one member has
    members = pd.read_csv(out / "crm" / "members.csv", encoding="gbk", dtype=str)
    members = members.sort_values("更新时间").drop_duplicates("会员卡号", keep="last")
    valid = members["手机号"].fillna("").str.fullmatch(r"1\d{10}")
    owners = members[valid].groupby("手机号")["会员卡号"].agg(list)
    tickets = pd.read_csv(out / "service" / "tickets.csv", dtype=str, keep_default_na=False)
    cardless = tickets[tickets["会员卡号"] == ""]
    hits = cardless["联系电话"].map(_digits).map(owners)
    expected = {
        t: cards[0]
        for t, cards in zip(cardless["工单号"], hits, strict=True)
        if isinstance(cards, list) and len(cards) == 1
    }
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = load_demo_export(wh, out)
        assert report.identity.count("service_tickets", "phone", "matched") == phone_only == 64
        assert report.identity.count("service_tickets", outcome="ambiguous") == 0
        resolved = dict(
            rows(
                wh,
                "SELECT source_key, customer_id FROM identity_map WHERE outcome = 'matched'",
            )
        )
        assert resolved == expected
        matched_phones = rows(
            wh,
            "SELECT count(*) FROM service_tickets t JOIN customers c USING (customer_id) "
            "JOIN identity_map m ON m.source_key = t.ticket_id WHERE t.contact_phone = c.phone",
        )
        assert matched_phones == [(phone_only,)]
