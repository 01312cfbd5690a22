"""Churn reasons in bulk: the array code gives what working one customer at a time gives.

:func:`reasons_one_at_a_time` is the straightforward definition (each feature set to its typical
value for every customer and the whole model asked again, effects sorted per customer, rows built
one by one); the model's column-wise reasons (from its trees as tables, or from predictions when
the trees cannot be tabulated), its early-warning list and :meth:`ChurnModel.assess` must equal it
exactly, including the order of equal effects and categorical features.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from crmlens.models import ChurnModel, tree_effects
from crmlens.models.churn_features import CATEGORICAL_FEATURES, describe_feature
from crmlens.models.churn_reasons import REASON_COLUMNS, flag_texts, join_texts
from crmlens.models.tree_effects import TreeTables
from crmlens.warehouse import Warehouse

T = date(2024, 6, 30)
TIERS = ("白金", "黄金", "白银", "普通")


def _insert(wh: Warehouse, table: str, frame: pd.DataFrame) -> None:
    wh.raw.register("incoming", frame)
    wh.raw.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    wh.raw.unregister("incoming")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, ChurnModel]]:
    """240 fortnightly buyers with tiers and types: 80 stay, 80 complain and leave, 80 lapse."""
    rng = np.random.default_rng(3)
    orders, tickets, customers = [], [], []
    for i in range(240):
        group, cid = i // 80, f"k{i:03d}"
        last = pd.Timestamp({0: "2024-12-31", 1: "2024-06-30", 2: "2024-03-15"}[group])
        start = pd.Timestamp("2024-01-01 10:00") + pd.Timedelta(days=int(rng.integers(0, 20)))
        for n, when in enumerate(pd.date_range(start, last, freq="14D")):
            amount = round(float(rng.lognormal(3.0, 0.5)), 2)
            orders.append((f"{cid}-{n}", cid, when + pd.Timedelta(hours=i % 7), amount))
        if group < 2 or i % 5 == 0:
            kind = "投诉" if group == 1 else "咨询"
            tickets.append((f"t{cid}", cid, kind, pd.Timestamp("2024-06-15")))
        customers.append((cid, TIERS[i % 4], "企业" if i % 3 == 0 else "个人"))
    columns = ["order_id", "customer_id", "order_time", "amount"]
    frame = pd.DataFrame(orders, columns=columns)
    with Warehouse(tmp_path_factory.mktemp("reasons") / "w.duckdb") as wh:
        _insert(wh, "orders", frame.assign(gross_amount=frame["amount"], discount_amount=0.0))
        ticket_columns = ["ticket_id", "customer_id", "ticket_type", "opened_at"]
        _insert(wh, "service_tickets", pd.DataFrame(tickets, columns=ticket_columns))
        member_columns = ["customer_id", "member_tier", "customer_type"]
        _insert(wh, "customers", pd.DataFrame(customers, columns=member_columns))
        yield wh, ChurnModel().fit(wh, train_as_of=T)


def reasons_one_at_a_time(
    model: ChurnModel, frame: pd.DataFrame, top: int, min_effect: float
) -> pd.DataFrame:
    """The reasons by their definition, customer by customer (slow; the test oracle)."""
    X = model._encode(frame)
    log_odds = model._log_odds(X)
    names = list(model.groups_)
    effects = np.full((len(frame), len(names)), -np.inf)
    for g, name in enumerate(names):
        cols = model.groups_[name]
        if name in CATEGORICAL_FEATURES:
            known = X[:, cols].sum(axis=1) > 0
        else:
            known = ~np.isnan(X[:, cols[0]])
        typical = X.copy()
        typical[:, cols] = model.reference_[cols]
        effects[:, g] = np.where(known, log_odds - model._log_odds(typical), -np.inf)
    ranked = np.argsort(-effects, axis=1, kind="stable")[:, :top]
    risk = expit(log_odds)
    rows: list[tuple[Any, ...]] = []
    for i, customer in enumerate(frame["customer_id"]):
        for rank, g in enumerate(ranked[i], start=1):
            if not effects[i, g] > min_effect:
                break
            name = names[g]
            value, typical_value = frame[name].iloc[i], model._typical(name)
            zh, en = describe_feature(name, value, typical_value)
            change = risk[i] - expit(log_odds[i] - effects[i, g])
            rows.append((customer, risk[i], rank, name, value, typical_value, change,
                         effects[i, g], zh, en))  # fmt: skip
    return pd.DataFrame(rows, columns=list(REASON_COLUMNS))


@pytest.mark.parametrize(("top", "min_effect"), [(3, 0.1), (5, 0.0), (40, -1.0)])
def test_reasons_equal_one_customer_at_a_time(
    fitted: tuple[Warehouse, ChurnModel], top: int, min_effect: float
) -> None:
    # min_effect 0 and below keeps effects of exactly 0 (customers at the typical value, features
    # no tree uses): their order is the order of equal effects, the features' order
    wh, model = fitted
    assert {"member_tier", "customer_type"} <= set(model.groups_)
    expected = reasons_one_at_a_time(model, model._features(wh, T), top, min_effect)
    got = model.reasons(wh, as_of=T, top=top, min_effect=min_effect)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    if min_effect < 0:
        assert set(got["feature"]) >= {"member_tier", "customer_type"}
        assert (got["log_odds_change"] == 0).any() and (got["log_odds_change"] < 0).any()


def test_early_warning_and_assess_use_the_same_reasons(
    fitted: tuple[Warehouse, ChurnModel],
) -> None:
    wh, model = fitted
    watch = model.early_warning(wh, as_of=T)
    why = reasons_one_at_a_time(model, model._features(wh, T), 3, 0.1)
    text = (why["reason_zh"] + " / " + why["reason_en"]).groupby(why["customer_id"]).agg("；".join)
    assert len(watch) > 0
    assert (watch["reasons"] == watch["customer_id"].map(text).fillna("")).all()
    found = model.assess(wh, as_of=T)
    pd.testing.assert_frame_equal(found.risk, model.predict_proba(wh, as_of=T), check_exact=True)
    pd.testing.assert_frame_equal(found.reasons, model.reasons(wh, as_of=T), check_exact=True)
    pd.testing.assert_frame_equal(found.early_warning, watch, check_exact=True)
    # with fewer than three reasons asked for, the watch list still gets its top three
    fewer = model.assess(wh, as_of=T, top=1)
    pd.testing.assert_frame_equal(fewer.early_warning, watch, check_exact=True)
    assert fewer.reasons["rank"].max() == 1


def test_join_texts_and_flag_texts() -> None:
    reasons = pd.DataFrame(
        {"customer_id": ["b", "b", "b", "a", "c", "c"], "rank": [1, 2, 3, 1, 1, 2]}
    )
    text = pd.Series(["b1", "b2", "b3", "a1", "c1", "c2"])
    expected = {"a": "a1", "b": "b1；b2；b3", "c": "c1；c2"}
    assert join_texts(reasons, text, "；").to_dict() == expected
    shuffled = [5, 2, 0, 3, 4, 1]  # not grouped by customer: sorted first
    got = join_texts(reasons.iloc[shuffled], text.iloc[shuffled], "；")
    assert got.to_dict() == expected
    with pytest.raises(ValueError, match="without gaps"):
        join_texts(reasons.assign(rank=[1, 3, 4, 1, 1, 2]), text, "；")
    assert join_texts(reasons.iloc[:0], text.iloc[:0], "；").empty
    hits = np.array([[True, False, True], [False, False, False], [True, True, True]])
    texts = ["x", "y", "z"]
    naive = ["；".join(t for t, h in zip(texts, row, strict=True) if h) for row in hits]
    assert flag_texts(hits, texts, "；").tolist() == naive


def test_tree_tables_give_the_models_own_predictions() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 5))
    y = (X[:, 0] + np.nan_to_num(X[:, 1]) * X[:, 2] + rng.normal(size=3_000) > 0).astype(int)
    X[rng.random(X.shape) < 0.1] = (
        np.nan
    )  # missing values, sent left by some splits, right by others
    model = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0)
    model.fit(X, y)
    tables = TreeTables.of(model)
    assert tables is not None
    missing_left = np.concatenate([t["missing_left"] for t in tables.trees])
    assert missing_left.any() and not missing_left.all()
    log_odds = model.decision_function(X)
    changes = [
        ([0], np.array([0.5]), rng.random(len(X)) < 0.5),
        ([1, 2], np.array([np.nan, -1.0]), np.ones(len(X), dtype=bool)),
        ([4], np.array([3.0]), np.zeros(len(X), dtype=bool)),
    ]
    got = tables.changed_log_odds(X, log_odds, changes)
    assert got is not None
    for (cols, values, rows), changed in zip(changes, got, strict=True):
        expected = X[rows].copy()
        expected[:, cols] = values
        expected_log_odds = model.decision_function(expected) if rows.any() else np.empty(0)
        assert np.array_equal(changed, expected_log_odds)  # to the last bit
    # tables that do not reproduce the model's predictions are not used
    tables.trees[0]["table"] = tables.trees[0]["table"] + 1e-9
    assert tables.changed_log_odds(X, log_odds, changes) is None
    big = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=40, random_state=0).fit(X, y)
    assert TreeTables.of(big) is None  # 39 splits: too many to tabulate


def test_reasons_without_tables_are_the_same(
    fitted: tuple[Warehouse, ChurnModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, model = fitted
    monkeypatch.setattr(tree_effects, "MAX_SPLITS", 2)  # every tree too big to tabulate
    assert TreeTables.of(model.classifier_) is None
    expected = reasons_one_at_a_time(model, model._features(wh, T), 3, 0.1)
    pd.testing.assert_frame_equal(model.reasons(wh, as_of=T), expected, check_exact=True)
