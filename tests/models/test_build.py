"""``build``: every model as of one date, written in one transaction (issue "Customer models", 7).

A 5,000-member demo company (seed 42) is generated and loaded once; the build's tables are checked
against calling the models directly, against what the generator planted, and for atomicity: a
build that fails half-way, or a write that fails on its second table, leaves the previous tables.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.errors import ConfigError, SchemaError, WarehouseError
from crmlens.ingest import load_demo_export
from crmlens.metrics.facts import FACTS, derived
from crmlens.models import ChurnModel, CustomerClusters, LifecycleStages, RFMModel, tier_profile
from crmlens.models.build import OUTPUT_TABLES, STEPS, BuildReport, build, default_as_of
from crmlens.models.features import customer_features
from crmlens.schema import TABLES, table
from crmlens.warehouse import Warehouse

AS_OF = date(2021, 12, 31)
MODEL_TABLES = [t.name for t in TABLES.values() if t.kind == "model"]


def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A loaded 5,000-member demo warehouse and its export, made once per test session."""
    root = tmp_path_factory.getbasetemp() / "demo-5000-s42"
    if not (root / "loaded.duckdb").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate(DemoConfig(customers=5_000, seed=42, out_dir=root / "export"))
        with Warehouse(root / "partial.duckdb") as wh:
            load_demo_export(wh, root / "export")
            wh.checkpoint()
        (root / "partial.duckdb").rename(root / "loaded.duckdb")
    return root / "loaded.duckdb", root / "export"


def snapshot(wh: Warehouse) -> dict[str, pd.DataFrame]:
    """Every output table, sorted by its key, for comparisons."""
    out = {}
    for name in OUTPUT_TABLES:
        frame = wh.execute(wh.table(name))
        out[name] = frame.sort_values(list(table(name).primary_key), ignore_index=True)
    return out


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Warehouse, BuildReport, list[tuple[str, int, int]], Path]]:
    loaded, export = demo_warehouse(tmp_path_factory)
    path = tmp_path_factory.mktemp("build") / "w.duckdb"
    shutil.copy(loaded, path)
    calls: list[tuple[str, int, int]] = []
    with Warehouse(path) as wh:
        report = build(wh, as_of=AS_OF, progress=lambda *a: calls.append(a))
        yield wh, report, calls, export


@pytest.fixture(scope="module")
def first(built: tuple[Warehouse, BuildReport, Any, Path]) -> dict[str, pd.DataFrame]:
    return snapshot(built[0])


@pytest.fixture(scope="module")
def features(built: tuple[Warehouse, BuildReport, Any, Path]) -> pd.DataFrame:
    wh = built[0]
    return wh.execute(customer_features(wh.table, as_of=AS_OF))


def test_every_model_table_is_filled_and_reported(
    built: tuple[Warehouse, BuildReport, list[tuple[str, int, int]], Path],
    first: dict[str, pd.DataFrame],
) -> None:
    wh, report, calls, _ = built
    assert set(MODEL_TABLES) == {*OUTPUT_TABLES, "model_runs"}
    for name in OUTPUT_TABLES:
        assert len(first[name]) > 0, name
        assert report.rows[name] == len(first[name])
        if "as_of" in first[name]:
            assert (first[name]["as_of"] == pd.Timestamp(AS_OF)).all(), name
    assert report.as_of == AS_OF and report.skipped == {}
    assert set(report.seconds) == set(STEPS) and report.total_seconds > 0
    # one bar per step, opened and completed, in build order
    assert calls == [(label, done, 1) for label in STEPS.values() for done in (0, 1)]
    runs = wh.execute(wh.table("model_runs"))
    assert len(runs) == 1 and runs.loc[0, "status"] == "ok" and pd.isna(runs.loc[0, "error"])
    assert runs.loc[0, "build_id"] == report.build_id
    assert runs.loc[0, "customers"] == len(first["model_customer_scores"])
    assert runs.loc[0, "seconds_churn"] == pytest.approx(report.seconds["churn"])
    assert len(first["model_cluster_points"]) <= 5_000
    # and the dashboard's derived tables, as of the same data
    assert report.rows["derived__orders"] == wh.row_count("orders")
    assert derived(wh, FACTS["orders"]) is not None
    assert set(first["model_clv_params"]["parameter"]) == {"r", "alpha", "a", "b", "p", "q", "v"}


