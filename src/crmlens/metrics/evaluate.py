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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar, cast

import ibis
import pandas as pd
from ibis.expr.types import Table

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import UNKNOWN
from crmlens.metrics.measures import Fused, Measure, fusable, fused, split_fused
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
R = TypeVar("R")


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
    top: tuple[str, int] | None = None,
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

    ``top`` = ``(metric, N)``, by one dimension, for measures of one fact and window (see
    :func:`~crmlens.metrics.measures.fusable`): the dimension's values outside the ``N`` with
    the highest value of ``metric`` are folded into OTHER within the one query (see
    :func:`~crmlens.metrics.measures.fused`).
    """
    unique: dict[tuple[date, date], int] = {}
    ids = [unique.setdefault((p.start, p.end), len(unique)) for p in periods]
    if len(unique) < len(ids):
        distinct = [Period(f"{s}..{e}", s, e) for s, e in unique]
        got = compute_many(wh, metrics, scope, distinct, by, relabel, errors=errors, top=top)
        return {name: _asked(frame, ids, by) for name, frame in got.items()}
    key = ("compute_many", _metrics_key(metrics), _periods_key(periods), tuple(by), top)
    frames, reading = _run_planned(
        wh, key, scope, relabel, lambda s, r: _build(wh, metrics, s, periods, by, r, top)
    )
    if reading.errors:
        if errors is None:
            raise next(iter(reading.errors.values()))
        errors.update(reading.errors)
    raw: dict[str, pd.DataFrame] = {}
    if len(reading.singles) == 1:
        raw[reading.singles[0]] = frames[0]
    elif reading.singles:
        union = frames[0]
        for i, name in enumerate(reading.singles):
            raw[name] = union[union["u__part"] == i].drop(columns="u__part")
    for (names, measures, keys), frame in zip(
        reading.fused, frames[1 if reading.singles else 0 :], strict=True
    ):
        raw |= dict(zip(names, split_fused(frame, measures, keys), strict=True))
    return {m.name: _finish(raw[m.name], m, len(periods), by) for m in metrics if m.name in raw}


def _run_planned(
    wh: Warehouse,
    key: tuple[object, ...],
    scope: Scope,
    relabel: Mapping[str, frozenset[str]] | None,
    build: Callable[[Scope, Mapping[str, frozenset[str]] | None], tuple[list[Table], R]],
) -> tuple[list[pd.DataFrame], R]:
    """The results of the expressions ``build(scope, relabel)`` returns, and what else it returns.

    The scope's values and the top-N's reach the SQL as literals only, so on a warehouse with
    query plans (:mod:`crmlens.warehouse.plans`) the expressions of a ``key`` (what the caller
    builds, apart from the scope) are built and compiled for two scopes of a shape, and the SQL
    is then filled in for the others. ``build`` must not depend on the scope's values otherwise.
    """
    shape = _plan_shape(scope, relabel)
    plans = getattr(wh, "plans", None)
    if plans is None or shape is None:
        exprs, extra = build(scope, relabel)
        return [wh.execute(e) for e in exprs], extra
    parts, values = shape
    full_key = (*key, getattr(wh, "generation", 0), scope.start, scope.end, scope.grain, parts)

    def built(given: Sequence[str]) -> tuple[list[Table], R]:
        return build(*_with_values(scope, parts, given))

    return plans.run(full_key, values, built)


@dataclass(frozen=True)
class _Reading:
    """How :func:`compute_many` reads its queries' results: the metrics of the first query (a
    ``UNION ALL`` of their builders when there are several, tagged ``u__part``), those of each
    fused aggregate after it, and the metrics that are not applicable. Nothing here depends on
    the scope's values, so a query plan may keep it (:mod:`crmlens.warehouse.plans`)."""

    singles: tuple[str, ...]
    fused: tuple[tuple[tuple[str, ...], tuple[Measure, ...], tuple[str, ...]], ...]
    errors: dict[str, NotApplicableError]


