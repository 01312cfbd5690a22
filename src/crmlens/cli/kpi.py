"""``crmlens kpi``: KPIs as a time series, an overview (环比/同比/target) or a top-N breakdown.

Registered on the main app with ``app.command()(kpi)``. The metrics layer is imported inside the
command so that ``crmlens --help`` stays fast.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from crmlens.cli.options import WarehouseOption
from crmlens.cli.progress import make_console

if TYPE_CHECKING:
    import pandas as pd

    from crmlens.metrics import Scope
    from crmlens.warehouse import Warehouse

console = make_console()


def kpi(
    metrics: Annotated[
        list[str],
        typer.Argument(help="KPI names, e.g. revenue aov retention_30d (see docs/metrics.md)."),
    ],
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help="Break down by a dimension; repeat for up to 3."),
    ] = None,
    grain: Annotated[
        str, typer.Option(help="day, week (ISO, from Monday), month, quarter or year.")
    ] = "month",
    since: Annotated[
        str | None,
        typer.Option(
            help="First period: 2021-01-05, 2021-W05, 2021-01, 2021-Q1 or 2021 "
            "(default: 12 months before --until)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Last period, same forms (default: the last day with an order)."),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="dimension=value[,value], e.g. city=烟台; repeatable."),
    ] = None,
    overview: Annotated[
        bool,
        typer.Option(
            "--overview", help="One row per KPI over the whole range: 环比, 同比, target, met."
        ),
    ] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Add 环比 and 同比 to every period.")
    ] = False,
    top: Annotated[
        int | None,
        typer.Option(help="Whole range by --by, top N of the first dimension plus 其他."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    warehouse: WarehouseOption = None,
) -> None:
    """KPIs per period (or --overview, or --top breakdown), filtered by dimension."""
    from crmlens.metrics import breakdown, timeseries
    from crmlens.metrics import metrics as lookup
    from crmlens.metrics import overview as kpi_overview
    from crmlens.warehouse import Warehouse

    chosen = lookup(metrics)
    dims = list(by or [])
    with Warehouse(warehouse, read_only=True) as wh:
        scope = _scope(wh, since, until, grain, filters or [])
        if overview:
            frame = kpi_overview(wh, chosen, scope)
        elif top is not None:
            frame = breakdown(wh, chosen, scope, dims, top=top)
        else:
            frame = timeseries(wh, chosen, scope, dims, compare=compare)
    if as_json:
        console.print_json(json.dumps(_records(frame), ensure_ascii=False, default=str))
        return
    title = scope.describe()
    if overview:
        _print_overview(frame, title)
    elif top is not None:
        _print_breakdown(frame, chosen, dims, title)
    else:
        _print_series(frame, chosen, dims, compare, title)


def _scope(
    wh: Warehouse, since: str | None, until: str | None, grain: str, filters: list[str]
) -> Scope:
    """The scope from the options; open ends default to the order history's last 12 months."""
    from crmlens.metrics import Scope, parse_period
    from crmlens.metrics.periods import add_months
    from crmlens.metrics.summary import history_scope

    last = parse_period(until).end if until else history_scope(wh).end
    first = parse_period(since).start if since else add_months(last, -11).replace(day=1)
    return Scope.parse(first.isoformat(), last.isoformat(), grain, filters)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _print_series(
    frame: pd.DataFrame, chosen: list[Any], dims: list[str], compare: bool, title: str
) -> None:
    table = Table(title=title, title_justify="left")
    for name in ("period", *dims):
        table.add_column(name)
    for m in chosen:
        table.add_column(f"{m.label_zh}\n{m.name}", justify="right")
        if compare:
            table.add_column("环比", justify="right")
            table.add_column("同比", justify="right")
    keys = ["period", *dims]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in frame.to_dict(orient="records"):
        rows.setdefault(tuple(rec[k] for k in keys), {})[rec["metric"]] = rec
    for key, per_metric in rows.items():
        cells = [str(k) for k in key]
        for m in chosen:
            rec = per_metric.get(m.name, {})
            cells.append(m.fmt(rec.get("value")))
            if compare:
                cells += [
                    m.format_change(rec.get("change")),
                    m.format_change(rec.get("change_yoy")),
                ]
        table.add_row(*cells)
    console.print(table)


def _print_overview(frame: pd.DataFrame, title: str) -> None:
    from crmlens.metrics import metric

    table = Table(title=f"KPI 概览 / overview: {title}", title_justify="left")
    for name in ("指标", "KPI", "数值", "环比", "同比", "目标", "达标"):
        table.add_column(name, justify="left" if name in ("指标", "KPI") else "right")
    for rec in frame.to_dict(orient="records"):
        m = metric(rec["metric"])
        met = {True: "✓", False: "✗"}.get(rec["met"], "")
        table.add_row(
            m.label_zh,
            m.name,
            m.fmt(rec["value"]) if rec["note"] is None else "n/a",
            m.format_change(rec["change"]),
            m.format_change(rec["change_yoy"]),
            m.fmt(rec["target"]) if rec["target"] is not None else "",
            met,
        )
    console.print(table)
    for rec in frame.to_dict(orient="records"):
        if rec["note"]:
            console.print(f"[yellow]{rec['metric']}:[/] {rec['note']}")


def _print_breakdown(frame: pd.DataFrame, chosen: list[Any], dims: list[str], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for name in dims:
        table.add_column(name)
    for m in chosen:
        table.add_column(f"{m.label_zh}\n{m.name}", justify="right")
        if m.additive:
            table.add_column("占比", justify="right")
    for rec in frame.to_dict(orient="records"):
        cells = [str(rec[d]) for d in dims]
        for m in chosen:
            cells.append(m.fmt(rec[m.name]))
            if m.additive:
                share = rec.get(f"{m.name}_share")
                cells.append("—" if share is None else f"{share:.1%}")
        table.add_row(*cells)
    console.print(table)
