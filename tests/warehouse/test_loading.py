"""The loading SQL: value parsing, line numbers in big multi-threaded reads, duplicates, mapping checks."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from crmlens.errors import ConfigError
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading import (
    ColumnSpec,
    Reference,
    RowRule,
    SourceResult,
    SourceRows,
    TableMapping,
    Unpivot,
    anon_salt,
    load_source,
    parse_sql,
    run,
)
from crmlens.warehouse.loading.plan import CheckPlan
from crmlens.warehouse.loading.values import READ_TYPES, read_value_sql

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
        ("float", "NaN", None),  # would make every sum NaN
        ("money", "inf", None),
        ("money", "-Infinity", None),
        ("timestamp", "infinity", None),
        ("date", "-infinity", None),
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


def test_duckdb_keeps_file_order_in_a_check_file_of_a_parallel_read(tmp_path: Path) -> None:
    """The assumption line numbers rest on: many small buffers read by several threads and
    written to Parquet come back with ``file_row_number`` = position in the file."""
    path = tmp_path / "big.csv"
    path.write_text("n,pad\n" + "".join(f"{i},{'x' * (i % 50)}\n" for i in range(400_000)))
    con = duckdb.connect()
    con.execute("SET threads = 4")
    check = tmp_path / "check.parquet"
    con.execute(
        f"COPY (SELECT * FROM read_csv('{path}', header = true, auto_detect = false, "
        "columns = {'n': 'VARCHAR', 'pad': 'VARCHAR'}, buffer_size = 65536)) "
        f"TO '{check}' (FORMAT parquet, ROW_GROUP_SIZE 10000)"
    )
    misplaced = con.execute(
        f"SELECT count(*) FROM read_parquet('{check}', file_row_number = true) "
        "WHERE n::BIGINT <> file_row_number"
    ).fetchone()
    assert misplaced == (0,)


def settings(wh: Warehouse) -> tuple[Any, ...]:
    """The connection settings a load changes while it runs, and the databases attached."""
    row = wh.raw.execute(
        "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order'), "
        "(SELECT list(database_name ORDER BY database_name) FROM duckdb_databases())"
    ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("fails", [False, True], ids=["loaded", "failed"])
def test_a_load_leaves_the_connection_as_it_found_it(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """Its memory cap and insertion order are undone, nothing is left attached and its check
    files are deleted."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    wh.raw.execute("SET preserve_insertion_order = false")
    before = settings(wh)
    text = "card,tier,signup,updated\nM1,普通,2019-01-01,\n" + ('M2,"x\n' if fails else "")
    rows = csv_rows(tmp_path / "m.csv", text)
    if fails:
        with pytest.raises(duckdb.Error):
            load(wh, rows, MEMBERS)
    else:
        assert load(wh, rows, MEMBERS).rows_loaded == 1
    assert settings(wh) == before
    assert not list(temp.iterdir())


