"""The model views against pandas over the same tables: scoped counts, grids, CLV, churn lists,
search and the 360 record; masking; errors before a build and for bad arguments."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.errors import ConfigError, NotBuiltError
from crmlens.ingest import load_demo_export
from crmlens.metrics import NotApplicableError, Scope
from crmlens.metrics.facts import CUSTOMER_SCORES, usable_derived
from crmlens.models import views
from crmlens.models.build import build
from crmlens.warehouse import Warehouse
from crmlens.warehouse.derived import drop_derived

SCOPE = Scope(date(2021, 1, 1), date(2021, 12, 31))
EAST = SCOPE.narrow(region="华东")
LIMITED = Scope(SCOPE.start, SCOPE.end, row_limits={"tier": ["白金", "黄金"]})


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    # the same folder as tests/api's fixture: in one session the demo is built once
    root = tmp_path_factory.getbasetemp() / "built-demo"
    root.mkdir(exist_ok=True)
    path, done = root / "demo.duckdb", root / "built.ok"
    if not done.exists():
        generate(DemoConfig(customers=3_000, seed=42, out_dir=root / "export"))
        with Warehouse(path) as rw:
            load_demo_export(rw, root / "export")
            build(rw)
        done.write_text("ok", encoding="utf-8")
    with Warehouse(path, read_only=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def frame(wh: Warehouse) -> pd.DataFrame:
    """Scores joined to the master record, in pandas: the oracle."""
    scores = wh.execute(wh.table("model_customer_scores"))
    customers = wh.execute(wh.table("customers"))
    return scores.merge(customers, on="customer_id", how="left")


def test_segment_counts_filtered_equal_pandas(wh: Warehouse, frame: pd.DataFrame) -> None:
    got = views.segment_counts(wh, EAST, "cn8").set_index("segment")
    east = frame[frame["region"] == "华东"].dropna(subset=["rfm_segment_cn"])
    want = east.groupby("rfm_segment_cn").agg(n=("customer_id", "size"), rev=("monetary", "sum"))
    assert got["customers"][got["customers"] > 0].to_dict() == want["n"].to_dict()
    assert got.loc[want.index, "revenue"].tolist() == pytest.approx(want["rev"].tolist())
    assert got["share"].sum() == pytest.approx(1.0)
    assert list(got["position"]) == sorted(got["position"])


def test_row_limits_apply_like_filters(wh: Warehouse, frame: pd.DataFrame) -> None:
    got = views.segment_counts(wh, LIMITED, "lifecycle")
    top = frame[frame["member_tier"].isin(["白金", "黄金"])]
    assert got["customers"].sum() == top["lifecycle_stage"].notna().sum()
    # a filter outside the limits sees nothing
    nothing = views.segment_counts(wh, LIMITED.narrow(tier="普通"), "lifecycle")
    assert nothing["customers"].sum() == 0


def test_rfm_grid_equals_pandas(wh: Warehouse, frame: pd.DataFrame) -> None:
    got = views.rfm_grid(wh, LIMITED)
    top = frame[frame["member_tier"].isin(["白金", "黄金"])].dropna(subset=["r_score"])
    want = top.groupby(["r_score", "f_score"]).agg(
        n=("customer_id", "size"), m=("monetary", "mean")
    )
    merged = got.set_index(["r_score", "f_score"]).join(want, how="outer")
    assert (merged["customers"] == merged["n"]).all()
    assert merged["mean_monetary"].tolist() == pytest.approx(merged["m"].tolist())


def test_clv_views_equal_pandas(wh: Warehouse, frame: pd.DataFrame) -> None:
    by_tier = views.clv_by(wh, SCOPE, "tier").set_index("tier")
    buyers = frame.dropna(subset=["clv_12m"])
    want = buyers.groupby("member_tier")["clv_12m"].agg(["size", "mean", "median", "sum"])
    assert by_tier["customers"].to_dict() == want["size"].to_dict()
    assert by_tier.loc[want.index, "median_clv_12m"].tolist() == pytest.approx(
        want["median"].tolist()
    )
    assert by_tier["share"].sum() == pytest.approx(1.0)
    hist = views.clv_distribution(wh, EAST, bins=7)
    east = buyers[buyers["region"] == "华东"]
    assert len(hist) == 7 and hist["customers"].sum() == len(east)
    assert hist["clv_total"].sum() == pytest.approx(east["clv_12m"].sum())
    assert hist["lower"].iloc[0] == pytest.approx(east["clv_12m"].min())
    assert hist["upper"].iloc[-1] == pytest.approx(east["clv_12m"].max())
    by_segment = views.clv_by(wh, SCOPE, "segment_cn8")
    assert by_segment["customers"].sum() == len(buyers)
    params = views.clv_params(wh)
    assert set(params["models"]) == {"bgnbd", "gamma_gamma"}
    assert set(params["models"]["bgnbd"]["parameters"]) == {"r", "alpha", "a", "b"}


def test_churn_risk_list_and_drivers(wh: Warehouse, frame: pd.DataFrame) -> None:
    page = views.churn_risk_list(wh, EAST, limit=10, offset=3, min_risk=0.4)
    east = frame[(frame["region"] == "华东") & (frame["churn_risk"] >= 0.4)]
    ranked = east.sort_values(["churn_risk", "customer_id"], ascending=[False, True])
    assert page["customer_id"].tolist() == ranked["customer_id"].iloc[3:13].tolist()
    assert views.churn_risk_count(wh, EAST, min_risk=0.4) == len(east)
    phones = ranked.set_index("customer_id").loc[page["customer_id"], "phone"]
    for masked, phone in zip(page["phone"], phones, strict=True):
        assert masked is None or masked == f"{phone[:3]}****{phone[-4:]}"
    assert page["churn_reasons_zh"].notna().all() and page["churn_reasons_en"].notna().all()

    drivers = views.churn_drivers(wh, SCOPE)
    warned = frame[frame["early_warning"].fillna(False).astype(bool)]
    assert drivers["customers"].max() <= len(warned)
    # every at-risk customer with a reason counts once per distinct driver
    per_customer = warned["churn_reasons_zh"].dropna().str.split("；").map(len)
    assert drivers["customers"].sum() <= per_customer.sum()
    assert drivers["customers"].iloc[0] == drivers["customers"].max()


def test_search_and_360(wh: Warehouse, frame: pd.DataFrame) -> None:
    one = frame.dropna(subset=["phone", "email"]).iloc[5]
    hits = views.search_customers(wh, one["phone"][-4:], limit=500)
    want = frame[frame["phone"].fillna("").str.endswith(one["phone"][-4:])]
    assert sorted(hits["customer_id"]) == sorted(want["customer_id"])
    named = views.search_customers(wh, one["name"], limit=100)
    assert one["customer_id"] in set(named["customer_id"])
    assert not named["name"].isin(frame["name"]).any()  # names masked
    assert views.search_customers(wh, one["customer_id"], scope=EAST.narrow(region="不存在")).empty

    record = views.customer_360(wh, one["customer_id"], SCOPE)
    assert record is not None
    orders = wh.execute(wh.table("orders"))
    mine = orders[orders["customer_id"] == one["customer_id"]]
    assert record["orders"]["orders"] == int((~mine["is_refund"].astype(bool)).sum())
    assert len(record["orders"]["latest"]) == min(len(mine), 50)
    assert record["profile"]["email"].endswith("@" + one["email"].split("@")[1])
    assert record["profile"]["email"] != one["email"]
    assert record["scores"]["customer_id"] == one["customer_id"]
    outside = "白金" if one["member_tier"] != "白金" else "普通"
    assert views.customer_360(wh, one["customer_id"], SCOPE.narrow(tier=outside)) is None
    assert views.customer_360(wh, "NO-SUCH-ID") is None


def test_tables_and_build(wh: Warehouse) -> None:
    assert views.segments(wh, "en11")["position"].tolist() == list(range(1, 12))
    assert len(views.clusters(wh)) >= 2
    assert views.cluster_points(wh)["cluster"].notna().all()
    tiers = views.personas(wh, "member_tier")
    assert isinstance(tiers["top_departments"].iloc[0], dict)
    purchases = views.churned_purchases(wh)
    assert purchases["rank_by_lines"].head(5).tolist() == [1, 2, 3, 4, 5]
    assert views.churned_sku_counts(wh)["month"].str.match(r"^\d{4}-\d{2}$").all()
    assert views.latest_build(wh)["status"] == "ok"


def test_bad_arguments_are_config_errors(wh: Warehouse) -> None:
    with pytest.raises(ConfigError, match="scheme"):
        views.segments(wh, "abc")
    with pytest.raises(ConfigError, match="kind"):
        views.personas(wh, "zodiac")
    with pytest.raises(ConfigError, match="cannot group CLV"):
        views.clv_by(wh, SCOPE, "order_channel")
    with pytest.raises(NotApplicableError, match="order_channel"):
        views.rfm_grid(wh, SCOPE.narrow(order_channel="POS"))
    with pytest.raises(ConfigError, match="limit"):
        views.churn_risk_list(wh, SCOPE, limit=0)
    with pytest.raises(ConfigError, match="search text"):
        views.search_customers(wh, "  ")


def test_masking() -> None:
    assert views.mask_phone("13812341234") == "138****1234"
    assert views.mask_phone(None) is None and views.mask_phone("123") == "****23"
    assert views.mask_email("zhang@qq.com") == "z***@qq.com"
    assert views.mask_email("not-an-email") == "***"
    assert views.mask_name("欧阳娜娜") == "欧**"


def test_before_a_build_views_raise_not_built(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "empty.duckdb") as empty:
        for call in (
            lambda: views.segments(empty, "cn8"),
            lambda: views.segment_counts(empty, SCOPE, "cn8"),
            lambda: views.rfm_grid(empty, SCOPE),
            lambda: views.clusters(empty),
            lambda: views.clv_params(empty),
            lambda: views.churn_risk_list(empty, SCOPE),
            lambda: views.churn_drivers(empty, SCOPE),
        ):
            with pytest.raises(NotBuiltError, match="crmlens build"):
                call()
        assert views.latest_build(empty) is None
        assert views.customer_360(empty, "M0000001") is None


@pytest.mark.parametrize(
    "scope",
    [
        SCOPE,
        EAST,
        SCOPE.narrow(city=["烟台"], tier=["白金"]),
        SCOPE.narrow(tier=["白银", "普通"]),
        SCOPE.narrow(customer_type=["企业"]),
        SCOPE.narrow(store=["S01"]),
        SCOPE.narrow(age_band=["30-39"], gender=["女"]),
        LIMITED,
    ],
    ids=["all", "region", "city_tier", "tiers", "type", "home_store", "age_gender", "limits"],
)
def test_views_read_the_same_from_the_derived_scores(
    wh: Warehouse, scope: Scope, tmp_path: Path
) -> None:
    """``crmlens build`` writes the scores with the customers' columns beside them (and copies by
    place and segment): the views give exactly what the join of the scores to the scoped
    customers gives, which they read once the derived tables are dropped."""
    assert CUSTOMER_SCORES in usable_derived(wh)
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(wh.path, copy)
    with Warehouse(copy) as plain:
        with plain.transaction() as con:
            drop_derived(con)
        assert usable_derived(plain) == {}
        for view, args in [
            (views.segment_counts, ("cn8",)),
            (views.rfm_grid, ()),
            (views.clv_distribution, ()),
            (views.clv_by, ("channel",)),
            (views.clv_by, ("city",)),
            (views.churn_drivers, ()),
        ]:
            got, want = view(wh, scope, *args), view(plain, scope, *args)
            pd.testing.assert_frame_equal(
                got, want, check_exact=False, rtol=1e-12, obj=view.__name__
            )
        page = {"limit": 30, "min_risk": 0.2}
        pd.testing.assert_frame_equal(
            views.churn_risk_list(wh, scope, **page), views.churn_risk_list(plain, scope, **page)
        )
        assert views.churn_risk_count(wh, scope) == views.churn_risk_count(plain, scope) > 0
