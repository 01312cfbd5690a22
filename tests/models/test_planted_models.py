"""The segmentation models recover what the demo generator planted (A3, A10).

An 8,000-member demo company (seed 42) is generated, loaded through the demo loader into a fresh
warehouse, and the tier profile and personas are compared with ``planted.json``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.models.personas import persona, tier_profile
from crmlens.warehouse import Warehouse

AS_OF = date(2021, 12, 31)
TOP_TIERS = ["白金", "黄金"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo")
    out = root / "export"
    generate(DemoConfig(customers=8_000, seed=42, out_dir=out))
    planted = json.loads((out / "planted.json").read_text(encoding="utf-8"))
    wh = Warehouse(Path(root) / "demo.duckdb")
    load_demo_export(wh, out)
    yield wh, planted["effects"]
    wh.close()


@pytest.fixture(scope="module")
def tiers(demo: tuple[Warehouse, dict[str, Any]]) -> pd.DataFrame:
    return tier_profile(demo[0], as_of=AS_OF)


@pytest.fixture(scope="module")
def top_vs_rest(demo: tuple[Warehouse, dict[str, Any]]) -> dict:
    """Personas of 白金+黄金 together against the other members."""
    wh = demo[0]
    customers = wh.table("customers")
    members = wh.execute(customers.select("customer_id", "member_tier"))
    groups = pd.Series(
        members["member_tier"].isin(TOP_TIERS).map({True: "top", False: "rest"}).to_numpy(),
        index=members["customer_id"],
    )
    return persona(wh, groups, as_of=AS_OF)


def test_top_tiers_are_a_third_of_members_and_four_fifths_of_revenue(
    demo: tuple[Warehouse, dict[str, Any]], tiers: pd.DataFrame
) -> None:
    effect = demo[1]["tiers"]
    tolerance = effect["tolerance"]["share"]
    member_share = tiers.loc[TOP_TIERS, "member_share"].sum()
    revenue_share = tiers.loc[TOP_TIERS, "revenue_share"].sum()
    assert abs(member_share - effect["expected"]["top_member_share"]) <= tolerance
    assert abs(revenue_share - effect["expected"]["top_revenue_share"]) <= tolerance
    # and the measurement agrees with the generator's own count of what it wrote
    assert member_share == pytest.approx(effect["realised"]["top_member_share"], abs=0.005)
    assert revenue_share == pytest.approx(effect["realised"]["top_revenue_share"], abs=0.01)
    assert list(tiers.index[:4]) == ["白金", "黄金", "白银", "普通"]


def test_top_tier_persona_is_mostly_women_aged_40_to_60(
    demo: tuple[Warehouse, dict[str, Any]], top_vs_rest: dict
) -> None:
    planted = demo[1]["demographics"]
    top = top_vs_rest["top"]
    assert top.gender["女"] > 0.5
    assert abs(top.gender["女"] - planted["expected"]["female_share"]) <= planted["tolerance"] * 2
    first, last, share = top.age_window
    assert (first, last) == (40, 60) and share > 0.5
    assert top.description_zh.startswith("以40-60岁女性为主")
    assert top.description_en.startswith("Mostly women aged 40-60")
    platinum = persona(demo[0], "member_tier", as_of=AS_OF)["白金"]
    assert platinum.description_zh.startswith("以40-60岁女性为主")


def test_top_tier_departments(demo: tuple[Warehouse, dict[str, Any]], top_vs_rest: dict) -> None:
    expected = demo[1]["tiers"]["expected"]["top5_departments"]
    assert set(expected) == {"南北干货", "蔬菜", "日配", "面包", "乳酸菌饮品"}
    assert set(list(top_vs_rest["top"].departments)[:5]) == set(expected)
    assert not set(list(top_vs_rest["rest"].departments)[:2]) & set(expected)


def test_top_tiers_pay_with_stored_value_cards_more(
    demo: tuple[Warehouse, dict[str, Any]], tiers: pd.DataFrame, top_vs_rest: dict
) -> None:
    effect = demo[1]["tiers"]
    tolerance = effect["tolerance"]["stored_value_share"]
    top = top_vs_rest["top"].payments["储值卡"]
    rest = top_vs_rest["rest"].payments["储值卡"]
    assert top > 2 * rest
    assert abs(top - effect["realised"]["stored_value_share_top"]) <= tolerance
    assert abs(rest - effect["realised"]["stored_value_share_other"]) <= tolerance
    by_tier = tiers["payment_储值卡"]
    assert by_tier["白金"] > by_tier["白银"] and by_tier["黄金"] > by_tier["普通"]
