"""The facts KPIs measure, and :func:`scoped`: the one place a scope becomes row filters.

A fact is a canonical table read as events in time (orders, sign-ups, tickets, …) together with the
keys through which it reaches the dimensions. :func:`scoped` returns a fact's rows with each
requested or filtered dimension resolved to a column named after the dimension, joining
``customers``, ``products`` or the order lines only when a dimension needs them, and keeps only the
rows the scope's filters and row limits allow. Metric builders get their rows from nowhere else.

A fact may declare a *derived* copy of its table
(:func:`~crmlens.metrics.derived_tables.derived_tables`, written by ``crmlens build``): the orders
with every customer attribute a dimension needs beside them, in time order.
:func:`scoped` reads it when it is present with the expected columns (a load drops it; see
:mod:`crmlens.warehouse.derived`), which saves the join to ``customers`` and lets a period's scan
skip the other periods' rows; the rows it returns are the same either way. A scope filtering a
place or a customer segment reads a copy of it in that order instead (:class:`Layout`). The
derived first orders (:func:`first_orders`) and each order's neighbours (:func:`sequenced`) let
builders count customers instead of hashing their IDs.

Missing dimension values become :data:`~crmlens.metrics.dimensions.UNKNOWN` (a walk-in order has no
tier), so breakdowns add up to the total and grouping keys are never NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from weakref import WeakKeyDictionary

import ibis
import ibis.expr.datatypes as dt
from ibis.expr.types import BooleanValue, StringValue, Table

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import AGE_BANDS, DIMENSIONS, OTHER, UNKNOWN, age_band_label
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.warehouse import Warehouse


@dataclass(frozen=True)
class Fact:
    """A table measured as events in time, and how its rows reach each dimension."""

    name: str
    table: str
    #: The column placing a row in time (a timestamp or a date).
    time: str
    description: str
    #: The primary key (unique and never NULL: the loader merges rows sharing it), so a distinct
    #: count of it can be a row count (:meth:`crmlens.metrics.query.Query.count_distinct`).
    key: str | None = None
    customer_key: str | None = None
    store_key: str | None = None
    #: Reaches ``products`` through this SKU column (for the product dimensions).
    sku_key: str | None = None
    #: Reaches ``products`` through ``order_lines``, splitting ``amount`` over the categories.
    order_lines: bool = False
    #: Dimensions held in a column of the fact itself: (dimension, column).
    columns: tuple[tuple[str, str], ...] = ()
    #: The derived table holding this fact's rows with the customer columns joined, in time
    #: order (see :func:`~crmlens.metrics.derived_tables.derived_tables`).
    derived: str | None = None
    #: The columns of the table the metrics read, when not all (:func:`scoped` returns only
    #: these: every column more is carried through each join and projection of a query).
    reads: tuple[str, ...] | None = None

    def supports(self, name: str) -> bool:
        """Whether rows of this fact can be filtered and grouped by dimension ``name``."""
        if name in dict(self.columns):
            return True
        source = DIMENSIONS[name].source
        if source in ("customer", "age"):
            return self.customer_key is not None
        if source == "store":
            return self.store_key is not None
        if source == "product":
            return self.sku_key is not None or self.order_lines
        return False

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every dimension this fact supports, in the declared order."""
        return tuple(d for d in DIMENSIONS if self.supports(d))


# fmt: off
FACTS: dict[str, Fact] = {f.name: f for f in (
    Fact("orders", "orders", "order_time", "Orders and refunds (refunds are rows with a negative amount, dated when refunded).",
         key="order_id", customer_key="customer_id", store_key="store_id", order_lines=True,
         columns=(("order_channel", "order_channel"),), derived="derived__orders",
         reads=("order_id", "customer_id", "store_id", "order_channel", "amount", "is_refund")),
    Fact("customers", "customers", "signup_date", "Customers, placed in time by their signup.",
         customer_key="customer_id", store_key="home_store_id"),
    Fact("tickets", "service_tickets", "opened_at", "Service tickets, placed in time when opened.",
         customer_key="customer_id", store_key="store_id", sku_key="sku",
         columns=(("ticket_type", "ticket_type"),)),
    Fact("surveys", "survey_responses", "responded_at", "Survey responses.",
         customer_key="customer_id", store_key="store_id"),
    Fact("touches", "campaign_touches", "sent_at", "Campaign messages sent to customers.",
         customer_key="customer_id"),
    Fact("spend", "channel_spend", "spend_date", "Daily marketing spend and clicks per channel.",
         columns=(("channel", "channel_id"),)),
)}
# fmt: on


