"""``docs/metrics.md``, rendered from the declarations (a test fails when the file is stale).

>>> "## Dimensions" in render_markdown()
True
"""

from __future__ import annotations

from crmlens.metrics.dimensions import DIMENSIONS, OTHER, UNKNOWN
from crmlens.metrics.metric import Metric
from crmlens.metrics.periods import GRAINS
from crmlens.metrics.query import TARGET_DIMENSIONS
from crmlens.metrics.registry import REGISTRY

_TARGET_HOW = {
    "sum": "added up over the target periods inside the period, which must cover all of its days",
    "last": "the target of the period ending on the period's last day",
    "same": "the target of exactly the period",
}

#: A value per unit to show the format with.
_SAMPLE = {
    "count": 1234,
    "money": 1234.5,
    "ratio": 0.0456,
    "days": 12.5,
    "hours": 12.5,
    "score": 4.25,
}

# The rules every definition below relies on; kept next to the renderer so the page states them
# once instead of in every description.
_CONVENTIONS = (
    "**Time.** Timestamps are naive local time of the company (Asia/Shanghai for the demo); a "
    "day is a local calendar day. A scope covers whole days, `start` and `end` inclusive.",
    f"**Periods.** Grains: {', '.join(GRAINS)}. Weeks are ISO weeks (Monday to Sunday, numbered "
    "by the ISO year of their Thursday: 2020-12-28..2021-01-03 is 2020-W53); quarters are "
    "calendar quarters. In a time series the first and last periods are clipped to the scope.",
    "**Orders.** A completed order is an `orders` row that is not a refund (`is_refund` false); "
    "a refund is a row with `is_refund` true and a negative `amount`, dated when refunded. "
    "Amounts are paid amounts after discounts, in one currency.",
    "**Empty periods.** Counts and totals are 0 in a period without rows; rates, averages and "
    "percentiles are None (shown —) when there is nothing to measure.",
    "**环比 / 同比.** The previous period of a whole-month range is the same number of months "
    "before (2021-03 → 2021-02, Q2 → Q1), of any other range the same number of days just "
    "before. The same period last year of whole months is the same months (2021-02 → "
    "2020-02-01..2020-02-29); of whole ISO weeks at week grain the same ISO week number a year "
    "earlier (W53 → W52 when that year had 52 weeks); otherwise the "
    "same dates, Feb 29 becoming Feb 28. Changes are relative (value / base − 1) for counts, "
    "money and durations and absolute (percentage points, score points) for rates and scores.",
    "**Dimensions.** Missing values are grouped as "
    f"{UNKNOWN} (a walk-in order has no customer, so no region), so breakdowns add up to the "
    f"total. A top-N breakdown folds the other values of its first dimension into {OTHER}; "
    f"every KPI of {OTHER} is computed on its own rows. The values kept are those with the "
    "highest value of the KPI ranked by (missing values last, ties by the value's name). When "
    "every KPI asked is one aggregate over the same rows and there is one dimension, the "
    "ranking and the fold are one query: the ranking is a subquery over the same rows, which "
    "are scanned and joined once (unless the same breakdown folded nothing last time: then it "
    "is ranked alone, and folded in a second query only if there is now more). A KPI cannot "
    "be filtered by a dimension its facts do not "
    "reach: asking for it is an error, never a silently ignored filter.",
    "**Scope.** Filters and row limits (row-level security) are dimension → allowed values; "
    "where both name a dimension the intersection applies, so a filter cannot widen a limit.",
    "**Targets.** From the `targets` table (metric, period YYYY-MM / YYYY-Qn / YYYY, dimension, "
    f"dimension value), for the whole company (`all`) or per {', '.join(TARGET_DIMENSIONS)}. "
    "Attainment = value / target; met = value ≥ target for KPIs where up is good, ≤ where down "
    "is good.",
)


def _metric_section(m: Metric) -> list[str]:
    facts = ", ".join(f"`{f}`" for f in m.facts)
    lines = [
        f"### `{m.name}` — {m.label_zh} / {m.label_en}",
        "",
        m.description,
        "",
        f"- Unit: {m.unit}, shown as {m.fmt(_SAMPLE[m.unit])}; "
        f"good direction: {m.direction}; empty period: "
        f"{'0' if m.empty_value is not None else 'None'}; change: {m.change}.",
        f"- Reads: {facts}. Dimensions: {', '.join(m.dimensions)}.",
    ]
    if m.default_dims:
        lines.append(f"- Default breakdowns: {', '.join(m.default_dims)}.")
    if m.target_names and m.target_how:
        names = ", ".join(f"`{n}`" for n in m.target_names)
        lines.append(f"- Targets: rows with metric {names}; {_TARGET_HOW[m.target_how]}.")
    if m.family:
        lines.append(
            f"- Window: {m.days} days; other windows by name, e.g. `{m.family.format(days=7)}`."
        )
    return [*lines, ""]


def render_markdown() -> str:
    """The whole page."""
    lines = [
        "# Metrics",
        "",
        "Generated from the declarations in `src/crmlens/metrics/definitions/` by "
        "`crmlens docs`; do not edit by hand.",
        "",
        "## Conventions",
        "",
        *[f"- {rule}" for rule in _CONVENTIONS],
        "",
        "## Dimensions",
        "",
        "| name | 中文 | English | meaning |",
        "|---|---|---|---|",
        *[
            f"| `{d.name}` | {d.label_zh} | {d.label_en} | {d.description} |"
            for d in DIMENSIONS.values()
        ],
        "",
    ]
    groups: dict[str, list[Metric]] = {}
    for m in REGISTRY.values():
        groups.setdefault(m.group, []).append(m)
    for group, members in groups.items():
        lines += [f"## {group}", ""]
        for m in members:
            lines += _metric_section(m)
    return "\n".join(lines).rstrip()
