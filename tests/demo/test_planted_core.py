"""The core generator's planted effects are in the generated files, at their recorded size.

Every figure is recomputed here with plain pandas from the exported files only (cleaning the
planted dirt the way an analyst would), independently of the generator's internals, and compared
with the realised value recorded in ``planted.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate

END = pd.Timestamp("2021-12-31")
CHURN_CATEGORIES = {"膨化食品", "夹心面包", "巧克力", "绿叶菜", "杯面"}
TOP_TIERS = {"白金", "黄金"}


class Demo:
    """The generated files, read and cleaned once."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.planted: dict[str, Any] = json.loads((out / "planted.json").read_text("utf-8"))
        self.raw_members = pd.read_csv(
            out / "crm/members.csv", encoding="gbk", dtype=str, keep_default_na=False
        )
        self.members = self._members()
        self.stores = pd.read_csv(out / "crm/stores.csv", dtype=str)
        self.products = pd.read_csv(
            out / "shop/products.csv", dtype={"sku": str}, parse_dates=["listed_date"]
        )
        self.raw_orders = pd.read_csv(out / "shop/orders.csv", dtype=str, keep_default_na=False)
        self.orders = self._orders()
        self.raw_lines = pd.read_csv(
            out / "shop/order_lines.csv", dtype={"sku": str, "order_id": str}
        )
        self.targets = pd.read_csv(out / "planning/targets.csv", dtype={"period": str})

    def effect(self, name: str) -> dict[str, Any]:
        return self.planted["effects"][name]["realised"]

    def _members(self) -> pd.DataFrame:
        m = self.raw_members.drop_duplicates()
        m = m.sort_values("更新时间").drop_duplicates("会员卡号", keep="last")
        text = m["注册时间"].str.replace(r"(\d+)年(\d+)月(\d+)日", r"\1-\2-\3", regex=True)
        m = m.assign(signup=pd.to_datetime(text, format="mixed"))
        return m.set_index("会员卡号").sort_index()

    def _orders(self) -> pd.DataFrame:
        o = self.raw_orders.drop_duplicates().copy()
        o["order_time"] = pd.to_datetime(o["order_time"].replace("#N/A", ""), format="mixed")
        o["paid"] = o["paid_amount"].astype(float)
        # entry errors: a sale keyed with negative amounts (completed, no original order)
        entry_error = (
            (o["status"] == "completed") & (o["paid"] < 0) & (o["original_order_id"] == "")
        )
        o.loc[entry_error, "paid"] = -o.loc[entry_error, "paid"]
        o["tier"] = o["member_card_no"].map(self.members["会员等级"])
        return o


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo-core")
    generate(DemoConfig(customers=12_000, seed=11, out_dir=out))
    return Demo(out)


def _member_sales(demo: Demo) -> pd.DataFrame:
    o = demo.orders
    return o[(o["status"] == "completed") & (o["member_card_no"] != "")]


def _last_order(demo: Demo) -> pd.Series:
    sales = _member_sales(demo).dropna(subset=["order_time"])
    return sales.groupby("member_card_no")["order_time"].max().dt.normalize()


def _churned(demo: Demo) -> pd.Series:
    last = _last_order(demo)
    return last < pd.Timestamp("2021-10-03")


def test_tiers(demo: Demo) -> None:
    r = demo.effect("tiers")
    share = demo.members["会员等级"].value_counts(normalize=True)
    assert share["白金"] + share["黄金"] == pytest.approx(r["top_member_share"], abs=1e-4)
    assert r["top_member_share"] == pytest.approx(0.335, abs=0.001)

    members = demo.orders[demo.orders["member_card_no"] != ""]
    revenue = members.groupby("tier")["paid"].sum()
    top_share = revenue[list(TOP_TIERS)].sum() / revenue.sum()
    assert top_share == pytest.approx(r["top_revenue_share"], abs=0.002)
    assert top_share == pytest.approx(0.81, abs=0.04)

    sales = _member_sales(demo)
    stored = (sales["payment_method"] == "储值卡").groupby(sales["tier"].isin(TOP_TIERS)).mean()
    assert stored[True] == pytest.approx(r["stored_value_share_top"], abs=0.003)
    assert stored[False] == pytest.approx(r["stored_value_share_other"], abs=0.003)
    assert stored[True] > 0.45 and stored[False] < 0.2

    lines = demo.raw_lines.merge(members[["order_id", "tier"]].drop_duplicates(), on="order_id")
    lines = lines[lines["tier"].isin(TOP_TIERS)].merge(demo.products, on="sku")
    by_department = lines.groupby("department")["line_amount"].sum().sort_values()
    top5 = set(by_department.index[-5:])
    assert top5 == set(r["top5_departments"]) == {"南北干货", "蔬菜", "日配", "面包", "乳酸菌饮品"}


