"""Segments (A1, A2, A3, A10): the RFM grid, segments with their actions, clusters and personas."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import html

from crmlens.models.views import cluster_points, clusters, personas, rfm_grid, segment_counts
from crmlens.web.components import HEAT, SERIES, empty, graph, guarded, styled, table
from crmlens.web.i18n import number, pick, text, value_label
from crmlens.web.pages import PageContext


def render(ctx: PageContext) -> list[Any]:
    note = ctx.model_note()  # every card here is the latest build's snapshot
    return [
        guarded(ctx.lang, ctx.t("seg.rfm_grid"), lambda: _grid(ctx), note=note),
        guarded(ctx.lang, ctx.t("seg.clusters"), lambda: _clusters(ctx), note=note),
        guarded(ctx.lang, ctx.t("seg.table"), lambda: _segments(ctx), wide=True, note=note),
        guarded(ctx.lang, ctx.t("seg.personas"), lambda: _personas(ctx), wide=True, note=note),
    ]


def _grid(ctx: PageContext) -> Any:
    frame = ctx.data.get(rfm_grid, ctx.scope)
    if frame.empty:
        return empty(ctx.lang)
    grid = frame.pivot(index="r_score", columns="f_score", values="customers").reindex(
        index=[5, 4, 3, 2, 1], columns=[1, 2, 3, 4, 5]
    )
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[f"F{c}" for c in grid.columns],
            y=[f"R{r}" for r in grid.index],
            colorscale=HEAT,
            texttemplate="%{z:,}",
            hovertemplate="%{y} %{x}: %{z:,}<extra></extra>",
            colorbar={"thickness": 10},
        )
    )
    fig.update_yaxes(autorange="reversed")  # R5 (most recent) on top
    return graph(styled(fig, height=320, legend=False))


def _segments(ctx: PageContext) -> Any:
    frame = ctx.data.get(segment_counts, ctx.scope, "cn8")
    columns = [
        text("col.segment", ctx.lang),
        text("col.customers", ctx.lang),
        text("col.share", ctx.lang),
        ctx.t("col.revenue_share"),
        ctx.t("col.mean_clv"),
        ctx.t("col.mean_risk"),
        text("col.action", ctx.lang),
    ]
    rows = [
        (
            pick(r["name_zh"], r["name_en"], ctx.lang),
            number(r["customers"], ctx.lang),
            _pct(r["share"]),
            _pct(r["revenue_share"]),
            "—" if r["mean_clv_12m"] is None else f"¥{r['mean_clv_12m']:,.0f}",
            _pct(r["mean_churn_risk"]),
            pick(r["action_zh"], r["action_en"], ctx.lang),
        )
        for r in frame.to_dict(orient="records")
    ]
    return table(columns, rows, numeric=(1, 2, 3, 4, 5))


def _pct(v: Any) -> str:
    return "—" if v is None or v != v else f"{float(v):.1%}"


def _clusters(ctx: PageContext) -> Any:
    points = ctx.data.get(
        cluster_points,
    )
    profiles = ctx.data.get(clusters)
    if points.empty:
        return empty(ctx.lang)
    names = {
        int(r["cluster"]): pick(r["label_zh"], r["label_en"], ctx.lang)
        for r in profiles.to_dict(orient="records")
    }
    fig = go.Figure()
    for i, (cluster, part) in enumerate(points.groupby("cluster")):
        fig.add_scattergl(
            x=part["x"],
            y=part["y"],
            mode="markers",
            name=f"{cluster}: {names.get(int(cluster), cluster)}",
            marker={"size": 5, "opacity": 0.6, "color": SERIES[i % len(SERIES)]},
            hoverinfo="name",
        )
    rows = [
        (
            f"{r['cluster']}: {names[int(r['cluster'])]}",
            number(r["customers"], ctx.lang),
            _pct(r["share"]),
            _pct(r["revenue_share"]),
            f"{r['mean_recency_days']:,.0f}",
            f"{r['mean_frequency']:,.1f}",
            f"¥{r['mean_monetary']:,.0f}",
        )
        for r in profiles.to_dict(orient="records")
    ]
    columns = [
        ctx.t("col.cluster"),
        text("col.customers", ctx.lang),
        text("col.share", ctx.lang),
        ctx.t("col.revenue_share"),
        ctx.t("col.recency"),
        ctx.t("col.frequency"),
        ctx.t("col.spend"),
    ]
    return [graph(styled(fig, height=300)), table(columns, rows, numeric=(1, 2, 3, 4, 5, 6))]


def _mix(mix: dict[str, float], lang: str, n: int = 5) -> str:
    return (", " if lang == "en" else "、").join(
        f"{value_label(k, lang)} {v:.0%}" for k, v in list(mix.items())[:n]
    ) or "—"


def _personas(ctx: PageContext) -> Any:
    frame = ctx.data.get(personas, "member_tier")
    if frame.empty:
        return empty(ctx.lang)
    cards = []
    for r in frame.to_dict(orient="records"):
        facts = [
            (ctx.t("persona.shares"), f"{_pct(r['member_share'])} / {_pct(r['revenue_share'])}"),
            (ctx.t("persona.gender"), _mix(r["gender_mix"], ctx.lang)),
            (ctx.t("persona.age"), _mix(r["age_mix"], ctx.lang)),
            (ctx.t("persona.departments"), _mix(r["top_departments"], ctx.lang)),
            (ctx.t("persona.payment"), _mix(r["payment_mix"], ctx.lang, 3)),
        ]
        cards.append(
            html.Div(
                [
                    html.H4(
                        f"{value_label(r['group_name'], ctx.lang)} · {number(r['customers'], ctx.lang)}"
                    ),
                    html.P(
                        pick(r["description_zh"], r["description_en"], ctx.lang), className="muted"
                    ),
                    html.Dl([x for k, v in facts for x in (html.Dt(k), html.Dd(v))]),
                ],
                className="persona",
            )
        )
    return html.Div(cards, className="persona-grid")