def _build(
    wh: Warehouse,
    metrics: Sequence[Metric],
    scope: Scope,
    periods: Sequence[Period],
    by: Sequence[str],
    relabel: Mapping[str, frozenset[str]] | None,
    top: tuple[str, int] | None = None,
) -> tuple[list[Table], _Reading]:
    """:func:`compute_many`'s expressions: the builders that are not measures fused with others
    in one ``UNION ALL`` (one compile and one round trip instead of one per builder, which for
    small queries costs more than running them), then one aggregate per fused batch."""
    q = Query(wh, scope, periods, by, relabel)
    errors: dict[str, NotApplicableError] = {}
    batches: dict[object, list[Metric]] = {}
    for m in metrics:
        try:
            check_applicable(m, scope, by)
        except NotApplicableError as exc:
            errors[m.name] = exc.with_traceback(None)  # a plan keeps it: not its frames
            continue
        batches.setdefault(fusable(m.builder, q) or m.name, []).append(m)
    if top is not None:
        # a batch keyed by a metric's name is a builder that is not a measure
        (shape, batch), *more = batches.items() or [("", [])]
        names = [m.name for m in batch]
        if len(by) != 1 or more or isinstance(shape, str) or top[0] not in names:
            raise ConfigError(
                "a top-N is folded in the query only by one dimension, ranked by one of the "
                "KPIs, all measures of one fact and window; got "
                f"{[m.name for m in metrics]} by {list(by)}, ranked by {top[0]}"
            )
        f = fused(q, [cast(Measure, m.builder) for m in batch], (names.index(top[0]), top[1]))
        return [f.expr], _Reading((), ((tuple(names), f.measures, f.keys),), errors)
    singles: list[tuple[str, Table]] = []
    together: list[tuple[tuple[str, ...], Fused]] = []
    for batch in batches.values():
        try:
            if len(batch) == 1:
                singles.append((batch[0].name, batch[0].builder(q)))
            else:
                measures = [cast(Measure, m.builder) for m in batch]
                together.append((tuple(m.name for m in batch), fused(q, measures)))
        except NotApplicableError as exc:
            errors.update(dict.fromkeys((m.name for m in batch), exc.with_traceback(None)))
    exprs = [f.expr for _, f in together]
    # what reads the results, without the expressions (a plan keeps it)
    reading = tuple((names, f.measures, f.keys) for names, f in together)
    if len(singles) == 1:
        exprs.insert(0, singles[0][1])
    elif singles:
        parts = [
            e.select(*q.keys, value=e.value.cast("float64"), u__part=ibis.literal(i, "int64"))
            for i, (_, e) in enumerate(singles)
        ]
        exprs.insert(0, ibis.union(*parts))
    return exprs, _Reading(tuple(name for name, _ in singles), reading, errors)


#: A scope's constrained dimensions and top-N relabellings as a plan's key sees them:
#: ``(kind, dimension, number of values, unknown allowed)``, kind ``filter`` or ``relabel``.
PlanParts = tuple[tuple[str, str, int, bool], ...]


def _plan_shape(
    scope: Scope, relabel: Mapping[str, frozenset[str]] | None
) -> tuple[PlanParts, list[str]] | None:
    """The parts of a plan's key and its values (sorted per dimension, as the builders write
    them; :data:`~crmlens.metrics.dimensions.UNKNOWN` is not a value but part of the key, since
    a filter allowing it is built otherwise). None when a constraint allows nothing."""
    parts: list[tuple[str, str, int, bool]] = []
    values: list[str] = []
    kinds = (("filter", scope.constraints()), ("relabel", relabel or {}))
    for kind, constraints in kinds:
        for dim in sorted(constraints):
            allowed = constraints[dim]
            if not allowed:
                return None
            given = sorted(v for v in allowed if v != UNKNOWN)
            parts.append((kind, dim, len(given), UNKNOWN in allowed))
            values += given
    return tuple(parts), values


def _with_values(
    scope: Scope, parts: PlanParts, values: Sequence[str]
) -> tuple[Scope, dict[str, frozenset[str]] | None]:
    """The scope (its constraints as filters) and relabelling of ``parts`` with ``values``."""
    constrained: dict[str, frozenset[str]] = {}
    relabel: dict[str, frozenset[str]] = {}
    at = 0
    for kind, dim, n, unknown in parts:
        allowed = set(values[at : at + n]) | ({UNKNOWN} if unknown else set())
        at += n
        (constrained if kind == "filter" else relabel)[dim] = frozenset(allowed)
    shaped = Scope(scope.start, scope.end, scope.grain, filters=constrained)
    return shaped, relabel or None


def _periods_key(periods: Sequence[Period]) -> tuple[tuple[str, date, date], ...]:
    return tuple((p.label, p.start, p.end) for p in periods)


def _metrics_key(metrics: Sequence[Metric]) -> tuple[object, ...]:
    """The metrics as a key: themselves (declared as data, hashable), else their names."""
    try:
        hash(tuple(metrics))
        return tuple(metrics)
    except TypeError:
        return tuple(m.name for m in metrics)


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
    names, how = m.target_names, m.target_how
    key = ("target_frame", names, how, _periods_key(periods), tuple(by))
    try:
        frames, _ = _run_planned(
            wh,
            key,
            scope,
            None,
            lambda s, _: ([Query(wh, s, periods, by).targets(names, how)], None),
        )
    except NotApplicableError:
        return empty
    frame = frames[0].rename(columns={"value": "target"})
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
