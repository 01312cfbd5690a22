"""Marketing system exports: channels, daily channel spend, campaigns and e-mail/SMS touches.

Planted (recorded in ``world.effects``):

- ``cac_by_channel_year``: CAC = a channel's spend in a calendar year / members whose signup
  channel is that channel and whose signup falls in that year. Spend is derived from the world's
  member counts, so every channel-year hits its intended CAC to the cent.
- ``cac_yoy_anomaly``: one paid channel's CAC is up 20 % in the last year vs the year before (the
  brief's "CAC up 20 % year on year"); every other channel moves by at most 6 %.
- ``ab_test_email``: one campaign split A/B; B has a higher click-through and conversion at the same
  open rate. Counts are drawn exactly, so the realised rates equal the intended ones up to rounding.
- ``email_funnel_rates``: overall bounce/open/click/conversion rates per touch sent.
- ``email_best_send_time``: touches sent 19:00-22:59 are opened far more often (A12 best send time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crmlens.demo.world import DemoWorld

NAME = "marketing"
DAY = 86_400
STAMP = "%Y-%m-%d %H:%M:%S"
# intended CAC (yuan per new member) by channel type; organic channels have no spend
CAC_BASE = {"offline": 18.0, "paid_online": 65.0, "social": 38.0, "referral": 22.0}
CAC_ANOMALY_YOY = 0.20
CAC_DRIFT = 0.06  # other channels' CAC moves at most this much year on year
# cost per thousand impressions (offline: per thousand flyers) and click-through by channel type
CPM = {"offline": 300.0, "paid_online": 35.0, "social": 20.0, "referral": 500.0}
CTR = {"paid_online": 0.018, "social": 0.025, "referral": 0.08}
MONTH_FACTOR = np.array([1.3, 1.2, 1.0, 0.95, 1.0, 1.2, 0.9, 0.9, 1.05, 1.1, 1.4, 1.2])

# (name, month, day, days, objective): instantiated for every year -> 60 campaigns over 2019-2021
TEMPLATES = [
    ("春节年货节", 1, 10, 25, "activation"),
    ("三八女神节", 3, 1, 8, "retention"),
    ("春季会员招募", 3, 15, 30, "acquisition"),
    ("清明踏青季", 4, 1, 7, "activation"),
    ("沉睡会员唤醒(春)", 4, 15, 14, "winback"),
    ("五一劳动节", 4, 28, 7, "activation"),
    ("母亲节感恩回馈", 5, 6, 7, "retention"),
    ("储值卡充值送", 5, 20, 10, "retention"),
    ("618年中大促", 6, 1, 18, "activation"),
    ("暑期生鲜节", 7, 10, 14, "retention"),
    ("七夕甜蜜季", 8, 1, 7, "awareness"),
    ("开学季", 8, 25, 10, "activation"),
    ("中秋团圆礼", 9, 5, 14, "activation"),
    ("新会员首单礼", 9, 15, 20, "acquisition"),
    ("国庆黄金周", 9, 28, 10, "activation"),
    ("周年庆", 10, 15, 10, "retention"),
    ("沉睡会员唤醒(秋)", 10, 25, 14, "winback"),
    ("双11会员日", 11, 1, 11, "activation"),
    ("双12狂欢", 12, 5, 8, "activation"),
    ("年终回馈", 12, 20, 12, "retention"),
]
# share of eligible members mailed; acquisition/winback target narrow groups (new / lapsed)
AUDIENCE_SHARE = {"activation": 0.08, "retention": 0.06, "awareness": 0.10, "acquisition": 0.8,
                  "winback": 0.5}  # fmt: skip
AB_TEMPLATE = "双11会员日"
AB_SHARE = 1.0  # the 双11 newsletter goes to every consenting member: a large, clear test
# A/B arms: rates per touch sent; same open rate, B clicks and converts more
AB_RATES = {"A": (0.24, 0.030, 0.009), "B": (0.24, 0.042, 0.014)}
SEND_HOURS = np.arange(8, 23)
SEND_WEIGHTS = np.array([3, 6, 8, 6, 5, 4, 4, 4, 4, 4, 5, 7, 8, 6, 2], dtype=float)
HOUR_BLOCKS = {"08-11": (8, 11), "12-14": (12, 14), "15-18": (15, 18), "19-22": (19, 22)}
BLOCK_OPEN = {"08-11": 1.0, "12-14": 0.9, "15-18": 0.8, "19-22": 1.45}
BASE_OPEN, CLICK_GIVEN_OPEN, CONVERT_GIVEN_CLICK = 0.2, 0.14, 0.32
FUNNEL_STEPS = {
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "conversion": "converted",
}
TOUCH_COLUMNS = ["touch_id", "campaign_id", "member_card_no", "variant", "sent_at", "opened_at",
                 "clicked_at", "converted_at", "bounced", "order_id"]  # fmt: skip

Progress = Callable[[str, int, int], None] | None


def write(world: DemoWorld, out_dir: Path, progress: Progress = None) -> list[Path]:
    """Write the marketing exports under ``out_dir/marketing`` and record planted effects.

    Returns the written paths. Touches are generated and appended one campaign (or one chunk of a
    large campaign) at a time, so memory stays bounded at any customer count.
    """
    folder = out_dir / "marketing"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / n for n in ("channels.csv", "channel_spend.csv", "campaigns.csv")]
    world.channels[["channel_id", "channel_name", "channel_type"]].to_csv(
        paths[0], index=False, lineterminator="\n"
    )
    spend, anomaly, plan = _channel_spend(world, world.rng(f"{NAME}.spend"))
    spend.to_csv(paths[1], index=False, lineterminator="\n", float_format="%.2f")
    _record_cac(world, spend, anomaly, plan)
    campaigns = _campaigns(world, world.rng(f"{NAME}.campaigns"))
    out = campaigns.assign(
        start_date=campaigns.start_date.dt.strftime("%Y-%m-%d"),
        end_date=campaigns.end_date.dt.strftime("%Y-%m-%d"),
    )
    out.drop(columns=["ab_test"]).to_csv(paths[2], index=False, lineterminator="\n")
    touches = folder / "campaign_touches.csv"
    _write_touches(world, campaigns, touches, progress)
    return [*paths, touches]


def _years(world: DemoWorld) -> list[int]:
    return list(range(world.config.start.year, world.config.end.year + 1))


def _new_members(world: DemoWorld) -> pd.DataFrame:
    """New members per channel (rows) and signup year (columns), the CAC denominator."""
    c = world.customers
    counts = c.groupby([c.channel_id, c.signup_time.dt.year]).size().unstack(fill_value=0)
    return counts.reindex(index=world.channels.channel_id, columns=_years(world), fill_value=0)


def _channel_spend(
    world: DemoWorld, rng: np.random.Generator
) -> tuple[pd.DataFrame, str, dict[tuple[str, int], float]]:
    """Daily spend/impressions/clicks per paid channel, with weekly and seasonal shape.

    Each channel-year's total is set to intended CAC x new members, then spread over days.
    Returns the table, the anomaly channel and the intended CAC per (channel, year).
    """
    members, years = _new_members(world), _years(world)
    paid = world.channels[world.channels.channel_type != "organic"]
    online = paid[paid.channel_type == "paid_online"]
    # the channel whose CAC jumps: the paid online one with the most new members in the last year
    anomaly = str(members.loc[(online if len(online) else paid).channel_id, years[-1]].idxmax())
    days = pd.date_range(world.config.start, world.config.end, freq="D")
    frames, plan = [], {}
    for ch in paid.itertuples():
        ctype = ch.channel_type if ch.channel_type in CAC_BASE else "paid_online"
        cac = CAC_BASE[ctype] * rng.uniform(0.85, 1.15)
        weekend = np.isin(days.day_of_week, [4, 5, 6] if ctype == "offline" else [5, 6])
        weight = (1 + 0.25 * weekend) * MONTH_FACTOR[days.month - 1]
        weight = weight * rng.lognormal(0, 0.15, len(days))
        spend = np.zeros(len(days))
        for i, year in enumerate(years):
            if i:
                jump = ch.channel_id == anomaly and i == len(years) - 1
                cac *= 1 + (CAC_ANOMALY_YOY if jump else rng.uniform(-CAC_DRIFT, CAC_DRIFT))
            plan[(ch.channel_id, year)] = round(cac, 2)
            in_year = days.year == year
            total_cents = round(cac * int(members.at[ch.channel_id, year]) * 100)
            spend[in_year] = _split_cents(total_cents, weight[in_year]) / 100
        impressions = np.round(spend / CPM[ctype] * 1000).astype(np.int64)
        clicks = pd.array(rng.binomial(impressions, CTR.get(ctype, 0.0)), dtype="Int64")
        if ctype == "offline":
            clicks[:] = pd.NA  # a flyer has no clicks: not measured, so missing rather than 0
        frame = {"date": days.strftime("%Y-%m-%d"), "channel_id": ch.channel_id, "spend": spend}
        frames.append(pd.DataFrame(frame | {"impressions": impressions, "clicks": clicks}))
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["date", "channel_id"], kind="stable"), anomaly, plan


def _split_cents(total: int, weight: np.ndarray) -> np.ndarray:
    """Split an integer number of cents over days in proportion to ``weight``, summing exactly."""
    raw = total * weight / weight.sum()
    cents = np.floor(raw).astype(np.int64)
    rest = total - cents.sum()
    cents[np.argsort(cents - raw, kind="stable")[:rest]] += 1  # largest remainders first
    return cents


def _record_cac(
    world: DemoWorld, spend: pd.DataFrame, anomaly: str, plan: dict[tuple[str, int], float]
) -> None:
    """Measure CAC on the written spend (rounded to cents) and record the planted effects."""
    members = _new_members(world)
    yearly = spend.groupby([spend.channel_id, spend.date.str[:4].astype(int)]).spend.sum()
    realised: dict[str, dict[str, float | None]] = {}
    for (ch, year), total in yearly.items():
        n_new = int(members.at[ch, year])
        realised.setdefault(ch, {})[str(year)] = round(total / n_new, 2) if n_new else None
    expected: dict[str, dict[str, float]] = {}
    for (ch, year), cac in plan.items():
        expected.setdefault(ch, {})[str(year)] = cac
    world.effects["cac_by_channel_year"] = {
        "requirement": "M2",
        "description": "Customer acquisition cost per paid channel and year.",
        "definition": "sum(channel_spend.spend in year) / count(members with 注册渠道 = channel "
        "and 注册时间 in year); organic channels have no spend",
        "expected": expected,
        "realised": realised,
        "tolerance": 0.01,
    }
    ch, (y0, y1) = anomaly, (str(y) for y in _years(world)[-2:])
    yoy = {k: v[y1] / v[y0] - 1 for k, v in realised.items() if v.get(y0) and v.get(y1)}
    others = [abs(v) for k, v in yoy.items() if k != ch]
    world.effects["cac_yoy_anomaly"] = {
        "requirement": "M2/P3",
        "description": f"CAC of paid channel {ch} up about 20 % in {y1} vs {y0}; "
        f"other channels move by at most {CAC_DRIFT:.0%}.",
        "definition": "cac(channel, last year) / cac(channel, year before) - 1, CAC as in "
        "cac_by_channel_year",
        "expected": {"channel_id": ch, "yoy": CAC_ANOMALY_YOY, "max_other_abs_yoy": CAC_DRIFT},
        "realised": {
            "channel_id": ch,
            "yoy": round(yoy[ch], 4) if ch in yoy else None,
            "max_other_abs_yoy": round(max(others, default=0.0), 4),
        },
        "tolerance": 0.01,
    }


def _campaigns(world: DemoWorld, rng: np.random.Generator) -> pd.DataFrame:
    """~60 campaigns: every template in every year; the final year's 双11 one is the A/B test."""
    promo = world.channels[world.channels.channel_type.isin(["social", "paid_online"])].channel_id
    promo = promo if len(promo) else world.channels.channel_id
    rows = []
    for year in _years(world):
        for name, month, day, days, objective in TEMPLATES:
            start = pd.Timestamp(year, month, day)
            end = min(start + pd.Timedelta(days=days - 1), pd.Timestamp(world.config.end))
            rows.append((f"{year}{name}", start, end, objective, name == AB_TEMPLATE))
    df = pd.DataFrame(
        rows, columns=["campaign_name", "start_date", "end_date", "objective", "ab_test"]
    )
    df = df.sort_values("start_date", kind="stable").reset_index(drop=True)
    df["ab_test"] &= df.start_date.dt.year == _years(world)[-1]
    df.loc[df.ab_test, "campaign_name"] += "(邮件A/B测试)"
    df.insert(0, "campaign_id", [f"CP{i:03d}" for i in range(1, len(df) + 1)])
    df.insert(2, "channel_id", rng.choice(promo.to_numpy(), len(df)))
    df["budget"] = rng.integers(2, 30, len(df)) * 5000
    return df[
        [
            "campaign_id",
            "campaign_name",
            "channel_id",
            "start_date",
            "end_date",
            "objective",
            "budget",
            "ab_test",
        ]
    ]


