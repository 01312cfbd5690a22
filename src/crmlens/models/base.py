"""The estimator contract every crmlens model follows.

It is the scikit-learn one, so models can be cloned, grid-searched and printed like sklearn's:

* ``__init__`` takes keyword-only arguments and only stores them (no validation, no work);
* :meth:`Estimator.get_params` / :meth:`Estimator.set_params` read and write those arguments;
* ``fit(...)`` validates, learns and returns ``self``; learned state ends in ``_`` (``params_``);
* a method that needs learned state calls :meth:`Estimator._check_fitted` first, which raises
  :class:`~crmlens.errors.NotFittedError` naming the class and the missing call.

>>> class Mean(Estimator):
...     def __init__(self, *, shift: float = 0.0) -> None:
...         self.shift = shift
...     def fit(self, values: list[float]) -> Mean:
...         self.mean_ = sum(values) / len(values) + self.shift
...         return self
...     def predict(self) -> float:
...         self._check_fitted("predict")
...         return self.mean_
>>> Mean(shift=1.0)
Mean(shift=1.0)
>>> Mean().set_params(shift=2.0).fit([1.0, 3.0]).predict()
4.0
>>> Mean().predict()
Traceback (most recent call last):
...
crmlens.errors.NotFittedError: Mean is not fitted yet: call Mean.fit(...) before predict().
"""

from __future__ import annotations

import inspect
from typing import Any, Self

from crmlens.errors import ConfigError, NotFittedError


class Estimator:
    """Base class giving a model ``get_params``, ``set_params``, ``__repr__`` and ``_check_fitted``.

    Subclasses declare their hyper-parameters as keyword-only ``__init__`` arguments stored under
    the same attribute names; nothing else is needed.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        """The hyper-parameter names, read from the ``__init__`` signature in declared order."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name == "self":
                continue
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                # positional or *args parameters would make get_params/clone ambiguous
                raise TypeError(
                    f"{cls.__name__}.__init__ must take keyword-only arguments only; "
                    f"{param.name!r} is {param.kind.description}"
                )
            names.append(param.name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters as a dict; with ``deep``, nested estimators' as ``name__param``."""
        params: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and isinstance(value, Estimator):
                params.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> Self:
        """Set hyper-parameters (``name__param`` reaches into a nested estimator) and return self.

        Raises :class:`~crmlens.errors.ConfigError` for a name ``__init__`` does not take.
        """
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {name!r}; "
                    f"valid parameters: {', '.join(valid) or '(none)'}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            inner = getattr(self, name)
            if not isinstance(inner, Estimator):
                raise ConfigError(
                    f"{type(self).__name__}.{name} is not an estimator, so "
                    f"{name}__{next(iter(sub_params))} cannot be set"
                )
            inner.set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    def _is_fitted(self) -> bool:
        """True once ``fit`` has stored learned state (a public attribute ending in ``_``)."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self, method: str) -> None:
        """Raise :class:`~crmlens.errors.NotFittedError` if ``fit`` has not been called yet."""
        if not self._is_fitted():
            name = type(self).__name__
            raise NotFittedError(
                f"{name} is not fitted yet: call {name}.fit(...) before {method}()."
            )