def test_loads_under_a_tight_memory_cap_stay_exact(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB keeps what a transaction wrote until it ends; under the cap it spills to disk, and
    the loads' results stay exact. (Arrow sources: the CSV reader alone needs more than this.)"""
    monkeypatch.setattr(run, "LOAD_MEMORY_LIMIT_MIB", 32)
    n, parts = 100_000, 3
    wh.raw.execute(
        f"INSERT INTO leads (lead_id) SELECT printf('L%07d', i) FROM range({n * parts}) t(i) "
        "WHERE i % 1000 <> 0"  # 100 unknown leads per part
    )
    with wh.transaction() as con:
        results = []
        for part in range(parts):
            ids = range(part * n, (part + 1) * n)
            arrow = pa.table(
                {
                    "lead_id": [f"L{i:07d}" for i in ids],
                    "stage": ["won"] * n,
                    "entered_at": ["2021-03-01 10:00:00"] * n,
                    "__line": [i + 2 for i in ids],
                }
            )
            rows = SourceRows(f"h{part}.xlsx", ("lead_id", "stage", "entered_at"), arrow=arrow)
            results.append(load_source(con, rows, HISTORY, load_id="L", loaded_at=NOW, salt="s"))
        spilled = con.execute("SELECT count(*) FROM duckdb_temporary_files()").fetchone()
    assert spilled is not None and spilled[0] > 0
    assert [(r.rows_loaded, r.rows_quarantined) for r in results] == [(n - 100, 100)] * parts
    got = wh.raw.execute(
        "SELECT count(*) FILTER (line_no <> substr(original_value, 2)::INT + 2), count(*) "
        "FROM quarantine"
    ).fetchone()
    assert got == (0, 100 * parts)


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
    assert _units_quarantined_in_parallel(wh, rows) == expected


def _units_quarantined_in_parallel(wh: Warehouse, rows: SourceRows) -> list[tuple[int, str]]:
    """Load experiment units with every 101st unit flagged, read by 4 threads; the quarantine's
    (line_no, original_value) in line order, after checking the accounting."""
    mapping = TableMapping(
        table="experiment_units",
        columns=tuple(ColumnSpec(h, h) for h in rows.headers),
        rules=(RowRule("test", "unit_id", "substr(unit_id, 2)::INT % 101 = 0"),),
    )
    wh.raw.execute("SET threads = 4")
    result = load(wh, rows, mapping)
    assert result.balanced
    got = wh.raw.execute("SELECT line_no, original_value FROM quarantine ORDER BY line_no")
    return got.fetchall()


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


SCORES = TableMapping(
    table="survey_scores",
    columns=(
        ColumnSpec("response_id", "id"),
        ColumnSpec("dimension", "d"),
        ColumnSpec("score", "v"),
    ),
    unpivot=Unpivot(("环境", "价格"), name="d", value="v"),
)


@pytest.mark.parametrize(
    ("text", "counts", "by_rule", "records"),
    [
        (
            'id,环境,价格,note\nR1,5,4,"two\nlines"\nR2,,3,\n,4,4,\nR4,x,5,\n',
            (7, 5, 2),
            {"missing_required": 2, "bad_number": 1},
            [(5, "missing_required", "rejected")] * 2 + [(6, "bad_number", "cleared")],
        ),
        (
            'id,环境,价格,note\nR1,5,4,"two\nlines"\nR9,1\nR2,,3,\n,4,4,\nR4,x,5,\n',
            (8, 5, 3),
            {"malformed_line": 1, "missing_required": 2, "bad_number": 1},
            [
                (4, "malformed_line", "rejected"),
                *[(6, "missing_required", "rejected")] * 2,
                (7, "bad_number", "cleared"),
            ],
        ),
        (
            'id,环境,价格,note\n\nR1,5,4,"two\n\nlines"\n\nR9,1\nR2,,3,\n\n\n,4,4,\nR4,x,5,\n\n',
            (8, 5, 3),
            {"malformed_line": 1, "missing_required": 2, "bad_number": 1},
            [
                (7, "malformed_line", "rejected"),
                *[(11, "missing_required", "rejected")] * 2,
                (12, "bad_number", "cleared"),
            ],
        ),
    ],
    ids=["plain", "ragged-line", "blank-lines"],
)
def test_unpivoting_a_csv_keeps_line_numbers(
    tmp_path: Path,
    wh: Warehouse,
    text: str,
    counts: tuple[int, int, int],
    by_rule: dict[str, int],
    records: list[tuple[int, str, str]],
) -> None:
    result = load(wh, csv_rows(tmp_path / "s.csv", text), SCORES)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == counts
    assert result.rejected_by_rule | result.cleared_by_rule == by_rule
    got = wh.raw.execute("SELECT line_no, rule, action FROM quarantine ORDER BY 1, 2").fetchall()
    assert got == records


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


# -- typed reads: the CSV reader parses plain values itself, with the same result as the text parse
READER_CASES = {
    "TIMESTAMP": [
        "2019-03-05 10:21:00", "2019-03-05", " 2019-03-05 10:21:00 ", "2019-03-05T10:21:00",
        "2019-03-05 10:21", "2019-3-5", "2019-03-05 10:21:00.123456", "2019-03-05 10:21:00+08",
        "2019/03/05", "20190305", "2019-02-29", "2019-03-05 24:00:00", "infinity", "epoch",
        "2019-03-05 10:21:00 AM", "2019-03-05\t", "2019年3月5日",
    ],
    "DOUBLE": [
        "1.5", "-30.00", " 12.5 ", "1e3", "nan", "inf", "+5", ".5", "5.", "1_000", "1,234.50",
        "0x10", "1e400", "-0", "00012", "1d", "12 5", "  ", "e5",
    ],
    "BOOLEAN": ["true", "FALSE", "t", "F", "yes", "No", "y", "N", "1", "0", "on", " true", "是"],
}  # fmt: skip


@pytest.mark.parametrize("read_type", sorted(READER_CASES))
def test_the_csv_reader_takes_a_subset_of_the_text_parse_with_the_same_values(
    tmp_path: Path, read_type: str
) -> None:
    """What typed reads rest on: every value the reader casts, parse_sql parses to the same
    (after read_value_sql, which empties NaN and infinities as parse_sql does)."""
    values = READER_CASES[read_type]
    path = tmp_path / "v.csv"
    path.write_text("v\n" + "".join(f'"{v}"\n' for v in values), encoding="utf-8")
    kind = {kind for kind, t in READ_TYPES.items() if t == read_type and kind != "date"}.pop()
    con = duckdb.connect()
    typed = con.execute(
        f"SELECT {read_value_sql(kind, 'v')} FROM read_csv('{path}', header = true, auto_detect = false, "
        f"columns = {{'v': '{read_type}'}}, store_rejects = true)"
    ).fetchall()
    rejected = {line for (line,) in con.execute("SELECT line FROM reject_errors").fetchall()}
    accepted = [v for line, v in enumerate(values, start=2) if line not in rejected]
    assert accepted and len(accepted) < len(values)  # the cases cover both outcomes
    for value, (got,) in zip(accepted, typed, strict=True):
        assert got == parsed(kind, value) or (got != got and parsed(kind, value) != parsed(kind, value)), value  # fmt: skip


HISTORY = TableMapping(
    table="lead_stage_history",
    columns=tuple(ColumnSpec(h, h) for h in ("lead_id", "stage", "entered_at")),
    references=(Reference("lead_id", "leads", "lead_id", "unknown_lead"),),
)


def history_rows(tmp_path: Path, n: int, odd: dict[int, str] | None = None) -> SourceRows:
    """``n`` stage changes of leads L0…, a two-line stage every 97th; ``odd`` replaces rows."""
    lines = ["lead_id,stage,entered_at"]
    for i in range(n):
        stage = '"won\nlate"' if i % 97 == 5 else "won"
        lines.append((odd or {}).get(i, f"L{i},{stage},2021-03-{1 + i % 28:02d} 10:00:00"))
    return csv_rows(tmp_path / "h.csv", "\n".join(lines) + "\n")


def source_lines(rows: SourceRows) -> list[str]:
    """The physical lines of a CSV source, line 1 first."""
    assert rows.csv_path is not None
    return rows.csv_path.read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize("bad_value", [False, True], ids=["typed-read", "bad-value-after-sample"])
def test_typed_reads_keep_line_numbers_and_values(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, bad_value: bool
) -> None:
    """Clean rows load from a typed read; a value it rejects makes it read the file as text."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", 3)
    wh.raw.execute("INSERT INTO leads (lead_id) SELECT 'L' || i FROM range(0, 300, 2) t(i)")
    rows = history_rows(tmp_path, 300, {250: "L250,won,#N/A"} if bad_value else None)
    with wh.transaction() as con:
        plan = CheckPlan(rows, HISTORY, "s4lt")
        assert run.read_types_for(con, plan) == {"entered_at": "TIMESTAMP"}
    result = load(wh, rows, HISTORY)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (300, 150, 150)
    assert result.rejected_by_rule == {"unknown_lead": 150}  # the odd leads
    assert result.cleared_by_rule == ({"bad_timestamp": 1} if bad_value else {})
    lines = source_lines(rows)
    records = wh.raw.execute("SELECT line_no, original_value FROM quarantine").fetchall()
    assert all(original in lines[line_no - 1].split(",") for line_no, original in records)
    got = wh.raw.execute("SELECT entered_at FROM lead_stage_history WHERE lead_id = 'L250'")
    assert got.fetchall() == [(None if bad_value else datetime(2021, 3, 27, 10),)]


def test_a_row_needing_its_text_after_the_sample_is_read_again_as_text(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine keeps the value as written ('-30.00', not the typed -30.0)."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", 3)
    text = "id,amount,at\n" + "".join(f"R{i},{i}.50,2021-01-01\n" for i in range(10))
    rows = csv_rows(tmp_path / "o.csv", text.replace("R7,7.50", "R7,-30.00"))
    mapping = TableMapping(
        table="orders",
        columns=(
            ColumnSpec("order_id", "id"),
            ColumnSpec("amount", "amount"),
            ColumnSpec("order_time", "at"),
        ),
        rules=(RowRule("negative", "amount", "amount < 0"),),
    )
    with wh.transaction() as con:
        assert run.read_types_for(con, CheckPlan(rows, mapping, "s4lt")) == {
            "amount": "DOUBLE", "at": "TIMESTAMP",
        }  # fmt: skip
    result = load(wh, rows, mapping)
    assert (result.rows_loaded, result.rejected_by_rule) == (9, {"negative": 1})
    row = wh.raw.execute("SELECT line_no, original_value, row_json FROM quarantine").fetchone()
    assert row is not None and row[:2] == (9, "-30.00")
    assert json.loads(row[2]) == {"id": "R7", "amount": "-30.00", "at": "2021-01-01"}


@pytest.mark.parametrize("written", ["NaN", "inf", "-Infinity"])
def test_non_finite_numbers_are_bad_values_in_typed_reads_too(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    """The CSV reader takes NaN and infinities as numbers; a NaN amount would make every revenue
    sum NaN. Past the sample, on a typed read: the row is quarantined with the text as written."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", 3)
    text = "id,amount,gross,at\n" + "".join(f"R{i},{i}.50,{i}.50,2021-01-01\n" for i in range(10))
    text = text.replace("R7,7.50,7.50", f"R7,{written},{written}")
    rows = csv_rows(tmp_path / "o.csv", text)
    mapping = TableMapping(
        table="orders",
        columns=(
            ColumnSpec("order_id", "id"),
            ColumnSpec("amount", "amount"),
            ColumnSpec("gross_amount", "gross"),
            ColumnSpec("order_time", "at"),
        ),
    )
    with wh.transaction() as con:
        assert run.read_types_for(con, CheckPlan(rows, mapping, "s4lt"))["amount"] == "DOUBLE"
    result = load(wh, rows, mapping)
    assert (result.rows_read, result.rows_loaded) == (10, 9)
    assert result.rejected_by_rule == {"bad_number": 1}  # amount is required
    got = wh.raw.execute(
        "SELECT line_no, column_name, original_value FROM quarantine ORDER BY column_name"
    ).fetchall()
    assert got == [(9, "amount", written)]
    total = wh.raw.execute("SELECT sum(amount), sum(gross_amount) FROM orders").fetchone()
    assert total == (sum(i + 0.5 for i in range(10) if i != 7),) * 2


