"""Survey tool export: ``survey/store_survey.xlsx`` (seed 000: a prize survey in 3 stores).

Sheet ``问卷数据``: a title in row 1, a blank row 2, the header in row 3, then one response per
row. Every score column is drawn as an exact quota (so the realised mean is the intended one up to
rounding) and handed out by the rank of a per-respondent mood, so dimensions, CSAT and NPS
correlate the way real answers do.

Planted (``world.effects``): ``survey_dimension_means`` (环境 4.2, 价格 4.0, 服务 4.1,
丰富度 3.3 the lowest), ``survey_top_themes`` (queues, boxed meals, limits on specials, each
phrased several ways) and ``survey_nps_csat``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

from crmlens.demo.world import DemoWorld

NAME = "survey"
FILE = "survey/store_survey.xlsx"
SHEET = "问卷数据"
PER_STORE_AT_20K = 400
MAX_TOTAL = 5000
# probabilities of scores 1..5 per dimension; means 4.20, 4.01, 4.10, 3.31
DIMENSIONS = {
    "购物环境": (0.01, 0.03, 0.11, 0.45, 0.40),
    "商品价格": (0.02, 0.05, 0.16, 0.44, 0.33),
    "服务态度": (0.015, 0.04, 0.135, 0.45, 0.36),
    "商品丰富度": (0.06, 0.16, 0.33, 0.31, 0.14),
}
CSAT_P = (0.02, 0.05, 0.15, 0.46, 0.32)
# NPS answer 0..10: 22 % detractors (0-6), 28 % passives, 50 % promoters -> NPS 28
NPS_P = (0.01, 0.01, 0.01, 0.02, 0.02, 0.05, 0.10, 0.12, 0.16, 0.22, 0.28)
COMMENT_SHARE = 0.75
SECOND_THEME_SHARE = 0.15
# theme -> (share of comments naming it first, phrasings); the first three are the planted top 3
THEMES: dict[str, tuple[float, tuple[str, ...]]] = {
    "结账排队时间长": (0.28, ("结账排队时间太长了", "收银台开得太少，每次都要排很久",
                             "高峰期结账要等二十多分钟", "希望多开几个收银通道", "排队结账太慢",
                             "自助收银机太少，排队的人多")),
    "盒饭不好吃": (0.22, ("盒饭不好吃", "便当口味一般，希望改进", "熟食区的盒饭太咸了",
                          "午餐盒饭菜色单一，不好吃", "盒饭米饭太硬", "便当的菜都凉了")),
    "特价商品限购": (0.17, ("特价商品限购太严格了", "特价商品每人只能买一份，不合理",
                            "打折商品数量太少，去晚了就没了", "特价品总是限量，抢不到",
                            "促销商品限购让人很扫兴")),
    "商品种类少": (0.10, ("商品种类太少", "进口商品选择不多", "希望增加有机蔬菜的品种",
                          "零食品种比别家少")),
    "停车不便": (0.05, ("停车位不够", "停车不方便，希望增加车位")),
    "生鲜不新鲜": (0.05, ("生鲜不够新鲜", "水果有时候不新鲜")),
    "营业时间": (0.03, ("希望营业时间延长到晚上十点", "早上开门太晚")),
    "表扬": (0.05, ("员工服务很热情", "店里很干净，购物很舒服", "整体挺满意的")),
    "无意见": (0.05, ("没有", "无", "暂无建议", "挺好的")),
}  # fmt: skip
COMPLAINT_THEMES = list(THEMES)[:7]
HEADER = ["问卷编号", "会员卡号", "门店", "提交时间", "推荐意愿(0-10)", "总体满意度(1-5)",
          *DIMENSIONS, "意见建议"]  # fmt: skip

Progress = Callable[[str, int, int], None] | None


def write(world: DemoWorld, out_dir: Path, progress: Progress = None) -> list[Path]:
    """Write ``survey/store_survey.xlsx`` and record the planted effects.

    Responses grow with the square root of the member count (400 per store at 20,000 members),
    capped at 5,000 in all, so the workbook stays small at any size.
    """
    rng = world.rng(NAME)
    stores = _pick_stores(world, rng)
    per_store = int(np.clip(round(PER_STORE_AT_20K * np.sqrt(len(world.customers) / 20_000)),
                            30, MAX_TOTAL // len(stores)))  # fmt: skip
    frame = _responses(world, rng, stores, per_store)
    path = out_dir / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_xlsx(path, frame, stores, world.config.end.year)
    if progress:
        progress(FILE, len(frame), len(frame))
    _record(world, frame)
    return [path]


def _pick_stores(world: DemoWorld, rng: np.random.Generator) -> list[str]:
    """Three physical stores among the six with the most home members."""
    s = world.stores
    physical = s.store_id[s.store_type != "线上"]
    members = world.customers.home_store_id.value_counts().reindex(physical, fill_value=0)
    top = members.sort_values(ascending=False, kind="stable").index[:6].to_numpy()
    return sorted(rng.choice(top, min(3, len(top)), replace=False).tolist())


def _quota(rng: np.random.Generator, probs: tuple[float, ...], mood: np.ndarray) -> np.ndarray:
    """Scores with exactly round(p x n) of each value, the best going to the best moods."""
    n = len(mood)
    counts = np.floor(np.array(probs) * n).astype(int)
    rest = n - counts.sum()
    counts[np.argsort(counts - np.array(probs) * n, kind="stable")[:rest]] += 1
    scores = np.repeat(np.arange(len(probs)), counts)  # ascending
    out = np.empty(n, dtype=np.int64)
    out[np.argsort(mood, kind="stable")] = scores
    return out


def _responses(
    world: DemoWorld, rng: np.random.Generator, stores: list[str], per_store: int
) -> pd.DataFrame:
    """One row per response with scores, comment and the theme(s) the comment names."""
    c = world.customers
    year = world.config.end.year
    start = pd.Timestamp(year, 11, 8)
    frames = []
    for store in stores:
        pool = np.flatnonzero(
            (c.home_store_id.to_numpy(object) == store) & (c.signup_time < start).to_numpy()
        )
        if len(pool) < per_store:  # a small world: fill with other members
            pool = np.flatnonzero((c.signup_time < start).to_numpy())
        who = rng.choice(pool, per_store, replace=len(pool) < per_store)
        card = c.member_card_no.to_numpy(object)[who]
        card[rng.random(per_store) < 0.03] = ""  # a few answered without a card
        day = rng.integers(0, 21, per_store) * 86400 + rng.integers(9 * 3600, 21 * 3600, per_store)
        at = start + pd.to_timedelta(np.sort(day), unit="s")
        frames.append(pd.DataFrame({"会员卡号": card, "门店": store, "提交时间": at}))
    df = pd.concat(frames, ignore_index=True)
    n = len(df)
    df.insert(0, "问卷编号", [f"Q{year}{i:05d}" for i in range(1, n + 1)])
    mood = rng.normal(0, 1, n)
    for dim, probs in DIMENSIONS.items():
        df[dim] = _quota(rng, probs, 0.6 * mood + 0.8 * rng.normal(0, 1, n)) + 1
    overall = df[list(DIMENSIONS)].mean(axis=1).to_numpy() + 0.4 * rng.normal(0, 1, n)
    df["总体满意度(1-5)"] = _quota(rng, CSAT_P, overall) + 1
    df["推荐意愿(0-10)"] = _quota(rng, NPS_P, df["总体满意度(1-5)"] + rng.normal(0, 0.8, n))
    comments, themes = _comments(rng, n)
    df["意见建议"] = comments
    df["_themes"] = themes
    return df[[*HEADER, "_themes"]]


def _comments(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Comments for ~75 % of respondents: exact theme quotas, random phrasings, some with two."""
    k = round(COMMENT_SHARE * n)
    names = list(THEMES)
    first = _quota(rng, tuple(w / sum(v[0] for v in THEMES.values()) for w, _ in THEMES.values()),
                   rng.random(k))  # fmt: skip
    second = rng.choice(len(COMPLAINT_THEMES), k)
    two = (rng.random(k) < SECOND_THEME_SHARE) & (first < len(COMPLAINT_THEMES)) & (second != first)
    text = _phrase(rng, first, second, two)
    tags = np.array(names, dtype=object)[first]
    tags = np.where(two, tags + ";" + np.array(names, dtype=object)[second], tags)
    rows = rng.permutation(n)[:k]
    comments, themes = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    comments[rows], themes[rows] = text, tags
    return comments, themes


