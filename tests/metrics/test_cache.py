"""ResultCache: one computation per key, dropped when a load or a build changes the data stamp,
throttled stamp checks, LRU size, and safe use from many threads on one warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.metrics import Scope, value
from crmlens.metrics.cache import ResultCache, data_stamp
from crmlens.models.build import build
from crmlens.warehouse import Warehouse

SCOPE = Scope(date(2021, 1, 1), date(2021, 12, 31))


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "export"
    generate(DemoConfig(customers=500, seed=7, out_dir=out))
    return out


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, export: Path) -> Iterator[Warehouse]:
    """A loaded warehouse the tests only read."""
    with Warehouse(tmp_path_factory.mktemp("cache") / "w.duckdb") as opened:
        load_demo_export(opened, export)
        yield opened


@pytest.fixture
def fresh(tmp_path: Path, export: Path) -> Iterator[Warehouse]:
    """A loaded warehouse of the test's own, to load into and build."""
    with Warehouse(tmp_path / "w.duckdb") as opened:
        load_demo_export(opened, export)
        yield opened


class Counter:
    """A computation that counts its calls."""

    def __init__(self, wh: Warehouse, metric: str = "orders", scope: Scope = SCOPE) -> None:
        self.wh, self.metric, self.scope, self.calls = wh, metric, scope, 0

    def __call__(self) -> float | None:
        self.calls += 1
        return value(self.wh, self.metric, self.scope)


def test_one_computation_per_key(wh: Warehouse) -> None:
    cache = ResultCache(wh)
    orders = Counter(wh)
    first = cache.get(("value", "orders", SCOPE), orders)
    assert cache.get(("value", "orders", SCOPE), orders) == first
    assert orders.calls == 1 and cache.hits == 1 and cache.misses == 1
    east = Counter(wh, scope=SCOPE.narrow(region="华东"))
    assert cache.get(("value", "orders", east.scope), east) <= first
    assert east.calls == 1 and len(cache) == 2


def test_a_new_load_or_build_invalidates(fresh: Warehouse, export: Path) -> None:
    wh = fresh
    cache = ResultCache(wh, check_every=0)
    orders = Counter(wh)
    cache.get(("orders",), orders)
    before = cache.stamp()
    load_demo_export(wh, export)  # a new load: new load_log rows
    assert cache.stamp() != before
    cache.get(("orders",), orders)
    assert orders.calls == 2
    cache.get(("orders",), orders)
    assert orders.calls == 2
    loaded = data_stamp(wh)
    build(wh)  # a new model_runs row
    assert data_stamp(wh)[2:] != loaded[2:]
    cache.get(("orders",), orders)
    assert orders.calls == 3

    # stamp checks are throttled: within the hour a new load is not seen until clear()
    slow = ResultCache(wh, check_every=3600)
    orders = Counter(wh)
    slow.get(("orders",), orders)
    load_demo_export(wh, export)
    slow.get(("orders",), orders)
    assert orders.calls == 1
    slow.clear()
    slow.get(("orders",), orders)
    assert orders.calls == 2


def test_least_recently_used_results_go_first_and_errors_are_not_kept(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "empty.duckdb")
    cache = ResultCache(wh, maxsize=2)
    cache.get(("a",), lambda: 1)
    cache.get(("b",), lambda: 2)
    cache.get(("a",), lambda: 0)  # a is now the most recent
    cache.get(("c",), lambda: 3)  # drops b
    assert cache.get(("a",), lambda: -1) == 1
    assert cache.get(("b",), lambda: 20) == 20

    def fail() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get(("d",), fail)
    assert cache.get(("d",), lambda: 4) == 4
    with pytest.raises(ValueError, match="maxsize"):
        ResultCache(wh, maxsize=0)
    assert cache.stamp() == (0, None, 0, None, None)  # nothing loaded or built yet
    wh.close()


def test_many_threads_share_one_warehouse(wh: Warehouse) -> None:
    """Queries from a thread pool (as the API serves them) on one DuckDB connection give the same
    numbers as one after another."""
    regions = ["华东", "华南", "华北", "西南", "东北", "华中"]
    metrics = ["orders", "revenue", "customers", "aov"]
    jobs = [(m, SCOPE.narrow(region=r)) for m in metrics for r in regions]
    serial = [value(wh, m, s) for m, s in jobs]
    cache = ResultCache(wh, check_every=0)
    # without the warehouse's read lock DuckDB hangs here: bounded waits, no waiting on shutdown
    pool = ThreadPoolExecutor(max_workers=8)
    try:
        futures = [pool.submit(cache.get, ("v", m, s), Counter(wh, m, s)) for m, s in jobs * 2]
        results = [f.result(timeout=120) for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert results == serial * 2