def _secs(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _ids(prefix: str, first: int, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded sequence numbers, vectorised."""
    return (prefix + pd.Series(np.arange(first, first + n)).astype(str).str.zfill(width)).to_numpy()


def _stamp(secs: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = secs.astype("datetime64[s]")
    out[~keep] = np.datetime64("NaT")
    return out


def _first(keys: np.ndarray, pool: np.ndarray, count: int) -> np.ndarray:
    """Mask of exactly ``count`` pool members with the smallest keys (exact-size random draw)."""
    idx = np.flatnonzero(pool)
    chosen = idx[np.argsort(keys[idx], kind="stable")[:count]]
    mask = np.zeros(len(pool), dtype=bool)
    mask[chosen] = True
    return mask


def _write_touches(
    world: DemoWorld, campaigns: pd.DataFrame, path: Path, progress: Progress
) -> None:
    """Generate each campaign's audience and funnel, append it to the CSV, and record effects."""
    rng = world.rng(f"{NAME}.touches")
    c = world.customers
    card = c.member_card_no.to_numpy()
    signup, last_active = _secs(c.signup_time), _secs(c.last_active)
    consent = c.consent_marketing.to_numpy(dtype=bool)
    bounce_prone = rng.random(len(c)) < 0.03  # dead addresses bounce every time
    end_sec = int(pd.Timestamp(world.config.end).value // 10**9) + DAY - 1
    # hour -> index of its HOUR_BLOCKS entry (..11, 12-14, 15-18, 19..)
    block_of_hour = np.searchsorted([hi for _, hi in HOUR_BLOCKS.values()][:-1], np.arange(24))
    open_mult = np.array(list(BLOCK_OPEN.values()))[block_of_hour]
    totals = dict.fromkeys(["sent", "bounced", "opened", "clicked", "converted"], 0)
    expect = dict.fromkeys(["bounced", "opened", "clicked", "converted"], 0.0)
    by_block = np.zeros((2, len(HOUR_BLOCKS)), dtype=np.int64)  # sent, opened (non-A/B)
    arms: dict[str, dict[str, int]] = {}
    chunk = max(1, world.config.chunk_customers)
    next_id = 1
    path.write_text(",".join(TOUCH_COLUMNS) + "\n", encoding="utf-8")
    for k, camp in enumerate(campaigns.itertuples()):
        start = int(camp.start_date.value // 10**9)
        eligible = consent & (signup < start)
        if camp.objective == "acquisition":
            eligible &= signup >= start - 45 * DAY
        elif camp.objective == "winback":
            eligible &= last_active < start - 90 * DAY
        share = AB_SHARE if camp.ab_test else AUDIENCE_SHARE[camp.objective]
        idx = np.flatnonzero(eligible & (rng.random(len(c)) < share))
        n = len(idx)
        span = max(1, min(3, (camp.end_date - camp.start_date).days + 1))
        day_p = np.array([0.6, 0.3, 0.1][:span])
        day = rng.choice(span, n, p=day_p / day_p.sum())  # most mail goes out on day one
        if camp.ab_test:  # one batch at 10:xx so send time does not confound the variants
            hour = np.full(n, 10)
            variant = np.where(_first(rng.random(n), np.ones(n, bool), n // 2), "A", "B")
        else:
            hour = rng.choice(SEND_HOURS, n, p=SEND_WEIGHTS / SEND_WEIGHTS.sum())
            variant = np.full(n, "", dtype=object)
        sent = start + day * DAY + hour * 3600 + rng.integers(0, 3600, n)
        active = sent <= last_active[idx]
        p_bounce = np.where(bounce_prone[idx], 0.9, 0.006)
        bounced = rng.random(n) < p_bounce
        expect["bounced"] += float(p_bounce.sum())
        delay = np.minimum(
            rng.lognormal(np.log(3 * 3600), 1.0, n), 72 * 3600
        )  # opened within 3 days
        opened_at = sent + delay.astype(np.int64)
        clicked_at = opened_at + rng.integers(5, 900, n)
        converted_at = clicked_at + rng.integers(1800, 7 * DAY, n)
        can_convert = active & (converted_at <= np.minimum(last_active[idx], end_sec))
        if camp.ab_test:
            opened, clicked, converted = (np.zeros(n, bool) for _ in range(3))
            for arm, (r_open, r_click, r_conv) in AB_RATES.items():
                in_arm = variant == arm
                m = int(in_arm.sum())
                # inactive members are less likely to be among the exactly-sized groups
                key = rng.random(n) * np.where(active, 1.0, 2.2)
                opened |= _first(key, in_arm & ~bounced, round(r_open * m))
                key = rng.random(n) * np.where(can_convert, 1.0, 3.0)
                clicked |= _first(key, in_arm & opened, round(r_click * m))
                pool = in_arm & clicked & can_convert
                converted |= _first(rng.random(n), pool, round(r_conv * m))
            for key, mask in (("opened", opened), ("clicked", clicked), ("converted", converted)):
                expect[key] += float(mask.sum())  # exact by construction
        else:
            p_open = BASE_OPEN * open_mult[hour] * np.where(active, 1.0, 0.45)
            opened = ~bounced & (rng.random(n) < p_open)
            clicked = opened & (rng.random(n) < CLICK_GIVEN_OPEN)
            converted = clicked & can_convert & (rng.random(n) < CONVERT_GIVEN_CLICK)
            q = (1 - p_bounce) * p_open  # the model's chance of each step, for "expected"
            for key, chance in (
                ("opened", q),
                ("clicked", q * CLICK_GIVEN_OPEN),
                ("converted", q * can_convert * CLICK_GIVEN_OPEN * CONVERT_GIVEN_CLICK),
            ):
                expect[key] += float(chance.sum())
            np.add.at(by_block[0], block_of_hour[hour], 1)
            np.add.at(by_block[1], block_of_hour[hour], opened.astype(np.int64))
        steps = {"sent": np.ones(n, bool), "bounced": bounced, "opened": opened,
                 "clicked": clicked, "converted": converted}  # fmt: skip
        for key, mask in steps.items():
            totals[key] += int(mask.sum())
            if camp.ab_test:
                for arm in ("A", "B"):
                    arms.setdefault(arm, {})[key] = int((mask & (variant == arm)).sum())
        order = np.argsort(sent, kind="stable")  # the platform exports in send order
        frame = pd.DataFrame({
            "touch_id": _ids("T", next_id, n, 9), "campaign_id": camp.campaign_id,
            "member_card_no": card[idx][order], "variant": variant[order],
            "sent_at": _stamp(sent, np.ones(n, bool))[order],
            "opened_at": _stamp(opened_at, opened)[order],
            "clicked_at": _stamp(clicked_at, clicked)[order],
            "converted_at": _stamp(converted_at, converted)[order],
            "bounced": np.where(bounced, "true", "false")[order], "order_id": "",
        })  # fmt: skip
        next_id += n
        for lo in range(0, n, chunk):
            frame.iloc[lo : lo + chunk].to_csv(path, mode="a", header=False, index=False,
                                               lineterminator="\n", date_format=STAMP)  # fmt: skip
        if progress:
            progress(str(path.relative_to(path.parents[1])), k + 1, len(campaigns))
    _record_email(world, campaigns, totals, expect, by_block, arms)


def _funnel(counts: dict[str, int]) -> dict[str, Any]:
    """Rates per touch sent, rounded for the record."""
    sent = counts["sent"]
    rates = {k: round(counts[n] / sent, 4) if sent else None for k, n in FUNNEL_STEPS.items()}
    return {"sent": sent, **rates}


def _record_email(
    world: DemoWorld,
    campaigns: pd.DataFrame,
    totals: dict[str, int],
    expect: dict[str, float],
    by_block: np.ndarray,
    arms: dict[str, dict[str, int]],
) -> None:
    """Record the e-mail funnel, A/B test and send-time effects from the written counts."""
    world.effects["email_funnel_rates"] = {
        "requirement": "M2",
        "description": "E-mail/SMS funnel over all campaign touches.",
        "definition": "share of campaign_touches rows with bounced = true / opened_at / clicked_at "
        "/ converted_at set, per touch sent",
        # expected: the model's probabilities summed over the touches actually sent (the rates
        # depend on how many recipients are still active, which the world decides)
        "expected": {
            k: round(expect[n] / max(totals["sent"], 1), 4) for k, n in FUNNEL_STEPS.items()
        },
        "realised": _funnel(totals),
        "tolerance": 0.01,
    }
    rate = by_block[1] / np.maximum(by_block[0], 1)
    lift = rate[-1] / max(rate[:-1].mean(), 1e-9)
    world.effects["email_best_send_time"] = {
        "requirement": "A12",
        "description": "Touches sent in the evening (19:00-22:59) are opened most often.",
        "definition": "open rate (opened_at set / sent) by hour block of sent_at over campaigns "
        "without variants; lift = evening rate / mean of the other blocks' rates",
        "expected": {"best_block": "19-22", "evening_lift": 1.6},
        "realised": {
            "best_block": list(HOUR_BLOCKS)[int(np.argmax(rate))],
            "evening_lift": round(float(lift), 3),
            "open_rate": dict(zip(HOUR_BLOCKS, np.round(rate, 4).tolist(), strict=True)),
            "sent": dict(zip(HOUR_BLOCKS, by_block[0].tolist(), strict=True)),
        },
        "tolerance": 0.3,
    }
    ab = campaigns[campaigns.ab_test]
    if ab.empty or not arms:
        return
    a, b = arms["A"], arms["B"]
    pooled = (a["clicked"] + b["clicked"]) / max(1, a["sent"] + b["sent"])
    se = np.sqrt(pooled * (1 - pooled) * (1 / max(1, a["sent"]) + 1 / max(1, b["sent"])))
    z = (b["clicked"] / max(1, b["sent"]) - a["clicked"] / max(1, a["sent"])) / se if se else 0.0
    campaign_id = str(ab.campaign_id.iloc[0])
    world.effects["ab_test_email"] = {
        "requirement": "A8",
        "description": f"A/B test in campaign {campaign_id}: variant B has a higher "
        "click-through and conversion at the same open rate.",
        "definition": "per variant of that campaign's touches: opened/clicked/converted set "
        "÷ touches sent; two-proportion z-test on clicks",
        "expected": {
            arm: dict(zip(("open", "click", "conversion"), r, strict=True))
            for arm, r in AB_RATES.items()
        },
        "realised": {
            "campaign_id": campaign_id,
            **{arm: _funnel(counts) for arm, counts in sorted(arms.items())},
            "click_z": round(float(z), 3),
            "click_p_value": float(f"{2 * stats.norm.sf(abs(z)):.3g}"),
        },
        "tolerance": 0.002,
    }
