"""Shared building blocks of every page: the theme, sections, KPI cards, charts and tables.

One palette and one chart style for the whole dashboard: pages describe *what* to show (series,
labels, units) and these helpers decide *how* it looks, so every chart has a title, readable axes,
the same colours for the same meaning, and an empty state instead of a blank frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from crmlens.errors import CrmlensError, InsufficientDataError
from crmlens.metrics import NotApplicableError
from crmlens.metrics.metric import Metric
from crmlens.web.i18n import day_label, metric_label, metric_value, text

log = logging.getLogger(__name__)

#: The palette: series colours in order, and the colours that carry a meaning.
SERIES = ("#2f6fde", "#f2a93b", "#27a486", "#8e6bd6", "#e5654b", "#4ab3d9", "#9aa5b1", "#c7508a")
GOOD, BAD, NEUTRAL, ACCENT = "#1a9e5c", "#d64545", "#8a94a6", "#2f6fde"
#: Sequential scale for heat maps (light to the primary blue).
HEAT = [[0.0, "#f3f7fe"], [0.5, "#8fb3f0"], [1.0, "#1f4fa8"]]
FONT = '-apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Segoe UI", sans-serif'

#: Plotly config for every graph: no logo, no calls home, responsive.
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d"]}


#: A small template instead of Plotly's built-in ones: each figure carries its template to the
#: browser, and plotly_white alone is several kilobytes per chart.
TEMPLATE = go.layout.Template(
    layout={
        "xaxis": {"showgrid": False, "linecolor": "#d5dae3", "ticks": "", "automargin": True},
        "yaxis": {"gridcolor": "#edf0f5", "zerolinecolor": "#d5dae3", "automargin": True},
    }
)


#: The layout every chart gets (:func:`styled`), as Plotly writes it.
STYLE: dict[str, Any] = go.Layout(
    template=TEMPLATE,
    margin={"l": 48, "r": 16, "t": 28, "b": 40},
    font={"family": FONT, "size": 12, "color": "#27303f"},
    colorway=list(SERIES),
    legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
    hoverlabel={"font": {"family": FONT}},
    paper_bgcolor="rgba(0,0,0,0)",
    plot_bgcolor="rgba(0,0,0,0)",
    bargap=0.25,
).to_plotly_json()


def styled(fig: go.Figure, *, height: int = 320, legend: bool = True) -> dict[str, Any]:
    """``fig`` with the dashboard's chart style, as the dictionary Dash sends to the browser.

    The style is merged into the figure's layout as ``fig.update_layout`` would (the style wins
    where both set a value), but as plain dictionaries: Plotly validated each property of it on
    every chart, 5.5 ms a chart, a tenth of a page's time once its queries were fast.
    """
    figure = fig.to_plotly_json()
    style = STYLE | {"height": height, "showlegend": legend}
    # the template replaces Plotly's default one, as update_layout does
    layout = _merged({k: v for k, v in figure["layout"].items() if k != "template"}, style)
    return {"data": figure["data"], "layout": layout}


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``over``, nested dictionaries merged key by key (and copied: a
    figure never shares a dictionary with :data:`STYLE`)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict):
            out[key] = _merged(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


def graph(fig: dict[str, Any], graph_id: str | dict | None = None, **kwargs: Any) -> dcc.Graph:
    """A themed graph component of a :func:`styled` figure; a dict ``graph_id`` makes it a
    cross-filter source."""
    extra = {"id": graph_id} if graph_id is not None else {}
    # the container gets the figure's height: a responsive graph fills its container
    height = fig["layout"].get("height") or 320
    return dcc.Graph(
        figure=fig,
        config=GRAPH_CONFIG,
        className="chart",
        style={"height": f"{height}px"},
        **extra,
        **kwargs,
    )


def section(
    title: str, body: Any, *, subtitle: Any = None, wide: bool = False, sid: str = ""
) -> html.Section:
    """A titled card; ``wide`` spans the whole grid row. ``subtitle`` is a text or a component
    (such as :func:`model_note`)."""
    head = [html.H3(title, className="card-title")]
    if isinstance(subtitle, str) and subtitle:
        head.append(html.P(subtitle, className="card-subtitle"))
    elif subtitle is not None and not isinstance(subtitle, str):
        head.append(subtitle)
    classes = "card wide" if wide else "card"
    extra = {"id": sid} if sid else {}
    parts = list(body) if isinstance(body, list | tuple) else [body]
    return html.Section([html.Header(head), *parts], className=classes, **extra)


def empty(lang: str, key: str = "state.empty") -> html.Div:
    """The empty state: a short sentence where a chart or table would be."""
    return html.Div(text(key, lang), className="empty-state")


def model_note(lang: str, as_of: date | None) -> html.P | None:
    """The note under the title of a card built from the customer models: they are the latest
    build's snapshot as of ``as_of``, so the filter bar's date range does not change them (its other
    filters do). None when there is no build to date (the card then says so itself).
    """
    if as_of is None:
        return None
    return html.P(
        text("model.as_of", lang, day=day_label(as_of, lang)),
        className="card-subtitle model-note",
        **{"data-as-of": as_of.isoformat()},
    )


def guarded(
    lang: str,
    title: str,
    build: Callable[[], Any],
    *,
    wide: bool = False,
    note: html.P | None = None,
) -> Any:
    """``section(title, build())``, with the empty state when the data cannot answer; ``note``
    (e.g. :func:`model_note`) goes under the title.

    A KPI that cannot be filtered as asked (CAC by city) or a model not yet built is an empty state,
    not an error; anything else is logged and shown as an error banner in that card only, so one
    broken chart does not take the page down.
    """
    try:
        body = build()
    except NotApplicableError:
        body = empty(lang, "state.not_applicable")
    except InsufficientDataError:
        body = empty(lang, "state.no_models")
    except CrmlensError as exc:
        log.exception("dashboard section %r failed", title)
        body = html.Div(str(exc), className="error-banner", role="alert")
    return section(title, body, subtitle=note, wide=wide)


def arrow(m: Metric, change: float | None) -> tuple[str, str]:
    """The arrow and the CSS class of a change: green when it moves the good way."""
    if change is None or change == 0:
        return "→", "flat"
    up = change > 0
    good = up == (m.direction == "up")
    return ("▲" if up else "▼"), ("good" if good else "bad")


def kpi_card(m: Metric, row: dict[str, Any], lang: str, *, anomaly: bool = False) -> html.Div:
    """One KPI: value, 环比 and 同比 with coloured arrows, and progress to the target if any."""
    if row.get("note"):
        body: list[Any] = [
            html.Div("—", className="kpi-value"),
            empty(lang, "state.not_applicable"),
        ]
    else:
        body = [html.Div(metric_value(m, row.get("value"), lang), className="kpi-value")]
        changes = []
        for key, column in (("kpi.mom", "change"), ("kpi.yoy", "change_yoy")):
            sign, cls = arrow(m, row.get(column))
            changes.append(
                html.Span(
                    [
                        html.Span(text(key, lang), className="kpi-cmp"),
                        html.Span(f"{sign} {m.format_change(row.get(column))}"),
                    ],
                    className=f"kpi-change {cls}",
                    **{"data-change": column},
                )
            )
        body.append(html.Div(changes, className="kpi-changes"))
        if row.get("target") is not None:
            share = max(0.0, min(1.0, float(row.get("attainment") or 0.0)))
            met = bool(row.get("met"))
            body.append(
                html.Div(
                    [
                        html.Div(
                            html.Div(className="bar-fill", style={"width": f"{share:.0%}"}),
                            className=f"bar {'met' if met else 'not-met'}",
                        ),
                        html.Span(
                            f"{text('kpi.target', lang)} {metric_value(m, row['target'], lang)}"
                            f" · {text('kpi.met' if met else 'kpi.not_met', lang)}",
                            className="kpi-target-text",
                        ),
                    ],
                    className="kpi-target",
                )
            )
    title = [html.Span(metric_label(m, lang), className="kpi-label")]
    if anomaly:
        title.append(html.Span(text("kpi.anomaly", lang), className="badge warn"))
    return html.Div(
        [html.Div(title, className="kpi-head"), *body],
        className="kpi-card anomalous" if anomaly else "kpi-card",
        **{"data-metric": m.name},
    )


def table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[int] = ()
) -> html.Div:
    """A plain, scrollable table; the ``numeric`` column positions are right-aligned."""
    head = html.Thead(
        html.Tr(
            [html.Th(c, className="num" if i in numeric else None) for i, c in enumerate(columns)]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(cell, className="num" if i in numeric else None)
                    for i, cell in enumerate(r)
                ]
            )
            for r in rows
        ]
    )
    return html.Div(html.Table([head, body], className="data-table"), className="table-wrap")
