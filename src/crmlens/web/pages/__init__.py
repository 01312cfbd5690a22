"""The dashboard's pages, one module each, rendered for a :class:`PageContext`.

A page is a function ``render(ctx) -> list[component]``; it reads only :class:`~crmlens.web.data.Data`
(the cached metrics layer and model views) and builds components with
:mod:`crmlens.web.components`. Graphs whose ``id`` is ``{"type": "xf", "dim": …}`` are
cross-filter sources: a click on one of their points filters the view by the point's
``customdata``.

Cards built from the customer models (segments, CLV, churn, lifecycle stages, personas, clusters)
are the latest build's snapshot: they follow the filter bar's customer filters but not its date
range, and say so under their title (:meth:`PageContext.model_note`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from dash import html

from crmlens.errors import CrmlensError
from crmlens.metrics import Scope
from crmlens.models import views as model_views
from crmlens.web.components import model_note
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

    def model_note(self) -> html.P | None:
        """The "model results as of …" note for a card built from the customer models."""
        return model_note(self.lang, model_as_of(self.data))


def model_as_of(data: Data) -> date | None:
    """The day the model tables are as of: that of the latest *successful* build, which a failed
    build leaves in place (so not the latest ``model_runs`` row, which may be a failed one); None
    before any build.

    Read from the lifecycle scheme's rows of ``model_segments``: seven small rows every build
    writes, all with the build's ``as_of``.
    """
    try:
        frame = data.get(model_views.segments, "lifecycle")
    except CrmlensError:  # not built: the model cards say so themselves
        return None
    return frame["as_of"].iloc[0] if len(frame) else None


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
