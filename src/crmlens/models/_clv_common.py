"""Shared plumbing of the CLV models: input checks, row collapsing and the MLE optimiser.

Both BG/NBD and Gamma-Gamma are fitted the same way: collapse identical customer rows into unique
rows with weights (1M customers usually have far fewer distinct histories), minimise the weighted
mean negative log-likelihood over log-parameters with an analytic gradient, and read standard
errors off a finite-difference Hessian of that gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from crmlens.errors import ConfigError, InsufficientDataError, ModelError

FloatArray = NDArray[np.float64]
# value and gradient (w.r.t. log-parameters) of the objective at log-parameters
Objective = Callable[[FloatArray], tuple[float, FloatArray]]

MIN_CUSTOMERS = 10
# |log-parameter| this large means the MLE ran off to 0 or infinity
LOG_BOUND = 30.0
# an unconverged fit with |log-parameter| beyond this (in scaled units) is running away
RUNAWAY = 8.0
# smallest/largest eigenvalue of the log-parameter Hessian below which the maximum is not proper
CONCAVITY = 1e-10


def as_float(name: str, values: ArrayLike) -> FloatArray:
    """``values`` as a float array, or ConfigError naming the argument."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be numeric: {exc}") from None


def check_values(name: str, values: FloatArray, *, integer: bool = False) -> None:
    """ConfigError unless ``values`` are finite, >= 0 and (with ``integer``) whole numbers."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ConfigError(
            f"{name} must be finite; found {int(bad.sum())} NaN/inf value(s), "
            f"first at position {int(np.flatnonzero(bad.ravel())[0])}"
        )
    negative = values < 0
    if negative.any():
        raise ConfigError(
            f"{name} must be >= 0; found {int(negative.sum())} negative value(s), "
            f"smallest {values.min():g}"
        )
    if integer:
        fractional = values != np.round(values)
        if fractional.any():
            raise ConfigError(
                f"{name} counts repeat purchases and must hold whole numbers; "
                f"found {int(fractional.sum())} fractional value(s), e.g. {values[fractional][0]:g}"
            )


def wsum(weights: FloatArray, values: FloatArray) -> float:
    """``sum(weights * values)`` by numpy's pairwise summation rather than a BLAS dot.

    Pairwise summation is the more accurate over 1M rows, and a BLAS dot on a long vector wakes
    numpy's OpenBLAS thread pool, whose spinning threads slowed the optimiser 4x on two cores.
    """
    return float(np.sum(weights * values))


def check_rfm(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate and broadcast customer histories (x repeat purchases, last at t_x, age T)."""
    arrays = [as_float(n, v) for n, v in (("x", x), ("t_x", t_x), ("T", T))]
    try:
        xs, txs, Ts = np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(("x", "t_x", "T"), arrays, strict=True))
        raise ConfigError(f"x, t_x and T must have the same length; got {shapes}") from None
    for name, values in (("x", xs), ("t_x", txs), ("T", Ts)):
        check_values(name, values, integer=name == "x")
    late = txs > Ts
    if late.any():
        i = int(np.flatnonzero(late.ravel())[0])
        raise ConfigError(
            f"t_x (time of the last purchase) must be <= T (customer age); found {int(late.sum())} "
            f"customer(s) with t_x > T, e.g. t_x={txs.ravel()[i]:g}, T={Ts.ravel()[i]:g}"
        )
    no_time = (xs > 0) & (txs == 0)
    if no_time.any():
        raise ConfigError(
            f"{int(no_time.sum())} customer(s) have x > 0 repeat purchases but t_x = 0; a repeat "
            "purchase happens after the first one, so t_x must be > 0 (were same-day purchases "
            "counted as repeats?)"
        )
    phantom = (xs == 0) & (txs > 0)
    if phantom.any():
        raise ConfigError(
            f"{int(phantom.sum())} customer(s) have x = 0 but t_x > 0; without repeat purchases "
            "t_x must be 0"
        )
    return xs, txs, Ts


def check_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    """Per-row customer counts (all ones when ``None``)."""
    if weights is None:
        return np.ones(n)
    w = as_float("weights", weights)
    if w.shape != (n,):
        raise ConfigError(f"weights must have one value per row ({n}); got shape {w.shape}")
    check_values("weights", w)
    return w