def test_rfm_columns_equal_the_rfm_model(
    first: dict[str, pd.DataFrame], features: pd.DataFrame
) -> None:
    scores = first["model_customer_scores"].set_index("customer_id")
    for scheme, column in (("cn8", "rfm_segment_cn"), ("en11", "rfm_segment_en")):
        model = RFMModel(scheme=scheme).fit(features)
        expected = model.scores_.set_index("customer_id")
        got = scores.loc[expected.index]
        assert (got[column] == expected["segment"]).all(), scheme
        for score in ("r_score", "f_score", "m_score", "recency_days", "frequency"):
            assert (got[score].astype(int) == expected[score]).all(), score
        assert np.allclose(got["monetary"], expected["monetary"])
        segments = first["model_segments"]
        mine = segments[segments["scheme"] == scheme].set_index("segment")
        summary = model.summary_
        assert mine["customers"].reindex(summary.index).tolist() == summary["customers"].tolist()
        assert np.allclose(mine.loc[summary.index, "revenue_share"], summary["revenue_share"])
        assert mine.loc[summary.index, "action_zh"].tolist() == summary["action_zh"].tolist()
    # customers without a purchase are in the table, with no RFM values
    buyers = scores["rfm_segment_cn"].notna()
    assert buyers.sum() == len(features) and (scores.loc[~buyers, "frequency"] == 0).all()


def test_clusters_and_lifecycle_equal_the_models(
    built: tuple[Warehouse, BuildReport, Any, Path],
    first: dict[str, pd.DataFrame],
    features: pd.DataFrame,
) -> None:
    wh = built[0]
    scores = first["model_customer_scores"].set_index("customer_id")
    clusters = CustomerClusters().fit(features)
    assert (scores.loc[clusters.labels_.index, "cluster"] == clusters.labels_).all()
    profile = first["model_clusters"].set_index("cluster")
    assert profile["customers"].tolist() == clusters.profile_["customers"].tolist()
    assert profile["label_en"].tolist() == clusters.profile_["label_en"].tolist()
    points = first["model_cluster_points"].set_index("customer_id")
    assert (points["cluster"] == scores.loc[points.index, "cluster"]).all()

    stages = LifecycleStages().fit(wh, as_of=AS_OF).stages_.set_index("customer_id")["stage"]
    assert sorted(stages.index) == sorted(scores.index)
    assert (scores.loc[stages.index, "lifecycle_stage"] == stages).all()
    lifecycle = first["model_segments"].query("scheme == 'lifecycle'")
    assert lifecycle["customers"].sum() == len(scores)


def test_clv_and_churn_columns_are_consistent(
    built: tuple[Warehouse, BuildReport, Any, Path], first: dict[str, pd.DataFrame]
) -> None:
    wh, report = built[0], built[1]
    scores = first["model_customer_scores"]
    buyers = scores[scores["frequency"] > 0]
    for column in ("p_alive", "churn_risk"):
        assert buyers[column].between(0, 1).all(), column
    assert (buyers["clv_12m"] >= 0).all() and (buyers["expected_purchases_90d"] >= 0).all()
    assert scores.loc[scores["frequency"] == 0, ["clv_12m", "churn_risk"]].isna().all().all()
    # customers who buy often and recently are worth more and at less risk than lapsed ones
    champions = buyers[buyers["rfm_segment_en"] == "Champions"]
    lost = buyers[buyers["rfm_segment_en"] == "Lost"]
    assert champions["clv_12m"].mean() > 10 * lost["clv_12m"].mean()
    assert champions["churn_risk"].mean() < lost["churn_risk"].mean()
    run = wh.execute(wh.table("model_runs")).iloc[0]
    assert run["churn_auc"] > run["churn_baseline_auc"] > 0.5
    assert run["clv_12m_total"] == pytest.approx(buyers["clv_12m"].sum())
    warned = scores[scores["early_warning"].eq(True)]
    assert (
        len(warned) == run["early_warning_customers"] == report.headline["early_warning_customers"]
    )
    assert (warned["recency_days"] <= 365).all()
    assert warned["churn_reasons_en"].notna().mean() > 0.9
    flags = ["warning_no_recent_order", "warning_falling_orders", "warning_recent_complaint"]
    fired = warned[flags].astype(bool).any(axis=1) | (warned["churn_risk"] >= 0.5)
    assert fired.all()
    assert scores.loc[scores["early_warning"].eq(False), flags].isna().all().all()


