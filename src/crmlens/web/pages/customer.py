"""Customer 360 (D4): search by ID, phone or name, then one customer's whole picture on one page.

The customer shown is the URL's ``id`` parameter, so a 360 view can be shared like any other view;
the search box is answered by its own callback (:func:`search_results`). Contact data is masked by
the views (D7); the name is never shown.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from dash import dcc, html

from crmlens.errors import ConfigError
from crmlens.metrics import Scope
from crmlens.models.views import customer_360, search_customers
from crmlens.web.components import empty, guarded, model_note, section, table
from crmlens.web.data import Data
from crmlens.web.i18n import day_label, dim_label, number, pick, stage_label, text, value_label
from crmlens.web.pages import PageContext

#: Rows of each history table on the page.
HISTORY_ROWS = 10


def render(ctx: PageContext) -> list[Any]:
    box = html.Div(
        [
            dcc.Input(
                id="c360-query",
                type="search",
                placeholder=ctx.t("c360.search"),
                debounce=True,
                className="search-input",
                value=ctx.param("q") or "",
            ),
            html.Button(ctx.t("c360.button"), id="c360-go", className="button", n_clicks=0),
            html.Div(
                search_results(ctx.data, ctx.scope, ctx.param("q") or "", ctx.lang, ctx.search),
                id="c360-results",
            ),
        ],
        className="search-box",
    )
    out: list[Any] = [section(ctx.t("c360.search"), box, wide=True)]
    customer_id = ctx.param("id")
    if customer_id:
        out += _record(ctx, customer_id)
    return out


def search_results(data: Data, scope: Scope, query: str, lang: str, search: str) -> Any:
    """The matches of ``query`` as links to their 360 view, or a prompt / "none found"."""
    query = (query or "").strip()
    if not query:
        return html.P(text("c360.prompt", lang), className="muted")
    try:
        found = data.get(search_customers, query, limit=20, scope=scope)
    except ConfigError:
        return html.P(text("c360.none", lang), className="muted")
    if found.empty:
        return html.P(text("c360.none", lang), className="muted")
    params = [(k, v) for k, v in parse_qsl(search.lstrip("?")) if k not in ("id", "q")]
    rows = [
        (
            dcc.Link(
                r["customer_id"],
                href="/customer?" + urlencode([*params, ("q", query), ("id", r["customer_id"])]),
                className="c360-hit",
            ),
            r["phone"] if isinstance(r["phone"], str) else "—",
            value_label(r["customer_type"], lang),
            value_label(r["member_tier"], lang),
            value_label(r["city"], lang),
            value_label(r["rfm_segment_cn"], lang) if isinstance(r["rfm_segment_cn"], str) else "—",
        )
        for r in found.to_dict(orient="records")
    ]
    columns = [
        text("col.customer", lang),
        text("col.contact", lang),
        dim_label("customer_type", lang),
        text("col.tier", lang),
        text("col.city", lang),
        text("col.segment", lang),
    ]
    return table(columns, rows)


def _record(ctx: PageContext, customer_id: str) -> list[Any]:
    record = ctx.data.get(customer_360, customer_id, ctx.scope)
    if record is None:
        return [section(customer_id, empty(ctx.lang, "c360.not_found"), wide=True)]
    lang = ctx.lang
    p, s, o = record["profile"], record["scores"] or {}, record["orders"]
    stores = ctx.data.names("store")
    channels = ctx.data.names("channel")
    profile = [
        (text("col.customer", lang), p["customer_id"]),
        (dim_label("customer_type", lang), value_label(p.get("customer_type"), lang)),
        (dim_label("tier", lang), value_label(p.get("member_tier"), lang)),
        (dim_label("gender", lang), value_label(p.get("gender"), lang)),
        (dim_label("age_band", lang), p.get("age_band") or "—"),
        (dim_label("city", lang), value_label(p.get("city"), lang)),
        (
            dim_label("store", lang),
            stores.get(str(p.get("home_store_id")), p.get("home_store_id") or "—"),
        ),
        (dim_label("channel", lang), channels.get(str(p.get("signup_channel_id")), "—")),
        (text("col.contact", lang), f"{p.get('phone') or '—'} · {p.get('email') or '—'}"),
    ]
    scores = [
        (
            text("field.segment", lang),
            pick(s.get("rfm_segment_cn") or "—", s.get("rfm_segment_en") or "—", lang),
        ),
        (text("field.rfm", lang), s.get("rfm_code") or "—"),
        (text("field.lifecycle", lang), stage_label(s.get("lifecycle_stage"), lang)),
        (text("field.recency", lang), number(s.get("recency_days"), lang)),
        (text("field.clv", lang), "—" if s.get("clv_12m") is None else f"¥{s['clv_12m']:,.0f}"),
        (
            text("field.risk", lang),
            "—" if s.get("churn_risk") is None else f"{s['churn_risk']:.0%}",
        ),
        (
            text("field.reasons", lang),
            pick(s.get("churn_reasons_zh") or "—", s.get("churn_reasons_en") or "—", lang),
        ),
    ]
    orders = [
        (
            day_label(_day(r["order_time"]), lang),
            stores.get(str(r["store_id"]), r["store_id"] or "—"),
            r["order_channel"],
            f"¥{r['amount']:,.2f}",
            str(r["lines"]),
        )
        for r in o["latest"][:HISTORY_ROWS]
    ]
    totals = ctx.t(
        "c360.order_totals",
        orders=number(o["orders"], lang),
        refunds=number(o["refunds"], lang),
        revenue="¥" + number(o["revenue"] or 0.0, lang),
    )
    t = record["touches"]
    events = record["events"]
    return [
        section(
            f"{text('c360.profile', lang)} · {p['customer_id']}",
            _facts(profile),
            sid="c360-profile",
        ),
        section(
            text("c360.scores", lang),
            _facts(scores),
            subtitle=model_note(lang, s.get("as_of")),
            sid="c360-scores",
        ),
        section(
            text("c360.orders", lang),
            [
                html.P(totals, className="muted"),
                table(
                    [
                        text(k, lang)
                        for k in ("col.time", "col.store", "col.type", "col.amount", "col.count")
                    ],
                    orders,
                    numeric=(3, 4),
                )
                if orders
                else empty(lang, "c360.none_yet"),
            ],
            wide=True,
        ),
        guarded(lang, text("c360.tickets", lang), lambda: _tickets(record["tickets"], lang)),
        guarded(lang, text("c360.surveys", lang), lambda: _surveys(record["surveys"], lang)),
        section(
            text("c360.events", lang),
            [
                html.P(
                    text("c360.events_total", lang, n=number(events["total"], lang)),
                    className="muted",
                ),
                html.P(
                    text("c360.touches", lang)
                    + ": "
                    + text(
                        "c360.touch_line",
                        lang,
                        **{
                            k: number(t[k], lang)
                            for k in ("sent", "opened", "clicked", "converted")
                        },
                    )
                ),
            ],
        ),
    ]


def _day(value: Any) -> Any:
    return value.date() if hasattr(value, "date") else value


def _facts(pairs: list[tuple[str, Any]]) -> html.Dl:
    return html.Dl([x for k, v in pairs for x in (html.Dt(k), html.Dd(v))], className="facts")


def _tickets(rows: list[dict[str, Any]], lang: str) -> Any:
    if not rows:
        return empty(lang, "c360.none_yet")
    body = [
        (
            day_label(_day(r.get("opened_at")), lang),
            value_label(r.get("ticket_type"), lang),
            r.get("status") or "—",
            "—" if r.get("satisfaction") is None else str(r.get("satisfaction")),
        )
        for r in rows[:HISTORY_ROWS]
    ]
    return table([text(k, lang) for k in ("col.time", "col.type", "col.status", "col.score")], body)


def _surveys(rows: list[dict[str, Any]], lang: str) -> Any:
    if not rows:
        return empty(lang, "c360.none_yet")
    body = [
        (
            day_label(_day(r.get("responded_at")), lang),
            "—" if r.get("nps_score") is None else str(r.get("nps_score")),
            "—" if r.get("csat_score") is None else str(r.get("csat_score")),
        )
        for r in rows[:HISTORY_ROWS]
    ]
    return table([text("col.time", lang), "NPS", "CSAT"], body)
