"""The registry validates the declarations, docs/metrics.md is generated from them, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crmlens.cli.kpi import kpi
from crmlens.errors import ConfigError
from crmlens.metrics import DIMENSIONS, REGISTRY, Scope, metric, summary, value
from crmlens.metrics.docs import render_markdown
from crmlens.metrics.registry import check_metric
from crmlens.metrics.summary import history_scope
from crmlens.warehouse import Warehouse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
REQUIRED = [
    "customers",
    "new_customers",
    "active_customers",
    "orders",
    "revenue",
    "aov",
    "purchase_frequency",
    "repurchase_rate",
    "retention_30d",
    "churn_rate",
    "members",
    "cac",
    "channel_conversion_rate",
    "ltv_cac",
    "nps",
    "csat",
    "complaint_rate",
    "resolution_hours",
    "resolution_hours_p90",
    "email_open_rate",
    "email_click_rate",
    "email_conversion_rate",
    "sales_target_attainment",
]


def test_docs_are_generated_from_the_declarations() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown() + "\n", (
        "docs/metrics.md is stale: run `crmlens docs`"
    )
    text = render_markdown()
    for m in REGISTRY.values():
        assert f"### `{m.name}` — {m.label_zh} / {m.label_en}" in text
        assert m.description in text


def test_every_required_kpi_is_declared_completely() -> None:
    assert set(REQUIRED) <= set(REGISTRY)
    for m in REGISTRY.values():
        assert m.label_zh and m.label_en and len(m.description) > 40, m.name
        assert set(m.dimensions) <= set(DIMENSIONS) and set(m.default_dims) <= set(m.dimensions)
        assert m.fmt(None) == "—"


def test_declarations_are_validated() -> None:
    good = metric("revenue")
    for bad, message in (
        (replace(good, name="Revenue"), "lower_snake_case"),
        (replace(good, description="no period"), "full definition"),
        (replace(good, unit="euros"), "unknown unit"),
        (replace(good, facts=("ledger",)), "facts"),
        (replace(good, default_dims=("ticket_type",)), "default dimensions"),
        (replace(good, target_how=None), "target_names"),
        (replace(metric("retention_30d"), days=31), "does not declare"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_metric(bad)  # type: ignore[arg-type]


def test_families_and_unknown_names() -> None:
    assert metric("retention_7d").label_zh == "7天留存率"
    assert metric("churn_rate_60d").days == 60 and metric("churn_rate").days == 90
    assert metric("active_customers_90d").name == "active_customers"
    with pytest.raises(ConfigError, match="window"):
        metric("retention_0d")
    with pytest.raises(ConfigError, match=r"unknown metric 'profit'.*retention_\{days\}d"):
        metric("profit")


def test_changes_are_formatted_by_kind() -> None:
    assert metric("revenue").format_change(0.153) == "+15.3%"
    assert metric("retention_30d").format_change(-0.03) == "-3.0pp"
    assert metric("nps").format_change(2.0) == "+2.0"
    assert metric("complaint_rate").format_change(0.0005) == "+0.50‰"
    assert metric("aov").format_change(None) == "—"


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory, tiny) -> Path:
    """A closed copy of the tiny company, for commands that open the warehouse themselves."""
    path = tmp_path_factory.mktemp("cli") / "tiny.duckdb"
    tiny.wh.raw.execute(f"ATTACH '{path}' AS copy")
    tiny.wh.raw.execute("COPY FROM DATABASE tiny TO copy")
    tiny.wh.raw.execute("DETACH copy")
    return path


def _app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command()(kpi)
    return app


def test_kpi_command(tiny_file: Path, tiny) -> None:
    runner = CliRunner()
    args = [
        "kpi",
        "revenue",
        "aov",
        "--since",
        "2021-01",
        "--until",
        "2021-03",
        "-w",
        str(tiny_file),
    ]
    result = runner.invoke(_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["period"] for r in rows} == {"2021-01", "2021-02", "2021-03"}
    jan = Scope(date(2021, 1, 1), date(2021, 1, 31))
    got = next(r["value"] for r in rows if r["metric"] == "revenue" and r["period"] == "2021-01")
    assert got == pytest.approx(value(tiny.wh, "revenue", jan))

    result = runner.invoke(_app(), [*args, "--by", "region", "--filter", "customer_type=个人"])
    assert result.exit_code == 0 and "华东" in result.output and "客单价" in result.output
    result = runner.invoke(_app(), [*args, "--overview"])
    assert result.exit_code == 0 and "环比" in result.output and "同比" in result.output
    result = runner.invoke(_app(), [*args, "--by", "category", "--top", "1"])
    assert result.exit_code == 0 and "其他" in result.output
    result = runner.invoke(_app(), [*args, "--filter", "colour=red"])
    assert isinstance(result.exception, ConfigError)
    # without --since/--until: the 12 months up to the last day with an order
    result = runner.invoke(_app(), ["kpi", "orders", "-w", str(tiny_file), "--json"])
    periods = [r["period"] for r in json.loads(result.output)]
    assert periods[0] == "2020-04" and periods[-1] == "2021-03" and len(periods) == 12


def test_summary_is_built_on_the_registry(tiny_file: Path) -> None:
    with Warehouse(tiny_file, read_only=True) as wh:
        rows = summary(wh)
        everything = history_scope(wh)
        times = wh.raw.execute("SELECT min(order_time)::DATE, max(order_time)::DATE FROM orders")
        assert (everything.start, everything.end) == times.fetchone()
        assert [r["name"] for r in rows][:3] == ["members", "orders", "revenue"]
        for row in rows:
            assert row["value"] == pytest.approx(value(wh, row["name"], everything))
            assert row["label_zh"] == metric(row["name"]).label_zh