def test_personas_and_churned_purchases_recover_the_planted_story(
    built: tuple[Warehouse, BuildReport, Any, Path], first: dict[str, pd.DataFrame]
) -> None:
    wh, export = built[0], built[3]
    personas = first["model_personas"]
    assert set(personas["dimension"]) == {"member_tier", "rfm_segment_cn", "cluster"}
    tiers = personas[personas["dimension"] == "member_tier"].set_index("group_name")
    profile = tier_profile(wh, as_of=AS_OF)
    assert np.allclose(tiers.loc[profile.index, "revenue_share"], profile["revenue_share"])
    assert json.loads(tiers.loc["白金", "payment_mix"])["储值卡"] == pytest.approx(
        profile.loc["白金", "payment_储值卡"], abs=1e-4
    )
    top = tiers.loc[["白金", "黄金"]]
    assert top["member_share"].sum() < 0.45 and top["revenue_share"].sum() > 0.7
    assert tiers.loc["白金", "description_zh"].startswith("以40-60岁女性为主")

    planted = json.loads((export / "planted.json").read_text("utf-8"))["effects"]
    expected = planted["churned_categories"]["expected"]
    bought = first["model_churned_purchases"].set_index("category")
    assert set(bought.index[bought["rank_by_lines"].notna()]) == set(expected["top5_by_count"])
    assert set(bought.index[bought["sku_trend"] == "shrinking"]) == set(expected["shrinking"])
    counts = first["model_churned_sku_counts"]
    assert set(counts["month"]) >= {"2019-12", "2021-12"}
    assert set(counts["category"]) == set(bought.index[bought["sku_trend"].notna()])


def test_a_failed_build_leaves_the_previous_tables(
    built: tuple[Warehouse, BuildReport, Any, Path], first: dict[str, pd.DataFrame]
) -> None:
    wh = built[0]
    calls: list[tuple[str, int, int]] = []
    with pytest.raises(ConfigError, match="horizon_days"):
        build(
            wh,
            as_of=AS_OF,
            churn=ChurnModel(horizon_days=0),
            progress=lambda *a: calls.append(a),
        )
    # it failed in the churn step, after RFM, clusters, lifecycle and CLV were computed
    assert (STEPS["clv"], 1, 1) in calls and (STEPS["churn"], 0, 1) in calls
    assert (STEPS["write"], 0, 1) not in calls
    after = snapshot(wh)
    for name in OUTPUT_TABLES:
        pd.testing.assert_frame_equal(after[name], first[name], obj=name)
    runs = wh.execute(wh.table("model_runs")).sort_values("started_at", ignore_index=True)
    assert runs["status"].tolist() == ["ok", "failed"]
    assert "horizon_days" in runs.loc[1, "error"] and runs.loc[1, "as_of"] == pd.Timestamp(AS_OF)


def test_rebuilding_gives_the_same_tables(
    built: tuple[Warehouse, BuildReport, Any, Path], first: dict[str, pd.DataFrame]
) -> None:
    wh = built[0]
    build(wh, as_of=AS_OF)
    again = snapshot(wh)
    for name in OUTPUT_TABLES:
        pd.testing.assert_frame_equal(again[name], first[name], obj=name, rtol=1e-9)
    runs = wh.execute(wh.table("model_runs"))
    assert sorted(runs["status"]) == ["failed", "ok", "ok"]
    assert runs["build_id"].is_unique


def test_default_as_of_is_the_day_of_the_last_order(
    built: tuple[Warehouse, BuildReport, Any, Path],
) -> None:
    wh = built[0]
    last = wh.execute(wh.table("orders").order_time.max())
    assert pd.Timestamp(last).date() == AS_OF and default_as_of(wh) == AS_OF
    # a date is the end of that day: the last day's orders count, with recency 0
    features = wh.execute(customer_features(wh.table, as_of=default_as_of(wh)))
    last_day = features["last_order"].dt.date == AS_OF
    assert last_day.any() and (features.loc[last_day, "recency_days"] == 0).all()


def test_models_the_data_cannot_support_are_skipped(tmp_path: Path) -> None:
    """Ten weeks of orders and no products: churn and churned purchases are skipped, not fatal."""
    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 1, 10)
    customers = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(60)]})
    orders = []
    for i, customer in enumerate(customers["customer_id"]):
        for k in range(1 + i % 4):
            day = int(rng.integers(0, 70))
            orders.append((f"o{i}-{k}", customer, start + timedelta(days=day), 10.0 + i + 3 * k))
    frame = pd.DataFrame(orders, columns=["order_id", "customer_id", "order_time", "amount"])
    with Warehouse(tmp_path / "w.duckdb") as wh:
        wh.raw.register("customers_df", customers)
        wh.raw.register("orders_df", frame)
        wh.raw.execute("INSERT INTO customers (customer_id) SELECT customer_id FROM customers_df")
        wh.raw.execute(
            "INSERT INTO orders (order_id, customer_id, order_time, amount) "
            "SELECT order_id, customer_id, order_time, amount FROM orders_df"
        )
        report = build(wh)
        assert {"churn", "churned_purchases"} <= set(report.skipped)
        scores = wh.execute(wh.table("model_customer_scores"))
        assert len(scores) == 60 and scores["churn_risk"].isna().all()
        assert scores["rfm_segment_cn"].notna().all()
        run = wh.execute(wh.table("model_runs")).iloc[0]
        assert run["status"] == "ok" and "churn skipped" in run["error"]
        assert wh.row_count("model_churned_purchases") == 0


