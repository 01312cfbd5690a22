"""Periods, labels and 环比/同比 ranges; Scope validation and the filter ∩ row-limit rule."""

from __future__ import annotations

import doctest
import importlib
from datetime import date, datetime

import pytest

from crmlens.errors import ConfigError
from crmlens.metrics import Scope, parse_period
from crmlens.metrics.periods import (
    add_months,
    buckets,
    last_year_range,
    period_label,
    previous_range,
)


@pytest.mark.parametrize(
    "module",
    [
        "periods",
        "scope",
        "dimensions",
        "metric",
        "query",
        "registry",
        "docs",
        "__init__",
    ],
)
def test_doctests(module: str) -> None:
    name = "crmlens.metrics" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    "day, grain, label",
    [
        (date(2020, 12, 28), "week", "2020-W53"),
        (date(2021, 1, 3), "week", "2020-W53"),  # a Sunday in 2021 still in 2020's last ISO week
        (date(2021, 1, 4), "week", "2021-W01"),
        (date(2019, 12, 30), "week", "2020-W01"),  # a Monday in 2019 already in 2020's first week
        (date(2020, 2, 29), "month", "2020-02"),
        (date(2020, 11, 30), "quarter", "2020-Q4"),
        (date(2020, 2, 29), "day", "2020-02-29"),
        (date(2020, 2, 29), "year", "2020"),
    ],
)
def test_period_labels(day: date, grain: str, label: str) -> None:
    assert period_label(day, grain) == label  # type: ignore[arg-type]
    parsed = parse_period(label)
    assert parsed.start <= day <= parsed.end


def test_parse_period_round_trips_and_rejects_nonsense() -> None:
    assert parse_period("2020-02").end == date(2020, 2, 29)
    assert parse_period("2021-02").end == date(2021, 2, 28)
    assert (parse_period("2021-W01").start, parse_period("2021-W01").end) == (
        date(2021, 1, 4),
        date(2021, 1, 10),
    )
    for bad in ("2021-13", "2021-W54", "2021/01", "yesterday", "2021-02-30"):
        with pytest.raises(ConfigError):
            parse_period(bad)


def test_buckets_clip_the_ends_and_cover_every_day() -> None:
    got = buckets(date(2020, 12, 30), date(2021, 1, 5), "week")
    assert [(p.label, p.start, p.end) for p in got] == [
        ("2020-W53", date(2020, 12, 30), date(2021, 1, 3)),
        ("2021-W01", date(2021, 1, 4), date(2021, 1, 5)),
    ]
    months = buckets(date(2020, 1, 1), date(2020, 12, 31), "month")
    assert sum(p.days for p in months) == 366


@pytest.mark.parametrize(
    "start, end, previous, last_year",
    [
        # whole months move by months, so February's length follows the calendar
        ((2021, 3, 1), (2021, 3, 31), ((2021, 2, 1), (2021, 2, 28)), ((2020, 3, 1), (2020, 3, 31))),
        ((2020, 3, 1), (2020, 3, 31), ((2020, 2, 1), (2020, 2, 29)), ((2019, 3, 1), (2019, 3, 31))),
        ((2021, 2, 1), (2021, 2, 28), ((2021, 1, 1), (2021, 1, 31)), ((2020, 2, 1), (2020, 2, 29))),
        ((2021, 4, 1), (2021, 6, 30), ((2021, 1, 1), (2021, 3, 31)), ((2020, 4, 1), (2020, 6, 30))),
        # any other range moves by its length; last year keeps the dates, Feb 29 → Feb 28
        (
            (2020, 2, 29),
            (2020, 2, 29),
            ((2020, 2, 28), (2020, 2, 28)),
            ((2019, 2, 28), (2019, 2, 28)),
        ),
        (
            (2021, 1, 10),
            (2021, 1, 16),
            ((2021, 1, 3), (2021, 1, 9)),
            ((2020, 1, 10), (2020, 1, 16)),
        ),
    ],
)
def test_previous_and_last_year_ranges(start, end, previous, last_year) -> None:
    s, e = date(*start), date(*end)
    assert previous_range(s, e) == (date(*previous[0]), date(*previous[1]))
    assert last_year_range(s, e) == (date(*last_year[0]), date(*last_year[1]))


def test_last_year_of_whole_weeks_keeps_the_weekday() -> None:
    monday, sunday = date(2021, 1, 4), date(2021, 1, 10)
    first, last = last_year_range(monday, sunday, "week")
    # the same ISO week number: 2021-W01 → 2020-W01 (2020 had 53 weeks, so not 52 weeks back)
    assert (first, last) == (date(2019, 12, 30), date(2020, 1, 5))
    assert period_label(first, "week") == "2020-W01"
    w53 = last_year_range(date(2020, 12, 28), date(2021, 1, 3), "week")
    assert period_label(w53[0], "week") == "2019-W52"


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2021, 1, 31), 1) == date(2021, 2, 28)
    assert add_months(date(2020, 2, 29), 12) == date(2021, 2, 28)
    assert add_months(date(2021, 12, 15), 1) == date(2022, 1, 15)


def test_scope_validates() -> None:
    with pytest.raises(ConfigError, match="after it ends"):
        Scope(date(2021, 2, 1), date(2021, 1, 1))
    with pytest.raises(ConfigError, match="grain"):
        Scope(date(2021, 1, 1), date(2021, 1, 31), "fortnight")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown dimension"):
        Scope(date(2021, 1, 1), date(2021, 1, 31), filters={"colour": "red"})
    with pytest.raises(ConfigError, match="non-empty"):
        Scope(date(2021, 1, 1), date(2021, 1, 31), filters={"city": []})
    with pytest.raises(ConfigError, match="must be a date"):
        Scope(datetime(2021, 1, 1, 12), date(2021, 1, 31))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dimension=value"):
        Scope.parse("2021-01", filters=["city"])


def test_scope_is_frozen_hashable_and_normalised() -> None:
    a = Scope(
        date(2021, 1, 1), date(2021, 1, 31), filters={"city": ["青岛", "烟台"], "tier": "白金"}
    )
    b = Scope(
        date(2021, 1, 1), date(2021, 1, 31), filters={"tier": ["白金"], "city": ["烟台", "青岛"]}
    )
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.start = date(2020, 1, 1)  # type: ignore[misc]
    parsed = Scope.parse("2021-Q1", filters=["city=烟台,青岛", "city=济南", "tier=白金"])
    assert parsed.constraints() == {"city": {"烟台", "青岛", "济南"}, "tier": {"白金"}}
    assert (parsed.start, parsed.end, parsed.grain) == (
        date(2021, 1, 1),
        date(2021, 3, 31),
        "month",
    )


def test_row_limits_cannot_be_widened() -> None:
    limited = Scope(date(2021, 1, 1), date(2021, 1, 31), row_limits={"region": ["华东"]})
    assert limited.narrow(region=["华东", "华南"]).constraints() == {"region": {"华东"}}
    assert limited.narrow(region="华南").constraints() == {"region": frozenset()}
    # replacing the filters or the range keeps the limits
    assert limited.narrow(city="烟台").with_range(date(2020, 1, 1), date(2020, 1, 31)).row_limits
    # a further restriction intersects with the existing one
    tighter = limited.restrict({"region": ["华东", "华北"], "store": "S01"})
    assert tighter.constraints() == {"region": {"华东"}, "store": {"S01"}}
    assert "华东" not in limited.describe()  # limits are not the user's: not in titles
