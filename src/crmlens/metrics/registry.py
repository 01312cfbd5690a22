"""The metric registry: every declared KPI, validated once at import, looked up by name.

>>> metric("aov").label_zh
'客单价'
>>> metric("retention_7d").days
7
>>> metric("churn_rate_60d").name, metric("churn_rate").days
('churn_rate_60d', 90)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import get_args

from crmlens.errors import ConfigError
from crmlens.metrics.definitions import ALL
from crmlens.metrics.facts import FACTS
from crmlens.metrics.metric import Direction, Metric, TargetHow, Unit

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Longest window a family accepts, in days.
MAX_DAYS = 3660


def check_metric(m: Metric) -> None:
    """:class:`ConfigError` naming the metric and the rule it breaks."""

    def fail(message: str) -> None:
        raise ConfigError(f"metric {m.name!r}: {message}")

    if not _NAME.match(m.name):
        fail("names are lower_snake_case")
    if not (m.label_zh and m.label_en):
        fail("needs Chinese and English labels")
    if not m.description.endswith("."):
        fail("the description is a full definition ending with a period")
    if m.unit not in get_args(Unit):
        fail(f"unknown unit {m.unit!r}")
    if m.direction not in get_args(Direction):
        fail(f"unknown direction {m.direction!r}")
    if not m.facts or any(f not in FACTS for f in m.facts):
        fail(f"facts {m.facts} must be among {', '.join(FACTS)}")
    if not m.dimensions and m.only_dims != ():
        fail("its facts share no dimension")
    stray = [d for d in m.default_dims if d not in m.dimensions]
    if stray:
        fail(f"default dimensions {stray} are not among its dimensions {m.dimensions}")
    if bool(m.target_names) != (m.target_how is not None) or (
        m.target_how is not None and m.target_how not in get_args(TargetHow)
    ):
        fail("target_names and a target_how (sum, last, same) go together")
    if m.family is not None:
        if "{days}" not in m.family or m.vary is None or m.days is None:
            fail("a family needs a {days} name pattern, a vary function and its days")
        elif m.vary(m.days).name != m.name:
            fail(f"vary({m.days}) does not declare {m.name!r}")


def _index(declared: Iterable[Metric]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in declared:
        check_metric(m)
        if m.name in out:
            raise ConfigError(f"metric {m.name!r} is declared twice")
        out[m.name] = m
    return out


#: Every declared KPI by name (families at their default window).
REGISTRY: dict[str, Metric] = _index(ALL)
#: Family name pattern (compiled) → a declaration of the default window, for :func:`metric`.
_FAMILIES = {
    re.compile("^" + re.escape(m.family).replace(re.escape("{days}"), r"(\d+)") + "$"): m
    for m in REGISTRY.values()
    if m.family
}


def metric(name: str) -> Metric:
    """The KPI called ``name``, including other windows of a family (``retention_7d``)."""
    if name in REGISTRY:
        return REGISTRY[name]
    for pattern, base in _FAMILIES.items():
        match = pattern.match(name)
        if match and base.vary is not None:
            days = int(match.group(1))
            if not 1 <= days <= MAX_DAYS:
                raise ConfigError(f"metric {name!r}: the window must be 1..{MAX_DAYS} days")
            declared = base.vary(days)
            check_metric(declared)
            return declared
    families = ", ".join(sorted(m.family for m in _FAMILIES.values() if m.family))
    raise ConfigError(
        f"unknown metric {name!r}; expected one of: {', '.join(REGISTRY)} (windows: {families})"
    )


def metrics(names: Iterable[str | Metric]) -> list[Metric]:
    """The KPIs for names (or declarations, passed through), in order."""
    return [n if isinstance(n, Metric) else metric(n) for n in names]
