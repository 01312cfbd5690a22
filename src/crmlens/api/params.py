"""Query parameters shared by the endpoints, validated before anything reaches a query.

The scope of a request is ``start`` and ``end`` (YYYY-MM-DD, inclusive; default: the first and last
day with an order), ``grain`` and any number of ``filter=dimension:value[,value…]`` parameters
(repeat the parameter for several dimensions; a dimension given twice adds values). Unknown
dimensions, malformed filters, reversed or out-of-range dates and ranges with too many periods are
rejected with 422 before a query is built: every value then only ever reaches the database as a
literal compared in an Ibis expression, never as SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import DIMENSIONS
from crmlens.metrics.periods import GRAINS
from crmlens.metrics.registry import metric
from crmlens.metrics.scope import Scope

#: Dates outside these are refused (a typo such as 0021-01-01 would otherwise scan centuries).
EARLIEST = date(1900, 1, 1)
LATEST = date(2100, 12, 31)
#: The most periods one request may ask for (e.g. 2 years by day is 731).
MAX_PERIODS = 1100
_DAYS_PER = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}
_FILTER = re.compile(r"^(?P<dim>[a-z_]+):(?P<values>.+)$")

GrainName = StrEnum("GrainName", {g: g for g in GRAINS})  # type: ignore[misc]
DimensionName = StrEnum("DimensionName", {d: d for d in DIMENSIONS})  # type: ignore[misc]


def invalid(field: str, message: str, value: Any = None, where: str = "query") -> None:
    """Raise the 422 FastAPI gives for a bad parameter, with ``message`` as its reason."""
    raise RequestValidationError(
        [{"type": "value_error", "loc": (where, field), "msg": message, "input": value}]
    )


@dataclass(frozen=True)
class ScopeParams:
    """The scope parameters as given (``None`` dates are filled from the data by the app)."""

    start: date | None
    end: date | None
    grain: str
    filters: tuple[tuple[str, frozenset[str]], ...]

    def scope(self, default: Scope | None, row_limits: Any = ()) -> Scope:
        """The :class:`Scope`, with missing dates from ``default`` (needed only when a date is
        missing) and the server's row limits; 422 when the range is reversed or has more than
        :data:`MAX_PERIODS` periods."""
        start = self.start or default.start  # type: ignore[union-attr]
        end = self.end or default.end  # type: ignore[union-attr]
        if start > end:
            invalid("start", f"start {start} is after end {end}", str(start))
        periods = ((end - start).days + 1) / _DAYS_PER[self.grain]
        if periods > MAX_PERIODS:
            invalid(
                "grain",
                f"{start}..{end} by {self.grain} is about {int(periods)} periods; at most "
                f"{MAX_PERIODS} are allowed — choose a coarser grain or a shorter range",
                self.grain,
            )
        try:
            return Scope(start, end, self.grain, self.filters, row_limits)  # type: ignore[arg-type]
        except ConfigError as exc:
            invalid("filter", str(exc))
            raise  # unreachable: invalid() raises


def _check_date(name: str, value: date | None) -> None:
    if value is not None and not EARLIEST <= value <= LATEST:
        invalid(name, f"{name} must be between {EARLIEST} and {LATEST}", str(value))


def parse_filters(texts: list[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    """``["region:华东,华南", "tier:白金"]`` → normalised constraints; 422 naming the bad one."""
    picked: dict[str, set[str]] = {}
    for text in texts:
        match = _FILTER.match(text.strip())
        if not match:
            invalid(
                "filter", f"cannot read filter {text!r}; expected dimension:value[,value]", text
            )
            continue
        name = match["dim"]
        if name not in DIMENSIONS:
            invalid(
                "filter",
                f"unknown dimension {name!r}; expected one of: {', '.join(DIMENSIONS)}",
                text,
            )
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if not values or any(len(v) > 100 for v in values):
            invalid("filter", f"filter {text!r} needs values of 1 to 100 characters", text)
        picked.setdefault(name, set()).update(values)
    return tuple(sorted((k, frozenset(v)) for k, v in picked.items()))


def scope_params(
    start: Annotated[
        date | None, Query(description="First day (YYYY-MM-DD); default: the first order's day.")
    ] = None,
    end: Annotated[
        date | None, Query(description="Last day, inclusive; default: the last order's day.")
    ] = None,
    grain: Annotated[GrainName, Query(description="Period length for series.")] = GrainName.month,  # type: ignore[attr-defined]
    filter: Annotated[
        list[str],
        Query(
            description=(
                "dimension:value[,value…], repeatable, e.g. filter=region:华东&filter=tier:白金,黄金. "
                f"Dimensions: {', '.join(DIMENSIONS)}."
            ),
            max_length=200,
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> ScopeParams:
    """The scope parameters of every scoped endpoint."""
    _check_date("start", start)
    _check_date("end", end)
    if len(filter) > 20:
        invalid("filter", f"at most 20 filters, got {len(filter)}", len(filter))
    return ScopeParams(start, end, str(grain.value), parse_filters(filter))


def check_metrics(names: list[str], field: str = "metric") -> list[str]:
    """``names`` if every one is a known KPI (``retention_7d`` style windows included), else 422."""
    for name in names:
        try:
            metric(name)
        except ConfigError as exc:
            invalid(field, str(exc), name)
    return names


def check_dims(names: list[str], field: str = "by", most: int = 3) -> list[str]:
    """Distinct dimension names, at most ``most``, else 422."""
    if len(names) > most or len(set(names)) != len(names):
        invalid(field, f"give up to {most} distinct dimensions, got {names}", names)
    return names


#: The scope parameters as a FastAPI dependency, for handler signatures.
Scoped = Annotated[ScopeParams, Depends(scope_params)]
