"""What each kind of shopper puts in the basket: category choice, SKU choice and quantity.

A *profile* is a (tier group × churn-prone) combination, plus walk-in shoppers. Each profile has one
probability per category for an order line:

- platinum and gold members spend most on 南北干货, 蔬菜, 日配, 面包 and 乳酸菌饮品 (seed 000 ③); their
  line weights are derived from the intended revenue shares divided by each category's average line
  value, so the department ranking holds by revenue, not just by count;
- within those departments they prefer other categories than the churners' 绿叶菜 and 夹心面包;
- churn-prone members buy much more 膨化食品, 夹心面包, 巧克力, 绿叶菜 and 杯面 (seed 000 ④).

SKUs are picked inside the chosen category among those on sale for the whole month, by popularity,
with one ``searchsorted`` over a flattened (category, month) table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmlens.demo.catalog import CATEGORIES, CATEGORY_NAMES, CHURN_CATEGORIES

# profile numbers: tier index * 2 + churn_prone (0..7), then walk-ins
WALK_IN = 8

# Extra units per line (quantity = 1 + Poisson(lambda)) by department.
EXTRA_UNITS = {"蔬菜": 0.7, "水果": 0.5, "乳酸菌饮品": 0.8, "酒水饮料": 0.7, "日配": 0.4}
DEFAULT_EXTRA_UNITS = 0.2

# Intended revenue share of platinum and gold members by department.
TOP_REVENUE = {
    "南北干货": 0.150,
    "日配": 0.135,
    "面包": 0.125,
    "乳酸菌饮品": 0.115,
    "蔬菜": 0.100,
}
TOP_OTHER_REVENUE = 0.375  # spread over the other departments by the root of their price level
# Line-count weights by department for 白银/普通 members and walk-ins (flatter, snackier).
LOW_DEPARTMENT_LINES = {
    "南北干货": 0.030,
    "蔬菜": 0.080,
    "日配": 0.070,
    "面包": 0.050,
    "乳酸菌饮品": 0.035,
    "休闲食品": 0.090,
    "方便食品": 0.070,
    "糖果巧克力": 0.045,
    "粮油": 0.045,
    "酒水饮料": 0.090,
    "肉禽": 0.060,
    "水产": 0.040,
    "水果": 0.060,
    "日化": 0.060,
    "冷冻食品": 0.050,
    "调味品": 0.040,
    "熟食": 0.045,
}
# Churn categories inside top members' favourite departments are avoided by them.
TOP_CHURN_CATEGORY_FACTOR = 0.25
# Casual (白银/普通) shoppers' extra liking for the churn categories.
LOW_CHURN_CATEGORY_FACTOR = 3.0
# Share of churn-prone members' order lines in the five churn categories (spread evenly).
CHURN_PRONE_SHARE = 0.45


def _normalise(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def line_values(products: pd.DataFrame) -> pd.Series:
    """Expected value of one order line by category (popularity-weighted price × mean quantity)."""
    weighted = products["unit_price"] * products["popularity"]
    price = (
        weighted.groupby(products["category"]).sum()
        / products.groupby("category")["popularity"].sum()
    )
    department = {c.name: c.department for c in CATEGORIES}
    units = pd.Series(
        {c: 1.0 + EXTRA_UNITS.get(department[c], DEFAULT_EXTRA_UNITS) for c in price.index}
    )
    return (price * units).reindex(list(CATEGORY_NAMES))


def category_probabilities(products: pd.DataFrame) -> np.ndarray:
    """Per-profile probability of each category for one order line, shape (9, n_categories)."""
    values = line_values(products).to_numpy()
    department = np.array([c.department for c in CATEGORIES])
    churn = np.isin(np.array(CATEGORY_NAMES), CHURN_CATEGORIES)
    departments = list(dict.fromkeys(department))

    # Top tiers: revenue share per department -> lines per department (revenue / the department's
    # mean line value) -> equal line shares for the categories inside a department.
    others = [d for d in departments if d not in TOP_REVENUE]
    price_level = {d: values[department == d].mean() for d in others}
    level_sum = sum(np.sqrt(v) for v in price_level.values())
    top_revenue = dict(TOP_REVENUE)
    top_revenue.update(
        {d: TOP_OTHER_REVENUE * np.sqrt(v) / level_sum for d, v in price_level.items()}
    )
    dept_lines = {d: top_revenue[d] / values[department == d].mean() for d in departments}
    top = np.array([dept_lines[d] / (department == d).sum() for d in department], dtype=float)
    in_top_departments = np.isin(department, list(TOP_REVENUE))
    # they buy vegetables and bread, but not the churners' leafy greens and filled buns
    top = np.where(churn & in_top_departments, top * TOP_CHURN_CATEGORY_FACTOR, top)
    # ... and few snacks, instant noodles or chocolate
    top = np.where(churn & ~in_top_departments, top * 0.5, top)

    low = np.array(
        [LOW_DEPARTMENT_LINES[d] / (department == d).sum() for d in department], dtype=float
    )
    # cheap everyday snacks, noodles, buns and greens are what casual shoppers buy most
    low = np.where(churn, low * LOW_CHURN_CATEGORY_FACTOR, low)
    rows = []
    for tier_index in range(4):
        base = top if tier_index < 2 else low
        rows.append(_normalise(base))
        # churn-prone members put a fixed share of their lines into the five churn categories
        prone = (1 - CHURN_PRONE_SHARE) * _normalise(np.where(churn, 0.0, base))
        rows.append(prone + CHURN_PRONE_SHARE * churn / churn.sum())
    rows.append(_normalise(low))  # walk-ins
    return np.vstack(rows)


@dataclass(frozen=True)
class SkuTable:
    """SKUs on sale for a whole month, per (category, month), flattened for vectorised picking.

    For segment ``s = category * n_months + month``, the SKU row numbers are
    ``sku_rows[start[s]:start[s + 1]]`` and their cumulative popularity ``cum[start[s]:start[s+1]]``.
    """

    sku_rows: np.ndarray
    cum: np.ndarray
    start: np.ndarray
    n_months: int

    def pick(self, rng: np.random.Generator, category: np.ndarray, month: np.ndarray) -> np.ndarray:
        """Product row numbers for lines of the given category and month index."""
        segment = category * self.n_months + month
        lo = self.start[segment]
        hi = self.start[segment + 1]
        base = np.where(lo > 0, self.cum[np.maximum(lo - 1, 0)], 0.0)
        target = base + rng.random(len(segment)) * (self.cum[hi - 1] - base)
        position = np.searchsorted(self.cum, target, side="right")
        return self.sku_rows[np.minimum(position, hi - 1)]


def build_sku_table(products: pd.DataFrame, months: pd.PeriodIndex) -> SkuTable:
    """The :class:`SkuTable` of ``products`` over ``months``.

    Every (category, month) segment must hold at least one SKU (the catalogue guarantees it).
    """
    category_code = pd.Categorical(products["category"], categories=list(CATEGORY_NAMES)).codes
    listed = products["listed_date"].to_numpy()
    delisted = products["delisted_date"].to_numpy()
    popularity = products["popularity"].to_numpy()
    first = months.to_timestamp(how="start").to_numpy()
    last = months.to_timestamp(how="end").normalize().to_numpy()
    rows, weights, starts = [], [], [0]
    for cat in range(len(CATEGORY_NAMES)):
        in_cat = np.flatnonzero(category_code == cat)
        for m in range(len(months)):
            on_sale = (listed[in_cat] <= first[m]) & ~(delisted[in_cat] <= last[m])
            chosen = in_cat[on_sale]
            if len(chosen) == 0:
                raise ValueError(f"no SKU of {CATEGORY_NAMES[cat]} on sale in {months[m]}")
            rows.append(chosen)
            weights.append(popularity[chosen])
            starts.append(starts[-1] + len(chosen))
    return SkuTable(
        sku_rows=np.concatenate(rows),
        cum=np.cumsum(np.concatenate(weights)),
        start=np.array(starts, dtype=np.int64),
        n_months=len(months),
    )


def extra_units(products: pd.DataFrame) -> np.ndarray:
    """Per product row, the Poisson mean of units beyond the first on a line."""
    return products["department"].map(EXTRA_UNITS).fillna(DEFAULT_EXTRA_UNITS).to_numpy(dtype=float)
