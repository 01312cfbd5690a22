import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from crmlens.cli import app
from crmlens.schema import SCHEMA_VERSION, render_markdown

runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "crmlens" in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "demo-data", "load", "info", "docs", "kpi", "report"):
        assert command in result.output


def test_docs_command_writes_the_generated_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["docs", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / "schema.md").read_text(encoding="utf-8") == render_markdown() + "\n"


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    cmd = [sys.executable, "-m", "crmlens", "info", "--warehouse", str(missing)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "no warehouse there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    verbose = subprocess.run(
        [sys.executable, "-m", "crmlens", "--verbose", *cmd[3:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_info_lists_every_table(tmp_path: Path) -> None:
    from crmlens.warehouse import Warehouse

    Warehouse(tmp_path / "w.duckdb").close()
    result = runner.invoke(app, ["info", "--warehouse", str(tmp_path / "w.duckdb"), "--json"])
    assert result.exit_code == 0, result.output
    assert (
        f'"schema_version": {SCHEMA_VERSION}' in result.output and '"app_events"' in result.output
    )
    assert '"derived": []' in result.output


def test_info_lists_the_derived_tables_and_whether_they_are_used(tmp_path: Path) -> None:
    from crmlens.metrics.derived_tables import derived_tables
    from crmlens.metrics.facts import table
    from crmlens.warehouse import Warehouse

    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    result = runner.invoke(app, ["info", "--warehouse", str(path)])
    assert result.exit_code == 0, result.output
    assert "derived tables: none" in " ".join(result.output.split())
    with Warehouse(path) as wh:
        wh.write_derived(derived_tables(wh))
        # one written by another version: other columns, so not read
        wh.write_derived({"derived__orders": table(wh, "orders")})
    result = runner.invoke(app, ["info", "--warehouse", str(path), "--json"])
    assert result.exit_code == 0, result.output
    derived = {d["table"]: d["used"] for d in json.loads(result.output)["derived"]}
    assert derived == {
        "derived__customer_scores": True,
        "derived__customer_scores__by_place": True,
        "derived__customer_scores__by_segment": True,
        "derived__first_orders": True,
        "derived__first_orders__by_place": True,
        "derived__first_orders__by_segment": True,
        "derived__order_categories": True,
        "derived__orders": False,
        # the copies in other orders were written with the right columns, so they are read
        "derived__orders__by_place": True,
        "derived__orders__by_segment": True,
        "derived__table_figures": True,
    }