def done(t: Table) -> BooleanValue:
    """Whether an orders row is a completed order (not a refund)."""
    return ~t.is_refund.fill_null(False)


def bought(t: Table) -> BooleanValue:
    """Whether an orders row is a completed order placed by an identified customer (walk-ins have
    no customer_id)."""
    return done(t) & t.customer_id.notnull()


def fact(name: str) -> Fact:
    """The fact called ``name``; :class:`ConfigError` if unknown."""
    try:
        return FACTS[name]
    except KeyError:
        raise ConfigError(f"unknown fact {name!r}; expected one of: {', '.join(FACTS)}") from None


#: The table expressions of each open warehouse, by name (see :func:`table`).
_TABLES: WeakKeyDictionary[Warehouse, dict[str, Table]] = WeakKeyDictionary()
#: The derived tables usable in each open warehouse, as of its write generation.
_DERIVED: WeakKeyDictionary[Warehouse, tuple[int, dict[str, Table]]] = WeakKeyDictionary()


def table(wh: Warehouse, name: str) -> Table:
    """``wh.table(name)``, looked up once per open warehouse.

    Ibis asks the database for the schema on every lookup and parses each column's type, which
    took a quarter of the time to build a KPI's expression; a canonical table's schema does not
    change while the warehouse is open (it is migrated when opened), and the expression holds no
    data, only the name and the schema.
    """
    tables = _TABLES.setdefault(wh, {})
    if name not in tables:
        tables[name] = wh.table(name)
    return tables[name]


#: The derived table of each customer's first completed order (see :func:`first_orders`).
FIRST_ORDERS = "derived__first_orders"
#: The derived table of the customer models' scores with the customers' dimension columns (see
#: :func:`customer_scores`).
CUSTOMER_SCORES = "derived__customer_scores"
#: The derived table of each order's share per category of its lines, with the order's time (see
#: :func:`_split_over_categories`).
ORDER_CATEGORIES = "derived__order_categories"
#: Columns of the derived orders: for a completed order of an identified customer (:func:`bought`),
#: the time of that customer's next and previous such order (NULL for the last and the first, and
#: on other rows), in the order of time then order_id. See :func:`sequenced`.
NEXT, PREV = "seq__next_ts", "seq__prev_ts"


@dataclass(frozen=True)
class Layout:
    """A second copy of a derived table with its rows ordered by the columns of ``dims`` before
    time (named ``<table>__<name>``), read instead of the time-ordered one by a scope that filters
    one of ``dims``: the rows it keeps are then contiguous, so DuckDB skips the row groups of the
    other places or segments instead of comparing every row's value (at 1M customers a city's
    orders over two years: 5 ms against 31). The time-ordered table stays the one for any other
    scope: there a period's rows are contiguous."""

    name: str
    dims: tuple[str, ...]


#: The layouts, in the order a scope filtering dimensions of several picks them (the first: a
#: city is a narrower slice than a tier).
LAYOUTS = (
    Layout("by_place", ("region", "city", "store")),
    Layout("by_segment", ("customer_type", "tier")),
)


def layout_name(derived_name: str, layout: Layout) -> str:
    """The name of ``layout``'s copy of a derived table.

    >>> layout_name("derived__orders", LAYOUTS[0])
    'derived__orders__by_place'
    """
    return f"{derived_name}__{layout.name}"


def customer_scores(wh: Warehouse, scope: Scope, dims: Sequence[str] = ()) -> Table | None:
    """``model_customer_scores`` rows of the customers ``scope`` allows, with dimensions ``dims``
    as columns, read from :data:`CUSTOMER_SCORES` (or a :class:`Layout`'s copy of it) and
    filtered as :func:`scoped` filters the customers fact; None when that table is not usable.
    The same rows as the scores joined to ``scoped(wh, "customers", scope, dims=dims)``, without
    the join (at 1M customers, a tier's CLV by segment: 16 ms against 78)."""
    copy = _read(wh, CUSTOMER_SCORES, scope)
    if copy is None:
        return None
    spec = FACTS["customers"]
    _check_supported(spec, [*dims, *scope.constraints()])
    t, columns = _slice(copy, spec, scope, dims, None, own={})
    return t.select(*table(wh, "model_customer_scores").columns, **columns)


