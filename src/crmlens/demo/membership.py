"""Member lifecycles: when and where members sign up, their tier, and when they stop buying.

Sign-ups are drawn as one multinomial over (month × store/online × method) cells whose weights carry
the story: the COVID dip in new members, 青岛's small intake per store, and the kiosks that add
sign-ups in 3 pilot stores from 2021-01 while the other methods there follow the common trend.

Each buying member then gets a last-order day from a churn hazard (higher for the low tiers and for
churn-prone tastes, raised before the dip, lowered in the recovery). A member whose last order is
more than 90 days before the end of the period is churned, exactly as the analysis defines it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmlens.demo.calendar import Calendar, signup_month_factor
from crmlens.demo.geography import ONLINE_STORE

TIERS = ("白金", "黄金", "白银", "普通")
# Exact shares of members per tier: platinum + gold = 33.5 % (seed 000 ③).
TIER_SHARES = (0.12, 0.215, 0.28, 0.385)
# Members who signed up before the period (the chain's existing base).
PRE_PERIOD_SHARE = 0.40
PRE_PERIOD_FROM = pd.Timestamp("2015-01-01")
# Online sign-ups' share of in-period intake.
ONLINE_SHARE = 0.14
# Extra sign-ups per month through the kiosk, relative to the store's 2020 monthly intake.
KIOSK_UPLIFT = 0.60
# Base hazard per month of stopping to buy, and multipliers.
BASE_MONTHLY_HAZARD = 0.020
TIER_HAZARD = {"白金": 0.20, "黄金": 0.30, "白银": 1.00, "普通": 1.45}
CHURN_PRONE_HAZARD = 6.0  # absolute multiplier of the base hazard
CORPORATE_HAZARD = 0.7
CHURN_WINDOW_DAYS = 90
# Share of till and kiosk sign-ups who buy right when signing up.
TILL_PURCHASE_SHARE = 0.3
# Share of street (地推) and online sign-ups who never buy.
NEVER_BUY_SHARE = 0.15
# How strongly the stop hazard falls with a member's buying rate: frequent shoppers stay.
RATE_HAZARD_EXPONENT = 0.5

# Sign-up method at a store cell, and the acquisition channel by method.
STORE_METHODS = ("收银台", "地推")
STORE_METHOD_P = (0.70, 0.30)
CHANNEL_BY_METHOD: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "收银台": (("C02", "C08", "C07", "C03"), (0.52, 0.30, 0.12, 0.06)),
    "地推": (("C01", "C07"), (0.88, 0.12)),
    "自助入会机": (("C08", "C03", "C07"), (0.62, 0.28, 0.10)),
    "线上": (("C03", "C04", "C05", "C06", "C07"), (0.26, 0.24, 0.14, 0.22, 0.14)),
}
# Hours of day for sign-ups and purchases (stores open 8:00-22:00; evening and late-morning peaks).
HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 0, 0, 3, 6, 8, 8, 6, 5, 5, 6, 8, 10, 11, 9, 6, 3, 0, 0], dtype=float
)
HOUR_P = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()


def time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds after midnight, following the stores' opening-hours profile."""
    hours = rng.choice(24, size=n, p=HOUR_P)
    return hours * 3600 + rng.integers(0, 3600, size=n)


