"""Build the demo company's world: stores, products, channels, customers and sales reps.

:func:`build_world` is the single entry point. It is deterministic for ``config.seed`` and
vectorised throughout (a million customers take seconds); orders are not built here but streamed
later by :mod:`crmlens.demo.commerce` from the per-customer traits set here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmlens.demo import identity
from crmlens.demo.calendar import Calendar, build_calendar
from crmlens.demo.catalog import build_products
from crmlens.demo.geography import NATIONWIDE, OTHER_SHANDONG_CITIES, build_stores
from crmlens.demo.membership import (
    CHURN_PRONE_HAZARD,
    CORPORATE_HAZARD,
    RATE_HAZARD_EXPONENT,
    TIER_HAZARD,
    allocate_signups,
    assign_tiers,
    lifecycle,
)
from crmlens.demo.world import DemoConfig, DemoWorld
from crmlens.errors import ConfigError

CHANNELS = (
    ("C01", "门店地推", "offline"),
    ("C02", "收银台", "offline"),
    ("C03", "微信公众号", "social"),
    ("C04", "抖音广告", "paid_online"),
    ("C05", "百度搜索", "paid_online"),
    ("C06", "美团", "paid_online"),
    ("C07", "老带新", "referral"),
    ("C08", "自然到店", "organic"),
)
CORPORATE_SHARE = 0.05
FEMALE_SHARE = 0.70
# Share of individual members with the churners' taste (and a higher hazard of leaving).
CHURN_PRONE_P = 0.25
# Spread (log-normal sigma) of members' buying rates; sets how concentrated revenue is.
RATE_SIGMA = 1.8
# Member order lines per customer the rates are calibrated to, and the mean lines of a member
# order (measured on the generated baskets) used to turn it into orders.
TARGET_LINES_PER_CUSTOMER = 10.0
MEAN_LINES_PER_ORDER = 3.3
MAX_CUSTOMERS = 99_999_999

_REP_TEAMS = (
    ("企业客户一部", "烟台"),
    ("企业客户一部", "威海"),
    ("企业客户二部", "青岛"),
    ("企业客户二部", "潍坊"),
    ("企业客户三部", "济南"),
    ("企业客户三部", "淄博"),
    ("门店拓展组", "烟台"),
    ("门店拓展组", "青岛"),
    ("门店拓展组", "济南"),
    ("线上渠道组", "全国"),
)


def build_channels() -> pd.DataFrame:
    """The acquisition channels ``C01``..``C08``."""
    return pd.DataFrame(CHANNELS, columns=["channel_id", "channel_name", "channel_type"])


def build_reps(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    """Sales reps: ``rep_id``, ``rep_name``, ``team``, ``region`` (territory city or 全国), ``hired_date``."""
    slot = np.arange(n) % len(_REP_TEAMS)
    hired = pd.Timestamp("2014-03-01") + pd.to_timedelta(rng.integers(0, 7 * 365, size=n), unit="D")
    return pd.DataFrame(
        {
            "rep_id": [f"R{i:03d}" for i in range(1, n + 1)],
            "rep_name": identity.staff_names(rng, n),
            "team": [_REP_TEAMS[s][0] for s in slot],
            "region": [_REP_TEAMS[s][1] for s in slot],
            "hired_date": hired.normalize(),
        }
    )


def _locations(
    rng: np.random.Generator, home_store: np.ndarray, stores: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region, province and city: the home store's, or for online members about half in Shandong."""
    n = len(home_store)
    city_of = stores.set_index("store_id")["city"]
    region = np.full(n, "华东", dtype=object)
    province = np.full(n, "山东", dtype=object)
    city = pd.Series(home_store).map(city_of).fillna("").to_numpy(dtype=object)
    online = pd.isna(home_store)
    k = int(online.sum())
    store_cities = np.array(sorted(set(stores["city"])))
    shandong_cities = np.concatenate([store_cities, np.array(OTHER_SHANDONG_CITIES)])
    nationwide = rng.random(k) < 0.45
    far = rng.choice(
        len(NATIONWIDE),
        size=k,
        p=np.array([w for *_, w in NATIONWIDE]) / sum(w for *_, w in NATIONWIDE),
    )
    region[online] = np.where(nationwide, np.array([r for r, *_ in NATIONWIDE])[far], "华东")
    province[online] = np.where(nationwide, np.array([p for _, p, *_ in NATIONWIDE])[far], "山东")
    city[online] = np.where(
        nationwide,
        np.array([c for _, _, c, _ in NATIONWIDE])[far],
        rng.choice(shandong_cities, size=k),
    )
    return region, province, city


