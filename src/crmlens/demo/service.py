"""Customer-service desk export: ``service/tickets.csv`` (UTF-8 with BOM, CRLF, Chinese headers).

Tickets are inquiries, complaints, after-sales requests and suggestions (some of them praise), with
Chinese texts composed from fragments, response and resolution times and a 1-5 satisfaction score
that falls with the resolution time. Some tickets carry only a phone number, written as the member's
mobile in one of three formats, so identity resolution has to match them by phone.

Planted (``world.effects``): ``sku_complaint_spike`` (one SKU's complaints above the average SKU for
exactly two consecutive months, A9), ``ticket_resolution_hours`` and ``ticket_csat`` (M2) and
``tickets_by_type``. Dirt (``world.dirt``): closed tickets without 满意度, 关闭时间 before
创建时间, phones in non-canonical formats.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from crmlens.demo.world import DemoWorld

NAME = "service"
FILE = "service/tickets.csv"
HOUR = 3600
TICKETS_PER_CUSTOMER = 0.12
TYPES = ("咨询", "投诉", "售后", "建议")
TYPE_P = (0.45, 0.25, 0.20, 0.10)
# resolution time (hours, log-normal median and sigma): complaints take longest
RESOLUTION = {"咨询": (1.5, 1.0), "投诉": (50.0, 0.8), "售后": (26.0, 0.8), "建议": (20.0, 0.9)}
# first response (minutes, median) by intake channel
INTAKE = ("电话", "在线客服", "门店", "APP")
INTAKE_P = (0.35, 0.30, 0.20, 0.15)
FIRST_RESPONSE_MIN = (1.5, 4.0, 10.0, 45.0)
CSAT_BASE = {"咨询": 4.6, "投诉": 3.6, "售后": 4.2, "建议": 4.4}
HOUR_W = np.array([0, 0, 0, 0, 0, 0, 1, 2, 5, 8, 9, 8, 6, 6, 7, 7, 6, 6, 7, 8, 8, 6, 3, 1.0])
HOUR_P = HOUR_W / HOUR_W.sum()
SPIKE_FACTOR, FLAG_FACTOR, FLAG_MIN = 8, 4, 3

NEGATIVE = (
    "太让人失望了！",
    "非常不满意，要求退款。",
    "希望给个说法。",
    "以后不敢再买了。",
    "食品安全太差了！",
)
NEUTRAL = ("请尽快处理。", "麻烦帮忙看一下。", "请问需要带小票吗？", "谢谢。")
POSITIVE = ("非常满意，点赞！", "服务周到，值得表扬。", "体验很好，谢谢！", "给你们一个大大的赞！")
# type -> (category, weight, needs a sku, closers, texts). "{p}" is the product name; a text ending
# in "，" gets a closer of the category's sentiment.
CATEGORIES: dict[str, list[tuple[str, float, bool, tuple[str, ...], tuple[str, ...]]]] = {
    "咨询": [
        ("会员积分", 3, False, NEUTRAL, ("请问会员积分怎么兑换？", "我的积分为什么少了一部分，",
                                         "积分什么时候过期？", "会员日积分是双倍吗？")),
        ("营业时间", 2, False, NEUTRAL, ("请问春节期间营业时间是怎样的？", "周末几点开门？",
                                         "请问晚上几点停止营业？")),
        ("商品咨询", 3, True, NEUTRAL, ("请问{p}还有货吗？", "{p}什么时候到货？",
                                        "{p}的保质期是多久？", "{p}有没有大包装的，")),
        ("配送", 2, False, NEUTRAL, ("线上下单多久能送到？", "配送范围包括开发区吗？",
                                     "满多少元免配送费？")),
        ("储值卡", 2, False, NEUTRAL, ("储值卡可以在所有门店使用吗？", "储值卡余额怎么查询？",
                                       "储值卡丢了能补办吗？")),
    ],
    "投诉": [
        ("商品质量", 4, True, NEGATIVE, ("买的{p}有异味，", "{p}打开发现已经变质了，",
                                         "{p}包装破损漏气，", "刚买的{p}就过期了，",
                                         "{p}里面有异物，")),
        ("服务态度", 2, False, NEGATIVE, ("收银员态度很差，", "导购爱答不理，",
                                          "问了三个员工都说不知道，", "保安说话很冲，")),
        ("结账排队", 2, False, NEGATIVE, ("结账排队排了半个小时，", "收银台只开了两个，排队太长，",
                                          "自助收银机经常坏，")),
        ("价格标签", 2, False, NEGATIVE, ("价签和结账价格不一致，", "促销价没有按活动价结算，",
                                          "会员价没有生效，")),
        ("配送延误", 1, False, NEGATIVE, ("线上订单超时两个小时还没送到，",
                                          "配送的鸡蛋碎了好几个，", "送货少了一件商品，")),
    ],
    "售后": [
        ("退换货", 4, True, NEUTRAL, ("{p}想退货，", "买的{p}规格不对，想换货，",
                                      "{p}有质量问题，申请退换，")),
        ("退款", 2, False, NEUTRAL, ("退款申请提交一周了还没到账，", "线上订单取消了，钱还没退，")),
        ("发票", 1, False, NEUTRAL, ("需要开具增值税发票，", "发票抬头开错了，需要重开，")),
    ],
    "建议": [
        ("商品种类", 2, False, NEUTRAL, ("希望增加进口商品的种类。", "建议多引进一些有机蔬菜。",
                                         "希望多上一些无糖食品。")),
        ("门店环境", 1, False, NEUTRAL, ("建议生鲜区地面保持干燥。", "希望增加购物车数量。")),
        ("APP功能", 1, False, NEUTRAL, ("建议APP增加按门店查库存的功能。",
                                        "希望小程序能保存常用地址。")),
        ("表扬", 2, False, POSITIVE, ("收银员服务很热情，", "导购耐心帮我找到了商品，",
                                      "配送小哥送货很及时，", "客服处理问题很快，")),
    ],
}  # fmt: skip
COLUMNS = ["工单号", "会员卡号", "联系电话", "工单类型", "问题分类", "商品编码", "门店", "受理渠道",
           "创建时间", "首次响应时间", "关闭时间", "状态", "满意度", "内容"]  # fmt: skip

Progress = Callable[[str, int, int], None] | None


def write(world: DemoWorld, out_dir: Path, progress: Progress = None) -> list[Path]:
    """Write ``service/tickets.csv`` and record the planted effects and dirt.

    Tickets number about 0.12 per customer, so the table is built in memory in one pass.
    """
    rng = world.rng(NAME)
    c = world.customers
    start = _sec(pd.Timestamp(world.config.start))
    end = _sec(pd.Timestamp(world.config.end)) + 24 * HOUR - 1
    signup = np.maximum(c.signup_time.to_numpy("datetime64[s]").astype(np.int64), start)
    # members who never bought (no last_active) may still ask something in their first months
    last = c.last_active.fillna(c.signup_time + pd.Timedelta(days=120))
    stop = np.minimum(last.to_numpy("datetime64[s]").astype(np.int64) + 60 * 86400, end)
    span = np.maximum(stop - signup, 0)
    n = round(TICKETS_PER_CUSTOMER * len(c))
    who = rng.choice(len(c), n, p=span / span.sum())  # longer-lived members write more tickets
    day = (signup[who] + (rng.random(n) * span[who]).astype(np.int64)) // 86400 * 86400
    # the desk is busiest mid-morning and in the evening; hardly anyone calls at night
    created = day + rng.choice(24, n, p=HOUR_P) * HOUR + rng.integers(0, HOUR, n)
    kind = np.array(TYPES, dtype=object)[rng.choice(4, n, p=TYPE_P)]
    t = pd.DataFrame({"who": who, "created": created, "type": kind})
    t, spike_sku = _add_spike(world, rng, t, signup, stop)
    t = _categorise(world, rng, t, spike_sku)
    t = _timings(world, rng, t, end)
    t = t.sort_values("created", kind="stable").reset_index(drop=True)
    out = _frame(world, rng, t)
    path = out_dir / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    if progress:
        progress(FILE, len(out), len(out))
    _record(world, t, out)
    return [path]


def _sec(ts: pd.Timestamp) -> int:
    return int(ts.value // 10**9)


def _months(created: np.ndarray) -> np.ndarray:
    return created.astype("datetime64[s]").astype("datetime64[M]").astype(str)


def _add_spike(
    world: DemoWorld,
    rng: np.random.Generator,
    t: pd.DataFrame,
    signup: np.ndarray,
    stop: np.ndarray,
) -> tuple[pd.DataFrame, int]:
    """Add quality complaints about one SKU (returned as a product row) in July and August of the
    final year."""
    p = world.products
    last_year = world.config.end.year
    on_sale = (p.listed_date <= pd.Timestamp(last_year, 1, 1)) & (
        p.delisted_date.isna() | (p.delisted_date > pd.Timestamp(world.config.end))
    )
    pool = np.flatnonzero(on_sale.to_numpy()) if on_sale.any() else np.arange(len(p))
    spike_sku = int(rng.choice(pool))
    # baseline quality complaints per month, estimated from the type mix before SKUs are drawn
    share = TYPE_P[1] * 4 / sum(w for _, w, *_ in CATEGORIES["投诉"])
    base = pd.Series(_months(t.created.to_numpy())).value_counts() * share
    # k complaints in a month with B others over S SKUs clear FLAG_FACTOR x (B + k) / S easily
    extra = []
    for month in (f"{last_year}-07", f"{last_year}-08"):
        lo = _sec(pd.Timestamp(month))
        hi = _sec(pd.Timestamp(month) + pd.offsets.MonthBegin(1))
        k = max(2 * FLAG_MIN, int(np.ceil(SPIKE_FACTOR * base.get(month, 0) / len(p))))
        active = np.flatnonzero((signup < lo) & (stop > hi))
        who = rng.choice(active if len(active) else np.arange(len(signup)), k)
        day = lo + rng.integers(0, (hi - lo) // 86400, k) * 86400
        created = day + rng.choice(24, k, p=HOUR_P) * HOUR + rng.integers(0, HOUR, k)
        extra.append(pd.DataFrame({"who": who, "created": created, "type": "投诉"}))
    spike = pd.concat(extra, ignore_index=True).assign(spike=True)
    return pd.concat([t.assign(spike=False), spike], ignore_index=True), spike_sku


def _categorise(
    world: DemoWorld, rng: np.random.Generator, t: pd.DataFrame, spike_sku: int
) -> pd.DataFrame:
    """Pick category, SKU (on sale at the time) and text for every ticket."""
    n = len(t)
    p = world.products
    listed = p.listed_date.to_numpy("datetime64[s]").astype(np.int64)
    delisted = p.delisted_date.fillna(pd.Timestamp.max.floor("D")).to_numpy("datetime64[s]")
    delisted = delisted.astype(np.int64)
    category = np.empty(n, dtype=object)
    text = np.empty(n, dtype=object)
    sku = np.full(n, -1)
    created = t.created.to_numpy()
    for kind, cats in CATEGORIES.items():
        rows = np.flatnonzero(t.type.to_numpy() == kind)
        weight = np.array([w for _, w, *_ in cats], dtype=float)
        pick = rng.choice(len(cats), len(rows), p=weight / weight.sum())
        if kind == "投诉":
            pick[t.spike.to_numpy()[rows]] = 0  # the spike is about product quality
        for j, (name, _, needs_sku, closers, texts) in enumerate(cats):
            idx = rows[pick == j]
            category[idx] = name
            if needs_sku:
                sku[idx] = _draw_skus(rng, created[idx], listed, delisted)
                sku[idx[t.spike.to_numpy()[idx]]] = spike_sku
            names = np.where(sku[idx] >= 0, p.product_name.to_numpy()[sku[idx]], "该商品")
            text[idx] = _compose(rng, texts, closers, names.astype(object))
    return t.assign(category=category, text=text, sku=sku)


def _draw_skus(
    rng: np.random.Generator, at: np.ndarray, listed: np.ndarray, delisted: np.ndarray
) -> np.ndarray:
    """Uniform SKU per row among those on sale at that time (vectorised rejection sampling)."""
    sku = rng.integers(0, len(listed), len(at))
    for _ in range(50):
        bad = np.flatnonzero((listed[sku] > at) | (delisted[sku] <= at))
        if not len(bad):
            break
        sku[bad] = rng.integers(0, len(listed), len(bad))
    else:
        sku[bad] = -1  # nothing on sale: the ticket names no product
    return sku


def _compose(
    rng: np.random.Generator, texts: tuple[str, ...], closers: tuple[str, ...], names: np.ndarray
) -> np.ndarray:
    """Fill "{p}" with the product name and append a closer after texts ending in a comma."""
    pick = rng.integers(0, len(texts), len(names))
    head = np.array([s.split("{p}")[0] for s in texts], dtype=object)[pick]
    tail = np.array([s.split("{p}")[-1] if "{p}" in s else "" for s in texts], dtype=object)[pick]
    has_p = np.array(["{p}" in s for s in texts])[pick]
    body = head + np.where(has_p, names, "") + tail
    closer = np.array(closers, dtype=object)[rng.integers(0, len(closers), len(names))]
    return np.where(np.array([s.endswith("，") for s in texts])[pick], body + closer, body)


def _timings(world: DemoWorld, rng: np.random.Generator, t: pd.DataFrame, end: int) -> pd.DataFrame:
    """Intake channel, first response, resolution, status and satisfaction."""
    n = len(t)
    intake = rng.choice(len(INTAKE), n, p=INTAKE_P)
    first = t.created + np.maximum(
        30, rng.lognormal(np.log(np.array(FIRST_RESPONSE_MIN)[intake] * 60), 0.9)
    ).astype(np.int64)
    median = t.type.map({k: v[0] for k, v in RESOLUTION.items()}).to_numpy(float)
    sigma = t.type.map({k: v[1] for k, v in RESOLUTION.items()}).to_numpy(float)
    hours = rng.lognormal(np.log(median), sigma)
    closed = np.maximum(t.created + (hours * HOUR).astype(np.int64), first + 60)
    is_open = closed.to_numpy() > end
    # satisfaction falls with the resolution time; praise scores high, the bad SKU low
    latent = t.type.map(CSAT_BASE).to_numpy(float) - 0.45 * np.log1p(hours / 24)
    latent += np.where(t.category == "表扬", 0.6, 0.0) - np.where(t.spike, 0.6, 0.0)
    score = np.clip(np.rint(latent + rng.normal(0, 0.7, n)), 1, 5)
    closed_rows = np.flatnonzero(~is_open)
    unrated = np.zeros(n, bool)
    unrated[rng.choice(closed_rows, round(0.07 * len(closed_rows)), replace=False)] = True
    backwards = np.zeros(n, bool)
    rated = np.setdiff1d(closed_rows, np.flatnonzero(unrated))
    k = min(len(rated), max(3, round(0.002 * n)))
    backwards[rng.choice(rated, k, replace=False)] = True
    # entry error: the closing date typed a few hours to days before the opening date
    closed = np.where(backwards, t.created - rng.integers(HOUR, 72 * HOUR, n), closed)
    score = np.where(is_open | unrated, np.nan, score)
    return t.assign(intake=intake, first=first, closed=closed, open=is_open, score=score,
                    unrated=unrated, backwards=backwards)  # fmt: skip


def _frame(world: DemoWorld, rng: np.random.Generator, t: pd.DataFrame) -> pd.DataFrame:
    """The export's columns: card or phone only, phone formats, store, timestamps as text.

    Also marks on ``t`` each row's phone format and whether it carries only a phone.
    """
    n = len(t)
    c = world.customers
    card = c.member_card_no.to_numpy(object)[t.who]
    phone = pd.Series(c.phone.to_numpy(object)[t.who]).fillna("").astype(str)
    mode = rng.choice(3, n, p=[0.78, 0.16, 0.06])  # card+phone, phone only, neither (non-member)
    fmt = rng.choice(3, n, p=[0.7, 0.15, 0.15])
    fmt[phone.str.len().to_numpy() != 11] = 0
    stranger = np.char.add("15", rng.integers(0, 10**9, n).astype(str).astype(object))
    phone = phone.where(mode != 2, pd.Series(stranger).str.pad(11, fillchar="0"))
    dashed = phone.str[:3] + "-" + phone.str[3:7] + "-" + phone.str[7:]
    phone = phone.where(fmt != 1, dashed).where(fmt != 2, "+86 " + phone)
    home = c.home_store_id.to_numpy(object)[t.who]
    physical = world.stores.store_id[world.stores.store_type != "线上"].to_numpy(object)
    store = np.where(pd.isna(home) | (home == ""), "S00", home)
    store = np.where(mode == 2, rng.choice(physical, n), store)
    t["format"] = np.where(phone == "", -1, fmt)
    t["phone_only"] = mode == 1

    def as_text(secs: pd.Series) -> pd.Series:
        return pd.to_datetime(secs, unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")

    closed = as_text(t.closed).where(~t.open, "")
    return pd.DataFrame({
        "工单号": "GD" + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(8),
        "会员卡号": np.where(mode == 0, card, ""),
        "联系电话": phone,
        "工单类型": t.type,
        "问题分类": t.category,
        "商品编码": np.where(t.sku >= 0, world.products.sku.to_numpy(object)[t.sku], ""),
        "门店": store,
        "受理渠道": np.array(INTAKE, dtype=object)[t.intake],
        "创建时间": as_text(t.created),
        "首次响应时间": as_text(t.first),
        "关闭时间": closed,
        "状态": np.where(t.open, "处理中", "已关闭"),
        "满意度": t.score.astype("Int64"),
        "内容": t.text,
    })  # fmt: skip


def _record(world: DemoWorld, t: pd.DataFrame, out: pd.DataFrame) -> None:
    """Measure the planted effects on the written columns and record effects and dirt."""
    month = out["创建时间"].str[:7]
    sku = out["商品编码"]
    quality = (out["工单类型"] == "投诉") & (sku != "")
    counts = pd.crosstab(sku[quality], month[quality])
    avg = counts.sum() / len(world.products)
    threshold = np.maximum(FLAG_MIN, FLAG_FACTOR * avg)
    flagged = counts.ge(threshold, axis=1)
    spike_sku = out.loc[t.spike.to_numpy(), "商品编码"].iloc[0]
    consecutive = flagged.astype(int).T.rolling(2).sum().eq(2).any()
    last = world.config.end.year
    months = [f"{last}-07", f"{last}-08"]
    world.effects["sku_complaint_spike"] = {
        "requirement": "A9",
        "description": f"Complaints about SKU {spike_sku} are far above the average SKU's in "
        f"{months[0]} and {months[1]} only.",
        "definition": "per month: complaints = 投诉 tickets with that 商品编码; average = all such "
        f"complaints / number of SKUs in the product master; flagged when complaints >= "
        f"max({FLAG_MIN}, {FLAG_FACTOR} x average)",
        "expected": {"sku": spike_sku, "flagged_months": months},
        "realised": {
            "sku": spike_sku,
            "flagged_months": flagged.columns[flagged.loc[spike_sku]].tolist(),
            "counts": {m: int(counts.at[spike_sku, m]) for m in months},
            "thresholds": {m: round(float(threshold[m]), 3) for m in months},
            "other_skus_flagged_two_consecutive_months": sorted(
                s for s in consecutive.index[consecutive] if s != spike_sku
            ),
        },
        "tolerance": 0,
    }
    valid = (out["状态"] == "已关闭") & ~t.backwards.to_numpy()
    opened = pd.to_datetime(out["创建时间"])
    hours = (pd.to_datetime(out["关闭时间"].where(valid)) - opened).dt.total_seconds() / HOUR
    by_type = hours[valid].groupby(out["工单类型"][valid])
    world.effects["ticket_resolution_hours"] = {
        "requirement": "M2",
        "description": "Resolution time by ticket type; complaints are slowest.",
        "definition": "(关闭时间 - 创建时间) in hours over 已关闭 tickets with "
        "关闭时间 >= 创建时间; mean and p90 (linear interpolation) per 工单类型",
        "expected": {k: {"median": v[0]} for k, v in RESOLUTION.items()},
        "realised": {k: {"mean": round(float(g.mean()), 2), "p90": round(float(g.quantile(0.9)), 2),
                         "median": round(float(g.median()), 2)} for k, g in by_type},
        "tolerance": 0.01,
    }  # fmt: skip
    score = out["满意度"].dropna().astype(int)
    world.effects["ticket_csat"] = {
        "requirement": "M2",
        "description": "Ticket satisfaction 1-5: lower for complaints and slow resolutions.",
        "definition": "distribution and mean of non-empty 满意度; mean per 工单类型",
        "expected": {"mean": 3.9, "lowest_type": "投诉"},
        "realised": {
            "mean": round(float(score.mean()), 3),
            "distribution": {str(k): int(v) for k, v in score.value_counts().sort_index().items()},
            "by_type": {k: round(float(v), 3) for k, v in
                        score.groupby(out["工单类型"][score.index]).mean().items()},
        },
        "tolerance": 0.25,
    }  # fmt: skip
    world.effects["tickets_by_type"] = {
        "requirement": "M2",
        "description": "Inquiries by type, and tickets a member can only be matched to by phone.",
        "definition": "count of rows per 工单类型; phone_only = empty 会员卡号 with a "
        "member's phone",
        "expected": dict(zip(TYPES, TYPE_P, strict=True)),
        "realised": {
            "counts": out["工单类型"].value_counts().to_dict(),
            "phone_only": int(t.phone_only.sum()),
        },
        "tolerance": 0.03,
    }
    world.dirt[f"{FILE}.missing_satisfaction"] = int(t.unrated.sum())
    world.dirt[f"{FILE}.close_before_open"] = int(t.backwards.sum())
    world.dirt[f"{FILE}.formatted_phones"] = int((t.format > 0).sum())
