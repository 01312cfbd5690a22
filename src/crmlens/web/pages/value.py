"""Value (A5, M2): predicted CLV distribution and by segment and channel, CAC and LTV:CAC by channel."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from crmlens.metrics import breakdown, metric
from crmlens.models.views import clv_by, clv_distribution
from crmlens.web.components import SERIES, empty, graph, guarded, styled
from crmlens.web.i18n import dim_label, number, text, value_label
from crmlens.web.pages import PageContext
from crmlens.web.pages.charts import dim_bars, shown_values


def render(ctx: PageContext) -> list[Any]:
    note = ctx.model_note()  # the CLV cards are the latest build's; CAC follows the date range
    return [
        guarded(
            ctx.lang, ctx.t("value.clv_dist"), lambda: _distribution(ctx), wide=True, note=note
        ),
        guarded(
            ctx.lang,
            ctx.t("value.clv_by", dim=text("col.segment", ctx.lang)),
            lambda: _clv_by(ctx, "segment_cn8"),
            note=note,
        ),
        guarded(
            ctx.lang,
            ctx.t("value.clv_by", dim=dim_label("channel", ctx.lang)),
            lambda: _clv_by(ctx, "channel"),
            note=note,
        ),
        guarded(ctx.lang, ctx.t("value.cac"), lambda: _by_channel(ctx, "cac")),
        guarded(ctx.lang, ctx.t("value.ltv_cac"), lambda: _by_channel(ctx, "ltv_cac")),
    ]


def _distribution(ctx: PageContext) -> Any:
    frame = ctx.data.get(clv_distribution, ctx.scope, bins=30)
    if frame.empty:
        return empty(ctx.lang)
    mids = (frame["lower"] + frame["upper"]) / 2
    fig = go.Figure(
        go.Bar(
            x=mids,
            y=frame["customers"],
            width=(frame["upper"] - frame["lower"]) * 0.9,
            marker_color=SERIES[0],
            customdata=[
                f"¥{number(lo, ctx.lang, 0)} – ¥{number(hi, ctx.lang, 0)}"
                for lo, hi in zip(frame["lower"], frame["upper"], strict=True)
            ],
            hovertemplate="%{customdata}: %{y:,}<extra></extra>",
        )
    )
    fig.update_yaxes(type="log", dtick=1, title=text("value.customers_axis", ctx.lang))
    fig.update_xaxes(tickprefix="¥")
    return graph(styled(fig, height=300, legend=False))


def _clv_by(ctx: PageContext, grouping: str) -> Any:
    frame = ctx.data.get(clv_by, ctx.scope, grouping)
    if frame.empty:
        return empty(ctx.lang)
    if grouping == "channel":
        labels = shown_values(ctx, "channel", frame[grouping])
    else:
        labels = [value_label(v, ctx.lang) for v in frame[grouping]]
    fig = go.Figure()
    fig.add_bar(
        x=frame["mean_clv_12m"],
        y=labels,
        orientation="h",
        marker_color=SERIES[2],
        customdata=[str(v) for v in frame[grouping]],
        hovertemplate="%{y}: ¥%{x:,.0f}<extra></extra>",
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickprefix="¥")
    graph_id = {"type": "xf", "dim": "channel"} if grouping == "channel" else None
    return graph(styled(fig, height=320, legend=False), graph_id)


def _by_channel(ctx: PageContext, name: str) -> Any:
    frame = ctx.data.get(breakdown, (name,), ctx.scope, ("channel",))
    frame = frame[frame[name].notna()]
    if frame.empty:
        return empty(ctx.lang)

    def breakeven(fig: go.Figure) -> None:
        fig.add_vline(
            x=1,
            line_dash="dash",
            line_color="#d64545",
            annotation_text=text("value.breakeven", ctx.lang),
        )

    marks = breakeven if name == "ltv_cac" else None
    return dim_bars(ctx, frame, "channel", [metric(name)], horizontal=True, marks=marks)
