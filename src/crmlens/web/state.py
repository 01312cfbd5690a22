"""What a dashboard view shows, kept in the URL so that a view can be shared and bookmarked.

The URL's query string is the single source of truth: the filter bar writes it, cross-filter clicks
write it, and every page reads its :class:`View` from it. Unknown or malformed parameters are
dropped (a mistyped link still opens a page), never passed on to a query.

>>> v = View.parse("?from=2021-01&to=2021-06&grain=quarter&city=烟台&tier=白金,黄金&lang=en")
>>> v.lang, v.grain, v.filters()
('en', 'quarter', {'city': ('烟台',), 'tier': ('白金', '黄金')})
>>> View.parse(v.query()) == v
True
>>> v.scope().describe()
'2021-01-01..2021-06-30 by quarter; city=烟台, tier=白金,黄金'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import parse_qsl, urlencode

from crmlens.metrics import GRAINS, Scope
from crmlens.metrics.periods import parse_period
from crmlens.web.i18n import DEFAULT_LANG, check_lang

#: The filter-bar dimensions, in order; region → city → store is the drill-down path.
FILTER_DIMS: tuple[str, ...] = ("region", "city", "store", "customer_type", "channel", "tier")
#: The geographic drill-down: each level's next one.
DRILL: dict[str | None, str] = {None: "region", "region": "city", "city": "store"}
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class View:
    """Months ``start`` .. ``end`` (``YYYY-MM``; empty = the default range), grain, filters, language."""

    start: str = ""
    end: str = ""
    grain: str = "month"
    picked: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    lang: str = DEFAULT_LANG

    @classmethod
    def parse(cls, search: str | None) -> View:
        """The view of a URL query string (with or without the leading ``?``)."""
        params = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=False))
        start = params.get("from", "")
        end = params.get("to", "")
        start = start if _MONTH.match(start) else ""
        end = end if _MONTH.match(end) else ""
        if start and end and start > end:
            start, end = end, start
        grain = params.get("grain", "month")
        picked = []
        for dim in FILTER_DIMS:
            values = tuple(dict.fromkeys(v.strip() for v in params.get(dim, "").split(",")))
            values = tuple(v for v in values if v)
            if values:
                picked.append((dim, values))
        return cls(
            start=start,
            end=end,
            grain=grain if grain in GRAINS else "month",
            picked=tuple(picked),
            lang=check_lang(params.get("lang")),
        )

    def query(self) -> str:
        """The URL query string of this view (``?…``; defaults left out, so links stay short)."""
        params: list[tuple[str, str]] = []
        if self.start:
            params.append(("from", self.start))
        if self.end:
            params.append(("to", self.end))
        if self.grain != "month":
            params.append(("grain", self.grain))
        params += [(dim, ",".join(values)) for dim, values in self.picked]
        if self.lang != DEFAULT_LANG:
            params.append(("lang", self.lang))
        return "?" + urlencode(params) if params else ""

    def filters(self) -> dict[str, tuple[str, ...]]:
        """Dimension → the picked values."""
        return dict(self.picked)

    def with_filter(self, dim: str, values: tuple[str, ...] | list[str] | None) -> View:
        """The view with ``dim`` set to ``values`` (None or empty removes it). Picking a region or a
        city clears the finer geographic levels below it, which may not lie inside it."""
        current = self.filters()
        if values:
            current[dim] = tuple(values)
        else:
            current.pop(dim, None)
        if dim in ("region", "city"):
            for finer in ("city", "store")[("region", "city").index(dim) :]:
                current.pop(finer, None)
        ordered = tuple((d, current[d]) for d in FILTER_DIMS if d in current)
        return replace(self, picked=ordered)

    def drill_level(self) -> str | None:
        """The dimension a geographic breakdown shows next: region, then city, then store; None
        once a store is picked (the bottom of the path)."""
        f = self.filters()
        deepest = next((d for d in ("store", "city", "region") if d in f), None)
        return DRILL.get(deepest)

    def scope(self, default_start: str = "", default_end: str = "") -> Scope:
        """The metrics-layer :class:`Scope` of the view (months default to the given range)."""
        first = parse_period(self.start or default_start)
        last = parse_period(self.end or default_end or self.start or default_start)
        if first.start > last.end:
            first, last = last, first
        return Scope(first.start, last.end, self.grain, self.filters())  # type: ignore[arg-type]


def month_of(day: date) -> str:
    """``YYYY-MM`` of a day."""
    return f"{day.year:04d}-{day.month:02d}"


def months_between(first: date, last: date) -> list[str]:
    """Every ``YYYY-MM`` from ``first``'s month to ``last``'s, in order.

    >>> months_between(date(2020, 11, 5), date(2021, 2, 1))
    ['2020-11', '2020-12', '2021-01', '2021-02']
    """
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
