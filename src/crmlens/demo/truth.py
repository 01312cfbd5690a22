"""Running totals over the clean order stream, from which the realised effects are measured.

Orders are streamed and never held in memory at once, so every figure :mod:`crmlens.demo.effects`
needs from them is accumulated here block by block (small arrays: tiers × months × categories).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmlens.demo.catalog import CATEGORY_NAMES, DEPARTMENTS
from crmlens.demo.commerce import BLOCK, PAYMENTS, OrderBlock

N_TIER_SLOTS = 5  # four tiers and walk-ins
RECENT_MONTHS = 6  # "active member": ordered in the 6 calendar months before the month


class TruthTally:
    """Totals of the clean orders (before any dirt is planted).

    Amounts are in cents. "Sales orders" are orders with status completed; refunds are separate
    orders with negative amounts. Member figures exclude walk-ins (tier slot 4).
    """

    def __init__(self, products: pd.DataFrame, customers: pd.DataFrame, n_months: int) -> None:
        self.n_months = n_months
        self.product_category = pd.Categorical(
            products["category"], categories=list(CATEGORY_NAMES)
        ).codes.astype(np.int64)
        self.product_department = pd.Categorical(
            products["department"], categories=list(DEPARTMENTS)
        ).codes.astype(np.int64)
        self.churned = customers["churned"].to_numpy()
        n_customers = len(customers)
        n_dep = len(DEPARTMENTS)
        self.net_revenue_by_tier = np.zeros(N_TIER_SLOTS)
        self.orders_by_tier_payment = np.zeros((N_TIER_SLOTS, len(PAYMENTS)), dtype=np.int64)
        self.line_revenue_by_tier_department = np.zeros((N_TIER_SLOTS, n_dep))
        self.member_orders_by_month = np.zeros(n_months, dtype=np.int64)
        self.member_paid_by_month = np.zeros(n_months)
        self.net_revenue_by_month = np.zeros(n_months)
        self.member_lines_by_category = np.zeros((2, len(CATEGORY_NAMES)), dtype=np.int64)
        self.sales_orders = 0
        self.walk_in_orders = 0
        self.online_orders = 0
        self.order_rows = 0
        self.line_rows = 0
        # orders in month m by members who also ordered in the 6 months before, and their number
        self.repeat_orders_by_month = np.zeros(n_months, dtype=np.int64)
        self.recent_buyers_by_month = np.zeros(n_months, dtype=np.int64)
        self.first_order_day = np.full(n_customers, -1, dtype=np.int32)
        self.last_order_day = np.full(n_customers, -1, dtype=np.int32)

    def add(self, block: OrderBlock, day: np.ndarray, month: np.ndarray) -> None:
        """Add one block; ``day``/``month`` are the orders' day and month indices."""
        orders, lines = block.orders, block.lines
        tier = orders["tier"]
        paid = orders["paid"].astype(float)
        sale = orders["status"] == 0
        member = orders["customer"] >= 0
        self.order_rows += len(tier)
        self.line_rows += len(lines["order"])
        self.sales_orders += int(sale.sum())
        self.walk_in_orders += int((sale & ~member).sum())
        self.online_orders += int((sale & (orders["channel"] > 0)).sum())
        self.net_revenue_by_tier += np.bincount(tier, weights=paid, minlength=N_TIER_SLOTS)
        np.add.at(self.orders_by_tier_payment, (tier[sale], orders["payment"][sale]), 1)
        self.net_revenue_by_month += np.bincount(month, weights=paid, minlength=self.n_months)
        member_sale = sale & member
        self.member_orders_by_month += np.bincount(month[member_sale], minlength=self.n_months)
        self.member_paid_by_month += np.bincount(
            month[member_sale], weights=paid[member_sale], minlength=self.n_months
        )

        line_tier = tier[lines["order"]]
        department = self.product_department[lines["product"]]
        np.add.at(
            self.line_revenue_by_tier_department,
            (line_tier, department),
            lines["amount"].astype(float),
        )
        line_customer = orders["customer"][lines["order"]]
        sale_line = (line_customer >= 0) & (lines["quantity"] > 0)
        churned = self.churned[line_customer[sale_line]].astype(np.int64)
        category = self.product_category[lines["product"][sale_line]]
        np.add.at(self.member_lines_by_category, (churned, category), 1)

        who = orders["customer"][member_sale]
        when = day[member_sale].astype(np.int32)
        # within a block customers are contiguous, so per-block min/max by customer suffice
        if len(who):
            start = int(who.min()) // BLOCK * BLOCK
            local = who - start
            size = int(local.max()) + 1
            first = np.full(size, np.iinfo(np.int32).max, dtype=np.int32)
            last = np.full(size, -1, dtype=np.int32)
            np.minimum.at(first, local, when)
            np.maximum.at(last, local, when)
            seen = last >= 0
            self.first_order_day[start : start + size][seen] = first[seen]
            self.last_order_day[start : start + size][seen] = last[seen]
            self._add_recent(local, month[member_sale], size)

    def _add_recent(self, local: np.ndarray, month: np.ndarray, size: int) -> None:
        """Count members with an order in the previous 6 months and their orders this month."""
        counts = np.zeros((size, self.n_months), dtype=np.int64)
        np.add.at(counts, (local, month), 1)
        bought = np.cumsum(counts > 0, axis=1)
        before = np.concatenate([np.zeros((size, 1), dtype=np.int64), bought[:, :-1]], axis=1)
        lagged = np.concatenate(
            [np.zeros((size, RECENT_MONTHS), dtype=np.int64), before[:, :-RECENT_MONTHS]], axis=1
        )
        recent = (before - lagged) > 0  # ordered in months m-6 .. m-1
        self.recent_buyers_by_month += recent.sum(axis=0)
        self.repeat_orders_by_month += (counts * recent).sum(axis=0)