def allocate_signups(
    rng: np.random.Generator, n: int, stores: pd.DataFrame, calendar: Calendar
) -> pd.DataFrame:
    """Sign-up time, home store (None online) and method for ``n`` members, sorted by time."""
    months = calendar.months
    physical = stores[stores["store_id"] != ONLINE_STORE].reset_index(drop=True)
    month_start = months.to_timestamp().to_numpy()
    opened = physical["opened_date"].to_numpy()
    is_open = opened[None, :] <= month_start[:, None]
    factor = signup_month_factor(months)
    weights = physical["signup_weight"].to_numpy()
    store_intensity = factor[:, None] * weights[None, :] * is_open
    online_intensity = (
        factor * (1.0 + 0.25 * np.arange(len(months)) / 12) * ONLINE_SHARE * weights.sum()
    )

    # Kiosk cells: extra sign-ups from the kiosk month on, sized on the store's 2020 intake.
    kiosk_from = physical["kiosk_from"].to_numpy()
    in_2020 = np.asarray(months.year == 2020)
    level_2020 = store_intensity[in_2020].mean(axis=0)
    has_kiosk = ~pd.isna(kiosk_from)
    kiosk_month = has_kiosk[None, :] & (month_start[:, None] >= kiosk_from[None, :])
    kiosk_intensity = np.where(kiosk_month, KIOSK_UPLIFT * level_2020[None, :], 0.0)

    n_months, n_stores = store_intensity.shape
    cells = np.concatenate(
        [store_intensity.ravel(), kiosk_intensity.ravel(), online_intensity]
    )  # store cells, then kiosk cells, then online cells
    n_pre = round(n * PRE_PERIOD_SHARE)
    counts = rng.multinomial(n - n_pre, cells / cells.sum())
    cell = np.repeat(np.arange(len(cells)), counts)
    per_block = n_months * n_stores
    kind = np.where(cell < per_block, 0, np.where(cell < 2 * per_block, 1, 2))
    local = np.where(kind == 2, 0, cell % per_block)
    month = np.where(kind == 2, cell - 2 * per_block, local // n_stores)
    store_pos = local % n_stores

    # in-period sign-up time: a random day of the month, at a shop-hours time
    first_day = month_start[month].astype("datetime64[D]")
    days_in_month = np.asarray(months.days_in_month)[month]
    day = first_day + (rng.random(len(cell)) * days_in_month).astype("timedelta64[D]")
    method = np.where(
        kind == 1,
        "自助入会机",
        np.where(kind == 2, "线上", rng.choice(STORE_METHODS, size=len(cell), p=STORE_METHOD_P)),
    )
    store_id = np.where(kind == 2, None, physical["store_id"].to_numpy()[store_pos])

    # pre-period members: stores open before the period, by weight; uniform time since opening
    pre_open = opened < month_start[0]
    pre_weight = np.where(pre_open, weights, 0.0)
    pre_online = rng.random(n_pre) < ONLINE_SHARE * 0.6
    pre_store = rng.choice(n_stores, size=n_pre, p=pre_weight / pre_weight.sum())
    earliest = np.maximum(opened[pre_store], PRE_PERIOD_FROM.to_datetime64()).astype(
        "datetime64[D]"
    )
    span = (month_start[0].astype("datetime64[D]") - earliest).astype(np.int64)
    pre_day = earliest + (rng.random(n_pre) * span).astype("timedelta64[D]")
    pre_method = np.where(
        pre_online, "线上", rng.choice(STORE_METHODS, size=n_pre, p=STORE_METHOD_P)
    )
    pre_store_id = np.where(pre_online, None, physical["store_id"].to_numpy()[pre_store])

    all_day = np.concatenate([pre_day, day])
    seconds = time_of_day(rng, n)
    signup = all_day.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "signup_time": signup.astype("datetime64[ns]"),
            "home_store_id": np.concatenate([pre_store_id, store_id]),
            "signup_method": np.concatenate([pre_method, method]),
        }
    )
    frame = frame.sort_values("signup_time", kind="stable", ignore_index=True)
    # acquisition channel follows the method
    channel = np.empty(n, dtype=object)
    for method_name, (ids, probs) in CHANNEL_BY_METHOD.items():
        mask = frame["signup_method"].to_numpy() == method_name
        channel[mask] = rng.choice(np.array(ids), size=int(mask.sum()), p=np.array(probs))
    frame["channel_id"] = channel
    return frame


def assign_tiers(rng: np.random.Generator, score: np.ndarray) -> np.ndarray:
    """Tiers with exact shares by rank of ``score`` (highest score -> 白金)."""
    n = len(score)
    noisy = score + rng.normal(0.0, 0.35, size=n)  # tiers follow spend loosely, not exactly
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-noisy, kind="stable")] = np.arange(n)
    bounds = np.round(np.cumsum(TIER_SHARES) * n).astype(np.int64)
    return np.array(TIERS)[np.searchsorted(bounds, rank, side="right")]


