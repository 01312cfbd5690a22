"""``crmlens report``: options, default file names, errors.

The command is tested through the main app once it is registered there, and through a one-command
app of its own before that, so the test does not depend on the registration order of commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from python_calamine import CalamineWorkbook
from typer.testing import CliRunner

from crmlens.cli import app as main_app
from crmlens.cli.report import report

runner = CliRunner()


def _app() -> typer.Typer:
    if any(c.callback is report for c in main_app.registered_commands):
        return main_app
    own = typer.Typer()
    own.command()(report)

    @own.callback()
    def _root() -> None:
        """Makes ``report`` a subcommand, as on the main app."""

    return own


def test_html_report(demo_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "月报.html"
    args = ["report", "--period", "2021-11", "-w", str(demo_path), "--out", str(out)]
    result = runner.invoke(_app(), [*args, "--department", "市场部", "--reviewer", "张经理"])
    assert result.exit_code == 0, result.output
    assert "2021-11" in result.output and out.name in result.output
    page = out.read_text(encoding="utf-8")  # html from the suffix, no --format needed
    assert page.startswith("<!DOCTYPE html>") and "<dd>市场部</dd>" in page and "月报" in page


def test_xlsx_report_with_the_default_name(
    demo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["report", "-p", "2021-W45", "-w", str(demo_path), "--lang", "en", "--grain", "month"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "crmlens-report-2021-W45.xlsx"
    book = CalamineWorkbook.from_path(str(path))
    assert book.sheet_names == ["Overview", "Breakdown", "Trend"]
    rows = book.get_sheet_by_name("Overview").to_python()
    assert rows[0][0] == "CRM multi-dimensional report · weekly report 2021-W45"
    trend = [r[0] for r in book.get_sheet_by_name("Trend").to_python()]
    assert "2021-11" in trend and "2020-12" in trend  # --grain month: the trend is monthly


@pytest.mark.parametrize(
    ("option", "value"),
    [("--lang", "fr"), ("--grain", "day"), ("--format", "pdf")],
)
def test_bad_options(option: str, value: str, tmp_path: Path) -> None:
    args = ["report", "--period", "2021-11", "-w", str(tmp_path / "none.duckdb"), option, value]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 2 and value in result.output


def test_period_is_required() -> None:
    result = runner.invoke(_app(), ["report"])
    assert result.exit_code == 2 and "--period" in result.output
