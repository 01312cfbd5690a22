"""The Dash app on the FastAPI server: the shell (header, navigation, filter bar) and the routing.

Dash 4's FastAPI backend adds its routes (``/``, ``/_dash-*``, ``/assets``) to the given FastAPI
app and, at startup, a catch-all ``GET /{path}`` that serves the page shell for any other path.
Routes are matched in order and the catch-all is added last, so the REST API's routes under
``/api`` (added to the same app before or after :func:`create_dash`) keep working; a request for an
unknown ``/api`` path gets a JSON 404 from the route added here rather than the dashboard's HTML.

State lives in the URL (:mod:`crmlens.web.state`): one callback keeps the filter bar and the query
string in step (a circular callback, so both directions are one callback), cross-filter clicks
rewrite the query string, and the page callback renders the page of the path for the view of the
query string.

Every callback runs on a worker thread (:func:`off_loop`): Dash's FastAPI backend calls a plain
callback on the event loop itself, where one view being computed would hold up every other
request to the server, cached pages and the REST API included, until it is done.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import fastapi
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from crmlens.metrics import OTHER
from crmlens.metrics.cache import ResultCache
from crmlens.warehouse.engines import ReadableWarehouse
from crmlens.web.data import Data
from crmlens.web.i18n import LANGS, dim_label, period_label, pick, text, value_label
from crmlens.web.pages import PAGES, PageContext, render_page
from crmlens.web.pages.customer import search_results
from crmlens.web.pages.quality import TABLES_ID, tables_card
from crmlens.web.state import FILTER_DIMS, View

P = ParamSpec("P")
R = TypeVar("R")


def off_loop(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` as an async callback that runs it on a worker thread, so the event loop keeps
    answering other requests meanwhile (the thread gets a copy of the context: Dash's
    ``callback_context`` works in it)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    return run


#: The month pickers and the grain; the filter dimensions follow (``f-region`` …).
_SINGLE = ("region", "city", "store")
_MULTI = tuple(d for d in FILTER_DIMS if d not in _SINGLE)
_GRAINS = ("week", "month", "quarter", "year")
_CONTROLS = ("f-from", "f-to", "f-grain", *(f"f-{d}" for d in FILTER_DIMS), "f-lang")


def create_dash(
    server: fastapi.FastAPI, wh: ReadableWarehouse, cache: ResultCache, *, warm_up: bool = False
) -> Dash:
    """The dashboard, mounted on ``server`` at ``/`` (pages at ``/overview``, ``/segments`` …).

    ``warm_up`` renders every page's default view and the filter bar's options at startup, into
    ``cache``, so that first visits are answered from it (startup takes that much longer).
    """
    data = Data(wh, cache)
    assets = str(resources.files("crmlens.web").joinpath("assets"))
    app = Dash(
        __name__,
        server=server,
        backend="fastapi",
        routes_pathname_prefix="/",
        requests_pathname_prefix="/",
        assets_folder=assets,
        serve_locally=True,
        external_stylesheets=[],
        external_scripts=[],
        title=text("app.title", "zh-CN"),
        update_title=None,
        suppress_callback_exceptions=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )

    # at startup, after Dash has added its catch-all: /api stays JSON (see the module docstring)
    server.router.add_event_handler("startup", lambda: _api_not_found_before_catchall(server))
    # Dash 4.4.1's FastAPI backend prepares the index (assets, scripts) before its own routes
    # only, and the catch-all serving /overview etc. is not one of them: a first visit to a
    # page other than / would get a page without the stylesheet. Prepare it at startup instead.
    server.router.add_event_handler("startup", app._setup_server)
    if warm_up:
        server.router.add_event_handler("startup", lambda: warm(data))
    app.layout = _shell
    _register(app, data)
    return app


def page_key(pathname: str, search: str) -> tuple[str, str, str]:
    """The cache key of a rendered page: its path and the URL's query string."""
    return ("crmlens.web.page", pathname, search)


