"""Planning exports: ``planning/targets.csv``, ``planning/experiments.csv`` and
``planning/experiment_units.csv``, plus the ``member_targets`` effect.

Member targets for 2021-12 follow seed 000 ①: only 烟台 reaches its member target; every other city
misses it by about 31 % of its members (the seed's ~1,100 members per store at ~3,500 members per
store), and 青岛 has the fewest members per store. New-member targets per city and month and revenue
targets per month let attainment be computed over time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmlens.demo.calendar import Calendar
from crmlens.demo.geography import ONLINE_STORE
from crmlens.demo.truth import TruthTally
from crmlens.demo.world import DemoWorld

TARGETS_FILE = "planning/targets.csv"
EXPERIMENTS_FILE = "planning/experiments.csv"
UNITS_FILE = "planning/experiment_units.csv"
TARGET_PERIOD = "2021-12"
MEETS_TARGET = "烟台"
# the seed's gap (~1,100 members per store) relative to a store's ~3,500 members
GAP_SHARE = 1_100 / 3_500
MEETING_ATTAINMENT = 1.04  # 烟台's members / target
NEW_MEMBER_GROWTH = 1.08  # new-member targets: same month last year + 8 %
REVENUE_GROWTH = 1.06
KIOSK_EXPERIMENT = "EXP001"
AB_EXPERIMENT = "EXP002"


def _members_by_store(world: DemoWorld) -> pd.DataFrame:
    """Registered members per physical store (all sign-ups are on or before the period end)."""
    stores = world.stores[world.stores["store_id"] != ONLINE_STORE]
    end = pd.Timestamp(world.config.end) + pd.Timedelta(days=1)
    c = world.customers
    counts = c.loc[c["signup_time"] < end, "home_store_id"].value_counts()
    return stores[["store_id", "city"]].assign(
        members=stores["store_id"].map(counts).fillna(0).astype(int).to_numpy()
    )


def member_targets(
    world: DemoWorld, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Store and city member targets for 2021-12 and the ``member_targets`` effect."""
    by_store = _members_by_store(world)
    meets = (by_store["city"] == MEETS_TARGET).to_numpy()
    jitter = rng.uniform(0.75, 1.25, size=len(by_store))
    members = by_store["members"].to_numpy()
    gap = np.round(members * GAP_SHARE * jitter)
    target = np.where(meets, np.floor(members / MEETING_ATTAINMENT), members + gap).astype(int)
    by_store = by_store.assign(target=target)
    city = by_store.groupby("city", sort=False).agg(
        stores=("store_id", "size"), members=("members", "sum"), target=("target", "sum")
    )
    city["members_per_store"] = city["members"] / city["stores"]
    city["gap_per_store"] = (city["target"] - city["members"]) / city["stores"]
    missing = city[city.index != MEETS_TARGET]
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "metric": "members",
                    "period": TARGET_PERIOD,
                    "dimension": "city",
                    "dimension_value": city.index,
                    "target_value": city["target"].to_numpy(),
                }
            ),
            pd.DataFrame(
                {
                    "metric": "members",
                    "period": TARGET_PERIOD,
                    "dimension": "store",
                    "dimension_value": by_store["store_id"].to_numpy(),
                    "target_value": by_store["target"].to_numpy(),
                }
            ),
        ]
    )
    effect = {
        "requirement": "M4",
        "description": "Member targets for 2021-12 per city: only 烟台 meets its target; the other "
        "cities miss it by about 31 % of their members; 青岛 has the fewest members per store.",
        "definition": "members of a city = distinct 会员卡号 in crm/members.csv whose 注册门店 is a "
        "store of that city (crm/stores.csv) with 注册时间 on or before 2021-12-31; target = "
        "planning/targets.csv row metric members, period 2021-12, dimension city; met = members "
        ">= target; members per store = members / physical stores of the city; gap per store = "
        "(target - members) / stores. Store-level targets (dimension store) add up to the city's",
        "expected": {
            "cities_meeting_target": [MEETS_TARGET],
            "fewest_members_per_store": "青岛",
            "mean_gap_per_store_missing_cities": round(
                float(GAP_SHARE * missing["members_per_store"].mean()), 1
            ),
        },
        "realised": {
            "cities_meeting_target": city.index[city["members"] >= city["target"]].tolist(),
            "fewest_members_per_store": str(city["members_per_store"].idxmin()),
            "mean_gap_per_store_missing_cities": round(
                float((missing["target"] - missing["members"]).sum() / missing["stores"].sum()), 1
            ),
            "by_city": {
                name: {
                    "members": int(r.members),
                    "target": int(r.target),
                    "stores": int(r.stores),
                    "members_per_store": round(float(r.members_per_store), 1),
                    "attainment": round(float(r.members / r.target), 4),
                }
                for name, r in city.iterrows()
            },
        },
        "tolerance": 0,
    }
    return rows, effect


