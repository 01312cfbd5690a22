"""Benchmark the dashboard's server time per page and per filter change.

    python bench/bench_web.py                          # the 1M-customer demo company
    python bench/bench_web.py --customers 200000       # quicker
    python bench/bench_web.py --customers 20000 --rounds 3

Uses the warehouse bench_metrics.py loads (bench/.cache/c<customers>-s<seed>.duckdb, loaded the
same way when absent), copied once to c<customers>-s<seed>-web.duckdb and the models built into the
copy (``crmlens build``; the shared file is left alone). The dashboard then runs as under
``crmlens serve``: ``create_dash`` on a FastAPI app under uvicorn on 127.0.0.1, in this process.

What a browser does on an interaction is one request to the page callback
(``POST /_dash-update-component`` for ``page.children``) with the path and the URL's query string;
it is timed from send to the last byte of the response, so it includes Dash, the result cache, the
metrics layer and the model views, the warehouse and JSON. Timed, for every page:

- ``first``: the page's default view with the cache empty (the first visit after a load);
- ``warm``: the same view again (a revisit, a language switch: answered from the cache);
- ``filter``: ``--rounds`` filter changes to views not seen before — a city, a tier, a
  customer type, a grain, a store (the bottom of the drill-down), a date range, in turn — each
  computed from the warehouse (cache cold for that view, as for a user exploring);
- ``revisit``: then more views not seen before, with other values of the dimensions filtered
  in the first rounds (another city, tier, customer type or store), also computed from the
  warehouse: their queries differ from earlier ones only in values, so their SQL comes from
  templates (:mod:`crmlens.warehouse.templates`), made at a shape's second sight;
- ``steady``: then yet other values of those dimensions, each query's shape met at least twice
  before: what a user flipping through cities or tiers gets once the templates are made.

Reported per page and over all pages: p50 and p95 of each kind (target: p95 < 300 ms per
interaction), and where a filter change's time goes on average: the warehouse's ``execute``
less compilation (``db``: DuckDB, and turning its result into pandas), compiling Ibis
expressions to SQL (``compile``: in full, or from a template) and everything else (``other``:
building the expressions, pandas, Dash's layout, JSON and HTTP). The data-quality page leaves its
duplicate-key counts to a second request the browser sends once the page is shown; that request
is timed too (cache cold), as ``deferred_ms``. Every response is checked to be a rendered page without an error banner.
Writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import fastapi
import uvicorn

from bench_metrics import warehouse_file
from crmlens.metrics.cache import ResultCache
from crmlens.metrics.derived_tables import derived_tables
from crmlens.metrics.facts import usable_derived
from crmlens.warehouse import Warehouse
from crmlens.warehouse.templates import SqlTemplates
from crmlens.web import create_dash
from crmlens.web.pages import PAGES
from crmlens.web.pages.quality import TABLES_ID

HERE = Path(__file__).resolve().parent
TARGET_P95_MS = 300.0
#: The filter changes tried in turn (query strings); a round takes the next one.
FILTERS: tuple[dict[str, str], ...] = (
    {"city": "烟台"},
    {"tier": "白金"},
    {"customer_type": "企业"},
    {"grain": "quarter"},
    {"city": "青岛"},
    {"store": "S01"},
    {"from": "2021-07", "to": "2021-12"},
    {"region": "华东", "tier": "黄金"},
    {"city": "济南", "customer_type": "个人"},
    {"grain": "week", "from": "2021-10", "to": "2021-12"},
    {"tier": "普通"},
)
#: Filter changes timed after the rounds (``revisit``): other values of the dimensions of the
#: first rounds, as a manager flips from one city, tier or store to the next.
REVISITS: tuple[dict[str, str], ...] = (
    {"city": "潍坊"},
    {"tier": "黄金"},
    {"customer_type": "个人"},
    {"city": "威海"},
    {"store": "S02"},
)
#: Then yet other values of the same dimensions (``steady``): by now each was filtered on at
#: least twice, so every query of these views has met its shape before.
STEADY: tuple[dict[str, str], ...] = (
    {"city": "淄博"},
    {"tier": "白银"},
    {"city": "济南"},
    {"tier": "普通"},
    {"store": "S03"},
)


def web_copy(cache: Path, customers: int, seed: int) -> tuple[Path, float | None]:
    """The loaded warehouse copied for this bench, migrated and with the models built."""
    source, _ = warehouse_file(cache, customers, seed)
    path = cache / f"c{customers}-s{seed}-web.duckdb"
    if not path.exists() or path.stat().st_mtime < source.stat().st_mtime:
        print(f"copying {source.name} to {path.name} …", flush=True)
        shutil.copyfile(source, path)
    built = None
    with Warehouse(path) as wh:  # read-write: migrates to the current schema
        # a build also writes the derived tables the dashboard reads (a warehouse built by an
        # older crmlens has none)
        if wh.row_count("model_customer_scores") == 0 or not wh.derived_names():
            from crmlens.models.build import build

            print(f"building the models at {customers:,} customers …", flush=True)
            start = time.perf_counter()
            build(wh)
            built = time.perf_counter() - start
            wh.checkpoint()
        elif set(derived_tables(wh)) - set(usable_derived(wh)):
            # built by an older crmlens, which wrote fewer derived tables or other columns: write
            # them all again
            print("writing the derived tables …", flush=True)
            wh.write_derived(derived_tables(wh))
            wh.checkpoint()
    return path, built


class Split:
    """Seconds spent in ``Warehouse.execute``/``to_arrow``/``compile_expr``/``run_compiled``
    (compilation included) and in compiling to SQL (:class:`SqlTemplates`, through which every
    warehouse compiles: in full or from a template) since :meth:`reset`, by wrapping them for
    this process (requests run one at a time, so what one request spends is what accrues while
    it runs). Construct it once: each instance wraps them again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds = {"query": 0.0, "compile": 0.0}
        for cls, name, key in (
            (Warehouse, "execute", "query"),
            (Warehouse, "to_arrow", "query"),
            # a query plan's (crmlens.warehouse.plans): compiled in one call, run in another
            (Warehouse, "compile_expr", "query"),
            (Warehouse, "run_compiled", "query"),
            (SqlTemplates, "compile", "compile"),
        ):
            setattr(cls, name, self._timed(getattr(cls, name), key))

    def _timed(self, fn: Any, key: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.seconds[key] += time.perf_counter() - start

        return timed

    def reset(self) -> None:
        with self.lock:
            self.seconds = dict.fromkeys(self.seconds, 0.0)

    def of(self, total_ms: float) -> dict[str, float]:
        """The last request's ``db``, ``compile`` and ``other`` milliseconds."""
        with self.lock:
            query, compile_ = self.seconds["query"] * 1000, self.seconds["compile"] * 1000
        return {"db": query - compile_, "compile": compile_, "other": total_ms - query}


class Server:
    """The dashboard under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, wh: Warehouse) -> None:
        app = fastapi.FastAPI()
        self.cache = ResultCache(wh)
        create_dash(app, wh, self.cache)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def page(self, name: str, query: dict[str, str]) -> float:
        """One page-callback request as the browser sends it; its time in milliseconds."""
        search = "?" + urlencode(query) if query else ""
        body = {
            "output": "page.children",
            "outputs": {"id": "page", "property": "children"},
            "inputs": [
                {"id": "url", "property": "pathname", "value": f"/{name}"},
                {"id": "url", "property": "search", "value": search},
            ],
            "changedPropIds": ["url.search"],
            "state": [],
        }
        ms, text = self._post(body)
        if f"page-{name}" not in text or "error-banner" in text:
            raise AssertionError(f"/{name}{search}: not a clean page ({text[:200]})")
        return ms

    def quality_tables(self) -> float:
        """The data-quality page's second request (its table figures with duplicate keys, asked
        by the browser once the page is shown); its time in milliseconds."""
        body = {
            "output": f"{TABLES_ID}.children",
            "outputs": {"id": TABLES_ID, "property": "children"},
            "inputs": [{"id": TABLES_ID, "property": "id", "value": TABLES_ID}],
            "changedPropIds": [],
            "state": [{"id": "url", "property": "search", "value": ""}],
        }
        ms, text = self._post(body)
        if "…" in text or "\\u2026" in text or "error-banner" in text:
            raise AssertionError(f"quality tables: not the full figures ({text[:200]})")
        return ms

    def _post(self, body: dict[str, Any]) -> tuple[float, str]:
        """One callback request; its time in milliseconds and the response."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_dash-update-component",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            payload = response.read()
        return (time.perf_counter() - start) * 1000, payload.decode()


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation; the value itself for one sample."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summary(values: list[float]) -> dict[str, float | int]:
    return {"n": len(values), "p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=6, help="filter changes per page (≤ 11)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, len(FILTERS)))
    path, built = web_copy(args.cache, args.customers, args.seed)
    times: dict[str, dict[str, list[float]]] = {}
    splits: dict[str, dict[str, float]] = {}
    deferred_ms: dict[str, float] = {}
    split = Split()
    with Warehouse(path, read_only=True) as wh, Server(wh) as srv:
        for name in PAGES:
            query = {"id": "M0000010", "q": "M00000"} if name == "customer" else {}
            srv.cache.clear()
            first = srv.page(name, query)
            warm = [srv.page(name, query) for _ in range(3)]
            changes, parts = [], []
            for i in range(rounds):
                split.reset()
                changes.append(srv.page(name, {**query, **FILTERS[i]}))
                parts.append(split.of(changes[-1]))
            revisits = [srv.page(name, {**query, **f}) for f in REVISITS[: max(1, rounds - 1)]]
            steady = [srv.page(name, {**query, **f}) for f in STEADY[: max(1, rounds - 1)]]
            times[name] = {
                "first": [first],
                "warm": warm,
                "filter": changes,
                "revisit": revisits,
                "steady": steady,
            }
            splits[name] = {k: statistics.fmean(p[k] for p in parts) for k in parts[0]}
            if name == "quality":
                # the duplicate-key counts the page leaves to a second request, cache cold
                deferred = srv.quality_tables()
                print(f"quality    duplicate keys (second request) {deferred:8.0f} ms", flush=True)
                deferred_ms["quality_duplicate_keys"] = deferred
            print(
                f"{name:10s} first {first:8.0f} ms   warm p50 {pct(warm, 0.5):6.0f} ms   "
                f"filter p50 {pct(changes, 0.5):7.0f} ms  p95 {pct(changes, 0.95):7.0f} ms   "
                f"revisit p50 {pct(revisits, 0.5):6.0f} ms   steady p50 {pct(steady, 0.5):6.0f} ms   "
                + "mean "
                + "  ".join(f"{k} {v:4.0f}" for k, v in splits[name].items()),
                flush=True,
            )
    overall = {
        kind: summary([t for page in times.values() for t in page[kind]])
        for kind in ("first", "warm", "filter", "revisit", "steady")
    }
    result: dict[str, Any] = {
        "customers": args.customers,
        "seed": args.seed,
        "rounds": rounds,
        "build_seconds": built,
        "target_p95_ms": TARGET_P95_MS,
        "pages": {name: {k: summary(v) for k, v in kinds.items()} for name, kinds in times.items()},
        "filter_split_mean_ms": splits,
        "overall": overall,
        "deferred_ms": deferred_ms,
        "meets_target": {k: overall[k]["p95_ms"] < TARGET_P95_MS for k in overall},
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    out = HERE / "results" / "web.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    for kind, s in overall.items():
        mark = "ok" if s["p95_ms"] < TARGET_P95_MS else "over target"
        print(
            f"all pages {kind:7s}: p50 {s['p50_ms']:7.0f} ms  p95 {s['p95_ms']:7.0f} ms  ({mark})"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