def render_cached(data: Data, pathname: str | None, search: str | None) -> Any:
    """The page at ``pathname`` for the view of ``search``, from the cache when rendered before.

    A rendered page is a result like any other: cached per path and view, dropped with the rest
    of the cache on a new load or build.
    """
    view = View.parse(search)
    context = PageContext(data, view, data.scope_of(view), view.lang, search or "")
    path = pathname or "/"
    return data.cache.get(page_key(path, search or ""), lambda: render_page(path, context))


def warm(data: Data) -> None:
    """Render every page's default view (with the quality page's second request) and compute the
    filter options, into the cache."""
    for dim in FILTER_DIMS:
        data.options(dim)
    for path in ("/", *(f"/{name}" for name in PAGES)):
        render_cached(data, path, "")
    tables_card(data, "zh-CN")  # the quality page's second request (its duplicate keys)


async def _api_not_found(rest: str) -> JSONResponse:
    return JSONResponse({"detail": f"no API route /api/{rest}"}, status_code=404)


def _api_not_found_before_catchall(server: fastapi.FastAPI) -> None:
    """Insert a JSON 404 for unknown ``/api/…`` GETs just before Dash's catch-all route, so the
    API's own routes (wherever they were added) match first and a typo is not answered with the
    dashboard's HTML."""
    routes = server.router.routes
    if any(getattr(r, "name", None) == "crmlens_api_not_found" for r in routes):
        return
    route = APIRoute(
        "/api/{rest:path}",
        _api_not_found,
        methods=["GET"],
        name="crmlens_api_not_found",
        include_in_schema=False,
    )
    catchall = [i for i, r in enumerate(routes) if getattr(r, "path", "").endswith("{path:path}")]
    routes.insert(catchall[0] if catchall else len(routes), route)


def _shell() -> html.Div:
    """The page frame; every text in it is filled in by the chrome callback for the language."""
    dropdowns = [
        html.Div(
            [
                html.Label(id=f"l-{d}", htmlFor=f"f-{d}"),
                dcc.Dropdown(id=f"f-{d}", multi=d in _MULTI),
            ],
            className=f"filter filter-{d}",
        )
        for d in FILTER_DIMS
    ]
    return html.Div(
        [
            dcc.Location(id="url", refresh=False),
            html.Header(
                [
                    html.Div(
                        [html.H1(id="app-title"), html.Span(id="app-subtitle")], className="brand"
                    ),
                    html.Nav(
                        [dcc.Link(id=f"nav-{name}", href=f"/{name}") for name in PAGES],
                        className="nav",
                    ),
                    dcc.RadioItems(
                        id="f-lang",
                        options=[{"label": text(f"lang.{x}", x), "value": x} for x in LANGS],
                        value="zh-CN",
                        inline=True,
                        className="lang-switch",
                    ),
                ],
                className="topbar",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Label(id="l-from", htmlFor="f-from"),
                            dcc.Dropdown(id="f-from", clearable=False),
                        ],
                        className="filter filter-month",
                    ),
                    html.Div(
                        [
                            html.Label(id="l-to", htmlFor="f-to"),
                            dcc.Dropdown(id="f-to", clearable=False),
                        ],
                        className="filter filter-month",
                    ),
                    html.Div(
                        [
                            html.Label(id="l-grain", htmlFor="f-grain"),
                            dcc.Dropdown(id="f-grain", clearable=False),
                        ],
                        className="filter filter-grain",
                    ),
                    *dropdowns,
                    html.Button(id="f-reset", className="reset", n_clicks=0),
                ],
                className="filterbar",
                id="filterbar",
            ),
            dcc.Loading(
                html.Main(id="page", className="page"),
                type="dot",
                color="#2f6fde",
                delay_show=150,
                className="loading",
            ),
            html.Footer(id="footer", className="footer"),
        ],
        className="app",
    )


