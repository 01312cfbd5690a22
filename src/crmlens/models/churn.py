"""Churn (A6): predicted risk with reasons and an early-warning list.

A customer *churns* when they make no purchase in the ``horizon_days`` after a cutoff. The model is
a gradient-boosted classifier on :func:`~crmlens.models.churn_features.churn_feature_table`, trained on
one cutoff and validated on a later one (time-based, no leakage)::

    model = ChurnModel(horizon_days=90).fit(
        wh, train_as_of=date(2021, 3, 31), validation_as_of=date(2021, 6, 30)
    )
    model.validation_["model"]["roc_auc"], model.validation_["baseline"]["roc_auc"]
    risk = model.predict_proba(wh, as_of=date(2021, 12, 31))
    why = model.reasons(wh, as_of=date(2021, 12, 31))
    watch = model.early_warning(wh, as_of=date(2021, 12, 31))
    found = model.assess(wh, as_of=date(2021, 12, 31))  # all three from one feature query

How reasons and warning rules are worked out is in :mod:`crmlens.models.churn_reasons`; what
churned customers used to buy is in :mod:`crmlens.models.churn_purchases`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models.base import Estimator
from crmlens.models.churn_features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    churn_feature_table,
    churn_labels,
    horizon_end,
)
from crmlens.models.churn_reasons import (
    RULE_TEXT,
    feature_effects,
    flag_texts,
    join_texts,
    reason_rows,
    warning_rules,
)
from crmlens.models.features import cutoff
from crmlens.models.tree_effects import TreeTables
from crmlens.warehouse import Warehouse

#: Fewest labelled customers, and fewest of each class, a fit needs.
MIN_CUSTOMERS = 50
MIN_PER_CLASS = 5
#: The early-warning list gives each customer's top reasons above this effect (log-odds).
WARNING_REASONS = 3
WARNING_MIN_EFFECT = 0.1

Cutoff = datetime | date


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10 % highest scores over the overall churn rate.

    Scores tied at the decile boundary count in proportion, as if ties were broken at random, so a
    coarse score (whole days of recency) is neither helped nor hurt by the order of its ties.
    """
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    k = max(1, int(np.ceil(len(y) / 10)))
    threshold = np.sort(score)[::-1][k - 1]
    above, tied = score > threshold, score == threshold
    weight = (k - above.sum()) / tied.sum()
    churned_in_top = y[above].sum() + weight * y[tied].sum()
    return float((churned_in_top / k) / y.mean())