def _phrase(
    rng: np.random.Generator, first: np.ndarray, second: np.ndarray, two: np.ndarray
) -> np.ndarray:
    """Pick a random phrasing of each comment's theme(s), joined by a Chinese semicolon."""
    table = list(THEMES.values())

    def say(theme: np.ndarray) -> np.ndarray:
        out = np.empty(len(theme), dtype=object)
        for t, (_, phrasings) in enumerate(table):
            rows = np.flatnonzero(theme == t)
            out[rows] = np.array(phrasings, dtype=object)[
                rng.integers(0, len(phrasings), len(rows))
            ]
        return out

    return np.where(two, say(first) + "；" + say(second), say(first))


def _write_xlsx(path: Path, frame: pd.DataFrame, stores: list[str], year: int) -> None:
    """Title row, blank row, header on row 3; fixed document dates so the bytes are repeatable."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    book.set_properties({"title": "门店顾客满意度调查", "created": datetime(year, 12, 1)})
    sheet = book.add_worksheet(SHEET)
    bold = book.add_format({"bold": True})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write(0, 0, f"{year}年门店顾客满意度有奖问卷调查（{'、'.join(stores)}）", bold)
    sheet.write_row(2, 0, HEADER, bold)
    sheet.set_column(3, 3, 20)
    sheet.set_column(len(HEADER) - 1, len(HEADER) - 1, 40)
    values = frame[HEADER].to_numpy(object)
    for r, row in enumerate(values, start=3):
        sheet.write_row(r, 0, row[:3])
        sheet.write_datetime(r, 3, row[3].to_pydatetime(), when)
        sheet.write_row(r, 4, [int(v) for v in row[4:10]])
        if row[10]:
            sheet.write_string(r, 10, row[10])
    book.close()


def _record(world: DemoWorld, frame: pd.DataFrame) -> None:
    """Measure means, NPS/CSAT and theme counts on the written responses."""
    means = frame[list(DIMENSIONS)].mean().round(3)
    by_store = frame.groupby("门店")[list(DIMENSIONS)].mean().round(3)
    world.effects["survey_dimension_means"] = {
        "requirement": "A9",
        "description": "Store survey: environment, price and service score well; assortment "
        "(商品丰富度) is lowest at about 3.3.",
        "definition": "mean of each dimension column (1-5) over all responses",
        "expected": {d: round(sum((i + 1) * p for i, p in enumerate(ps)), 2)
                     for d, ps in DIMENSIONS.items()} | {"lowest": "商品丰富度"},
        "realised": {d: float(v) for d, v in means.items()} | {
            "lowest": str(means.idxmin()), "n": len(frame), "stores": by_store.index.tolist(),
            "by_store": {s: row.astype(float).to_dict() for s, row in by_store.iterrows()},
        },
        "tolerance": 0.05,
    }  # fmt: skip
    counts = frame["_themes"].str.split(";").explode().value_counts()
    counts = counts[counts.index != ""]
    world.effects["survey_top_themes"] = {
        "requirement": "A9",
        "description": "Top 3 comment themes: checkout queues, boxed meals, limits on specials, "
        "each phrased several ways.",
        "definition": "comments naming a theme (a comment may name two, joined by '；'); themes "
        "recognised by keywords: 排队/收银/结账, 盒饭/便当, 特价/限购/限量/打折/促销",
        "expected": {"top3": list(THEMES)[:3]},
        "realised": {"top3": counts.index[:3].tolist(), "counts": counts.astype(int).to_dict(),
                     "comments": int((frame["意见建议"] != "").sum())},
        "tolerance": 0,
    }  # fmt: skip
    nps = frame["推荐意愿(0-10)"]
    csat = frame["总体满意度(1-5)"]
    promoters, detractors = float((nps >= 9).mean()), float((nps <= 6).mean())
    world.effects["survey_nps_csat"] = {
        "requirement": "M1/M2",
        "description": "Store survey NPS and CSAT.",
        "definition": "NPS = 100 x (share 9-10 - share 0-6) of 推荐意愿; CSAT = mean of "
        "总体满意度 and share >= 4",
        "expected": {"nps": 28.0, "csat_mean": 4.01},
        "realised": {"nps": round(100 * (promoters - detractors), 2),
                     "csat_mean": round(float(csat.mean()), 3),
                     "csat_top2": round(float((csat >= 4).mean()), 4)},
        "tolerance": 1.0,
    }  # fmt: skip
