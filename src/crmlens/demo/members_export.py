"""The CRM and product masters: ``crm/members.csv`` (GBK, Chinese headers, dirty),
``crm/stores.csv`` and ``shop/products.csv``.

Dirt in members.csv, planted on disjoint sets of members so every count is exact and means the
same whether one counts file rows or members:

- exact duplicates: the same row twice (the member synced twice);
- key duplicates: an older version of the member (earlier ``更新时间``, one field different: a lower
  tier, an old phone number or the opposite marketing consent); the newer row is the truth;
- missing ``性别`` / ``出生日期`` for some individuals (企业 members never have them: not dirt);
- invalid ``手机号`` (10 digits, or a letter O for a zero) and ``电子邮箱`` without ``@``;
- ``注册时间`` in four formats: ``2019-03-05 10:21:00`` (most), ``2019/3/5 10:21``,
  ``2019年3月5日`` and ``20190305``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crmlens.demo.membership import TIERS
from crmlens.demo.world import DemoWorld

MEMBERS_FILE = "crm/members.csv"
STORES_FILE = "crm/stores.csv"
PRODUCTS_FILE = "shop/products.csv"
MEMBER_HEADERS = {
    "member_card_no": "会员卡号",
    "name": "姓名",
    "gender": "性别",
    "birth_date": "出生日期",
    "phone": "手机号",
    "email": "电子邮箱",
    "tier": "会员等级",
    "customer_type": "客户类型",
    "company_name": "企业名称",
    "industry": "行业",
    "company_size": "企业规模",
    "region": "大区",
    "province": "省份",
    "city": "城市",
    "home_store_id": "注册门店",
    "channel_id": "注册渠道",
    "signup_method": "注册方式",
    "signup_time": "注册时间",
    "referrer_card_no": "推荐人卡号",
    "consent_marketing": "营销授权",
    "updated_at": "更新时间",
}
# columns formatted as text here rather than copied from the world
TEXT_FORMATTED = ("birth_date", "home_store_id", "consent_marketing", "signup_time", "updated_at")
# shares of members with each kind of dirt (disjoint)
EXACT_DUPLICATE_P = 0.006
KEY_DUPLICATE_P = 0.005
MISSING_GENDER_P = 0.02
MISSING_BIRTH_P = 0.03
INVALID_PHONE_P = 0.008
INVALID_EMAIL_P = 0.008
# 注册时间 formats: ISO, slash, Chinese, compact
DATE_FORMAT_P = (0.76, 0.12, 0.07, 0.05)
DATE_FORMAT_KINDS = ("iso", "slash", "chinese", "compact")


def _slash(times: pd.Series) -> pd.Series:
    """``2019/3/5 10:21``."""
    return (
        times.dt.year.astype(str)
        + "/"
        + times.dt.month.astype(str)
        + "/"
        + times.dt.day.astype(str)
        + " "
        + times.dt.strftime("%H:%M")
    )


def _chinese(times: pd.Series) -> pd.Series:
    """``2019年3月5日``."""
    return (
        times.dt.year.astype(str)
        + "年"
        + times.dt.month.astype(str)
        + "月"
        + times.dt.day.astype(str)
        + "日"
    )


def _updated_at(rng: np.random.Generator, signup: pd.Series, end: pd.Timestamp) -> pd.Series:
    """Last update: the sign-up, or for most members a later profile or tier change."""
    span = (end - signup).dt.total_seconds().to_numpy()
    changed = rng.random(len(signup)) < 0.8
    offset = np.where(changed, rng.random(len(signup)) * span, 0.0)
    return (signup + pd.to_timedelta(np.round(offset), unit="s")).dt.floor("s")


def member_rows(world: DemoWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int]]:
    """The members table as exported (Chinese headers, dirt planted) and the dirt counts."""
    c = world.customers
    n = len(c)
    end = pd.Timestamp(world.config.end) + pd.Timedelta(hours=23, minutes=59, seconds=59)
    # pandas (Arrow-backed) string columns throughout: object arrays of a million rows would
    # multiply the memory needed
    columns = [k for k in MEMBER_HEADERS if k in c.columns and k not in TEXT_FORMATTED]
    out = c[columns].copy()
    out["birth_date"] = c["birth_date"].dt.strftime("%Y-%m-%d").fillna("")
    out["home_store_id"] = c["home_store_id"].fillna("")
    out["consent_marketing"] = c["consent_marketing"].map({True: "是", False: "否"})
    signup = c["signup_time"]
    updated = _updated_at(rng, signup, end)

    # one dirt kind per member at most: draw a kind per member from the shares
    kinds = ("exact", "key", "gender", "birth", "phone", "email")
    shares = (
        EXACT_DUPLICATE_P,
        KEY_DUPLICATE_P,
        MISSING_GENDER_P,
        MISSING_BIRTH_P,
        INVALID_PHONE_P,
        INVALID_EMAIL_P,
    )
    u = rng.random(n)
    bounds = np.cumsum(shares)
    kind = np.searchsorted(bounds, u, side="right")  # len(kinds) = clean
    individual = c["customer_type"].to_numpy() == "个人"
    has_email = (out["email"] != "").to_numpy()
    is_kind = {k: kind == i for i, k in enumerate(kinds)}
    is_kind["gender"] &= individual
    is_kind["birth"] &= individual
    is_kind["email"] &= has_email
    # an older version needs room before the current one: not for members who just signed up
    is_kind["key"] &= (signup < end - pd.Timedelta(days=3)).to_numpy()
    updated = updated.where(
        ~is_kind["key"] | (updated > signup + pd.Timedelta(days=2)), signup + pd.Timedelta(days=2)
    )

    out["gender"] = out["gender"].mask(is_kind["gender"], "")
    out["birth_date"] = out["birth_date"].mask(is_kind["birth"], "")
    phone = out["phone"]
    letter = phone.str.replace("0", "O", n=1, regex=False)  # the letter O typed for a zero
    # a digit lost; also for numbers without a zero, which cannot get the letter
    short = (rng.random(n) < 0.5) | (letter == phone).to_numpy()
    bad_phone = phone.str.slice(0, 10).where(short, letter)
    out["phone"] = phone.mask(is_kind["phone"], bad_phone)
    email = out["email"]
    out["email"] = email.mask(is_kind["email"], email.str.replace("@", "", n=1, regex=False))

    # 注册时间 formats: duplicated members keep the ISO format so the counts stay per member
    fmt = rng.choice(len(DATE_FORMAT_KINDS), size=n, p=DATE_FORMAT_P)
    fmt = np.where(is_kind["exact"] | is_kind["key"], 0, fmt)
    text = signup.dt.strftime("%Y-%m-%d %H:%M:%S")
    text = text.mask(fmt == 1, _slash(signup))
    text = text.mask(fmt == 2, _chinese(signup))
    text = text.mask(fmt == 3, signup.dt.strftime("%Y%m%d"))
    out["signup_time"] = text
    out["updated_at"] = updated.dt.strftime("%Y-%m-%d %H:%M:%S")
    out = out.reset_index(drop=True)

    stale = _stale_versions(
        rng, out[is_kind["key"]], signup[is_kind["key"]], updated[is_kind["key"]]
    )
    rows = pd.concat([out, out[is_kind["exact"]], stale], ignore_index=False)
    # ordered by card; an older version sorts before or after the current one at random
    position = np.concatenate(
        [np.arange(n) * 3 + 1, np.flatnonzero(is_kind["exact"]) * 3 + 2, stale.index * 3]
    )
    position[n + int(is_kind["exact"].sum()) :] += 2 * (rng.random(len(stale)) < 0.5)
    rows = rows.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
    rows = rows[list(MEMBER_HEADERS)].rename(columns=MEMBER_HEADERS)
    counts = {
        "exact_duplicates": int(is_kind["exact"].sum()),
        "key_duplicates": int(is_kind["key"].sum()),
        "missing_gender": int(is_kind["gender"].sum()),
        "missing_birth_date": int(is_kind["birth"].sum()),
        "invalid_phone": int(is_kind["phone"].sum()),
        "invalid_email": int(is_kind["email"].sum()),
        "mixed_date_formats": int((fmt != 0).sum()),
    }
    for i, name in enumerate(DATE_FORMAT_KINDS[1:], start=1):
        counts[f"date_format_{name}"] = int((fmt == i).sum())
    return rows, counts


def _stale_versions(
    rng: np.random.Generator, current: pd.DataFrame, signup: pd.Series, updated: pd.Series
) -> pd.DataFrame:
    """Older versions of ``current`` rows: earlier update time and one field as it was before."""
    stale = current.copy()
    k = len(stale)
    field = rng.integers(0, 3, size=k)
    tier_index = pd.Categorical(stale["tier"], categories=list(TIERS)).codes
    lower = np.array(TIERS)[np.minimum(tier_index + 1, len(TIERS) - 1)]
    # a 普通 member has no lower tier: its older version differs in consent instead
    field = np.where((field == 0) & (tier_index == len(TIERS) - 1), 2, field)
    old_phone = np.char.add(
        np.char.add("1", rng.choice(list("3589"), size=k)),
        np.char.zfill(rng.integers(0, 10**9, size=k).astype(str), 9),
    )
    flipped = np.where(stale["consent_marketing"].to_numpy() == "是", "否", "是")
    stale["tier"] = np.where(field == 0, lower, stale["tier"].to_numpy())
    stale["phone"] = np.where(field == 1, old_phone, stale["phone"].to_numpy())
    stale["consent_marketing"] = np.where(field == 2, flipped, stale["consent_marketing"])
    # the older version was written between the sign-up and a day before the current update
    span = (updated - pd.Timedelta(days=1) - signup).dt.total_seconds().to_numpy()
    older = signup + pd.to_timedelta(np.round(rng.random(k) * span), unit="s")
    stale["updated_at"] = older.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
    return stale


def write_masters(world: DemoWorld, out_dir: Path) -> list[Path]:
    """Write members (GBK), stores and products; record the member dirt in ``world.dirt``."""
    rng = np.random.default_rng([world.config.seed, 21])
    (out_dir / "crm").mkdir(parents=True, exist_ok=True)
    (out_dir / "shop").mkdir(parents=True, exist_ok=True)
    members, counts = member_rows(world, rng)
    paths = [out_dir / MEMBERS_FILE, out_dir / STORES_FILE, out_dir / PRODUCTS_FILE]
    members.to_csv(paths[0], index=False, encoding="gbk", lineterminator="\n")
    for kind, count in counts.items():
        world.dirt[f"{MEMBERS_FILE}.{kind}"] = count

    stores = world.stores[
        ["store_id", "store_name", "region", "province", "city", "store_type"]
    ].assign(
        opened_date=world.stores["opened_date"].dt.strftime("%Y-%m-%d"),
        area_sqm=world.stores["area_sqm"],
    )
    stores.to_csv(paths[1], index=False, lineterminator="\n")

    p = world.products
    products = p[["sku", "product_name", "category", "department", "brand"]].assign(
        unit_price=p["unit_price"].map("{:.2f}".format),
        unit_cost=p["unit_cost"].map("{:.2f}".format),
        listed_date=p["listed_date"].dt.strftime("%Y-%m-%d"),
        delisted_date=p["delisted_date"].dt.strftime("%Y-%m-%d").fillna(""),
    )
    products.to_csv(paths[2], index=False, lineterminator="\n")
    return paths