@pytest.mark.parametrize(
    ("keys", "merged"),
    [
        (["K1", "K2", "K3", "K4", "K2", "K5"], 1),  # sorted but for one duplicate far behind
        (["K5", "K4", "K3", "K2", "K1"], 0),  # not sorted, all distinct
        (["K1", "K2", "K3"], 0),
    ],
)
def test_duplicates_are_found_in_any_order(
    tmp_path: Path, wh: Warehouse, keys: list[str], merged: int
) -> None:
    text = "card,tier,signup,updated\n" + "".join(f"{k},普通,2019-01-01,\n" for k in keys)
    result = load(wh, csv_rows(tmp_path / "m.csv", text), MEMBERS)
    assert (result.rows_loaded, result.rows_merged) == (len(set(keys)), merged)


def test_a_rule_that_would_make_duckdb_join_is_refused(tmp_path: Path, wh: Warehouse) -> None:
    """A join in the scan may reorder the rows, and their order gives the line numbers."""
    rows = csv_rows(tmp_path / "m.csv", "card,tier,signup,updated\nM1,普通,2019-01-01,\n")
    tiers = "('a', 'b', 'c', 'd', 'e', 'f')"
    rule = RowRule("odd_tier", "member_tier", f"member_tier IN {tiers}")
    with pytest.raises(ConfigError, match="list_contains"):
        load(wh, rows, replace(MEMBERS, rules=(rule,)))
    rule = RowRule("odd_tier", "member_tier", f"list_contains([{tiers[1:-1]}], member_tier)")
    assert load(wh, rows, replace(MEMBERS, rules=(rule,))).rows_loaded == 1


