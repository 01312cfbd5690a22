"""Turn the rows of a source and its :class:`IngestMapping` into what the warehouse loader takes.

The loader (``crmlens.warehouse.loading``) parses values, applies rules, merges duplicates and
accounts for every row. This module does what it cannot do row by row, on the text, first:

* **cleaning**: IDs exported as floats (``17850.0`` → ``17850``); money symbols and units
  (``¥``, ``$``, ``元``, ``RMB``); day/month/year dates in the declared order (``3/5/2021``);
  Excel serial day numbers; money in other currencies converted with a rates table.
* **generated columns**: ``<file stem>-<line>`` IDs for files without one, and line positions
  within an order; with ``exact_duplicates = "merge"`` an exact copy of an earlier row gets that
  row's generated values, so that the loader merges it (and counts it) as a duplicate.
* **derived tables**: a line file describing its orders (``orders.*`` columns) yields one order
  per order ID (its first line's values; amount = Σ line amounts), and one customer per customer
  ID (its last line's ``customers.*`` values); refunds may be linked to the order they refund.
* **rules**: refunds (negative amounts linked to an order, or order IDs with a prefix), negative
  amounts that are not refunds (quarantined as ``negative_amount_not_refund``), orders without a
  customer (guests, or quarantined), defaults for missing values (recorded as inferred).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmlens.errors import ConfigError
from crmlens.ingest.attributes import attribute_sources
from crmlens.ingest.files import FILE_COLUMN, LINE_COLUMN, RawTable
from crmlens.ingest.load import Prepared
from crmlens.ingest.mapping_file import ATTRIBUTE_HOMES, ColumnRule, IngestMapping
from crmlens.schema import table
from crmlens.warehouse.loading import ColumnSpec, Derive, Infer, RowRule, SourceRows, TableMapping
from crmlens.warehouse.loading.values import lit

_SYMBOL_BEFORE = r"^\s*([+-]?)\s*[¥￥$€£]\s*"  # the sign may come before the symbol: -¥5
_UNIT_AFTER = r"\s*(元|RMB|CNY|USD|EUR)\s*$"
_EXCEL_EPOCH = datetime(1899, 12, 30)  # serial 1 = 1900-01-01, after Excel's 1900 leap-day bug
_SERIAL = r"^\s*[2-7]\d{4}(\.\d+)?\s*$"
_XY_YEAR = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})"
SUM_HEADER = "Σ line amounts"
LINK_HEADER = "refunded order (linked)"


def _type(table_name: str, column: str) -> str:
    return table(table_name).column(column).type


def _kind(table_name: str, rule: ColumnRule) -> str:
    return rule.kind or _type(table_name, rule.target)


def _replace(arrow: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return arrow.set_column(arrow.schema.get_field_index(name), name, values)


def _map_values(col: pa.ChunkedArray, mask_regex: str, fn: Callable[[str], str]) -> pa.Array:
    """``fn`` over the values matching ``mask_regex`` (each distinct value once), others kept."""
    col = col.combine_chunks()
    mask = pc.fill_null(pc.match_substring_regex(col, mask_regex), False)
    if not pc.any(mask).as_py():
        return col
    distinct = {v: fn(v) for v in pc.unique(pc.filter(col, mask)).to_pylist()}
    return pa.array(
        [
            distinct.get(v, v) if m else v
            for v, m in zip(col.to_pylist(), mask.to_pylist(), strict=True)
        ],
        pa.string(),
    )


def _excel_date(text: str) -> str:
    return (_EXCEL_EPOCH + timedelta(days=float(text))).strftime("%Y-%m-%d %H:%M:%S")


def clean(raw: RawTable, mapping: IngestMapping) -> pa.Table:
    """The source text with the cleaning of the module docstring applied, column by column."""
    arrow = raw.arrow
    order = mapping.rule("date_order")
    done: set[tuple[str, str]] = set()
    # (header, kind, clean) of every mapped header: the columns', then the attributes'
    steps = [
        (
            r.header,
            _kind(r.table_column[0] or mapping.kind, replace(r, target=r.table_column[1])),
            r.clean,
        )
        for r in mapping.columns
        if r.header
    ] + [(a.header, a.kind, None) for a in mapping.attributes]
    for header, kind, cleaning in steps:
        step = "id" if cleaning == "id" else kind
        if (header, step) in done:
            continue
        done.add((header, step))
        col = arrow.column(header)
        if step == "id":
            col = pc.replace_substring_regex(col, r"^(\d+)\.0+$", r"\1")
        elif kind == "money":
            col = pc.replace_substring_regex(col, _SYMBOL_BEFORE, r"\1")
            col = pc.replace_substring_regex(col, _UNIT_AFTER, "")
            if mapping.currency:
                col = _convert(col, arrow.column(mapping.currency.column), mapping)
        elif kind in ("date", "timestamp"):
            if order in ("dmy", "mdy"):
                swap = r"\3-\2-\1" if order == "dmy" else r"\3-\1-\2"
                col = pc.replace_substring_regex(col, _XY_YEAR, swap)
            col = _map_values(col, _SERIAL, _excel_date)
        else:
            continue
        arrow = _replace(arrow, header, col)
    return arrow


def _convert(
    amounts: pa.ChunkedArray, currencies: pa.ChunkedArray, mapping: IngestMapping
) -> pa.Array:
    """Amounts in the base currency; one without a rate keeps its text and a note (a bad value)."""
    cur = mapping.currency
    assert cur is not None
    rates = {k.upper(): float(v) for k, v in cur.rates.items()} | {cur.base.upper(): 1.0}
    out = []
    for amount, code in zip(amounts.to_pylist(), currencies.to_pylist(), strict=True):
        code = (code or cur.base).strip().upper()
        if amount is None:
            out.append(None)
            continue
        try:
            value = float(amount.replace(",", ""))
        except ValueError:
            out.append(amount)  # the loader rejects it as a bad number, showing the text
            continue
        rate = rates.get(code)
        out.append(
            repr(round(value * rate, 6))
            if rate is not None
            else f"{amount} {code} (no rate to {cur.base})"
        )
    return pa.array(out, pa.string())


def _generated_name(target: str) -> str:
    return f"({target}, generated)"


def _row_keys(arrow: pa.Table, headers: tuple[str, ...]) -> list[tuple]:
    return list(zip(*(arrow.column(h).to_pylist() for h in headers), strict=True))


def origins(arrow: pa.Table, raw: RawTable, mapping: IngestMapping) -> list[int] | None:
    """Per row, the first row it is an exact copy of (itself if none); None when copies are kept."""
    if mapping.rule("exact_duplicates") != "merge":
        return None
    first: dict[tuple, int] = {}
    return [first.setdefault(r, i) for i, r in enumerate(_row_keys(arrow, raw.headers))]


def generate(arrow: pa.Table, origin: list[int] | None, mapping: IngestMapping) -> pa.Table:
    """Add the generated columns (``row`` IDs, ``position`` line numbers); a copy of an earlier
    row (``origin``) gets that row's values.

    Computed on Arrow and numpy arrays, never on a Python object per row: memory stays near the
    size of the columns however many rows there are.
    """
    gens = [c for c in mapping.columns if c.generate]
    if not gens:
        return arrow
    take = None if origin is None else pa.array(origin, pa.int64())
    for rule in gens:
        if rule.generate == "row":
            # <file stem>-<line>: the stem drops the last suffix, as rsplit(".", 1)[0] does
            stems = pc.replace_substring_regex(arrow.column(FILE_COLUMN), r"\.[^.]*$", "")
            ids = pc.binary_join_element_wise(
                stems, pc.cast(arrow.column(LINE_COLUMN), pa.string()), "-"
            )
            values = ids if take is None else ids.take(take)
        else:
            order_rule = next(
                (c for c in mapping.columns if c.target == "order_id" and c.header), None
            )
            if order_rule is None:
                raise ConfigError(
                    "generate = 'position' numbers lines within an order: map order_id"
                )
            positions = _positions(arrow.column(order_rule.header), origin)
            values = pa.array(positions, pa.int64()).cast(pa.string())
        arrow = arrow.append_column(_generated_name(rule.target), values)
    return arrow


def _positions(orders: pa.ChunkedArray, origin: list[int] | None) -> np.ndarray:
    """Each row's position (from 1) among the rows of its order, in row order; a copy of an
    earlier row (``origin``) is not counted and gets that row's position.

    >>> _positions(pa.chunked_array([["A", "B", "A", None, "A"]]), None).tolist()
    [1, 1, 2, 1, 3]
    >>> _positions(pa.chunked_array([["A", "A", "A"]]), [0, 0, 2]).tolist()
    [1, 1, 2]
    """
    n = len(orders)
    groups = pc.fill_null(orders.combine_chunks().dictionary_encode().indices, -1)
    group = np.asarray(groups.to_numpy(zero_copy_only=False), dtype=np.int64)
    own = np.arange(n) if origin is None else np.flatnonzero(np.asarray(origin) == np.arange(n))
    mine = group[own]
    by_group = np.argsort(mine, kind="stable")  # stable: row order within a group
    ranked = mine[by_group]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(ranked)]))
    counted = np.empty(len(mine), np.int64)
    counted[by_group] = np.arange(len(mine)) - first + 1
    positions = np.zeros(n, np.int64)
    positions[own] = counted
    return positions if origin is None else positions[np.asarray(origin)]


def _source(rule: ColumnRule) -> str | None:
    return _generated_name(rule.target) if rule.generate else rule.header


def _columns(
    table_name: str, rules: tuple[ColumnRule, ...]
) -> tuple[tuple[ColumnSpec, ...], tuple[Infer, ...]]:
    specs, infers = [], []
    for r in rules:
        specs.append(
            ColumnSpec(r.target, _source(r), kind=r.kind, value=r.value, required=r.required)
        )  # type: ignore[arg-type]
        if r.default is not None:
            sql_value = (
                r.default
                if _type(table_name, r.target) in ("int", "float", "money", "bool")
                else lit(r.default)
            )
            infers.append(
                Infer(r.target, sql_value, f"default_{r.target}", reject_if_missing=False)
            )
    return tuple(specs), tuple(infers)


#: Rule-based outliers, per canonical table: the rows load unchanged and each is recorded in the
#: quarantine log with action ``flagged`` (D3). A session under 10 s is a bounce or a bot, one over
#: 24 h a tab left open or a tracking fault; analyses can leave them out by rule.
OUTLIER_RULES: dict[str, tuple[RowRule, ...]] = {
    "web_sessions": (
        RowRule("session_under_10s", "duration_seconds", "duration_seconds < 10", "flagged"),
        RowRule("session_over_24h", "duration_seconds", "duration_seconds > 86400", "flagged"),
    ),
}


def _order_rules(
    mapping: IngestMapping, targets: set[str]
) -> tuple[tuple[Derive, ...], tuple[RowRule, ...]]:
    """Refunds, their status, and negative amounts that are not refunds (see the module docs)."""
    derive: list[Derive] = []
    refund = mapping.rule("refund")
    if "is_refund" not in targets:
        if isinstance(refund, dict):
            derive.append(
                Derive("is_refund", f"starts_with(order_id, {lit(str(refund['prefix']))})")
            )
        elif "original_order_id" in targets:
            derive.append(Derive("is_refund", "amount < 0 AND original_order_id IS NOT NULL"))
        else:
            derive.append(Derive("is_refund", "false"))
    if "status" not in targets:
        derive.append(Derive("status", "CASE WHEN is_refund THEN 'refunded' ELSE 'completed' END"))
    rules = []
    if mapping.rule("negative_amount") == "quarantine":
        rules.append(
            RowRule(
                "negative_amount_not_refund",
                "amount",
                "amount < 0 AND NOT coalesce(is_refund, false)",
            )
        )
    return tuple(derive), tuple(rules)


def _customer_rule(mapping: IngestMapping, rules: tuple[ColumnRule, ...]) -> tuple[ColumnRule, ...]:
    if mapping.rule("missing_customer") != "quarantine":
        return rules
    return tuple(
        ColumnRule(**{**r.__dict__, "required": True}) if r.target == "customer_id" else r
        for r in rules
    )


def prepare(raw: RawTable, mapping: IngestMapping) -> list[Prepared]:
    """The loader's sources for ``raw``, in load order (customers, orders, then lines)."""
    arrow = clean(raw, mapping)
    has_generated = any(c.generate for c in mapping.columns)
    derives_orders = mapping.kind == "order_lines" and bool(mapping.of("orders"))
    origin = origins(arrow, raw, mapping) if has_generated or derives_orders else None
    arrow = generate(arrow, origin, mapping)
    own = mapping.of(None)
    out: list[Prepared] = []
    if derives_orders:
        orders = _derive_orders(arrow, origin, mapping)
        out += _derived_customers(orders, mapping, raw.label)
        order_rules = _customer_rule(mapping, mapping.of("orders"))
        cols = [
            ColumnRule("order_id", header=_header_of(own, "order_id")),
            *[r for r in order_rules if r.target not in ("order_id", "amount")],
            next(
                (r for r in order_rules if r.target == "amount"),
                ColumnRule("amount", header=SUM_HEADER),
            ),
        ]
        if mapping.rule("refund_link") == "customer_sku":
            cols.append(ColumnRule("original_order_id", header=LINK_HEADER))
        out.append(_prepared(f"{raw.label} → orders", orders, "orders", tuple(cols), mapping))
    elif mapping.kind == "orders":
        out += _derived_customers(arrow, mapping, raw.label)
    rules = _customer_rule(mapping, own) if mapping.kind == "orders" else own
    if mapping.kind == "experiment_units":
        out += _derived_experiments(arrow, mapping, raw.label)
    out.append(_prepared(raw.label, arrow, mapping.kind, rules, mapping))
    if mapping.attributes:
        owner = next(r for r in own if r.target == ATTRIBUTE_HOMES[mapping.kind][2])
        out += attribute_sources(arrow, mapping, raw.label, _source(owner) or "")
    return out


