"""Attributes a source has but the schema lacks (``[attributes]`` → customer/session attributes),
and experiments derived from their units: rules for missing and bad values, quarantine records,
the row accounting, and the migration that adds the tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from crmlens.errors import ConfigError
from crmlens.ingest import ingest, read_input
from crmlens.ingest.mapping_file import dumps_mapping, loads_mapping
from crmlens.schema import SCHEMA_VERSION
from crmlens.warehouse import Warehouse

CUSTOMERS = """\
会员号,tenure,charges,joined,vip,plan
C1,3,¥12.50,2021-03-05,是,A
C2,0,,2021/3/6,否,B
C3,x,abc,bad-date,maybe,
,4,5,2021-01-01,yes,C
C5,7,9,2021-01-02,yes,
"""

MAPPING = """\
kind = "customers"

[columns]
customer_id = "会员号"
signup_date = { header = "joined", required = true }

[attributes]
tenure = { kind = "int", invalid = "quarantine" }
charges = { kind = "money", invalid = "default", default = "0" }
joined_on = { header = "joined", kind = "date" }
vip = { kind = "bool" }
plan = "plan"
"""


@pytest.fixture
def loaded(tmp_path: Path):
    path = tmp_path / "members.csv"
    path.write_text(CUSTOMERS, encoding="utf-8")
    mapping = loads_mapping(MAPPING)
    raw = read_input(path, mapping.read, expected=mapping.headers)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        yield wh, ingest(wh, raw, mapping)


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.raw.execute(sql).fetchall()


def test_each_attribute_is_a_balanced_source(loaded) -> None:
    _, report = loaded
    assert report.balanced
    got = {
        s.table + ("." + s.source.rsplit(".", 1)[1] if "→" in s.source else ""): (
            s.rows_read,
            s.rows_loaded,
            s.rejected_by_rule,
            s.cleared_by_rule,
        )
        for s in report.sources
    }
    # C3 (bad signup date) and the row without an ID are rejected customers: their attributes
    # follow them (missing ID; unknown_customer), unless a rule of their own rejected them first
    assert got == {
        "customers": (5, 3, {"bad_timestamp": 1, "missing_required": 1}, {}),
        "customer_attributes.tenure": (5, 3, {"bad_int": 1, "missing_required": 1}, {}),
        "customer_attributes.charges": (
            5,
            3,
            {"missing_required": 1, "unknown_customer": 1},
            {"default_charges": 1},
        ),
        "customer_attributes.joined_on": (
            5,
            3,
            {"missing_required": 1, "unknown_customer": 1},
            {},
        ),
        "customer_attributes.vip": (5, 3, {"missing_required": 1, "unknown_customer": 1}, {}),
        "customer_attributes.plan": (5, 3, {"missing_required": 1, "unknown_customer": 1}, {}),
    }


def test_values_land_in_the_column_of_their_kind(loaded) -> None:
    wh, _ = loaded
    values = _rows(
        wh,
        "SELECT customer_id, attribute, value_kind, value_text, value_number, value_bool, "
        "value_date, source FROM customer_attributes ORDER BY 1, 2",
    )
    assert [v[:7] for v in values if v[0] == "C1"] == [
        ("C1", "charges", "money", None, 12.5, None, None),  # ¥ stripped
        ("C1", "joined_on", "date", None, None, None, date(2021, 3, 5)),
        ("C1", "plan", "string", "A", None, None, None),
        ("C1", "tenure", "int", None, 3.0, None, None),
        ("C1", "vip", "bool", None, None, True, None),
    ]
    assert {v[7] for v in values} == {"members.csv"}
    # C2's blank charges became the stated default; C5's empty plan is loaded empty
    assert _rows(wh, "SELECT value_number FROM customer_attributes WHERE customer_id = 'C2' "
                 "AND attribute = 'charges'") == [(0.0,)]  # fmt: skip
    assert _rows(wh, "SELECT value_text FROM customer_attributes WHERE customer_id = 'C5' "
                 "AND attribute = 'plan'") == [(None,)]  # fmt: skip


def test_quarantine_names_line_column_rule_and_original_text(loaded) -> None:
    wh, _ = loaded
    records = _rows(
        wh,
        "SELECT source, line_no, column_name, rule, action, original_value FROM quarantine "
        "WHERE table_name = 'customer_attributes' AND rule NOT IN "
        "('missing_required', 'unknown_customer') ORDER BY line_no, rule",
    )
    assert [(r[0].rsplit("/", 1)[-1], *r[1:]) for r in records] == [
        ("members.csv → customer_attributes.charges", 3, "charges", "default_charges", "inferred", None),
        ("members.csv → customer_attributes.tenure", 4, "tenure", "bad_int", "rejected", "x"),
    ]  # fmt: skip
    unknown = _rows(
        wh,
        "SELECT DISTINCT line_no, original_value FROM quarantine WHERE rule = 'unknown_customer'",
    )
    assert unknown == [(4, "C3")]


def test_experiment_units_create_their_experiment_and_keep_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "ab.csv"
    path.write_text("user,group,clicked\nu1,A,TRUE\nu2,B,FALSE\nu3,B,NULL\n", encoding="utf-8")
    mapping = loads_mapping(
        """
        kind = "experiment_units"
        [columns]
        experiment_id = { value = "banner" }
        unit_type = { value = "customer" }
        unit_id = "user"
        variant = "group"
        "experiments.kind" = { value = "ab_test" }
        "experiments.experiment_name" = { value = "Banner colour" }
        [attributes]
        banner_clicked = { header = "clicked", kind = "bool", invalid = "quarantine" }
        """
    )
    raw = read_input(path, mapping.read)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert [(s.table, s.rows_read, s.rows_loaded) for s in report.sources] == [
            ("experiments", 1, 1),
            ("experiment_units", 3, 3),
            ("customer_attributes", 3, 2),
        ]
        assert report.balanced
        assert _rows(wh, "SELECT experiment_id, kind, experiment_name FROM experiments") == [
            ("banner", "ab_test", "Banner colour")
        ]
        assert _rows(wh, "SELECT line_no, rule, original_value FROM quarantine") == [
            (4, "bad_bool", "NULL")
        ]


def test_a_default_only_where_another_attribute_says_so(tmp_path: Path) -> None:
    """default_when: a blank total is 0 for a new customer (tenure 0) and quarantined otherwise."""
    path = tmp_path / "subs.csv"
    path.write_text("id,tenure,total\nA,0, \nB,5,\nC,5,40.5\nD,0.0,oops\n", encoding="utf-8")
    mapping = loads_mapping(
        """
        kind = "customers"
        [columns]
        customer_id = "id"
        [attributes]
        tenure = { kind = "int" }
        [attributes.total]  # a table of its own: TOML's inline tables take one line
        kind = "money"
        invalid = "default"
        default = "0"
        default_when = { tenure = "0" }
        otherwise = "quarantine"
        """
    )
    raw = read_input(path, mapping.read)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert report.balanced
        when, otherwise = (s for s in report.sources if ".total" in s.source)
        assert when.source.endswith("(tenure = 0)") and otherwise.source.endswith("(otherwise)")
        assert (when.rows_read, when.rows_loaded, when.values_inferred) == (2, 2, 2)
        assert (otherwise.rows_read, otherwise.rows_loaded) == (2, 1)
        assert otherwise.rejected_by_rule == {"missing_required": 1}
        totals = _rows(
            wh, "SELECT customer_id, value_number FROM customer_attributes "
            "WHERE attribute = 'total' ORDER BY 1"
        )  # fmt: skip
        assert totals == [("A", 0.0), ("C", 40.5), ("D", 0.0)]
        records = _rows(
            wh, "SELECT line_no, rule, action, original_value FROM quarantine ORDER BY line_no"
        )
        assert records == [
            (2, "default_total", "inferred", " "),
            (3, "missing_required", "rejected", None),
            (5, "default_total", "inferred", "oops"),
        ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'kind = "orders"\n[columns]\norder_id = "id"\n[attributes]\nx = "x"',
            "no attribute table",
        ),
        (
            'kind = "customers"\n[columns]\ncustomer_id = "id"\n[attributes]\nx = { kind = "int", '
            'default = "0" }',
            "exactly when invalid",
        ),
        (
            'kind = "customers"\n[columns]\ncustomer_id = "id"\n[attributes]\nx = { kind = "int", '
            'invalid = "default", default = "zero" }',
            "not a int value",
        ),
        (
            'kind = "customers"\n[columns]\ncustomer_id = "id"\n[attributes]\nx = { kind = "list" }',
            "kind is one of",
        ),
        (
            'kind = "experiment_units"\n[columns]\nexperiment_id = { value = "e" }\nunit_type = '
            '"type"\nunit_id = "id"\n[attributes]\nx = "x"',
            "unit_type",
        ),
        (
            'kind = "customers"\n[columns]\ncustomer_id = "id"\n[attributes]\nx = { kind = "int", '
            'invalid = "default", default = "0", default_when = { y = "0" } }',
            "not another declared attribute",
        ),
    ],
)
def test_invalid_attribute_declarations_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads_mapping(text)


def test_attributes_round_trip_through_toml() -> None:
    mapping = loads_mapping(MAPPING)
    assert loads_mapping(dumps_mapping(mapping)) == mapping
    assert mapping.headers == ("会员号", "joined", "tenure", "charges", "vip", "plan")


def test_a_version_3_warehouse_gains_the_new_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    for name in ("customer_attributes", "web_sessions", "session_attributes"):
        con.execute(f"DROP TABLE {name}")
    con.execute("UPDATE _crmlens_meta SET value = '3' WHERE key = 'schema_version'")
    con.execute("INSERT INTO customers (customer_id) VALUES ('M1')")
    con.close()
    with Warehouse(path) as wh:
        assert wh.schema_version() == SCHEMA_VERSION == 4
        assert _rows(wh, "SELECT customer_id FROM customers") == [("M1",)]
        for name in ("customer_attributes", "web_sessions", "session_attributes"):
            assert wh.row_count(name) == 0
        assert "value_number" in wh.table("customer_attributes").columns


SESSIONS = """\
session,device,seconds,pages,bought
S1,iOS,5,1,FALSE
S2,Web,120,6,TRUE
S3,Web,90000,3,FALSE
S4,Android,,2,FALSE
S5,iOS,9.5,1,FALSE
"""

SESSION_MAPPING = """\
kind = "web_sessions"

