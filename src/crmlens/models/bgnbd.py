"""BG/NBD: how many purchases a customer will make, and whether they are still a customer.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2). While alive a customer buys as a Poisson process with
rate ``lambda ~ Gamma(r, alpha)``; after each repeat purchase they drop out with probability
``p ~ Beta(a, b)``. A customer's history is ``x`` repeat purchases (after the first one), the last
at ``t_x``, and their age ``T`` (time since the first purchase), all in one time unit (e.g. weeks).
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models import _clv_common as common
from crmlens.models._clv_common import FloatArray, wsum
from crmlens.models.base import Estimator

PARAMS = ["r", "alpha", "a", "b"]


class BetaGeoModel(Estimator):
    """BG/NBD model fitted by maximum likelihood on weighted unique ``(x, t_x, T)`` rows.

    Args:
        penalizer_coef: L2 penalty ``c * (r² + alpha'² + a² + b²)`` added to the mean negative
            log-likelihood, as in lifetimes' ``BetaGeoFitter``; ``alpha'`` is alpha in units of
            the largest observed ``T``, which makes the penalty independent of the time unit.

    Learned attributes: ``params_`` (dict ``r, alpha, a, b``; alpha is in the time unit of the
    data), ``standard_errors_`` and ``covariance_`` (inverse Hessian of the negative
    log-likelihood in those natural parameters), ``log_likelihood_`` (without the penalty),
    ``n_customers_`` and ``n_unique_rows_``.

    >>> import numpy as np
    >>> x = np.array([0, 0, 1, 2, 0, 3, 1, 0, 5, 2, 0, 1])
    >>> t_x = np.array([0, 0, 10, 25, 0, 30, 4, 0, 35, 12, 0, 20.0])
    >>> T = np.array([38, 30, 35, 38, 20, 36, 30, 25, 38, 33, 28, 38.0])
    >>> model = BetaGeoModel().fit(x, t_x, T)
    >>> bool(model.probability_alive(0, 0, 38)[()] == 1.0)
    True
    >>> model.expected_purchases(10, x, t_x, T).shape
    (12,)
    """

    def __init__(self, *, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def fit(
        self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
    ) -> Self:
        """Fit on customer histories; ``weights`` counts customers per row (default one each).

        Identical rows are collapsed first, so passing 1M raw customers costs about as much as
        passing their few hundred thousand distinct histories.

        Raises:
            ConfigError: bad values (negative, NaN, fractional x, t_x > T, x > 0 with t_x = 0)
                or a negative penalizer_coef.
            InsufficientDataError: fewer than 10 customers, no repeat purchases, or a parameter
                the data cannot pin down.
        """
        penalizer = float(self.penalizer_coef)
        if not (np.isfinite(penalizer) and penalizer >= 0):
            raise ConfigError(f"penalizer_coef must be a number >= 0; got {self.penalizer_coef!r}")
        xs, txs, Ts = (v.ravel() for v in common.check_rfm(x, t_x, T))
        w = common.check_weights(weights, xs.size)
        keep = w > 0
        n_customers = float(w.sum())
        if n_customers < common.MIN_CUSTOMERS:
            raise InsufficientDataError(
                f"BG/NBD needs at least {common.MIN_CUSTOMERS} customers; got {n_customers:g}"
            )
        if not np.any(xs[keep] > 0):
            raise InsufficientDataError(
                f"BG/NBD needs repeat buyers, but all {n_customers:g} customers have x = 0: "
                "the purchase rate and drop-out cannot be estimated"
            )
        (ux, utx, uT), uw, _ = common.collapse_rows([xs[keep], txs[keep], Ts[keep]], w[keep])

        # Work in units of the largest age so alpha is O(1) whatever the time unit (as lifetimes).
        scale = 1.0 / uT.max()
        data = _Data(ux, utx * scale, uT * scale, uw)
        theta, g, h_log = common.fit_log_params(
            lambda th: _objective(th, data, penalizer), np.zeros(4), PARAMS
        )
        natural = np.exp(theta)
        # Hessian of the total (not mean) objective in natural parameters, by the chain rule
        # from log-parameters; then undo the time scaling of alpha.
        h_nat = data.total * (h_log - np.diag(g)) / np.outer(natural, natural)
        unscale = np.array([1.0, 1.0 / scale, 1.0, 1.0])
        cov = common.covariance(h_nat, PARAMS) * np.outer(unscale, unscale)
        natural = natural * unscale

        self.params_ = common.as_dict(PARAMS, natural)
        self.covariance_ = cov
        diag = np.diag(cov)
        self.standard_errors_ = common.as_dict(PARAMS, np.sqrt(np.where(diag > 0, diag, np.nan)))
        # Rescaling time by s multiplies each customer's likelihood by s**-x (the rate enters as
        # lambda**x); undo that to report the log-likelihood in the data's own time unit.
        scaled_ll = -data.total * _objective(theta, data, 0.0)[0]
        self.log_likelihood_ = scaled_ll + data.sum_x * float(np.log(scale))
        self.n_customers_ = int(n_customers) if n_customers.is_integer() else n_customers
        self.n_unique_rows_ = int(ux.size)
        return self

    def expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected repeat purchases in the next ``t`` periods of customers with these histories.

        Equation (10) of Fader, Hardie & Lee (2005); all arguments broadcast together. The Gauss
        hypergeometric term is evaluated in its Euler-transformed form
        ``2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose first two parameters do not grow with ``x``, so it
        stays finite and accurate for heavy buyers where the textbook form overflows.
        """
        self._check_fitted("expected_purchases")
        xs, txs, Ts = common.check_rfm(x, t_x, T)
        ts = _check_horizon(t)
        return _cumulative(self.params_, ts, xs, Ts) * self._alive(xs, txs, Ts)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """Expected repeat purchases ``E[X(t)]`` of a new customer in their first ``t`` periods.

        Equation (9) of Fader, Hardie & Lee (2005): the conditional expectation of a customer
        with no history (``x = t_x = T = 0``).
        """
        self._check_fitted("expected_purchases_new")
        ts = _check_horizon(t)
        return _cumulative(self.params_, ts, np.zeros(()), np.zeros(()))

    def probability_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """Probability that customers with these histories have not dropped out.

        ``1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))`` for ``x > 0``
        (Fader, Hardie & Lee, note 021), 1 for ``x = 0``; computed as a logistic of the log-odds
        so large ``x`` cannot overflow.
        """
        self._check_fitted("probability_alive")
        return self._alive(*common.check_rfm(x, t_x, T))

    def _alive(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        r, alpha, a, b = (self.params_[k] for k in PARAMS)
        log_odds_dead = np.log(a / (b + np.maximum(x, 1.0) - 1.0)) + (r + x) * np.log(
            (alpha + T) / (alpha + t_x)
        )
        return np.where(x > 0, expit(-log_odds_dead), 1.0)


class _Data:
    """Unique rows with weights, split into one-time buyers (x = 0) and repeat buyers.

    Terms that depend on ``x`` only (gammaln, digamma, beta functions) are evaluated once per
    distinct ``x`` and weighted by the number of customers with that ``x``.
    """

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
        self.total = float(w.sum())
        self.sum_x = wsum(w, x)
        self.ux, inverse = np.unique(x, return_inverse=True)
        self.ux_weight = np.bincount(inverse, weights=w, minlength=self.ux.size)
        once = x == 0
        self.T0, self.w0 = T[once], w[once]
        self.x1, self.t1, self.T1, self.w1 = x[~once], t_x[~once], T[~once], w[~once]
        self.ux1, self.x1_index = np.unique(self.x1, return_inverse=True)


def _objective(theta: FloatArray, d: _Data, penalizer: float) -> tuple[float, FloatArray]:
    """Weighted mean negative log-likelihood (+ penalty) and its gradient in log-parameters.

    The log-likelihood of a customer is equation (6) of FHL in the form of their section 7:
    ``A1 + A2 + log(exp(A3) + [x > 0] exp(A4))``.
    """
    params = np.exp(theta)
    r, alpha, a, b = params
    ux, wx = d.ux, d.ux_weight
    # A1 + A2 without r*log(alpha), and their derivatives: per distinct x
    d_ab = digamma(a + b) - digamma(a + b + ux)
    grad = np.array(
        [
            wsum(wx, digamma(r + ux) - digamma(r)) + d.total * np.log(alpha),
            d.total * r / alpha,
            wsum(wx, d_ab),
            wsum(wx, d_ab + digamma(b + ux) - digamma(b)),
        ]
    )
    ll = wsum(wx, gammaln(r + ux) - gammaln(r) + betaln(a, b + ux) - betaln(a, b))
    ll += d.total * r * np.log(alpha)
    # one-time buyers are certainly alive: A3 = -r log(alpha + T)
    log_alive0 = np.log(alpha + d.T0)
    ll -= r * wsum(d.w0, log_alive0)
    grad[0] -= wsum(d.w0, log_alive0)
    grad[1] -= r * wsum(d.w0, 1.0 / (alpha + d.T0))
    # repeat buyers: alive (A3) or dropped out right after the last purchase (A4)
    rx = r + d.x1
    log_alive = np.log(alpha + d.T1)
    log_dead = np.log(alpha + d.t1)
    alive = -rx * log_alive
    dead = (np.log(a) - np.log(b + d.ux1 - 1.0))[d.x1_index] - rx * log_dead
    # log(exp(alive) + exp(dead)) and P(dropped out) = expit(dead - alive) from a single exp:
    # np.logaddexp plus scipy's expit took most of the time of an evaluation
    diff = dead - alive
    e = np.exp(-np.abs(diff))
    ll += wsum(d.w1, np.maximum(alive, dead) + np.log1p(e))
    w_dead = d.w1 * np.where(diff > 0, 1.0, e) / (1.0 + e)  # customers x P(dropped out)
    w_alive = d.w1 - w_dead
    grad[0] -= wsum(w_alive, log_alive) + wsum(w_dead, log_dead)
    grad[1] -= wsum(w_alive, rx / (alpha + d.T1)) + wsum(w_dead, rx / (alpha + d.t1))
    grad[2] += w_dead.sum() / a
    grad[3] -= wsum(w_dead, (1.0 / (b + d.ux1 - 1.0))[d.x1_index])
    value = -ll / d.total + penalizer * wsum(params, params)
    # d/dlog(p) = p * d/dp
    grad_log = -grad / d.total * params + 2.0 * penalizer * params**2
    return float(value), grad_log


def _cumulative(
    params: dict[str, float], t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """Expected purchases in ``(T, T + t]`` of an alive customer with ``x`` repeat purchases.

    ``(a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)]``, ``z = t/(alpha+T+t)``:
    the bracket of FHL (10) after Euler's transformation ``2F1(A,B;C;z) =
    (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)``. (At exactly ``a = 1`` the expression is 0/0.)
    """
    r, alpha, a, b = (params[k] for k in PARAMS)
    c = a + b + x - 1.0
    one_minus_z = (alpha + T) / (alpha + T + t)
    z = t / (alpha + T + t)
    return c / (a - 1.0) * (1.0 - one_minus_z ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z))


def _check_horizon(t: ArrayLike) -> FloatArray:
    ts = common.as_float("t", t)
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise ConfigError(f"t (the prediction horizon) must be finite and >= 0; got {t!r}")
    return ts