def sequenced(wh: Warehouse, name: str, scope: Scope, dims: Sequence[str]) -> bool:
    """Whether :func:`scoped` rows of fact ``name`` carry :data:`NEXT` and :data:`PREV` and these
    are the neighbours among the rows the scope keeps: the derived orders are used, the rows are
    not split over categories, and every dimension grouped by or filtered on is an attribute of
    the customer (so a customer's orders are all kept or none).

    Then the distinct customers with a completed order in ``[lo, hi)`` are the completed orders in
    it whose next one is not before ``hi`` (each customer's last one there): a count, where a
    distinct count would hash every customer ID.
    """
    copy = derived(wh, fact(name), scope)
    return (
        copy is not None
        and NEXT in copy.columns
        and not splits(name, scope, dims)
        and of_customer(name, [*dims, *scope.constraints()])
    )


def usable_derived(wh: Warehouse) -> dict[str, Table]:
    """The derived tables the warehouse has with exactly the columns and types
    :func:`~crmlens.metrics.derived_tables.derived_tables` gives (one written by another crmlens
    version is not used); checked again after every write through ``wh`` (a load drops derived
    tables)."""
    generation = getattr(wh, "generation", 0)
    known = _DERIVED.get(wh)
    if known is None or known[0] != generation:
        present = wh.derived_names() if hasattr(wh, "derived_names") else frozenset()
        usable = {}
        if present:
            # imported here: the declarations build on this module's tables and joins
            from crmlens.metrics.derived_tables import derived_tables

            for name, expr in derived_tables(wh).items():
                if name in present:
                    stored = wh.derived_table(name)
                    if _same_columns(stored.schema(), expr.schema()):
                        usable[name] = stored
        known = (generation, usable)
        _DERIVED[wh] = known
    return known[1]


def _same_columns(stored: ibis.Schema, expected: ibis.Schema) -> bool:
    """Same column names and types, in order; a stored column may be NULL where the expression's
    cannot, and timestamps match whatever their stored precision."""

    def plain(dtype: dt.DataType) -> dt.DataType:
        return dt.Timestamp() if dtype.is_timestamp() else dtype.copy(nullable=True)

    return list(stored.names) == list(expected.names) and all(
        plain(a) == plain(b) for a, b in zip(stored.types, expected.types, strict=True)
    )


def derived(wh: Warehouse, spec: Fact, scope: Scope | None = None) -> Table | None:
    """The derived table of ``spec`` when the warehouse has a usable one, else None; for a
    ``scope`` filtering a dimension of a :class:`Layout`, that layout's copy when usable."""
    return None if spec.derived is None else _read(wh, spec.derived, scope)


def _read(wh: Warehouse, name: str, scope: Scope | None) -> Table | None:
    """Derived table ``name``, or the copy of the first layout whose dimensions ``scope``
    filters (the same rows: the results are the same, only faster), when usable."""
    usable = usable_derived(wh)
    constrained = set(scope.constraints()) if scope is not None else set()
    for layout in LAYOUTS:
        copy = usable.get(layout_name(name, layout))
        if copy is not None and constrained & set(layout.dims):
            return copy
    return usable.get(name)


def first_orders(
    wh: Warehouse,
    scope: Scope,
    dims: Sequence[str] = (),
    relabel: Mapping[str, frozenset[str]] | None = None,
) -> Table | None:
    """``customer_id``, ``ts`` (the first completed order's time), ``return_ts`` (the first one on
    a later day, NULL if none) and one column per dimension in ``dims``, of each customer the
    scope allows, read from :data:`FIRST_ORDERS`; None when that table is not usable or a
    requested or constrained dimension is not an attribute of the customer (a store filter makes
    the first order *at that store* the one that counts, which only the orders can say)."""
    copy = _read(wh, FIRST_ORDERS, scope)
    if copy is None or not of_customer("orders", [*dims, *scope.constraints()]):
        return None
    t, columns = _slice(copy, FACTS["orders"], scope, dims, relabel, own={})
    return t.select("customer_id", "return_ts", ts=t.first_ts, **columns)


def splits(name: str, scope: Scope, dims: Sequence[str]) -> bool:
    """Whether :func:`scoped` returns several rows per row of fact ``name`` for these ``dims``:
    orders are split over their categories when a category is asked for or filtered on."""
    spec = fact(name)
    return spec.order_lines and ("category" in dims or "category" in scope.constraints())


def of_customer(name: str, dims: Sequence[str]) -> bool:
    """Whether every dimension in ``dims`` reaches fact ``name`` through its customer (an
    attribute of the customer's master record), so that grouping by them puts each customer in
    one group."""
    spec = fact(name)
    own = dict(spec.columns)
    return spec.customer_key is not None and all(
        d not in own and DIMENSIONS[d].source in ("customer", "age") for d in dims
    )


