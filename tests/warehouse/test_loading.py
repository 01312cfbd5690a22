"""The loading SQL: value parsing, line numbers in big multi-threaded reads, duplicates, mapping checks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crmlens.errors import ConfigError
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading import (
    ColumnSpec,
    RowRule,
    SourceResult,
    SourceRows,
    TableMapping,
    Unpivot,
    anon_salt,
    load_source,
    parse_sql,
)

NOW = datetime(2024, 1, 1)


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        yield warehouse


def load(
    wh: Warehouse, rows: SourceRows, mapping: TableMapping, load_id: str = "L1"
) -> SourceResult:
    with wh.transaction() as con:
        return load_source(con, rows, mapping, load_id=load_id, loaded_at=NOW, salt="s4lt")


def csv_rows(path: Path, text: str, **options: Any) -> SourceRows:
    path.write_text(text, encoding="utf-8")
    headers = tuple(text.split("\n", 1)[0].split(","))
    return SourceRows(path.name, headers, csv_path=path, **options)


def parsed(kind: str, value: str | None) -> Any:
    literal = "NULL" if value is None else "'" + value.replace("'", "''") + "'"
    return duckdb.sql(f"SELECT {parse_sql(kind, f'{literal}::VARCHAR', 'abc')}").fetchone()[0]  # type: ignore[arg-type,index]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("timestamp", "2019-03-05 10:21:00", datetime(2019, 3, 5, 10, 21)),
        ("timestamp", "2019/3/5 10:21", datetime(2019, 3, 5, 10, 21)),
        ("timestamp", "2019/03/05 10:21:09", datetime(2019, 3, 5, 10, 21, 9)),
        ("timestamp", "2019年3月5日", datetime(2019, 3, 5)),
        ("timestamp", "20190305", datetime(2019, 3, 5)),
        ("timestamp", "2019-03-05", datetime(2019, 3, 5)),
        ("timestamp", "2019-03-05T10:21:00", datetime(2019, 3, 5, 10, 21)),
        ("timestamp", "#N/A", None),
        ("timestamp", "2019-13-01", None),
        ("date", "2016/7/15", date(2016, 7, 15)),
        ("date", "1972-05-14", date(1972, 5, 14)),
        ("int", "3", 3),
        ("int", " 7 ", 7),
        ("int", "3.0", 3),
        ("int", "3.5", None),
        ("int", "x", None),
        ("money", "1,234.50", 1234.5),
        ("money", "-30.00", -30.0),
        ("float", "abc", None),
        ("bool", "是", True),
        ("bool", "否", False),
        ("bool", "TRUE", True),
        ("bool", "false", False),
        ("bool", "maybe", None),
        ("phone", "13800000001", "13800000001"),
        ("phone", "+86 138-0000-0002", "13800000002"),
        ("phone", "0086 13800000002", "13800000002"),
        ("phone", "8613800000002", "13800000002"),
        ("phone", "138 0000 0006", "13800000006"),
        ("phone", "1380000003", None),
        ("phone", "1333969O961", None),
        ("phone", "0535-6661234", None),
        ("email", " LI.Juan@Example.COM ", "li.juan@example.com"),
        ("email", "zhang-at-example.com", None),
        ("email", "a@b", None),
        ("string", "  M01 ", "M01"),
        ("string", "M01", "M01"),
        ("string", "   ", None),
        ("string", None, None),
        ("period_start", "2021-12", date(2021, 12, 1)),
        ("period_end", "2021-12", date(2021, 12, 31)),
        ("period_start", "2021-Q4", date(2021, 10, 1)),
        ("period_end", "2021-q1", date(2021, 3, 31)),
        ("period_end", "2020-02", date(2020, 2, 29)),
        ("period_end", "2021", date(2021, 12, 31)),
        ("period_start", "2021-13", None),
        ("period_start", "2021-Q5", None),
    ],
)
def test_values_parse_or_come_out_empty(kind: str, value: str | None, expected: Any) -> None:
    assert parsed(kind, value) == expected


def test_anonymous_ids_are_a_salted_sha256() -> None:
    assert parsed("anon_id", "M0000001") == hashlib.sha256(b"abcM0000001").hexdigest()[:16]
    with pytest.raises(ConfigError, match="salt"):
        parse_sql("anon_id", "x", "")


def test_duckdb_keeps_file_order_in_rowids_of_a_parallel_read(tmp_path: Path) -> None:
    """The assumption line numbers rest on, with many small buffers read by several threads."""
    path = tmp_path / "big.csv"
    path.write_text("n,pad\n" + "".join(f"{i},{'x' * (i % 50)}\n" for i in range(400_000)))
    con = duckdb.connect(str(tmp_path / "order.duckdb"))
    con.execute("SET threads = 4")
    con.execute("BEGIN")  # rows of an open transaction, as in a load
    con.execute(
        f"CREATE TEMP TABLE t AS SELECT * FROM read_csv('{path}', header = true, "
        "auto_detect = false, columns = {'n': 'VARCHAR', 'pad': 'VARCHAR'}, buffer_size = 65536)"
    )
    misplaced = con.execute(
        "SELECT count(*) FROM t WHERE n::BIGINT <> rowid - (SELECT min(rowid) FROM t)"
    ).fetchone()
    assert misplaced == (0,)


@pytest.mark.parametrize("spans", [True, False], ids=["multi-line-records", "one-line-records"])
def test_quarantine_lines_are_exact_across_a_large_file(
    tmp_path: Path, wh: Warehouse, spans: bool
) -> None:
    lines, expected, line = ["experiment_id,unit_type,unit_id,variant"], [], 2
    for i in range(150_000):
        variant = '"A\nB"' if spans and i % 997 == 0 else "A"
        if i % 101 == 0:
            expected.append((line, f"U{i}"))
        lines.append(f"X1,store,U{i},{variant}")
        line += 1 + variant.count("\n")
    rows = csv_rows(tmp_path / "units.csv", "\n".join(lines) + "\n", may_span_lines=spans)
    mapping = TableMapping(
        table="experiment_units",
        columns=tuple(ColumnSpec(h, h) for h in rows.headers),
        rules=(RowRule("test", "unit_id", "substr(unit_id, 2)::INT % 101 = 0"),),
    )
    wh.raw.execute("SET threads = 4")
    result = load(wh, rows, mapping)
    assert result.rows_quarantined == len(expected) and result.balanced
    got = wh.raw.execute(
        "SELECT line_no, original_value FROM quarantine ORDER BY line_no"
    ).fetchall()
    assert got == expected


MEMBERS = TableMapping(
    table="customers",
    columns=(
        ColumnSpec("customer_id", "card"),
        ColumnSpec("member_tier", "tier"),
        ColumnSpec("signup_date", "signup", required=True),
        ColumnSpec("updated_at", "updated"),
    ),
    updated_column="updated_at",
)


def test_duplicates_merge_to_the_newest_else_the_last_row(tmp_path: Path, wh: Warehouse) -> None:
    rows = csv_rows(
        tmp_path / "m.csv",
        "card,tier,signup,updated\n"
        "M1,普通,2019-01-01,2021-06-01\n"
        "M1,白金,2019-01-01,2021-01-01\n"  # older: loses although later in the file
        "M2,普通,2019-01-01,\n"
        "M2,黄金,2019-01-01,\n"  # no update time: the last in the file wins
        "M3,普通,#N/A,2021-01-01\n"
        "M3,普通,#N/A,2021-01-01\n",  # an exact duplicate of a bad row: merged, then rejected once
    )
    result = load(wh, rows, MEMBERS)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.rows_merged) == (
        6, 2, 1, 3,
    )  # fmt: skip
    got = wh.raw.execute("SELECT customer_id, member_tier FROM customers ORDER BY 1").fetchall()
    assert got == [("M1", "普通"), ("M2", "黄金")]
    assert wh.raw.execute("SELECT line_no, rule FROM quarantine").fetchall() == [
        (7, "bad_timestamp")
    ]


def test_a_later_load_replaces_rows_by_key(tmp_path: Path, wh: Warehouse) -> None:
    first = csv_rows(
        tmp_path / "a.csv", "card,tier,signup,updated\nM1,普通,2019-01-01,\nM2,普通,2019-01-01,\n"
    )
    load(wh, first, MEMBERS, "L1")
    second = csv_rows(
        tmp_path / "b.csv", "card,tier,signup,updated\nM2,白金,2019-01-01,\nM3,普通,2020-01-01,\n"
    )
    assert load(wh, second, MEMBERS, "L2").rows_loaded == 2
    got = wh.raw.execute("SELECT customer_id, member_tier, load_id FROM customers ORDER BY 1")
    assert got.fetchall() == [("M1", "普通", "L1"), ("M2", "白金", "L2"), ("M3", "普通", "L2")]


def test_unpivoting_a_csv_keeps_line_numbers(tmp_path: Path, wh: Warehouse) -> None:
    text = 'id,环境,价格,note\nR1,5,4,"two\nlines"\nR2,,3,\n,4,4,\nR4,x,5,\n'
    rows = csv_rows(tmp_path / "s.csv", text)
    mapping = TableMapping(
        table="survey_scores",
        columns=(
            ColumnSpec("response_id", "id"),
            ColumnSpec("dimension", "d"),
            ColumnSpec("score", "v"),
        ),
        unpivot=Unpivot(("环境", "价格"), name="d", value="v"),
    )
    result = load(wh, rows, mapping)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (7, 5, 2)
    assert result.cleared_by_rule == {"bad_number": 1}
    got = wh.raw.execute("SELECT line_no, rule, action FROM quarantine ORDER BY 1, 2").fetchall()
    assert got == [(5, "missing_required", "rejected")] * 2 + [(6, "bad_number", "cleared")]


def test_the_salt_is_made_once_per_warehouse(wh: Warehouse) -> None:
    with wh.transaction() as con:
        first = anon_salt(con)
    with wh.transaction() as con:
        assert anon_salt(con) == first and len(first) == 32


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"columns": (ColumnSpec("nope", "card"),)}, "has no column 'nope'"),
        ({"columns": (ColumnSpec("member_tier", "tier"),)}, r"required columns \['customer_id'\]"),
        ({"updated_column": "birth_date"}, "updated_column birth_date is not mapped"),
        (
            {"columns": (*MEMBERS.columns, ColumnSpec("phone", "p", kind="period_start"))},
            "kind period_start gives a date",
        ),
        ({"columns": (*MEMBERS.columns, ColumnSpec("phone"))}, "give a source column or a value"),
        (
            {"rules": (RowRule("r", "customer_id", "true", "cleared"),)},
            "would clear required customer_id",
        ),
    ],
)
def test_mappings_are_checked_against_the_schema(changes: dict[str, Any], message: str) -> None:
    fields = {"table": "customers", "columns": MEMBERS.columns, "updated_column": "updated_at"}
    with pytest.raises(ConfigError, match=message):
        TableMapping(**(fields | changes))


def test_a_mapping_naming_a_missing_header_is_refused(tmp_path: Path, wh: Warehouse) -> None:
    rows = csv_rows(tmp_path / "m.csv", "card,tier\nM1,普通\n")
    with pytest.raises(ConfigError, match=r"m\.csv: mapping uses columns \['signup', 'updated'\]"):
        load(wh, rows, MEMBERS)