def collapse_rows(
    columns: list[FloatArray], weights: FloatArray
) -> tuple[list[FloatArray], FloatArray, NDArray[np.intp]]:
    """Unique rows of equal-length 1-D ``columns``, their summed weights and the inverse index.

    ``unique[k][inverse]`` rebuilds ``columns[k]``. A lexsort is used rather than
    ``np.unique(axis=0)``, which copies into a structured view and is several times slower.
    """
    n = columns[0].size
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    new_row = np.zeros(n, dtype=bool)
    new_row[0] = True
    for c in ordered:
        new_row[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(new_row)
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(new_row) - 1
    return [c[starts] for c in ordered], np.add.reduceat(weights[order], starts), inverse


class LogFit(NamedTuple):
    """The optimum in log-parameters, with the objective's gradient and Hessian there."""

    theta: FloatArray
    gradient: FloatArray
    hessian: FloatArray


def fit_log_params(objective: Objective, theta0: FloatArray, names: list[str]) -> LogFit:
    """Minimise ``objective`` over log-parameters with BLAS limited to one thread.

    Three or four parameters never profit from BLAS threads, but the optimiser's small LAPACK
    calls wake scipy's OpenBLAS pool, whose spinning threads then compete with the vectorised
    likelihood for the cores (numpy and scipy each bundle their own OpenBLAS): on two cores the
    fits ran up to twice as slow.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_log_params(objective, theta0, names)


def _fit_log_params(objective: Objective, theta0: FloatArray, names: list[str]) -> LogFit:
    """Minimise ``objective`` over log-parameters; return the optimum, gradient and Hessian.

    L-BFGS-B gets close cheaply; its stopping rule (relative change of f) leaves the gradient at
    ~1e-7, which in the flat directions of these likelihoods is still 1e-4 off in the parameters,
    so a few Newton steps on a finite-difference Hessian of the analytic gradient polish it to
    ~1e-12. Raises InsufficientDataError when the optimum is not identified: a parameter runs
    off to 0 or infinity, or the likelihood is flat or not concave there.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * theta0.size
    result = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10},
    )
    theta = result.x
    f, g = objective(theta)
    hessian, hessian_at = None, theta
    for _ in range(20):
        if np.max(np.abs(g)) < 1e-12 or np.any(np.abs(theta) >= LOG_BOUND - 1):
            break
        hessian, hessian_at = numerical_hessian(lambda th: objective(th)[1], theta), theta
        try:
            step = np.linalg.solve(hessian, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or step @ g <= 0:
            break  # not a descent direction: the Hessian is not positive definite here
        accepted = False
        for shrink in 0.5 ** np.arange(20):
            candidate = np.clip(theta - shrink * step, -LOG_BOUND, LOG_BOUND)
            f_new, g_new = objective(candidate)
            # Next to the optimum f changes by less than its rounding error, so a step that
            # leaves f flat (to 1e-14) but shrinks the gradient also counts as progress.
            flat = f_new <= f + 1e-14 * max(1.0, abs(f))
            if np.isfinite(f_new) and (
                f_new < f or (flat and np.max(np.abs(g_new)) < np.max(np.abs(g)))
            ):
                accepted = True
                break
        if not accepted:
            break
        theta, f, g = candidate, f_new, g_new
    if not (np.isfinite(f) and np.all(np.isfinite(theta))):
        raise ModelError(f"maximum-likelihood fit did not converge ({result.message})")
    converged = np.max(np.abs(g)) <= 1e-5
    # At the bound, or still creeping outwards along a ridge of the likelihood (e.g. r and alpha
    # growing together towards the Poisson limit), the MLE is degenerate rather than slow.
    far = LOG_BOUND - 1 if converged else RUNAWAY
    at_edge = [n for n, t in zip(names, theta, strict=True) if abs(t) >= far]
    if at_edge:
        raise InsufficientDataError(
            "the data cannot identify the model: the maximum-likelihood estimate of "
            f"{', '.join(at_edge)} runs off to 0 or infinity; use more customers or set "
            "penalizer_coef > 0"
        )
    if not converged:
        raise ModelError(
            f"maximum-likelihood fit did not converge: gradient {np.max(np.abs(g)):.2g} at the "
            f"end ({result.message}); try penalizer_coef > 0"
        )
    # The last Newton step is ~1e-8, so the Hessian it used is still good for standard errors.
    if hessian is None or np.max(np.abs(theta - hessian_at)) > 1e-6:
        hessian = numerical_hessian(lambda th: objective(th)[1], theta)
    eigenvalues = np.linalg.eigvalsh(hessian)
    if not eigenvalues[0] > CONCAVITY * eigenvalues[-1]:
        estimate = ", ".join(f"{n}={np.exp(t):.4g}" for n, t in zip(names, theta, strict=True))
        raise InsufficientDataError(
            "the data cannot identify the model: the log-likelihood is flat or not concave at "
            f"the estimate ({estimate}, in scaled units), so it is not a proper maximum; use "
            "more customers or set penalizer_coef > 0"
        )
    return LogFit(theta, g, hessian)


def numerical_hessian(
    gradient: Callable[[FloatArray], FloatArray], theta: FloatArray, rel_step: float = 1e-5
) -> FloatArray:
    """Symmetrised central-difference Jacobian of an analytic ``gradient`` at ``theta``."""
    k = theta.size
    steps = rel_step * np.maximum(np.abs(theta), 1.0)
    hessian = np.empty((k, k))
    for i in range(k):
        up, down = theta.copy(), theta.copy()
        up[i] += steps[i]
        down[i] -= steps[i]
        hessian[:, i] = (gradient(up) - gradient(down)) / (2 * steps[i])
    return (hessian + hessian.T) / 2


def covariance(hessian: FloatArray, names: list[str]) -> FloatArray:
    """Inverse of the negative log-likelihood Hessian, or ModelError if it is not invertible."""
    try:
        cov = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        raise ModelError(
            f"the Hessian of the log-likelihood is singular at the fitted {', '.join(names)}; "
            "standard errors are undefined"
        ) from None
    return cov


def as_dict(names: list[str], values: FloatArray) -> dict[str, Any]:
    """``{name: float}`` in declared order (plain floats, so they print and serialise cleanly)."""
    return {n: float(v) for n, v in zip(names, values, strict=True)}
