"""Churn (A6): the risk list with masked contact data, the drivers, what churned customers bought."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import plotly.graph_objects as go
from dash import dcc, html

from crmlens.models.views import (
    churn_drivers,
    churn_risk_count,
    churn_risk_list,
    churned_purchases,
    churned_sku_counts,
)
from crmlens.web.components import SERIES, empty, graph, guarded, styled, table
from crmlens.web.i18n import number, period_label, pick, stage_label, text, value_label
from crmlens.web.pages import PageContext

#: Rows of the risk list.
LIST_ROWS = 20
#: Categories in the "what churned customers bought" chart.
TOP_CATEGORIES = 10


def render(ctx: PageContext) -> list[Any]:
    note = ctx.model_note()  # every card here is the latest build's snapshot
    return [
        guarded(ctx.lang, ctx.t("churn.list"), lambda: _risk_list(ctx), wide=True, note=note),
        guarded(ctx.lang, ctx.t("churn.drivers"), lambda: _drivers(ctx), note=note),
        guarded(ctx.lang, ctx.t("churn.purchased"), lambda: _purchased(ctx), note=note),
        guarded(ctx.lang, ctx.t("churn.skus"), lambda: _skus(ctx), wide=True, note=note),
    ]


def _risk_list(ctx: PageContext) -> Any:
    frame = ctx.data.get(churn_risk_list, ctx.scope, limit=LIST_ROWS, early_warning_only=True)
    if frame.empty:
        frame = ctx.data.get(churn_risk_list, ctx.scope, limit=LIST_ROWS)
        count = ctx.data.get(churn_risk_count, ctx.scope)
    else:
        count = ctx.data.get(churn_risk_count, ctx.scope, early_warning_only=True)
    if frame.empty:
        return empty(ctx.lang)
    link = ctx.search
    rows = [
        (
            dcc.Link(r["customer_id"], href=f"/customer{_with_id(link, r['customer_id'])}"),
            r["phone"] or "—",
            value_label(r["member_tier"], ctx.lang),
            value_label(r["city"], ctx.lang),
            pick(r["rfm_segment_cn"] or "—", r["rfm_segment_en"] or "—", ctx.lang),
            stage_label(r["lifecycle_stage"], ctx.lang),
            f"{r['churn_risk']:.0%}",
            pick(r["churn_reasons_zh"] or "—", r["churn_reasons_en"] or "—", ctx.lang),
        )
        for r in frame.to_dict(orient="records")
    ]
    columns = [
        text(k, ctx.lang)
        for k in (
            "col.customer", "col.contact", "col.tier", "col.city",
            "col.segment", "field.lifecycle", "col.risk", "col.reasons",
        )
    ]  # fmt: skip
    return [
        html.P(ctx.t("churn.count", n=number(count, ctx.lang), shown=len(rows)), className="muted"),
        table(columns, rows, numeric=(6,)),
    ]


def _with_id(search: str, customer_id: str) -> str:
    """The current query string plus ``id`` (the 360 page's customer)."""
    params = [(k, v) for k, v in parse_qsl(search.lstrip("?")) if k != "id"]
    return "?" + urlencode([*params, ("id", customer_id)])


def _drivers(ctx: PageContext) -> Any:
    frame = ctx.data.get(churn_drivers, ctx.scope)
    if frame.empty:
        return empty(ctx.lang)
    top = frame.head(10)
    labels = [
        pick(zh, en, ctx.lang) for zh, en in zip(top["reason_zh"], top["reason_en"], strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            x=top["share"],
            y=labels,
            orientation="h",
            marker_color=SERIES[4],
            hovertemplate="%{y}: %{x:.0%}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickformat=".0%")
    return graph(styled(fig, height=340, legend=False))


def _purchased(ctx: PageContext) -> Any:
    frame = ctx.data.get(churned_purchases)
    top = frame[frame["rank_by_lines"].notna()].head(TOP_CATEGORIES)
    if top.empty:
        return empty(ctx.lang)
    rows = [
        (
            value_label(r["category"], ctx.lang),
            number(r["churned_lines"], ctx.lang),
            f"{r['lift']:.2f}" if r["lift"] == r["lift"] else "—",
            text(f"trend.{r['sku_trend']}", ctx.lang)
            if r["sku_trend"] in ("shrinking", "stable", "growing")
            else "—",
        )
        for r in top.to_dict(orient="records")
    ]
    columns = [
        text(k, ctx.lang)
        for k in ("col.category", "col.churned_lines", "col.lift", "col.sku_trend")
    ]
    return table(columns, rows, numeric=(1, 2))


def _skus(ctx: PageContext) -> Any:
    frame = ctx.data.get(churned_sku_counts)
    if frame.empty:
        return empty(ctx.lang)
    fig = go.Figure()
    for i, (category, part) in enumerate(frame.groupby("category", sort=True)):
        fig.add_scatter(
            x=[period_label(m, ctx.lang) for m in part["month"]],
            y=part["skus"],
            name=value_label(category, ctx.lang),
            mode="lines",
            line={"width": 2.5, "color": SERIES[i % len(SERIES)]},
        )
    fig.update_layout(hovermode="x unified")
    return graph(styled(fig, height=300))
