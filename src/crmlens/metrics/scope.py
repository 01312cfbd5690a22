"""The scope of a question: which days, at which grain, for which slice of the business.

Every metric query takes exactly one :class:`Scope`, and :func:`crmlens.metrics.facts.scoped` is
the only code that turns it into row filters, so a page cannot forget a filter and a user cannot get
around a row-level restriction.

Time: the warehouse stores timestamps as naive local time of the company (Asia/Shanghai for the
demo; the loaders convert on the way in), so a day is a local calendar day and an order at
2021-01-31 23:30 belongs to January. ``start`` and ``end`` are inclusive days.

Filters and row limits have the same shape (dimension → allowed values). Filters are what the user
picked; ``row_limits`` are what the user may see at all (row-level security, set by the server, not
by the user). Where both name a dimension the allowed values are their intersection, so a filter can
narrow a limit but never widen it.

>>> s = Scope(date(2021, 1, 1), date(2021, 3, 31), "month", row_limits={"region": "华东"})
>>> s.narrow(region=["华东", "华南"]).constraints()
{'region': frozenset({'华东'})}
>>> Scope.parse("2021-01", "2021-Q1", filters=["city=烟台"]).describe()
'2021-01-01..2021-03-31 by month; city=烟台'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import dimension
from crmlens.metrics.periods import Grain, Period, buckets, check_grain, parse_period

#: dimension → allowed values, normalised and sorted so equal scopes compare and hash equal.
Constraints = tuple[tuple[str, frozenset[str]], ...]
ConstraintsInput = Mapping[str, str | Iterable[str]] | Constraints


class NotApplicableError(ConfigError):
    """A metric cannot be filtered or broken down by a dimension (e.g. marketing spend by gender)."""


def _normalise(spec: ConstraintsInput, what: str) -> Constraints:
    items = spec.items() if isinstance(spec, Mapping) else spec
    out: dict[str, frozenset[str]] = {}
    for name, raw in items:
        dimension(name)  # a clear error for an unknown dimension
        values = frozenset([raw] if isinstance(raw, str) else raw)
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{what} on {name!r} needs one or more non-empty values")
        if name in out:
            raise ConfigError(f"{what} on {name!r} given twice")
        out[name] = values
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class Scope:
    """Days ``start`` .. ``end`` (inclusive) at ``grain``, narrowed by filters and row limits."""

    start: date
    end: date
    grain: Grain = "month"
    filters: Constraints = field(default=())
    row_limits: Constraints = field(default=())

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            # datetime is a date subclass; a time of day would be silently ignored, so refuse it
            if not isinstance(value, date) or hasattr(value, "hour"):
                raise ConfigError(f"scope {name} must be a date, got {value!r}")
        if self.start > self.end:
            raise ConfigError(f"scope starts {self.start} after it ends {self.end}")
        check_grain(self.grain)
        object.__setattr__(self, "filters", _normalise(self.filters, "filter"))
        object.__setattr__(self, "row_limits", _normalise(self.row_limits, "row limit"))

    @classmethod
    def parse(
        cls,
        since: str,
        until: str | None = None,
        grain: str = "month",
        filters: Iterable[str] = (),
        row_limits: ConstraintsInput = (),
    ) -> Scope:
        """A scope from text: periods such as ``2021-01`` (``until`` defaults to ``since``'s period)
        and ``dimension=value[,value…]`` filters; a dimension given twice adds values."""
        first = parse_period(since)
        last = parse_period(until) if until else first
        picked: dict[str, set[str]] = {}
        for text in filters:
            name, sep, values = text.partition("=")
            if not sep or not values.strip():
                raise ConfigError(f"cannot read filter {text!r}; expected dimension=value[,value]")
            picked.setdefault(name.strip(), set()).update(
                v.strip() for v in values.split(",") if v.strip()
            )
        return cls(first.start, last.end, check_grain(grain), picked, row_limits)  # type: ignore[arg-type]

    # -- derived scopes ---------------------------------------------------------------------
    def with_range(self, start: date, end: date) -> Scope:
        """The same slice over other days."""
        return replace(self, start=start, end=end)

    def narrow(self, **filters: str | Iterable[str]) -> Scope:
        """Add or replace user filters; row limits still apply (so this can never widen them)."""
        merged = dict(self.filters) | {k: v for k, v in filters.items()}
        return replace(self, filters=merged)  # type: ignore[arg-type]

    def restrict(self, limits: ConstraintsInput) -> Scope:
        """Add row limits; a dimension already limited keeps only values allowed by both."""
        current = dict(self.row_limits)
        for name, values in _normalise(limits, "row limit"):
            current[name] = current[name] & values if name in current else values
        return replace(self, row_limits=tuple(current.items()))

    # -- reading ----------------------------------------------------------------------------
    def constraints(self) -> dict[str, frozenset[str]]:
        """Dimension → the values rows may have: the filters intersected with the row limits.

        An empty set means nothing is visible (a filter outside the user's limits).
        """
        out = dict(self.filters)
        for name, allowed in self.row_limits:
            out[name] = out[name] & allowed if name in out else allowed
        return out

    def periods(self) -> list[Period]:
        """The scope's periods of its grain; the first and last may be clipped to the range."""
        return buckets(self.start, self.end, self.grain)

    @property
    def days(self) -> int:
        """Number of days in the range."""
        return (self.end - self.start).days + 1

    def describe(self) -> str:
        """One line for titles and logs (row limits are not shown: they are not the user's)."""
        text = f"{self.start}..{self.end} by {self.grain}"
        if self.filters:
            text += "; " + ", ".join(f"{k}={','.join(sorted(v))}" for k, v in self.filters)
        return text
