"""Retention & lifecycle (A4): cohort heat map, lifecycle status bars, the 30-day retention trend."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from crmlens.metrics import STATUSES, cohort_table, lifecycle, metric, timeseries, triangle
from crmlens.web.components import BAD, HEAT, SERIES, empty, graph, guarded, styled
from crmlens.web.i18n import period_label, text
from crmlens.web.pages import PageContext
from crmlens.web.pages.charts import trend

#: Months after the first purchase shown in the cohort heat map.
COHORT_PERIODS = 12
_STATUS_COLOURS = {
    "new": SERIES[0],
    "returning": SERIES[2],
    "resurrecting": SERIES[1],
    "dormant": BAD,
}


def render(ctx: PageContext) -> list[Any]:
    return [
        guarded(ctx.lang, ctx.t("retention.cohorts"), lambda: _cohorts(ctx), wide=True),
        guarded(ctx.lang, ctx.t("retention.lifecycle"), lambda: _lifecycle(ctx)),
        guarded(ctx.lang, ctx.t("retention.trend"), lambda: _retention(ctx)),
    ]


def _cohorts(ctx: PageContext) -> Any:
    table = ctx.data.get(cohort_table, ctx.scope, grain="month", periods=COHORT_PERIODS)
    if table.empty or not table["cohort_size"].any():
        return empty(ctx.lang)
    tri = triangle(table)
    cells = tri.drop(columns="cohort_size")
    z = [[None if v is None else float(v) for v in row] for row in cells.to_numpy()]
    y = [
        f"{period_label(c, ctx.lang)} ({int(n)})"
        for c, n in zip(tri.index, tri["cohort_size"], strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in cells.columns],
            y=y,
            colorscale=HEAT,
            zmin=0,
            zmax=max(
                0.05, max((v for row in z[:] for v in row[1:] if v is not None), default=0.05)
            ),
            texttemplate="%{z:.0%}",
            hovertemplate="%{y} +%{x}: %{z:.1%}<extra></extra>",
            colorbar={"tickformat": ".0%", "thickness": 10},
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title=text("retention.cohort_axis", ctx.lang), type="category")
    return graph(styled(fig, height=max(320, 24 * len(y) + 80), legend=False))


def _lifecycle(ctx: PageContext) -> Any:
    frame = ctx.data.get(lifecycle, ctx.scope)
    if frame.empty:
        return empty(ctx.lang)
    fig = go.Figure()
    for status in STATUSES:
        part = frame[frame["status"] == status]
        fig.add_bar(
            x=[period_label(p, ctx.lang) for p in part["period"]],
            y=part["customers"],
            name=text(f"status.{status}", ctx.lang),
            marker_color=_STATUS_COLOURS[status],
        )
    fig.update_layout(barmode="relative", hovermode="x unified")
    return graph(styled(fig))


def _retention(ctx: PageContext) -> Any:
    series = ctx.data.get(timeseries, ("retention_30d", "repurchase_rate"), ctx.scope)
    return trend(ctx, series, [metric("retention_30d"), metric("repurchase_rate")])