def scoped(
    wh: Warehouse,
    name: str,
    scope: Scope,
    *,
    dims: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    relabel: Mapping[str, frozenset[str]] | None = None,
) -> Table:
    """Rows of fact ``name`` allowed by ``scope``, with dimensions ``dims`` as columns.

    The result has the fact table's columns (those the metrics read, :attr:`Fact.reads`), ``ts``
    (its time column as a timestamp) and one column per dimension in ``dims``; read from the
    derived orders, also :data:`NEXT` and :data:`PREV`. Rows are kept when ``since <= ts <
    until`` (either bound optional; the caller picks the window, since some KPIs look back before
    the scope) and when every
    constrained dimension (filters ∩ row limits) has an allowed value. ``relabel`` maps a dimension
    to the values to keep; other values become :data:`OTHER` (for top-N breakdowns), after
    filtering. :class:`NotApplicableError` if the fact cannot reach a requested or constrained
    dimension: silently ignoring a filter would show rows the user did not ask for or may not see.
    """
    spec = fact(name)
    constraints = scope.constraints()
    wanted = list(dict.fromkeys([*dims, *constraints]))
    _check_supported(spec, wanted)
    t = table(wh, spec.table)
    base = [c for c in spec.reads or t.columns if c not in dims]
    copy = derived(wh, spec, scope)
    if copy is not None:
        t = copy
    # one filter per stage keeps the expression shallow: Ibis compile time grows with depth
    window = []
    if since is not None:
        window.append(t[spec.time].cast("timestamp") >= since)
    if until is not None:
        window.append(t[spec.time].cast("timestamp") < until)
    if window:
        t = t.filter(*window)
    if splits(name, scope, dims):
        t = _split_over_categories(wh, t, since, until)
    if copy is None:
        t = join_customers(wh, t, spec, wanted)
    if spec.sku_key and "category" in wanted:
        products = table(wh, "products")
        p = products.select(p__sku=products.sku, p__category=products.category)
        t = t.left_join(p, t[spec.sku_key] == p.p__sku)
    t, columns = _slice(t, spec, scope, dims, relabel, dict(spec.columns))
    neighbours = [c for c in (NEXT, PREV) if copy is not None and c in copy.columns]
    return t.select(*base, *neighbours, ts=t[spec.time].cast("timestamp"), **columns)


def _check_supported(spec: Fact, wanted: Sequence[str]) -> None:
    """:class:`NotApplicableError` if ``spec`` cannot reach one of the ``wanted`` dimensions:
    silently ignoring a filter would show rows the user did not ask for or may not see."""
    unsupported = [d for d in dict.fromkeys(wanted) if not spec.supports(d)]
    if unsupported:
        raise NotApplicableError(
            f"{spec.table} cannot be filtered or grouped by {', '.join(unsupported)}; "
            f"it supports: {', '.join(spec.dimensions) or 'no dimensions'}"
        )


def _slice(
    t: Table,
    spec: Fact,
    scope: Scope,
    dims: Sequence[str],
    relabel: Mapping[str, frozenset[str]] | None,
    own: dict[str, str],
) -> tuple[Table, dict[str, StringValue]]:
    """``t`` (rows of ``spec`` with the columns the dimensions need) keeping the rows whose
    constrained dimensions have allowed values, and the expression of each dimension in ``dims``
    on them (to select: one projection keeps the expression shallow)."""
    constraints = scope.constraints()
    if constraints:
        t = t.filter(*[_allows(t, spec, d, own, scope.end, v) for d, v in constraints.items()])
    columns = {d: _resolve(t, spec, d, own, scope.end) for d in dims}
    for d, keep in (relabel or {}).items():
        if d in columns:
            columns[d] = ibis.ifelse(columns[d].isin(sorted(keep)), columns[d], OTHER)
    return t, columns


def join_customers(wh: Warehouse, t: Table, spec: Fact, wanted: list[str]) -> Table:
    """Join the customer columns the wanted dimensions need (unless the fact is customers)."""
    if spec.table == "customers" or spec.customer_key is None:
        return t
    own = dict(spec.columns)
    columns = {
        DIMENSIONS[d].column or "birth_date"
        for d in wanted
        if d not in own and DIMENSIONS[d].source in ("customer", "age")
    }
    if not columns:
        return t
    c = table(wh, "customers")
    c = c.select(c__key=c.customer_id, **{f"c__{col}": c[col] for col in sorted(columns)})
    return t.left_join(c, t[spec.customer_key] == c.c__key)


