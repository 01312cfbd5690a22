"""The dashboard (P1, P2): Dash pages on the FastAPI server that also serves the REST API.

``create_dash(server, wh, cache)`` adds the dashboard to a FastAPI app; ``crmlens serve`` composes
it with the API on one server at ``http://127.0.0.1:8050``. Pages read only the metrics layer and
the model views, through the shared :class:`~crmlens.metrics.cache.ResultCache`.
"""

from crmlens.web.app import create_dash, warm

#: The port ``crmlens serve`` listens on by default.
DEFAULT_PORT = 8050

__all__ = ["DEFAULT_PORT", "create_dash", "warm"]