LINES = TableMapping(
    table="order_lines",
    columns=(
        ColumnSpec("order_id", "order"),
        ColumnSpec("line_no", "line"),
        ColumnSpec("sku", "sku"),
    ),
)


@pytest.mark.parametrize(
    ("keys", "merged"),
    [
        ([("O1", 1), ("O1", 2), ("O2", 1), ("O2", 3)], 0),  # sorted by order, then line
        ([("O1", 2), ("O1", 1), ("O2", 1)], 0),  # lines out of order, all distinct
        ([("O1", 1), ("O2", 1), ("O1", 1)], 1),  # a duplicate behind a greater order
        ([("O1", 1), ("O1", 1), ("O2", 5)], 1),  # equal neighbours
    ],
)
def test_duplicates_of_a_composite_key_are_found_in_any_order(
    tmp_path: Path, wh: Warehouse, keys: list[tuple[str, int]], merged: int
) -> None:
    text = "order,line,sku\n" + "".join(f"{o},{n},S1\n" for o, n in keys)
    result = load(wh, csv_rows(tmp_path / "l.csv", text), LINES)
    assert (result.rows_loaded, result.rows_merged) == (len(set(keys)), merged)


@pytest.mark.parametrize(
    ("second", "replaced"),
    [
        (["M7", "M8"], set()),  # new keys after the loaded ones
        (["M0", "M1"], set()),  # before them
        (["M4"], set()),  # inside their range, yet new
        (["M3", "M9"], {"M3"}),  # one key loaded again
        (["M5", "M2"], {"M5", "M2"}),
    ],
)
def test_a_second_source_into_a_table_replaces_exactly_the_keys_it_shares(
    tmp_path: Path, wh: Warehouse, second: list[str], replaced: set[str]
) -> None:
    header = "card,tier,signup,updated\n"
    first = csv_rows(tmp_path / "a.csv", header + "M2,普通,2019-01-01,\nM3,普通,2019-01-01,\n"
                     "M5,普通,2019-01-01,\nM6,普通,2019-01-01,\n")  # fmt: skip
    other = csv_rows(
        tmp_path / "b.csv", header + "".join(f"{k},白金,2019-01-01,\n" for k in second)
    )
    with wh.transaction() as con:  # two sources of one load, as app_events has
        for rows in (first, other):
            load_source(con, rows, MEMBERS, load_id="L1", loaded_at=NOW, salt="s4lt")
    got = dict(wh.raw.execute("SELECT customer_id, member_tier FROM customers").fetchall())
    assert set(got) == {"M2", "M3", "M5", "M6", *second}
    assert {k for k, tier in got.items() if tier == "白金"} == set(second)
    assert len(got) == 4 + len(second) - len(replaced)
    assert wh.raw.execute("SELECT count(*) FROM customers").fetchone() == (len(got),)


