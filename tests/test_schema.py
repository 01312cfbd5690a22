from pathlib import Path

import ibis.expr.datatypes as dt
import pytest

from crmlens.errors import ConfigError
from crmlens.schema import TABLES, data_tables, render_markdown, table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


def test_docs_schema_md_is_generated_from_schema() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown() + "\n", (
        "docs/schema.md is stale: run `crmlens docs` (or `make docs`)"
    )


@pytest.mark.parametrize("tbl", list(TABLES.values()), ids=lambda t: t.name)
def test_every_column_is_described_in_both_languages(tbl) -> None:
    assert tbl.label_zh and tbl.label_en and tbl.description
    for col in tbl.columns:
        assert col.label_zh.strip() and col.label_en.strip() and col.description.strip(), col
        assert col.name.isidentifier() and col.name == col.name.lower()
    for key in tbl.primary_key:
        assert not tbl.column(key).nullable, f"{tbl.name}.{key} is a key but nullable"


def test_required_brief_tables_exist() -> None:
    # D1: the sources the brief names
    for name in (
        "customers", "stores", "products", "orders", "order_lines", "channels", "channel_spend",
        "campaigns", "campaign_touches", "service_tickets", "survey_responses", "survey_scores",
        "app_events", "sales_reps", "sales_activities", "leads", "lead_stage_history", "targets",
    ):  # fmt: skip
        assert name in TABLES
    assert [t.kind for t in data_tables()] == ["data"] * len(data_tables())


def test_personal_data_is_flagged() -> None:
    pii = {(t.name, c.name) for t in TABLES.values() for c in t.columns if c.pii}
    assert {("customers", "name"), ("customers", "phone"), ("customers", "email")} <= pii


def test_ibis_schema_types() -> None:
    schema = table("orders").ibis_schema()
    assert schema["amount"] == dt.Float64(nullable=False)
    assert schema["order_time"].is_timestamp()
    assert schema["customer_id"] == dt.String(nullable=True)


def test_unknown_names_give_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown table 'order'.*orders"):
        table("order")
    with pytest.raises(ConfigError, match="no column 'amt'"):
        table("orders").column("amt")