def test_demographics(demo: Demo) -> None:
    r = demo.effect("demographics")
    people = demo.members[demo.members["客户类型"] == "个人"]
    gender = people.loc[people["性别"] != "", "性别"]
    assert (gender == "女").mean() == pytest.approx(r["female_share"], abs=0.005)
    birth = pd.to_datetime(people.loc[people["出生日期"] != "", "出生日期"])
    age = END.year - birth.dt.year - ((birth.dt.month * 100 + birth.dt.day) > 1231)
    assert age.between(40, 60).mean() == pytest.approx(r["age_40_60_share"], abs=0.01)
    corporate = demo.members[demo.members["客户类型"] == "企业"]
    assert (corporate["性别"] == "").all() and (corporate["出生日期"] == "").all()


def test_member_targets(demo: Demo) -> None:
    r = demo.effect("member_targets")
    city_of = demo.stores.set_index("store_id")["city"]
    members = demo.members[demo.members["signup"] <= END + pd.Timedelta(days=1)]
    by_city = members["注册门店"].map(city_of).value_counts()
    stores = demo.stores[demo.stores["store_id"] != "S00"].groupby("city").size()
    t = demo.targets
    target = t[(t["metric"] == "members") & (t["dimension"] == "city") & (t["period"] == "2021-12")]
    target = target.set_index("dimension_value")["target_value"]
    met = sorted(c for c in target.index if by_city[c] >= target[c])
    assert met == r["cities_meeting_target"] == ["烟台"]
    per_store = (by_city / stores).dropna()
    assert per_store.idxmin() == r["fewest_members_per_store"] == "青岛"
    missing = [c for c in target.index if c != "烟台"]
    gap = (target[missing] - by_city[missing]).sum() / stores[missing].sum()
    assert gap == pytest.approx(r["mean_gap_per_store_missing_cities"], abs=0.1)
    store_targets = t[(t["metric"] == "members") & (t["dimension"] == "store")]
    assert store_targets["target_value"].sum() == target.sum()
    assert {"new_members", "revenue"} <= set(t["metric"])


def _monthly_change(series: pd.Series, first: str, last: str) -> float:
    now = series[first:last].mean()
    then = series[str(pd.Period(first) - 12) : str(pd.Period(last) - 12)].mean()
    return now / then - 1


