"""Orders and order lines of the demo company, generated block by block of customers.

A *block* is a fixed run of :data:`BLOCK` customers with its own random stream, so the result does
not depend on how many blocks are written per chunk (chunked streaming == unchunked). Everything in a
block is vectorised: per-customer order counts are Poisson draws over the shared calendar intensity,
order times are inverse-CDF lookups into it, and baskets, SKUs and payments are drawn per row.

The clean truth of a block is returned as numpy arrays (amounts in integer cents); planting dirt and
writing CSV is :mod:`crmlens.demo.shop_export`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmlens.demo.calendar import Calendar
from crmlens.demo.geography import ONLINE_STORE
from crmlens.demo.membership import TIERS, time_of_day
from crmlens.demo.tastes import (
    WALK_IN,
    SkuTable,
    build_sku_table,
    category_probabilities,
    extra_units,
)
from crmlens.demo.world import DemoWorld

BLOCK = 2_500  # customers per random stream
CHANNELS = np.array(["POS", "online", "app"])
PAYMENTS = np.array(["储值卡", "微信支付", "支付宝", "现金", "银行卡"])
STATUSES = np.array(["completed", "refunded"])
# share of orders paid with the stored-value card, by tier (seed 000 ③: top tiers use it more)
STORED_VALUE_P = np.array([0.56, 0.46, 0.17, 0.12])
# other payment methods (微信, 支付宝, 现金, 银行卡) when not paying by stored-value card
OTHER_PAYMENT_P = np.array([0.46, 0.26, 0.15, 0.13])
# Poisson mean of order lines beyond the first, by tier; walk-ins buy less
EXTRA_LINES = np.array([2.7, 2.3, 1.6, 1.4])
WALK_IN_EXTRA_LINES = 1.1
WALK_IN_SHARE = 0.10  # of all orders (excluding refunds)
REFUND_P = 0.02
DISCOUNT_P = np.array([0.55, 0.50, 0.35, 0.30, 0.20])  # by tier, walk-in last
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Shop:
    """Everything order generation reads, prepared once from the world."""

    calendar: Calendar
    sku_table: SkuTable
    category_p_cum: np.ndarray  # (profiles, categories) cumulative probabilities
    price_cents: np.ndarray  # per product row
    extra_units: np.ndarray  # per product row
    physical_store_ids: np.ndarray
    physical_store_p: np.ndarray
    store_city: np.ndarray  # per physical store
    city_stores: dict[str, np.ndarray]
    store_code: dict[str, int]  # store_id -> index into ``store_ids``
    store_ids: np.ndarray  # all store ids incl. S00 at 0


def prepare(world: DemoWorld, calendar: Calendar) -> Shop:
    """Precompute the lookup tables order generation needs."""
    products = world.products
    stores = world.stores
    physical = stores[stores["store_id"] != ONLINE_STORE]
    weights = physical["signup_weight"].to_numpy(dtype=float)
    store_ids = stores["store_id"].to_numpy().astype(str)
    code = {s: i for i, s in enumerate(store_ids)}
    city = physical["city"].to_numpy().astype(str)
    return Shop(
        calendar=calendar,
        sku_table=build_sku_table(products, calendar.months),
        category_p_cum=np.cumsum(category_probabilities(products), axis=1),
        price_cents=np.round(products["unit_price"].to_numpy() * 100).astype(np.int64),
        extra_units=extra_units(products),
        physical_store_ids=physical["store_id"].to_numpy().astype(str),
        physical_store_p=weights / weights.sum(),
        store_city=city,
        city_stores={
            c: np.array([code[s] for s in physical["store_id"][city == c]]) for c in set(city)
        },
        store_code=code,
        store_ids=store_ids,
    )


@dataclass
class OrderBlock:
    """The clean orders and lines of one block.

    orders: ``customer`` (row in world.customers, -1 walk-in), ``store`` (index into
    ``Shop.store_ids``), ``channel`` (into :data:`CHANNELS`), ``time`` (datetime64[s]), ``payment``
    (into :data:`PAYMENTS`), ``gross``/``discount``/``paid`` (cents), ``status`` (into
    :data:`STATUSES`), ``original`` (row of the refunded order in this block, -1), ``tier``
    (0-3, 4 walk-in). Rows are sorted by time. lines: ``order`` (row in orders), ``line_no``,
    ``product`` (row in world.products), ``quantity``, ``price``, ``amount`` (cents).
    """

    orders: dict[str, np.ndarray]
    lines: dict[str, np.ndarray]


def _member_orders(
    rng: np.random.Generator, shop: Shop, customers: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Member orders: the till purchase at sign-up, Poisson orders, and the last order."""
    cal = shop.calendar
    first = customers["first_day"].to_numpy()
    last = customers["last_day"].to_numpy()
    rate = customers["order_rate"].to_numpy()
    repeat = customers["final_order"].to_numpy()  # the last order is not the till purchase
    exposure = np.where(repeat, cal.cum_visit[np.maximum(last, 0)] - cal.cum_visit[first], 0.0)
    extra = rng.poisson(rate * np.maximum(exposure, 0.0))
    owner = np.repeat(np.arange(len(customers)), extra)
    lo = cal.cum_visit[first[owner]]
    target = lo + rng.random(len(owner)) * (cal.cum_visit[last[owner]] - lo)
    day = np.searchsorted(cal.cum_visit, target, side="right") - 1
    day = np.clip(day, first[owner], last[owner] - 1)
    start = np.datetime64(cal.days[0].date(), "s")
    signup = customers["signup_time"].to_numpy().astype("datetime64[s]")
    time = start + day.astype("timedelta64[D]")
    time = time + time_of_day(rng, len(owner)).astype("timedelta64[s]")
    # an order on the sign-up day comes after the sign-up
    time = np.maximum(time, signup[owner] + np.timedelta64(60, "s"))
    till_owner = np.flatnonzero(customers["signup_order"].to_numpy())
    till_time = signup[till_owner] + np.timedelta64(120, "s")
    final_owner = np.flatnonzero(repeat)
    final_time = customers["last_active"].to_numpy().astype("datetime64[s]")[final_owner]
    return {
        "owner": np.concatenate([till_owner, owner, final_owner]),
        "time": np.concatenate([till_time, time, final_time]),
    }


