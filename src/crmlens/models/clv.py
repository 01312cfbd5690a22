"""Customer lifetime value: BG/NBD for purchases, Gamma-Gamma for spend, and the RFM summary.

Typical use, with histories in weeks::

    summary = summarise_transactions(ids, times, amounts, observation_end="2011-12-09")
    bg = BetaGeoModel().fit(summary["x"], summary["t_x"], summary["T"])
    gg = GammaGammaModel().fit(summary["x"], summary["monetary"])
    clv = gg.customer_lifetime_value(bg, summary["x"], summary["t_x"], summary["T"],
                                     summary["monetary"], horizon_months=12)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from crmlens.errors import ConfigError
from crmlens.models.bgnbd import BetaGeoModel
from crmlens.models.gamma_gamma import GammaGammaModel

__all__ = ["BetaGeoModel", "GammaGammaModel", "summarise_transactions"]


def summarise_transactions(
    customer_ids: ArrayLike,
    times: ArrayLike,
    amounts: ArrayLike | None = None,
    *,
    observation_end: Any,
    time_unit_days: float = 7,
) -> pd.DataFrame:
    """One row per customer: repeat purchases ``x``, recency ``t_x``, age ``T`` and ``monetary``.

    ``times`` are datetimes (or ISO 8601 strings); ``amounts`` may be omitted, and then so is the
    ``monetary`` column.

    The conventions are lifetimes' ``summary_data_from_transaction_data(freq="D",
    freq_multiplier=time_unit_days)``: transactions after ``observation_end`` (a date; its day is
    included) are dropped; purchases on the same calendar day count as one, worth their summed
    amount; ``x`` counts purchase days after the first; ``t_x`` and ``T`` are the whole days from
    the first purchase day to the last one and to ``observation_end``, divided by
    ``time_unit_days``; ``monetary`` is the mean value of the repeat purchase days (the first day
    excluded), 0 when ``x = 0``. Rows are sorted by customer id.

    >>> s = summarise_transactions(
    ...     ["a", "a", "a", "b"],
    ...     ["2024-01-01 09:00", "2024-01-01 17:00", "2024-01-15", "2024-01-08"],
    ...     [10.0, 5.0, 30.0, 7.0],
    ...     observation_end="2024-01-29",
    ... )
    >>> s.loc["a"].tolist(), s.loc["b"].tolist()
    ([1.0, 2.0, 4.0, 30.0], [0.0, 0.0, 3.0, 0.0])
    """
    if not (np.isfinite(time_unit_days) and time_unit_days > 0):
        raise ConfigError(f"time_unit_days must be a number > 0; got {time_unit_days!r}")
    ids = np.asarray(customer_ids)
    try:
        stamps = pd.Series(times, copy=False)
        if not pd.api.types.is_datetime64_any_dtype(stamps):
            stamps = pd.to_datetime(stamps, format="ISO8601")
        end_day = pd.Timestamp(observation_end).to_datetime64().astype("datetime64[D]")
    except (TypeError, ValueError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(
            "times and observation_end must be datetimes or ISO 8601 strings (parse other "
            f"formats with pd.to_datetime(..., format=...) first): {first_line}"
        ) from None
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)  # wall-clock days, as the shop saw them
    days = stamps.to_numpy().astype("datetime64[D]")
    values = np.zeros(ids.shape) if amounts is None else np.asarray(amounts, dtype=np.float64)
    if not (ids.shape == days.shape == values.shape and ids.ndim == 1):
        raise ConfigError(
            "customer_ids, times and amounts must be 1-D and of the same length; got "
            f"{ids.shape}, {days.shape} and {values.shape}"
        )
    for name, missing in (
        ("customer_ids", pd.isna(ids)),
        ("times", np.isnat(days)),
        ("amounts", ~np.isfinite(values)),
    ):
        if missing.any():
            raise ConfigError(f"{name} has {int(missing.sum())} missing or non-finite value(s)")

    keep = days <= end_day
    columns = ["x", "t_x", "T"] + ([] if amounts is None else ["monetary"])
    if not keep.any():
        return pd.DataFrame(
            {c: np.zeros(0) for c in columns}, index=pd.Index(ids[:0], name="customer_id")
        )
    customers, codes = np.unique(ids[keep], return_inverse=True)
    day = (days[keep] - end_day).astype(np.int64)  # <= 0: days before the end
    # one entry per (customer, purchase day), sorted by customer then day
    span = int(-day.min()) + 1
    keys, per_key = np.unique(codes.astype(np.int64) * span + (day + span - 1), return_inverse=True)
    day_value = np.bincount(per_key, weights=values[keep], minlength=keys.size)
    key_customer = keys // span
    key_day = keys % span - (span - 1)
    first = np.searchsorted(key_customer, np.arange(customers.size))
    last = np.append(first[1:], keys.size) - 1
    x = (last - first).astype(np.float64)
    total = np.bincount(key_customer, weights=day_value, minlength=customers.size)
    repeat_value = total - day_value[first]
    monetary = np.divide(repeat_value, x, out=np.zeros_like(x), where=x > 0)
    frame = pd.DataFrame(
        {
            "x": x,
            "t_x": (key_day[last] - key_day[first]) / time_unit_days,
            "T": -key_day[first] / time_unit_days,
            "monetary": monetary,
        },
        index=pd.Index(customers, name="customer_id"),
    )
    return frame[columns]
