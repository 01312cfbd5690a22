"""The dashboard's pages, one module each, rendered for a :class:`PageContext`.

A page is a function ``render(ctx) -> list[component]``; it reads only :class:`~crmlens.web.data.Data`
(the cached metrics layer and model views) and builds components with
:mod:`crmlens.web.components`. Graphs whose ``id`` is ``{"type": "xf", "dim": …}`` are
cross-filter sources: a click on one of their points filters the view by the point's
``customdata``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from dash import html

from crmlens.metrics import Scope
from crmlens.web.data import Data
from crmlens.web.i18n import text
from crmlens.web.state import View


@dataclass(frozen=True)
class PageContext:
    """What a page renders: the data, the view from the URL, its scope and language."""

    data: Data
    view: View
    scope: Scope
    lang: str
    search: str

    def t(self, key: str, **fields: object) -> str:
        """Catalogue text in the view's language."""
        return text(key, self.lang, **fields)

    def param(self, name: str) -> str | None:
        """A page-specific URL parameter (e.g. the customer ID of the 360 page)."""
        return dict(parse_qsl(self.search.lstrip("?"))).get(name)


Renderer = Callable[[PageContext], list[Any]]


def _pages() -> dict[str, Renderer]:
    from crmlens.web.pages import (
        churn,
        customer,
        members,
        overview,
        quality,
        retention,
        segments,
        value,
    )

    return {
        "overview": overview.render,
        "members": members.render,
        "segments": segments.render,
        "value": value.render,
        "retention": retention.render,
        "churn": churn.render,
        "customer": customer.render,
        "quality": quality.render,
    }


#: Page name (its path) → renderer, in navigation order.
PAGES: dict[str, Renderer] = _pages()


def render_page(pathname: str, ctx: PageContext) -> list[Any]:
    """The page at ``pathname`` (``/`` is the overview); a short note for an unknown path."""
    name = pathname.strip("/").split("/")[0] or "overview"
    renderer = PAGES.get(name)
    if renderer is None:
        return [html.Div(ctx.t("state.not_found"), className="empty-state")]
    return [
        html.H2(ctx.t(f"nav.{name}"), className="page-title"),
        html.Div(renderer(ctx), className=f"grid page-{name}", id=f"page-{name}"),
    ]
