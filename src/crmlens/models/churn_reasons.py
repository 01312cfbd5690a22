"""Why a churn model rates a customer at risk: per-feature effects, ranked, in words (A6).

Used by :class:`~crmlens.models.churn.ChurnModel`. A feature's *effect* on a customer is how much
lower the predicted log-odds of churn would be if that feature alone took its typical value (a
categorical feature: all its one-hot columns at once). Everything here works on whole arrays: a
million customers cost one model prediction per feature, not one per customer and feature, and
with the model's trees as tables (:mod:`crmlens.models.tree_effects`) not even that::

    effects = feature_effects(X, log_odds, groups, categorical, reference, predict)
    customer, rank, group = top_effects(effects, top=3, min_effect=0.1)

The early-warning rules (:func:`warning_rules`), which need no model, are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from crmlens.models.churn_features import describe_feature
from crmlens.models.tree_effects import TreeTables


def warning_rules(
    features: pd.DataFrame, *, inactive_days: int = 90, falling_ratio: float = 0.5
) -> pd.DataFrame:
    """The early-warning rules of seed 002 on a churn feature frame, one bool per rule.

    ``no_recent_order``: no purchase in the last ``inactive_days`` days (3 months);
    ``falling_orders``: orders in the last 90 days below ``falling_ratio`` of the 90 days before;
    ``recent_complaint``: a complaint ticket opened in the last 90 days.
    """
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "no_recent_order": (features["recency_days"] >= inactive_days).to_numpy(),
            "falling_orders": (
                (features["orders_prev_90d"] > 0)
                & (features["orders_90d"] < falling_ratio * features["orders_prev_90d"])
            ).to_numpy(),
            "recent_complaint": (features["complaints_90d"] > 0).to_numpy(),
        }
    )


#: Rule name → (Chinese, English) text; ``{days}`` is the ``inactive_days`` of the call.
RULE_TEXT = {
    "no_recent_order": ("近{days}天未下单", "no order in {days} days"),
    "falling_orders": ("互动频率下降", "falling interaction"),
    "recent_complaint": ("近期投诉", "recent complaint"),
}


#: The columns of :func:`reason_rows`, in order.
REASON_COLUMNS = (
    "customer_id",
    "churn_risk",
    "rank",
    "feature",
    "value",
    "typical",
    "risk_change",
    "log_odds_change",
    "reason_zh",
    "reason_en",
)


def feature_effects(
    X: np.ndarray,
    log_odds: np.ndarray,
    groups: Mapping[str, Sequence[int]],
    categorical: Collection[str],
    reference: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    tables: TreeTables | None = None,
) -> np.ndarray:
    """Effects in log-odds, one column per group of ``groups`` (in its order); ``-inf`` = none.

    ``X`` holds the model inputs and ``log_odds`` their predictions; ``groups`` maps a feature to
    its columns of ``X``, ``reference`` holds the typical value of every column and ``predict``
    gives the log-odds of a matrix. ``tables``, the model's trees as tables, give the same
    numbers without a prediction per feature. A missing value (or unseen category) has no effect:
    there is nothing to tell the customer.
    """
    effects = np.full((len(X), len(groups)), -np.inf)
    changes = []
    for g, (name, cols) in enumerate(groups.items()):
        block, typical = X[:, cols], reference[cols]
        known = block.sum(axis=1) > 0 if name in categorical else ~np.isnan(block[:, 0])
        # a customer already at the typical value would get the very same prediction: the effect
        # is exactly 0 without predicting (most counts, e.g. complaints, sit at their typical 0)
        effects[known, g] = 0.0
        changes.append((cols, typical, known & (block != typical).any(axis=1)))
    changed = tables.changed_log_odds(X, log_odds, changes) if tables is not None else None
    if changed is None:  # no tables, or they do not reproduce the model's predictions
        changed = [_predicted(X, predict, *change) for change in changes]
    for g, ((_, _, moved), values) in enumerate(zip(changes, changed, strict=True)):
        effects[moved, g] = log_odds[moved] - values
    return effects


def _predicted(
    X: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    cols: Sequence[int],
    typical: np.ndarray,
    moved: np.ndarray,
) -> np.ndarray:
    """The log-odds of the ``moved`` rows of ``X`` with ``cols`` set to ``typical``."""
    if not moved.any():
        return np.empty(0)
    changed = X[moved]  # a copy: only this feature's columns change
    changed[:, cols] = typical
    # per-row predictions do not depend on the batch, so these equal a full-matrix call
    return predict(changed)


def top_effects(
    effects: np.ndarray, top: int, min_effect: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top`` strongest effects above ``min_effect`` per row: (row, rank from 1, column).

    Ordered by row, then rank. Of equal effects the earlier column ranks first, as in a stable
    sort. ``argmax`` finds each rank in one pass over the rows; unlike ``argpartition`` it keeps
    that tie order, and ``top`` is small, so a few passes cost less than sorting every row.
    """
    n, width = effects.shape
    k = min(top, width)
    work = effects.copy()
    chosen = np.empty((n, k), dtype=np.intp)
    strength = np.empty((n, k))
    every = np.arange(n)
    for r in range(k):
        best = work.argmax(axis=1)  # the first of equal maxima
        chosen[:, r] = best
        strength[:, r] = work[every, best]
        work[every, best] = -np.inf
    # effects only fall with the rank, so this keeps ranks 1..j of each row: no gaps
    keep = np.logical_and.accumulate(strength > min_effect, axis=1)
    rows, ranks = np.nonzero(keep)
    return rows, ranks + 1, chosen[rows, ranks]


