"""Evaluating KPIs: one value, or a time series with 环比 / 同比 comparisons and targets.

All results are pandas DataFrames in long form (one row per metric, period and dimension values)
so reports, charts and the API can pivot them as they like. Values are floats, ``None`` where a
KPI is undefined (a rate without a denominator); counts and totals are 0 in a period without rows
(see :attr:`crmlens.metrics.metric.Metric.empty_value`).

The KPIs of one request (an overview, a breakdown, a time series) are evaluated together by
:func:`compute_many`: the measures that read the same fact over the same window are one aggregate (the fact's rows are
scanned and joined once, see :mod:`crmlens.metrics.measures`) and the other KPIs one ``UNION ALL``,
since for small queries Ibis's compile and the round trip cost more than DuckDB's work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TypeVar, cast

import ibis
import pandas as pd
from ibis.expr.types import Table

from crmlens.errors import ConfigError
from crmlens.metrics.measures import Fused, Measure, fusable, fused
from crmlens.metrics.metric import Metric
from crmlens.metrics.periods import (
    Grain,
    Period,
    last_year_range,
    period_end,
    period_label,
    period_start,
    previous_range,
)
from crmlens.metrics.query import Query
from crmlens.metrics.registry import metric as lookup
from crmlens.metrics.registry import metrics as lookup_all
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.warehouse import Warehouse

#: Breakdowns and series take at most this many dimensions at a time (M3: "3-5 dimensions").
MAX_DIMS = 3

MetricRef = str | Metric
Frame = TypeVar("Frame", pd.DataFrame, pd.Series)


def check_applicable(m: Metric, scope: Scope, by: Sequence[str] = ()) -> None:
    """:class:`NotApplicableError` if ``m`` cannot be filtered or grouped as asked."""
    if len(by) > MAX_DIMS or len(set(by)) != len(by):
        raise ConfigError(f"break down by up to {MAX_DIMS} distinct dimensions, got {list(by)}")
    wanted = [*by, *(d for d in scope.constraints() if d not in by)]
    bad = [d for d in wanted if d not in m.dimensions]
    if bad:
        raise NotApplicableError(
            f"{m.name} cannot be filtered or broken down by {', '.join(bad)}; "
            f"it supports: {', '.join(m.dimensions)}"
        )


def compute(
    wh: Warehouse,
    m: Metric,
    scope: Scope,
    periods: Sequence[Period],
    by: Sequence[str] = (),
    relabel: Mapping[str, frozenset[str]] | None = None,
) -> pd.DataFrame:
    """``period_id`` (index into ``periods``), the ``by`` dimensions and ``value``: one query.

    Periods without rows are filled with the metric's empty value when ``by`` is empty; with
    dimensions, combinations without rows are simply absent.
    """
    return compute_many(wh, [m], scope, periods, by, relabel)[m.name]


def compute_many(
    wh: Warehouse,
    metrics: Sequence[Metric],
    scope: Scope,
    periods: Sequence[Period],
    by: Sequence[str] = (),
    relabel: Mapping[str, frozenset[str]] | None = None,
    *,
    errors: dict[str, NotApplicableError] | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`compute` for several metrics, by name, in as few queries as possible: the measures
    among them (:class:`~crmlens.metrics.measures.Measure`) that read the same fact over the same
    window are one query, so their rows are scanned and joined once.

    A metric that cannot be filtered or grouped as asked raises :class:`NotApplicableError`; with
    ``errors`` it is left out instead, and its error stored there under its name.

    Periods with the same days are computed once (an overview of a whole year compares it with
    the previous period and with last year, which are the same year; a compared month series asks
    for most months twice): every builder's rows depend on a period's days only, so the result
    for the first such period is given to the others.
    """
    unique: dict[tuple[date, date], int] = {}
    ids = [unique.setdefault((p.start, p.end), len(unique)) for p in periods]
    if len(unique) < len(ids):
        distinct = [Period(f"{s}..{e}", s, e) for s, e in unique]
        got = compute_many(wh, metrics, scope, distinct, by, relabel, errors=errors)
        return {name: _asked(frame, ids, by) for name, frame in got.items()}
    q = Query(wh, scope, periods, by, relabel)
    batches: dict[object, list[Metric]] = {}
    for m in metrics:
        try:
            check_applicable(m, scope, by)
        except NotApplicableError as exc:
            if errors is None:
                raise
            errors[m.name] = exc
            continue
        batches.setdefault(fusable(m.builder, q) or m.name, []).append(m)
    singles: list[tuple[str, Table]] = []
    together: list[tuple[list[str], Fused]] = []
    for batch in batches.values():
        try:
            if len(batch) == 1:
                singles.append((batch[0].name, batch[0].builder(q)))
            else:
                measures = [cast(Measure, m.builder) for m in batch]
                together.append(([m.name for m in batch], fused(q, measures)))
        except NotApplicableError as exc:
            if errors is None:
                raise
            errors.update(dict.fromkeys((m.name for m in batch), exc))
    results = _union(wh, [e for _, e in singles], q.keys)
    raw = dict(zip([name for name, _ in singles], results, strict=True))
    for names, f in together:
        raw |= dict(zip(names, f.split(wh.execute(f.expr)), strict=True))
    return {m.name: _finish(raw[m.name], m, len(periods), by) for m in metrics if m.name in raw}


