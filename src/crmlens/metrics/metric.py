"""The shape of a KPI declaration: what it means, how to show it, and how to build it.

Declarations are data (:mod:`crmlens.metrics.definitions`); the registry validates them once at
import, and the docs, CLI and UI labels are generated from them.

>>> FORMATS["ratio"](0.1234), FORMATS["money"](1234.5), FORMATS["count"](None)
('12.3%', '¥1,234.50', '—')
>>> PER_MILLE(0.0034)
'3.40‰'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ibis.expr.types import Table

from crmlens.metrics.dimensions import DIMENSIONS
from crmlens.metrics.facts import FACTS
from crmlens.metrics.query import Query

Unit = Literal["count", "money", "ratio", "days", "hours", "score"]
Direction = Literal["up", "down"]
TargetHow = Literal["sum", "last", "same"]
Builder = Callable[[Query], Table]


@dataclass(frozen=True)
class Format:
    """How a value is printed: scaled, rounded, with a prefix and suffix."""

    decimals: int = 0
    scale: float = 1.0
    prefix: str = ""
    suffix: str = ""

    def __call__(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return f"{self.prefix}{value * self.scale:,.{self.decimals}f}{self.suffix}"


#: The default format of each unit.
FORMATS: dict[str, Format] = {
    "count": Format(0),
    "money": Format(2, prefix="¥"),
    "ratio": Format(1, 100.0, suffix="%"),
    "days": Format(1, suffix=" d"),
    "hours": Format(1, suffix=" h"),
    "score": Format(1),
}
#: Complaint-style rates read better per thousand.
PER_MILLE = Format(2, 1000.0, suffix="‰")


@dataclass(frozen=True)
class Metric:
    """One KPI, declared as data."""

    name: str
    label_zh: str
    label_en: str
    #: The precise definition (rendered into docs/metrics.md).
    description: str
    unit: Unit
    #: Builds the Ibis expression: ``period_id``, the query's dimensions, ``value``.
    builder: Builder
    #: The facts (:data:`crmlens.metrics.facts.FACTS`) it reads; it supports the dimensions all
    #: of them support, unless ``only_dims`` narrows them.
    facts: tuple[str, ...]
    #: The docs section: Sales, Customers, Marketing, Service, Targets.
    group: str
    direction: Direction = "up"
    format: Format | None = None
    #: A count or total: 0 in a period without rows, and a share of the total in breakdowns.
    #: Everything else (rates, averages) is None when there is nothing to measure.
    additive: bool = False
    #: The dimensions the dashboard offers first for this KPI.
    default_dims: tuple[str, ...] = ()
    #: Limits the dimensions derived from ``facts`` (targets exist only per region/city/store).
    only_dims: tuple[str, ...] | None = None
    #: ``targets.metric`` names holding this KPI's targets, and how they add up over time.
    target_names: tuple[str, ...] = ()
    target_how: TargetHow | None = None
    #: The window in days, for KPIs that have one (retention, churn, activity, LTV).
    days: int | None = None
    #: The name pattern of the family, e.g. ``retention_{days}d``: ``retention_7d`` is the same
    #: KPI with a 7-day window, declared by ``vary(7)``.
    family: str | None = None
    vary: Callable[[int], Metric] | None = None

    @property
    def fmt(self) -> Format:
        """The format values are printed with."""
        return self.format or FORMATS[self.unit]

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions it can be filtered and broken down by: those all its facts reach."""
        out = tuple(d for d in DIMENSIONS if all(FACTS[f].supports(d) for f in self.facts))
        return out if self.only_dims is None else tuple(d for d in out if d in self.only_dims)

    @property
    def change(self) -> Literal["relative", "absolute"]:
        """How a change between two periods is expressed: relative (+15 %) for counts, money and
        durations; absolute (percentage points, score points) for rates and scores."""
        return "absolute" if self.unit in ("ratio", "score") else "relative"

    @property
    def empty_value(self) -> float | None:
        """The value of a period without any rows: 0 for counts and totals, else None."""
        return 0.0 if self.additive else None

    def format_change(self, change: float | None) -> str:
        """A change as shown next to the value: ``+15.0%``, ``-3.0pp`` (percentage points of a
        rate) or ``+2.0`` (score points); ``—`` when there is none."""
        if change is None or (isinstance(change, float) and math.isnan(change)):
            return "—"
        if self.change == "relative":
            return f"{change:+.1%}"
        if self.unit == "ratio":
            return f"{change * self.fmt.scale:+.{self.fmt.decimals}f}" + (
                "pp" if self.fmt.scale == 100 else self.fmt.suffix
            )
        return f"{change:+.{self.fmt.decimals}f}"

    def attainment(self, value: float | None, target: float | None) -> float | None:
        """``value / target`` (1.05 = 105 % of target); None without a value or a non-zero target."""
        if value is None or target is None or target == 0:
            return None
        return value / target

    def is_met(self, value: float | None, target: float | None) -> bool | None:
        """Whether ``value`` meets ``target``, given the direction that is good."""
        if value is None or target is None:
            return None
        return value >= target if self.direction == "up" else value <= target
