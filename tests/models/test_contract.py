"""The estimator contract, checked on every estimator defined in ``crmlens.models``.

Each estimator class found in the package's modules needs a :class:`Case` in ``CASES``: how to fit
it on the tiny synthetic shop below, one method that needs a fit, and the learned result to compare
between two seeded fits. A new estimator without a case fails here on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import crmlens.models
from crmlens.errors import ConfigError, NotFittedError
from crmlens.models.base import Estimator
from crmlens.models.clv import summarise_transactions
from crmlens.models.features import customer_features, transactions
from crmlens.warehouse import Warehouse

AS_OF = date(2024, 6, 30)
END = date(2024, 12, 31)


def estimator_classes() -> list[type[Estimator]]:
    """Every public Estimator subclass defined in a module of crmlens.models."""
    found: dict[str, type[Estimator]] = {}
    for info in pkgutil.iter_modules(crmlens.models.__path__):
        module = importlib.import_module(f"crmlens.models.{info.name}")
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Estimator)
                and obj is not Estimator
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[name] = obj
    return [found[name] for name in sorted(found)]


# -- a tiny synthetic shop ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """300 members, 2023-2024: Poisson buyers who drop out at a random day."""
    rng = np.random.default_rng(11)
    n = 300
    ids = [f"M{i:04d}" for i in range(n)]
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 180, n), unit="D")
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": signup,
            "member_tier": rng.choice(["白金", "黄金", "白银", "普通"], n),
            "customer_type": "个人",
            "gender": rng.choice(["女", "男"], n, p=[0.7, 0.3]),
            "referrer_id": [ids[i - 1] if i % 10 == 1 else None for i in range(n)],
        }
    )
    rows = []
    for i, start in enumerate(signup):
        rate = rng.gamma(2.0, 1 / 40)  # purchases per day
        stop = start + pd.Timedelta(days=int(rng.exponential(400)))
        day = start
        while True:
            day += pd.Timedelta(days=float(rng.exponential(1 / rate)))
            if day > min(stop, pd.Timestamp(END)):
                break
            rows.append((f"o{len(rows):06d}", ids[i], day.floor("min"), rng.lognormal(4, 0.5)))
    orders = pd.DataFrame(rows, columns=["order_id", "customer_id", "order_time", "amount"])
    orders["amount"] = orders["amount"].round(2)
    orders = orders.assign(
        is_refund=False, payment_method="微信支付", order_channel="POS", store_id="S01"
    )
    lines = orders[["order_id", "amount"]].assign(line_no=1, sku="P1", quantity=1.0)
    products = pd.DataFrame({"sku": ["P1"], "category": ["蔬菜"], "department": ["生鲜"]})
    wh = Warehouse(Path(tmp_path_factory.mktemp("contract")) / "w.duckdb")
    for table, frame in (
        ("customers", customers),
        ("orders", orders),
        ("order_lines", lines),
        ("products", products),
    ):
        wh.raw.register("incoming", frame)
        wh.raw.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        wh.raw.unregister("incoming")
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def features(shop: Warehouse) -> pd.DataFrame:
    return shop.execute(customer_features(shop.table, as_of=AS_OF))


@pytest.fixture(scope="module")
def summary(shop: Warehouse) -> pd.DataFrame:
    tx = shop.execute(transactions(shop.table, as_of=AS_OF))
    return summarise_transactions(
        tx["customer_id"], tx["order_time"], tx["amount"], observation_end=AS_OF
    )


@dataclass(frozen=True)
class Case:
    """How to exercise one estimator: its seeded params, fit, a fitted-only call and its result."""

    params: dict[str, Any]
    fit: Callable[[Estimator, dict[str, Any]], Any]
    use: Callable[[Estimator, dict[str, Any]], Any]
    result: Callable[[Estimator, dict[str, Any]], Any]


def _frame_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id").reset_index(drop=True)


CASES: dict[str, Case] = {
    "BetaGeoModel": Case(
        params={"penalizer_coef": 0.0},
        fit=lambda m, d: m.fit(d["summary"]["x"], d["summary"]["t_x"], d["summary"]["T"]),
        use=lambda m, d: m.expected_purchases_new(4.0),
        result=lambda m, d: m.params_,
    ),
    "GammaGammaModel": Case(
        params={"penalizer_coef": 0.0},
        fit=lambda m, d: m.fit(d["summary"]["x"], d["summary"]["monetary"]),
        use=lambda m, d: m.expected_average_value([2], [50.0]),
        result=lambda m, d: m.params_,
    ),
    "RFMModel": Case(
        params={"scoring": "quantile", "bins": 5, "thresholds": None, "scheme": "en11"},
        fit=lambda m, d: m.fit(d["features"]),
        use=lambda m, d: m.segment_of(["M0001"]),
        result=lambda m, d: m.scores_,
    ),
    "CustomerClusters": Case(
        params={"algorithm": "kmeans", "random_state": 3},
        fit=lambda m, d: m.fit(d["features"]),
        use=lambda m, d: m.cluster_of(["M0001"]),
        result=lambda m, d: m.labels_,
    ),
    "LifecycleStages": Case(
        params={"active_days": 60, "churn_days": 120},
        fit=lambda m, d: m.fit(d["shop"], as_of=AS_OF),
        use=lambda m, d: m.transitions(date(2024, 1, 1), AS_OF),
        result=lambda m, d: m.stages_,
    ),
    "ChurnModel": Case(
        params={"horizon_days": 90, "max_iter": 30, "min_samples_leaf": 10, "random_state": 3},
        fit=lambda m, d: m.fit(d["shop"], train_as_of=AS_OF),
        use=lambda m, d: m.predict_proba(d["shop"], as_of=END),
        result=lambda m, d: _frame_sorted(m.predict_proba(d["shop"], as_of=END)),
    ),
}

CLASSES = estimator_classes()


@pytest.fixture(scope="module")
def data(shop: Warehouse, features: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Any]:
    return {"shop": shop, "features": features, "summary": summary}


def case_of(cls: type[Estimator]) -> Case:
    if cls.__name__ not in CASES:
        pytest.fail(f"{cls.__name__} has no contract case: add one to CASES in {__name__}")
    return CASES[cls.__name__]


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b)
    else:
        assert a == b


def test_known_estimators_are_checked() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"BetaGeoModel", "GammaGammaModel", "RFMModel", "CustomerClusters"} <= names
    assert "LifecycleStages" in names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fit_returns_self_and_fitted_state(cls: type[Estimator], data: dict[str, Any]) -> None:
    case = case_of(cls)
    model = cls(**case.params)
    assert not model._is_fitted()
    assert case.fit(model, data) is model
    assert model._is_fitted()
    case.use(model, data)  # works once fitted


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_use_before_fit_raises(cls: type[Estimator], data: dict[str, Any]) -> None:
    with pytest.raises(NotFittedError, match=f"{cls.__name__} is not fitted yet"):
        case_of(cls).use(cls(**case_of(cls).params), data)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_params_round_trip_and_repr(cls: type[Estimator]) -> None:
    case = case_of(cls)
    model = cls(**case.params)
    params = model.get_params()
    assert {k: params[k] for k in case.params} == case.params  # __init__ only stores
    assert set(params) == set(inspect.signature(cls.__init__).parameters) - {"self"}
    clone = cls(**params)
    assert clone.get_params() == params
    assert clone.set_params(**params) is clone
    with pytest.raises(ConfigError, match="has no parameter"):
        clone.set_params(no_such_parameter=1)
    text = repr(model)
    assert text.startswith(f"{cls.__name__}(") and text.endswith(")")
    for name, value in params.items():
        assert f"{name}={value!r}" in text


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_deterministic_with_seed(cls: type[Estimator], data: dict[str, Any]) -> None:
    case = case_of(cls)
    first = cls(**case.params)
    second = cls(**case.params)
    case.fit(first, data)
    case.fit(second, data)
    assert_same(case.result(first, data), case.result(second, data))
