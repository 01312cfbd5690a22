"""Customer lifecycle per period (A4) and the member overview of seed 000 (M5): new, loyal and
churned members per month.

**Lifecycle status** (PostHog's lifecycle definitions), with *active* as in
:mod:`crmlens.metrics.cohorts` (a completed order; refunds are not activity) and everything read
through the scope's filters. For each period of the scope:

- ``new``: active, and their first completed order ever falls in the period;
- ``returning``: active in the period and in the previous one;
- ``resurrecting``: active in the period, not in the previous one, but active at some time before;
- ``dormant``: active in the previous period and not in this one — reported as a negative count,
  as PostHog does, so a stacked chart shows the losses below the axis.

An active customer is exactly one of new, returning or resurrecting. The previous period of the
scope's first period is the one just before it (the scope's first month when it starts on the 1st),
so the first period's statuses are complete too.

**Member trend** (seed 000: 新增 / 忠实 / 流失会员, per month), all four per period:

- ``new_members``: the ``new_customers`` KPI — customers whose ``signup_date`` falls in the period
  (planted.json's "members by month of 注册时间");
- ``loyal_members``: customers with a completed order in each of the ``loyal_months`` one-month
  windows ending on the period's last day (:func:`loyal_members`); at month grain, bought in the
  month and in each of the ``loyal_months - 1`` months before it;
- ``churned_members``: the ``churned_customers`` KPI with a ``churn_days`` window — customers active
  at the period's start (a completed order in the ``churn_days`` days before it) with no completed
  order in the ``churn_days`` days ending on its last day. For periods no longer than
  ``churn_days`` (weeks and months at 90 days) these are the customers whose inactivity window
  completes in the period — their last order was ``churn_days`` days before one of its days — and
  who have not bought again by its end: they *became churned* in the period, as in planted.json.
  Unlike planted.json, which knows the data's end and counts only members who never come back, a
  member who lapses and returns in a later period is counted in the period they lapsed: the KPI
  is what a dashboard can know at the time;
- ``members``: the ``members`` KPI, everyone signed up by the period's last day.

New members and members read ``customers`` (by store: the home store); loyal and churned members
read ``orders`` (by store: where they bought), so the scope may filter on the dimensions all four
reach: the customer's attributes and the store.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache, partial

import ibis
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Table

from crmlens.errors import ConfigError
from crmlens.metrics.cohorts import active, at_grain, first_active
from crmlens.metrics.definitions.customers import CHURN_DAYS, churned_customers
from crmlens.metrics.definitions.sales import buyers
from crmlens.metrics.evaluate import timeseries
from crmlens.metrics.facts import PREV
from crmlens.metrics.metric import Metric
from crmlens.metrics.periods import Grain, Period, add_months, period_label, period_start
from crmlens.metrics.query import Query
from crmlens.metrics.registry import metric
from crmlens.metrics.scope import Scope
from crmlens.warehouse import Warehouse

#: Lifecycle statuses in PostHog's order.
STATUSES = ("new", "returning", "resurrecting", "dormant")
LOYAL_MONTHS = 3
#: The columns of :func:`member_trend` after ``period``, ``start`` and ``end``.
TREND_COLUMNS = ("new_members", "loyal_members", "churned_members", "members")
_ONE_DAY = timedelta(days=1)


def lifecycle(wh: Warehouse, scope: Scope, *, grain: Grain | None = None) -> pd.DataFrame:
    """Customers per period and lifecycle status: columns ``period``, ``status``, ``customers``.

    Four rows per period of the scope (``grain`` defaults to the scope's), in the order of
    :data:`STATUSES`; ``dormant`` is ≤ 0, the others ≥ 0, and a period without customers has zeros.
    """
    scope = at_grain(scope, grain)
    buckets = scope.periods()
    # period_id 0 is the period before the first one, so that one has a "previous period" too
    day = buckets[0].start - _ONE_DAY
    before = Period(period_label(day, scope.grain), period_start(day, scope.grain), day)
    q = Query(wh, scope, [before, *buckets])
    counts = _sequenced_statuses(q) if q.sequenced else _joined_statuses(q, len(buckets))
    grid = pd.MultiIndex.from_product([range(1, len(buckets) + 1), STATUSES])
    frame = counts.reindex(grid, fill_value=0).astype("int64").reset_index()
    frame.columns = ["period_id", "status", "customers"]
    frame.loc[frame["status"] == "dormant", "customers"] *= -1
    frame["period"] = [buckets[i - 1].label for i in frame["period_id"]]
    return frame[["period", "status", "customers"]]


@cache  # one object per argument: equal metrics are the same key (query plans)
def loyal_members(months: int = LOYAL_MONTHS) -> Metric:
    """The loyal-members KPI: a completed order in each of the ``months`` one-month windows ending
    on the period's last day.

    >>> loyal_members().name, loyal_members(6).name
    ('loyal_members', 'loyal_members_6m')
    """
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise ConfigError(f"loyal_months must be a whole number >= 1, got {months!r}")
    return Metric(
        "loyal_members" if months == LOYAL_MONTHS else f"loyal_members_{months}m",
        "忠实会员数",
        f"Loyal members ({months} months)",
        f"Customers with at least one completed order in each of the {months} one-month windows "
        "ending on the period's last day (windows end on the same day of the month, so at month "
        f"grain: bought in the month and in each of the {months - 1} months before it). A stock at "
        "the period's end, whatever the period's length.",
        "count",
        partial(_loyal, months=months),
        ("orders",),
        "Customers",
        additive=True,
        default_dims=("region", "customer_type", "tier"),
    )


def _joined_statuses(q: Query, n: int) -> pd.Series:
    """Customers per (``period_id``, status) of periods 1..``n``: the active customers of each
    period (distinct), outer-joined to those of the period before, and to the new ones."""
    now = active(q)
    now = now.filter(now.period_id >= 1)
    seen = active(q)
    # the customers active in the previous period, moved one period on
    was = seen.select(w__period=seen.period_id + 1, w__customer=seen.customer_id)
    was = was.filter(was.w__period <= n)
    j = now.outer_join(was, [now.period_id == was.w__period, now.customer_id == was.w__customer])
    j = j.select(
        period_id=ibis.coalesce(j.period_id, j.w__period),
        customer_id=ibis.coalesce(j.customer_id, j.w__customer),
        is_now=j.customer_id.notnull(),
        was_before=j.w__customer.notnull(),
    ).view()  # a fresh reference: a projected join chain cannot take further join predicates
    first = first_active(q)
    first = first.select(f__period=first.period_id, f__customer=first.customer_id)
    j = j.left_join(first, [j.period_id == first.f__period, j.customer_id == first.f__customer])
    status = ibis.cases(
        (~j.is_now, "dormant"),
        (j.f__customer.notnull(), "new"),
        (j.was_before, "returning"),
        else_="resurrecting",
    )
    return q.wh.execute(
        j.group_by("period_id", status=status).aggregate(customers=j.count())
    ).set_index(["period_id", "status"])["customers"]


def _sequenced_statuses(q: Query) -> pd.Series:
    """:func:`_joined_statuses` for :attr:`Query.sequenced` rows, by counting orders: no distinct
    over customers, no join of customer sets.

    Each customer active in period p has one first completed order there (its previous one is
    before p starts): new if there is no previous one at all, returning if the previous one is in
    period p - 1, else resurrecting. Each customer active in p - 1 has one last order there, and
    is dormant in p if their next order is not before p ends.
    """
    t = buyers(q.rows("orders", dims=()))
    first_here = t[PREV].isnull() | (t[PREV] < t.q__lo)
    reported = t.period_id >= 1
    counts = t.group_by("period_id").aggregate(
        new=t.count(where=reported & t[PREV].isnull()),
        returning=t.count(where=reported & first_here & (t[PREV] >= t.q__prev_lo)),
        resurrecting=t.count(where=reported & first_here & (t[PREV] < t.q__prev_lo)),
        # counted in the period after: gone by its end
        dormant=t.count(where=q.last_order(t, t.q__next_hi)),
    )
    frame = q.wh.execute(counts).set_index("period_id")
    dormant = frame["dormant"].copy()
    dormant.index = dormant.index + 1
    out = pd.concat(
        {
            "new": frame["new"],
            "returning": frame["returning"],
            "resurrecting": frame["resurrecting"],
            "dormant": dormant[dormant.index < len(q.periods)],
        }
    )
    return out.swaplevel().rename_axis(["period_id", "status"])


def member_trend(
    wh: Warehouse,
    scope: Scope,
    *,
    grain: Grain | None = None,
    churn_days: int = CHURN_DAYS,
    loyal_months: int = LOYAL_MONTHS,
) -> pd.DataFrame:
    """New, loyal and churned members and all members per period (seed 000's member overview).

    Columns ``period``, ``start``, ``end`` and :data:`TREND_COLUMNS` (integers), one row per period
    of the scope (``grain`` defaults to the scope's). Definitions in the module docstring.
    """
    scope = at_grain(scope, grain)
    chosen = {
        "new_members": metric("new_customers"),
        "loyal_members": loyal_members(loyal_months),
        "churned_members": churned_customers(churn_days),
        "members": metric("members"),
    }
    series = timeseries(wh, list(chosen.values()), scope)
    names = {m.name: column for column, m in chosen.items()}
    wide = series.assign(metric=series["metric"].map(names)).pivot(
        index=["period", "start", "end"], columns="metric", values="value"
    )
    wide = wide[list(TREND_COLUMNS)].astype("int64").reset_index()
    wide.columns.name = None
    order = {p.label: i for i, p in enumerate(scope.periods())}
    return wide.sort_values("period", key=lambda s: s.map(order), ignore_index=True)


def _loyal(q: Query, months: int) -> Table:
    """The loyal-members builder: each period's ``months`` windows are periods of a second query,
    window ``j`` (0 = the latest) of period ``i`` at position ``j * n + i``.

    Windows with the same days are read once: at month grain window ``j`` of a month is window
    ``j - 1`` of the month after, so a year's 36 windows are 14 months, and each order row is
    joined to one window instead of three. Each distinct window then counts for every (period,
    position) it stands for: with at most :data:`_MASK_BITS` distinct windows, as a bit of each
    customer's mask that a period needs; else by joining the windows to the periods and
    counting each customer's per period.
    """
    n = len(q.periods)
    windows = [_month_window(p, j) for j in range(months) for p in q.periods]
    distinct: dict[tuple[date, date], int] = {}
    ids = [distinct.setdefault((w.start, w.end), len(distinct)) for w in windows]
    w = Query(q.wh, q.scope, [Period(f"{a}..{b}", a, b) for a, b in distinct], q.by, q.relabel)
    t = buyers(w.rows("orders"))
    t = w.customers_in(t.mutate(l__window=t.period_id), [*q.by, "customer_id", "l__window"])
    if len(distinct) <= _MASK_BITS:
        # each customer's windows as the bits of one integer, tested against each period's
        # windows: grouping by customer instead of by period and customer (whose groups are
        # as many as the rows) computed a year in 131-166 ms instead of 401 at 1M customers
        # (building, compiling and running the query, best of four). The bits come
        # from a table (a literal 1 shifted would be a 32-bit integer in Spark SQL).
        bits = ibis.memtable(
            pa.table(
                {
                    "l__id": pa.array(range(len(distinct)), pa.int64()),
                    "l__bit": pa.array([1 << k for k in range(len(distinct))], pa.int64()),
                }
            )
        )
        t = t.join(bits, t.l__window == bits.l__id)
        # a customer's window is one row here: the sum of the bits is their OR (which Spark's
        # Ibis compiler lacks)
        per = t.group_by([*q.by, "customer_id"]).aggregate(l__mask=t.l__bit.sum())
        needs = [0] * n
        for k, window in enumerate(ids):
            needs[k % n] |= 1 << window
        need = ibis.memtable(
            pa.table(
                {
                    "period_id": pa.array(range(n), pa.int64()),
                    "l__need": pa.array(needs, pa.int64()),
                }
            )
        )
        j = per.cross_join(need)
        loyal = j.filter((j.l__mask & j.l__need) == j.l__need)
        return q.group(loyal, loyal.count())
    stands_for = ibis.memtable(
        pa.table(
            {
                "l__id": pa.array(ids, pa.int64()),
                "period_id": pa.array([k % n for k in range(len(ids))], pa.int64()),
            }
        )
    )
    t = t.join(stands_for, t.l__window == stands_for.l__id)
    per = t.group_by([*q.keys, "customer_id"]).aggregate(windows=t.count())
    loyal = per.filter(per.windows == months)
    return q.group(loyal, loyal.count())


#: Distinct windows up to which :func:`_loyal` keeps each customer's as the bits of an integer
#: (a signed 64-bit one: Spark has no unsigned integers).
_MASK_BITS = 62


def _month_window(p: Period, j: int) -> Period:
    """The ``j``-th one-month window before the day after ``p`` ends (0 = the one ending on it):
    days ``end + 1 - (j + 1) months`` .. ``end + 1 - j months``, the latter excluded."""
    after = p.end + _ONE_DAY
    return Period(f"{p.label}-{j}", add_months(after, -j - 1), add_months(after, -j) - _ONE_DAY)
