"""``crmlens build``, ``segment``, ``clv`` and ``churn`` on the 5,000-member demo company.

The commands are registered on a local Typer app here, as the main app registers them, so that
errors reach the test as exceptions (the main app turns them into one-line messages).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from crmlens.cli.models_cmd import build, churn, clv, mask_id, mask_phone, segment
from crmlens.demo import DemoConfig, generate
from crmlens.errors import ConfigError, ModelError, WarehouseError
from crmlens.ingest import load_demo_export
from crmlens.models.rfm import segments
from crmlens.warehouse import Warehouse

app = typer.Typer(pretty_exceptions_enable=False)
for command in (build, segment, clv, churn):
    app.command()(command)
runner = CliRunner()
RAW_ID = re.compile(r"\bM\d{7}\b")
RAW_PHONE = re.compile(r"\b1\d{10}\b")


def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loaded 5,000-member demo warehouse, made once per test session (shared with test_build)."""
    root = tmp_path_factory.getbasetemp() / "demo-5000-s42"
    if not (root / "loaded.duckdb").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate(DemoConfig(customers=5_000, seed=42, out_dir=root / "export"))
        with Warehouse(root / "partial.duckdb") as wh:
            load_demo_export(wh, root / "export")
            wh.checkpoint()
        (root / "partial.duckdb").rename(root / "loaded.duckdb")
    return root / "loaded.duckdb"


def run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("cli") / "w.duckdb"
    shutil.copy(demo_warehouse(tmp_path_factory), path)
    yield str(path)


@pytest.fixture(scope="module")
def built(warehouse: str) -> Result:
    # the reading commands refuse a warehouse without a build, naming the command to run
    for command in ("segment", "clv", "churn"):
        result = run(command, "--warehouse", warehouse)
        assert isinstance(result.exception, ModelError), result.output
        assert "run `crmlens build` first" in str(result.exception)
    return run("build", "--as-of", "2021-12-31", "--warehouse", warehouse, "--quiet")


def test_build_prints_timings_and_headline_numbers(built: Result) -> None:
    assert built.exit_code == 0, built.output
    out = built.output
    assert "as of 2021-12-31" in out and "total" in out
    for label in ("RFM", "clusters", "lifecycle", "CLV", "churn", "personas", "write"):
        assert label in out
    assert "customers 5,000" in out and "ROC AUC" in out and "膨化食品" in out


def test_build_option_errors(tmp_path: Path) -> None:
    result = run("build", "--as-of", "31/12/2021", "--warehouse", str(tmp_path / "w.duckdb"))
    assert isinstance(result.exception, ConfigError) and "2021-12-31" in str(result.exception)
    result = run("build", "--warehouse", str(tmp_path / "missing.duckdb"))
    assert isinstance(result.exception, WarehouseError) and "crmlens load" in str(result.exception)
    assert not (tmp_path / "missing.duckdb").exists()


def test_segment_lists_each_scheme(warehouse: str, built: Result) -> None:
    for scheme in ("cn8", "en11"):
        result = run("segment", "--scheme", scheme, "--warehouse", warehouse)
        assert result.exit_code == 0, result.output
        names = segments(scheme)
        for zh, en in zip(names["name_zh"], names["name_en"], strict=True):
            assert zh in result.output and en in result.output
        assert names["action_zh"].iloc[0] in result.output
    default = run("segment", "--warehouse", warehouse)
    assert "重要价值客户" in default.output and "(cn8)" in default.output
    lifecycle = run("segment", "--scheme", "lifecycle", "--warehouse", warehouse)
    assert "获取期" in lifecycle.output and "Churned" in lifecycle.output
    bad = run("segment", "--scheme", "rfm", "--warehouse", warehouse)
    assert isinstance(bad.exception, ConfigError) and "cn8, en11, lifecycle" in str(bad.exception)


def test_clv_shows_distribution_parameters_and_masked_top_customers(
    warehouse: str, built: Result
) -> None:
    result = run("clv", "--top", "7", "--warehouse", warehouse)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("median", "p99", "top 10 % share", "bgnbd", "gamma_gamma", "alpha", "top 7"):
        assert text in out
    assert len(re.findall(r"M0\*{4}\d\d", out)) == 7
    assert not RAW_ID.search(out) and not RAW_PHONE.search(out)
    with Warehouse(warehouse, read_only=True) as wh:
        names = wh.execute(wh.table("customers")["name"]).dropna()
    assert not any(name in out for name in names.head(500))


def test_churn_shows_validation_masked_risk_list_and_categories(
    warehouse: str, built: Result
) -> None:
    result = run("churn", "--top", "5", "--warehouse", warehouse)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ROC AUC" in out and "recency baseline" in out and "trained at" in out
    assert "early warning: top 5 of" in out
    assert len(re.findall(r"M0\*{4}\d\d", out)) == 5
    assert re.search(r"1\d\d\*{4}\d{4}", out)  # phones masked, never whole
    assert not RAW_ID.search(out) and not RAW_PHONE.search(out)
    assert "近90天未下单" in out or "近期投诉" in out
    for category in ("膨化食品", "杯面", "巧克力"):
        assert category in out
    assert "shrinking" in out


def test_masking() -> None:
    assert mask_id("M0001655") == "M0****55"
    assert mask_id("C12") == "***" and mask_id(None) == ""
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("") == "" and mask_phone(None) == "" and mask_phone(float("nan")) == ""
    assert mask_phone("+86 138") == "+*****8"
