"""The REST API: ``create_api(wh, cache)`` returns a FastAPI app serving ``/api/v1``.

>>> from crmlens.api import create_api  # doctest: +SKIP
"""

from crmlens.api.app import PREFIX, create_api

__all__ = ["PREFIX", "create_api"]
