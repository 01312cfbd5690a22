"""What-if predictions of a histogram gradient-boosting model, one feature changed at a time.

Churn reasons (:mod:`crmlens.models.churn_reasons`) need, for every customer and every feature,
the model's log-odds with that one feature set to its typical value. Asking the model for them is
one full prediction per feature: at a million customers, 300 trees and 30 features, about ten
billion tree walks. Here the walks are shared instead. A tree with ``m`` splits sends a row to
the leaf picked by ``m`` yes/no answers, so each tree becomes a table from the ``2**m`` answer
patterns to leaf values (``m`` is at most 14 with the model's 15 leaves). Every row's answers are
worked out once per tree; changing a feature only flips the answers of the splits on it, and the
changed prediction is a table look-up per tree.

The sums are made exactly as scikit-learn makes them (the baseline, then each tree in order, in
float64), so the results are the very numbers a prediction call would give, and this is checked:
:meth:`TreeTables.changed_log_odds` rebuilds the unchanged log-odds of every row and gives up
(returns ``None``) unless they equal the model's own to the last bit. It reads scikit-learn's
fitted trees (private attributes); :meth:`TreeTables.of` returns ``None`` for a model whose trees
it does not recognise (another scikit-learn layout, categorical splits, bigger trees), and the
caller then asks the model instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Trees with more splits than this are not tabulated (a table holds 2**splits leaf values).
MAX_SPLITS = 16
#: Rows handled at a time: the per-tree answers and leaf values of a block stay small
#: (300 trees x 32,768 rows of float64 is 80 MB).
BLOCK_ROWS = 32_768
_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right")


class TreeTables:
    """The trees of a fitted binary ``HistGradientBoostingClassifier`` as answer-pattern tables."""

    def __init__(self, baseline: float, trees: list[dict[str, np.ndarray]]) -> None:
        self.baseline = baseline
        self.trees = trees

    @classmethod
    def of(cls, classifier: Any) -> TreeTables | None:
        """The tables of ``classifier``, or None when its trees are not in the expected form."""
        try:
            predictors = classifier._predictors
            baseline = np.asarray(classifier._baseline_prediction, dtype=np.float64)
            if classifier.n_trees_per_iteration_ != 1 or baseline.size != 1:
                return None
            if getattr(classifier, "_preprocessor", None) is not None:
                return None
            trees = []
            for (predictor,) in predictors:
                nodes = predictor.nodes
                if any(f not in nodes.dtype.names for f in (*_FIELDS, "is_leaf")):
                    return None
                if "is_categorical" in nodes.dtype.names and nodes["is_categorical"].any():
                    return None
                tree = _tabulate(nodes)
                if tree is None:
                    return None
                trees.append(tree)
        except (AttributeError, TypeError, ValueError):
            return None
        return cls(float(baseline.ravel()[0]), trees) if trees else None

    def changed_log_odds(
        self,
        X: np.ndarray,
        log_odds: np.ndarray,
        changes: Sequence[tuple[Sequence[int], np.ndarray, np.ndarray]],
    ) -> list[np.ndarray] | None:
        """Per change ``(columns, values, rows)``: the log-odds of ``X[rows]`` (a boolean mask)
        with ``columns`` set to ``values``; None if the unchanged log-odds of ``X`` do not come
        out exactly as ``log_odds``, the model's own prediction of ``X``."""
        # per change and tree: which splits it flips (bit mask) and the answers they then give
        flips = [
            [_answers(tree, cols, values) for tree in self.trees] for cols, values, _ in changes
        ]
        out = [np.empty(int(rows.sum())) for _, _, rows in changes]
        filled = [0] * len(changes)
        for start in range(0, len(X), BLOCK_ROWS):
            block = np.asfortranarray(X[start : start + BLOCK_ROWS])
            codes = [_codes(tree, block) for tree in self.trees]
            leaves = [tree["table"][code] for tree, code in zip(self.trees, codes, strict=True)]
            if not np.array_equal(self._sum(leaves), log_odds[start : start + len(block)]):
                return None
            for c, (_, _, rows) in enumerate(changes):
                at = np.flatnonzero(rows[start : start + len(block)])
                if not len(at):
                    continue
                parts = []
                for tree, code, leaf, (mask, answers) in zip(
                    self.trees, codes, leaves, flips[c], strict=True
                ):
                    if mask:  # the tree splits on a changed column
                        parts.append(tree["table"][(code[at] & ~mask) | answers])
                    else:
                        parts.append(leaf[at])
                out[c][filled[c] : filled[c] + len(at)] = self._sum(parts)
                filled[c] += len(at)
        return out

    def _sum(self, parts: list[np.ndarray]) -> np.ndarray:
        """The baseline plus each tree's values in tree order, as scikit-learn adds them."""
        total = np.zeros(len(parts[0]) if parts else 0)
        total += self.baseline
        for part in parts:
            total += part
        return total


def _tabulate(nodes: np.ndarray) -> dict[str, np.ndarray] | None:
    """A tree's splits (feature, threshold, where missing goes) and its answers → leaf table."""
    is_leaf = nodes["is_leaf"].astype(bool)
    splits = np.flatnonzero(~is_leaf)
    if len(splits) > MAX_SPLITS:
        return None
    bit = np.full(len(nodes), -1)
    bit[splits] = np.arange(len(splits))
    left, right = nodes["left"].astype(np.intp), nodes["right"].astype(np.intp)
    # walk every answer pattern down the tree at once: bit j set = "left" at split j
    patterns = np.arange(2 ** len(splits), dtype=np.int32)
    node = np.zeros(len(patterns), dtype=np.intp)
    for _ in range(len(splits) + 1):
        inner = ~is_leaf[node]
        if not inner.any():
            break
        goes_left = (patterns >> np.maximum(bit[node], 0)) & 1 == 1
        node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
    if not is_leaf[node].all():
        return None
    return {
        "table": nodes["value"][node].astype(np.float64),
        "feature": nodes["feature_idx"][splits].astype(np.intp),
        "threshold": nodes["num_threshold"][splits].astype(np.float64),
        "missing_left": nodes["missing_go_to_left"][splits].astype(bool),
    }


def _codes(tree: dict[str, np.ndarray], block: np.ndarray) -> np.ndarray:
    """Each row's answer pattern in ``tree``: bit j set when the row goes left at split j."""
    code = np.zeros(len(block), dtype=np.int32)
    for j, (feature, threshold, missing_left) in enumerate(
        zip(tree["feature"], tree["threshold"], tree["missing_left"], strict=True)
    ):
        column = block[:, feature]
        # as scikit-learn: a missing value goes where training sent missing values; NaN fails
        # every comparison, so "not above" sends it left and "at most" sends it right
        left = ~(column > threshold) if missing_left else column <= threshold
        code |= left.astype(np.int32) << j
    return code


def _answers(
    tree: dict[str, np.ndarray], cols: Sequence[int], values: np.ndarray
) -> tuple[int, int]:
    """(splits on ``cols`` as a bit mask, the answers they give when ``cols`` hold ``values``)."""
    mask = answers = 0
    for j, (feature, threshold, missing_left) in enumerate(
        zip(tree["feature"], tree["threshold"], tree["missing_left"], strict=True)
    ):
        if feature in cols:
            value = values[list(cols).index(feature)]
            left = bool(missing_left) if np.isnan(value) else bool(value <= threshold)
            mask |= 1 << j
            answers |= int(left) << j
    return mask, answers
