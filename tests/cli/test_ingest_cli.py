"""`crmlens ingest`: dry run, saved and edited mappings, folders of files, refusals."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from crmlens.cli import app
from crmlens.errors import ConfigError
from crmlens.ingest.mapping_file import load_mapping

runner = CliRunner()
ORDERS = (
    "订单号,会员卡号,交易日期,金额(元),备注\n"
    "A1,M1,5/3/2021,¥120.00,\n"
    'A2,M2,6/3/2021,"1,280.50",\n'
    "A3,,7/3/2021,-20,退货\n"
    "A1,M1,5/3/2021,¥120.00,\n"
)


def _orders(folder: Path, name: str = "orders.csv", text: str = ORDERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_dry_run_shows_mapping_profile_and_preview_without_loading(tmp_path: Path) -> None:
    src = _orders(tmp_path / "in")
    wh = tmp_path / "w.duckdb"
    result = runner.invoke(
        app, ["ingest", str(src), "--kind", "orders", "--dry-run", "-w", str(wh), "-q"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Proposed mapping onto orders" in out
    for header in ("会员卡号", "交易日期", "金额(元)"):
        assert header in out
    assert "set rules.date_order" in out  # 5/3/2021 could be either order
    assert "Column profile" in out and "Row accounting" in out
    assert "rows/s" in out and "total" in out  # throughput per source and for the load
    assert "Dry run: nothing was loaded." in out
    assert not wh.exists()


def test_saved_mapping_is_edited_and_reused(tmp_path: Path) -> None:
    src = _orders(tmp_path / "in")
    saved = tmp_path / "orders.toml"
    result = runner.invoke(
        app, ["ingest", str(src), "--kind", "orders", "--dry-run", "--save-mapping", str(saved)]
    )
    assert result.exit_code == 0, result.output
    assert load_mapping(saved).kind == "orders"
    # the user declares the date order (day first) and keeps negative amounts as they are
    text = saved.read_text(encoding="utf-8")
    saved.write_text(
        text + '\n[rules]\ndate_order = "dmy"\nnegative_amount = "keep"\n', encoding="utf-8"
    )
    wh = tmp_path / "w.duckdb"
    result = runner.invoke(app, ["ingest", str(src), "--mapping", str(saved), "-w", str(wh)])
    assert result.exit_code == 0, result.output
    assert "balanced" in result.output and "rows/s" in result.output
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute(
            "SELECT order_id, customer_id, order_time::DATE::VARCHAR, amount FROM orders ORDER BY 1"
        ).fetchall()
    assert rows == [
        ("A1", "M1", "2021-03-05", 120.0),
        ("A2", "M2", "2021-03-06", 1280.5),
        ("A3", None, "2021-03-07", -20.0),
    ]


def test_a_folder_loads_in_one_command(tmp_path: Path) -> None:
    folder = tmp_path / "daily"
    _orders(folder, "2021-03-05.csv", "单号,下单时间,实付金额\nB1,2021-03-05,1\n")
    _orders(folder, "2021-03-06.csv", "单号,下单时间,实付金额\nB2,2021-03-06,2\nB3,2021-03-06,3\n")
    wh = tmp_path / "w.duckdb"
    result = runner.invoke(
        app, ["ingest", str(folder / "*.csv"), "--kind", "orders", "-w", str(wh), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "Read 2 file(s), 3 rows" in result.output
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (3,)
        assert con.execute("SELECT rows_read FROM load_log").fetchone() == (3,)


def test_a_file_that_fits_no_table_is_refused(tmp_path: Path) -> None:
    src = _orders(tmp_path, "rates.csv", "BounceRates,ExitRates\n0.1,0.2\n")
    result = runner.invoke(app, ["ingest", str(src), "-w", str(tmp_path / "w.duckdb")])
    assert isinstance(result.exception, ConfigError)
    assert "does not fit" in str(result.exception)
    assert not (tmp_path / "w.duckdb").exists()
    dry = runner.invoke(app, ["ingest", str(src), "--dry-run"])
    assert dry.exit_code == 0 and "No validation preview" in dry.output


def test_kind_contradicting_the_mapping_is_refused(tmp_path: Path) -> None:
    src = _orders(tmp_path / "in")
    saved = tmp_path / "m.toml"
    saved.write_text('kind = "orders"\n[columns]\norder_id = "订单号"\n', encoding="utf-8")
    result = runner.invoke(
        app, ["ingest", str(src), "--mapping", str(saved), "--kind", "customers"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "contradicts" in str(result.exception)
