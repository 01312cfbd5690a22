"""Acquisition-cohort retention (A4): of the customers who started in a period, how many came back
— or how much they spent — one, two, … periods later.

**Activity.** A customer is *active* in a period when they have a completed order in it (an
``orders`` row that is not a refund, placed by an identified customer): refund rows are never
activity, and walk-ins have no customer to follow. Everything is read through the scope, so its
filters and row limits apply to cohorts and activity alike (with a store filter the cohort is the
customers whose first order at that store falls in the period, and their activity is their orders
at that store; with ``cohort_by="signup"`` the cohort is the store's members by home store).

**Periods.** The scope's periods of the chosen grain (ISO weeks at week grain; the first and last
clipped to the range, as everywhere) are both the cohorts and the periods observed: period *k* of
cohort *c* is the *k*-th period after *c*, and cells past the scope's last period are absent, so the
table is a triangle ending at the scope's end. ``period_index`` runs from 0 to ``periods``.

**Cohorts.**

- ``cohort_by="first_order"``, ``first_time_only=True`` (first-time retention): the customers whose
  first completed order ever (within the scope's filters, however far before the scope) falls in
  the period. Everyone in it is active in period 0.
- ``cohort_by="signup"``: the customers whose ``signup_date`` falls in the period (customers without
  one are in no cohort); some may not buy until later, or ever.
- ``first_time_only=False`` (recurring retention): everyone active in the period, first-time or not;
  defined by activity, so it cannot be combined with ``cohort_by="signup"``.

**Modes** (PostHog's retention semantics).

- ``"on"``: the cohort's customers active in exactly period *k*.
- ``"on_or_after"``: those active in period *k* or in any later period up to the scope's end — the
  customers not yet gone for good, so the curve never rises: ``on_or_after >= on`` cell by cell.

**Measures.** ``"customers"``: ``value`` is the count above and ``rate = value / cohort_size``
(None for an empty cohort). ``"revenue"``: ``value`` is the cohort's net revenue in period *k*
(completed orders plus refunds, as the ``revenue`` KPI: a refund lowers the period in which it is
refunded) and ``rate = value / value of period 0`` (None when period 0 had no revenue); it can exceed
1 when the cohort spends more later, and is only defined per period (``mode="on"``).

>>> list(_cells(3, 1))  # (cohort, period_index) of 3 cohorts, 2 indexes: a triangle
[(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal, get_args

import ibis
import pandas as pd
from ibis.expr.types import Table

from crmlens.errors import ConfigError
from crmlens.metrics.definitions.sales import buyers
from crmlens.metrics.evaluate import with_nulls
from crmlens.metrics.periods import Grain, check_grain
from crmlens.metrics.query import Query
from crmlens.metrics.scope import Scope
from crmlens.warehouse import Warehouse

CohortBy = Literal["first_order", "signup"]
Mode = Literal["on", "on_or_after"]
Measure = Literal["customers", "revenue"]
#: The columns of :func:`cohort_table`.
COLUMNS = ("cohort", "period_index", "cohort_size", "value", "rate")


def at_grain(scope: Scope, grain: Grain | None) -> Scope:
    """``scope`` at ``grain`` (its own grain when ``grain`` is None)."""
    return scope if grain is None else replace(scope, grain=check_grain(grain))


def active(q: Query) -> Table:
    """``period_id`` and ``customer_id`` of every customer active in each of the query's periods:
    with a completed order in it (refunds are not activity; walk-ins are nobody to follow)."""
    t = buyers(q.rows("orders", dims=()))
    return t.select("period_id", "customer_id").distinct()


def first_active(q: Query) -> Table:
    """``period_id`` and ``customer_id`` of the customers whose first completed order ever (within
    the scope's filters, looking before the scope too) falls in each of the query's periods."""
    return q.tag(q.first_orders(dims=()), "ts").select("period_id", "customer_id")


def cohort_table(
    wh: Warehouse,
    scope: Scope,
    *,
    grain: Grain | None = None,
    cohort_by: CohortBy = "first_order",
    mode: Mode = "on",
    measure: Measure = "customers",
    first_time_only: bool = True,
    periods: int = 12,
) -> pd.DataFrame:
    """Cohort retention in long form: one row per cohort and ``period_index`` 0..``periods``.

    Columns: ``cohort`` (the cohort period's label, e.g. ``2021-01`` or ``2020-W53``),
    ``period_index``, ``cohort_size`` (customers), ``value`` (customers or revenue, see the module
    docstring) and ``rate`` (None where undefined). ``grain`` defaults to the scope's. Every cohort
    of the scope is listed, an empty one with size 0; cells past the scope's end are absent.
    :func:`triangle` pivots the result.
    """
    _check(cohort_by, mode, measure, first_time_only, periods)
    scope = at_grain(scope, grain)
    buckets = scope.periods()
    q = Query(wh, scope, buckets)
    members = _members(q, cohort_by, first_time_only)
    if measure == "revenue":
        cells = _revenue(q, members, periods)
    elif mode == "on":
        cells = _active_on(q, members, periods)
    else:
        cells = _active_on_or_after(q, members, periods)
    sizes = members.group_by(s__cohort=members.cohort_id).aggregate(cohort_size=members.count())
    grid = ibis.memtable(
        pd.DataFrame(list(_cells(len(buckets), periods)), columns=["cohort_id", "period_index"])
    )
    j = grid.left_join(sizes, grid.cohort_id == sizes.s__cohort)
    j = j.left_join(
        cells, [j.cohort_id == cells.c__cohort, j.period_index == cells.c__index]
    ).select("cohort_id", "period_index", "cohort_size", "value")
    j = j.mutate(cohort_size=j.cohort_size.fill_null(0), value=j.value.fill_null(0))
    if measure == "revenue":
        base = j.filter(j.period_index == 0).select(b__cohort="cohort_id", base="value")
        j = j.left_join(base, j.cohort_id == base.b__cohort)
        base_value = j.base
    else:
        base_value = j.cohort_size
    expr = j.select(
        "cohort_id",
        "period_index",
        "cohort_size",
        "value",
        rate=j.value.cast("float64") / base_value.nullif(0),
    )
    frame = wh.execute(expr).sort_values(["cohort_id", "period_index"], ignore_index=True)
    frame["cohort"] = [buckets[i].label for i in frame["cohort_id"]]
    frame = frame.astype({"period_index": "int64", "cohort_size": "int64", "value": "float64"})
    frame["rate"] = with_nulls(frame["rate"])
    return frame[list(COLUMNS)]


def triangle(table: pd.DataFrame, values: str = "rate") -> pd.DataFrame:
    """A :func:`cohort_table` as the familiar triangle: one row per cohort (in order) with its
    ``cohort_size``, then one column per ``period_index`` holding ``values`` (``rate`` or
    ``value``); cells past the scope's end are None.

    >>> t = pd.DataFrame({"cohort": ["2021-01", "2021-01", "2021-02"], "period_index": [0, 1, 0],
    ...                   "cohort_size": [4, 4, 2], "value": [4.0, 1.0, 2.0],
    ...                   "rate": [1.0, 0.25, 1.0]})
    >>> triangle(t).to_dict("index")
    {'2021-01': {'cohort_size': 4, 0: 1.0, 1: 0.25}, '2021-02': {'cohort_size': 2, 0: 1.0, 1: None}}
    """
    if values not in ("rate", "value"):
        raise ConfigError(f"a triangle shows rate or value, not {values!r}")
    order = list(dict.fromkeys(table["cohort"]))
    cells = table.pivot(index="cohort", columns="period_index", values=values).reindex(order)
    sizes = table.drop_duplicates("cohort").set_index("cohort")["cohort_size"].reindex(order)
    out = pd.concat([sizes, with_nulls(cells)], axis=1)
    out.columns.name = None
    return out


def _check(cohort_by: str, mode: str, measure: str, first_time_only: bool, periods: int) -> None:
    for name, given, allowed in (
        ("cohort_by", cohort_by, get_args(CohortBy)),
        ("mode", mode, get_args(Mode)),
        ("measure", measure, get_args(Measure)),
    ):
        if given not in allowed:
            raise ConfigError(f"unknown {name} {given!r}; expected one of: {', '.join(allowed)}")
    if cohort_by == "signup" and not first_time_only:
        raise ConfigError(
            "recurring cohorts (first_time_only=False) are everyone active in a period; "
            "they cannot be cohorts by signup"
        )
    if measure == "revenue" and mode != "on":
        raise ConfigError("revenue retention is per period: use mode='on'")
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 0:
        raise ConfigError(f"periods must be a whole number >= 0, got {periods!r}")


def _cells(n: int, periods: int) -> Iterator[tuple[int, int]]:
    """(cohort, period_index) of every cell inside the scope: cohort + index < n."""
    for cohort in range(n):
        for k in range(min(periods, n - 1 - cohort) + 1):
            yield cohort, k


def _members(q: Query, cohort_by: CohortBy, first_time_only: bool) -> Table:
    """``cohort_id`` and ``customer_id`` of each cohort's customers."""
    if not first_time_only:
        t = active(q)
    elif cohort_by == "first_order":
        t = first_active(q)
    else:
        signed = q.rows("customers", dims=())
        t = signed.select("period_id", "customer_id")
    return t.select(cohort_id=t.period_id, m__customer=t.customer_id)


def _later(members: Table, t: Table, periods: int | None) -> Table:
    """Rows of ``t`` (with ``period_id`` and ``customer_id``) of the cohorts' customers from their
    cohort period on, with ``k``: how many periods after it (at most ``periods`` if given)."""
    j = members.join(t, [members.m__customer == t.customer_id, t.period_id >= members.cohort_id])
    j = j.mutate(k=j.period_id - j.cohort_id)
    return j if periods is None else j.filter(j.k <= periods)


def _grouped(t: Table, value: ibis.Value) -> Table:
    return t.group_by(c__cohort=t.cohort_id, c__index=t.k).aggregate(value=value)


def _purchases(q: Query) -> Table:
    """``period_id`` and ``customer_id`` of every completed order (activity, not yet distinct)."""
    return buyers(q.rows("orders", dims=())).select("period_id", "customer_id")


def _active_on(q: Query, members: Table, periods: int) -> Table:
    # the orders are joined to the cohorts before customers are made distinct, not after as
    # active() would: the cohorts' customers hold a fraction of the orders, so fewer rows to hash
    t = _later(members, _purchases(q), periods)
    return _grouped(t, t.m__customer.nunique())


def _active_on_or_after(q: Query, members: Table, periods: int) -> Table:
    t = _later(members, _purchases(q), None)
    # a customer counts for every index up to the last period they were active in
    last = t.group_by("cohort_id", "m__customer").aggregate(last_k=t.k.max())
    ks = ibis.memtable(pd.DataFrame({"k": range(periods + 1)}))
    j = last.join(ks, last.last_k >= ks.k)
    return _grouped(j, j.count())


def _revenue(q: Query, members: Table, periods: int) -> Table:
    rows = q.rows("orders", dims=())
    rows = rows.filter(rows.customer_id.notnull())  # refunds stay: net revenue
    t = _later(members, rows.select("period_id", "customer_id", "amount"), periods)
    return _grouped(t, t.amount.sum())
