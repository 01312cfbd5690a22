"""The Estimator contract shared by crmlens models."""

from __future__ import annotations

import doctest

import pytest
from sklearn.base import clone

import crmlens.models.base
from crmlens.errors import ConfigError, NotFittedError
from crmlens.models import BetaGeoModel, Estimator


class Inner(Estimator):
    def __init__(self, *, k: int = 3) -> None:
        self.k = k


class Outer(Estimator):
    def __init__(self, *, inner: Inner | None = None, name: str = "x") -> None:
        self.inner = inner
        self.name = name

    def fit(self) -> Outer:
        self.done_ = True
        return self

    def use(self) -> bool:
        self._check_fitted("use")
        return self.done_


def test_params_repr_and_nesting() -> None:
    model = Outer(inner=Inner(k=5))
    assert model.get_params(deep=False) == {"inner": model.inner, "name": "x"}
    assert model.get_params()["inner__k"] == 5
    assert model.set_params(inner__k=7, name="y") is model
    assert (model.inner.k, model.name) == (7, "y")
    assert repr(model) == "Outer(inner=Inner(k=7), name='y')"
    with pytest.raises(ConfigError, match="Outer has no parameter 'size'; valid parameters: inner"):
        model.set_params(size=1)
    with pytest.raises(ConfigError, match="is not an estimator"):
        model.set_params(name__k=1)


def test_check_fitted() -> None:
    model = Outer()
    with pytest.raises(
        NotFittedError, match=r"Outer is not fitted yet: call Outer\.fit\(\.\.\.\) before use\(\)"
    ):
        model.use()
    # NotFittedError is also an AttributeError, so hasattr-style probing keeps working
    assert not hasattr(model, "done_") and model.fit().use()


def test_keyword_only_init_is_enforced() -> None:
    class Positional(Estimator):
        def __init__(self, k: int = 1) -> None:
            self.k = k

    with pytest.raises(TypeError, match="keyword-only"):
        Positional().get_params()


def test_sklearn_clone_gives_an_unfitted_copy() -> None:
    model = BetaGeoModel(penalizer_coef=0.5)
    model.params_ = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0}
    copy = clone(model)
    assert copy is not model and copy.get_params() == {"penalizer_coef": 0.5}
    assert not copy._is_fitted()


def test_module_doctest() -> None:
    assert doctest.testmod(crmlens.models.base).failed == 0
