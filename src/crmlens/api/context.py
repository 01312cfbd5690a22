"""What every endpoint shares: the warehouse, the result cache and the server's row limits."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from crmlens.api.params import ScopeParams
from crmlens.metrics.cache import ResultCache
from crmlens.metrics.scope import Constraints, Scope
from crmlens.metrics.summary import history_scope
from crmlens.warehouse import Warehouse

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """The warehouse, the cache every result goes through, and row limits applied to every scope
    (row-level security: what this server's users may see at all)."""

    wh: Warehouse
    cache: ResultCache
    row_limits: Constraints = ()

    def cached(self, key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
        """``compute()``'s result, cached under ``key`` until the data changes."""
        return self.cache.get(key, compute)

    def scope(self, params: ScopeParams) -> Scope:
        """The request's scope; missing dates are the first and last day with an order."""
        default = None
        if params.start is None or params.end is None:
            default = self.cached(("history_scope",), lambda: history_scope(self.wh))
        return params.scope(default, self.row_limits)


def scope_out(scope: Scope) -> dict[str, Any]:
    """The scope as the API shows it (:class:`crmlens.api.schemas.ScopeOut`)."""
    return {
        "start": scope.start,
        "end": scope.end,
        "grain": scope.grain,
        "filters": {k: sorted(v) for k, v in scope.filters},
        "description": scope.describe(),
    }
