"""Group personas (A3) and the member-tier profile (A10).

A persona describes one group of customers (an RFM segment, a cluster, a tier, a hand-picked list):
its size and revenue against the whole population, who they are (gender, age, region, city), what
they buy (top departments and categories by net revenue), how they buy (order channel, payment
method, hours) and a one-sentence description in Chinese and English.

Definitions, all up to ``as_of`` (see :mod:`crmlens.models.features` for the time rules):

* **Population.** With a customers column (``"member_tier"``), every customer in the ``customers``
  table who signed up by ``as_of`` (or has no sign-up time); a missing value is the group 未知.
  With a Series (customer id → group), the customers in it. With a list of ids, the listed
  customers form the group and every customer in the ``customers`` table is the population.
* **Revenue** is net revenue (``monetary`` of :func:`~crmlens.models.features.customer_features`).
  Member share and revenue share are the group's part of the population's customers and revenue.
* **Mixes** are shares among the group's customers whose field is known: gender (男/女), age band
  (whole years at ``as_of``), region and city. Departments and categories are shares of the group's
  order-line revenue (refund lines included, so they net out). Channel, payment method and hour
  are shares of the group's purchase orders (refunds excluded).
* **Description.** A gender is named when it is at least :data:`DOMINANT_GENDER` of those known; an
  age range is the 20-year window (starting on a multiple of 5, ends inclusive) holding the most
  members, named when it holds at least half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import overload

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crmlens.errors import ConfigError
from crmlens.models.features import (
    QuerySource,
    Tables,
    as_of_day,
    customer_features,
    from_day,
    is_refund,
    signed_up,
    up_to,
)

SELECTED = "selected"
UNKNOWN = "未知"
#: Member tiers from best to lowest; other values follow in alphabetical order.
TIER_ORDER = ("白金", "黄金", "白银", "普通")
AGE_BANDS = (
    (0, 29, "<30"),
    (30, 39, "30-39"),
    (40, 49, "40-49"),
    (50, 59, "50-59"),
    (60, 200, "60+"),
)
DOMINANT_GENDER = 0.6
AGE_WINDOW = 20
_GENDER_WORDS = {"女": ("女性", "women"), "男": ("男性", "men")}
_CHANNEL_WORDS = {
    "POS": ("门店", "in store"),
    "online": ("网店", "online"),
    "app": ("APP", "in the app"),
}


@dataclass(frozen=True)
class Persona:
    """The profile of one group. Mixes map a value to its share, largest first."""

    group: str
    customers: int
    buyers: int
    revenue: float
    member_share: float
    revenue_share: float
    gender: dict[str, float] = field(default_factory=dict)
    age_bands: dict[str, float] = field(default_factory=dict)
    #: (first age, last age, share of members with a known age inside it)
    age_window: tuple[int, int, float] | None = None
    regions: dict[str, float] = field(default_factory=dict)
    cities: dict[str, float] = field(default_factory=dict)
    departments: dict[str, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    channels: dict[str, float] = field(default_factory=dict)
    payments: dict[str, float] = field(default_factory=dict)
    hours: dict[int, float] = field(default_factory=dict)
    description_zh: str = ""
    description_en: str = ""


# -- expressions ------------------------------------------------------------------------------
Who = str | pd.Series | Sequence[str]


def _members(tables: Tables, who: Who, as_of: date | datetime) -> ir.Table:
    """(customer_id, grp) for the population."""
    customers = signed_up(tables, as_of=as_of)
    if isinstance(who, str):
        if who not in customers.columns:
            raise ConfigError(
                f"customers has no column {who!r}; expected one of {customers.columns}"
            )
        return customers.select("customer_id", grp=customers[who].cast("string").fill_null(UNKNOWN))
    if isinstance(who, pd.Series):
        frame = pd.DataFrame(
            {"customer_id": who.index.astype(str), "grp": who.astype(str).to_numpy()}
        )
        return ibis.memtable(frame)
    chosen = ibis.memtable(pd.DataFrame({"picked": pd.Series(list(who), dtype=str).unique()}))
    joined = customers.select("customer_id").left_join(
        chosen, customers.customer_id == chosen.picked
    )
    return joined.select(
        "customer_id", grp=ibis.ifelse(joined.picked.notnull(), SELECTED, "others")
    )


def _member_frame(source: QuerySource, whos: Sequence[Who], as_of: date | datetime) -> pd.DataFrame:
    """customer_id, g0, g1, …: each customer's group in each grouping, null outside its
    population; one row per customer in any population.

    Built in pandas (the Series groupings are there already) and handed to the queries as one
    in-memory table, so they do not each rebuild it.
    """
    frame: pd.DataFrame | None = None
    for i, who in enumerate(whos):
        if isinstance(who, pd.Series):
            ids, groups = who.index.astype(str), who.astype(str).to_numpy()
            part = pd.DataFrame({"customer_id": ids.to_numpy(), "grp": groups})
        else:
            part = source.execute(_members(source.table, who, as_of))
        part = part.rename(columns={"grp": f"g{i}"})
        frame = part if frame is None else frame.merge(part, on="customer_id", how="outer")
    if frame is None:
        raise ConfigError("personas need at least one grouping")
    # a grouping without members would be an all-null column of unknown type in the table
    return frame.astype({c: "string" for c in frame.columns if c != "customer_id"})


def _age(customers: ir.Table, day: date) -> ir.IntegerValue:
    birth = customers.birth_date
    before_birthday = (birth.month() * 100 + birth.day()) > (day.month * 100 + day.day)
    return day.year - birth.year() - before_birthday.cast("int64")


#: Mix → (query of :func:`persona_expressions`, its key column). Departments and categories come
#: from one pass over the order lines, channel, payment and hour from one over the orders.
_MIXES = {
    "gender": ("gender", "key"),
    "age": ("age", "key"),
    "region": ("region", "key"),
    "city": ("city", "key"),
    "department": ("lines", "department"),
    "category": ("lines", "category"),
    "channel": ("purchases", "channel"),
    "payment": ("purchases", "payment"),
    "hour": ("purchases", "hour"),
}


def persona_expressions(
    tables: Tables,
    members: ir.Table,
    *,
    as_of: date | datetime,
    since: date | None = None,
) -> dict[str, ir.Table]:
    """The Ibis expressions behind :func:`personas`: counts and sums by (g0, g1, …, keys), where
    ``g<i>`` is a customer's group in grouping ``i`` (null outside its population; ``members``
    holds them, as :func:`_member_frame` gives them).

    Every figure of a persona is a count or a sum, so one pass over the orders serves every
    grouping: each grouping's figures are these rows summed over the other groupings.
    """
    dims = [c for c in members.columns if c != "customer_id"]
    features = customer_features(tables, as_of=as_of, since=since)
    customers = tables("customers")
    orders = tables("orders")
    in_time = up_to(orders.order_time, as_of)
    if since is not None:
        in_time &= from_day(orders.order_time, since)
    orders = orders.filter(in_time & orders.customer_id.notnull())
    mine = orders.join(members, "customer_id")
    purchases = mine.filter(~is_refund(mine))
    lines = tables("order_lines").join(mine.select("order_id", *dims), "order_id")
    lines = lines.left_join(tables("products"), lines.sku == tables("products").sku)
    people = members.join(customers, "customer_id")
    value = features.join(members, "customer_id")

    def counts(t: ir.Table, key: ir.Value) -> ir.Table:
        return t.group_by([*dims, key.name("key")]).aggregate(value=t.count())

    return {
        "size": members.group_by(dims).aggregate(customers=members.count()),
        "revenue": value.group_by(dims).aggregate(
            buyers=value.count(), revenue=value.monetary.sum()
        ),
        "gender": counts(people, people.gender),
        "age": counts(people, _age(people, as_of_day(as_of))),
        "region": counts(people, people.region),
        "city": counts(people, people.city),
        "lines": lines.group_by([*dims, "department", "category"]).aggregate(
            value=lines.amount.sum()
        ),
        "purchases": purchases.group_by(
            [
                *dims,
                purchases.order_channel.name("channel"),
                purchases.payment_method.name("payment"),
                purchases.order_time.hour().name("hour"),
            ]
        ).aggregate(value=purchases.count()),
    }


def _grouping(
    results: dict[str, pd.DataFrame], dim: str, dims: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """The figures of grouping ``dim``, summed over the other groupings: ``size`` and ``revenue``
    by ``grp``, and every mix of :data:`_MIXES` as long (grp, key, value) rows."""
    mine = {name: frame[frame[dim].notna()] for name, frame in results.items()}
    out = {}
    for name in ("size", "revenue"):
        part = mine[name]
        values = [c for c in part.columns if c not in dims]
        out[name] = part.groupby(dim, sort=False)[values].sum().rename_axis("grp").reset_index()
    for name, (query, key) in _MIXES.items():
        part = mine[query]
        # dropna=False keeps a missing key as a row, as the database's GROUP BY does (the mixes
        # leave it out later)
        summed = part.groupby([dim, key], dropna=False, sort=False)["value"].sum()
        out[name] = summed.rename_axis(["grp", "key"]).reset_index()
    return out


# -- results ----------------------------------------------------------------------------------
def _mix(frame: pd.DataFrame, group: str, top: int | None = None) -> dict:
    part = frame[(frame["grp"] == group) & frame["key"].notna() & (frame["key"] != "")]
    values = part.groupby("key")["value"].sum()
    total = values.sum()
    if not total:
        return {}
    shares = (values / total).sort_values(ascending=False, kind="stable")
    return {k: float(v) for k, v in shares.iloc[:top].items()}


def _age_bands(
    ages: pd.DataFrame, group: str
) -> tuple[dict[str, float], tuple[int, int, float] | None]:
    part = ages[(ages["grp"] == group) & ages["key"].notna()]
    counts = part.groupby(part["key"].astype(int))["value"].sum()
    total = counts.sum()
    if not total:
        return {}, None

    def share(lo: int, hi: int) -> float:
        return float(counts[(counts.index >= lo) & (counts.index <= hi)].sum() / total)

    bands = {label: share(lo, hi) for lo, hi, label in AGE_BANDS}
    # 20-year windows on multiples of 5; ties go to the youngest window
    windows = [(a, a + AGE_WINDOW, share(a, a + AGE_WINDOW)) for a in range(15, 80, 5)]
    best = max(windows, key=lambda w: (w[2], -w[0]))
    return bands, best


def _describe(p: Persona) -> tuple[str, str]:
    """One sentence in Chinese and one in English from a persona's dominant traits."""
    gender = next(iter(p.gender.items()), None)
    who_zh, who_en = "", "customers"
    if gender and gender[1] >= DOMINANT_GENDER and gender[0] in _GENDER_WORDS:
        who_zh, who_en = _GENDER_WORDS[gender[0]]
    age = p.age_window if p.age_window and p.age_window[2] >= 0.5 else None
    zh = [
        f"以{age[0]}-{age[1]}岁{who_zh}为主"
        if age
        else (f"以{who_zh}为主" if who_zh else "性别和年龄分布较分散")
    ]
    en = [
        f"Mostly {who_en}" + (f" aged {age[0]}-{age[1]}" if age else "")
        if (age or who_zh)
        else "A mix of ages and genders"
    ]
    cities = [c for c, _ in list(p.cities.items())[:2]]
    if cities:
        zh.append("主要在" + "、".join(cities))
        en.append("mainly in " + " and ".join(cities))
    departments = list(p.departments)[:3]
    if departments:
        zh.append("偏好" + "、".join(departments))
        en.append("who favour " + _join_en(departments))
    if p.payments:
        method = next(iter(p.payments))
        # "微信支付" already ends in 支付; "储值卡" needs it
        zh.append(f"常用{method}" + ("" if method.endswith("支付") else "支付"))
        en.append(f"usually pay with {method}")
    if p.channels:
        channel = next(iter(p.channels))
        zh_word, en_word = _CHANNEL_WORDS.get(channel, (channel, f"via {channel}"))
        zh.append(f"多在{zh_word}下单")
        en.append(f"mostly order {en_word}")
    hours = sorted(list(p.hours)[:2])
    if hours:
        zh.append("购物时间集中在" + "、".join(f"{h}点" for h in hours))
        en.append("and shop around " + " and ".join(f"{h}:00" for h in hours))
    return "，".join(zh) + "。", ", ".join(en) + "."