def _new_member_targets(world: DemoWorld, calendar: Calendar) -> pd.DataFrame:
    """Monthly new-member targets per city for 2020-2021: same month a year earlier + 8 %."""
    c = world.customers
    stores = world.stores.set_index("store_id")["city"]
    city = c["home_store_id"].map(stores)
    month = c["signup_time"].dt.to_period("M")
    counts = (
        pd.DataFrame({"city": city, "month": month})
        .dropna()
        .groupby(["city", "month"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=calendar.months, fill_value=0)
    )
    months = [m for m in calendar.months if m.year >= calendar.months[0].year + 1]
    rows = []
    for m in months:
        base = counts[m - 12]
        rows.append(
            pd.DataFrame(
                {
                    "metric": "new_members",
                    "period": str(m),
                    "dimension": "city",
                    "dimension_value": base.index,
                    "target_value": np.ceil(base.to_numpy() * NEW_MEMBER_GROWTH).astype(int),
                }
            )
        )
    return pd.concat(rows)


def _revenue_targets(
    tally: TruthTally, calendar: Calendar, rng: np.random.Generator
) -> pd.DataFrame:
    """Monthly revenue targets (all orders, net of refunds, yuan): last year + 6 %; 2019 budgeted
    within a few per cent of what happened."""
    revenue = tally.net_revenue_by_month / 100
    n = len(revenue)
    target = np.empty(n)
    target[:12] = revenue[:12] * rng.uniform(0.96, 1.06, size=12)
    target[12:] = revenue[: n - 12] * REVENUE_GROWTH
    return pd.DataFrame(
        {
            "metric": "revenue",
            "period": [str(m) for m in calendar.months],
            "dimension": "all",
            "dimension_value": "*",
            "target_value": np.round(target, -2).astype(int),
        }
    )


def write_targets(
    world: DemoWorld, out_dir: Path, tally: TruthTally, calendar: Calendar
) -> list[Path]:
    """Write ``planning/targets.csv`` and record the ``member_targets`` effect."""
    rng = np.random.default_rng([world.config.seed, 31])
    (out_dir / "planning").mkdir(parents=True, exist_ok=True)
    members, effect = member_targets(world, rng)
    world.effects["member_targets"] = effect
    rows = pd.concat(
        [members, _new_member_targets(world, calendar), _revenue_targets(tally, calendar, rng)]
    )
    path = out_dir / TARGETS_FILE
    rows.to_csv(path, index=False, lineterminator="\n")
    return [path]


def write_experiments(world: DemoWorld, out_dir: Path) -> list[Path]:
    """Write the experiments (the kiosk pilot, and the e-mail A/B test if marketing ran one)."""
    (out_dir / "planning").mkdir(parents=True, exist_ok=True)
    pilot = world.stores[world.stores["in_pilot"]]
    start = pilot["kiosk_from"].dropna().min()
    experiments = [
        {
            "experiment_id": KIOSK_EXPERIMENT,
            "experiment_name": "自助入会机试点",
            "kind": "store_pilot",
            "start_date": start.strftime("%Y-%m-%d"),
            "end_date": pd.Timestamp(world.config.end).strftime("%Y-%m-%d"),
            "campaign_id": "",
            "description": "3家试点门店自2021年1月起导入自助入会机，另7家门店作为对照",
        }
    ]
    units = pd.DataFrame(
        {
            "experiment_id": KIOSK_EXPERIMENT,
            "unit_type": "store",
            "unit_id": pilot["store_id"].to_numpy(),
            "variant": np.where(pilot["kiosk_from"].notna(), "treatment", "control"),
        }
    )
    ab = world.effects.get("ab_test_email", {}).get("realised", {})
    touches_path = out_dir / "marketing" / "campaign_touches.csv"
    if ab.get("campaign_id") and touches_path.exists():
        campaign = ab["campaign_id"]
        touches = pd.read_csv(
            touches_path,
            usecols=["campaign_id", "member_card_no", "variant", "sent_at"],
            dtype=str,
            keep_default_na=False,
        )
        touches = touches[touches["campaign_id"] == campaign]
        sent = pd.to_datetime(touches["sent_at"], errors="coerce")
        experiments.append(
            {
                "experiment_id": AB_EXPERIMENT,
                "experiment_name": "邮件内容A/B测试",
                "kind": "ab_test",
                "start_date": sent.min().strftime("%Y-%m-%d"),
                "end_date": sent.max().strftime("%Y-%m-%d"),
                "campaign_id": campaign,
                "description": "同一活动邮件两个版本随机分组，比较打开率、点击率和转化率",
            }
        )
        assigned = touches.drop_duplicates("member_card_no").sort_values("member_card_no")
        units = pd.concat(
            [
                units,
                pd.DataFrame(
                    {
                        "experiment_id": AB_EXPERIMENT,
                        "unit_type": "customer",
                        "unit_id": assigned["member_card_no"].to_numpy(),
                        "variant": assigned["variant"].to_numpy(),
                    }
                ),
            ]
        )
    paths = [out_dir / EXPERIMENTS_FILE, out_dir / UNITS_FILE]
    pd.DataFrame(experiments).to_csv(paths[0], index=False, lineterminator="\n")
    units.to_csv(paths[1], index=False, lineterminator="\n")
    return paths
