"""Calendar periods: grains, labels, buckets, and the previous (环比) and last-year (同比) ranges.

Dates are calendar days in the company's local time (see :mod:`crmlens.metrics.scope`). Weeks are
ISO weeks: they start on Monday and belong to the ISO year of their Thursday, so 2020-12-28 ..
2021-01-03 is ``2020-W53``.

>>> period_label(date(2021, 1, 3), "week")
'2020-W53'
>>> [p.label for p in buckets(date(2021, 1, 15), date(2021, 3, 10), "month")]
['2021-01', '2021-02', '2021-03']
>>> previous_range(date(2021, 3, 1), date(2021, 3, 31))
(datetime.date(2021, 2, 1), datetime.date(2021, 2, 28))
>>> last_year_range(date(2021, 2, 1), date(2021, 2, 28))
(datetime.date(2020, 2, 1), datetime.date(2020, 2, 29))
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, get_args

from crmlens.errors import ConfigError

Grain = Literal["day", "week", "month", "quarter", "year"]
GRAINS: tuple[str, ...] = get_args(Grain)
_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """A labelled, inclusive range of days (``end`` is the period's last day)."""

    label: str
    start: date
    end: date

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1


def check_grain(grain: str) -> Grain:
    """``grain`` if it is one of :data:`GRAINS`, else :class:`ConfigError`."""
    if grain not in GRAINS:
        raise ConfigError(f"unknown grain {grain!r}; expected one of: {', '.join(GRAINS)}")
    return grain  # type: ignore[return-value]


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the month's last day (Feb 29 → Feb 28).

    >>> add_months(date(2020, 2, 29), -12)
    datetime.date(2019, 2, 28)
    """
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def period_start(day: date, grain: Grain) -> date:
    """First day of the period of ``grain`` that contains ``day``."""
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=day.weekday())
    months = _MONTHS[grain]
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def period_end(day: date, grain: Grain) -> date:
    """Last day of the period of ``grain`` that contains ``day``."""
    return next_start(period_start(day, grain), grain) - _ONE_DAY


def next_start(start: date, grain: Grain) -> date:
    """First day of the period after the one starting on ``start``."""
    if grain == "day":
        return start + _ONE_DAY
    if grain == "week":
        return start + timedelta(days=7)
    return add_months(start, _MONTHS[grain])


def period_label(day: date, grain: Grain) -> str:
    """The label of the period containing ``day``: 2021-01-05, 2021-W01, 2021-01, 2021-Q1, 2021."""
    if grain == "day":
        return day.isoformat()
    if grain == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grain == "month":
        return f"{day.year}-{day.month:02d}"
    if grain == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


_PATTERNS: tuple[tuple[re.Pattern[str], Grain], ...] = (
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "day"),
    (re.compile(r"^(\d{4})-W(\d{2})$"), "week"),
    (re.compile(r"^(\d{4})-(\d{1,2})$"), "month"),
    (re.compile(r"^(\d{4})-Q([1-4])$"), "quarter"),
    (re.compile(r"^(\d{4})$"), "year"),
)


def parse_period(text: str) -> Period:
    """A period written as ``2021-01-05``, ``2021-W05``, ``2021-01``, ``2021-Q1`` or ``2021``.

    >>> parse_period("2020-Q1").end
    datetime.date(2020, 3, 31)
    >>> parse_period("2020-W53").start
    datetime.date(2020, 12, 28)
    """
    value = text.strip()
    for pattern, grain in _PATTERNS:
        match = pattern.match(value)
        if not match:
            continue
        parts = [int(g) for g in match.groups()]
        try:
            if grain == "day":
                start = date(*parts)
            elif grain == "week":
                start = date.fromisocalendar(parts[0], parts[1], 1)
            elif grain == "month":
                start = date(parts[0], parts[1], 1)
            elif grain == "quarter":
                start = date(parts[0], parts[1] * 3 - 2, 1)
            else:
                start = date(parts[0], 1, 1)
        except ValueError as exc:
            raise ConfigError(f"invalid period {text!r}: {exc}") from None
        return Period(period_label(start, grain), start, period_end(start, grain))
    raise ConfigError(
        f"cannot read period {text!r}; expected YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY-Qn or YYYY"
    )


def buckets(start: date, end: date, grain: Grain) -> list[Period]:
    """The periods of ``grain`` covering ``start`` .. ``end``; the first and last are clipped."""
    out = []
    cursor = period_start(start, grain)
    while cursor <= end:
        following = next_start(cursor, grain)
        out.append(
            Period(period_label(cursor, grain), max(cursor, start), min(following - _ONE_DAY, end))
        )
        cursor = following
    return out


def _whole_months(start: date, end: date) -> int:
    """Number of whole calendar months ``start`` .. ``end`` spans, or 0 if it is not whole months."""
    if start.day != 1 or end + _ONE_DAY != period_start(end + _ONE_DAY, "month"):
        return 0
    return (end.year - start.year) * 12 + end.month - start.month + 1


def previous_range(start: date, end: date) -> tuple[date, date]:
    """The range just before (环比): the previous whole months for a whole-month range (March →
    February, Q2 → Q1), otherwise the same number of days immediately before."""
    months = _whole_months(start, end)
    if months:
        return add_months(start, -months), start - _ONE_DAY
    length = end - start + _ONE_DAY
    return start - length, start - _ONE_DAY


def last_year_range(start: date, end: date, grain: Grain = "day") -> tuple[date, date]:
    """The same period a year earlier (同比).

    Whole months map to the same months (2021-02 → 2020-02-01 .. 2020-02-29); whole ISO weeks at
    week grain to the same ISO week number a year earlier (2021-W01 → 2020-W01; W53 → W52 when the
    year before had 52 weeks), so weekdays line up; any other range keeps its calendar dates, with
    Feb 29 becoming Feb 28.
    """
    months = _whole_months(start, end)
    if months:
        first = add_months(start, -12)
        return first, add_months(first, months) - _ONE_DAY
    if grain == "week" and start.weekday() == 0 and end.weekday() == 6:
        year, week, _ = start.isocalendar()
        last_weeks = date(year - 1, 12, 28).isocalendar()[1]  # 52 or 53
        first = date.fromisocalendar(year - 1, min(week, last_weeks), 1)
        return first, first + (end - start)
    return add_months(start, -12), add_months(end, -12)