def build_customers(
    rng: np.random.Generator, config: DemoConfig, stores: pd.DataFrame, calendar: Calendar
) -> pd.DataFrame:
    """All members with identity, tier and hidden lifecycle traits (see :class:`DemoWorld`).

    Extra columns beyond the documented ones: ``buyer`` (orders at least once in the period),
    ``signup_order`` (buys at the till right when signing up, 2 minutes after ``signup_time``),
    ``final_order`` (``last_active`` is an order of its own, not the till purchase), ``first_day``
    (day index from which the member can order), ``last_day`` (day index of the last order, -1 for
    non-buyers) and ``order_rate`` (Poisson orders per unit of calendar intensity between
    ``first_day`` and ``last_day``).
    """
    n = config.customers
    frame = allocate_signups(rng, n, stores, calendar)
    frame.insert(0, "member_card_no", _card_numbers(n))

    corporate = rng.random(n) < CORPORATE_SHARE
    gender = np.where(corporate, "", np.where(rng.random(n) < FEMALE_SHARE, "女", "男"))
    birth = identity.birth_dates(rng, n, config.end).astype("datetime64[ns]")
    frame["name"] = identity.names(rng, gender)
    frame["gender"] = gender
    frame["birth_date"] = pd.to_datetime(np.where(corporate, np.datetime64("NaT"), birth))
    frame["phone"] = identity.unique_mobiles(rng, n)
    frame["email"] = identity.emails(rng, n)
    region, province, city = _locations(rng, frame["home_store_id"].to_numpy(), stores)
    frame["region"], frame["province"], frame["city"] = region, province, city
    company, industry, size = identity.companies(rng, int(corporate.sum()), city[corporate])
    frame["customer_type"] = np.where(corporate, "企业", "个人")
    for column, values in (
        ("company_name", company),
        ("industry", industry),
        ("company_size", size),
    ):
        filled = np.full(n, "", dtype=object)
        filled[corporate] = values
        frame[column] = filled

    end = pd.Timestamp(config.end)
    tenure = (end - frame["signup_time"]).dt.days.to_numpy() / 365.25
    # Spending propensity: heavy-tailed, higher for companies. Tiers follow it (and tenure), so
    # platinum and gold members are the frequent, long-standing buyers.
    raw_rate = rng.lognormal(0.0, RATE_SIGMA, size=n) * np.where(corporate, 1.5, 1.0)
    tier = assign_tiers(rng, np.log(raw_rate) + 0.25 * np.minimum(tenure, 6))
    frame["tier"] = tier
    frame["referrer_card_no"] = _referrers(rng, frame["channel_id"].to_numpy())
    frame["consent_marketing"] = rng.random(n) < 0.72
    online = frame["home_store_id"].isna().to_numpy()
    young = (end - frame["birth_date"]).dt.days.to_numpy() < 40 * 365.25
    app_p = np.where(online, 0.9, np.where(young, 0.55, 0.30))
    frame["app_user"] = rng.random(n) < app_p
    frame["churn_prone"] = rng.random(n) < np.where(corporate, 0.05, CHURN_PRONE_P)

    # Frequent, high-tier and corporate members rarely leave; churn-prone members (the churners'
    # taste) leave at a high rate whatever their tier, so their taste marks the churned.
    hazard = (
        np.power(raw_rate, -RATE_HAZARD_EXPONENT)
        * frame["tier"].map(TIER_HAZARD).to_numpy(dtype=float)
        * np.where(corporate, CORPORATE_HAZARD, 1.0)
    )
    hazard = np.where(frame["churn_prone"].to_numpy(), CHURN_PRONE_HAZARD, hazard)
    wanted = n * TARGET_LINES_PER_CUSTOMER / MEAN_LINES_PER_ORDER
    lifecycle(rng, frame, calendar, raw_rate, hazard, wanted)
    return frame


def _card_numbers(n: int) -> np.ndarray:
    """``M`` + 7 digits, wider when there are more than 9,999,999 customers (the contract)."""
    width = max(7, len(str(n)))
    return np.char.add("M", np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _referrers(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Referral members (channel 老带新) name an earlier member as referrer (rows are time-sorted)."""
    n = len(channel)
    width = max(7, len(str(n)))
    position = np.arange(n)
    referred = (channel == "C07") & (position > 0)
    earlier = (rng.random(n) * position).astype(np.int64)  # uniform over the members before
    cards = np.char.add("M", np.char.zfill((earlier + 1).astype(str), width))
    return np.where(referred, cards, "")


def build_world(config: DemoConfig) -> DemoWorld:
    """The demo company's clean truth for ``config`` (deterministic for ``config.seed``).

    Raises :class:`~crmlens.errors.ConfigError` for a size or period the generator cannot honour.
    """
    if not 1 <= config.customers <= MAX_CUSTOMERS:
        raise ConfigError(
            f"customers must be between 1 and {MAX_CUSTOMERS:,}, got {config.customers:,}"
        )
    if config.chunk_customers < 1:
        raise ConfigError(f"chunk_customers must be at least 1, got {config.chunk_customers}")
    if (config.start, config.end) != (DemoConfig().start, DemoConfig().end):
        raise ConfigError(
            "the demo company's story is fixed to 2019-01-01..2021-12-31; "
            f"got {config.start}..{config.end}"
        )
    rng = np.random.default_rng([config.seed, 1])
    calendar = build_calendar(config.start, config.end)
    stores = build_stores()
    products = build_products(np.random.default_rng([config.seed, 2]))
    customers = build_customers(np.random.default_rng([config.seed, 3]), config, stores, calendar)
    reps = build_reps(rng)
    return DemoWorld(
        config=config,
        stores=stores,
        products=products,
        channels=build_channels(),
        customers=customers,
        reps=reps,
    )