# -- ragged lines: more or fewer fields than the header ----------------------------------------
def quarantined(wh: Warehouse) -> list[tuple[Any, ...]]:
    return wh.raw.execute(
        "SELECT line_no, column_name, rule, action, original_value, row_json FROM quarantine "
        "ORDER BY line_no"
    ).fetchall()


@pytest.mark.parametrize(
    "ragged", ["L1,won,2021-03-02 10:00:00,late", "L1,won"], ids=["too-many", "too-few"]
)
def test_a_ragged_line_is_quarantined_and_the_rest_loads(
    tmp_path: Path, wh: Warehouse, ragged: str
) -> None:
    wh.raw.execute("INSERT INTO leads (lead_id) SELECT 'L' || i FROM range(4) t(i)")
    text = "lead_id,stage,entered_at\nL0,won,2021-03-01 10:00:00\n" + ragged + "\n"
    rows = csv_rows(tmp_path / "h.csv", text + "L2,won,2021-03-03 10:00:00\nL3,lost,x\n")
    result = load(wh, rows, HISTORY)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    assert result.rejected_by_rule == {"malformed_line": 1} and result.balanced
    assert result.cleared_by_rule == {"bad_timestamp": 1}
    assert quarantined(wh) == [
        (3, "lead_id", "malformed_line", "rejected", ragged, '{"line":"' + ragged + '"}'),
        (5, "entered_at", "bad_timestamp", "cleared", "x",
         json.dumps({"lead_id": "L3", "stage": "lost", "entered_at": "x"}, separators=(",", ":"))),
    ]  # fmt: skip
    got = wh.raw.execute("SELECT lead_id FROM lead_stage_history ORDER BY 1").fetchall()
    assert got == [("L0",), ("L2",), ("L3",)]


