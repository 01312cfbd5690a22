"""The dashboard's data access: the metrics layer, the model views and a few reference reads, every
result cached per question in the shared :class:`~crmlens.metrics.cache.ResultCache`.

Pages never query the warehouse themselves: they call :meth:`Data.get` with a metrics-layer or
model-view function and its arguments. The cache key is the function's qualified name and the
arguments (a :class:`~crmlens.metrics.Scope` is hashable), so the same question asked by two pages,
or by a page and the API, is answered once until the next load or build clears the cache. Nothing
here fits a model: the views read the tables ``crmlens build`` wrote.

The only reads of our own are small reference lookups the metrics layer does not offer: store and
channel names (dimension values are stored as IDs), the store hierarchy for the filter bar, and the
store pilot's arms — each one Ibis expression over a reference table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import pandas as pd

from crmlens.metrics import Scope, breakdown
from crmlens.metrics.cache import ResultCache
from crmlens.metrics.summary import history_scope
from crmlens.warehouse.engines import ReadableWarehouse
from crmlens.web.state import month_of, months_between

T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    """The months with orders, and the default range: the last twelve of them."""

    first: date
    last: date

    @property
    def months(self) -> list[str]:
        return months_between(self.first, self.last)

    @property
    def default_end(self) -> str:
        return month_of(self.last)

    @property
    def default_start(self) -> str:
        months = self.months
        return months[max(0, len(months) - 12)]


class Data:
    """Cached answers for the pages (one instance per dashboard, shared by all sessions)."""

    def __init__(self, wh: ReadableWarehouse, cache: ResultCache) -> None:
        self.wh = wh
        self.cache = cache

    def get(self, fn: Callable[..., T], *args: Hashable, **kwargs: Hashable) -> T:
        """``fn(wh, *args, **kwargs)``, cached under the function's name and arguments."""
        key = (f"{fn.__module__}.{fn.__qualname__}", args, tuple(sorted(kwargs.items())))
        return self.cache.get(key, lambda: fn(self.wh, *args, **kwargs))

    # -- the time range ---------------------------------------------------------------------
    def bounds(self) -> Bounds:
        """First and last day with an order (today when there is none)."""
        scope = self.get(history_scope)
        return Bounds(scope.start, scope.end)

    def scope_of(self, view: Any) -> Scope:
        """The :class:`Scope` of a :class:`~crmlens.web.state.View`, months defaulted to the data."""
        b = self.bounds()
        return view.scope(b.default_start, b.default_end)

    # -- reference data ---------------------------------------------------------------------
    def stores(self) -> pd.DataFrame:
        """``store_id``, ``store_name``, ``region``, ``city`` of every store, by ID."""
        return self.get(_stores)

    def channels(self) -> dict[str, str]:
        """Channel ID → name."""
        return self.get(_channels)

    def names(self, dim: str) -> dict[str, str]:
        """Display names of a dimension's stored values (stores and channels are stored as IDs)."""
        if dim == "store":
            s = self.stores()
            return dict(zip(s["store_id"], s["store_name"], strict=True))
        if dim == "channel":
            return self.channels()
        return {}

    def pilot(self) -> tuple[str, dict[str, list[str]]] | None:
        """The store pilot (``experiments.kind = 'store_pilot'``): its name and store IDs per arm."""
        return self.get(_pilot)

    def options(self, dim: str) -> list[str]:
        """The values a filter-bar dimension takes, most members first (stores by ID)."""
        return self.get(_options, dim, self.bounds().last)

    def options_within(
        self, dim: str, within: tuple[tuple[str, tuple[str, ...]], ...]
    ) -> list[str]:
        """:meth:`options` among the members of a coarser pick, e.g. the cities of a region."""
        return self.get(_options, dim, self.bounds().last, within)


# -- the reference reads (Ibis over reference tables; cached by :meth:`Data.get`) -------------
def _stores(wh: ReadableWarehouse) -> pd.DataFrame:
    t = wh.table("stores")
    expr = t.select("store_id", "store_name", "region", "city").order_by("store_id")
    frame = wh.execute(expr)
    frame["store_name"] = frame["store_name"].fillna(frame["store_id"])
    return frame


def _channels(wh: ReadableWarehouse) -> dict[str, str]:
    t = wh.table("channels")
    frame = wh.execute(t.select("channel_id", "channel_name").order_by("channel_id"))
    names = frame["channel_name"].fillna(frame["channel_id"])
    return dict(zip(frame["channel_id"].astype(str), names.astype(str), strict=True))


def _pilot(wh: ReadableWarehouse) -> tuple[str, dict[str, list[str]]] | None:
    e = wh.table("experiments")
    found = wh.execute(
        e.filter(e.kind == "store_pilot")
        .order_by("start_date")
        .select("experiment_id", "experiment_name")
    )
    if found.empty:
        return None
    exp_id, name = found.iloc[-1]
    u = wh.table("experiment_units")
    units = wh.execute(
        u.filter((u.experiment_id == exp_id) & (u.unit_type == "store")).select(
            "unit_id", "variant"
        )
    )
    arms: dict[str, list[str]] = {}
    for unit, variant in units.sort_values("unit_id").itertuples(index=False):
        arms.setdefault(str(variant), []).append(str(unit))
    return str(name or exp_id), arms


def _options(
    wh: ReadableWarehouse,
    dim: str,
    last: date,
    within: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> list[str]:
    """A dimension's values among all members up to the last order day (within the ``within``
    filters), most members first."""
    if dim == "store":
        return [str(s) for s in _stores(wh)["store_id"]]
    if dim == "channel":
        return list(_channels(wh))
    scope = Scope(date(1900, 1, 1), last, filters=dict(within))
    frame = breakdown(wh, ["members"], scope, [dim])
    return [str(v) for v in frame[dim] if v is not None]