def test_covid_dip(demo: Demo) -> None:
    r = demo.effect("covid_dip")
    months = pd.period_range("2019-01", "2021-12", freq="M")
    signup = demo.members["signup"].dt.to_period("M")
    new = signup.value_counts().reindex(months, fill_value=0)
    new.index = new.index.astype(str)
    assert new.to_dict() == {m: int(v) for m, v in r["monthly"]["new_members"].items()}
    assert _monthly_change(new, "2020-10", "2021-02") == pytest.approx(-0.35, abs=0.08)

    last = _last_order(demo)
    churn_month = (last[last < pd.Timestamp("2021-10-03")] + pd.Timedelta(days=90)).dt.to_period(
        "M"
    )
    churned = churn_month.value_counts().reindex(months, fill_value=0)
    churned.index = churned.index.astype(str)
    expected = pd.Series(r["monthly"]["churned"])
    assert (churned - expected).abs().max() <= max(3, 0.02 * expected.max())
    assert _monthly_change(churned, "2020-10", "2021-02") == pytest.approx(
        r["churned_change"], abs=0.03
    )
    assert _monthly_change(churned, "2020-10", "2021-02") > 0.25
    assert churned["2021-03":"2021-06"].mean() < churned["2020-10":"2021-02"].mean()

    sales = _member_sales(demo).dropna(subset=["order_time"])
    month = sales["order_time"].dt.to_period("M")
    counts = pd.crosstab(sales["member_card_no"], month).reindex(columns=months, fill_value=0)
    bought = counts.to_numpy() > 0
    recent = np.zeros_like(bought)
    for m in range(1, len(months)):
        recent[:, m] = bought[:, max(0, m - 6) : m].any(axis=1)
    per_active = pd.Series(
        (counts.to_numpy() * recent).sum(axis=0) / np.maximum(recent.sum(axis=0), 1),
        index=months.astype(str),
    )
    change = _monthly_change(per_active, "2020-10", "2021-02")
    assert change == pytest.approx(r["orders_per_active_change"], abs=0.02)
    assert change < -0.15

    aov = sales.groupby(month)["paid"].mean()
    aov.index = aov.index.astype(str)
    aov_change = _monthly_change(aov, "2020-10", "2021-02")
    assert aov_change == pytest.approx(r["aov_change"], abs=0.02)
    assert aov_change > 0.12


def test_kiosk_pilot(demo: Demo) -> None:
    r = demo.effect("kiosk_pilot")
    units = pd.read_csv(demo.out / "planning/experiment_units.csv")
    pilot = units[units["experiment_id"] == "EXP001"]
    treated = pilot.loc[pilot["variant"] == "treatment", "unit_id"].tolist()
    control = pilot.loc[pilot["variant"] == "control", "unit_id"].tolist()
    assert len(treated) == 3 and len(control) == 7
    m = demo.members
    year = m["signup"].dt.year

    def rate(stores: list[str], yr: int, mask: pd.Series | bool = True) -> float:
        return float((m["注册门店"].isin(stores) & (year == yr) & mask).sum()) / (len(stores) * 12)

    kiosk = m["注册方式"] == "自助入会机"
    did = (rate(treated, 2021) - rate(treated, 2020)) - (rate(control, 2021) - rate(control, 2020))
    assert did == pytest.approx(r["did"], abs=0.01)
    assert did / rate(treated, 2020) > 0.3
    assert rate(treated, 2021, kiosk) / rate(treated, 2020) == pytest.approx(0.6, abs=0.15)
    assert not (kiosk & ~m["注册门店"].isin(treated)).any()
    assert not (kiosk & (year < 2021)).any()


def test_churned_categories(demo: Demo) -> None:
    r = demo.effect("churned_categories")
    churned = _churned(demo)
    assert int(churned.sum()) == pytest.approx(r["churned_members"], abs=5)
    sales = _member_sales(demo)[["order_id", "member_card_no"]].drop_duplicates()
    lines = demo.raw_lines[demo.raw_lines["quantity"] > 0].merge(sales, on="order_id")
    lines = lines.merge(demo.products[["sku", "category"]], on="sku")
    lines["churned"] = lines["member_card_no"].map(churned)
    counts = lines.groupby(["churned", "category"]).size().unstack(0, fill_value=0)
    top_count = set(counts[True].nlargest(5).index)
    share = counts / counts.sum()
    lift = share[True] / share[False]
    assert top_count == set(r["top5_by_count"]) == CHURN_CATEGORIES
    assert set(lift.nlargest(5).index) == set(r["top5_by_lift"]) == CHURN_CATEGORIES

    p = demo.products
    delisted = pd.to_datetime(p["delisted_date"])

    def active(day: str) -> pd.Series:
        stamp = pd.Timestamp(day)
        return p[(p["listed_date"] <= stamp) & ~(delisted <= stamp)].groupby("category").size()

    change = active("2021-12-31") / active("2019-12-31") - 1
    for category in ("杯面", "巧克力", "膨化食品"):
        assert -0.40 <= change[category] <= -0.30
        assert change[category] == pytest.approx(r["sku_change"][category], abs=1e-4)
    for category in ("夹心面包", "绿叶菜"):
        assert change[category] >= 0