def _member_stores(
    rng: np.random.Generator, shop: Shop, customers: pd.DataFrame, owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Store and order channel of member orders: mostly the home store, sometimes online or app."""
    n = len(owner)
    home_of_customer = customers["home_store_id"]
    online_member = home_of_customer.isna().to_numpy()[owner]
    home_code = home_of_customer.map(shop.store_code).fillna(0).to_numpy(dtype=np.int64)[owner]
    app_user = customers["app_user"].to_numpy()[owner]
    u = rng.random(n)
    online = online_member | (u < np.where(app_user, 0.16, 0.05))
    # one in ten store orders is placed at another store of the same city
    other = ~online & (rng.random(n) < 0.10)
    store = np.where(online, 0, home_code)
    if other.any():
        cities = shop.store_city[np.maximum(home_code[other] - 1, 0)]
        picks = np.empty(int(other.sum()), dtype=np.int64)
        draw = rng.random(len(picks))
        for city_name, codes in shop.city_stores.items():
            mask = cities == city_name
            picks[mask] = codes[(draw[mask] * len(codes)).astype(np.int64)]
        store[other] = picks
    use_app = app_user & (rng.random(n) < 0.75)
    channel = np.where(online, np.where(use_app, 2, 1), 0)
    return store, channel


def _lines(
    rng: np.random.Generator,
    shop: Shop,
    profile: np.ndarray,
    day: np.ndarray,
    extra_mean: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Order lines for orders with the given profile, day and mean extra lines."""
    cal = shop.calendar
    # baskets grow during the dip: scale the whole expected basket, not just the extras
    mean = (1.0 + extra_mean) * cal.basket[day] - 1.0
    # heavy-tailed basket sizes: a gamma-Poisson mixture (negative binomial) with shape 1.5
    n_lines = 1 + rng.poisson(rng.gamma(1.5, mean / 1.5))
    order = np.repeat(np.arange(len(profile)), n_lines)
    first_line = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_no = np.arange(len(order)) - first_line[order] + 1
    cum = shop.category_p_cum[profile[order]]
    category = (cum < rng.random(len(order))[:, None]).sum(axis=1)
    category = np.minimum(category, cum.shape[1] - 1)
    product = shop.sku_table.pick(rng, category, cal.month_index[day[order]])
    quantity = 1 + rng.poisson(shop.extra_units[product])
    price = shop.price_cents[product]
    lines = {
        "order": order,
        "line_no": line_no,
        "product": product,
        "quantity": quantity,
        "price": price,
        "amount": quantity * price,
    }
    return lines, n_lines


def generate_block(world: DemoWorld, shop: Shop, block: int, customers: pd.DataFrame) -> OrderBlock:
    """The clean orders and lines of customers ``block * BLOCK ..`` (``customers`` is that slice)."""
    rng = np.random.default_rng([world.config.seed, 7, block])
    cal = shop.calendar
    offset = block * BLOCK
    member = _member_orders(rng, shop, customers)
    owner = member["owner"]
    store, channel = _member_stores(rng, shop, customers, owner)
    tier_codes = pd.Categorical(customers["tier"], categories=list(TIERS)).codes.astype(np.int64)
    tier = tier_codes[owner]
    prone = customers["churn_prone"].to_numpy()[owner]

    # walk-ins: about 10 % of all orders, at physical stores, spread over the calendar
    n_walk = rng.poisson(len(owner) * WALK_IN_SHARE / (1 - WALK_IN_SHARE))
    walk_day = np.searchsorted(cal.cum_visit, rng.random(n_walk) * cal.cum_visit[-1], "right") - 1
    walk_day = np.clip(walk_day, 0, cal.n_days - 1)
    start = np.datetime64(cal.days[0].date(), "s")
    walk_time = start + walk_day.astype("timedelta64[D]")
    walk_time = walk_time + time_of_day(rng, n_walk).astype("timedelta64[s]")
    walk_store = 1 + rng.choice(len(shop.physical_store_ids), size=n_walk, p=shop.physical_store_p)

    time = np.concatenate([member["time"], walk_time])
    day = ((time - start) // np.timedelta64(1, "D")).astype(np.int64)
    n_member = len(owner)
    n = n_member + n_walk
    customer = np.concatenate([owner + offset, np.full(n_walk, -1)])
    tiers = np.concatenate([tier, np.full(n_walk, 4)])
    profile = np.concatenate([tier * 2 + prone, np.full(n_walk, WALK_IN)])
    extra_mean = np.concatenate([EXTRA_LINES[tier], np.full(n_walk, WALK_IN_EXTRA_LINES)])
    lines, n_lines = _lines(rng, shop, profile, day, extra_mean)
    gross = np.bincount(lines["order"], weights=lines["amount"], minlength=n).astype(np.int64)

    # discounts: member prices and coupons, 3-15 % of the basket on some orders
    discounted = rng.random(n) < DISCOUNT_P[tiers]
    rate = rng.uniform(0.03, 0.15, size=n)
    discount = np.where(discounted, np.round(gross * rate), 0).astype(np.int64)
    stores = np.concatenate([store, walk_store])
    channels = np.concatenate([channel, np.zeros(n_walk, dtype=np.int64)])
    payment = _payments(rng, tiers, channels)
    orders = {
        "customer": customer,
        "store": stores,
        "channel": channels,
        "time": time,
        "payment": payment,
        "gross": gross,
        "discount": discount,
        "paid": gross - discount,
        "status": np.zeros(n, dtype=np.int64),
        "original": np.full(n, -1, dtype=np.int64),
        "tier": tiers,
    }
    orders, lines = _with_refunds(rng, cal, orders, lines, n_lines)
    return _sorted_by_time(orders, lines)


def _payments(rng: np.random.Generator, tiers: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Payment method per order: stored-value card by tier, no cash online."""
    n = len(tiers)
    stored_p = np.append(STORED_VALUE_P, 0.0)[tiers]
    other = 1 + rng.choice(4, size=n, p=OTHER_PAYMENT_P)
    other = np.where((channels > 0) & (other == 3), 1, other)  # cash is impossible online
    return np.where(rng.random(n) < stored_p, 0, other)


def _with_refunds(
    rng: np.random.Generator,
    cal: Calendar,
    orders: dict[str, np.ndarray],
    lines: dict[str, np.ndarray],
    n_lines: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Add refund orders (full, or the first line only) for about 2 % of orders."""
    n = len(orders["gross"])
    end = np.datetime64(cal.days[-1].date(), "s") + np.timedelta64(SECONDS_PER_DAY - 1, "s")
    delay = rng.integers(3_600, 10 * SECONDS_PER_DAY, size=n).astype("timedelta64[s]")
    refund_time = orders["time"] + delay
    chosen = np.flatnonzero((rng.random(n) < REFUND_P) & (refund_time <= end))
    full = rng.random(len(chosen)) < 0.6
    first_line = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    # refunded lines: all lines of a fully refunded order, else its first line
    count = np.where(full, n_lines[chosen], 1)
    refund_of_line = np.repeat(np.arange(len(chosen)), count)
    within = (
        np.arange(len(refund_of_line))
        - np.concatenate([[0], np.cumsum(count)[:-1]])[refund_of_line]
    )
    source = first_line[chosen][refund_of_line] + within
    amount = -lines["amount"][source]
    gross = np.bincount(refund_of_line, weights=amount, minlength=len(chosen)).astype(np.int64)
    # the refund returns the discount in proportion to the refunded part of the basket
    share = -gross / np.maximum(orders["gross"][chosen], 1)
    discount = -np.round(orders["discount"][chosen] * share).astype(np.int64)
    refund = {
        "customer": orders["customer"][chosen],
        "store": orders["store"][chosen],
        "channel": orders["channel"][chosen],
        "time": refund_time[chosen],
        "payment": orders["payment"][chosen],
        "gross": gross,
        "discount": discount,
        "paid": gross - discount,
        "status": np.ones(len(chosen), dtype=np.int64),
        "original": chosen,
        "tier": orders["tier"][chosen],
    }
    refund_lines = {
        "order": n + refund_of_line,
        "line_no": within + 1,
        "product": lines["product"][source],
        "quantity": -lines["quantity"][source],
        "price": lines["price"][source],
        "amount": amount,
    }
    merged_orders = {k: np.concatenate([orders[k], refund[k]]) for k in orders}
    merged_lines = {k: np.concatenate([lines[k], refund_lines[k]]) for k in lines}
    return merged_orders, merged_lines


def _sorted_by_time(orders: dict[str, np.ndarray], lines: dict[str, np.ndarray]) -> OrderBlock:
    """Sort orders by time (ties by generation order) and renumber lines and refund references."""
    perm = np.argsort(orders["time"], kind="stable")
    rank = np.empty_like(perm)
    rank[perm] = np.arange(len(perm))
    sorted_orders = {k: v[perm] for k, v in orders.items()}
    original = sorted_orders["original"]
    sorted_orders["original"] = np.where(original >= 0, rank[np.maximum(original, 0)], -1)
    new_order = rank[lines["order"]]
    line_perm = np.argsort(new_order, kind="stable")
    sorted_lines = {k: v[line_perm] for k, v in lines.items()}
    sorted_lines["order"] = new_order[line_perm]
    return OrderBlock(orders=sorted_orders, lines=sorted_lines)


def blocks(n_customers: int) -> range:
    """Block numbers covering ``n_customers``."""
    return range((n_customers + BLOCK - 1) // BLOCK)


def block_slice(block: int, n_customers: int) -> slice:
    """Customer rows of ``block``."""
    return slice(block * BLOCK, min((block + 1) * BLOCK, n_customers))
