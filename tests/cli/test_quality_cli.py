"""``crmlens quality`` and ``crmlens quarantine``, and re-ingesting a corrected file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from python_calamine import CalamineWorkbook
from typer.testing import CliRunner

from crmlens.cli import app

runner = CliRunner()


def _make_export(out: Path) -> Path:
    """The miniature demo export of tests/ingest (loaded by path: tests dirs are not packages)."""
    path = Path(__file__).parents[1] / "ingest" / "conftest.py"
    spec = importlib.util.spec_from_file_location("crmlens_demo_export_fixture", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_export(out)


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Path, Path]:
    export = _make_export(tmp_path / "export")
    warehouse = tmp_path / "w.duckdb"
    code, out = invoke("load", str(export), "-w", str(warehouse), "-q")
    assert code == 0, out
    return export, warehouse


def test_quality_prints_tables_loads_and_a_reconciliation(loaded) -> None:
    export, warehouse = loaded
    code, out = invoke("quality", "-w", str(warehouse), "--reconcile", str(export))
    assert code == 0, out
    for text in ("Data quality", "customers", "Loads", "balanced", "Quarantine, latest load"):
        assert text in out
    assert "orphan_line" in out and "every sampled row accounted for" in out

    code, out = invoke("quality", "-w", str(warehouse), "--json", "--reconcile", str(export))
    assert code == 0, out
    payload = json.loads(out)
    tables = {t["table"]: t for t in payload["tables"]}
    assert tables["orders"]["quarantined_last_load"] == 3 and tables["orders"]["rows"] == 5
    assert payload["balanced"] and payload["loads"][0]["rows_read"] == 96
    assert payload["reconciliation"]["ok"] and payload["reconciliation"]["fraction"] == 0.1


def test_quality_fails_when_the_reconciliation_finds_a_difference(loaded) -> None:
    import duckdb

    export, warehouse = loaded
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE stores SET city = '上海'")  # every store now differs from the file
    code, out = invoke("quality", "-w", str(warehouse), "--reconcile", str(export), "--seed", "3")
    assert code == 1
    assert "NOT reconciled" in out and "crm/stores.csv line" in out and "column city" in out


def test_quarantine_lists_filters_and_masks_personal_data(loaded) -> None:
    _, warehouse = loaded
    code, out = invoke("quarantine", "-w", str(warehouse), "--table", "orders")
    assert code == 0, out
    for text in ("shop/orders.csv", "bad_timestamp", "#N/A", "negative_amount_not_refund"):
        assert text in out
    code, out = invoke("quarantine", "-w", str(warehouse), "--rule", "invalid_phone")
    assert code == 0 and "1380000003" not in out and "138*****03" in out
    code, out = invoke("quarantine", "-w", str(warehouse), "--rule", "invalid_phone", "--show-pii")
    assert code == 0 and "1380000003" in out
    code, out = invoke("quarantine", "-w", str(warehouse), "--table", "nope")
    assert code != 0


def test_export_fix_the_lines_and_reingest(loaded, tmp_path: Path) -> None:
    export, warehouse = loaded
    listing = tmp_path / "quarantine.csv"
    code, out = invoke(
        "quarantine", "-w", str(warehouse), "--table", "orders", "--export", str(listing)
    )
    assert code == 0, out
    bad = pd.read_csv(listing, encoding="utf-8-sig")
    assert sorted(bad["line_no"]) == [6, 7, 9]
    # the analyst fixes the three lines the export names, in the source file
    orders = export / "shop" / "orders.csv"
    lines = orders.read_text(encoding="utf-8").split("\n")
    fixes = {
        6: ("-15.00,0.00,-15.00,CNY,completed,", "15.00,0.00,15.00,CNY,completed,"),
        7: ("#N/A", "2021-03-08 18:00:00"),
        9: (",0.00,,CNY", ",0.00,30.00,CNY"),
    }
    for line_no, (old, new) in fixes.items():
        assert bad.loc[bad["line_no"] == line_no, "source"].item() == "shop/orders.csv"
        assert old in lines[line_no - 1]
        lines[line_no - 1] = lines[line_no - 1].replace(old, new)
    orders.write_text("\n".join(lines), encoding="utf-8")

    code, out = invoke("load", str(export), "-w", str(warehouse), "-q")
    assert code == 0 and "balanced" in out
    code, out = invoke("quarantine", "-w", str(warehouse), "--table", "orders")
    assert code == 0 and "No quarantine records" in out
    code, out = invoke("quality", "-w", str(warehouse), "--json", "--reconcile", str(export))
    assert code == 0, out
    payload = json.loads(out)
    orders_q = next(t for t in payload["tables"] if t["table"] == "orders")
    assert orders_q["rows"] == 8 and orders_q["quarantined_last_load"] == 0
    assert orders_q["quarantined_total"] == 3 and orders_q["trend_quarantined_pct"] == [33.33, 0.0]
    # the order lines of the fixed orders O0005 and O0006 are no longer orphans
    lines_q = next(t for t in payload["tables"] if t["table"] == "order_lines")
    assert lines_q["quarantined_last_load"] == 2 and lines_q["rows"] == 7
    assert all(load["balanced"] for load in payload["loads"]) and payload["reconciliation"]["ok"]


def test_quarantine_exports_to_excel(loaded, tmp_path: Path) -> None:
    _, warehouse = loaded
    target = tmp_path / "q.xlsx"
    code, out = invoke(
        "quarantine", "-w", str(warehouse), "--load-id", "all", "--export", str(target)
    )
    assert code == 0, out
    grid = CalamineWorkbook.from_path(str(target)).get_sheet_by_name("quarantine").to_python()
    assert grid[0][:5] == ["load_id", "table_name", "source", "line_no", "column_name"]
    assert len(grid) == 1 + 28
    code, out = invoke("quarantine", "-w", str(warehouse), "--export", str(tmp_path / "q.txt"))
    assert code != 0


def test_a_ragged_line_is_masked_whole_in_a_table_with_personal_data() -> None:
    """A ragged line is kept as raw text; which part is a phone cannot be told, so all of it
    is masked unless the table holds no personal data."""
    from crmlens.cli.quarantine_cmd import mask_pii

    line = "C9,王秀英,13800000002,青岛,extra"
    records = pd.DataFrame(
        {
            "table_name": ["customers", "products"],
            "column_name": ["会员卡号", "sku"],
            "rule": ["malformed_line", "malformed_line"],
            "original_value": [line, "S1,饮料,extra"],
            "row_json": [json.dumps({"line": line}), json.dumps({"line": "S1,饮料,extra"})],
        }
    )
    masked = mask_pii(records)
    assert "13800000002" not in masked["original_value"][0]
    assert "13800000002" not in masked["row_json"][0] and "王秀英" not in masked["row_json"][0]
    assert masked["original_value"][1] == "S1,饮料,extra"  # products hold no personal data
