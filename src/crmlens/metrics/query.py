"""What a metric builder works with: scoped rows placed in periods, grouping and combining.

Every KPI is evaluated over a list of periods at once — the buckets of a time series, or the current,
previous and last-year ranges of an overview — so one Ibis expression (one query) answers each
question. A :class:`Window` says which rows count for a period relative to its first and last day:
a flow KPI (orders, revenue) takes the period itself, a stock KPI (members) everything up to its
end, "active customers" the 90 days ending on it. Periods may overlap; rows are joined to every
period whose window contains them, and results are keyed by ``period_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cached_property
from typing import Literal

import ibis
import pandas as pd
import pyarrow as pa
from ibis.expr.types import BooleanValue, IntegerValue, Table, Value

from crmlens.metrics.dimensions import OTHER
from crmlens.metrics.facts import NEXT, bought, first_orders, scoped, sequenced, splits, table
from crmlens.metrics.facts import fact as lookup_fact
from crmlens.metrics.periods import Period
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.warehouse import Warehouse

Anchor = Literal["start", "end"]

#: Dimensions targets can be set for (``targets.dimension``), besides ``all``.
TARGET_DIMENSIONS = ("region", "city", "store")


@dataclass(frozen=True)
class Window:
    """Rows with ``lo <= time < hi`` count for a period; each bound is (anchor day, offset days)
    taken at midnight, ``None`` for unbounded.

    >>> from datetime import date
    >>> Window.days_ending(90).bounds(Period("2021-03", date(2021, 3, 1), date(2021, 3, 31)))
    (datetime.datetime(2021, 1, 1, 0, 0), datetime.datetime(2021, 4, 1, 0, 0))
    """

    lo: tuple[Anchor, int] | None
    hi: tuple[Anchor, int] | None

    @staticmethod
    def days_ending(days: int) -> Window:
        """The ``days`` days ending on the period's last day."""
        return Window(("end", 1 - days), ("end", 1))

    @staticmethod
    def days_before(days: int) -> Window:
        """The ``days`` days before the period's first day."""
        return Window(("start", -days), ("start", 0))

    def bounds(self, period: Period) -> tuple[datetime | None, datetime | None]:
        """The window's timestamps for ``period``."""

        def at(bound: tuple[Anchor, int] | None) -> datetime | None:
            if bound is None:
                return None
            day = period.start if bound[0] == "start" else period.end
            return datetime.combine(day + timedelta(days=bound[1]), time())

        return at(self.lo), at(self.hi)


#: The period itself.
FLOW = Window(("start", 0), ("end", 1))
#: Everything up to the period's end (stocks such as members).
UP_TO_END = Window(None, ("end", 1))


