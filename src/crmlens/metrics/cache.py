"""A result cache for the dashboard and the API, invalidated when the warehouse's data changes.

Pages and endpoints ask the same questions again and again (the same KPI overview for the same
scope); the answers only change when new data is loaded or the models are rebuilt. So results are
kept per key — the caller puts the function's name, the :class:`~crmlens.metrics.Scope` (hashable)
and the other arguments in it — and the whole cache is dropped when the warehouse's *data stamp*
changes: the number and latest ``finished_at`` of ``load_log`` rows, and the latest ``model_runs``
row. Reading the stamp is one small aggregate query, run at most once per ``check_every`` seconds.

>>> import tempfile, pathlib
>>> from crmlens.warehouse import Warehouse
>>> wh = Warehouse(pathlib.Path(tempfile.mkdtemp()) / "w.duckdb")
>>> cache = ResultCache(wh)
>>> calls = []
>>> cache.get(("answer",), lambda: calls.append(1) or 42), cache.get(("answer",), lambda: 0)
(42, 42)
>>> len(calls)
1
>>> wh.close()
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from ibis.expr.types import Expr

from crmlens.errors import WarehouseError
from crmlens.metrics.facts import table
from crmlens.warehouse.engines import ReadableWarehouse

T = TypeVar("T")

#: What identifies a state of the warehouse's data (see :meth:`ResultCache.stamp`).
Stamp = tuple[Any, ...]


def data_stamp(wh: ReadableWarehouse, expr: Expr | None = None) -> Stamp:
    """``(loads, last load finished, builds, last build id, last build finished)``: changes with
    every load (a ``load_log`` row per table loaded) and every ``crmlens build`` (a ``model_runs``
    row, failed builds included, which change nothing but are cheap to miss the cache for).

    ``expr`` is :func:`stamp_query`'s result, when the caller keeps it (building it costs more than
    running it). A warehouse without the bookkeeping tables (an Ibis backend the tables were copied
    to) has the stamp ``()``, which never changes: crmlens does not load into it while it is open.
    """
    if expr is None:
        expr = stamp_query(wh)
    if expr is None:
        return ()
    row = wh.execute(expr).iloc[0]
    return tuple(None if _missing(v) else v for v in row.tolist())


def stamp_query(wh: ReadableWarehouse) -> Expr | None:
    """The one-row query :func:`data_stamp` runs; None without the bookkeeping tables."""
    try:
        loads = table(wh, "load_log")  # type: ignore[arg-type]
        runs = table(wh, "model_runs")  # type: ignore[arg-type]
    except WarehouseError:
        return None
    a = loads.aggregate(loads=loads.count(), loaded=loads.finished_at.max())
    b = runs.aggregate(builds=runs.count(), build=runs.build_id.max(), built=runs.finished_at.max())
    return a.cross_join(b)


def _missing(value: Any) -> bool:
    return value is None or value != value  # NaN / NaT are not equal to themselves


class ResultCache:
    """Results per key, at most ``maxsize`` (least recently used dropped first), cleared whenever
    the warehouse's :func:`data_stamp` changes (checked at most every ``check_every`` seconds).

    Thread-safe: the dictionary and the stamp are guarded by a lock; ``compute`` runs outside it,
    so two threads asking the same new key at once may both compute it (the answer is the same).
    Exceptions from ``compute`` are not cached.
    """

    def __init__(
        self, wh: ReadableWarehouse, *, maxsize: int = 1024, check_every: float = 1.0
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.wh = wh
        self.maxsize = maxsize
        self.check_every = check_every
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._stamp: Stamp | None = None
        self._checked = -float("inf")
        self.hits = 0
        self.misses = 0
        self._query = stamp_query(wh)

    def stamp(self) -> Stamp:
        """The warehouse's current data stamp (queried now), clearing the cache if it changed."""
        current = data_stamp(self.wh, self._query) if self._query is not None else ()
        with self._lock:
            self._checked = time.monotonic()
            if current != self._stamp:
                self._items.clear()
                self._stamp = current
        return current

    def _check(self) -> None:
        with self._lock:
            due = time.monotonic() - self._checked >= self.check_every
        if due:
            self.stamp()

    def get(self, key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
        """The cached result for ``key``, else ``compute()`` stored under it and returned."""
        self._check()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            stamp = self._stamp
        result = compute()
        with self._lock:
            # a result computed while the data changed under it belongs to the old stamp
            if self._stamp == stamp:
                self._items[key] = result
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return result

    def clear(self, *, restamp: bool = True) -> None:
        """Drop every result; with ``restamp`` the next :meth:`get` also re-reads the stamp
        (otherwise it is read on its usual schedule, at most every ``check_every`` seconds)."""
        with self._lock:
            self._items.clear()
            if restamp:
                self._checked = -float("inf")

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


__all__ = ["ResultCache", "Stamp", "data_stamp", "stamp_query"]