def _last_per_key(rows: pa.Table, key: ColumnRule) -> pa.Array:
    """The index of the last row of each non-empty key value (of the only row for a constant)."""
    if key.header is None:
        return pa.array([rows.num_rows - 1] if rows.num_rows else [], pa.int64())
    last: dict[str, int] = {}
    for i, k in enumerate(rows.column(key.header).to_pylist()):
        if k is not None and re.sub(r"\s", "", k):
            last[k] = i
    return pa.array(sorted(last.values()), pa.int64())


def _derived_experiments(units: pa.Table, mapping: IngestMapping, label: str) -> list[Prepared]:
    """One experiment per experiment ID of the units (its last row's ``experiments.*`` values),
    if any are mapped: the experiment a unit file assigns its units to exists with them."""
    rules = mapping.of("experiments")
    if not rules:
        return []
    key = next(r for r in mapping.of(None) if r.target == "experiment_id")
    keep = [key.header] if key.header else []
    keep += [r.header for r in rules if r.header] + [FILE_COLUMN, LINE_COLUMN]
    rows = units.select(list(dict.fromkeys(keep))).take(_last_per_key(units, key))
    if key.value is not None:
        # the constant as a column: the key is then checked like any other (and the loader
        # always has a check to report, which a source of constants only would lack)
        name = _generated_name("experiment_id")
        rows = rows.append_column(name, pa.array([key.value] * rows.num_rows, pa.string()))
        key = ColumnRule("experiment_id", header=name)
    cols = (key, *[r for r in rules if r.target != "experiment_id"])
    return [_prepared(f"{label} → experiments", rows, "experiments", cols, mapping)]


