"""The demo company's calendar: when customers sign up, shop and leave.

Everything time-dependent in the demo is a day-level (or month-level) factor shared by all customers,
so a customer's behaviour is "their own rate × the common calendar". Sampling order times then needs
only the cumulative intensity of the calendar (see :class:`Calendar`), which keeps generation
vectorised: a time is an inverse-CDF lookup with ``np.searchsorted``.

The story told by these factors follows seed 000: a weekend peak, Spring Festival and Q4 peaks, and a
COVID dip from 2020-10 to 2021-02 (fewer sign-ups and visits, larger baskets, more churn) that
recovers from 2021-03.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

# Spring Festival (春节) dates: shopping peaks in the three weeks before, drops during the holiday.
SPRING_FESTIVAL = (date(2019, 2, 5), date(2020, 1, 25), date(2021, 2, 12), date(2022, 2, 1))

# The planted COVID dip (inclusive months) and the recovery that follows.
DIP_FIRST = pd.Period("2020-10", "M")
DIP_LAST = pd.Period("2021-02", "M")
RECOVERY_FIRST = pd.Period("2021-03", "M")
RECOVERY_LAST = pd.Period("2021-06", "M")

# Shopping intensity by weekday (Mon..Sun): weekends peak.
WEEKDAY_FACTOR = np.array([0.88, 0.86, 0.88, 0.92, 1.02, 1.40, 1.32])
# Month-of-year factor: Q4 and the run-up to the holidays are busier, summer a little quieter.
MONTH_FACTOR = np.array([1.05, 0.98, 0.95, 0.95, 1.00, 0.96, 0.95, 0.96, 1.00, 1.06, 1.12, 1.20])
# Orders per active member during the dip, relative to normal (visits fall, baskets grow).
DIP_VISIT_FACTOR = 0.62
DIP_BASKET_FACTOR = 1.22
# New sign-ups during the dip relative to trend, and the recovery ramp that follows.
DIP_SIGNUP_FACTOR = 0.60
# Churn hazard multiplier on the day of a customer's last order. Churn shows 90 days after the last
# order, so the hazard is raised 3 months before the dip months to make churn peak inside the dip.
CHURN_DIP_FACTOR = 1.9
CHURN_RECOVERY_FACTOR = 0.6


@dataclass(frozen=True)
class Calendar:
    """Day-level factors over the demo period and their cumulative sums.

    ``days[i]`` is day ``i``; ``visit[i]`` the relative shopping intensity that day;
    ``cum_visit[i]`` the intensity summed over days ``< i`` (length ``n_days + 1``), so a customer
    active on days ``[a, b)`` with rate ``r`` per unit intensity expects ``r * (cum[b] - cum[a])``
    orders. ``cum_hazard`` does the same for the churn hazard.
    """

    days: pd.DatetimeIndex
    visit: np.ndarray
    cum_visit: np.ndarray
    basket: np.ndarray
    hazard: np.ndarray
    cum_hazard: np.ndarray
    month_index: np.ndarray  # day -> month number 0..n_months-1
    months: pd.PeriodIndex

    @property
    def n_days(self) -> int:
        """Number of days in the period."""
        return len(self.days)

    def day_of(self, when: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Day index (0-based, may fall outside ``[0, n_days)``) of timestamps."""
        values = np.asarray(when, dtype="datetime64[ns]").astype("datetime64[D]")
        return (values - np.datetime64(self.days[0].date(), "D")).astype(np.int64)


def _spring_festival_factor(days: pd.DatetimeIndex) -> np.ndarray:
    """1.0 except 3 weeks of festive shopping before 春节 and a quiet week from it."""
    factor = np.ones(len(days))
    day_values = days.values.astype("datetime64[D]")
    for festival in SPRING_FESTIVAL:
        offset = (day_values - np.datetime64(festival, "D")).astype(np.int64)
        factor[(offset >= -21) & (offset < 0)] *= 1.45
        factor[(offset >= 0) & (offset < 7)] *= 0.70
    return factor


def _in_months(days: pd.DatetimeIndex, first: pd.Period, last: pd.Period) -> np.ndarray:
    periods = days.to_period("M")
    return np.asarray((periods >= first) & (periods <= last))


def build_calendar(start: date, end: date) -> Calendar:
    """The shared calendar for ``start..end`` (both inclusive)."""
    days = pd.date_range(start, end, freq="D")
    years = (days - pd.Timestamp(start)).days.to_numpy() / 365.25
    trend = 1.0 + 0.04 * years  # the chain grows a little every year
    visit = (
        WEEKDAY_FACTOR[days.day_of_week.to_numpy()]
        * MONTH_FACTOR[days.month.to_numpy() - 1]
        * _spring_festival_factor(days)
        * trend
    )
    dip = _in_months(days, DIP_FIRST, DIP_LAST)
    visit = np.where(dip, visit * DIP_VISIT_FACTOR, visit)
    basket = np.where(dip, DIP_BASKET_FACTOR, 1.0)

    hazard = np.ones(len(days))
    hazard[_in_months(days, DIP_FIRST - 3, DIP_LAST - 3)] = CHURN_DIP_FACTOR
    hazard[_in_months(days, DIP_LAST - 2, pd.Period(end, "M"))] = CHURN_RECOVERY_FACTOR

    months = pd.period_range(start, end, freq="M")
    month_index = ((days.year - start.year) * 12 + days.month - start.month).to_numpy()
    return Calendar(
        days=days,
        visit=visit,
        cum_visit=np.concatenate([[0.0], np.cumsum(visit)]),
        basket=basket,
        hazard=hazard,
        cum_hazard=np.concatenate([[0.0], np.cumsum(hazard)]),
        month_index=month_index,
        months=months,
    )


def signup_month_factor(months: pd.PeriodIndex) -> np.ndarray:
    """Relative number of new members per month: trend, season, the dip and its recovery."""
    index = np.arange(len(months))
    month_of_year = np.asarray(months.month) - 1
    trend = 1.0 + 0.05 * index / 12
    season = np.array([1.15, 1.10, 0.95, 0.95, 1.00, 0.95, 0.95, 0.97, 1.00, 1.02, 1.05, 1.08])
    factor = trend * season[month_of_year]
    dip = np.asarray((months >= DIP_FIRST) & (months <= DIP_LAST))
    factor[dip] *= DIP_SIGNUP_FACTOR
    recovering = np.asarray(months >= RECOVERY_FIRST)
    # recovery ramps from 80 % to 100 % of trend over the rest of 2021
    ramp = np.clip(0.80 + 0.025 * (index - index[recovering].min()), 0.80, 1.0)
    factor[recovering] *= ramp[recovering]
    return factor