def _asked(frame: pd.DataFrame, ids: Sequence[int], by: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` (by distinct period) for each period asked: asked period ``j`` gets
    the rows of distinct period ``ids[j]``, renumbered ``j``, in :func:`_finish`'s order."""
    rows: dict[int, list[int]] = {}
    for row, period in enumerate(frame["period_id"].tolist()):
        rows.setdefault(period, []).append(row)
    take = [row for period in ids for row in rows.get(period, [])]
    asked = [j for j, period in enumerate(ids) for _ in rows.get(period, [])]
    out = frame.iloc[take].reset_index(drop=True)
    out["period_id"] = pd.Series(asked, dtype="int64")
    if not by:  # already one row per period, in order
        return out
    return out.sort_values(["period_id", *by], ignore_index=True)


def _union(wh: Warehouse, exprs: Sequence[Table], keys: Sequence[str]) -> list[pd.DataFrame]:
    """The results of several builders (``keys`` and ``value`` each) run as one query, a
    ``UNION ALL``: one compile and one round trip instead of one per builder, which for small
    queries costs more than running them."""
    if len(exprs) <= 1:
        return [wh.execute(e) for e in exprs]
    parts = [
        e.select(*keys, value=e.value.cast("float64"), u__part=ibis.literal(i, "int64"))
        for i, e in enumerate(exprs)
    ]
    frame = wh.execute(ibis.union(*parts))
    return [frame[frame["u__part"] == i].drop(columns="u__part") for i in range(len(exprs))]


def _finish(frame: pd.DataFrame, m: Metric, n: int, by: Sequence[str]) -> pd.DataFrame:
    """A builder's result in :func:`compute`'s shape: every period when ``by`` is empty, values as
    floats or None, sorted."""
    if not by:
        return _per_period(frame, m, n)
    frame = frame[["period_id", *by, "value"]].astype({"value": "float64"})
    frame["value"] = with_nulls(frame["value"])
    return frame.sort_values(["period_id", *by], ignore_index=True)


def _per_period(frame: pd.DataFrame, m: Metric, n: int) -> pd.DataFrame:
    """:func:`_finish` without dimensions: ``period_id`` 0 … n-1 and each one's value, the metric's
    empty value where there is none (a period without rows, or NULL). A handful of rows, so in
    plain Python: pandas' merge, fill and sort took a tenth of an overview's time."""
    got = dict(zip(frame["period_id"].tolist(), frame["value"].tolist(), strict=True))
    values: list[float | None] = []
    for i in range(n):
        value = got.get(i)
        if pd.isna(value):
            value = m.empty_value
        values.append(None if value is None else float(value))
    return pd.DataFrame(
        {
            "period_id": pd.Series(range(n), dtype="int64"),
            "value": pd.Series(values, dtype=object),
        }
    )


def labelled(start: date, end: date, grain: Grain) -> Period:
    """The range as a period: labelled like a bucket (``2021-03``) when it is exactly one whole
    period of ``grain``, else ``2021-03-05..2021-04-04``."""
    if period_start(start, grain) == start and period_end(start, grain) == end:
        return Period(period_label(start, grain), start, end)
    return Period(f"{start}..{end}", start, end)


def whole(scope: Scope) -> Period:
    """The scope's whole range as one period."""
    return labelled(scope.start, scope.end, scope.grain)


def previous(p: Period, grain: Grain) -> Period:
    """The period just before ``p`` (环比); see :func:`crmlens.metrics.periods.previous_range`."""
    return labelled(*previous_range(p.start, p.end), grain)


def last_year(p: Period, grain: Grain) -> Period:
    """The same period a year earlier (同比); see :func:`~crmlens.metrics.periods.last_year_range`."""
    return labelled(*last_year_range(p.start, p.end, grain), grain)


def value(wh: Warehouse, metric: MetricRef, scope: Scope) -> float | None:
    """The KPI over the scope's whole range."""
    m = lookup(metric) if isinstance(metric, str) else metric
    return compute(wh, m, scope, [whole(scope)])["value"].iloc[0]


def change(m: Metric, current: float | None, base: float | None) -> float | None:
    """The change from ``base`` to ``current``: relative (0.15 = +15 %) for counts, money and
    durations, absolute (0.03 = +3 percentage points; +2 NPS points) for rates and scores.

    None when either is missing, or for a relative change from 0.
    """
    if current is None or base is None:
        return None
    if m.change == "absolute":
        return current - base
    return None if base == 0 else current / base - 1


def target_frame(
    wh: Warehouse, m: Metric, scope: Scope, periods: Sequence[Period], by: Sequence[str] = ()
) -> pd.DataFrame:
    """``period_id``, the ``by`` dimensions and ``target``; no rows where there is no target
    (the KPI has none, or none is set for this slice: targets exist for the whole company or
    per region, city or store)."""
    empty = pd.DataFrame(columns=["period_id", *by, "target"])
    if not m.target_names or m.target_how is None:
        return empty
    try:
        expr = Query(wh, scope, periods, by).targets(m.target_names, m.target_how)
    except NotApplicableError:
        return empty
    frame = wh.execute(expr).rename(columns={"value": "target"})
    return frame[["period_id", *by, "target"]].astype({"target": "float64"})


def timeseries(
    wh: Warehouse,
    metrics: MetricRef | Sequence[MetricRef],
    scope: Scope,
    by: Sequence[str] = (),
    *,
    compare: bool = False,
    targets: bool = False,
) -> pd.DataFrame:
    """KPIs per period of the scope's grain (the first and last period clipped to the range).

    Columns: ``metric``, ``period`` (label), ``start``, ``end``, the ``by`` dimensions, ``value``;
    with ``compare``: ``previous``, ``change`` (环比), ``last_year``, ``change_yoy`` (同比), each
    period compared with its own previous and last-year range; with ``targets``: ``target``,
    ``attainment`` (value / target) and ``met``.
    """
    chosen = lookup_all([metrics] if isinstance(metrics, str | Metric) else metrics)
    buckets = scope.periods()
    n = len(buckets)
    periods = list(buckets)
    if compare:
        periods += [previous(p, scope.grain) for p in buckets]
        periods += [last_year(p, scope.grain) for p in buckets]
    labels = pd.DataFrame(
        {
            "period_id": range(n),
            "period": [p.label for p in buckets],
            "start": [p.start for p in buckets],
            "end": [p.end for p in buckets],
        }
    )
    out = []
    computed = compute_many(wh, chosen, scope, periods, by)
    for m in chosen:
        got = computed[m.name]
        frame = _complete(got[got["period_id"] < n], m, n, by)
        if compare:
            for offset, name in ((n, "previous"), (2 * n, "last_year")):
                other = got[got["period_id"].between(offset, offset + n - 1)].assign(
                    period_id=lambda f, o=offset: f["period_id"] - o
                )
                frame = frame.merge(
                    _complete(other, m, n, by).rename(columns={"value": name}),
                    on=["period_id", *by],
                    how="left",
                )
            frame["change"] = _changes(m, frame["value"], frame["previous"])
            frame["change_yoy"] = _changes(m, frame["value"], frame["last_year"])
        if targets:
            goal = target_frame(wh, m, scope, buckets, by)
            frame = frame.merge(goal, on=["period_id", *by], how="left")
            frame["target"] = with_nulls(frame["target"])
            pairs = list(zip(frame["value"], frame["target"], strict=True))
            frame["attainment"] = [m.attainment(v, t) for v, t in pairs]
            frame["met"] = [m.is_met(v, t) for v, t in pairs]
        out.append(labels.merge(frame, on="period_id").assign(metric=m.name))
    result = pd.concat(out, ignore_index=True)
    first = ["metric", "period", "start", "end", *by, "value"]
    return result[first + [c for c in result.columns if c not in {*first, "period_id"}]]


def _complete(frame: pd.DataFrame, m: Metric, n: int, by: Sequence[str]) -> pd.DataFrame:
    """Every period × every dimension combination seen, the empty value where there was none."""
    if by:
        combos = frame[list(by)].drop_duplicates()
        grid = pd.DataFrame({"period_id": range(n)}).merge(combos, how="cross")
        frame = grid.merge(frame, on=["period_id", *by], how="left")
        frame["value"] = frame["value"].astype(object)
        frame.loc[frame["value"].isna(), "value"] = m.empty_value
    frame = frame.copy()
    frame["value"] = with_nulls(frame["value"])
    return frame


def with_nulls(data: Frame) -> Frame:
    """Missing values as None (not NaN), so JSON and the UI see null."""
    return data.astype(object).where(data.notna(), None)


def _changes(m: Metric, current: pd.Series, base: pd.Series) -> list[float | None]:
    return [change(m, c, b) for c, b in zip(current, base, strict=True)]
