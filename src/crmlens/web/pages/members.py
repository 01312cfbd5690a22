"""Members & targets (M4, M5, A8): members against target, members per store, the member trend and
the store pilot's new members."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from crmlens.metrics import Scope, breakdown, member_trend, metric, timeseries, vs_target
from crmlens.web.components import BAD, GOOD, SERIES, empty, graph, guarded, styled, table
from crmlens.web.i18n import dim_label, metric_value, number, period_label, text
from crmlens.web.pages import PageContext
from crmlens.web.pages.charts import shown_values


def target_scope(ctx: PageContext) -> Scope:
    """The view's last month: targets are set per month (members per city for 2021-12)."""
    end = ctx.scope.end
    return Scope(end.replace(day=1), end, "month", ctx.view.filters())


def render(ctx: PageContext) -> list[Any]:
    level = "store" if ctx.view.drill_level() in ("store", None) else "city"
    month = period_label(f"{ctx.scope.end:%Y-%m}", ctx.lang)
    return [
        guarded(
            ctx.lang,
            ctx.t("members.vs_target", dim=dim_label(level, ctx.lang)) + f" · {month}",
            lambda: _vs_target(ctx, level),
            wide=True,
        ),
        guarded(ctx.lang, ctx.t("members.trend"), lambda: _trend(ctx)),
        guarded(ctx.lang, ctx.t("members.per_store") + f" · {month}", lambda: _per_store(ctx)),
        guarded(ctx.lang, _pilot_title(ctx), lambda: _pilot(ctx), wide=True),
    ]


def _vs_target(ctx: PageContext, level: str) -> Any:
    m = metric("members")
    frame = ctx.data.get(vs_target, "members", target_scope(ctx), level)
    frame = frame[frame["target"].notna()]
    if frame.empty:
        return empty(ctx.lang)
    labels = shown_values(ctx, level, frame[level])
    raw = [str(v) for v in frame[level]]
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=frame["value"].astype(float),
        name=text("col.value", ctx.lang),
        customdata=raw,
        marker_color=[GOOD if met else BAD for met in frame["met"]],
        hovertext=[metric_value(m, v, ctx.lang) for v in frame["value"]],
        hovertemplate="%{x}: %{hovertext}<extra></extra>",
    )
    fig.add_scatter(
        x=labels,
        y=frame["target"].astype(float),
        mode="markers",
        name=text("col.target", ctx.lang),
        marker={"symbol": "line-ew-open", "size": 28, "line": {"width": 3, "color": "#27303f"}},
    )
    rows = [
        (
            name,
            number(r["value"], ctx.lang),
            number(r["target"], ctx.lang),
            f"{r['attainment']:.1%}" if r["attainment"] is not None else "—",
            number(r["gap"], ctx.lang),
            text("yes" if r["met"] else "no", ctx.lang),
        )
        for name, r in zip(labels, frame.to_dict(orient="records"), strict=True)
    ]
    columns = [dim_label(level, ctx.lang)] + [
        text(k, ctx.lang)
        for k in ("col.value", "col.target", "col.attainment", "col.gap", "col.met")
    ]
    return [
        graph(styled(fig, height=300), {"type": "xf", "dim": level}),
        table(columns, rows, numeric=(1, 2, 3, 4)),
    ]


def _trend(ctx: PageContext) -> Any:
    frame = ctx.data.get(member_trend, ctx.scope)
    if frame.empty:
        return empty(ctx.lang)
    x = [period_label(p, ctx.lang) for p in frame["period"]]
    fig = go.Figure()
    for i, column in enumerate(("new_members", "loyal_members", "churned_members")):
        fig.add_scatter(
            x=x,
            y=frame[column],
            name=text(f"series.{column}", ctx.lang),
            mode="lines+markers",
            line={"width": 2.5, "color": SERIES[i]},
        )
    fig.update_layout(hovermode="x unified")
    return graph(styled(fig))


def _per_store(ctx: PageContext) -> Any:
    stores = ctx.data.stores()
    physical = stores[stores["store_id"].isin(_physical(ctx))]
    counts = physical.groupby("city").size()
    members = ctx.data.get(breakdown, ("members",), target_scope(ctx), ("city",))
    frame = members[members["city"].isin(counts.index)].copy()
    if frame.empty:
        return empty(ctx.lang)
    frame["stores"] = frame["city"].map(counts).astype(int)
    frame["per_store"] = frame["members"].astype(float) / frame["stores"]
    frame = frame.sort_values("per_store", ascending=False)
    labels = shown_values(ctx, "city", frame["city"])
    fig = go.Figure(
        go.Bar(
            x=frame["per_store"],
            y=labels,
            orientation="h",
            customdata=list(frame["city"]),
            marker_color=SERIES[0],
            hovertemplate="%{y}: %{x:,.0f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return graph(styled(fig, height=300, legend=False), {"type": "xf", "dim": "city"})


def _physical(ctx: PageContext) -> list[str]:
    """Stores that are places (the online shop has members too, but no floor to count per)."""
    pilot = ctx.data.pilot()
    stores = ctx.data.stores()
    ids = [s for s in stores["store_id"] if not str(s).endswith("00")]
    if pilot:  # a pilot's stores are physical by definition
        ids = sorted({*ids, *(s for arm in pilot[1].values() for s in arm)})
    return ids


def _pilot_title(ctx: PageContext) -> str:
    pilot = ctx.data.pilot()
    return ctx.t("members.pilot", name=pilot[0] if pilot else "—")


def _pilot(ctx: PageContext) -> Any:
    pilot = ctx.data.pilot()
    if not pilot:
        return empty(ctx.lang)
    _, arms = pilot
    series = ctx.data.get(timeseries, ("new_customers",), ctx.scope, ("store",))
    rows = []
    for arm, stores in sorted(arms.items(), key=lambda kv: kv[0] != "treatment"):
        part = series[series["store"].isin(stores)]
        per = part.groupby("period", sort=False)["value"].sum() / max(len(stores), 1)
        rows.append((arm, per))
    if all(per.empty for _, per in rows):
        return empty(ctx.lang)
    fig = go.Figure()
    for i, (arm, per) in enumerate(rows):
        key = f"members.pilot_arm.{arm}"
        name = text(key, ctx.lang) if arm in ("treatment", "control") else arm
        fig.add_scatter(
            x=[period_label(p, ctx.lang) for p in per.index],
            y=pd.to_numeric(per.values),
            name=name,
            mode="lines+markers",
            line={"width": 2.5, "color": SERIES[i]},
        )
    fig.update_layout(hovermode="x unified", yaxis_title=text("members.per_store_unit", ctx.lang))
    return graph(styled(fig))
