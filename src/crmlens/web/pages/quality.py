"""Data quality (D5): freshness, the load log with its row accounting, quarantined values."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import html

from crmlens.metrics.quality import duplicate_keys, loads, quality_report, quarantine_summary
from crmlens.models.views import latest_build
from crmlens.web.components import empty, guarded, table
from crmlens.web.data import Data
from crmlens.web.i18n import (
    action_label,
    code_label,
    day_label,
    number,
    pick,
    rule_label,
    text,
)
from crmlens.web.pages import PageContext


def render(ctx: PageContext) -> list[Any]:
    return [
        guarded(ctx.lang, ctx.t("quality.freshness"), lambda: _freshness(ctx), wide=True),
        guarded(ctx.lang, ctx.t("quality.tables"), lambda: _tables(ctx), wide=True),
        guarded(ctx.lang, ctx.t("quality.loads"), lambda: _loads(ctx)),
        guarded(ctx.lang, ctx.t("quality.quarantine"), lambda: _quarantine(ctx)),
    ]


def _when(value: Any, lang: str) -> str:
    if value is None or value != value:
        return "—"
    return (
        f"{day_label(value.date(), lang)} {value:%H:%M}"
        if hasattr(value, "hour")
        else day_label(value, lang)
    )


def _freshness(ctx: PageContext) -> Any:
    history = ctx.data.get(loads, 1)
    build = ctx.data.get(latest_build)
    b = ctx.data.bounds()
    facts = [
        (
            ctx.t("quality.last_load"),
            _when(history["finished_at"].iloc[0], ctx.lang) if len(history) else "—",
        ),
        (ctx.t("quality.last_order"), day_label(b.last, ctx.lang)),
        (ctx.t("quality.last_build"), _when(build["finished_at"], ctx.lang) if build else "—"),
    ]
    return html.Div(
        [
            html.Div(
                [html.Div(k, className="kpi-label"), html.Div(v, className="kpi-value small")],
                className="kpi-card",
            )
            for k, v in facts
        ],
        className="kpi-grid",
    )


#: The tables card's ID: :func:`tables_card` fills it in by a second request (see :func:`_tables`).
TABLES_ID = "dq-tables"


def _tables(ctx: PageContext) -> Any:
    """The per-table figures without duplicate keys, which fill in by a second request (the
    dashboard calls :func:`tables_card` as soon as this card is shown): counting distinct keys
    takes seconds at millions of rows, the other figures one plain scan per table."""
    frame = ctx.data.get(quality_report, as_of=ctx.data.bounds().last, duplicates=False)
    return html.Div(_tables_table(frame, ctx.lang), id=TABLES_ID)


def tables_card(data: Data, lang: str) -> Any:
    """The per-table figures with duplicate keys: the content of the card :func:`_tables` shows
    (the figures it showed, from the cache, and the duplicate keys counted now)."""
    frame = data.get(quality_report, as_of=data.bounds().last, duplicates=False)
    counted = data.get(duplicate_keys).set_index("table")["duplicate_keys"]
    return _tables_table(frame.assign(duplicate_keys=frame["table"].map(counted)), lang)


def _tables_table(frame: pd.DataFrame, lang: str) -> Any:
    rows = [
        (
            pick(r["label_zh"], r["label_en"], lang),
            number(r["rows"], lang),
            f"{r['missing_pct']:.1f}%",
            "…" if pd.isna(r["duplicate_keys"]) else number(int(r["duplicate_keys"]), lang),
            number(r["quarantined_total"], lang),
            _when(r["latest_time"], lang),
        )
        for r in frame.to_dict(orient="records")
    ]
    columns = [
        text(k, lang)
        for k in (
            "col.table",
            "col.rows",
            "col.missing",
            "col.duplicates",
            "col.rows_quarantined",
            "col.latest",
        )
    ]
    return table(columns, rows, numeric=(1, 2, 3, 4))


def _loads(ctx: PageContext) -> Any:
    frame = ctx.data.get(loads, 20)
    if frame.empty:
        return empty(ctx.lang)
    rows = [
        (
            r["load_id"],
            _when(r["started_at"], ctx.lang),
            number(r["rows_read"], ctx.lang),
            number(r["rows_loaded"], ctx.lang),
            number(r["rows_quarantined"], ctx.lang),
            number(r["rows_merged"], ctx.lang),
            code_label("load_status", r["status"], ctx.lang),
            text("yes" if r["balanced"] else "no", ctx.lang),
        )
        for r in frame.to_dict(orient="records")
    ]
    columns = [
        text(k, ctx.lang)
        for k in (
            "col.load_id",
            "col.started",
            "col.rows_read",
            "col.rows_loaded",
            "col.rows_quarantined",
            "col.rows_merged",
            "col.status",
            "col.balanced",
        )
    ]
    return table(columns, rows, numeric=(2, 3, 4, 5))


def _quarantine(ctx: PageContext) -> Any:
    frame = ctx.data.get(quarantine_summary)
    if frame.empty:
        return empty(ctx.lang)
    rows = [
        (
            pick(r["label_zh"], r["label_en"], ctx.lang),
            r["column_name"] or "—",
            _coded(rule_label(r["rule"], ctx.lang), r["rule"]),
            html.Span(action_label(r["action"], ctx.lang), title=r["action"] or ""),
            number(r["records"], ctx.lang),
        )
        for r in frame.to_dict(orient="records")
    ]
    columns = [
        text(k, ctx.lang)
        for k in ("col.table", "col.column", "col.rule", "col.action_taken", "col.records")
    ]
    return table(columns, rows, numeric=(4,))


def _coded(label: str, code: str | None) -> Any:
    """A code's name with the code itself in small text and as the tooltip: the manager reads the
    name, the analyst can still find the rule by the code the loader and ``crmlens`` report."""
    if not code or label == code:
        return label
    return html.Span([label, html.Br(), html.Small(code, className="muted code")], title=code)
