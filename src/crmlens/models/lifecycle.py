"""Customer lifecycle stages (A4): acquisition → activation → retention → revenue growth → referral,
with at-risk and churned, per customer as of a date, and the transitions between two dates.

Per customer the facts are read up to ``as_of`` (time rules of :mod:`crmlens.models.features`):
``frequency`` purchase orders, ``recency_days`` since the last one, net spend in the last
``active_days`` (``spend_recent``: orders in ``(as_of - active_days, as_of]`` by calendar day) and in
the ``active_days`` before that (``spend_previous``), and ``referrals``: customers whose
``referrer_id`` is this customer and who signed up by ``as_of``.

The population is every customer in ``customers`` who signed up by ``as_of`` (or has no sign-up
time) plus every buyer found in ``orders``. Each gets the **first** stage that applies:

1. ``acquisition`` — no purchase yet (signed up only);
2. ``churned`` — no purchase for ``churn_days`` or more (``recency_days >= churn_days``);
3. ``at_risk`` — no purchase for ``active_days`` or more;
4. ``referral`` — active and has referred at least one customer;
5. ``revenue_growth`` — active, a repeat buyer (``frequency >= activation_orders``), and
   ``spend_recent >= growth_ratio * spend_previous`` with ``spend_previous > 0`` (growth needs a
   base to grow from);
6. ``retention`` — active repeat buyer;
7. ``activation`` — active, fewer than ``activation_orders`` purchases.

Inactivity comes before referral and growth on purpose: a lapsed customer needs winning back
whatever they did before, and the dashboard's at-risk list must not miss them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crmlens.errors import ConfigError
from crmlens.models.base import Estimator
from crmlens.models.features import (
    QuerySource,
    Tables,
    as_of_day,
    customer_features,
    signed_up,
    transactions,
)
from crmlens.models.rfm import transition_matrix

#: Stage key → (中文, English), in lifecycle order.
STAGES: dict[str, tuple[str, str]] = {
    "acquisition": ("获取期", "Acquisition"),
    "activation": ("激活期", "Activation"),
    "retention": ("留存期", "Retention"),
    "revenue_growth": ("收入增长期", "Revenue growth"),
    "referral": ("推荐期", "Referral"),
    "at_risk": ("流失风险", "At risk"),
    "churned": ("已流失", "Churned"),
}
FACT_COLUMNS = (
    "customer_id",
    "frequency",
    "recency_days",
    "spend_recent",
    "spend_previous",
    "referrals",
)


class LifecycleStages(Estimator):
    """Assign lifecycle stages as of a date; see the module docstring for the rules.

    :meth:`fit` reads the facts from the warehouse and stores ``stages_`` (the facts plus ``stage``
    per customer), ``summary_`` (customers and share per stage, with Chinese and English names)
    and ``as_of_``; :meth:`transitions` compares two dates on the same warehouse.
    """

    def __init__(
        self,
        *,
        active_days: int = 90,
        churn_days: int = 180,
        activation_orders: int = 2,
        growth_ratio: float = 1.2,
    ) -> None:
        self.active_days = active_days
        self.churn_days = churn_days
        self.activation_orders = activation_orders
        self.growth_ratio = growth_ratio

    def _validate(self) -> None:
        for name in ("active_days", "churn_days", "activation_orders"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1; got {value!r}")
        if self.churn_days <= self.active_days:
            raise ConfigError(
                f"churn_days ({self.churn_days}) must be longer than active_days "
                f"({self.active_days}): churned customers are the at-risk ones who stayed away"
            )
        if not (np.isfinite(self.growth_ratio) and self.growth_ratio > 0):
            raise ConfigError(f"growth_ratio must be a number > 0; got {self.growth_ratio!r}")

    # -- expressions ------------------------------------------------------------------------
    def facts(self, tables: Tables, *, as_of: date | datetime) -> ir.Table:
        """The per-customer facts (:data:`FACT_COLUMNS`) as an Ibis expression."""
        self._validate()
        day = as_of_day(as_of)
        members = signed_up(tables, as_of=as_of)
        features = customer_features(tables, as_of=as_of)
        # customer_id is required in customers but nullable in orders: align the types to union
        everyone = members.select(customer_id=members.customer_id.cast("string")).union(
            features.select(customer_id=features.customer_id.cast("string")), distinct=True
        )

        tx = transactions(tables, as_of=as_of)
        age = ibis.date(day).delta(tx.order_time.date(), unit="day")
        spend = tx.group_by("customer_id").aggregate(
            spend_recent=tx.amount.sum(where=age < self.active_days),
            spend_previous=tx.amount.sum(
                where=(age >= self.active_days) & (age < 2 * self.active_days)
            ),
        )
        referred = members.filter(members.referrer_id.notnull())
        referrals = referred.group_by(referrer=referred.referrer_id).aggregate(
            referrals=referred.count()
        )

        out = everyone.left_join(features, everyone.customer_id == features.customer_id)
        out = out.select("customer_id", frequency=out.frequency, recency_days=out.recency_days)
        out = out.left_join(spend, out.customer_id == spend.customer_id).select(
            *out.columns, "spend_recent", "spend_previous"
        )
        out = out.left_join(referrals, out.customer_id == referrals.referrer).select(
            *out.columns, "referrals"
        )
        return out.select(
            "customer_id",
            frequency=out.frequency.fill_null(0),
            recency_days=out.recency_days,
            spend_recent=out.spend_recent.fill_null(0.0),
            spend_previous=out.spend_previous.fill_null(0.0),
            referrals=out.referrals.fill_null(0),
        ).order_by("customer_id")

    # -- rules ------------------------------------------------------------------------------
    def assign(self, facts: pd.DataFrame) -> pd.Series:
        """The stage of each row of a facts frame (pure pandas; the rules of the module docstring).

        >>> facts = pd.DataFrame({
        ...     "customer_id": ["a", "b", "c", "d"], "frequency": [0, 1, 5, 5],
        ...     "recency_days": [None, 10, 10, 200], "spend_recent": [0, 20, 130, 0],
        ...     "spend_previous": [0, 0, 100, 0], "referrals": [0, 0, 0, 3],
        ... })
        >>> LifecycleStages().assign(facts).tolist()
        ['acquisition', 'activation', 'revenue_growth', 'churned']
        """
        self._validate()
        missing = [c for c in FACT_COLUMNS if c not in facts.columns]
        if missing:
            raise ConfigError(f"lifecycle facts missing columns {missing}")
        frequency = facts["frequency"].fillna(0).to_numpy()
        recency = pd.to_numeric(facts["recency_days"]).to_numpy(dtype=float)
        recent = facts["spend_recent"].to_numpy(dtype=float)
        previous = facts["spend_previous"].to_numpy(dtype=float)
        bought = frequency > 0
        active = bought & (recency < self.active_days)
        repeat = active & (frequency >= self.activation_orders)
        conditions = [
            ~bought,
            bought & (recency >= self.churn_days),
            bought & (recency >= self.active_days),
            active & (facts["referrals"].to_numpy() > 0),
            repeat & (previous > 0) & (recent >= self.growth_ratio * previous),
            repeat,
        ]
        choices = ["acquisition", "churned", "at_risk", "referral", "revenue_growth", "retention"]
        stages = np.select(conditions, choices, default="activation")
        return pd.Series(stages, index=facts.index, name="stage")

    # -- fitting ----------------------------------------------------------------------------
    def stages_at(self, source: QuerySource, as_of: date | datetime) -> pd.DataFrame:
        """Facts and stage per customer at ``as_of``, read from ``source`` (the warehouse)."""
        facts = source.execute(self.facts(source.table, as_of=as_of))
        return facts.assign(stage=self.assign(facts)).reset_index(drop=True)

    def fit(self, source: QuerySource, *, as_of: date | datetime) -> Self:
        """Stage every customer at ``as_of``; ``source`` is kept for :meth:`transitions`."""
        self._validate()
        self._source = source
        self.as_of_ = as_of
        self.stages_ = self.stages_at(source, as_of)
        counts = self.stages_["stage"].value_counts().reindex(list(STAGES), fill_value=0)
        self.summary_ = pd.DataFrame(
            {
                "customers": counts.astype(np.int64),
                "share": counts / max(len(self.stages_), 1),
                "name_zh": [STAGES[s][0] for s in STAGES],
                "name_en": [STAGES[s][1] for s in STAGES],
            }
        ).rename_axis("stage")
        return self

    def transitions(
        self, as_of_a: date | datetime, as_of_b: date | datetime, *, normalize: bool = False
    ) -> pd.DataFrame:
        """Customers moving from each stage at ``as_of_a`` to each stage at ``as_of_b``.

        Rows are stages at ``as_of_a``, columns at ``as_of_b``, in lifecycle order; customers who
        only exist at the later date (signed up in between) come from the ``(none)`` row. With
        ``normalize`` each row sums to 1.
        """
        self._check_fitted("transitions")
        if as_of_day(as_of_b) < as_of_day(as_of_a):
            raise ConfigError(f"as_of_b ({as_of_b}) must not be before as_of_a ({as_of_a})")
        before = self.stages_at(self._source, as_of_a).set_index("customer_id")["stage"]
        after = self.stages_at(self._source, as_of_b).set_index("customer_id")["stage"]
        return transition_matrix(before, after, states=list(STAGES), normalize=normalize)