RAGGED = {
    6: "L6,won,2021-03-07 10:00:00,extra",  # right after the first two-line value (row 5)
    7: "L7",  # two ragged lines in a row
    8: 'L8,"won\nlate",2021-03-09 10:00:00,x,y',  # a ragged record spanning two lines
    150: "L150,won,2021-03-01 10:00:00,x",
    299: "L299,won",  # the last line
}


@pytest.mark.parametrize(
    ("sample", "odd"),
    [
        (3, {}),  # a typed read: the ragged lines lie beyond its sample
        (3, {250: "L250,won,#N/A"}),  # a typed read rejects a value: read again as text
        (20_000, {1: "L1,won,#N/A"}),  # the sample has an issue: read as text at once
    ],
    ids=["typed-read", "typed-then-text", "text-read"],
)
def test_lines_after_ragged_lines_keep_their_numbers(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, sample: int, odd: dict[int, str]
) -> None:
    """Every quarantine record names its physical line: the ragged records themselves, and the rows
    of unknown leads before and after them, across values spanning two lines."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", sample)
    wh.raw.execute("INSERT INTO leads (lead_id) SELECT 'L' || i FROM range(0, 300, 2) t(i)")
    rows = history_rows(tmp_path, 300, RAGGED | odd)
    result = load(wh, rows, HISTORY)
    unknown = {i for i in range(1, 300, 2) if i not in RAGGED}
    assert (result.rows_read, result.rows_quarantined) == (300, len(RAGGED) + len(unknown))
    assert result.rejected_by_rule == {"malformed_line": len(RAGGED), "unknown_lead": len(unknown)}
    assert result.rows_loaded == 300 - len(RAGGED) - len(unknown) and result.balanced
    lines = source_lines(rows)
    records = quarantined(wh)
    for line_no, _, rule, _, original, row_json in records:
        if rule == "malformed_line":  # the record as written, from its line on
            assert "\n".join(lines[line_no - 1 :]).startswith(original), (line_no, original)
            assert json.loads(row_json) == {"line": original}
        elif rule == "unknown_lead":  # a lead's ID is on its record's first line, and only there
            assert lines[line_no - 1].split(",")[0] == original, (line_no, original)
    ragged = [r[4] for r in records if r[2] == "malformed_line"]
    assert ragged == list(RAGGED.values())
    leads = {int(r[4][1:]) for r in records if r[2] == "unknown_lead"}
    assert leads == unknown


@pytest.mark.parametrize(
    ("bad", "found"),
    [
        (b"L5,w\xffn,2021-03-06 10:00:00", "INVALID ENCODING"),
        (b'L5,"w"n,2021-03-06 10:00:00', "UNQUOTED VALUE"),
        (b'L5,"w"n,2021-03-06 10:00:00,x', "UNQUOTED VALUE"),  # ragged, and a bad quote too
        (b"L5,w\xffn,2021-03-06 10:00:00,x", "INVALID ENCODING"),  # ragged, and a bad byte too
    ],
    ids=["bad-byte", "bad-quote", "ragged-bad-quote", "ragged-bad-byte"],
)
def test_other_read_errors_still_fail_the_load(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, bad: bytes, found: str
) -> None:
    """A ragged line before it or not, an error other than a column count is not quarantined: the
    load fails, naming the record's line, and writes nothing."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", 3)
    rows = history_rows(tmp_path, 9, {2: "L2,won,2021-03-03 10:00:00,x"})
    assert rows.csv_path is not None
    rows.csv_path.write_bytes(rows.csv_path.read_bytes() + bad + b"\nL6,won,2021-03-07 10:00:00\n")
    with pytest.raises(duckdb.InvalidInputException, match=rf"Line: 12: {found}"):
        load(wh, rows, HISTORY)
    assert wh.row_count("lead_stage_history") == 0 and wh.row_count("quarantine") == 0


