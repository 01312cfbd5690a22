"""``crmlens serve``: the dashboard and the REST API in one ASGI app under uvicorn.

The CLI is the only layer that knows both: it builds the FastAPI app (``crmlens.api``), mounts the
Dash pages on the same server (``crmlens.web``) and shares one warehouse connection and one result
cache between them, so a page and the API answer the same scope from the same cached result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crmlens.cli.options import WarehouseOption

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def create_app(warehouse: Path | None = None) -> Any:
    """The combined app: ``/api/v1`` (REST), ``/api/docs`` (OpenAPI) and the Dash pages at ``/``.

    The warehouse is opened read-only: serving never writes, and several servers may share a file.
    """
    from crmlens.api import create_api
    from crmlens.metrics.cache import ResultCache
    from crmlens.warehouse import Warehouse
    from crmlens.web import create_dash

    wh = Warehouse(warehouse, read_only=True)
    cache = ResultCache(wh)
    app = create_api(wh, cache)
    # every page's default view is computed at startup, so first visits come from the cache
    create_dash(app, wh, cache, warm_up=True)
    return app


def run_server(warehouse: Path | None, host: str, port: int, console: Any) -> None:
    """Serve until interrupted (Ctrl-C)."""
    import uvicorn

    app = create_app(warehouse)
    console.print(
        f"Dashboard: [bold]http://{host}:{port}/[/]   API: http://{host}:{port}/api/docs   "
        "(Ctrl-C to stop)"
    )
    # ws="none": the dashboard uses no WebSockets (its callbacks are plain HTTP requests), and
    # uvicorn would otherwise warn at every start that no WebSocket library is installed
    uvicorn.run(app, host=host, port=port, log_level="warning", ws="none")


def serve(
    warehouse: WarehouseOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = DEFAULT_PORT,
) -> None:
    """Serve the dashboard and the REST API (http://127.0.0.1:8050 by default)."""
    from crmlens.cli.progress import make_console

    run_server(warehouse, host, port, make_console())
