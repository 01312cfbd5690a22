"""Gamma-Gamma: what a customer's purchases are worth on average, and their lifetime value.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4); Fader & Hardie, note 025. Each purchase of a customer is
worth ``z ~ Gamma(p, nu)``, and ``nu ~ Gamma(q, v)`` across customers. The literature calls the
last parameter *gamma*; here it is ``v`` (as in lifetimes) so it does not clash with the
distribution's name. Spend is assumed independent of the purchase process (check the correlation
of ``x`` and ``m`` before relying on it).
"""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from crmlens.errors import ConfigError, InsufficientDataError, ModelError
from crmlens.models import _clv_common as common
from crmlens.models._clv_common import FloatArray, wsum
from crmlens.models.base import Estimator

PARAMS = ["p", "q", "v"]
# 365.25 / 12: the mean Gregorian month
DAYS_PER_MONTH = 30.4375


class PurchaseModel(Protocol):
    """Anything that predicts cumulative repeat purchases, such as a fitted BetaGeoModel."""

    def expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray: ...


class GammaGammaModel(Estimator):
    """Gamma-Gamma spend model fitted by maximum likelihood on weighted unique ``(x, m)`` rows.

    Args:
        penalizer_coef: L2 penalty ``c * (p² + q² + v²)`` added to the mean negative
            log-likelihood, as in lifetimes' ``GammaGammaFitter``.

    Learned attributes: ``params_`` (dict ``p, q, v``; ``v`` is the literature's gamma),
    ``standard_errors_``, ``covariance_``, ``log_likelihood_``, ``n_customers_`` (repeat buyers
    used) and ``n_unique_rows_``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(1, 6, 200)
    >>> nu = rng.gamma(4.0, 1 / 15.0, 200)  # each customer's spend rate
    >>> m = rng.gamma(6.0 * x, 1 / (nu * x))  # mean of x purchases worth Gamma(6, nu) each
    >>> model = GammaGammaModel().fit(x, m)
    >>> sorted(model.params_)
    ['p', 'q', 'v']
    >>> model.expected_average_value([0, 3], [0.0, 20.0]).shape
    (2,)
    """

    def __init__(self, *, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def fit(self, x: ArrayLike, m: ArrayLike, *, weights: ArrayLike | None = None) -> Self:
        """Fit on repeat purchases ``x`` and mean spend ``m`` of those repeat purchases.

        Customers with ``x = 0`` carry no spend information and are skipped, so the whole
        customer table can be passed. ``weights`` counts customers per row.

        Raises:
            ConfigError: NaN/negative values, fractional x, ``m <= 0`` for a repeat buyer, or a
                negative penalizer_coef.
            InsufficientDataError: no repeat buyers, fewer than 10, or a parameter the data
                cannot pin down.
        """
        penalizer = float(self.penalizer_coef)
        if not (np.isfinite(penalizer) and penalizer >= 0):
            raise ConfigError(f"penalizer_coef must be a number >= 0; got {self.penalizer_coef!r}")
        xs, ms = (a.ravel() for a in _check_spend(x, m))
        w = common.check_weights(weights, xs.size)
        buyers = (xs > 0) & (w > 0)
        if not buyers.any():
            raise InsufficientDataError(
                f"Gamma-Gamma is fitted on repeat buyers, but none of the {xs.size} rows has x > 0"
            )
        n_buyers = float(w[buyers].sum())
        if n_buyers < common.MIN_CUSTOMERS:
            raise InsufficientDataError(
                f"Gamma-Gamma needs at least {common.MIN_CUSTOMERS} repeat buyers; got {n_buyers:g}"
            )
        (ux, um), uw, _ = common.collapse_rows([xs[buyers], ms[buyers]], w[buyers])
        data = _Data(ux, um, uw)
        # start where the population mean p*v/(q-1) equals the observed mean spend
        start = np.log([1.0, 2.0, common.wsum(uw, um) / data.total])
        theta, g, h_log = common.fit_log_params(
            lambda th: _objective(th, data, penalizer), start, PARAMS
        )
        natural = np.exp(theta)
        h_nat = data.total * (h_log - np.diag(g)) / np.outer(natural, natural)
        cov = common.covariance(h_nat, PARAMS)
        self.params_ = common.as_dict(PARAMS, natural)
        self.covariance_ = cov
        diag = np.diag(cov)
        self.standard_errors_ = common.as_dict(PARAMS, np.sqrt(np.where(diag > 0, diag, np.nan)))
        self.log_likelihood_ = -data.total * _objective(theta, data, 0.0)[0]
        self.n_customers_ = int(n_buyers) if n_buyers.is_integer() else n_buyers
        self.n_unique_rows_ = int(ux.size)
        return self

    def expected_average_value(self, x: ArrayLike, m: ArrayLike) -> FloatArray:
        """Expected spend per future purchase given ``x`` repeat purchases of mean value ``m``.

        ``p * (v + x * m) / (p * x + q - 1)`` (note 025, equation 5): a credibility-weighted mix
        of the customer's own mean and the population mean ``p * v / (q - 1)``; customers with
        ``x = 0`` get the population mean (their ``m`` is ignored).
        """
        self._check_fitted("expected_average_value")
        xs, ms = _check_spend(x, m)
        p, q, v = (self.params_[k] for k in PARAMS)
        denominator = p * xs + q - 1.0
        if np.any(denominator <= 0):
            raise ModelError(
                f"fitted q = {q:.4g} <= 1 makes the population mean spend p*v/(q-1) infinite; "
                "expected values exist only for repeat buyers with p*x + q > 1"
            )
        return p * (v + xs * np.where(xs > 0, ms, 0.0)) / denominator

    def customer_lifetime_value(
        self,
        purchase_model: PurchaseModel,
        x: ArrayLike,
        t_x: ArrayLike,
        T: ArrayLike,
        m: ArrayLike,
        *,
        horizon_months: int = 12,
        discount_rate_monthly: float = 0.01,
        time_unit_days: float = 7,
        days_per_month: float = DAYS_PER_MONTH,
    ) -> FloatArray:
        """Discounted expected spend over the next ``horizon_months``, as lifetimes computes it.

        ``sum_k value * (E[N(k months)] - E[N(k-1 months)]) / (1 + discount_rate_monthly) ** k``
        for ``k = 1 .. horizon_months``, with ``value`` from :meth:`expected_average_value` and
        ``E[N]`` from ``purchase_model.expected_purchases`` (histories in units of
        ``time_unit_days`` days). lifetimes takes a month as 30 days (``freq="D"``) or 4.345
        weeks (``freq="W"``); pass ``days_per_month=30`` or ``30.415`` to reproduce it exactly.

        >>> import numpy as np
        >>> from crmlens.models.bgnbd import BetaGeoModel
        >>> bg = BetaGeoModel()
        >>> bg.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
        >>> gg = GammaGammaModel()
        >>> gg.params_ = {"p": 6.25, "q": 3.74, "v": 15.44}
        >>> clv = gg.customer_lifetime_value(bg, [2, 0], [30.43, 0], [38.86, 38.86], [22.35, 0])
        >>> clv.round(2).tolist()
        [36.31, 8.37]
        """
        self._check_fitted("customer_lifetime_value")
        if not (isinstance(horizon_months, int | np.integer) and horizon_months >= 1):
            raise ConfigError(f"horizon_months must be a whole number >= 1; got {horizon_months!r}")
        for name, value, low in (
            ("discount_rate_monthly", discount_rate_monthly, -1.0),
            ("time_unit_days", time_unit_days, 0.0),
            ("days_per_month", days_per_month, 0.0),
        ):
            if not (np.isfinite(value) and value > low):
                raise ConfigError(f"{name} must be a finite number > {low:g}; got {value!r}")
        xs, txs, Ts = common.check_rfm(x, t_x, T)
        _, ms = _check_spend(xs, m)
        xs, txs, Ts, ms = np.broadcast_arrays(xs, txs, Ts, ms)
        value = self.expected_average_value(xs, ms)
        if xs.size == 0:
            return value
        # Predict once per distinct history: customers share histories, and the hypergeometric
        # function dominates the cost.
        (ux, utx, uT), _, inverse = common.collapse_rows(
            [xs.ravel(), txs.ravel(), Ts.ravel()], np.ones(xs.size)
        )
        periods_per_month = days_per_month / time_unit_days
        per_unit = np.zeros(ux.size)
        previous = np.zeros(ux.size)
        for month in range(1, horizon_months + 1):
            # one month at a time keeps memory at a few arrays of distinct histories
            current = purchase_model.expected_purchases(month * periods_per_month, ux, utx, uT)
            per_unit += (current - previous) / (1.0 + discount_rate_monthly) ** month
            previous = current
        return value * per_unit[inverse].reshape(xs.shape)


class _Data:
    """Unique ``(x, m)`` rows with weights, and the sums that do not depend on the parameters.

    Terms in ``x`` only are evaluated once per distinct ``x``; per row only ``log(v + x m)`` and
    ``1 / (v + x m)`` remain.
    """

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.w, self.xm, self.wx = w, x * m, w * x
        self.total = float(w.sum())
        self.ux, inverse = np.unique(x, return_inverse=True)
        self.ux_weight = np.bincount(inverse, weights=w, minlength=self.ux.size)
        log_m = np.log(m)
        self.sum_log_m = wsum(w, log_m)
        self.sum_x_log_mx = wsum(self.wx, log_m + np.log(x))


def _objective(theta: FloatArray, d: _Data, penalizer: float) -> tuple[float, FloatArray]:
    """Weighted mean negative log-likelihood (+ penalty) and its gradient in log-parameters.

    The density of the mean ``m`` of ``x`` purchases is (note 025, equation 1a)
    ``G(px+q) / (G(px) G(q)) * v^q * m^(px-1) * x^(px) / (v + x m)^(px+q)``.
    """
    params = np.exp(theta)
    p, q, v = params
    ux, wx = d.ux, d.ux_weight
    pux = p * ux
    psi_pxq = digamma(pux + q)
    log_vxm = np.log(v + d.xm)
    inv_vxm = 1.0 / (v + d.xm)
    sum_x_log_vxm, sum_log_vxm = wsum(d.wx, log_vxm), wsum(d.w, log_vxm)
    ll = (
        wsum(wx, gammaln(pux + q) - gammaln(pux))
        - d.total * (gammaln(q) - q * np.log(v))
        + p * d.sum_x_log_mx
        - d.sum_log_m
        - p * sum_x_log_vxm
        - q * sum_log_vxm
    )
    grad = np.array(
        [
            wsum(wx, ux * (psi_pxq - digamma(pux))) + d.sum_x_log_mx - sum_x_log_vxm,
            wsum(wx, psi_pxq) - d.total * (digamma(q) - np.log(v)) - sum_log_vxm,
            d.total * q / v - p * wsum(d.wx, inv_vxm) - q * wsum(d.w, inv_vxm),
        ]
    )
    value = -ll / d.total + penalizer * wsum(params, params)
    grad_log = -grad / d.total * params + 2.0 * penalizer * params**2
    return float(value), grad_log


def _check_spend(x: ArrayLike, m: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate repeat-purchase counts and mean spend; return them broadcast as float arrays."""
    arrays = [common.as_float("x", x), common.as_float("m", m)]
    try:
        xs, ms = np.broadcast_arrays(*arrays)
    except ValueError:
        raise ConfigError(
            f"x and m must have the same length; got {arrays[0].shape} and {arrays[1].shape}"
        ) from None
    common.check_values("x", xs, integer=True)
    if not np.all(np.isfinite(ms)):
        raise ConfigError(
            f"m must be finite; found {int((~np.isfinite(ms)).sum())} NaN/inf value(s)"
        )
    not_positive = (xs > 0) & (ms <= 0)
    if not_positive.any():
        raise ConfigError(
            f"m (mean spend of repeat purchases) must be > 0 for repeat buyers; found "
            f"{int(not_positive.sum())} with m <= 0, e.g. m={ms[not_positive][0]:g}"
        )
    return xs, ms