def reason_rows(
    frame: pd.DataFrame,
    log_odds: np.ndarray,
    effects: np.ndarray,
    names: Sequence[str],
    typical: Mapping[str, Any],
    *,
    top: int,
    min_effect: float,
) -> pd.DataFrame:
    """Up to ``top`` reasons per customer of ``frame`` (long format, :data:`REASON_COLUMNS`).

    ``effects`` comes from :func:`feature_effects` (column ``g`` is feature ``names[g]``) and
    ``typical`` maps a feature to its typical value as shown to the user.
    """
    rows, ranks, groups = top_effects(effects, top, min_effect)
    if not len(rows):
        return pd.DataFrame([], columns=list(REASON_COLUMNS))
    effect = effects[rows, groups]
    risk = expit(log_odds[rows])
    value = np.empty(len(rows), dtype=object)
    shown = np.empty(len(rows), dtype=object)
    zh = np.empty(len(rows), dtype=object)
    en = np.empty(len(rows), dtype=object)
    for g in np.unique(groups):
        name = names[g]
        at = np.flatnonzero(groups == g)
        values = frame[name].to_numpy()[rows[at]]
        # many customers share a value (whole days, counts, a tier): word each value once
        codes, distinct = pd.factorize(values)
        words = [describe_feature(name, v, typical[name]) for v in distinct]
        value[at] = values
        shown[at] = [typical[name]] * len(at)
        zh[at] = np.array([w[0] for w in words], dtype=object)[codes]
        en[at] = np.array([w[1] for w in words], dtype=object)[codes]
    columns = {
        "customer_id": frame["customer_id"].to_numpy()[rows],
        "churn_risk": risk,
        "rank": ranks.astype(np.int64),
        "feature": np.asarray(names, dtype=object)[groups],
        "value": value,
        "typical": shown,
        "risk_change": risk - expit(log_odds[rows] - effect),
        "log_odds_change": effect,
        "reason_zh": zh,
        "reason_en": en,
    }
    # object columns get the dtype pandas would infer from the values, as for a list of rows
    return pd.DataFrame(columns).infer_objects()


def join_texts(reasons: pd.DataFrame, text: pd.Series, sep: str) -> pd.Series:
    """Per ``customer_id`` of ``reasons``, ``text`` of its rows joined by ``sep`` in rank order.

    The same as ``text.groupby(reasons["customer_id"]).agg(sep.join)`` on rows ordered by rank
    within a customer, but a groupby calls ``join`` once per customer; this adds one rank of
    every customer at a time. Rows as :func:`reason_rows` gives them (each customer's together,
    ranks 1, 2, … in order) are used as they are; others are sorted first.
    """
    ids = reasons["customer_id"].to_numpy(dtype=object)
    ranks = reasons["rank"].to_numpy(dtype=np.int64)
    texts = text.to_numpy(dtype=object)
    same = ids[1:] == ids[:-1]
    if len(ids) and not (ranks[0] == 1 and np.array_equal(same, ranks[1:] == ranks[:-1] + 1)):
        order = np.lexsort((ranks, ids.astype(str)))
        ids, ranks, texts = ids[order], ranks[order], texts[order]
        # after sorting, a customer's ranks must run 1, 2, … without gaps or repeats
        if not (ranks[0] == 1 and np.array_equal(ids[1:] == ids[:-1], ranks[1:] == ranks[:-1] + 1)):
            raise ValueError("each customer's reasons must have ranks 1, 2, … without gaps")
    first = ranks == 1
    joined = texts[first].copy()
    customer = np.cumsum(first) - 1  # the customer of each row, numbered in order
    for rank in range(2, int(ranks.max(initial=1)) + 1):
        at = ranks == rank
        joined[customer[at]] = joined[customer[at]] + sep + texts[at]
    return pd.Series(joined, index=pd.Index(ids[first], name="customer_id"), dtype=object)


def flag_texts(hits: np.ndarray, texts: Sequence[str], sep: str) -> np.ndarray:
    """Per row of boolean ``hits`` (one column per text), the texts of the true columns joined.

    Three rules make eight combinations: each is worded once and looked up by its bit pattern.
    """
    hits = np.asarray(hits, dtype=bool).reshape(len(hits), len(texts))
    patterns = [
        sep.join(t for j, t in enumerate(texts) if code >> j & 1) for code in range(2 ** len(texts))
    ]
    codes = (hits * (1 << np.arange(len(texts)))).sum(axis=1)
    return np.asarray(patterns, dtype=object)[codes]
