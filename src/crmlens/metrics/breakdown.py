"""Breakdowns (M3): KPIs by up to three dimensions, with share of total and top-N + 其他.

The seed-002 table — customers, 客单价, repurchase rate, satisfaction and share of customers by
region × customer type — is ``segment_table(wh, scope)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import OTHER
from crmlens.metrics.evaluate import (
    MAX_DIMS,
    MetricRef,
    check_applicable,
    compute,
    compute_many,
    whole,
    with_nulls,
)
from crmlens.metrics.measures import adds_up, fusable
from crmlens.metrics.registry import metrics as lookup_all
from crmlens.metrics.scope import Scope
from crmlens.warehouse import Warehouse

#: Whether the last top-N breakdown of a shape (KPIs, dimension, dimensions filtered, N, the KPI
#: ranked by) folded anything, for choosing how to compute the next: folding in the query reads
#: the rows once but materialises them (at 1M customers a year's revenue by region took 159-173
#: ms so, against 101-105 ms ranked alone), ranking alone needs a second query to fold. Both
#: give the same numbers; an unknown shape is folded in the query.
_FOLDED: dict[tuple[object, ...], bool] = {}

#: The seed-002 multi-dimensional table's KPIs.
SEGMENT_METRICS = ("customers", "aov", "repurchase_rate", "csat")


def breakdown(
    wh: Warehouse,
    metrics: Sequence[MetricRef],
    scope: Scope,
    by: Sequence[str],
    *,
    top: int | None = None,
    sort_by: str | None = None,
) -> pd.DataFrame:
    """KPIs over the scope's whole range per combination of the ``by`` dimensions.

    Columns: the dimensions, one column per metric, and ``<metric>_share`` (value / the metric over
    the whole scope) for counts and totals. A share is of the scope's total, not of the sum of the
    rows: a customer who bought in two stores is one customer of the total, so shares of buying
    customers by store may add up to more than 1.

    ``top`` keeps the ``top`` values of the first dimension with the highest ``sort_by`` (default:
    the first metric) and folds the rest into :data:`~crmlens.metrics.dimensions.OTHER`; every
    metric of the folded row is computed on its rows (a rate of 其他 is its own rate, not an
    average of rates). Rows are sorted by ``sort_by``, descending, 其他 last.
    """
    chosen = lookup_all(metrics)
    by = tuple(by)
    if not 1 <= len(by) <= MAX_DIMS:
        raise ConfigError(f"break down by 1 to {MAX_DIMS} dimensions, got {list(by)}")
    names = [m.name for m in chosen]
    key = sort_by or names[0]
    if key not in names:
        raise ConfigError(f"sort_by {key!r} must be one of the metrics {names}")
    for m in chosen:
        check_applicable(m, scope, by)
    period = [whole(scope)]
    relabel = None
    computed = None
    folds = False
    if top is not None:
        if top < 1:
            raise ConfigError(f"top must be at least 1, got {top}")
        shapes = {fusable(m.builder) for m in chosen}
        one_aggregate = len(by) == 1 and len(shapes) == 1 and None not in shapes
        shape = (tuple(names), by, tuple(sorted(scope.constraints())), top, key)
        if one_aggregate and _FOLDED.get(shape, True):
            # by one dimension, KPIs that are one aggregate over the same rows: ranked and folded
            # in the query that computes them (the rows are scanned and joined once)
            computed = compute_many(wh, chosen, scope, period, by, top=(key, top))
            folds = True
            _FOLDED[shape] = OTHER in set(computed[key][by[0]])
        else:
            if one_aggregate:
                # last time nothing was folded: the ranking is the breakdown itself, without
                # the materialised rows the fold needs (a second query when there is more)
                computed = compute_many(wh, chosen, scope, period, by)
                ranked = computed[key]
            else:
                ranked = compute(wh, chosen[names.index(key)], scope, period, by[:1])
            ranked = ranked.sort_values("value", ascending=False, na_position="last", kind="stable")
            if len(ranked) > top:
                relabel = {by[0]: frozenset(ranked[by[0]].head(top))}
                folds = True
                computed = None
                if one_aggregate:
                    _FOLDED[shape] = True
    frame = pd.DataFrame(columns=list(by))
    if computed is None:
        computed = compute_many(wh, chosen, scope, period, by, relabel)
    for m in chosen:
        got = computed[m.name].drop(columns="period_id")
        frame = frame.merge(got.rename(columns={"value": m.name}), on=list(by), how="outer")
    # a share is of the scope's total: the sum of the groups where they add up, else one more
    # query (per fact), e.g. for buying customers by store (who may buy in several)
    additive = [m for m in chosen if m.additive]
    queried = [m for m in additive if not adds_up(m.builder, scope, by)]
    totals = {n: f["value"].iloc[0] for n, f in compute_many(wh, queried, scope, period).items()}
    for m in chosen:
        column = frame[m.name].astype(float)
        if m.additive:
            column = column.fillna(m.empty_value or 0.0)
            total = totals[m.name] if m.name in totals else column.sum()
            frame[f"{m.name}_share"] = column / total if total else float("nan")
        frame[m.name] = column
    folded = frame[by[0]] == OTHER if folds else pd.Series(False, index=frame.index)
    frame = frame.assign(_folded=folded, _key=frame[key].astype(float))
    frame = frame.sort_values(
        ["_folded", "_key", *by], ascending=[True, False, *[True] * len(by)], na_position="last"
    ).drop(columns=["_folded", "_key"])
    return with_nulls(frame.reset_index(drop=True))


def segment_table(
    wh: Warehouse,
    scope: Scope,
    by: Sequence[str] = ("region", "customer_type"),
    metrics: Sequence[MetricRef] = SEGMENT_METRICS,
) -> pd.DataFrame:
    """The seed-002 table in one call: per region × customer type, buying customers, 客单价,
    repurchase rate, satisfaction (survey CSAT) and each row's share of the buying customers."""
    return breakdown(wh, metrics, scope, by)
