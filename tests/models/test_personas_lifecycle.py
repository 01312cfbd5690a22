"""Features, lifecycle stages and personas on a small hand-made warehouse with known answers.

The shop (as of 2024-06-30, windows of 90 days):

=====  ==============================================================  ==================
who    history                                                         stage at 06-30
=====  ==============================================================  ==================
A      signed up 06-01, never bought                                   acquisition
B      one order 06-20 (80), partly refunded (-30) on 06-22             activation
C      orders 03-01 (100), 05-15 (50), 06-10 (50): recent = previous   retention
D      orders 02-15 (100, -10 refunded 03-05), 06-01 (150): growth     revenue_growth
E      one order 06-25, referred F; an unlinked refund of -5           referral
F      signed up 06-26 (referred by E), never bought                   acquisition
G      last order 03-15 (107 days), referred H                         at_risk (not referral)
H      last order 2023-12-01 (212 days)                                churned
I      signed up and bought after 06-30                                (not yet a customer)
J      orders 06-01 and 06-15, nothing before                          retention (no base to grow)
K      last order 04-01, exactly 90 days                               at_risk
L      last order 01-02, exactly 180 days                              churned
X      bought 06-28, not in the customers table                        activation
(none) a walk-in order of 999 without a customer                       excluded
=====  ==============================================================  ==================
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import ConfigError, NotFittedError
from crmlens.models.features import customer_features, transactions
from crmlens.models.lifecycle import STAGES, LifecycleStages
from crmlens.models.personas import Persona, persona, personas, tier_profile
from crmlens.models.rfm import ABSENT
from crmlens.warehouse import Warehouse

AS_OF = date(2024, 6, 30)

# fmt: off
CUSTOMERS = [
    # id, gender, birth, city, tier, signup, referrer
    ("A", "女", "1975-01-01", "烟台", "普通", "2024-06-01", None),
    ("B", "男", "2000-05-05", "青岛", "普通", "2023-01-01", None),
    ("C", "女", "1983-01-01", "烟台", "白金", "2023-01-01", None),
    ("D", "女", "1965-01-01", "烟台", "白金", "2023-01-01", None),
    ("E", "女", "1974-01-01", "济南", "白金", "2023-01-01", None),
    ("F", "男", "1999-09-09", "青岛", "普通", "2024-06-26", "E"),
    ("G", "男", "1995-02-02", "青岛", "普通", "2023-01-01", None),
    ("H", "女", "1990-10-10", "青岛", "普通", "2023-06-01", "G"),
    ("I", "男", "1985-01-01", "青岛", "普通", "2024-07-05", None),
    ("J", "男", "2001-01-01", "青岛", "普通", "2023-01-01", None),
    ("K", None, None, None, None, "2023-01-01", None),
    ("L", "男", "1960-01-01", "潍坊", "普通", "2023-01-01", None),
]
PRODUCTS = [("P1", "南北干货", "红枣枸杞"), ("P2", "蔬菜", "绿叶菜"), ("P3", "日配", "豆制品"), ("P4", "酒水饮料", "啤酒")]
ORDERS = [
    # id, customer, time, amount, payment, channel, refund of, sku
    ("b1", "B", "2024-06-20 10:15", 80, "微信支付", "POS", None, "P4"),
    ("rb1", "B", "2024-06-22 11:00", -30, "微信支付", "POS", "b1", "P4"),
    ("c1", "C", "2024-03-01 09:00", 100, "储值卡", "POS", None, "P1"),
    ("c2", "C", "2024-05-15 09:30", 50, "储值卡", "POS", None, "P2"),
    ("c3", "C", "2024-06-10 09:45", 50, "储值卡", "app", None, "P2"),
    ("rc3", "C", "2024-07-02 10:00", -50, "储值卡", "app", "c3", "P2"),
    ("d1", "D", "2024-02-15 09:10", 100, "储值卡", "POS", None, "P1"),
    ("rd1", "D", "2024-03-05 09:00", -10, "储值卡", "POS", "d1", None),
    ("d2", "D", "2024-06-01 09:20", 150, "储值卡", "POS", None, "P3"),
    ("e1", "E", "2024-06-25 18:00", 60, "储值卡", "POS", None, "P1"),
    ("re", "E", "2024-06-26 18:00", -5, "储值卡", "POS", "", None),
    ("g1", "G", "2024-03-15 19:00", 40, "微信支付", "POS", None, "P4"),
    ("h1", "H", "2023-12-01 19:30", 30, "微信支付", "POS", None, "P4"),
    ("i1", "I", "2024-07-06 12:00", 500, "微信支付", "POS", None, "P4"),
    ("j1", "J", "2024-06-01 20:00", 20, "支付宝", "POS", None, "P4"),
    ("j2", "J", "2024-06-15 20:00", 20, "支付宝", "POS", None, "P4"),
    ("k1", "K", "2024-04-01 08:00", 10, "现金", "POS", None, "P4"),
    ("l1", "L", "2024-01-02 08:00", 10, "现金", "POS", None, "P4"),
    ("x1", "X", "2024-06-28 12:00", 70, "微信支付", "online", None, "P4"),
    ("w1", None, "2024-06-29 12:00", 999, "现金", "POS", None, "P4"),
]
# fmt: on


def insert(wh: Warehouse, table: str, frame: pd.DataFrame) -> None:
    wh.raw.register("incoming", frame)
    wh.raw.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    wh.raw.unregister("incoming")


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    warehouse = Warehouse(Path(tmp_path_factory.mktemp("shop")) / "w.duckdb")
    customers = pd.DataFrame(
        CUSTOMERS,
        columns=[
            "customer_id",
            "gender",
            "birth_date",
            "city",
            "member_tier",
            "signup_date",
            "referrer_id",
        ],
    )
    customers["birth_date"] = pd.to_datetime(customers["birth_date"]).dt.date
    customers["signup_date"] = pd.to_datetime(customers["signup_date"])
    customers["region"] = np.where(customers["city"].notna(), "华东", None)
    insert(warehouse, "customers", customers)
    insert(warehouse, "products", pd.DataFrame(PRODUCTS, columns=["sku", "department", "category"]))
    orders = pd.DataFrame(
        ORDERS,
        columns=[
            "order_id",
            "customer_id",
            "order_time",
            "amount",
            "payment_method",
            "order_channel",
            "original_order_id",
            "sku",
        ],
    )
    orders["order_time"] = pd.to_datetime(orders["order_time"])
    orders["amount"] = orders["amount"].astype(float)
    orders["is_refund"] = orders["amount"] < 0
    orders["original_order_id"] = orders["original_order_id"].replace("", None)
    insert(warehouse, "orders", orders.drop(columns="sku"))
    lines = orders[orders["sku"].notna()][["order_id", "sku", "amount"]].assign(line_no=1)
    insert(warehouse, "order_lines", lines)
    yield warehouse
    warehouse.close()


# -- features ---------------------------------------------------------------------------------
def features_at(wh: Warehouse, **kwargs) -> pd.DataFrame:
    return wh.execute(customer_features(wh.table, **kwargs)).set_index("customer_id")


def test_feature_rules(wh: Warehouse) -> None:
    f = features_at(wh, as_of=AS_OF)
    assert set(f.index) == {"B", "C", "D", "E", "G", "H", "J", "K", "L", "X"}  # no walk-in, no I
    assert (f.loc["B", "frequency"], f.loc["B", "monetary"]) == (1, 50.0)  # refund netted
    assert f.loc["C", "monetary"] == 200.0  # the refund on 07-02 is after as_of
    assert f.loc["E", "monetary"] == 55.0  # unlinked refund charged to the customer
    assert (f.loc["C", "recency_days"], f.loc["C", "tenure_days"]) == (20, 121)
    assert f.loc["K", "recency_days"] == 90 and f.loc["L", "recency_days"] == 180
    assert f.loc["D", "aov"] == 120.0
    assert f.loc["C", "first_order"] == pd.Timestamp("2024-03-01 09:00")

    window = features_at(wh, as_of=AS_OF, since=date(2024, 3, 1))
    assert "H" not in window.index and "L" not in window.index
    assert window.loc["C", "frequency"] == 3  # since is inclusive
    # D's refund on 03-05 belongs to the 02-15 order, outside the window
    assert (window.loc["D", "frequency"], window.loc["D", "monetary"]) == (1, 150.0)


def test_as_of_datetime_is_inclusive(wh: Warehouse) -> None:
    at = features_at(wh, as_of=datetime(2024, 6, 10, 9, 45))
    assert at.loc["C", "frequency"] == 3 and at.loc["C", "recency_days"] == 0
    before = features_at(wh, as_of=datetime(2024, 6, 10, 9, 44))
    assert before.loc["C", "frequency"] == 2
    with pytest.raises(ConfigError, match="as_of must be a date"):
        customer_features(wh.table, as_of="2024-06-30")


def test_transactions_net_of_linked_refunds(wh: Warehouse) -> None:
    tx = wh.execute(transactions(wh.table, as_of=date(2024, 7, 31))).set_index("order_id")
    assert tx.loc["b1", "amount"] == 50.0 and tx.loc["c3", "amount"] == 0.0
    assert "rb1" not in tx.index and "w1" not in tx.index and "re" not in tx.index
    assert tx.loc["i1", "customer_id"] == "I"


# -- lifecycle --------------------------------------------------------------------------------
EXPECTED_STAGES = {
    "A": "acquisition",
    "B": "activation",
    "C": "retention",
    "D": "revenue_growth",
    "E": "referral",
    "F": "acquisition",
    "G": "at_risk",
    "H": "churned",
    "J": "retention",
    "K": "at_risk",
    "L": "churned",
    "X": "activation",
}


def test_every_lifecycle_rule(wh: Warehouse) -> None:
    model = LifecycleStages().fit(wh, as_of=AS_OF)
    stages = model.stages_.set_index("customer_id")["stage"].to_dict()
    assert stages == EXPECTED_STAGES
    facts = model.stages_.set_index("customer_id")
    assert (facts.loc["C", "spend_recent"], facts.loc["C", "spend_previous"]) == (100.0, 100.0)
    assert (facts.loc["D", "spend_recent"], facts.loc["D", "spend_previous"]) == (150.0, 90.0)
    assert facts.loc["G", "referrals"] == 1 and facts.loc["E", "referrals"] == 1
    summary = model.summary_
    assert list(summary.index) == list(STAGES)
    assert summary.loc["acquisition", "customers"] == 2 and summary["share"].sum() == 1.0
    assert summary.loc["churned", "name_zh"] == "已流失"


def test_parameters_move_the_boundaries(wh: Warehouse) -> None:
    # C grows by 100/100 = 1.0: revenue growth once the ratio asks for no more than that
    lenient = LifecycleStages(growth_ratio=1.0).fit(wh, as_of=AS_OF)
    assert lenient.stages_.set_index("customer_id").loc["C", "stage"] == "revenue_growth"
    # with activation_orders=3, D (two orders) is still being activated
    strict = LifecycleStages(activation_orders=3).fit(wh, as_of=AS_OF)
    assert strict.stages_.set_index("customer_id").loc["D", "stage"] == "activation"


def test_transitions(wh: Warehouse) -> None:
    model = LifecycleStages().fit(wh, as_of=AS_OF)
    matrix = model.transitions(date(2024, 3, 31), AS_OF)
    moves = {
        ("acquisition", "activation"): 1,  # B
        ("acquisition", "referral"): 1,  # E (F signed up after 03-31)
        ("acquisition", "retention"): 1,  # J
        ("acquisition", "at_risk"): 1,  # K
        ("activation", "retention"): 1,  # C
        ("activation", "revenue_growth"): 1,  # D
        ("activation", "churned"): 1,  # L (89 days on 03-31)
        ("referral", "at_risk"): 1,  # G, who had referred H and bought 03-15
        ("at_risk", "churned"): 1,  # H
        (ABSENT, "acquisition"): 2,  # A and F
        (ABSENT, "activation"): 1,  # X
    }
    assert list(matrix.index) == list(matrix.columns) == [*STAGES, ABSENT]
    for (before, after), count in moves.items():
        assert matrix.loc[before, after] == count, (before, after)
    assert matrix.to_numpy().sum() == sum(moves.values())
    assert model.transitions(AS_OF, AS_OF).to_numpy().trace() == len(EXPECTED_STAGES)
    with pytest.raises(ConfigError, match="must not be before"):
        model.transitions(AS_OF, date(2024, 1, 1))


def test_lifecycle_errors() -> None:
    with pytest.raises(NotFittedError):
        LifecycleStages().transitions(date(2024, 1, 1), AS_OF)
    with pytest.raises(ConfigError, match="churn_days"):
        LifecycleStages(active_days=90, churn_days=60).assign(pd.DataFrame())
    with pytest.raises(ConfigError, match="growth_ratio"):
        LifecycleStages(growth_ratio=0).assign(pd.DataFrame())
    with pytest.raises(ConfigError, match="missing columns"):
        LifecycleStages().assign(pd.DataFrame({"customer_id": ["a"]}))


# -- personas ---------------------------------------------------------------------------------
def test_tier_personas(wh: Warehouse) -> None:
    found = persona(wh, "member_tier", as_of=AS_OF)
    assert list(found) == ["白金", "普通", "未知"]
    top = found["白金"]
    assert isinstance(top, Persona)
    assert (top.customers, top.buyers, top.revenue) == (3, 3, 495.0)
    assert top.member_share == pytest.approx(3 / 11)  # I signed up after as_of
    assert top.revenue_share == pytest.approx(495 / 675)  # X is not a member, the walk-in neither
    assert top.gender == {"女": 1.0}
    assert top.age_window == (40, 60, 1.0)
    assert top.age_bands["40-49"] == pytest.approx(1 / 3) and top.age_bands["50-59"] == 2 / 3
    assert list(top.departments) == ["南北干货", "日配", "蔬菜"]
    assert top.departments["南北干货"] == pytest.approx(260 / 510)
    assert top.payments == {"储值卡": 1.0}
    assert top.channels["POS"] == pytest.approx(5 / 6)
    assert list(top.hours) == [9, 18]
    assert top.cities == pytest.approx({"烟台": 2 / 3, "济南": 1 / 3})
    assert top.description_zh == (
        "以40-60岁女性为主，主要在烟台、济南，偏好南北干货、日配、蔬菜，常用储值卡支付，"
        "多在门店下单，购物时间集中在9点、18点。"
    )
    assert top.description_en == (
        "Mostly women aged 40-60, mainly in 烟台 and 济南, who favour 南北干货, 日配 and 蔬菜, "
        "usually pay with 储值卡, mostly order in store, and shop around 9:00 and 18:00."
    )
    low = found["普通"]
    assert low.revenue == 170.0  # B's refund line and order net to 50
    assert low.departments == {"酒水饮料": 1.0}
    assert "常用微信支付，" in low.description_zh  # no doubled 支付
    assert found["未知"].gender == {} and found["未知"].customers == 1


def test_persona_of_ids_and_of_a_series(wh: Warehouse) -> None:
    picked = persona(wh, ["C", "D"], as_of=AS_OF)
    assert picked.group == "selected" and picked.customers == 2
    assert picked.member_share == pytest.approx(2 / 11)
    assert picked.revenue == 440.0
    groups = pd.Series({"C": "vip", "D": "vip", "B": "new", "X": "new"})
    by_group = persona(wh, groups, as_of=AS_OF)
    assert set(by_group) == {"vip", "new"}
    assert by_group["new"].revenue == 120.0 and by_group["new"].member_share == 0.5
    assert by_group["new"].channels == {"POS": 0.5, "online": 0.5}
    with pytest.raises(ConfigError, match="none of the given customer ids"):
        persona(wh, ["nobody"], as_of=AS_OF)
    with pytest.raises(ConfigError, match="no column"):
        persona(wh, "shoe_size", as_of=AS_OF)


def test_personas_of_several_groupings_at_once(wh: Warehouse) -> None:
    """One pass for three groupings gives what three separate calls give."""
    groups = pd.Series({"C": "vip", "D": "vip", "B": "new", "X": "new"})
    together = personas(
        wh, {"tier": "member_tier", "groups": groups, "picked": ["C", "D"]}, as_of=AS_OF
    )
    alone = {
        "tier": persona(wh, "member_tier", as_of=AS_OF),
        "groups": persona(wh, groups, as_of=AS_OF),
        "picked": {"selected": persona(wh, ["C", "D"], as_of=AS_OF)},
    }
    for name, expected in alone.items():
        got = together[name]
        assert set(expected) <= set(got), name
        for group, p in expected.items():
            # the same figures (sums may be added in another order), mixes in the same order
            assert _close(asdict(got[group]), asdict(p)), (name, group)
    assert set(together["picked"]) == {"selected", "others"}


def _close(a: object, b: object) -> bool:
    """Equal, floats to 1e-12 (relative), inside dicts, tuples and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, nan_ok=True)
    return a == b


def test_tier_profile(wh: Warehouse) -> None:
    profile = tier_profile(wh, as_of=AS_OF)
    assert list(profile.index) == ["白金", "普通", "未知"]
    assert profile["member_share"].sum() == pytest.approx(1.0)
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    assert (
        profile.loc["白金", "payment_储值卡"] == 1.0
        and profile.loc["普通", "payment_储值卡"] == 0.0
    )
    assert profile.loc["白金", "top_departments"][:2] == ["南北干货", "日配"]
    assert profile.loc["白金", "gender_女"] == 1.0
