"""The demo company (5,000 customers, seed 42) in a warehouse, and its 2021-11 report, built once.

Generating and loading takes about ten seconds and a report a few, so every report test of the
session shares them (session scope); nothing here writes to the warehouse after the load.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.reports import Report, build_report, render_html, write_xlsx
from crmlens.warehouse import Warehouse

#: A fixed generation time, so outputs are the same on every run.
GENERATED_AT = datetime(2021, 12, 6, 9, 30)


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loaded demo warehouse file."""
    out = tmp_path_factory.mktemp("report_demo")
    generate(DemoConfig(customers=5000, seed=42, out_dir=out))
    path = out / "w.duckdb"
    with Warehouse(path) as wh:
        assert load_demo_export(wh, out).balanced
    return path


@pytest.fixture(scope="session")
def wh(demo_path: Path) -> Iterator[Warehouse]:
    with Warehouse(demo_path, read_only=True) as warehouse:
        yield warehouse


@pytest.fixture(scope="session")
def monthly(wh: Warehouse) -> Report:
    """The 2021-11 monthly report of 市场部, reviewed by 张经理."""
    return build_report(
        wh, "2021-11", department="市场部", reviewer="张经理", generated_at=GENERATED_AT
    )


@pytest.fixture(scope="session")
def monthly_xlsx(monthly: Report, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_xlsx(monthly, tmp_path_factory.mktemp("xlsx") / "2021-11.xlsx")


@pytest.fixture(scope="session")
def monthly_html(monthly: Report) -> str:
    return render_html(monthly)


@pytest.fixture(scope="session")
def customers_pii(wh: Warehouse) -> dict[str, set[str]]:
    """The personal data of the customers table (D7), by column: names, phones, e-mails."""
    frame = wh.raw.sql("SELECT name, company_name, phone, email FROM customers").df()
    return {c: {str(v) for v in frame[c].dropna() if str(v).strip()} for c in frame.columns}
