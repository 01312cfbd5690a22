"""Measure the effects the core generator planted, on the truth it generated.

Each function returns one ``world.effects`` entry: requirement id, description, an exact definition
(phrased on the exported files, so a test or an analyst can recompute it independently), the
intended size, the realised value and a tolerance for tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmlens.demo.calendar import DIP_FIRST, DIP_LAST, RECOVERY_FIRST, RECOVERY_LAST, Calendar
from crmlens.demo.catalog import (
    CATEGORY_NAMES,
    CHURN_CATEGORIES,
    DEPARTMENTS,
    SHRINKING_CATEGORIES,
    TOP_TIER_DEPARTMENTS,
    active_sku_counts,
)
from crmlens.demo.commerce import PAYMENTS
from crmlens.demo.membership import CHURN_WINDOW_DAYS, TIER_SHARES, TIERS
from crmlens.demo.truth import TruthTally
from crmlens.demo.world import DemoWorld

Effect = dict[str, Any]

CHURN_DEFINITION = (
    "a member is churned if they have at least one completed order (shop/orders.csv status = "
    "completed) and no completed order dated 2021-10-03..2021-12-31 (the last 90 days before "
    "2021-12-31); a churned member 'becomes churned' in the month of (date of their last "
    "completed order + 90 days)"
)


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _series(months: pd.PeriodIndex, values: np.ndarray, digits: int = 4) -> dict[str, float]:
    return {str(m): _r(v, digits) for m, v in zip(months, values, strict=True)}


def _window(months: pd.PeriodIndex, first: pd.Period, last: pd.Period) -> np.ndarray:
    return np.asarray((months >= first) & (months <= last))


def tiers(world: DemoWorld, tally: TruthTally) -> Effect:
    """Tier shares of members and revenue, stored-value card use, top departments (A10)."""
    customers = world.customers
    member_share = customers["tier"].value_counts(normalize=True).reindex(list(TIERS))
    revenue = tally.net_revenue_by_tier[:4]
    revenue_share = revenue / revenue.sum()
    pay = tally.orders_by_tier_payment[:4]
    stored = pay[:, 0] / pay.sum(axis=1)
    top_orders = pay[:2].sum()
    low_orders = pay[2:].sum()
    dept_revenue = tally.line_revenue_by_tier_department[:2].sum(axis=0)
    ranking = [DEPARTMENTS[i] for i in np.argsort(-dept_revenue, kind="stable")]
    return {
        "requirement": "A10",
        "description": "白金+黄金 are about a third of members and four fifths of member revenue; "
        "they pay with 储值卡 far more often; their top-5 departments are 南北干货, 蔬菜, 日配, 面包, "
        "乳酸菌饮品.",
        "definition": "member share = members (crm/members.csv, one row per 会员卡号, newest 更新时间) "
        "per 会员等级 / all members; orders = shop/orders.csv without exact duplicate rows; revenue "
        "share = sum(paid_amount) over shop/orders.csv rows with "
        "a member_card_no (all statuses, so refunds net out; entry errors taken as positive) per tier "
        "/ total; stored-value share = orders with payment_method 储值卡 / orders, over completed "
        "member orders; department revenue = sum(line_amount) of order lines (refund lines "
        "included) of 白金/黄金 members' orders, by products.department",
        "expected": {
            "top_member_share": _r(TIER_SHARES[0] + TIER_SHARES[1]),
            "top_revenue_share": 0.81,
            "stored_value_share_top": 0.50,
            "stored_value_share_other": 0.15,
            "top5_departments": list(TOP_TIER_DEPARTMENTS),
        },
        "realised": {
            "member_share": {t: _r(v) for t, v in member_share.items()},
            "revenue_share": {t: _r(v) for t, v in zip(TIERS, revenue_share, strict=True)},
            "top_member_share": _r(member_share.iloc[:2].sum()),
            "top_revenue_share": _r(revenue_share[:2].sum()),
            "stored_value_share": {t: _r(v) for t, v in zip(TIERS, stored, strict=True)},
            "stored_value_share_top": _r(pay[:2, 0].sum() / top_orders),
            "stored_value_share_other": _r(pay[2:, 0].sum() / low_orders),
            "payment_mix_orders": {
                t: dict(zip(PAYMENTS.tolist(), map(int, row), strict=True))
                for t, row in zip(TIERS, pay, strict=True)
            },
            "top5_departments": ranking[:5],
            "top_department_revenue": {
                DEPARTMENTS[i]: _r(dept_revenue[i] / 100, 2) for i in np.argsort(-dept_revenue)[:8]
            },
        },
        "tolerance": {"share": 0.03, "stored_value_share": 0.03},
    }


def demographics(world: DemoWorld) -> Effect:
    """Gender and age mix of individual members (A10)."""
    people = world.customers[world.customers["customer_type"] == "个人"]
    end = pd.Timestamp(world.config.end)
    birth = people["birth_date"]
    age = (
        end.year
        - birth.dt.year
        - ((birth.dt.month * 100 + birth.dt.day) > end.month * 100 + end.day)
    )
    return {
        "requirement": "A10",
        "description": "Mostly women, mostly aged 40-60.",
        "definition": "over individual members (客户类型 = 个人, newest row per 会员卡号) with the "
        "field present: share with 性别 = 女; share with age in whole years on 2021-12-31 "
        "between 40 and 60 inclusive (企业 members have no gender or birth date)",
        "expected": {"female_share": 0.70, "age_40_60_share": 0.55},
        "realised": {
            "female_share": _r((people["gender"] == "女").mean()),
            "age_40_60_share": _r(((age >= 40) & (age <= 60)).mean()),
            "individuals": len(people),
        },
        "tolerance": 0.03,
    }


def _churners(tally: TruthTally, calendar: Calendar) -> np.ndarray:
    """Members becoming churned per month (90 days after their last completed order)."""
    last = tally.last_order_day
    churned = (last >= 0) & (last < calendar.n_days - CHURN_WINDOW_DAYS)
    churn_day = last[churned] + CHURN_WINDOW_DAYS
    return np.bincount(calendar.month_index[churn_day], minlength=len(calendar.months))


def covid_dip(world: DemoWorld, tally: TruthTally, calendar: Calendar) -> Effect:
    """Fewer sign-ups and visits, more churn, bigger baskets from 2020-10 to 2021-02 (M5)."""
    months = calendar.months
    signup = world.customers["signup_time"].dt.to_period("M")
    new = signup.value_counts().reindex(months, fill_value=0).to_numpy()
    churners = _churners(tally, calendar)
    active = tally.recent_buyers_by_month
    per_active = tally.repeat_orders_by_month / np.maximum(active, 1)
    orders = tally.member_orders_by_month
    aov = tally.member_paid_by_month / 100 / np.maximum(orders, 1)
    dip = _window(months, DIP_FIRST, DIP_LAST)
    before = _window(months, DIP_FIRST - 12, DIP_LAST - 12)
    recovery = _window(months, RECOVERY_FIRST, RECOVERY_LAST)
    recovery_before = _window(months, RECOVERY_FIRST - 12, RECOVERY_LAST - 12)

    def change(series: np.ndarray) -> float:
        # both windows have 5 months, so the ratio of sums equals the ratio of monthly means
        return _r(series[dip].mean() / series[before].mean() - 1)

    return {
        "requirement": "M5",
        "description": "COVID dip 2020-10..2021-02 vs the same months a year earlier: fewer new "
        "members, more members becoming churned, fewer orders per active member, higher AOV; "
        "recovery from 2021-03.",
        "definition": "orders = shop/orders.csv without exact duplicate rows, rows with an "
        "unparseable order_time left out; new members: members by month of 注册时间; churned per "
        "month: "
        + CHURN_DEFINITION
        + "; active members of a month: members with at least one completed order in the 6 "
        "calendar months before it; orders per active member: completed orders in the month by "
        "those members / their number; AOV: mean "
        "paid_amount of completed member orders in the month. Window change = "
        "mean of the monthly values over 2020-10..2021-02 / mean over 2019-10..2020-02 - 1; "
        "recovery = mean over 2021-03..2021-06 / mean "
        "over the dip months - 1",
        "expected": {
            "new_members_change": -0.35,
            "churned_change": 0.50,
            "orders_per_active_change": -0.25,
            "aov_change": 0.20,
            "recovery_new_members_change": "> 0",
            "recovery_churned_change": "< 0",
        },
        "realised": {
            "new_members_change": change(new),
            "churned_change": change(churners),
            "orders_per_active_change": change(per_active),
            "aov_change": change(aov),
            "recovery_new_members_change": _r(new[recovery].mean() / new[dip].mean() - 1),
            "recovery_churned_change": _r(churners[recovery].mean() / churners[dip].mean() - 1),
            "recovery_new_members_yoy": _r(new[recovery].mean() / new[recovery_before].mean() - 1),
            "recovery_churned_yoy": _r(
                churners[recovery].mean() / churners[recovery_before].mean() - 1
            ),
            "monthly": {
                "new_members": _series(months, new, 0),
                "churned": _series(months, churners, 0),
                "active_members": _series(months, active, 0),
                "orders_per_active_member": _series(months, per_active),
                "aov": _series(months, aov, 2),
            },
        },
        "tolerance": {"relative_change": 0.08},
    }


def kiosk_pilot(world: DemoWorld, calendar: Calendar) -> Effect:
    """Kiosk sign-ups lift new members in the 3 treatment stores from 2021-01 (A8)."""
    stores = world.stores
    pilot = stores[stores["in_pilot"]]
    treated = pilot.loc[pilot["kiosk_from"].notna(), "store_id"].tolist()
    control = pilot.loc[pilot["kiosk_from"].isna(), "store_id"].tolist()
    c = world.customers
    month = c["signup_time"].dt.to_period("M")
    year = c["signup_time"].dt.year
    kiosk = c["signup_method"] == "自助入会机"

    def per_store_month(ids: list[str], yr: int, mask: pd.Series | None = None) -> float:
        selected = c["home_store_id"].isin(ids) & (year == yr)
        if mask is not None:
            selected &= mask
        return float(selected.sum()) / (len(ids) * 12)

    t20, t21 = per_store_month(treated, 2020), per_store_month(treated, 2021)
    c20, c21 = per_store_month(control, 2020), per_store_month(control, 2021)
    t21_other = per_store_month(treated, 2021, ~kiosk)
    t21_kiosk = per_store_month(treated, 2021, kiosk)
    in_period = (month >= calendar.months[0]) & (month <= calendar.months[-1])
    table = (
        c[in_period & c["home_store_id"].isin(treated + control)]
        .assign(group=lambda f: np.where(f["home_store_id"].isin(treated), "treatment", "control"))
        .groupby(["group", month.rename("m")])
        .size()
        .unstack(0, fill_value=0)
        .reindex(calendar.months, fill_value=0)
    )
    per_store = table / pd.Series({"treatment": len(treated), "control": len(control)})
    return {
        "requirement": "A8",
        "description": "Self-service sign-up kiosks (注册方式 自助入会机) in 3 of 10 pilot stores from "
        "2021-01 add about 60 % of the stores' 2020 monthly intake; other sign-up methods there "
        "follow the control stores' trend.",
        "definition": "new members per store-month = members with 注册门店 = store and 注册时间 in "
        "the year, / (stores × 12); pilot stores and groups from planning/experiment_units.csv; "
        "DiD = (treatment 2021 - treatment 2020) - (control 2021 - control 2020); kiosk uplift = "
        "treatment 2021 自助入会机 sign-ups per store-month / treatment 2020 per store-month; "
        "other-method ratio = treatment non-kiosk 2021/2020 per store-month vs control 2021/2020",
        "expected": {"kiosk_uplift": 0.60, "did_relative_to_treatment_2020": 0.60},
        "realised": {
            "treatment_stores": treated,
            "control_stores": control,
            "treatment_2020": _r(t20, 2),
            "treatment_2021": _r(t21, 2),
            "control_2020": _r(c20, 2),
            "control_2021": _r(c21, 2),
            "did": _r((t21 - t20) - (c21 - c20), 2),
            "did_relative_to_treatment_2020": _r(((t21 - t20) - (c21 - c20)) / t20),
            "kiosk_uplift": _r(t21_kiosk / t20),
            "treatment_other_methods_ratio": _r(t21_other / t20),
            "control_ratio": _r(c21 / c20),
            "monthly_new_per_store": {
                g: _series(calendar.months, per_store[g].to_numpy(), 2) for g in per_store
            },
        },
        "tolerance": {"relative": 0.15},
    }


def churned_categories(world: DemoWorld, tally: TruthTally, calendar: Calendar) -> Effect:
    """What churned members bought, and the SKU ranges that shrank (A6)."""
    lines = tally.member_lines_by_category
    churned_share = lines[1] / lines[1].sum()
    other_share = lines[0] / lines[0].sum()
    lift = churned_share / np.maximum(other_share, 1e-12)
    by_count = [CATEGORY_NAMES[i] for i in np.argsort(-lines[1], kind="stable")[:5]]
    by_lift = [CATEGORY_NAMES[i] for i in np.argsort(-lift, kind="stable")[:5]]
    months = pd.period_range("2019-12", calendar.months[-1], freq="M")
    counts = active_sku_counts(world.products, months)
    sku_change = (counts["2021-12"] / counts["2019-12"] - 1).reindex(list(CHURN_CATEGORIES))
    churned = int(world.customers["churned"].sum())
    buyers = int(world.customers["buyer"].sum())
    return {
        "requirement": "A6",
        "description": "Churned members' top-5 categories are 膨化食品, 夹心面包, 巧克力, 绿叶菜, 杯面, "
        "by line count and by lift; SKUs on sale shrink for 杯面, 巧克力, 膨化食品 but not for "
        "夹心面包, 绿叶菜.",
        "definition": CHURN_DEFINITION + "; lines = shop/order_lines.csv rows with quantity > 0 "
        "of completed member orders, category from shop/products.csv; lift = category share of "
        "churned members' lines / category share of the other buying members' lines; active SKUs "
        "at a month end = products with listed_date <= that day and delisted_date empty or later; "
        "change = 2021-12 / 2019-12 - 1",
        "expected": {
            "top5_by_count": sorted(CHURN_CATEGORIES),
            "top5_by_lift": sorted(CHURN_CATEGORIES),
            "sku_change_shrinking": [-0.40, -0.30],
            "sku_change_stable": ">= -0.05",
            "shrinking": list(SHRINKING_CATEGORIES),
        },
        "realised": {
            "churned_members": churned,
            "churned_share_of_buyers": _r(churned / max(buyers, 1)),
            "top5_by_count": by_count,
            "top5_by_lift": by_lift,
            "churn_category_line_share": {
                c: _r(churned_share[CATEGORY_NAMES.index(c)]) for c in CHURN_CATEGORIES
            },
            "lift": {c: _r(lift[CATEGORY_NAMES.index(c)], 3) for c in CHURN_CATEGORIES},
            "sixth_highest_lift": _r(np.sort(lift)[-6], 3),
            "sku_change": {c: _r(v) for c, v in sku_change.items()},
            "active_skus": {
                c: {m: int(counts.loc[c, m]) for m in ("2019-12", "2020-12", "2021-12")}
                for c in CHURN_CATEGORIES
            },
        },
        "tolerance": {"sku_change": 0.0, "top5_sets": "exact"},
    }


def customer_mix(world: DemoWorld, tally: TruthTally) -> Effect:
    """企业 vs 个人, regions, online sign-ups and online orders (M3)."""
    c = world.customers
    return {
        "requirement": "M3",
        "description": "About 5 % corporate customers; mostly 华东 (Shandong) with online customers "
        "nationwide; online sign-ups and online/app orders.",
        "definition": "shares over members (newest row per 会员卡号): 客户类型, 大区, 注册门店 empty "
        "(online sign-up); online order share = completed orders with order_channel online or "
        "app / completed orders; walk-in share = completed orders without member_card_no / "
        "completed orders",
        "expected": {"corporate_share": 0.05, "online_signup_share": 0.14},
        "realised": {
            "corporate_share": _r((c["customer_type"] == "企业").mean()),
            "region_share": {k: _r(v) for k, v in c["region"].value_counts(normalize=True).items()},
            "shandong_share": _r((c["province"] == "山东").mean()),
            "online_signup_share": _r(c["home_store_id"].isna().mean()),
            "online_order_share": _r(tally.online_orders / tally.sales_orders),
            "walk_in_order_share": _r(tally.walk_in_orders / tally.sales_orders),
            "order_lines_per_member": _r(tally.line_rows / len(c), 2),
        },
        "tolerance": 0.02,
    }
