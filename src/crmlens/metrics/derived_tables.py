"""What ``crmlens build`` writes for the metrics to read fast: the derived tables, declared as Ibis
expressions over the canonical tables (see :mod:`crmlens.warehouse.derived` for their life cycle and
:mod:`crmlens.metrics.facts` for when a query reads one).
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from crmlens.metrics.dimensions import DIMENSIONS
from crmlens.metrics.facts import (
    CUSTOMER_SCORES,
    FACTS,
    FIRST_ORDERS,
    LAYOUTS,
    NEXT,
    ORDER_CATEGORIES,
    PREV,
    Fact,
    bought,
    category_weights,
    column_of,
    join_customers,
    layout_name,
    of_customer,
    table,
)
from crmlens.warehouse import Warehouse


def derived_tables(wh: Warehouse) -> dict[str, Table]:
    """Every derived table, as an expression over the canonical tables (``crmlens build`` writes
    them):

    - per fact that declares one: the fact's table with every customer column a dimension reads
      (``c__<column>``, as :func:`scoped` joins them), ordered by the fact's time; the orders also
      with :data:`NEXT` and :data:`PREV`;
    - :data:`FIRST_ORDERS`: each customer's first completed order (``customer_id``, ``first_ts``),
      their first completed order on a later day (``return_ts``, NULL if none) and the same
      customer columns, ordered by ``first_ts``;
    - :data:`ORDER_CATEGORIES`: each order's categories and their shares of its amount
      (``l__order``, ``l__category``, ``l__weight``) with the order's time (``l__ts``), ordered by
      it: a breakdown by category then reads the period's rows instead of grouping every line;
    - :data:`crmlens.metrics.quality.TABLE_FIGURES`: what the data-quality report counts in each
      data table;
    - :data:`CUSTOMER_SCORES`: the customer models' scores with the customers' dimension columns
      (:func:`customer_scores`), by customer;
    - of the derived orders, first orders and customer scores, a copy per :class:`Layout` (the
      same rows ordered by place, and by customer segment, first), read from the first table.
    """
    out = {}
    for spec in FACTS.values():
        if spec.derived is not None:
            t = join_customers(wh, table(wh, spec.table), spec, list(spec.dimensions))
            t = t.drop("c__key")
            if spec.name == "orders":
                t = _with_neighbours(t, spec.time)
            out[spec.derived] = t.order_by(spec.time)
            out |= _laid_out(spec.derived, out[spec.derived], spec, spec.time)
    orders = FACTS["orders"]
    t = table(wh, orders.table)
    t = t.filter(bought(t))
    first = t.group_by("customer_id").aggregate(first_ts=t[orders.time].min())
    # the first completed order on a later day (retention asks how soon the customer came back)
    later = t.select(l__customer=t.customer_id, l__ts=t[orders.time])
    back = first.join(
        later,
        [
            first.customer_id == later.l__customer,
            later.l__ts >= first.first_ts.truncate("D") + ibis.interval(days=1),
        ],
    )
    back = back.group_by(r__customer=back.customer_id).aggregate(return_ts=back.l__ts.min())
    first = first.left_join(back, first.customer_id == back.r__customer).drop("r__customer")
    customer_dims = [d for d in orders.dimensions if of_customer("orders", [d])]
    first = join_customers(wh, first, orders, customer_dims)
    out[FIRST_ORDERS] = first.drop("c__key").order_by("first_ts")
    out |= _laid_out(FIRST_ORDERS, out[FIRST_ORDERS], orders, "first_ts")
    out[CUSTOMER_SCORES] = _customer_scores(wh)
    out |= _laid_out(CUSTOMER_SCORES, out[CUSTOMER_SCORES], FACTS["customers"], "customer_id")
    w = category_weights(wh)
    times = table(wh, orders.table)
    times = times.select(o__order=times.order_id, l__ts=times[orders.time].cast("timestamp"))
    w = w.join(times, w.l__order == times.o__order).drop("o__order")
    out[ORDER_CATEGORIES] = w.order_by(["l__ts", "l__order", "l__category"])
    # imported here: the quality module reads its derived table through usable_derived
    from crmlens.metrics.quality import TABLE_FIGURES, figures_table

    out[TABLE_FIGURES] = figures_table(wh)
    return out


def _laid_out(name: str, t: Table, spec: Fact, time: str) -> dict[str, Table]:
    """The layouts' copies of derived table ``name`` (``t``, ordered by ``time``): read from it as
    written (by :meth:`~crmlens.warehouse.Warehouse.write_derived`, which writes the tables in
    order) rather than computed again, ordered by the columns of the layout's dimensions that
    ``t`` has (NULLs last), then ``time``."""
    written = ibis.table(t.schema(), name=name)
    out = {}
    for layout in LAYOUTS:
        columns = [c for d in layout.dims if (c := column_of(spec, d)) in t.columns]
        out[layout_name(name, layout)] = written.order_by([*columns, time])
    return out


def _customer_scores(wh: Warehouse) -> Table:
    """:data:`CUSTOMER_SCORES`: every row of ``model_customer_scores`` (written by ``crmlens
    build``) of a customer on record, with the customer's columns the dimensions read under
    their own names (``region``, ``member_tier``, ``home_store_id``, ``birth_date``, …), by
    ``customer_id``."""
    spec = FACTS["customers"]
    scores = table(wh, "model_customer_scores")
    own = {DIMENSIONS[d].column or "birth_date" for d in spec.dimensions if d != "store"}
    columns = sorted(own | ({spec.store_key} if spec.store_key else set()))
    c = table(wh, "customers")
    c = c.select(v__id=c.customer_id, **{col: c[col] for col in columns})
    joined = scores.join(c, scores.customer_id == c.v__id)
    return joined.select(*scores.columns, *columns).order_by("customer_id")


def _with_neighbours(t: Table, time: str) -> Table:
    """Orders with :data:`NEXT` and :data:`PREV`: the neighbouring completed orders in time of the
    same customer (completed orders are numbered apart from the other rows)."""
    is_bought = bought(t)
    w = ibis.window(group_by=[t.customer_id, is_bought], order_by=[t[time], t.order_id])
    none = ibis.null("timestamp")
    return t.mutate(
        **{
            NEXT: ibis.ifelse(is_bought, t[time].lead().over(w), none),
            PREV: ibis.ifelse(is_bought, t[time].lag().over(w), none),
        }
    )