class Query:
    """One evaluation: a scope, its periods and the dimensions to group by, for the builders."""

    def __init__(
        self,
        wh: Warehouse,
        scope: Scope,
        periods: Sequence[Period],
        by: Sequence[str] = (),
        relabel: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.wh = wh
        self.scope = scope
        self.periods = list(periods)
        self.by = tuple(by)
        self.relabel = relabel
        self._windows: dict[Window, Table] = {}

    @property
    def keys(self) -> list[str]:
        """The grouping keys of every builder's result: ``period_id`` then the dimensions."""
        return ["period_id", *self.by]

    # -- rows -------------------------------------------------------------------------------
    def rows(self, fact: str, window: Window = FLOW, dims: Sequence[str] | None = None) -> Table:
        """Scoped rows of ``fact`` joined to each period whose ``window`` contains their time."""
        return self.tag(self.history(fact, dims, window), "ts", window)

    def history(
        self, fact: str, dims: Sequence[str] | None = None, within: Window | None = None
    ) -> Table:
        """Scoped rows of ``fact``, not placed in periods: at any time, or (``within``) from the
        earliest to the latest bound of the window over all the query's periods."""
        since = until = None
        if within is not None:
            bounds = [within.bounds(p) for p in self.periods]
            lows = [lo for lo, _ in bounds]
            highs = [hi for _, hi in bounds]
            since = None if None in lows else min(lows)  # type: ignore[type-var]
            until = None if None in highs else max(highs)  # type: ignore[type-var]
        return scoped(
            self.wh,
            fact,
            self.scope,
            dims=self.by if dims is None else dims,
            since=since,
            until=until,
            relabel=self.relabel,
        )

    def first_orders(self, dims: Sequence[str] | None = None) -> Table:
        """``customer_id``, ``ts`` (when their first completed order was placed, looking before the
        scope too) and the dimensions ``dims`` (default: the query's), of every customer with one
        within the scope's filters — with a store filter, the first order at that store.

        Read from the derived table of first orders when it is usable and every dimension asked
        for or filtered on is an attribute of the customer, with ``return_ts`` then (see
        :func:`crmlens.metrics.facts.first_orders`); else found in the orders.
        """
        dims = self.by if dims is None else tuple(dims)
        copy = first_orders(self.wh, self.scope, dims, self.relabel)
        if copy is not None:
            return copy
        history = self.history("orders", dims)
        history = history.filter(bought(history))
        return history.group_by([*dims, "customer_id"]).aggregate(ts=history.ts.min())

    def tag(self, t: Table, when: str, window: Window = FLOW) -> Table:
        """``t`` joined to each period whose ``window`` contains its timestamp column ``when``."""
        # a fresh reference: a projected join chain cannot take further join predicates
        t = t.view()
        p = self._bounds(window)
        predicates = []
        if window.lo is not None:
            predicates.append(t[when] >= p.q__lo)
        if window.hi is not None:
            predicates.append(t[when] < p.q__hi)
        # the bound columns stay: dropping them would add a projection for nothing
        return t.join(p, predicates) if predicates else t.cross_join(p)

    def _bounds(self, window: Window) -> Table:
        """``period_id``, ``q__lo`` and ``q__hi`` of each period's ``window``, and ``q__prev_lo``
        and ``q__next_hi``: the lower bound of the period before in the query's list and the upper
        bound of the one after (NULL at the ends; for builders comparing a row with the
        neighbouring periods of a series). One in-memory table per window and query, shared by its
        builders (built from Arrow: building it from pandas took a fifth of the time to build a
        KPI's expression)."""
        if window not in self._windows:
            bounds = [window.bounds(p) for p in self.periods]
            lows = [lo for lo, _ in bounds]
            highs = [hi for _, hi in bounds]
            self._windows[window] = ibis.memtable(
                pa.table(
                    {
                        "period_id": pa.array(range(len(bounds)), pa.int64()),
                        "q__lo": pa.array(lows, pa.timestamp("us")),
                        "q__hi": pa.array(highs, pa.timestamp("us")),
                        "q__prev_lo": pa.array([None, *lows[:-1]], pa.timestamp("us")),
                        "q__next_hi": pa.array([*highs[1:], None], pa.timestamp("us")),
                    }
                )
            )
        return self._windows[window]

    @cached_property
    def sequenced(self) -> bool:
        """Whether the query's order rows carry each completed order's neighbours
        (:func:`crmlens.metrics.facts.sequenced`)."""
        return sequenced(self.wh, "orders", self.scope, self.by)

    def buyer_count(self, t: Table, until: Value | None = None) -> IntegerValue:
        """Distinct identified customers with a completed order among ``t``, rows of
        ``rows("orders", window)`` kept to completed orders of identified customers (by a filter
        or a measure's condition): when :attr:`sequenced`, a count of each one's last completed
        order before ``until`` (default: the end of the row's window, ``q__hi``), which hashes
        nothing; else a distinct count of ``customer_id``."""
        if not self.sequenced:
            return t.customer_id.nunique()
        return t.count(where=bought(t) & self.last_order(t, until))

    def last_order(self, t: Table, until: Value | None = None) -> BooleanValue:
        """On :attr:`sequenced` order rows: whether a completed order is its customer's last one
        before ``until`` (default: the end of the row's window, ``q__hi``), i.e. its next one is
        not before it. One row per customer and window passes: a count instead of a distinct."""
        hi = t.q__hi if until is None else until
        return t[NEXT].isnull() | (t[NEXT] >= hi)

    def customers_in(self, t: Table, keys: Sequence[str]) -> Table:
        """``keys`` (which name the customer) once per customer with a row among the completed
        orders ``t`` of each period's window: each one's :meth:`last_order` there when
        :attr:`sequenced`, else a distinct."""
        if self.sequenced:
            return t.filter(self.last_order(t)).select(*keys)
        return t.select(*keys).distinct()

    def count_distinct(
        self, t: Table, column: str, fact: str, where: BooleanValue | None = None
    ) -> IntegerValue:
        """Distinct non-NULL ``column`` values (``where`` holds) of ``t``, which is
        ``rows(fact)`` with the query's own dimensions, perhaps filtered.

        When ``column`` is the fact's key and the rows are not split (over categories) there is
        one row per key and period, so this is a row count: the same number, without hashing
        every key (which took longer than the rest of a 客单价 query at 3M orders) or even reading
        it (keys are never NULL).
        """
        if column == lookup_fact(fact).key and not splits(fact, self.scope, self.by):
            return t.count(where=where)
        return t[column].nunique(where=where)

    # -- results ----------------------------------------------------------------------------
    def group(self, t: Table, value: Value) -> Table:
        """``value`` aggregated per period and dimension values: the shape every builder returns."""
        return t.group_by(self.keys).aggregate(value=value)

    def combine(self, num: Table, den: Table, how: Callable[[Value, Value], Value]) -> Table:
        """Two grouped results (each with a ``value``) outer-joined on the keys; a side missing for
        a key counts as 0, and ``how(num, den)`` gives the value."""
        right = den.rename({f"r__{k}": k for k in [*self.keys, "value"]})
        j = num.outer_join(right, [num[k] == right[f"r__{k}"] for k in self.keys])
        return j.select(
            *[ibis.coalesce(j[k], j[f"r__{k}"]).name(k) for k in self.keys],
            value=how(j.value.fill_null(0), j.r__value.fill_null(0)),
        )

    def ratio(self, num: Table, den: Table, scale: float = 1.0) -> Table:
        """``num / den`` per key (NULL where the denominator is 0), times ``scale``."""
        return self.combine(num, den, lambda n, d: n * scale / d.nullif(0))

    # -- targets ----------------------------------------------------------------------------
    def targets(self, names: Sequence[str], how: Literal["sum", "last", "same"]) -> Table:
        """Targets of metrics ``names`` per period (and per value of the one target dimension).

        Targets exist for the whole company (``dimension`` all) or per region, city or store, so the
        scope may constrain, and the query group by, at most one of those. Per period:

        - ``sum`` (flows): the targets whose periods lie inside it and cover every day of it, at
          the coarsest granularity that does (a quarter's target, else its three months');
        - ``last`` (stocks): the target whose period ends on the period's last day;
        - ``same`` (rates, averages): the target whose period is exactly the period.

        Several allowed values of the dimension add up (two cities' member targets).
        """
        constraints = self.scope.constraints()
        dims = set(constraints) | set(self.by)
        if len(dims) > 1 or dims - set(TARGET_DIMENSIONS):
            raise NotApplicableError(
                "targets are set for the whole company or per one of "
                f"{', '.join(TARGET_DIMENSIONS)}; not for {', '.join(sorted(dims))}"
            )
        t = table(self.wh, "targets")
        t = t.filter(t.metric.isin(list(names)) & t.period_start.notnull())
        if dims:
            (dim,) = dims
            t = t.filter(t.dimension == dim)
            if dim in constraints:
                t = t.filter(t.dimension_value.isin(sorted(constraints[dim])))
            if self.relabel and dim in self.relabel:
                keep = sorted(self.relabel[dim])
                t = t.mutate(
                    dimension_value=ibis.ifelse(
                        t.dimension_value.isin(keep), t.dimension_value, OTHER
                    )
                )
        else:
            t = t.filter(t.dimension == "all")
        t = t.mutate(
            rank=ibis.cases((t.period.length() == 4, 3), (t.period.contains("Q"), 2), else_=1),
            days=t.period_end.delta(t.period_start, unit="day") + 1,
        )
        frame = pd.DataFrame(
            [(i, p.start, p.end, p.days) for i, p in enumerate(self.periods)],
            columns=["period_id", "q__start", "q__end", "q__days"],
        ).astype({"q__start": "datetime64[us]", "q__end": "datetime64[us]"})
        p = ibis.memtable(frame).mutate(
            q__start=ibis._.q__start.date(), q__end=ibis._.q__end.date()
        )
        if how == "sum":
            predicates = [t.period_start >= p.q__start, t.period_end <= p.q__end]
        elif how == "last":
            predicates = [t.period_end == p.q__end]
        else:
            predicates = [t.period_start == p.q__start, t.period_end == p.q__end]
        j = t.join(p, predicates)
        j = j.mutate(**{d: j.dimension_value for d in self.by})
        per_value = j.group_by([*self.keys, "dimension_value", "rank", "q__days"]).aggregate(
            target=j.target_value.sum(), covered=j.days.sum(), n=j.count()
        )
        complete = per_value.covered == per_value.q__days if how == "sum" else per_value.n == 1
        best = (
            per_value.filter(complete)
            .group_by([*self.keys, "dimension_value"])
            .aggregate(target=ibis._.target.argmax(ibis._.rank))
        )
        total = best.group_by(self.keys).aggregate(value=best.target.sum(), n=best.count())
        if dims and not self.by and dim in constraints:
            # two cities picked but only one has a target: no target, rather than half of one
            total = total.filter(total.n == len(constraints[dim]))
        return total.drop("n")
