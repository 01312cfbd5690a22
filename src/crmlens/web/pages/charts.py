"""Chart builders shared by the pages: bars by a dimension (cross-filter sources), period trends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from crmlens.metrics.metric import Metric
from crmlens.web.components import SERIES, graph, styled
from crmlens.web.i18n import metric_label, metric_value, period_label, pick, value_label
from crmlens.web.pages import PageContext


def shown_values(ctx: PageContext, dim: str, raw: Sequence[Any]) -> list[str]:
    """A dimension's stored values as shown: store and channel names, translated known values."""
    names = ctx.data.names(dim)
    out = []
    for v in raw:
        name = names.get(str(v))
        out.append(pick(name, name, ctx.lang) if name else value_label(v, ctx.lang))
    return out


def dim_bars(
    ctx: PageContext,
    frame: pd.DataFrame,
    dim: str,
    metrics: Sequence[Metric],
    *,
    cross_filter: bool = True,
    height: int = 320,
    horizontal: bool = False,
    marks: Callable[[go.Figure], object] | None = None,
) -> Any:
    """Bars of ``metrics`` per value of ``dim`` (columns named after the metrics); each bar carries
    its raw value as ``customdata`` so a click can filter by it. ``marks`` adds to the figure
    before it is styled (e.g. a reference line)."""
    labels = shown_values(ctx, dim, frame[dim])
    fig = go.Figure()
    for i, m in enumerate(metrics):
        values = [None if v is None else float(v) for v in frame[m.name]]
        text = [metric_value(m, v, ctx.lang) for v in values]
        axis = {"x": values, "y": labels} if horizontal else {"x": labels, "y": values}
        fig.add_bar(
            **axis,
            name=metric_label(m, ctx.lang),
            customdata=[str(v) for v in frame[dim]],
            hovertext=text,
            hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>",
            marker_color=SERIES[i % len(SERIES)],
            orientation="h" if horizontal else "v",
            yaxis="y" if i == 0 or horizontal else "y2",
            offsetgroup=str(i),
        )
    value_axis = "xaxis" if horizontal else "yaxis"
    fig.update_layout({value_axis: _axis_format(metrics[0].unit)})
    if len(metrics) > 1 and not horizontal:
        fig.update_layout(
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                **_axis_format(metrics[1].unit),
            },
            barmode="group",
        )
    if horizontal:
        fig.update_yaxes(autorange="reversed")
    if marks is not None:
        marks(fig)
    graph_id = {"type": "xf", "dim": dim} if cross_filter else None
    return graph(styled(fig, height=height, legend=len(metrics) > 1), graph_id)


def trend(
    ctx: PageContext,
    series: pd.DataFrame,
    metrics: Sequence[Metric],
    *,
    bars: Sequence[str] = (),
    flagged: dict[str, list[str]] | None = None,
    height: int = 320,
) -> Any:
    """Lines (or ``bars`` for the named metrics) of a :func:`crmlens.metrics.timeseries` frame; the
    first metric on the left axis, a second one with another unit on the right. ``flagged`` marks
    anomalous periods of a metric with a red ring."""
    fig = go.Figure()
    left_unit = metrics[0].unit
    for i, m in enumerate(metrics):
        rows = series[series["metric"] == m.name]
        x = [period_label(p, ctx.lang) for p in rows["period"]]
        y = [None if v is None else float(v) for v in rows["value"]]
        hover = [metric_value(m, v, ctx.lang) for v in y]
        axis = "y" if m.unit == left_unit else "y2"
        common = {
            "x": x,
            "y": y,
            "name": metric_label(m, ctx.lang),
            "hovertext": hover,
            "hovertemplate": "%{x}: %{hovertext}<extra>%{fullData.name}</extra>",
            "yaxis": axis,
            "marker_color": SERIES[i % len(SERIES)],
        }
        if m.name in bars:
            fig.add_bar(**common)
        else:
            fig.add_scatter(mode="lines+markers", line={"width": 2.5}, **common)
        marks = set((flagged or {}).get(m.name, []))
        if marks:
            idx = [j for j, p in enumerate(rows["period"]) if p in marks]
            fig.add_scatter(
                x=[x[j] for j in idx],
                y=[y[j] for j in idx],
                mode="markers",
                yaxis=axis,
                marker={
                    "size": 16,
                    "color": "rgba(0,0,0,0)",
                    "line": {"color": "#d64545", "width": 2.5},
                },
                hoverinfo="skip",
                showlegend=False,
            )
    right = next((m.unit for m in metrics if m.unit != left_unit), None)
    if right:
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False})
    fig.update_layout(yaxis=_axis_format(left_unit))
    if right:
        fig.update_layout(yaxis2=_axis_format(right))
    fig.update_layout(hovermode="x unified")
    return graph(styled(fig, height=height))


def _axis_format(unit: str) -> dict[str, str]:
    """Tick format of a value axis by unit: percent for ratios, ¥ for money."""
    if unit == "ratio":
        return {"tickformat": ".0%"}
    if unit == "money":
        return {"tickprefix": "¥"}
    return {}