def test_replace_table_checks_the_data_against_the_declaration(tmp_path: Path) -> None:
    points = pd.DataFrame(
        {"customer_id": ["a", "b"], "cluster": [0, 1], "x": [0.5, 1.5], "y": [1.0, None]}
    )
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.replace_table(
            "model_cluster_points", points[["y", "x", "cluster", "customer_id"]]
        )
        got = wh.execute(wh.table("model_cluster_points").order_by("customer_id"))
        assert got["customer_id"].tolist() == ["a", "b"] and got["cluster"].tolist() == [0, 1]
        cases = [
            (points.drop(columns="y"), r"missing \['y'\]"),
            (points.assign(z=1), r"not declared \['z'\]"),
            (points.assign(cluster=[0.5, 1.0]), "cluster is declared int but holds floating"),
            (points.assign(x=["left", "right"]), "x is declared float but holds string"),
            (points.assign(customer_id=["a", None]), "customer_id is required but 1 row"),
            (points.assign(customer_id=["a", "a"]), "2 rows share a key"),
        ]
        for bad, message in cases:
            with pytest.raises(SchemaError, match=message):
                wh.replace_table("model_cluster_points", bad)
        with pytest.raises(ConfigError, match="unknown table"):
            wh.replace_table("model_points", points)
        assert wh.row_count("model_cluster_points") == 2  # every failure left the rows alone

        # a value only DuckDB rejects (out of BIGINT range) fails the second table's insert:
        # the first table's replacement is rolled back with it
        clusters = pd.DataFrame({"cluster": [7], "as_of": [AS_OF]})
        clusters = clusters.reindex(columns=list(table("model_clusters").column_names))
        overflow = points.assign(cluster=pd.Series([0, 2**70], dtype=object))
        with pytest.raises(WarehouseError, match="model_cluster_points: cannot write"):
            wh.replace_tables({"model_clusters": clusters, "model_cluster_points": overflow})
        assert wh.row_count("model_clusters") == 0 and wh.row_count("model_cluster_points") == 2

        with wh.transaction(), pytest.raises(WarehouseError, match="outside"):
            wh.replace_table("model_cluster_points", points)
    with (
        Warehouse(tmp_path / "w.duckdb", read_only=True) as wh,
        pytest.raises(WarehouseError, match="read-only"),
    ):
        wh.replace_table("model_cluster_points", points)


def test_derived_tables_are_written_with_the_replaced_tables_or_not_at_all(tmp_path: Path) -> None:
    """``replace_tables(..., derived=...)``: a derived table computed from a replaced table holds
    its new rows, and a derived table that fails to write rolls the replacement back."""
    points = pd.DataFrame(
        {"customer_id": ["a", "b"], "cluster": [0, 1], "x": [0.5, 1.5], "y": [1.0, None]}
    )
    with Warehouse(tmp_path / "w.duckdb") as wh:
        t = wh.table("model_cluster_points")
        per_cluster = t.group_by("cluster").aggregate(n=t.count())
        rows = wh.replace_tables(
            {"model_cluster_points": points}, derived={"derived__per_cluster": per_cluster}
        )
        assert rows == {"model_cluster_points": 2, "derived__per_cluster": 2}
        more = pd.concat([points, points.assign(customer_id=["c", "d"], cluster=[2, 2])])
        broken = t.select(n=t.customer_id.cast("int64"))  # 'a' is no number: fails as it runs
        with pytest.raises(WarehouseError, match="derived__broken: cannot write"):
            wh.replace_tables(
                {"model_cluster_points": more},
                derived={"derived__per_cluster": per_cluster, "derived__broken": broken},
            )
        assert wh.row_count("model_cluster_points") == 2
        assert wh.derived_names() == {"derived__per_cluster"}
        wh.replace_tables(
            {"model_cluster_points": more}, derived={"derived__per_cluster": per_cluster}
        )
        assert wh.execute(wh.derived_table("derived__per_cluster").n.sum()) == 4
        with pytest.raises(WarehouseError, match="not a derived table"):
            wh.replace_tables({"model_cluster_points": more}, derived={"orders": per_cluster})