def _register(app: Dash, data: Data) -> None:
    @app.callback(
        Output("url", "search"),
        *(Output(c, "value") for c in _CONTROLS),
        *(Output(c, "options") for c in _CONTROLS[:-1]),
        Input("url", "search"),
        *(Input(c, "value") for c in _CONTROLS),
        Input("f-reset", "n_clicks"),
    )
    @off_loop
    def sync(search: str | None, *values: Any) -> tuple[Any, ...]:
        """URL → filter bar on load and navigation; filter bar → URL on a change.

        The options go out with the values: a dropdown given a value before its options would
        drop it as invalid, and that change would come back here and erase the filter."""
        b = data.bounds()
        trigger = ctx.triggered_id
        current = View.parse(search)
        if trigger in (None, "url"):
            out = _controls(current, b.default_start, b.default_end)
            return (no_update, *out, *_options(data, current))
        if trigger == "f-reset":
            view = View(lang=current.lang)
        else:
            view = _from_controls(dict(zip(_CONTROLS, values[:-1], strict=True)), current, trigger)
            view = _without_defaults(view, b.default_start, b.default_end)
        out = _controls(view, b.default_start, b.default_end)
        changed = view.query() != (search or "")
        return (view.query() if changed else no_update, *out, *_options(data, view))

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input({"type": "xf", "dim": ALL}, "clickData"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    @off_loop
    def cross_filter(clicks: list[Any], search: str | None) -> Any:
        """A click on a bar or a map region filters by its value (and so drills down)."""
        trigger = ctx.triggered_id
        if not trigger or not any(clicks):
            return no_update
        click = next((c for c in ctx.triggered if c.get("value")), None)
        point = (click or {}).get("value", {}).get("points", [{}])[0]
        raw = point.get("customdata")
        raw = raw[0] if isinstance(raw, list) else raw
        if not raw or raw == OTHER:
            return no_update
        view = View.parse(search).with_filter(trigger["dim"], [str(raw)])
        return view.query()

    @app.callback(
        Output("page", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
    )
    @off_loop
    def page(pathname: str | None, search: str | None) -> Any:
        return render_cached(data, pathname, search)

    @app.callback(
        Output("c360-results", "children"),
        Input("c360-go", "n_clicks"),
        Input("c360-query", "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    @off_loop
    def customer_search(_clicks: int, query: str | None, search: str | None) -> Any:
        view = View.parse(search)
        return search_results(data, data.scope_of(view), query or "", view.lang, search or "")

    @app.callback(Output(TABLES_ID, "children"), Input(TABLES_ID, "id"), State("url", "search"))
    @off_loop
    def quality_tables(_id: str, search: str | None) -> Any:
        """The data-quality page's table figures with duplicate keys, once the page is shown."""
        return tables_card(data, View.parse(search).lang)

    chrome_outputs = [
        Output("app-title", "children"),
        Output("app-subtitle", "children"),
        Output("footer", "children"),
        Output("f-reset", "children"),
        *(Output(f"nav-{name}", "children") for name in PAGES),
        *(Output(f"nav-{name}", "href") for name in PAGES),
        *(Output(f"nav-{name}", "className") for name in PAGES),
        *(Output(f"l-{k}", "children") for k in ("from", "to", "grain", *FILTER_DIMS)),
        *(Output(f"f-{d}", "placeholder") for d in FILTER_DIMS),
        *(Output(c, "labels") for c in _CONTROLS[:-1]),
    ]

    @app.callback(*chrome_outputs, Input("url", "pathname"), Input("url", "search"))
    @off_loop
    def chrome(pathname: str | None, search: str | None) -> tuple[Any, ...]:
        """Every label of the frame in the view's language, and the filter options in scope."""
        view = View.parse(search)
        lang = view.lang
        b = data.bounds()
        keep = View(view.start, view.end, view.grain, view.picked, view.lang).query()
        here = (pathname or "/").strip("/") or "overview"
        return (
            text("app.title", lang),
            text("app.subtitle", lang, day=period_label(b.last.isoformat(), lang)),
            text("footer.privacy", lang),
            text("filter.reset", lang),
            *(text(f"nav.{name}", lang) for name in PAGES),
            *(f"/{name}{keep}" for name in PAGES),
            *("nav-link active" if name == here else "nav-link" for name in PAGES),
            text("filter.from", lang),
            text("filter.to", lang),
            text("filter.grain", lang),
            *(dim_label(d, lang) for d in FILTER_DIMS),
            *(text("filter.all", lang) for _ in FILTER_DIMS),
            *(_dropdown_labels(lang) for _ in _CONTROLS[:-1]),
        )


def _dropdown_labels(lang: str) -> dict[str, str]:
    """The dropdowns' own texts (search box, select all …) in the view's language."""
    names = (
        "select_all", "deselect_all", "selected_count", "search", "clear_search",
        "clear_selection", "no_options_found",
    )  # fmt: skip
    # "{num_selected}" is the dropdown's own placeholder, kept for it to fill in
    return {n: text(f"dropdown.{n}", lang, num_selected="{num_selected}") for n in names}


def _options(data: Data, view: View) -> list[list[dict[str, str]]]:
    """The options of the month, grain and filter dropdowns for a view (labels in its language)."""
    lang = view.lang
    months = [{"label": period_label(m, lang), "value": m} for m in data.bounds().months]
    return [
        months,
        months,
        [{"label": text(f"grain.{g}", lang), "value": g} for g in _GRAINS],
        *(_dim_options(data, d, view, lang) for d in FILTER_DIMS),
    ]


def _dim_options(data: Data, dim: str, view: View, lang: str) -> list[dict[str, str]]:
    """A filter's options; cities within the picked region, stores within region and city."""
    f = view.filters()
    values = data.options(dim)
    if dim == "city" and "region" in f:
        values = data.options_within("city", (("region", f["region"]),))
    if dim == "store":
        stores = data.stores()
        for level in ("region", "city"):
            if level in f:
                stores = stores[stores[level].isin(f[level])]
        values = [str(s) for s in stores["store_id"]]
    names = data.names(dim)
    out = []
    for v in values:
        shown = names.get(v)
        label = f"{pick(shown, shown, lang)} ({v})" if shown else value_label(v, lang)
        out.append({"label": label, "value": v})
    # a picked value outside the options (a shared link) is still shown, not silently dropped
    for v in f.get(dim, ()):
        if v not in values:
            out.append({"label": value_label(v, lang), "value": v})
    return out


def _controls(view: View, default_start: str, default_end: str) -> tuple[Any, ...]:
    f = view.filters()
    single = [f.get(d, (None,))[0] for d in _SINGLE]
    multi = [list(f.get(d, ())) for d in _MULTI]
    values = dict(zip(_SINGLE, single, strict=True)) | dict(zip(_MULTI, multi, strict=True))
    return (
        view.start or default_start,
        view.end or default_end,
        view.grain,
        *(values[d] for d in FILTER_DIMS),
        view.lang,
    )


def _from_controls(values: dict[str, Any], current: View, trigger: Any) -> View:
    view = View(
        start=values["f-from"] or "",
        end=values["f-to"] or "",
        grain=values["f-grain"] or "month",
        lang=values["f-lang"] or current.lang,
    )
    for d in FILTER_DIMS:
        raw = values[f"f-{d}"]
        picked = [raw] if isinstance(raw, str) else list(raw or [])
        if picked:
            view = view.with_filter(d, picked)
    # a new region or city clears the finer levels that may lie outside it
    if trigger in ("f-region", "f-city"):
        dim = trigger[2:]
        view = view.with_filter(dim, list(view.filters().get(dim, ())))
    return View.parse(view.query())


def _without_defaults(view: View, default_start: str, default_end: str) -> View:
    if (view.start, view.end) == (default_start, default_end):
        return View("", "", view.grain, view.picked, view.lang)
    return view
