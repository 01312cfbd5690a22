"""``create_api``: the REST API (FastAPI) over a warehouse, under ``/api/v1``.

Every result comes from the metrics layer or the model tables through one
:class:`~crmlens.metrics.cache.ResultCache`, so a repeated question costs a dictionary lookup and a
new load or build invalidates everything. Errors are JSON (:class:`~crmlens.api.schemas.ErrorOut`):
422 for invalid parameters, 400 for a request the data cannot answer (a KPI that cannot be filtered
by a dimension), 404 for an unknown customer or KPI, 409 before ``crmlens build``, 503 when the
warehouse cannot be read. The OpenAPI spec is at ``/api/openapi.json``, the docs at ``/api/docs``.

Handlers are plain functions, so FastAPI runs them in its thread pool; the warehouse serialises
its reads (:class:`~crmlens.warehouse.engines.IbisWarehouse`), as one DuckDB connection must not be
used by two threads at once.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from crmlens import __version__
from crmlens.api import schemas as s
from crmlens.api.context import Context
from crmlens.api.convert import plain
from crmlens.api.routes_metrics import metric_routes
from crmlens.api.routes_models import model_routes
from crmlens.errors import ConfigError, CrmlensError, NotBuiltError, WarehouseError
from crmlens.metrics.cache import ResultCache
from crmlens.metrics.scope import ConstraintsInput, NotApplicableError, Scope
from crmlens.models import views
from crmlens.warehouse import Warehouse

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
#: Swagger UI's own files, from the swagger-ui-bundle wheel: the docs work offline
SWAGGER_STATIC = "/api/static/swagger"
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def create_api(
    wh: Warehouse,
    cache: ResultCache | None = None,
    *,
    row_limits: ConstraintsInput = (),
) -> FastAPI:
    """The API app over ``wh``. ``cache`` is shared with the dashboard when given (a new one
    otherwise); ``row_limits`` (dimension → allowed values) restrict every request's scope.

    Serve it with ``uvicorn`` (``crmlens serve``) or mount it in another ASGI app.
    """
    limits = Scope.parse("2021-01", row_limits=row_limits).row_limits  # normalised and checked
    # not `cache or …`: an empty cache has length 0, so it is falsy
    ctx = Context(wh, cache if cache is not None else ResultCache(wh), limits)
    app = FastAPI(
        title="crmlens API",
        version=__version__,
        description=(
            "CRM analytics: KPIs with 环比/同比 and targets, breakdowns, cohorts, customer models "
            "and the single customer view. Errors are JSON `{status, error, message, details}`."
        ),
        docs_url=None,  # served below from local files, not FastAPI's CDN default
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        responses={
            400: {"model": s.ErrorOut, "description": "The data cannot answer this request."},
            409: {"model": s.ErrorOut, "description": "The models are not built yet."},
            422: {"model": s.ErrorOut, "description": "Invalid parameters."},
            503: {"model": s.ErrorOut, "description": "The warehouse cannot be read."},
        },
    )
    app.state.crmlens = ctx
    _error_handlers(app)

    @app.get(f"{PREFIX}/health", response_model=s.Health, tags=["Service"], summary="Health")
    def health() -> dict[str, Any]:
        """Up, the engine, the loads so far and the latest model build (None before one)."""
        stamp = ctx.cache.stamp()  # also invalidates the cache when the data changed
        build = views.latest_build(wh)
        return {
            "status": "ok",
            "engine": wh.engine,
            "loads": stamp[0] if stamp else None,
            "last_load": plain(stamp[1]) if stamp else None,
            "latest_build": None if build is None else plain(build),
        }

    app.mount(SWAGGER_STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="crmlens API",
            swagger_js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_STATIC}/favicon-32x32.png",
        )

    app.include_router(metric_routes(ctx), prefix=PREFIX)
    app.include_router(model_routes(ctx), prefix=PREFIX)
    return app


def _error(status: int, error: str, message: str, details: list[Any] | None = None) -> JSONResponse:
    body = {"status": status, "error": error, "message": message, "details": details or []}
    return JSONResponse(body, status_code=status)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details)
        return _error(422, "invalid_parameter", message or "invalid parameters", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(CrmlensError)
    async def crmlens_error(_: Request, exc: CrmlensError) -> JSONResponse:
        if isinstance(exc, NotBuiltError):
            return _error(409, "not_built", str(exc))
        if isinstance(exc, NotApplicableError):
            return _error(400, "not_applicable", str(exc))
        if isinstance(exc, ConfigError):
            return _error(400, "bad_request", str(exc))
        if isinstance(exc, WarehouseError):
            log.warning("warehouse error: %s", exc)
            return _error(503, "warehouse_unavailable", str(exc))
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the API", exc_info=exc)
        return _error(500, "internal_error", "unexpected error; see the server log")


__all__ = ["PREFIX", "create_api"]