def _join_en(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _personas(results: dict[str, pd.DataFrame], top: int) -> dict[str, Persona]:
    sizes = results["size"].set_index("grp")["customers"]
    money = results["revenue"].set_index("grp").reindex(sizes.index).fillna(0.0)
    total_customers, total_revenue = sizes.sum(), money["revenue"].sum()
    out = {}
    for group in _ordered(sizes.index):
        bands, window = _age_bands(results["age"], group)
        found = Persona(
            group=group,
            customers=int(sizes[group]),
            buyers=int(money.loc[group, "buyers"]),
            revenue=float(money.loc[group, "revenue"]),
            member_share=float(sizes[group] / total_customers),
            revenue_share=float(money.loc[group, "revenue"] / total_revenue)
            if total_revenue
            else np.nan,
            gender=_mix(results["gender"], group),
            age_bands=bands,
            age_window=window,
            regions=_mix(results["region"], group, top),
            cities=_mix(results["city"], group, top),
            departments=_mix(results["department"], group, top),
            categories=_mix(results["category"], group, top),
            channels=_mix(results["channel"], group),
            payments=_mix(results["payment"], group),
            hours={int(h): s for h, s in _mix(results["hour"], group, top).items()},
        )
        zh, en = _describe(found)
        out[group] = replace(found, description_zh=zh, description_en=en)
    return out


def _ordered(groups: pd.Index) -> list[str]:
    names = [str(g) for g in groups]
    known = [t for t in TIER_ORDER if t in names]
    return known + sorted(n for n in names if n not in TIER_ORDER)


def personas(
    source: QuerySource,
    groupings: Mapping[str, Who],
    *,
    as_of: date | datetime,
    since: date | None = None,
    top: int = 5,
) -> dict[str, dict[str, Persona]]:
    """The personas of several groupings at once: grouping name → group → :class:`Persona`.

    Each grouping is a ``who`` of :func:`persona` (a ``customers`` column, a Series from customer
    id to group, or a list of ids: groups ``selected`` and ``others``); the result equals one :func:`persona` call per grouping, but the
    orders and lines are read once for all of them.
    """
    members = ibis.memtable(_member_frame(source, list(groupings.values()), as_of))
    expressions = persona_expressions(source.table, members, as_of=as_of, since=since)
    results = {name: source.execute(expr) for name, expr in expressions.items()}
    dims = [f"g{i}" for i in range(len(groupings))]
    return {
        name: _personas(_grouping(results, dim, dims), top)
        for name, dim in zip(groupings, dims, strict=True)
    }


@overload
def persona(
    source: QuerySource,
    who: Sequence[str],
    *,
    as_of: date | datetime,
    since: date | None = None,
    top: int = 5,
) -> Persona: ...
@overload
def persona(
    source: QuerySource,
    who: str | pd.Series,
    *,
    as_of: date | datetime,
    since: date | None = None,
    top: int = 5,
) -> dict[str, Persona]: ...
def persona(
    source: QuerySource,
    who: Who,
    *,
    as_of: date | datetime,
    since: date | None = None,
    top: int = 5,
) -> Persona | dict[str, Persona]:
    """Personas of groups, or of one hand-picked group.

    ``source`` is the :class:`~crmlens.warehouse.Warehouse`. ``who`` is a ``customers`` column
    name (``"member_tier"``, ``"city"``, …) or a Series from customer id to group (an RFM
    ``segment``, a cluster label), giving one :class:`Persona` per group in a dict (tiers in
    :data:`TIER_ORDER`, then alphabetical); or a list of customer ids, giving their single
    :class:`Persona`. ``top`` limits the region, city, department, category and hour mixes.
    For several groupings, :func:`personas` reads the data once.
    """
    found = personas(source, {"who": who}, as_of=as_of, since=since, top=top)["who"]
    if isinstance(who, str | pd.Series):
        return found
    if SELECTED not in found:
        raise ConfigError("none of the given customer ids is in the customers table")
    return found[SELECTED]


def tier_profile(source: QuerySource, *, as_of: date | datetime, top: int = 5) -> pd.DataFrame:
    """Per member tier (A10): member vs revenue share, top departments, payment, gender, age mix.

    One row per tier in :data:`TIER_ORDER`; columns ``customers``, ``member_share``, ``revenue``,
    ``revenue_share``, ``top_departments`` (list, by revenue), ``payment_<method>``,
    ``gender_<value>`` and ``age_<band>`` shares, and ``description_zh``/``description_en``.
    """
    rows = []
    for tier, p in persona(source, "member_tier", as_of=as_of, top=top).items():
        row = {
            "tier": tier,
            "customers": p.customers,
            "member_share": p.member_share,
            "revenue": p.revenue,
            "revenue_share": p.revenue_share,
            "top_departments": list(p.departments),
        }
        row |= {f"payment_{k}": v for k, v in p.payments.items()}
        row |= {f"gender_{k}": v for k, v in p.gender.items()}
        row |= {f"age_{k}": v for k, v in p.age_bands.items()}
        rows.append(row | {"description_zh": p.description_zh, "description_en": p.description_en})
    frame = pd.DataFrame(rows).set_index("tier")
    mixes = [c for c in frame.columns if c.startswith(("payment_", "gender_", "age_"))]
    frame[mixes] = frame[mixes].fillna(0.0)
    return frame
