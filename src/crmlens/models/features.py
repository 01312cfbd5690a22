"""Per-customer purchase features as Ibis expressions: the common input of RFM, clustering, churn.

Every function takes ``tables``, a callable from a canonical table name to an Ibis table (pass
``wh.table``), and returns an *unexecuted* Ibis expression; run it with ``wh.execute(expr)``.

The rules, shared by every model that builds on this module:

* **Customers.** Only orders with a ``customer_id`` count; walk-in orders without one (null or an
  empty string) are excluded. The ``customers`` table is not consulted, so a buyer missing from the
  member master still gets a row.
* **Purchases and refunds.** A row is a refund when ``is_refund`` is true, or when ``is_refund`` is
  missing and ``amount`` is negative; every other row is a purchase order. A refund that names its
  ``original_order_id`` is netted against that order (its amount is negative, so it is added). A
  refund that names no order, or an order that is not a counted purchase, is charged to the refund
  row's own customer: it lowers ``monetary`` but belongs to no transaction.
* **Time.** ``as_of`` is the observation point. A ``datetime`` is an instant (orders at or before it
  count); a ``date`` means the end of that day (orders on that day count). Purchases and refunds
  after ``as_of`` are ignored, so a refund made later does not change the past. ``since`` (a date,
  inclusive) drops purchases placed before it and the refunds of those purchases; unlinked refunds
  before ``since`` are dropped too.
* **Days.** ``recency_days`` and ``tenure_days`` are whole calendar days from the day of the last
  (first) purchase to the day of ``as_of``, the classic RFM convention: a purchase on the ``as_of``
  day has recency 0.

>>> import tempfile, pathlib
>>> from datetime import date
>>> from crmlens.warehouse import Warehouse
>>> wh = Warehouse(pathlib.Path(tempfile.mkdtemp()) / "w.duckdb")
>>> _ = wh.raw.execute(
...     "INSERT INTO orders (order_id, customer_id, order_time, amount, is_refund, original_order_id)"
...     " VALUES ('o1', 'c1', '2024-01-01 10:00', 100, false, NULL),"
...     " ('o2', 'c1', '2024-01-20 10:00', 50, false, NULL),"
...     " ('r1', 'c1', '2024-01-21 10:00', -20, true, 'o2'),"
...     " ('o3', NULL, '2024-01-22 10:00', 30, false, NULL)"
... )
>>> row = wh.execute(customer_features(wh.table, as_of=date(2024, 1, 31))).iloc[0]
>>> row.customer_id, int(row.recency_days), int(row.frequency), float(row.monetary), float(row.aov)
('c1', 11, 2, 130.0, 65.0)
>>> wh.close()
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

import ibis
import ibis.expr.types as ir

from crmlens.errors import ConfigError

#: A callable giving the Ibis table of a canonical table name, e.g. ``Warehouse.table``.
Tables = Callable[[str], ir.Table]


class QuerySource(Protocol):
    """What models that need results, not just expressions, take: a :class:`Warehouse`.

    They build their expressions from ``table`` and hand them to ``execute``, so the warehouse stays
    the only place that runs queries.
    """

    def table(self, name: str) -> ir.Table: ...

    def execute(self, expr: Any) -> Any: ...


#: The columns :func:`customer_features` returns, in order.
FEATURE_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "first_order",
    "last_order",
    "tenure_days",
    "aov",
)


def cutoff(as_of: datetime | date) -> tuple[datetime, bool]:
    """The instant bounding ``as_of`` and whether it is inclusive.

    A date means "through the end of that day", i.e. strictly before the next midnight.

    >>> cutoff(date(2024, 1, 31))
    (datetime.datetime(2024, 2, 1, 0, 0), False)
    >>> cutoff(datetime(2024, 1, 31, 12))
    (datetime.datetime(2024, 1, 31, 12, 0), True)
    """
    if isinstance(as_of, datetime):
        return as_of.replace(tzinfo=None), True
    if isinstance(as_of, date):
        return datetime.combine(as_of + timedelta(days=1), time()), False
    raise ConfigError(f"as_of must be a date or datetime; got {type(as_of).__name__} {as_of!r}")


def as_of_day(as_of: datetime | date) -> date:
    """The calendar day of ``as_of`` (recency and tenure are counted to it)."""
    cutoff(as_of)  # validates the type
    return as_of.date() if isinstance(as_of, datetime) else as_of


def up_to(column: ir.TimestampValue, as_of: datetime | date) -> ir.BooleanValue:
    """True for timestamps at or before ``as_of`` (a date: through the end of that day)."""
    bound, inclusive = cutoff(as_of)
    literal = ibis.timestamp(bound)
    return column <= literal if inclusive else column < literal


def from_day(column: ir.TimestampValue, since: date) -> ir.BooleanValue:
    """True for timestamps on or after the start of day ``since``."""
    return column >= ibis.timestamp(datetime.combine(since, time()))


def is_refund(orders: ir.Table) -> ir.BooleanValue:
    """True for refund rows: ``is_refund``, or a negative ``amount`` where the flag is missing."""
    return orders.is_refund.fill_null(orders.amount < 0)


def _known(customer_id: ir.StringValue) -> ir.BooleanValue:
    return customer_id.notnull() & (customer_id.strip() != "")


def signed_up(tables: Tables, *, as_of: datetime | date) -> ir.Table:
    """The ``customers`` rows signed up by ``as_of``, or with no sign-up time (kept, not guessed)."""
    customers = tables("customers")
    return customers.filter(customers.signup_date.isnull() | up_to(customers.signup_date, as_of))


def _purchases(tables: Tables, as_of: datetime | date, since: date | None) -> ir.Table:
    orders = tables("orders")
    keep = _known(orders.customer_id) & ~is_refund(orders) & up_to(orders.order_time, as_of)
    if since is not None:
        keep &= from_day(orders.order_time, since)
    return orders.filter(keep).select("order_id", "customer_id", "order_time", "amount")


def _refunds(tables: Tables, as_of: datetime | date) -> ir.Table:
    orders = tables("orders")
    keep = is_refund(orders) & up_to(orders.order_time, as_of)
    refunds = orders.filter(keep)
    return refunds.select(
        refund_customer_id=refunds.customer_id,
        refund_time=refunds.order_time,
        original_order_id=refunds.original_order_id,
        refund_amount=refunds.amount,
    )


def transactions(tables: Tables, *, as_of: datetime | date, since: date | None = None) -> ir.Table:
    """One row per purchase order up to ``as_of``, net of the refunds that name it.

    Columns: ``customer_id``, ``order_id``, ``order_time``, ``amount`` (the order's amount plus its
    linked refunds made up to ``as_of``, so a fully refunded order has amount 0). Rules as in the
    module docstring; unlinked refunds are not here (see :func:`customer_features`).
    """
    purchases = _purchases(tables, as_of, since)
    refunds = _refunds(tables, as_of)
    per_order = refunds.group_by("original_order_id").aggregate(
        refunded=refunds.refund_amount.sum()
    )
    joined = purchases.left_join(per_order, purchases.order_id == per_order.original_order_id)
    return joined.select(
        "customer_id",
        "order_id",
        "order_time",
        amount=joined.amount + joined.refunded.fill_null(0.0),
    )


def _unlinked_refunds(tables: Tables, as_of: datetime | date, since: date | None) -> ir.Table:
    """Per customer: refunds whose original order is not a purchase up to ``as_of``.

    Matched against all purchases, not only those since ``since``: a refund of a purchase placed
    before the window belongs to that purchase, outside the window, not to the customer's total.
    """
    purchases = _purchases(tables, as_of, None)
    refunds = _refunds(tables, as_of)
    orphan = refunds.anti_join(purchases, refunds.original_order_id == purchases.order_id)
    keep = _known(orphan.refund_customer_id)
    if since is not None:
        keep &= from_day(orphan.refund_time, since)
    orphan = orphan.filter(keep)
    return orphan.group_by(customer_id=orphan.refund_customer_id).aggregate(
        unlinked=orphan.refund_amount.sum()
    )


def customer_features(
    tables: Tables, *, as_of: datetime | date, since: date | None = None
) -> ir.Table:
    """One row per customer with at least one purchase order in ``[since, as_of]``.

    Columns (see :data:`FEATURE_COLUMNS`): ``customer_id``; ``recency_days`` (days from the last
    purchase to ``as_of``); ``frequency`` (distinct purchase orders); ``monetary`` (net revenue:
    purchases plus all their refunds up to ``as_of``, plus the customer's unlinked refunds);
    ``first_order`` and ``last_order`` (timestamps of the first and last purchase); ``tenure_days``
    (days from the first purchase to ``as_of``); ``aov`` (``monetary / frequency``). Rules in the
    module docstring.
    """
    day = ibis.date(as_of_day(as_of))
    tx = transactions(tables, as_of=as_of, since=since)
    per_customer = tx.group_by("customer_id").aggregate(
        frequency=tx.order_id.nunique(),
        revenue=tx.amount.sum(),
        first_order=tx.order_time.min(),
        last_order=tx.order_time.max(),
    )
    unlinked = _unlinked_refunds(tables, as_of, since)
    joined = per_customer.left_join(unlinked, per_customer.customer_id == unlinked.customer_id)
    monetary = joined.revenue + joined.unlinked.fill_null(0.0)
    return joined.select(
        customer_id=joined.customer_id,
        recency_days=day.delta(joined.last_order.date(), unit="day"),
        frequency=joined.frequency,
        monetary=monetary,
        first_order=joined.first_order,
        last_order=joined.last_order,
        tenure_days=day.delta(joined.first_order.date(), unit="day"),
        aov=monetary / joined.frequency,
    ).order_by("customer_id")