def calibration_table(y: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per decile of predicted risk (1 = lowest): customers, mean predicted risk, churn rate."""
    ranks = pd.Series(risk).rank(method="first")
    decile = pd.qcut(ranks, min(bins, len(ranks)), labels=False) + 1
    frame = pd.DataFrame({"decile": decile, "risk": risk, "churned": y})
    return (
        frame.groupby("decile")
        .agg(
            customers=("churned", "size"),
            mean_risk=("risk", "mean"),
            churn_rate=("churned", "mean"),
        )
        .reset_index()
    )


def score_report(y: np.ndarray, score: np.ndarray, *, probabilities: bool) -> dict[str, float]:
    """ROC AUC, PR-AUC, top-decile lift and (for probabilities) the Brier score of ``score``."""
    report = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": top_decile_lift(y, score),
    }
    if probabilities:
        report["brier"] = float(brier_score_loss(y, score))
    return report


# Direction each feature may move the risk when ``monotonic``: +1 more raises it, -1 more lowers it,
# absent: either way. Only directions a sales manager would take for granted are imposed, so a
# reason never reads "bought recently" or "broad basket" as a cause of risk.
_MONOTONE = {
    "recency_days": 1,
    "overdue_ratio": 1,
    "complaints_90d": 1,
    "frequency": -1,
    "monetary": -1,
    "orders_30d": -1,
    "orders_90d": -1,
    "orders_change_90d": -1,
    "spend_30d": -1,
    "spend_90d": -1,
    "spend_change_90d": -1,
    "distinct_categories": -1,
    "last_satisfaction": -1,
    "last_nps": -1,
    "opens_90d": -1,
    "clicks_90d": -1,
    "app_sessions_30d": -1,
}


class ChurnModel(Estimator):
    """Churn risk from a ``HistGradientBoostingClassifier`` on churn features.

    ``early_stopping`` holds out 10 % of the training customers to choose the number of boosting
    rounds (up to ``max_iter``); on Online Retail, CDNOW and the demo it beat a fixed 300 rounds.
    ``monotonic`` constrains the features of ``_MONOTONE`` to their obvious direction;
    ``n_threads`` caps OpenMP threads (``None``: all cores). The default of 1 is deliberate: the
    boosting's OpenMP threads spin while waiting, and on a busy 2-core host that made a 5,000-customer
    fit 10x slower than one thread (which fits CDNOW's 23,570 customers in about a second).

    After :meth:`fit`: ``columns_`` (model inputs: numeric features that vary in the training data,
    then one-hot ``member_tier=…``/``customer_type=…``), ``classifier_``, ``reference_`` (the median
    inputs of the customers who stayed, for reasons), ``train_`` (cutoff, customers, churn rate)
    and ``validation_`` (``None`` without a validation cutoff).
    """

    def __init__(
        self,
        *,
        horizon_days: int = 90,
        max_iter: int = 300,
        learning_rate: float = 0.06,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        early_stopping: bool = True,
        monotonic: bool = True,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.monotonic = monotonic
        self.n_threads = n_threads
        self.random_state = random_state

    # -- data -------------------------------------------------------------------------------
    def _features(self, warehouse: Warehouse, as_of: Cutoff) -> pd.DataFrame:
        return warehouse.execute(churn_feature_table(warehouse.table, as_of=as_of))

    def _labelled(self, warehouse: Warehouse, as_of: Cutoff) -> pd.DataFrame:
        """Features at ``as_of`` with the ``churned`` label; refuses a horizon past the data."""
        end = horizon_end(as_of, self.horizon_days)
        last = warehouse.execute(warehouse.table("orders").order_time.max())
        bound, _ = cutoff(end)
        if pd.isna(last) or pd.Timestamp(last) < pd.Timestamp(bound) - pd.Timedelta(days=1):
            raise InsufficientDataError(
                f"labels for cutoff {as_of} need orders through {end} ({self.horizon_days} days "
                f"later), but the latest order is {last}; choose an earlier cutoff"
            )
        labels = churn_labels(warehouse.table, as_of=as_of, horizon_days=self.horizon_days)
        return self._features(warehouse, as_of).merge(
            warehouse.execute(labels), on="customer_id", how="inner", validate="one_to_one"
        )

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The model inputs of ``frame`` in ``columns_`` order (unseen categories: all zeros)."""
        out = np.empty((len(frame), len(self.columns_)))
        for j, column in enumerate(self.columns_):
            name, sep, value = column.partition("=")
            if sep:
                out[:, j] = (frame[name] == value).to_numpy(dtype=float)
            else:
                out[:, j] = frame[name].to_numpy(dtype=float, na_value=np.nan)
        return out

    def _learn_columns(self, frame: pd.DataFrame) -> None:
        numeric = [c for c in NUMERIC_FEATURES if frame[c].nunique(dropna=False) > 1]
        categorical = [c for c in CATEGORICAL_FEATURES if frame[c].nunique(dropna=False) > 1]
        onehot = [f"{c}={v}" for c in categorical for v in sorted(frame[c].dropna().unique())]
        self.columns_ = numeric + onehot
        # a reason is about one numeric feature or one categorical (all its one-hot columns)
        self.groups_ = {c: [j] for j, c in enumerate(numeric)}
        for c in categorical:
            self.groups_[c] = [j for j, col in enumerate(self.columns_) if col.startswith(f"{c}=")]
        # reasons compare a customer with those who stayed, not with the (mostly lapsed) average
        stayed = frame[frame["churned"] == 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no median
            reference = np.nanmedian(self._encode(stayed), axis=0)
            everyone = np.nanmedian(self._encode(frame), axis=0)
        reference = np.where(np.isnan(reference), everyone, reference)
        for c in categorical:
            mode = stayed[c].mode()
            for j in self.groups_[c]:
                reference[j] = float(len(mode) > 0 and self.columns_[j] == f"{c}={mode.iloc[0]}")
        self.reference_ = reference

    def _log_odds(self, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            return self.classifier_.decision_function(X)

    # -- fitting and scoring ----------------------------------------------------------------
    def fit(
        self, warehouse: Warehouse, *, train_as_of: Cutoff, validation_as_of: Cutoff | None = None
    ) -> Self:
        """Train on customers active before ``train_as_of``, labelled by the next ``horizon_days``.

        With ``validation_as_of`` (at least ``horizon_days`` after ``train_as_of``, so no training
        label overlaps the validation features' period), score the customers active before it and
        store ``validation_``: the model's and the recency-only baseline's ROC AUC, PR-AUC and
        top-decile lift, the model's Brier score and a calibration table by risk decile.
        """
        if validation_as_of is not None:
            train_end, _ = cutoff(horizon_end(train_as_of, self.horizon_days))
            if train_end > cutoff(validation_as_of)[0]:
                raise ConfigError(
                    f"validation_as_of ({validation_as_of}) must be at least horizon_days "
                    f"({self.horizon_days}) after train_as_of ({train_as_of}); otherwise the "
                    "training labels would see the validation period"
                )
        train = self._labelled(warehouse, train_as_of)
        y = train["churned"].to_numpy()
        if len(train) < MIN_CUSTOMERS or min(y.sum(), len(y) - y.sum()) < MIN_PER_CLASS:
            raise InsufficientDataError(
                f"churn at {train_as_of} needs >= {MIN_CUSTOMERS} active customers with >= "
                f"{MIN_PER_CLASS} churned and {MIN_PER_CLASS} retained; found {len(y)} customers, "
                f"{int(y.sum())} churned"
            )
        self._learn_columns(train)
        if not self.columns_:
            raise InsufficientDataError(f"no feature varies between customers at {train_as_of}")
        monotone = [_MONOTONE.get(c, 0) if self.monotonic else 0 for c in self.columns_]
        classifier = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping,
            monotonic_cst=monotone,
            random_state=self.random_state,
        )
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            self.classifier_ = classifier.fit(self._encode(train), y)
        self.train_ = {"as_of": train_as_of, "customers": len(y), "churn_rate": float(y.mean())}
        self.validation_ = None
        if validation_as_of is not None:
            self.validation_ = self.evaluate(warehouse, as_of=validation_as_of)
        return self

    def evaluate(self, warehouse: Warehouse, *, as_of: Cutoff) -> dict[str, Any]:
        """Model vs recency-only baseline (score = ``recency_days``) on a labelled cutoff."""
        self._check_fitted("evaluate")
        frame = self._labelled(warehouse, as_of)
        y = frame["churned"].to_numpy()
        if y.min() == y.max():
            raise InsufficientDataError(f"at {as_of} every active customer has the same label")
        risk = expit(self._log_odds(self._encode(frame)))
        return {
            "as_of": as_of,
            "customers": len(y),
            "churn_rate": float(y.mean()),
            "model": score_report(y, risk, probabilities=True),
            "baseline": score_report(y, frame["recency_days"].to_numpy(float), probabilities=False),
            "calibration": calibration_table(y, risk),
        }

    def _scored(self, warehouse: Warehouse, as_of: Cutoff) -> _Scored:
        frame = self._features(warehouse, as_of)
        X = self._encode(frame)
        return _Scored(frame, X, self._log_odds(X))

    def predict_proba(self, warehouse: Warehouse, *, as_of: Cutoff) -> pd.DataFrame:
        """``customer_id`` and ``churn_risk`` (probability of no purchase in ``horizon_days``)."""
        self._check_fitted("predict_proba")
        return self._scored(warehouse, as_of).risk()

    def assess(
        self, warehouse: Warehouse, *, as_of: Cutoff, top: int = 3, **warning: Any
    ) -> ChurnAssessment:
        """:meth:`predict_proba`, :meth:`reasons` (``top``) and :meth:`early_warning` at once.

        The same three frames as the three calls, from one feature query and one reasons pass
        (the early-warning reasons are the top three of all reasons); ``warning`` takes the
        options of :meth:`early_warning`.
        """
        self._check_fitted("assess")
        _check_top(top)
        scored = self._scored(warehouse, as_of)
        why = self._reasons(scored, top, WARNING_MIN_EFFECT)
        shared = why[why["rank"] <= WARNING_REASONS] if top >= WARNING_REASONS else None
        return ChurnAssessment(
            risk=scored.risk(), reasons=why, early_warning=self._warn(scored, shared, **warning)
        )

    # -- reasons ----------------------------------------------------------------------------
    def _typical(self, name: str) -> Any:
        cols = self.groups_[name]
        if name in CATEGORICAL_FEATURES:
            hot = [self.columns_[j].partition("=")[2] for j in cols if self.reference_[j] == 1]
            return hot[0] if hot else None
        return float(self.reference_[cols[0]])

    def _reasons(self, scored: _Scored, top: int, min_effect: float) -> pd.DataFrame:
        X, log_odds = scored.X, scored.log_odds
        groups, reference, tables = self.groups_, self.reference_, TreeTables.of(self.classifier_)
        effects = feature_effects(
            X, log_odds, groups, CATEGORICAL_FEATURES, reference, self._log_odds, tables
        )
        names = list(self.groups_)
        typical = {name: self._typical(name) for name in names}
        return reason_rows(
            scored.frame, log_odds, effects, names, typical, top=top, min_effect=min_effect
        )

    def reasons(
        self, warehouse: Warehouse, *, as_of: Cutoff, top: int = 3, min_effect: float = 0.1
    ) -> pd.DataFrame:
        """Up to ``top`` reasons per customer, strongest first (long format).

        A feature's effect is how much lower the predicted risk would be if that feature alone took
        the value typical of customers who stayed (their median; a categorical: their most common
        value). It is measured in log-odds, which do not saturate, so a customer at 99 % risk still
        gets reasons; ``risk_change`` is the same effect in probability. Effects above
        ``min_effect`` log-odds are reasons; a missing value never is. Columns: ``customer_id``,
        ``churn_risk``, ``rank``, ``feature``, ``value``, ``typical``, ``risk_change``,
        ``log_odds_change``, ``reason_zh``, ``reason_en`` (e.g. "120天未购买" / "no purchase in
        120 days").
        """
        self._check_fitted("reasons")
        _check_top(top)
        return self._reasons(self._scored(warehouse, as_of), top, min_effect)

    def early_warning(
        self,
        warehouse: Warehouse,
        *,
        as_of: Cutoff,
        inactive_days: int = 90,
        falling_ratio: float = 0.5,
        min_risk: float = 0.5,
        active_within_days: int = 365,
    ) -> pd.DataFrame:
        """Customers to win back: any :func:`warning_rules` rule fires or the risk >= ``min_risk``.

        Customers silent for more than ``active_within_days`` are already lost rather than at risk
        and are left out. Columns: ``customer_id``, ``churn_risk``, the three rule flags, ``rules``
        (how many fired), ``warnings`` and ``reasons`` (top-3 reasons, "中文 / English" joined by
        "；"); highest risk first.
        """
        self._check_fitted("early_warning")
        scored = self._scored(warehouse, as_of)
        return self._warn(scored, None, inactive_days, falling_ratio, min_risk, active_within_days)

    def _warn(
        self,
        scored: _Scored,
        why: pd.DataFrame | None,
        inactive_days: int = 90,
        falling_ratio: float = 0.5,
        min_risk: float = 0.5,
        active_within_days: int = 365,
    ) -> pd.DataFrame:
        """:meth:`early_warning` of ``scored``; ``why``: its customers' top-3 reasons, if known."""
        active = scored.take((scored.frame["recency_days"] <= active_within_days).to_numpy())
        flags = warning_rules(
            active.frame, inactive_days=inactive_days, falling_ratio=falling_ratio
        )
        rule_names = list(RULE_TEXT)
        hits = flags[rule_names].to_numpy()
        risk = expit(active.log_odds)
        keep = hits.any(axis=1) | (risk >= min_risk)
        watched = active.take(keep)
        out = (
            flags[keep]
            .reset_index(drop=True)
            .assign(churn_risk=risk[keep], rules=hits[keep].sum(axis=1))
        )
        texts = [" / ".join(RULE_TEXT[r]).format(days=inactive_days) for r in rule_names]
        out["warnings"] = flag_texts(hits[keep], texts, "；")
        if why is None:
            why = self._reasons(watched, WARNING_REASONS, WARNING_MIN_EFFECT)
        text = join_texts(why, why["reason_zh"] + " / " + why["reason_en"], "；")
        out["reasons"] = out["customer_id"].map(text).fillna("")
        columns = ["customer_id", "churn_risk", *rule_names, "rules", "warnings", "reasons"]
        ordered = out[columns].sort_values(["churn_risk", "rules"], ascending=False, kind="stable")
        return ordered.reset_index(drop=True)


def _check_top(top: Any) -> None:
    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a whole number >= 1; got {top!r}")


@dataclass(frozen=True)
class _Scored:
    """Customers' features, model inputs and predicted log-odds, row for row."""

    frame: pd.DataFrame
    X: np.ndarray
    log_odds: np.ndarray

    def take(self, rows: np.ndarray) -> _Scored:
        """The rows where the boolean ``rows`` is true (the frame renumbered from 0)."""
        return _Scored(self.frame[rows].reset_index(drop=True), self.X[rows], self.log_odds[rows])

    def risk(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": self.frame["customer_id"].to_numpy(),
                "churn_risk": expit(self.log_odds),
            }
        )


@dataclass(frozen=True)
class ChurnAssessment:
    """What :meth:`ChurnModel.assess` returns: the frames of ``predict_proba``, ``reasons`` and
    ``early_warning`` at one cutoff."""

    risk: pd.DataFrame
    reasons: pd.DataFrame
    early_warning: pd.DataFrame