# -- blank lines: skipped by the CSV reader, yet they take a line -------------------------------
BLANK = {
    0: "\nL0,won,2021-03-01 10:00:00",  # a blank line right after the header
    9: "\n\n\nL9,won,2021-03-10 10:00:00",  # three blank lines before an unknown lead
    15: "L15,won,2021-03-16 10:00:00\n",  # a blank line right after one
    20: 'L20,"won\n\nlate",2021-03-21 10:00:00',  # a blank line inside a value: part of it
    21: "\nL21,won,2021-03-22 10:00:00",  # and one right after that value
    299: "L299,won,2021-03-20 10:00:00\n\n",  # blank lines after the last row
}
READS = pytest.mark.parametrize(
    ("sample", "odd"),
    [
        (3, {}),  # a typed read: nothing rejected while reading, only references
        (3, {250: "L250,won,#N/A"}),  # a typed read rejects a value: read again as text
        (20_000, {2: "L2,won,#N/A"}),  # the sample has an issue: read as text at once
    ],
    ids=["typed-read", "typed-then-text", "text-read"],
)


def assert_lines_exact(wh: Warehouse, rows: SourceRows) -> list[tuple[Any, ...]]:
    """Every quarantine record names the physical line its value is written on."""
    lines = [line.removesuffix("\r") for line in source_lines(rows)]
    records = quarantined(wh)
    for line_no, _, rule, _, original, _ in records:
        if rule == "malformed_line":  # the record as written, from its line on
            assert "\n".join(lines[line_no - 1 :]).startswith(original), (line_no, original)
        elif rule == "unknown_lead":  # a lead's ID is on its record's first line, and only there
            assert lines[line_no - 1].split(",")[0] == original, (line_no, original)
        else:
            assert original in lines[line_no - 1].split(","), (line_no, rule, original)
    return records


