"""RFM scoring and segmentation (A1): R, F and M scores, the Chinese 8 groups, the English 11 segments.

Input is the per-customer feature frame of :func:`crmlens.models.features.customer_features`
(``customer_id``, ``recency_days``, ``frequency``, ``monetary``), executed by the warehouse.

Scoring (``scoring``):

* ``"quantile"`` — ``bins`` equal-sized groups per dimension, exactly
  ``pd.qcut(values.rank(method="first"), bins)``. Ties are broken deterministically: customers are
  first sorted by ``customer_id``, so among equal values the smaller id gets the lower rank. Bins
  are therefore balanced even when many customers share a value (most have frequency 1), at the
  price that two customers with the same value can get adjacent scores.
* ``"levels"`` — three levels, 1 = low, 2 = medium, 3 = high, cut at the 1/3 and 2/3 quantiles of
  the *values* (right-closed), so equal values always share a level and levels may be uneven.
* ``"thresholds"`` — user cut points per dimension, ascending, right-closed: with cut points
  ``[c1, c2]`` a value ``<= c1`` falls in the first bin, ``<= c2`` in the second, else the third.

In every case a higher score is better: recency is scored in reverse (fewer days → higher R).

Segments (``scheme``):

* ``"cn8"`` — the classic Chinese eight groups. Each of R, F, M is "high" when the customer's raw
  value is better than the population **mean** (recency below the mean, frequency and monetary above
  it), the usual 与平均值比较 convention; scores do not enter.
* ``"en11"`` — eleven segments from the R and F scores (1-5) on the standard R/F grid, see
  :data:`EN11_GRID`; needs five score levels.

>>> import pandas as pd
>>> features = pd.DataFrame({
...     "customer_id": list("abcdefghij"),
...     "recency_days": [1, 5, 10, 20, 40, 80, 160, 320, 400, 500],
...     "frequency": [9, 8, 7, 6, 5, 4, 3, 2, 1, 1],
...     "monetary": [900, 800, 700, 600, 500, 400, 300, 200, 100, 50],
... })
>>> model = RFMModel(scheme="en11").fit(features)
>>> model.scores_.loc[0, ["rfm_code", "segment"]].tolist()
['555', 'Champions']
>>> RFMModel().fit(features).scores_["segment"].iloc[[0, -1]].tolist()
['重要价值客户', '一般挽留客户']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, Self

import numpy as np
import pandas as pd

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models.base import Estimator

DIMENSIONS = ("recency_days", "frequency", "monetary")
_SCORE_COLUMNS = {"recency_days": "r_score", "frequency": "f_score", "monetary": "m_score"}
#: Customers present on only one side of a migration are counted in this row or column.
ABSENT = "(none)"


class Segment(NamedTuple):
    """One segment of a scheme with its names and suggested action in Chinese and English."""

    scheme: str
    name_zh: str
    name_en: str
    action_zh: str
    action_en: str


# fmt: off
#: Every segment of both schemes, in display order (best first). The 8 Chinese groups are keyed by
#: (R high, F high, M high) in CN8_KEYS below.
SEGMENTS: tuple[Segment, ...] = (
    Segment("cn8", "重要价值客户", "Important value", "维持关系：VIP专属服务、新品优先体验", "Keep them: VIP service and early access to new products"),
    Segment("cn8", "重要发展客户", "Important development", "提高购买频次：会员权益、组合套餐", "Raise purchase frequency: member benefits and bundles"),
    Segment("cn8", "重要保持客户", "Important retention", "主动联系唤回：个性化关怀与专属优惠", "Win them back: personal outreach and tailored offers"),
    Segment("cn8", "重要挽留客户", "Important win-back", "重点挽留：了解流失原因，定向优惠", "Save them: ask why they left and send a targeted offer"),
    Segment("cn8", "一般价值客户", "Ordinary value", "提升客单价：交叉销售、满减活动", "Raise basket size: cross-selling and spend-threshold offers"),
    Segment("cn8", "一般发展客户", "Ordinary development", "培育新客：首单后引导复购", "Nurture: onboarding and a second-purchase incentive"),
    Segment("cn8", "一般保持客户", "Ordinary retention", "低成本唤醒：短信、推送提醒", "Low-cost reactivation: SMS and push reminders"),
    Segment("cn8", "一般挽留客户", "Ordinary win-back", "低优先级：仅在大促时触达", "Low priority: reach them only in major promotions"),
    Segment("en11", "冠军客户", "Champions", "奖励他们：会员专享、新品试用、邀请评价", "Reward them: member perks, early access, ask for reviews"),
    Segment("en11", "忠诚客户", "Loyal Customers", "追加销售高价值商品，邀请加入会员计划", "Upsell higher-value products and enrol them in loyalty programmes"),
    Segment("en11", "潜在忠诚客户", "Potential Loyalist", "提供会员权益，推荐相关商品", "Offer membership benefits and recommend related products"),
    Segment("en11", "新客户", "New Customers", "做好首购体验与新客引导", "Make the first weeks count: onboarding and support"),
    Segment("en11", "有潜力客户", "Promising", "建立品牌认知，发放体验券", "Build awareness with trial offers"),
    Segment("en11", "需要关注客户", "Need Attention", "限时优惠，基于购买历史推荐", "Limited-time offers and recommendations from past purchases"),
    Segment("en11", "即将沉睡客户", "About to Sleep", "分享热门商品与优惠，重新建立联系", "Share popular products and discounts to reconnect"),
    Segment("en11", "流失风险客户", "At Risk", "个性化邮件/短信召回，提供有吸引力的优惠", "Send personalised win-back messages with a strong offer"),
    Segment("en11", "不能失去的客户", "Can't Lose Them", "专人联系，了解原因，推出新品召回", "Reach out personally, learn why, and win them back with new products"),
    Segment("en11", "沉睡客户", "Hibernating", "推荐相关商品与特价，重新激活", "Recommend relevant products and specials to reactivate them"),
    Segment("en11", "已流失客户", "Lost", "低成本尝试召回，否则放弃", "Try one low-cost reactivation, otherwise leave them"),
)
# fmt: on

#: (R high, F high, M high) → Chinese group.
CN8_KEYS: dict[tuple[bool, bool, bool], str] = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}

# The R/F score grid widely used for RFM segmentation, e.g. the regex map
#   [1-2][1-2] Hibernating, [1-2][3-4] At Risk, [1-2]5 Can't Lose Them, 3[1-2] About to Sleep,
#   33 Need Attention, [3-4][4-5] Loyal Customers, 41 Promising, 51 New Customers,
#   [4-5][2-3] Potential Loyalist, 5[4-5] Champions
# (the "RFM segmentation" grid of the Putler / Kaggle RFM tutorials). The eleventh segment, Lost,
# is its bottom corner: R = 1 and F = 1 (lowest on both), split off Hibernating.
#: Rows are R scores 1..5, columns F scores 1..5.
EN11_GRID: tuple[tuple[str, ...], ...] = (
    ("Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    ("About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal Customers", "Loyal Customers"),
    ("New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
)

Scoring = Literal["quantile", "levels", "thresholds"]
Scheme = Literal["cn8", "en11"]


def segments(scheme: Scheme) -> pd.DataFrame:
    """The segments of ``scheme`` with names and actions, indexed by the segment's own name.

    >>> segments("en11").loc["Lost", "name_zh"]
    '已流失客户'
    """
    if scheme not in ("cn8", "en11"):
        raise ConfigError(f"scheme must be 'cn8' or 'en11'; got {scheme!r}")
    frame = pd.DataFrame([s._asdict() for s in SEGMENTS if s.scheme == scheme])
    key = "name_zh" if scheme == "cn8" else "name_en"
    return frame.set_index(frame[key].rename("segment")).drop(columns="scheme")


def _quantile_scores(values: pd.Series, bins: int) -> np.ndarray:
    # values are already in customer_id order, so "first" breaks ties by customer id
    ranks = values.rank(method="first")
    return pd.qcut(ranks, bins, labels=False).to_numpy() + 1


def _cut_scores(values: pd.Series, cuts: Sequence[float]) -> np.ndarray:
    # right-closed: the number of cut points strictly below the value
    return np.searchsorted(np.asarray(cuts, dtype=float), values.to_numpy(), side="left") + 1


class RFMModel(Estimator):
    """Score customers on recency, frequency and monetary value and put them in segments.

    Parameters are described in the module docstring. After :meth:`fit`:

    * ``scores_`` — per customer: the input columns, ``r_score``, ``f_score``, ``m_score``,
      ``rfm_code`` (e.g. ``"545"``), ``r_high``/``f_high``/``m_high`` (against the mean) and
      ``segment``;
    * ``summary_`` — per segment: ``customers``, ``share``, ``revenue``, ``revenue_share``, mean
      raw values and mean scores, Chinese and English names and suggested actions;
    * ``score_ranges_`` — per dimension and score: the range of raw values and the customers in it;
    * ``means_`` — the population means the 8 groups are split at.
    """

    def __init__(
        self,
        *,
        scoring: Scoring = "quantile",
        bins: int = 5,
        thresholds: Mapping[str, Sequence[float]] | None = None,
        scheme: Scheme = "cn8",
    ) -> None:
        self.scoring = scoring
        self.bins = bins
        self.thresholds = thresholds
        self.scheme = scheme

    # -- validation -------------------------------------------------------------------------
    def _levels(self) -> dict[str, int]:
        """Number of score levels per dimension, validating the configuration."""
        if self.scheme not in ("cn8", "en11"):
            raise ConfigError(f"scheme must be 'cn8' or 'en11'; got {self.scheme!r}")
        if self.scoring == "quantile":
            if not isinstance(self.bins, int | np.integer) or not 2 <= self.bins <= 10:
                raise ConfigError(f"bins must be an integer from 2 to 10; got {self.bins!r}")
            levels = dict.fromkeys(DIMENSIONS, int(self.bins))
        elif self.scoring == "levels":
            levels = dict.fromkeys(DIMENSIONS, 3)
        elif self.scoring == "thresholds":
            levels = {dim: len(cuts) + 1 for dim, cuts in self._checked_thresholds().items()}
        else:
            raise ConfigError(
                f"scoring must be 'quantile', 'levels' or 'thresholds'; got {self.scoring!r}"
            )
        if self.scheme == "en11" and (levels["recency_days"] != 5 or levels["frequency"] != 5):
            raise ConfigError(
                "scheme 'en11' maps R and F scores 1-5, so it needs five score levels "
                f"(quantile with bins=5, or 4 cut points each); got {levels}"
            )
        return levels

    def _checked_thresholds(self) -> dict[str, list[float]]:
        if not isinstance(self.thresholds, Mapping) or set(self.thresholds) != set(DIMENSIONS):
            raise ConfigError(
                "scoring='thresholds' needs thresholds with keys 'recency_days', 'frequency' and "
                f"'monetary', each a list of ascending cut points; got {self.thresholds!r}"
            )
        checked = {}
        for dim in DIMENSIONS:
            try:
                cuts = [float(c) for c in self.thresholds[dim]]
            except (TypeError, ValueError):
                cuts = []
            if not cuts or not np.all(np.isfinite(cuts)) or np.any(np.diff(cuts) <= 0):
                raise ConfigError(
                    f"thresholds[{dim!r}] must be finite cut points in strictly ascending order; "
                    f"got {self.thresholds[dim]!r}"
                )
            checked[dim] = cuts
        return checked

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame) -> Self:
        """Score and segment the customers of ``features`` (one row per customer)."""
        levels = self._levels()
        frame = _validated(features)
        for dim in DIMENSIONS:
            frame[_SCORE_COLUMNS[dim]] = self._score(frame[dim], dim, levels[dim])
        frame["rfm_code"] = (
            frame["r_score"].astype(str)
            + frame["f_score"].astype(str)
            + frame["m_score"].astype(str)
        )
        self.means_ = {dim: float(frame[dim].mean()) for dim in DIMENSIONS}
        frame["r_high"] = frame["recency_days"] < self.means_["recency_days"]
        frame["f_high"] = frame["frequency"] > self.means_["frequency"]
        frame["m_high"] = frame["monetary"] > self.means_["monetary"]
        if self.scheme == "cn8":
            keys = zip(frame["r_high"], frame["f_high"], frame["m_high"], strict=True)
            frame["segment"] = [CN8_KEYS[key] for key in keys]
        else:
            grid = np.asarray(EN11_GRID, dtype=object)
            frame["segment"] = grid[frame["r_score"] - 1, frame["f_score"] - 1]
        self.scores_ = frame
        self.summary_ = _summary(frame, self.scheme)
        self.score_ranges_ = _score_ranges(frame)
        return self

    def _score(self, values: pd.Series, dim: str, levels: int) -> np.ndarray:
        if self.scoring == "quantile":
            scores = _quantile_scores(values, levels)
        elif self.scoring == "levels":
            cuts = values.quantile([1 / 3, 2 / 3]).to_numpy()
            scores = _cut_scores(values, cuts)
        else:
            scores = _cut_scores(values, self._checked_thresholds()[dim])
        # fewer days since the last purchase is better: reverse the recency scale
        return (levels + 1 - scores if dim == "recency_days" else scores).astype(np.int64)

    def segment_of(self, customer_ids: Sequence[str]) -> pd.Series:
        """The segment of each given customer (NaN for a customer not in the fitted data)."""
        self._check_fitted("segment_of")
        by_id = self.scores_.set_index("customer_id")["segment"]
        return by_id.reindex(pd.Index(customer_ids, name="customer_id"))


def _validated(features: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("customer_id", *DIMENSIONS) if c not in features.columns]
    if missing:
        raise ConfigError(
            f"RFM features need columns customer_id, recency_days, frequency, monetary; "
            f"missing {missing} (build them with crmlens.models.features.customer_features)"
        )
    frame = features[["customer_id", *DIMENSIONS]].copy()
    if frame["customer_id"].isna().any() or frame["customer_id"].duplicated().any():
        raise ConfigError("RFM features need one row per customer with a non-empty customer_id")
    if len(frame) < 2:
        raise InsufficientDataError(f"RFM needs at least 2 customers; got {len(frame)}")
    for dim in DIMENSIONS:
        frame[dim] = pd.to_numeric(frame[dim], errors="coerce").astype(float)
        if not np.isfinite(frame[dim]).all():
            raise ConfigError(f"RFM feature {dim!r} has missing or non-numeric values")
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _summary(frame: pd.DataFrame, scheme: Scheme) -> pd.DataFrame:
    table = segments(scheme)
    grouped = frame.groupby("segment")
    out = pd.DataFrame(
        {
            "customers": grouped.size(),
            "revenue": grouped["monetary"].sum(),
            "mean_recency_days": grouped["recency_days"].mean(),
            "mean_frequency": grouped["frequency"].mean(),
            "mean_monetary": grouped["monetary"].mean(),
            "mean_r_score": grouped["r_score"].mean(),
            "mean_f_score": grouped["f_score"].mean(),
            "mean_m_score": grouped["m_score"].mean(),
        }
    ).reindex(table.index)
    out["customers"] = out["customers"].fillna(0).astype(np.int64)
    out["revenue"] = out["revenue"].fillna(0.0)
    out.insert(1, "share", out["customers"] / len(frame))
    total = frame["monetary"].sum()
    out.insert(3, "revenue_share", out["revenue"] / total if total else np.nan)
    return out.join(table)


def _score_ranges(frame: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for dim, col in _SCORE_COLUMNS.items():
        grouped = frame.groupby(col)[dim]
        part = grouped.agg(["min", "max", "size"]).rename(columns={"size": "customers"})
        parts.append(part.rename_axis("score").reset_index().assign(dimension=dim))
    return pd.concat(parts, ignore_index=True)[["dimension", "score", "min", "max", "customers"]]


def transition_matrix(
    before: pd.Series,
    after: pd.Series,
    *,
    states: Sequence[Any] | None = None,
    normalize: bool = False,
) -> pd.DataFrame:
    """Counts of customers moving from each state in ``before`` to each state in ``after``.

    Both series are indexed by customer id. A customer found on one side only is counted under
    :data:`ABSENT` on the other (new buyers, or customers outside the later population). Rows and
    columns follow ``states`` (then :data:`ABSENT`), all listed even when empty. With
    ``normalize``, each row is divided by its total (a row with no customers stays 0).

    >>> a = pd.Series({"c1": "x", "c2": "x", "c3": "y"})
    >>> b = pd.Series({"c1": "x", "c2": "y", "c4": "y"})
    >>> transition_matrix(a, b, states=["x", "y"]).to_dict("index")
    {'x': {'x': 1, 'y': 1, '(none)': 0}, 'y': {'x': 0, 'y': 0, '(none)': 1}, '(none)': {'x': 0, 'y': 1, '(none)': 0}}
    """
    if before.index.has_duplicates or after.index.has_duplicates:
        raise ConfigError("transition_matrix needs one state per customer on each side")
    ids = before.index.union(after.index)
    left = before.reindex(ids).astype(object).fillna(ABSENT)
    right = after.reindex(ids).astype(object).fillna(ABSENT)
    order = list(states) if states is not None else sorted((set(left) | set(right)) - {ABSENT})
    order = [*order, ABSENT]
    unknown = (set(left) | set(right)) - set(order)
    if unknown:
        raise ConfigError(f"states {sorted(map(str, unknown))} are not in the given states list")
    counts = pd.crosstab(left, right).reindex(index=order, columns=order, fill_value=0)
    counts = counts.rename_axis(index="before", columns="after").astype(np.int64)
    if normalize:
        totals = counts.sum(axis=1).replace(0, 1)
        return counts.div(totals, axis=0)
    return counts


def migration(
    before: pd.DataFrame, after: pd.DataFrame, *, normalize: bool = False
) -> pd.DataFrame:
    """Segment transition matrix between two fitted snapshots (``RFMModel.scores_`` at two dates).

    Rows are the segment at the earlier date, columns the segment at the later one, in the scheme's
    display order when both frames use one scheme; :data:`ABSENT` counts customers present on one
    side only.
    """
    for name, frame in (("before", before), ("after", after)):
        if not {"customer_id", "segment"} <= set(frame.columns):
            raise ConfigError(f"migration: {name} needs customer_id and segment columns")
    labels = set(before["segment"]) | set(after["segment"])
    states = None
    for scheme in ("cn8", "en11"):
        known = list(segments(scheme).index)
        if labels <= set(known):
            states = known
    return transition_matrix(
        before.set_index("customer_id")["segment"],
        after.set_index("customer_id")["segment"],
        states=states,
        normalize=normalize,
    )