def test_customer_mix(demo: Demo) -> None:
    r = demo.effect("customer_mix")
    m = demo.members
    assert (m["客户类型"] == "企业").mean() == pytest.approx(r["corporate_share"], abs=1e-4)
    assert (m["注册门店"] == "").mean() == pytest.approx(r["online_signup_share"], abs=1e-4)
    assert (m["大区"] == "华东").mean() > 0.9 and m["大区"].nunique() >= 6
    sales = demo.orders[demo.orders["status"] == "completed"]
    online = sales["order_channel"].isin(["online", "app"]).mean()
    assert online == pytest.approx(r["online_order_share"], abs=0.003)
    walk_in = (sales["member_card_no"] == "").mean()
    assert walk_in == pytest.approx(0.10, abs=0.02)
    lines_per_member = len(demo.raw_lines) / len(m)
    assert 9 <= lines_per_member <= 13


def test_member_dirt_counts(demo: Demo) -> None:
    dirt = demo.planted["dirt"]
    raw = demo.raw_members
    exact = int(raw.duplicated().sum())
    assert exact == dirt["crm/members.csv.exact_duplicates"]
    key = int(raw.drop_duplicates().duplicated("会员卡号").sum())
    assert key == dirt["crm/members.csv.key_duplicates"]
    m = demo.members
    people = m["客户类型"] == "个人"
    assert int((people & (m["性别"] == "")).sum()) == dirt["crm/members.csv.missing_gender"]
    assert int((people & (m["出生日期"] == "")).sum()) == dirt["crm/members.csv.missing_birth_date"]
    valid_phone = m["手机号"].str.fullmatch(r"1[3-9]\d{9}")
    assert int((~valid_phone).sum()) == dirt["crm/members.csv.invalid_phone"]
    bad_email = (m["电子邮箱"] != "") & ~m["电子邮箱"].str.contains("@", regex=False)
    assert int(bad_email.sum()) == dirt["crm/members.csv.invalid_email"]
    iso = m["注册时间"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    assert int((~iso).sum()) == dirt["crm/members.csv.mixed_date_formats"]
    compact = m["注册时间"].str.fullmatch(r"\d{8}")
    assert int(compact.sum()) == dirt["crm/members.csv.date_format_compact"]


def test_shop_dirt_counts(demo: Demo) -> None:
    dirt = demo.planted["dirt"]
    raw = demo.raw_orders
    assert int(raw.duplicated().sum()) == dirt["shop/orders.csv.exact_duplicates"]
    o = raw.drop_duplicates()
    assert o["order_id"].is_unique
    paid = o["paid_amount"].astype(float)
    refunds = o[o["status"] == "refunded"]
    assert len(refunds) == dirt["shop/orders.csv.refunds"]
    assert (refunds["paid_amount"].astype(float) <= 0).all()
    assert refunds["original_order_id"].isin(o["order_id"]).all()
    entry = (o["status"] == "completed") & (paid < 0) & (o["original_order_id"] == "")
    assert int(entry.sum()) == dirt["shop/orders.csv.entry_errors"]
    assert int((o["order_time"] == "#N/A").sum()) == dirt["shop/orders.csv.bad_times"]
    slash = o["order_time"].str.fullmatch(r"\d{4}/\d{1,2}/\d{1,2} \d{2}:\d{2}")
    assert int(slash.sum()) == dirt["shop/orders.csv.old_till_time_format"]
    gross = o["gross_amount"].astype(float) - o["discount_amount"].astype(float)
    assert np.allclose(gross, paid, atol=0.005)

    lines = demo.raw_lines
    unknown = ~lines["sku"].isin(demo.products["sku"])
    assert int(unknown.sum()) == dirt["shop/order_lines.csv.unknown_sku"]
    assert int(lines["quantity"].isna().sum()) == dirt["shop/order_lines.csv.missing_quantity"]
    assert lines["order_id"].isin(o["order_id"]).all()
    sums = lines.groupby("order_id")["line_amount"].sum()
    clean = o[~entry].set_index("order_id")["gross_amount"].astype(float)
    assert np.allclose(sums.reindex(clean.index), clean, atol=0.005)
    assert re.fullmatch(r"O\d{10}", o["order_id"].iloc[0])
