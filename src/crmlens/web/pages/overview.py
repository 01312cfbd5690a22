"""Overview (M1, P3): KPI cards with 环比 / 同比 and targets, trends, anomalies, revenue by place."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import html

from crmlens.metrics import Scope, breakdown, compute_many, metric, metrics, overview, timeseries
from crmlens.metrics.evaluate import last_year, previous, whole
from crmlens.metrics.metric import Metric
from crmlens.warehouse.engines import ReadableWarehouse
from crmlens.web.components import guarded, kpi_card
from crmlens.web.i18n import dim_label, metric_label, metric_value
from crmlens.web.pages import PageContext
from crmlens.web.pages.charts import dim_bars, shown_values, trend

#: The KPI cards, in order.
KPIS = (
    "revenue",
    "orders",
    "aov",
    "new_customers",
    "active_customers",
    "repurchase_rate",
    "retention_30d",
    "churn_rate",
    "nps",
    "csat",
)
#: The KPIs of both trend charts: one time series for the two (revenue, orders and buying
#: customers are one aggregate over the orders, so asking for them together scans them once).
TRENDS = ("revenue", "orders", "customers", "new_customers", "active_customers")
#: A change at least this large (relative, or relative to the base for rates) is an anomaly.
THRESHOLD = 0.20
#: Anomalies listed, and how many of the largest get a probable cause.
MAX_ANOMALIES = 6
MAX_CAUSES = 3


def size(m: Metric, base: float | None, change: float | None) -> float | None:
    """How far a KPI moved: a relative change as it is, an absolute one relative to its base."""
    if change is None:
        return None
    if m.change == "relative":
        return abs(change)
    return abs(change / base) if base else None


def anomalies(rows: list[dict[str, Any]]) -> list[tuple[Metric, str, float, dict[str, Any]]]:
    """``(metric, comparison column, size, row)`` of every KPI that moved by :data:`THRESHOLD`."""
    found = []
    for row in rows:
        if row.get("note"):
            continue
        m = metric(row["metric"])
        for column, base in (("change", "previous"), ("change_yoy", "last_year")):
            if column == "change_yoy" and row.get("last_year_period") == row.get("previous_period"):
                continue  # a whole year's previous period is last year: one comparison, not two
            moved = size(m, row.get(base), row.get(column))
            if moved is not None and moved >= THRESHOLD:
                found.append((m, column, moved, row))
    return sorted(found, key=lambda item: item[2], reverse=True)


def _compared(
    wh: ReadableWarehouse, names: tuple[str, ...], scope: Scope, by: tuple[str, ...]
) -> dict[str, pd.DataFrame]:
    """KPIs by ``by`` over the scope's whole range (``period_id`` 0), the previous period (1) and
    the same period last year (2), as :func:`~crmlens.metrics.overview` compares them: one
    :func:`~crmlens.metrics.compute_many` (a year's previous period and last year are one)."""
    now = whole(scope)
    periods = [now, previous(now, scope.grain), last_year(now, scope.grain)]
    return compute_many(wh, metrics(names), scope, periods, by)


def _causes(ctx: PageContext, found: list[tuple[Metric, str, float, dict[str, Any]]]) -> list[Any]:
    """The probable cause of each of the :data:`MAX_CAUSES` largest moves (None for the others)
    — see :func:`_cause`; the KPIs broken down by the same dimension are computed together."""
    wanted = [(m, column) for m, column, *_ in found[:MAX_CAUSES] if m.additive and m.default_dims]
    by_dim: dict[str, set[str]] = {}
    for m, _ in wanted:
        by_dim.setdefault(m.default_dims[0], set()).add(m.name)
    values = {
        dim: ctx.data.get(_compared, tuple(sorted(names)), ctx.scope, (dim,))
        for dim, names in by_dim.items()
    }
    out: list[Any] = [None] * len(found)
    for i, (m, column, *_) in enumerate(found[:MAX_CAUSES]):
        if (m, column) in wanted:
            dim = m.default_dims[0]
            out[i] = _cause(ctx, m, dim, values[dim][m.name], 1 if column == "change" else 2)
    return out


def _cause(ctx: PageContext, m: Metric, dim: str, frame: pd.DataFrame, base: int) -> str | None:
    """For a count or total: the value of its first default dimension that contributed most to
    the move, with its own before and after (``frame`` is :func:`_compared`'s; ``base`` the
    period compared with: 1 for 环比, 2 for 同比)."""
    cur = frame[frame["period_id"] == 0].drop(columns="period_id")
    old = frame[frame["period_id"] == base].drop(columns="period_id")
    merged = cur.merge(old, on=dim, how="outer", suffixes=("", "_base")).fillna(0.0)
    merged["delta"] = merged["value"].astype(float) - merged["value_base"].astype(float)
    total = float(merged["delta"].sum())
    if merged.empty or total == 0:
        return None
    top = merged.loc[(merged["delta"] * (1 if total > 0 else -1)).idxmax()]
    return ctx.t(
        "overview.cause",
        dim=dim_label(dim, ctx.lang),
        value=shown_values(ctx, dim, [top[dim]])[0],
        before=metric_value(m, float(top["value_base"]), ctx.lang),
        after=metric_value(m, float(top["value"]), ctx.lang),
    )


def render(ctx: PageContext) -> list[Any]:
    frame = ctx.data.get(overview, KPIS, ctx.scope)
    rows = frame.to_dict(orient="records")
    flagged = {m.name for m, *_ in anomalies(rows)}
    cards = html.Div(
        [kpi_card(metric(r["metric"]), r, ctx.lang, anomaly=r["metric"] in flagged) for r in rows],
        className="kpi-grid",
        id="kpi-cards",
    )
    out: list[Any] = [
        html.Section(cards, className="card wide kpis"),
        guarded(ctx.lang, ctx.t("overview.anomalies"), lambda: _anomaly_list(ctx, rows), wide=True),
        guarded(ctx.lang, ctx.t("overview.revenue_trend"), lambda: _revenue_trend(ctx)),
        guarded(ctx.lang, ctx.t("overview.customer_trend"), lambda: _customer_trend(ctx)),
    ]
    level = ctx.view.drill_level() or "category"
    out.append(
        guarded(
            ctx.lang,
            ctx.t("overview.by_dim", dim=dim_label(level, ctx.lang)),
            lambda: _by_place(ctx, level),
            wide=True,
        )
    )
    return out


def _anomaly_list(ctx: PageContext, rows: list[dict[str, Any]]) -> Any:
    found = anomalies(rows)
    if not found:
        return html.P(ctx.t("overview.no_anomalies", pct=f"{THRESHOLD:.0%}"), className="muted")
    causes = _causes(ctx, found)
    items = []
    for i, (m, column, _, row) in enumerate(found[:MAX_ANOMALIES]):
        cmp = ctx.t("kpi.mom" if column == "change" else "kpi.yoy")
        line = ctx.t(
            "overview.anomaly_line",
            metric=metric_label(m, ctx.lang),
            cmp=cmp,
            change=m.format_change(row[column]),
        )
        cause = causes[i]
        good = (row[column] > 0) == (m.direction == "up")
        items.append(
            html.Li(
                [html.Strong(line), html.Span(cause, className="cause") if cause else None],
                className="anomaly good" if good else "anomaly bad",
            )
        )
    return html.Ul(items, className="anomaly-list", id="anomaly-list")


def _revenue_trend(ctx: PageContext) -> Any:
    series = ctx.data.get(timeseries, TRENDS, ctx.scope)
    revenue = series[series["metric"] == "revenue"]
    # a period is marked when revenue moved by the threshold from the period before it
    flagged: dict[str, list[str]] = {"revenue": []}
    values = [None if v is None else float(v) for v in revenue["value"]]
    for period, before, now in zip(revenue["period"][1:], values, values[1:], strict=False):
        if before and now is not None and abs(now / before - 1) >= THRESHOLD:
            flagged["revenue"].append(period)
    return trend(
        ctx, series, [metric("revenue"), metric("orders")], bars=("revenue",), flagged=flagged
    )


def _customer_trend(ctx: PageContext) -> Any:
    names = ("customers", "new_customers", "active_customers")
    series = ctx.data.get(timeseries, TRENDS, ctx.scope)
    return trend(ctx, series, [metric(n) for n in names])


def _by_place(ctx: PageContext, level: str) -> Any:
    frame = ctx.data.get(breakdown, ("revenue", "customers"), ctx.scope, (level,), top=15)
    if frame.empty:
        return html.Div(ctx.t("state.empty"), className="empty-state")
    return html.Div(
        [
            dim_bars(
                ctx,
                frame,
                level,
                [metric("revenue"), metric("customers")],
                cross_filter=level != "category",
            ),
            html.P(ctx.t("overview.click_hint"), className="hint") if level != "category" else None,
        ]
    )
