"""KPIs that are one aggregate over one fact's rows, and evaluating several of them in one query.

Most KPIs are a single aggregate (a sum, a count, a mean) over the scoped rows of one fact in each
period's window, perhaps of only some rows (completed orders, closed tickets). Declaring them as a
:class:`Measure` rather than as free-form builder code lets :func:`fused` compute every such KPI of
a request that reads the same fact over the same window in one ``group_by``: revenue, buying
customers and 客单价 by region × tier scan and join the orders once instead of three times.

A measure's row condition becomes a ``FILTER (WHERE …)`` on its aggregates there, so it gives the
same numbers as filtering first; and a group with rows of the fact but none the condition keeps is
dropped for that measure, as filtering first would have dropped it (see :class:`Fused`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.operations as ops
import pandas as pd
from ibis.expr.types import BooleanValue, IntegerValue, Table, Value

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import OTHER
from crmlens.metrics.facts import of_customer, splits
from crmlens.metrics.query import FLOW, Query, Window
from crmlens.metrics.scope import Scope

#: The aggregate of a measure over (the kept) rows: ``value(q, rows)``.
ValueFn = Callable[[Query, Table], Value]
#: The rows a measure keeps: ``keep(rows)``.
KeepFn = Callable[[Table], BooleanValue]
#: How a measure's values per group relate to its value over all of them (see :func:`adds_up`):
#: ``rows`` is a count or a sum over rows, ``customers`` a count of distinct customers.
AddsUp = Literal["rows", "customers"]


@dataclass(frozen=True)
class Measure:
    """A KPI builder: ``value`` over the rows of ``fact`` in each period's ``window`` that ``keep``
    selects (all rows when None), per period and dimension values.

    ``value`` combines aggregates of the rows (``t.amount.sum() / t.count()``), so that restricting
    each aggregate to the kept rows is the same as filtering the rows first. ``adds_up`` says
    whether the values of groups add up to the total (see :func:`adds_up`).

    A KPI that is one aggregate only for some queries (the repurchase rate, when the order rows
    carry each order's neighbours, :attr:`Query.sequenced`) sets ``when`` to that condition and
    ``otherwise`` to its builder for the other queries.
    """

    fact: str
    value: ValueFn
    keep: KeepFn | None = None
    window: Window = FLOW
    adds_up: AddsUp | None = None
    when: Callable[[Query], bool] | None = None
    otherwise: Callable[[Query], Table] | None = None

    def __post_init__(self) -> None:
        if (self.when is None) != (self.otherwise is None):
            raise ConfigError("a measure's `when` and `otherwise` go together")

    def holds(self, q: Query) -> bool:
        """Whether this is one aggregate for ``q`` (else :attr:`otherwise` builds it)."""
        return self.when is None or self.when(q)

    def __call__(self, q: Query) -> Table:
        """The builder on its own: filter, then aggregate (filters reach the scans this way)."""
        if not self.holds(q):
            assert self.otherwise is not None
            return self.otherwise(q)
        t = q.rows(self.fact, self.window)
        if self.keep is not None:
            t = t.filter(self.keep(t))
        return q.group(t, self.value(q, t))


@dataclass(frozen=True)
class Fused:
    """Several measures over the same fact and window as one aggregate expression.

    ``expr`` has the query's ``keys``, ``v<i>`` the value of ``measures[i]`` and, for a measure with a
    row condition, ``n<i>``: how many rows it kept in the group. Where ``n<i>`` is 0 the group has
    no value of measure ``i`` (:func:`split_fused` drops it).
    """

    measures: tuple[Measure, ...]
    keys: tuple[str, ...]
    expr: Table


def split_fused(
    frame: pd.DataFrame, measures: Sequence[Measure], keys: Sequence[str]
) -> list[pd.DataFrame]:
    """The result of a :class:`Fused` expression as one frame per measure, with the keys and
    ``value`` (a group where a measure kept no row has no value of it)."""
    out = []
    for i, m in enumerate(measures):
        part = frame if m.keep is None else frame[frame[f"n{i}"] > 0]
        out.append(part[[*keys, f"v{i}"]].rename(columns={f"v{i}": "value"}))
    return out


def row_count(q: Query, t: Table) -> IntegerValue:
    """The number of rows: a measure's value for counts of a fact's rows."""
    return t.count()


def adds_up(builder: object, scope: Scope, by: Sequence[str]) -> bool:
    """Whether a builder's values per combination of ``by`` add up to its value over the whole
    scope, so a total (a breakdown's share) needs no query of its own: for a :class:`Measure`
    counting or summing rows unless the rows are split over categories (an order then counts in
    each of its categories), and for one counting distinct customers when ``by`` are attributes of
    the customer (each customer is in one group)."""
    if not isinstance(builder, Measure) or builder.adds_up is None:
        return False
    if builder.adds_up == "rows":
        return not splits(builder.fact, scope, by)
    return of_customer(builder.fact, by)


def fusable(builder: object, q: Query | None = None) -> tuple[str, Window] | None:
    """The (fact, window) a builder aggregates over when it is a :class:`Measure` (one for query
    ``q``; without ``q``, one for every query), else None."""
    if not isinstance(builder, Measure):
        return None
    if builder.when is not None and (q is None or not builder.holds(q)):
        return None
    return (builder.fact, builder.window)


#: A top-N fold done in the query: ``(index of the measure ranked by, N)``.
Top = tuple[int, int]


def fused(q: Query, measures: Sequence[Measure], top: Top | None = None) -> Fused:
    """One aggregate computing every measure in ``measures`` (all of one fact and window).

    With ``top`` (a query by one dimension), values of the dimension outside the ``N`` groups
    with the highest value of measure ``top[0]`` (NULL last, ties by the value's name; groups
    where that measure keeps no row are not ranked) are folded into :data:`OTHER` in the same
    query: the rows are ranked and folded in one scan and join of the fact, where ranking first
    and folding in a second query read them twice.
    """
    (fact, window), *others = {(m.fact, m.window) for m in measures}
    assert not others, "fused measures read the same fact over the same window"
    t = q.rows(fact, window)
    if top is not None:
        t = _folded(q, t, measures[top[0]], top[1])
    values: dict[str, Value] = {}
    for i, m in enumerate(measures):
        value, kept = _aggregate(q, t, m)
        if kept is not None:
            values[f"n{i}"] = kept
        values[f"v{i}"] = value
    return Fused(tuple(measures), tuple(q.keys), t.group_by(q.keys).aggregate(**values))


def _aggregate(q: Query, t: Table, m: Measure) -> tuple[Value, IntegerValue | None]:
    """A measure's value over ``t``'s groups, and with a row condition how many rows it kept."""
    value = m.value(q, t)
    if m.keep is None:
        return value, None
    keep = m.keep(t)
    return _only(value, keep), t.count(where=keep)


def _folded(q: Query, t: Table, ranked_by: Measure, n: int) -> Table:
    """``t`` with its one dimension's values outside the top ``n`` (see :func:`fused`) as OTHER."""
    (dim,) = q.by
    value, kept = _aggregate(q, t, ranked_by)
    if kept is None:
        ranking = t.group_by(dim).aggregate(r__value=value)
    else:  # a group where the measure keeps no row has no value: not ranked
        ranking = t.group_by(dim).aggregate(r__value=value, r__kept=kept)
        ranking = ranking.filter(ranking.r__kept > 0)
    order = [ibis.desc(ranking.r__value, nulls_first=False), ranking[dim]]
    leaders = ranking.order_by(order).limit(n)[dim]
    return t.mutate(**{dim: ibis.ifelse(t[dim].isin(leaders), t[dim], OTHER)})


def _only(value: Value, keep: BooleanValue) -> Value:
    """``value`` with every aggregate in it restricted to the rows ``keep`` selects (SQL
    ``FILTER (WHERE …)``): the value ``value`` has over ``rows.filter(keep)``."""
    condition = keep.op()

    def restrict(node: ops.Node, kwargs: dict[str, object] | None) -> ops.Node:
        node = node.__recreate__(kwargs) if kwargs else node
        if isinstance(node, ops.Reduction) and "where" in node.__argnames__:
            where = condition if node.where is None else ops.And(node.where, condition)
            return node.copy(where=where)
        return node

    # only value nodes are visited: the relation the aggregates read stays as it is
    return value.op().replace(restrict, filter=ops.Value).to_expr()