def _allows(
    t: Table, spec: Fact, name: str, own: dict[str, str], end: date, allowed: frozenset[str]
) -> BooleanValue:
    """Whether dimension ``name`` has one of the ``allowed`` values on a row. Unless UNKNOWN is
    allowed, a column holding the value is compared as it is: a missing value is not allowed
    either way, and a plain comparison reaches the scan (DuckDB then skips row groups and
    compares dictionary codes), while one behind the NULL replacement is evaluated row by row."""
    column = _column(t, spec, name, own)
    if column is not None and UNKNOWN not in allowed:
        return column.cast("string").isin(sorted(allowed))
    return _resolve(t, spec, name, own, end).isin(sorted(allowed))


def column_of(spec: Fact, name: str) -> str | None:
    """The name of the column holding customer or store dimension ``name`` on rows of ``spec``
    with the customer columns joined (as :func:`scoped` joins them, and the derived tables hold
    them): ``c__<column>``, the customers' own column, or the fact's store key; None for other
    dimensions."""
    dim = DIMENSIONS[name]
    if dim.source == "customer":
        return dim.column if spec.table == "customers" else f"c__{dim.column}"
    if dim.source == "store":
        return spec.store_key
    return None


def _column(t: Table, spec: Fact, name: str, own: dict[str, str]) -> ibis.Value | None:
    """The column holding dimension ``name`` on the joined rows; None when it is computed (age
    bands) or comes from the split over categories."""
    if name in own:
        return t[own[name]]
    dim = DIMENSIONS[name]
    if dim.source == "product" and not spec.order_lines:
        return t[f"p__{dim.column}"]
    column = column_of(spec, name)
    return None if column is None else t[column]


def _resolve(t: Table, spec: Fact, name: str, own: dict[str, str], end: date) -> StringValue:
    """The expression of dimension ``name`` on the joined rows, NULL replaced by UNKNOWN."""
    column = _column(t, spec, name, own)
    if column is not None:
        return column.cast("string").fill_null(UNKNOWN)
    if DIMENSIONS[name].source == "age":
        prefix = "" if spec.table == "customers" else "c__"
        return _age_band(t[f"{prefix}birth_date"], end)
    return t.category  # product, of orders: already split over the order's categories


def _age_band(birth: ibis.Value, end: date) -> StringValue:
    """Age band on ``end``: whole years, one less if the birthday is still to come that year."""
    later = (birth.month() * 100 + birth.day()) > (end.month * 100 + end.day)
    age = end.year - birth.year() - later.cast("int64")
    branches = [(age < upper, age_band_label(lower)) for lower, upper in pairwise(AGE_BANDS)]
    return ibis.cases((birth.isnull(), UNKNOWN), *branches, else_=age_band_label(AGE_BANDS[-1]))


def category_weights(wh: Warehouse) -> Table:
    """Per order and category of its lines: ``l__order``, ``l__category`` and ``l__weight``, the
    category's share of the order's line amounts (an order whose lines add up to zero is split
    evenly; lines of an unknown SKU count under UNKNOWN)."""
    lines = table(wh, "order_lines")
    products = table(wh, "products")
    p = products.select(p__sku=products.sku, p__category=products.category)
    lp = lines.left_join(p, lines.sku == p.p__sku)
    lp = lp.mutate(cat=lp.p__category.fill_null(UNKNOWN), amt=lp.amount.fill_null(0.0))
    per = lp.group_by([lp.order_id, lp.cat]).aggregate(cat_amount=lp.amt.sum())
    tot = per.group_by(per.order_id).aggregate(total=per.cat_amount.sum(), k=per.count())
    w = per.join(tot, "order_id")
    return w.select(
        l__order=w.order_id,
        l__category=w.cat,
        l__weight=ibis.ifelse(w.total != 0, w.cat_amount / w.total, 1.0 / w.k),
    )


def _split_over_categories(
    wh: Warehouse, orders: Table, since: datetime | None, until: datetime | None
) -> Table:
    """One row per order and category, ``amount`` split pro rata to the category's line amounts
    (:func:`category_weights`); ``orders`` are the rows in ``[since, until)``.

    Totals are preserved: the shares of an order add up to one, and an order without lines keeps
    its whole amount under UNKNOWN. The shares are read from :data:`ORDER_CATEGORIES` when it is
    usable, only those of the window's orders (it is in time order: the scan skips the rest).
    """
    copy = usable_derived(wh).get(ORDER_CATEGORIES)
    if copy is None:
        w = category_weights(wh)
    else:
        window = []
        if since is not None:
            window.append(copy.l__ts >= since)
        if until is not None:
            window.append(copy.l__ts < until)
        w = (copy.filter(*window) if window else copy).drop("l__ts")
    t = orders.left_join(w, orders.order_id == w.l__order)
    return t.mutate(
        amount=t.amount * t.l__weight.fill_null(1.0), category=t.l__category.fill_null(UNKNOWN)
    )
