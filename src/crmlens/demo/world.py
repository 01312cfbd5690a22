"""The demo company's ground truth, shared by every export writer.

The generator first builds a :class:`DemoWorld` (stores, products, channels, customers with their
hidden traits), then each source-system writer turns it into export files and records what it
planted. Writers never re-derive the world; they read it, so the files agree with one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

START = date(2019, 1, 1)
END = date(2021, 12, 31)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """What the user asked for: size, seed and where to write."""

    customers: int = 20_000
    seed: int = 42
    out_dir: Path = Path("demo-data")
    start: date = START
    end: date = END
    # rows per CSV chunk when streaming large tables (orders, lines, events)
    chunk_customers: int = 50_000


@dataclass(kw_only=True)
class DemoWorld:
    """Clean truth behind the exports.

    Columns (writers may rely on these; the core generator may add more, never rename):

    stores: store_id, store_name, region, province, city, store_type, opened_date, area_sqm,
        in_pilot (bool: one of the 10 stores of the kiosk experiment), kiosk_from (date or NaT).
    products: sku, product_name, category, department, brand, unit_price, unit_cost,
        listed_date, delisted_date (NaT while on sale).
    channels: channel_id, channel_name, channel_type.
    customers: member_card_no, name, gender (男/女), birth_date, phone, email, tier (白金/黄金/白银/普通),
        customer_type (个人/企业), company_name, industry, company_size, region, province, city,
        home_store_id (None for online sign-ups), channel_id, signup_method, signup_time (Timestamp),
        referrer_card_no, consent_marketing (bool), churned (bool), last_active (Timestamp: after it the
        customer never buys again), app_user (bool), churn_prone (bool: has the churners' taste).
    reps: rep_id, rep_name, team, region (the territory: a city, or 全国), hired_date.

    Extra columns the core generator adds (internal to the shop generator, but readable):
    stores.signup_weight (relative member intake); products.popularity (pick weight inside the
    category); customers.buyer (orders at least once in the period), signup_order (buys at the
    till at sign-up), final_order (``last_active`` is an order of its own), first_day / last_day
    (day index of the period from which the member can order / of the last order, -1 for
    non-buyers), order_rate (Poisson orders per unit of calendar intensity). ``churned`` is exactly
    the analysis definition on the generated orders: at least one order and none in the 90 days
    2021-10-03..2021-12-31.
    """

    config: DemoConfig
    stores: pd.DataFrame
    products: pd.DataFrame
    channels: pd.DataFrame
    customers: pd.DataFrame
    reps: pd.DataFrame
    # planted effects: effect id -> {"requirement", "description", "definition", "expected", ...}
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # planted dirt: "<relative file>.<kind>" -> count
    dirt: dict[str, int] = field(default_factory=dict)

    def rng(self, name: str) -> np.random.Generator:
        """An independent, reproducible random stream per writer, so writers can run in any order."""
        digest = sum((i + 1) * ord(c) for i, c in enumerate(name))
        return np.random.default_rng([self.config.seed, digest])