def stop_days(
    rng: np.random.Generator, calendar: Calendar, start_day: np.ndarray, multiplier: np.ndarray
) -> np.ndarray:
    """Day on which each member stops buying (``n_days`` if they are still buying at the end).

    The time to stopping follows the calendar's churn hazard (raised before the dip, lowered in
    the recovery) scaled per member.
    """
    per_day = BASE_MONTHLY_HAZARD / 30.44 * multiplier
    target = calendar.cum_hazard[start_day] + rng.exponential(1.0, size=len(start_day)) / per_day
    stop = np.searchsorted(calendar.cum_hazard, target, side="right") - 1
    return np.minimum(stop, calendar.n_days)


def lifecycle(
    rng: np.random.Generator,
    frame: pd.DataFrame,
    calendar: Calendar,
    raw_rate: np.ndarray,
    hazard_multiplier: np.ndarray,
    orders_wanted: float,
) -> None:
    """Set each member's buying-history outline (columns documented in ``build_customers``).

    A member signing up at the till may buy right then. After that they buy as a Poisson process
    over the calendar's visit intensity until they stop; the stop day (from the churn hazard) is
    their last purchase, so churn follows the hazard month by month. Members still buying at the end have their last purchase at the last arrival
    before the end, drawn backwards (the gap is exponential), so the purchases before the last one
    are simply Poisson. Churn is then exactly the analysis's definition: a last order more than 90
    days before the end. A few members sign up on the street or online and never buy.
    """
    n = len(frame)
    n_days = calendar.n_days
    cum = calendar.cum_visit
    signup = frame["signup_time"].to_numpy().astype("datetime64[s]")
    signup_day = calendar.day_of(frame["signup_time"])
    first_day = np.maximum(signup_day, 0)
    stop = stop_days(rng, calendar, first_day, hazard_multiplier)
    stopped = stop < n_days
    method = frame["signup_method"].to_numpy()
    # some members signing up at the till (or a kiosk) pay for a basket right away
    at_till = (
        (signup_day >= 0)
        & np.isin(method, ["收银台", "自助入会机"])
        & (rng.random(n) < TILL_PURCHASE_SHARE)
    )
    never = ~at_till & np.isin(method, ["地推", "线上"]) & (rng.random(n) < NEVER_BUY_SHARE)

    # Scale rates so the expected number of orders matches the wanted total: the till purchases
    # and the stop-day purchases are fixed, the Poisson purchases in between fill the rest.
    exposure = np.where(never, 0.0, cum[stop] - cum[first_day])
    base = float((raw_rate * exposure).sum())
    fixed = float(at_till.sum() + (stopped & ~never).sum())
    scale = max(orders_wanted - fixed, 0.0) / base if base > 0 else 0.0
    rate = np.where(never, 0.0, raw_rate * scale)

    # survivors: last arrival before the end, an exponential gap back from it
    gap = rng.exponential(1.0, size=n) / np.maximum(rate, 1e-12)
    point = cum[n_days] - gap
    arrives = ~stopped & (point >= cum[first_day]) & (rate > 0)
    back_day = np.clip(np.searchsorted(cum, point, side="right") - 1, first_day, n_days - 1)
    final_day = np.where(stopped, stop, back_day)
    final = ~never & (arrives | stopped)
    day0 = np.datetime64(calendar.days[0].date(), "s")
    final_time = day0 + final_day.astype("timedelta64[D]")
    final_time = final_time + time_of_day(rng, n).astype("timedelta64[s]")
    till_time = signup + np.timedelta64(120, "s")
    floor = np.where(at_till, till_time, signup) + np.timedelta64(60, "s")
    final_time = np.maximum(final_time, floor)

    buyer = final | at_till
    frame["first_day"] = first_day
    frame["signup_order"] = at_till
    frame["final_order"] = final
    frame["order_rate"] = np.where(final, rate, 0.0)
    frame["buyer"] = buyer
    last_day = np.where(final, final_day, np.where(at_till, first_day, -1))
    frame["last_day"] = last_day
    last = np.where(final, final_time, till_time)
    frame["last_active"] = pd.to_datetime(np.where(buyer, last, np.datetime64("NaT"))).astype(
        "datetime64[ns]"
    )
    frame["churned"] = buyer & (last_day < n_days - CHURN_WINDOW_DAYS)