def _header_of(rules: tuple[ColumnRule, ...], target: str) -> str:
    for r in rules:
        if r.target == target and r.header:
            return r.header
    raise ConfigError(f"map {target} to a header")


def _prepared(
    label: str, arrow: pa.Table, kind: str, rules: tuple[ColumnRule, ...], mapping: IngestMapping
) -> Prepared:
    specs, infers = _columns(kind, rules)
    targets = {r.target for r in rules}
    derive: tuple[Derive, ...] = ()
    row_rules: tuple[RowRule, ...] = ()
    if kind == "orders":
        derive, row_rules = _order_rules(mapping, targets)
    if kind == "order_lines" and "amount" not in targets and {"quantity", "unit_price"} <= targets:
        derive = (Derive("amount", "quantity * unit_price"),)
    row_rules += tuple(r for r in OUTLIER_RULES.get(kind, ()) if r.column in targets)
    headers = tuple(n for n in arrow.column_names if n != LINE_COLUMN)
    return Prepared(
        SourceRows(label, headers, arrow=arrow),
        TableMapping(table=kind, columns=specs, derive=derive, infer=infers, rules=row_rules),
    )


_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _numbers(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floats of the text values that are plain numbers (``1,234.5`` too); others null."""
    text = pc.replace_substring(pc.utf8_trim_whitespace(col), ",", "")
    valid = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    return pc.cast(pc.if_else(valid, text, None), pa.float64())


def _derive_orders(lines: pa.Table, origin: list[int] | None, mapping: IngestMapping) -> pa.Table:
    """One row per order ID: the first line's order values, Σ line amounts (exact copies of a
    line, merged, not counted), its first line."""
    own = mapping.of(None)
    order_h = _header_of(own, "order_id")
    amount_rule = next((r for r in own if r.target == "amount"), None)
    if amount_rule is not None and amount_rule.header:
        amounts = _numbers(lines.column(amount_rule.header))
    else:
        qty = _numbers(lines.column(_header_of(own, "quantity")))
        amounts = pc.multiply(qty, _numbers(lines.column(_header_of(own, "unit_price"))))
    work = pa.table(
        {"k": lines.column(order_h), "a": amounts, "i": pa.array(range(lines.num_rows), pa.int64())}
    )
    keep_row = pc.is_valid(work.column("k"))
    if origin is not None:
        first = pa.array([o == i for i, o in enumerate(origin)], pa.bool_())
        keep_row = pc.and_(keep_row, first)
    work = work.filter(keep_row)
    groups = work.group_by("k", use_threads=False).aggregate([("a", "sum"), ("i", "min")])
    groups = groups.sort_by("i_min")
    headers = [
        r.header
        for r in mapping.columns
        if r.header and r.table_column[0] in ("orders", "customers")
    ]
    keep = list(dict.fromkeys([order_h, *headers, FILE_COLUMN, LINE_COLUMN]))
    orders = lines.select(keep).take(groups.column("i_min"))
    # summing floats leaves noise in the last digits (-11.899999999999999): round it away
    total = pc.cast(pc.round(groups.column("a_sum"), 6), pa.string())
    orders = orders.append_column(SUM_HEADER, total)
    if mapping.rule("refund_link") == "customer_sku":
        orders = orders.append_column(LINK_HEADER, _link_refunds(lines, orders, mapping))
    return orders


def _link_refunds(lines: pa.Table, orders: pa.Table, mapping: IngestMapping) -> pa.Array:
    """For each refund order: the customer's latest earlier non-refund order sharing a SKU.

    The order refunding the most of the refund's SKUs wins, the latest on a tie; a refund whose
    customer bought none of its SKUs earlier (e.g. before the data starts) stays unlinked.
    """
    own, rel = mapping.of(None), mapping.of("orders")
    refund = mapping.rule("refund")
    if not isinstance(refund, dict):
        raise ConfigError("refund_link = 'customer_sku' needs refund = { prefix = … }")
    prefix = str(refund["prefix"])
    order_h, sku_h = _header_of(own, "order_id"), _header_of(own, "sku")
    cust_h, time_h = _header_of(rel, "customer_id"), _header_of(rel, "order_time")
    bought: dict[tuple, list[tuple[str, str]]] = {}
    refunds: dict[str, tuple[str, str, set[str]]] = {}
    # only the lines of a (customer, SKU) pair that some refund holds can take part: selected
    # in Arrow, so that Python objects are made for a small share of the lines only
    is_refund = pc.fill_null(pc.starts_with(lines.column(order_h), prefix), False)
    pair = pc.binary_join_element_wise(
        lines.column(cust_h),
        lines.column(sku_h),
        "\x1f",
        null_handling="replace",
        null_replacement="\x00",
    )
    refunded = pc.unique(pc.filter(pair, is_refund))
    part = lines.filter(pc.fill_null(pc.is_in(pair, refunded), False))
    cols = [part.column(h).to_pylist() for h in (order_h, sku_h, cust_h, time_h)]
    for order, sku, cust, when in zip(*cols, strict=True):
        if order is None or cust is None or when is None:
            continue
        if order.startswith(prefix):
            refunds.setdefault(order, (cust, when, set()))[2].add(sku)
        else:
            bought.setdefault((cust, sku), []).append((when, order))
    for v in bought.values():
        v.sort()
    links: dict[str, str] = {}
    for order, (cust, when, skus) in refunds.items():
        votes: dict[str, tuple[int, str]] = {}
        for sku in skus:
            earlier = bought.get((cust, sku), [])
            i = bisect.bisect_left(earlier, (when, ""))
            if i:
                t, o = earlier[i - 1]
                n, _ = votes.get(o, (0, t))
                votes[o] = (n + 1, t)
        if votes:
            links[order] = max(votes.items(), key=lambda kv: kv[1])[0]
    return pa.array([links.get(o) for o in orders.column(order_h).to_pylist()], pa.string())


def _derived_customers(rows: pa.Table, mapping: IngestMapping, label: str) -> list[Prepared]:
    """One customer per customer ID (its last row's ``customers.*`` values), if any are mapped."""
    cust_rules = mapping.of("customers")
    if not cust_rules:
        return []
    scope = "orders" if mapping.kind == "order_lines" else None
    id_header = _header_of(mapping.of(scope), "customer_id")
    keep = list(
        dict.fromkeys(
            [id_header, *(r.header for r in cust_rules if r.header), FILE_COLUMN, LINE_COLUMN]
        )
    )
    last = _last_per_key(rows, ColumnRule("customer_id", header=id_header))
    customers = rows.select(keep).take(last)
    cols = (
        ColumnRule("customer_id", header=id_header),
        ColumnRule("anon_id", header=id_header, kind="anon_id"),
        *[r for r in cust_rules if r.target not in ("customer_id", "anon_id")],
    )
    return [_prepared(f"{label} → customers", customers, "customers", cols, mapping)]
