"""The data-quality figures over the miniature demo export, checked against hand counts and SQL."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from crmlens.errors import ConfigError
from crmlens.ingest import DEMO_SOURCES, LoadReport, load_demo_export
from crmlens.metrics.quality import (
    HISTORY_COLUMNS,
    LOADS_COLUMNS,
    QUALITY_COLUMNS,
    SUMMARY_COLUMNS,
    duplicate_keys,
    load_history,
    loads,
    missing_by_column,
    quality_report,
    quarantine_records,
    quarantine_summary,
)
from crmlens.schema import data_tables
from crmlens.warehouse import Warehouse


def _fixture_module() -> ModuleType:
    """tests/ingest/conftest.py: the miniature export and its survey workbook."""
    path = Path(__file__).parents[1] / "ingest" / "conftest.py"
    spec = importlib.util.spec_from_file_location("crmlens_demo_export_fixture", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_export = _fixture_module().make_export
AS_OF = date(2022, 1, 1)


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, list[LoadReport]]]:
    """The fixture export loaded twice (the second load is the newest)."""
    root = tmp_path_factory.mktemp("quality")
    export = make_export(root / "export")
    with Warehouse(root / "w.duckdb") as wh:
        yield wh, [load_demo_export(wh, export), load_demo_export(wh, export)]


@pytest.fixture
def scratch(twice, tmp_path: Path) -> Iterator[tuple[Warehouse, list[LoadReport]]]:
    """A copy of the twice-loaded warehouse that a test may change (copying beats loading)."""
    wh, reports = twice
    wh.checkpoint()  # everything in the file, nothing in the write-ahead log
    shutil.copyfile(wh.path, tmp_path / "copy.duckdb")
    with Warehouse(tmp_path / "copy.duckdb") as copy:
        yield copy, reports


def test_one_row_per_data_table_with_the_stable_columns(twice) -> None:
    wh, _ = twice
    report = quality_report(wh, as_of=AS_OF)
    assert tuple(report.columns) == QUALITY_COLUMNS
    assert list(report["table"]) == [t.name for t in data_tables()]
    assert report.loc[report["table"] == "customers", "label_zh"].item() == "客户"
    for name, rows in zip(report["table"], report["rows"], strict=True):
        assert rows == wh.row_count(name), name


def test_counts_match_the_planted_dirt_of_the_latest_load(twice) -> None:
    wh, (_, second) = twice
    r = quality_report(wh, as_of=AS_OF).set_index("table")
    # customers: 5 values cleared (phone, e-mail, date, time, bool), 1 row rejected
    assert r.loc["customers", "invalid_values"] == 5
    assert r.loc["customers", "quarantined_last_load"] == 1
    assert r.loc["orders", "quarantined_last_load"] == 3
    assert r.loc["order_lines", "invalid_values"] == 2  # quantities inferred
    assert r.loc["service_tickets", "invalid_values"] == 4
    # all time: the same bad lines were quarantined by both loads
    assert r.loc["orders", "quarantined_total"] == 6
    assert r.loc["orders", "loads"] == 2 and r.loc["orders", "last_load_id"] == second.load_id
    assert list(r.loc["orders", "trend_rows_read"]) == [9, 9]
    assert list(r.loc["orders", "trend_quarantined_pct"]) == [33.33, 33.33]
    assert (r["duplicate_keys"] == 0).all() and (r["key_missing_pct"] == 0).all()


def test_missing_percentages_equal_a_direct_count(twice) -> None:
    wh, _ = twice
    frame = (
        wh.raw.execute("SELECT * FROM customers").fetchdf().drop(columns=["load_id", "loaded_at"])
    )
    expected = round(100 * frame.isna().to_numpy().sum() / frame.size, 2)
    r = quality_report(wh, as_of=AS_OF).set_index("table")
    assert r.loc["customers", "missing_pct"] == expected > 0
    by_column = missing_by_column(wh, "customers").set_index("column")
    assert by_column.loc["phone", "missing"] == frame["phone"].isna().sum()
    assert bool(by_column.loc["customer_id", "required"]) and "loaded_at" not in by_column.index


def test_freshness_is_the_latest_business_time(twice) -> None:
    wh, _ = twice
    r = quality_report(wh, as_of=AS_OF).set_index("table")
    latest = wh.raw.execute("SELECT max(order_time) FROM orders").fetchone()[0]
    assert r.loc["orders", "latest_time"] == pd.Timestamp(latest)
    assert r.loc["orders", "days_since_latest"] == (AS_OF - latest.date()).days
    assert pd.isna(r.loc["order_lines", "time_column"])  # no time column: no freshness
    assert pd.isna(r.loc["order_lines", "days_since_latest"])


def test_duplicate_keys_are_counted(scratch) -> None:
    wh, _ = scratch
    # the loader never writes a key twice: plant one as a faulty writer would
    wh.raw.execute("INSERT INTO stores SELECT * FROM stores WHERE store_id = 'S01'")
    wh.raw.execute("INSERT INTO order_lines SELECT * FROM order_lines LIMIT 2")
    r = quality_report(wh, as_of=AS_OF).set_index("table")
    assert r.loc["stores", "duplicate_keys"] == 1
    assert r.loc["order_lines", "duplicate_keys"] == 2  # a two-column key
    assert r.loc["customers", "duplicate_keys"] == 0
    # without the distinct counts: the same report, duplicate keys left NULL
    quick = quality_report(wh, as_of=AS_OF, duplicates=False).set_index("table")
    assert quick["duplicate_keys"].isna().all()
    others = [c for c in r.columns if c != "duplicate_keys"]
    pd.testing.assert_frame_equal(quick[others], r[others])
    alone = duplicate_keys(wh).set_index("table")["duplicate_keys"]  # the column on its own
    assert alone.to_dict() == r["duplicate_keys"].to_dict()


def test_load_history_checks_the_accounting_identity(scratch) -> None:
    wh, (first, second) = scratch
    history = load_history(wh)
    assert tuple(history.columns) == HISTORY_COLUMNS
    assert list(history["load_id"].drop_duplicates()) == [second.load_id, first.load_id]
    demo_tables = len({s.table for s in DEMO_SOURCES})  # the tables the demo export loads
    assert history["balanced"].all() and len(history) == 2 * demo_tables
    assert list(load_history(wh, limit=1)["load_id"].unique()) == [second.load_id]
    per_load = loads(wh)
    assert tuple(per_load.columns) == LOADS_COLUMNS
    totals = second.totals()
    row = per_load.iloc[0]
    assert row["load_id"] == second.load_id and row["tables"] == demo_tables
    assert [row[c] for c in ("rows_read", "rows_loaded", "rows_quarantined", "rows_merged")] == [
        totals["rows_read"], totals["rows_loaded"], totals["rows_quarantined"],
        totals["rows_merged"],
    ]  # fmt: skip
    # a log row that does not add up is flagged, on its table and on its load
    wh.raw.execute(
        "UPDATE load_log SET rows_loaded = rows_loaded + 1 "
        "WHERE load_id = ? AND table_name = 'orders'",
        [first.load_id],
    )
    history = load_history(wh)
    bad = history[~history["balanced"]]
    assert list(zip(bad["load_id"], bad["table"], strict=True)) == [(first.load_id, "orders")]
    assert list(loads(wh)["balanced"]) == [True, False]


def test_quarantine_summary_and_records(twice) -> None:
    wh, (first, second) = twice
    latest = quarantine_summary(wh, "latest")
    assert tuple(latest.columns) == SUMMARY_COLUMNS
    assert latest["records"].sum() == 28 and (latest["loads"] == 1).all()
    everything = quarantine_summary(wh)
    assert everything["records"].sum() == 56 and (everything["loads"] == 2).all()
    orphans = latest[(latest["table"] == "order_lines") & (latest["rule"] == "orphan_line")]
    assert orphans[["records", "lines", "first_line"]].values.tolist() == [[2, 2, 8]]
    assert quarantine_summary(wh, first.load_id)["records"].sum() == 28

    records = quarantine_records(wh, table="orders")
    assert set(records["load_id"]) == {second.load_id}
    assert sorted(records["line_no"]) == [6, 7, 9]
    bad = quarantine_records(wh, rule="bad_timestamp", load_id=None)
    assert len(bad) == 2 * 3 and set(bad["load_id"]) == {first.load_id, second.load_id}
    assert bad.iloc[0]["load_id"] == second.load_id  # newest load first
    row = quarantine_records(wh, table="orders", rule="bad_timestamp").iloc[0]
    assert (row["source"], row["line_no"], row["column_name"], row["original_value"]) == (
        "shop/orders.csv", 7, "order_time", "#N/A",
    )  # fmt: skip
    assert len(quarantine_records(wh, limit=4)) == 4
    with pytest.raises(ConfigError, match="unknown table 'order'"):
        quarantine_records(wh, table="order")


def test_an_empty_warehouse_reports_zeros(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        r = quality_report(wh, as_of=AS_OF)
        assert (r["rows"] == 0).all() and (r["loads"] == 0).all()
        assert r["last_load_id"].isna().all() and r["days_since_latest"].isna().all()
        assert load_history(wh).empty and loads(wh).empty
        assert quarantine_summary(wh, "latest").empty and quarantine_records(wh).empty