@READS
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_lines_after_blank_lines_keep_their_numbers(
    tmp_path: Path,
    wh: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    sample: int,
    odd: dict[int, str],
    crlf: bool,
) -> None:
    """The reader skips blank lines (no row, nothing read or quarantined), but every quarantine
    record after one still names its physical line; a blank line inside a value stays in it."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", sample)
    wh.raw.execute("INSERT INTO leads (lead_id) SELECT 'L' || i FROM range(0, 300, 2) t(i)")
    rows = history_rows(tmp_path, 300, BLANK | odd)
    assert rows.csv_path is not None
    if crlf:  # every line end, the ones inside values too
        rows.csv_path.write_bytes(rows.csv_path.read_bytes().replace(b"\n", b"\r\n"))
    result = load(wh, rows, HISTORY)
    unknown = set(range(1, 300, 2))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (300, 150, 150)
    assert result.rejected_by_rule == {"unknown_lead": 150} and result.balanced
    records = assert_lines_exact(wh, rows)
    assert {int(r[4][1:]) for r in records if r[2] == "unknown_lead"} == unknown
    assert len(records) == 150 + (odd != {})  # and the bad value, cleared
    stage = wh.raw.execute("SELECT stage FROM lead_stage_history WHERE lead_id = 'L20'").fetchone()
    assert stage == ("won\r\n\r\nlate" if crlf else "won\n\nlate",)


@READS
def test_blank_and_ragged_lines_together_keep_line_numbers(
    tmp_path: Path, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, sample: int, odd: dict[int, str]
) -> None:
    """DuckDB numbers the ragged records it rejects counting the blank lines before them: their
    lines, and the rows after both, stay exact."""
    monkeypatch.setattr(run, "SAMPLE_ROWS", sample)
    wh.raw.execute("INSERT INTO leads (lead_id) SELECT 'L' || i FROM range(0, 300, 2) t(i)")
    both = {
        **BLANK,
        **RAGGED,
        7: "\nL7",  # a ragged line right after a blank line
        8: 'L8,"won\n\nlate",2021-03-09 10:00:00,x\n',  # ragged, a blank line inside and after
        151: "\n\nL151,won\n",  # ragged between blank lines
    }
    rows = history_rows(tmp_path, 300, both | odd)
    result = load(wh, rows, HISTORY)
    ragged = {6, 7, 8, 150, 151, 299}
    unknown = {i for i in range(1, 300, 2) if i not in ragged}
    assert (result.rows_read, result.rows_quarantined) == (300, len(ragged) + len(unknown))
    assert result.rejected_by_rule == {"malformed_line": len(ragged), "unknown_lead": len(unknown)}
    assert result.balanced
    records = assert_lines_exact(wh, rows)
    written = [r[4] for r in records if r[2] == "malformed_line"]
    assert written == [both[i].strip("\n") for i in sorted(ragged)]
    assert {int(r[4][1:]) for r in records if r[2] == "unknown_lead"} == unknown


def test_a_blank_line_inside_a_quoted_value_is_no_blank_line(tmp_path: Path, wh: Warehouse) -> None:
    wh.raw.execute("INSERT INTO leads (lead_id) VALUES ('L0'), ('L1')")
    text = (
        'lead_id,stage,entered_at\nL0,"won\n\n\nlate",2021-03-01 10:00:00\n'
        "L1,lost,x\n\nL2,won,2021-03-03 10:00:00\n"
    )
    rows = csv_rows(tmp_path / "h.csv", text)
    result = load(wh, rows, HISTORY)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    got = wh.raw.execute("SELECT line_no, rule, original_value FROM quarantine ORDER BY 1")
    assert got.fetchall() == [(6, "bad_timestamp", "x"), (8, "unknown_lead", "L2")]
    stage = wh.raw.execute("SELECT stage FROM lead_stage_history WHERE lead_id = 'L0'").fetchone()
    assert stage == ("won\n\n\nlate",)


def test_blank_lines_in_a_large_parallel_read_keep_line_numbers(
    tmp_path: Path, wh: Warehouse
) -> None:
    """DuckDB's line numbers of rejected records count blank lines in every thread's part."""
    lines, expected, line = ["experiment_id,unit_type,unit_id,variant"], [], 2
    for i in range(120_000):
        if i % 7_919 == 3:
            lines.append("")
            line += 1
        if i % 20_011 == 17:
            lines.append(f"X1,store,R{i}")  # ragged
            expected.append((line, f"X1,store,R{i}"))
            line += 1
        variant = '"A\n\nB"' if i % 997 == 0 else "A"
        if i % 101 == 0:
            expected.append((line, f"U{i}"))
        lines.append(f"X1,store,U{i},{variant}")
        line += 1 + variant.count("\n")
    rows = csv_rows(tmp_path / "units.csv", "\n".join(lines) + "\n")
    assert _units_quarantined_in_parallel(wh, rows) == expected