[columns]
session_id = "session"
device = "device"
duration_seconds = "seconds"
page_views = "pages"
converted = "bought"
"""


def test_session_outliers_are_flagged_and_loaded_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    path.write_text(SESSIONS, encoding="utf-8")
    mapping = loads_mapping(SESSION_MAPPING)
    raw = read_input(path, mapping.read, expected=mapping.headers)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert report.balanced
        (sessions,) = [s for s in report.sources if s.table == "web_sessions"]
        # flagged rows are loaded, not quarantined
        assert (sessions.rows_read, sessions.rows_loaded, sessions.rows_quarantined) == (5, 5, 0)
        assert sessions.values_flagged == 3
        flagged = _rows(
            wh,
            "SELECT line_no, column_name, rule, original_value FROM quarantine "
            "WHERE action = 'flagged' ORDER BY line_no",
        )
        assert flagged == [
            (2, "seconds", "session_under_10s", "5"),
            (4, "seconds", "session_over_24h", "90000"),
            (6, "seconds", "session_under_10s", "9.5"),
        ]
        # the values themselves are kept as they were
        assert _rows(
            wh, "SELECT session_id, duration_seconds FROM web_sessions ORDER BY session_id"
        ) == [("S1", 5.0), ("S2", 120.0), ("S3", 90000.0), ("S4", None), ("S5", 9.5)]
