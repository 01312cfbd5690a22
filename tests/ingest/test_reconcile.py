"""Reconciliation: a sample of each source re-read in Python and checked against the warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from crmlens.errors import ConfigError
from crmlens.ingest import DEMO_SOURCES, LoadReport, load_demo_export
from crmlens.ingest.reconcile import normalise, reconcile
from crmlens.warehouse import Warehouse

from .conftest import make_export


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Warehouse, LoadReport, Path]]:
    root = tmp_path_factory.mktemp("reconcile")
    export = make_export(root / "export")
    with Warehouse(root / "w.duckdb") as wh:
        yield wh, load_demo_export(wh, export), export


def _spec(path: str, table: str | None = None):
    return next(s for s in DEMO_SOURCES if s.path == path and table in (None, s.table))


def test_a_full_sample_accounts_for_every_row_as_the_load_did(loaded) -> None:
    wh, report, export = loaded
    result = reconcile(wh, export, fraction=1.0)
    assert result.ok and result.load_id == report.load_id
    for got in result.sources:
        # the independent re-read reaches exactly the loader's accounting, source by source
        src = report.source(got.source, got.table)
        assert got.accounted and got.sampled == got.rows_in_file == src.rows_read, got.source
        assert (got.matched, got.quarantined, got.merged) == (
            src.rows_loaded, src.rows_quarantined, src.rows_merged,
        ), got.source  # fmt: skip


def test_the_sample_is_ten_percent_and_deterministic(loaded) -> None:
    wh, _, export = loaded
    members = _spec("crm/members.csv")
    a = reconcile(wh, export, members, seed=1).sources[0]
    assert (a.rows_in_file, a.sampled) == (9, 1)  # ceil(10 % of 9)
    runs = [reconcile(wh, export, DEMO_SOURCES, seed=1, fraction=0.5) for _ in range(2)]
    counts = [[(s.sampled, s.matched, s.quarantined, s.merged) for s in r.sources] for r in runs]
    assert counts[0] == counts[1]
    with pytest.raises(ConfigError, match="fraction"):
        reconcile(wh, export, members, fraction=0)


def test_a_changed_value_and_a_lost_row_are_found(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    with Warehouse(tmp_path / "w.duckdb") as wh:
        load_demo_export(wh, export)
        wh.raw.execute("UPDATE customers SET city = '上海' WHERE customer_id = 'M0000001'")
        wh.raw.execute("UPDATE orders SET amount = 50.01 WHERE order_id = 'O0002'")
        wh.raw.execute("DELETE FROM stores WHERE store_id = 'S02'")
        result = reconcile(wh, export, fraction=1.0)
        assert not result.ok
        bad = {s.source: s for s in result.sources if not s.ok}
        assert set(bad) == {"crm/members.csv", "shop/orders.csv", "crm/stores.csv"}
        members = bad["crm/members.csv"]
        assert members.mismatched == 1 and members.accounted
        # M0000001 is on lines 2 and 6; line 6 won the merge and is the row compared
        assert members.examples == [
            {"line": 6, "key": "M0000001", "outcome": "mismatched", "column": "city",
             "expected": "烟台", "found": "上海"},
        ]  # fmt: skip
        (example,) = bad["shop/orders.csv"].examples
        assert (example["column"], example["expected"], example["found"]) == (
            "amount", "50.0", "50.01",
        )  # fmt: skip
        stores = bad["crm/stores.csv"]
        assert stores.missing == 1 and stores.examples[0]["outcome"] == "missing"
        assert stores.examples[0]["key"] == "S02"


def test_a_row_of_the_file_that_was_rejected_is_quarantined_not_missing(loaded) -> None:
    wh, _, export = loaded
    orders = reconcile(wh, export, _spec("shop/orders.csv"), fraction=1.0).sources[0]
    assert (orders.quarantined, orders.merged, orders.missing) == (3, 1, 0)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("timestamp", "2021/3/5 14:23", datetime(2021, 3, 5, 14, 23)),
        ("timestamp", "20210310", datetime(2021, 3, 10)),
        ("timestamp", "2021-03-05T14:23:11", datetime(2021, 3, 5, 14, 23, 11)),
        ("timestamp", "#N/A", None),
        ("date", "2019年3月5日", date(2019, 3, 5)),
        ("date", "1975-13-40", None),
        ("int", "7", 7),
        ("int", "7.0", 7),
        ("int", "7.5", None),
        ("money", "1,234.50", 1234.5),
        ("money", "-30.00", -30.0),
        ("bool", "否", False),
        ("bool", "maybe", None),
        ("phone", "0086 138 0000 0002", "13800000002"),
        ("phone", "138000000", None),
        ("email", " Li.Juan@Example.COM ", "li.juan@example.com"),
        ("email", "li.juan.example.com", None),
        ("string", "  ", None),
        ("period_start", "2021-q4", date(2021, 10, 1)),
        ("period_end", "2021-Q4", date(2021, 12, 31)),
        ("period_end", "2021-02", date(2021, 2, 28)),
        ("period_end", "2021-13", None),
    ],
)
def test_the_value_rules_restated_in_python(kind: str, text: str, expected: object) -> None:
    assert normalise(kind, text) == expected


def test_a_blank_line_before_rejected_rows_changes_nothing(tmp_path: Path) -> None:
    """The loader and the re-read both number physical lines, blank ones included."""
    export = make_export(tmp_path / "export")
    orders = export / "shop/orders.csv"
    lines = orders.read_text(encoding="utf-8").splitlines(keepends=True)
    orders.write_text("".join([*lines[:2], "\n", *lines[2:]]), encoding="utf-8")
    with Warehouse(tmp_path / "w.duckdb") as wh:
        load_demo_export(wh, export)
        got = wh.raw.execute(
            "SELECT line_no FROM quarantine WHERE rule = 'negative_amount_not_refund'"
        ).fetchall()
        assert got == [(7,)]  # O0005, on line 6 before the blank line
        result = reconcile(wh, export, _spec("shop/orders.csv"), fraction=1.0)
        assert result.ok and result.sources[0].quarantined == 3
