"""The churn analysis recovers what the demo generator planted (A6, seed 000 ④).

The demo company's churned members used to buy 膨化食品, 夹心面包, 巧克力, 绿叶菜 and 杯面, and the SKU
ranges of 杯面, 巧克力 and 膨化食品 shrink from 2019-12 to 2021-12. Generated, loaded through the real
loader, and analysed only through the warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.models import ChurnedPurchases, ChurnModel, churned_purchases
from crmlens.warehouse import Warehouse

END = date(2021, 12, 31)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, dict[str, Any]]]:
    out = tmp_path_factory.mktemp("demo-churn")
    generate(DemoConfig(customers=8_000, seed=42, out_dir=out / "export"))
    effect = json.loads((out / "export" / "planted.json").read_text("utf-8"))["effects"]
    with Warehouse(out / "demo.duckdb") as wh:
        load_demo_export(wh, out / "export")
        yield wh, effect["churned_categories"]


@pytest.fixture(scope="module")
def bought(demo: tuple[Warehouse, dict[str, Any]]) -> ChurnedPurchases:
    return churned_purchases(demo[0], as_of=END, inactive_days=90, top=5)


def test_top_five_categories_are_the_planted_ones(
    demo: tuple[Warehouse, dict[str, Any]], bought: ChurnedPurchases
) -> None:
    planted = set(demo[1]["expected"]["top5_by_count"])
    assert planted == {"膨化食品", "夹心面包", "巧克力", "绿叶菜", "杯面"}
    print(f"top by lines {bought.top_by_lines}, by lift {bought.top_by_lift}")
    assert set(bought.top_by_lines) == planted, bought.categories.head(8)
    assert set(bought.top_by_lift) == planted, bought.categories.head(8)
    # the sixth category is well behind on lift, as planted
    sixth = bought.categories.sort_values("lift", ascending=False)["lift"].iloc[5]
    lift = bought.categories.set_index("category")["lift"]
    assert lift[list(planted)].min() > 1.2 * sixth
    realised = demo[1]["realised"]
    assert bought.churned_customers == pytest.approx(realised["churned_members"], rel=0.02)


def test_sku_ranges_shrink_for_three_of_them(
    demo: tuple[Warehouse, dict[str, Any]], bought: ChurnedPurchases
) -> None:
    trend = bought.sku_trend.set_index("category")
    print(trend[["first_month", "last_month", "first_skus", "last_skus", "change", "slope"]])
    assert set(trend["first_month"]) == {"2019-12"} and set(trend["last_month"]) == {"2021-12"}
    shrinking = set(demo[1]["expected"]["shrinking"])
    assert shrinking == {"杯面", "巧克力", "膨化食品"}
    assert set(trend.index[trend["trend"] == "shrinking"]) == shrinking
    assert (trend.loc[list(shrinking), "slope"] < 0).all()
    assert (trend.loc[["夹心面包", "绿叶菜"], "change"] >= -0.05).all()
    # the counts are the generator's own month-end counts
    realised = demo[1]["realised"]["active_skus"]
    for category, by_month in realised.items():
        assert bought.sku_counts.loc["2019-12", category] == by_month["2019-12"]
        assert bought.sku_counts.loc["2021-12", category] == by_month["2021-12"]


def test_the_model_beats_recency_on_the_demo(demo: tuple[Warehouse, dict[str, Any]]) -> None:
    model = ChurnModel().fit(
        demo[0], train_as_of=date(2021, 3, 31), validation_as_of=date(2021, 6, 30)
    )
    v = model.validation_
    assert v is not None
    print(f"demo AUC model {v['model']['roc_auc']:.4f} vs recency {v['baseline']['roc_auc']:.4f}")
    assert v["model"]["roc_auc"] > v["baseline"]["roc_auc"] + 0.02
