"""Benchmark the REST API against the bare metrics / model-view calls it wraps.

    python bench/bench_api.py                           # the 1M-customer demo company
    python bench/bench_api.py --customers 200000        # quicker
    python bench/bench_api.py --customers 20000 --build # also the model endpoints (builds once)

Uses the warehouse bench_metrics.py loads (bench/.cache/c<customers>-s<seed>.duckdb, loaded here
the same way when absent), copied once to c<customers>-s<seed>-api.duckdb so that migrating it to
the current schema, or building the models into it (``--build``), leaves the shared file alone.

For each case the bare call (``crmlens.metrics.overview`` …) and the same question asked over HTTP
(``GET /api/v1/…`` through an in-process ASGI client: routing, validation, the result cache, JSON)
take turns ``--repeat`` times; before every API request the result cache is cleared, so the API
always computes (cache cold); the data-stamp check, which runs at most once a second whatever the
traffic, is timed on its own. Reported: p50 and p95 of each, and the ratio of the p50s (target:
API ≤ 1.2× the bare call). The warm time (the same request answered from the cache) is shown too.
The API's numbers are checked equal to the bare call's before any timing counts. Writes
bench/results/api.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from schemathesis.python.asgi import get_client

from bench_metrics import BREAKDOWN_METRICS, DIMS, warehouse_file
from crmlens.api import create_api
from crmlens.api.convert import rows
from crmlens.metrics import SEED_OVERVIEW, Scope, breakdown, cohort_table, overview
from crmlens.metrics.cache import ResultCache
from crmlens.models import views
from crmlens.warehouse import Warehouse

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.2


def api_copy(cache: Path, customers: int, seed: int, build_models: bool) -> Path:
    """The loaded warehouse copied for this bench, migrated, and built when asked."""
    source, _ = warehouse_file(cache, customers, seed)
    path = cache / f"c{customers}-s{seed}-api.duckdb"
    if not path.exists() or path.stat().st_mtime < source.stat().st_mtime:
        print(f"copying {source.name} to {path.name} …", flush=True)
        shutil.copyfile(source, path)
    with Warehouse(path) as wh:  # read-write: migrates to the current schema
        if build_models and wh.row_count("model_customer_scores") == 0:
            from crmlens.models.build import build

            print(f"building the models at {customers:,} customers …", flush=True)
            start = time.perf_counter()
            build(wh)
            print(f"built in {time.perf_counter() - start:.0f} s", flush=True)
        wh.checkpoint()
    return path


def cases(wh: Warehouse) -> dict[str, tuple[str, Callable[[], Any], Callable[[Any], Any]]]:
    """Case → (API URL, the bare call, the part of the API's JSON to compare with it)."""
    month = Scope.parse("2021-11")
    year = Scope.parse("2021")
    cohort_scope = Scope.parse("2021-01", "2021-12")
    east = year.narrow(region="华东")
    out: dict[str, tuple[str, Callable[[], Any], Callable[[Any], Any]]] = {
        "overview": (
            "/api/v1/overview?start=2021-11-01&end=2021-11-30",
            lambda: rows(overview(wh, SEED_OVERVIEW, month)),
            lambda body: body["rows"],
        ),
        "breakdown": (
            "/api/v1/breakdown?start=2021-01-01&end=2021-12-31"
            + "".join(f"&metric={m}" for m in BREAKDOWN_METRICS)
            + "".join(f"&by={d}" for d in DIMS),
            lambda: rows(breakdown(wh, BREAKDOWN_METRICS, year, DIMS)),
            lambda body: body["rows"],
        ),
        "cohorts": (
            "/api/v1/cohorts?start=2021-01-01&end=2021-12-31&periods=12",
            lambda: rows(cohort_table(wh, cohort_scope, periods=12)),
            lambda body: body["cells"],
        ),
    }
    if wh.row_count("model_customer_scores"):
        out |= {
            "segments": (
                "/api/v1/segments?scheme=cn8&start=2021-01-01&end=2021-12-31&filter=region:华东",
                lambda: rows(views.segment_counts(wh, east, "cn8")),
                lambda body: body["rows"],
            ),
            "churn_risk": (
                "/api/v1/churn/risk?limit=50&start=2021-01-01&end=2021-12-31&filter=region:华东",
                lambda: {
                    "rows": rows(views.churn_risk_list(wh, east, limit=50)),
                    "total": views.churn_risk_count(wh, east),
                },
                lambda body: {"rows": body["rows"], "total": body["total"]},
            ),
        }
    return out


def same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal after a trip through JSON (dates as ISO text), floats to ``rel`` relative: DuckDB
    sums in parallel, so the last digits of a total may differ from one run to the next."""

    def norm(x: Any) -> Any:
        return json.loads(json.dumps(x, default=lambda v: v.isoformat(), ensure_ascii=False))

    def close(x: Any, y: Any) -> bool:
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(close(p, q) for p, q in zip(x, y, strict=True))
        if isinstance(x, float) and isinstance(y, float | int):
            return math.isclose(x, y, rel_tol=rel, abs_tol=1e-12)
        return x == y

    return close(norm(a), norm(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of each side")
    parser.add_argument("--build", action="store_true", help="build the models (slow at 1M)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "api.json")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    path = api_copy(args.cache, args.customers, args.seed, args.build)
    wh = Warehouse(path, read_only=True)
    cache = ResultCache(wh)
    results: dict[str, Any] = {}
    with get_client(create_api(wh, cache)) as client:
        for name, (url, bare, pick) in cases(wh).items():

            def api(url: str = url) -> Any:
                # cache cold: the API computes every time; the data stamp is checked on its own
                # schedule (at most once a second, timed separately below), not per request
                cache.clear(restamp=False)
                response = client.get(url)
                response.raise_for_status()
                return response.json()

            expected, body = bare(), api()  # untimed warm-up, and the numbers must agree
            if not same(pick(body), expected):
                raise SystemExit(f"{name}: the API's numbers differ from the bare call's")
            times: dict[str, list[float]] = {"bare": [], "api": []}
            for _ in range(args.repeat):  # taking turns: load bursts hit both sides alike
                for side, fn in (("bare", bare), ("api", api)):
                    start = time.perf_counter()
                    fn()
                    times[side].append(time.perf_counter() - start)
            start = time.perf_counter()
            client.get(url).raise_for_status()  # filled by the last api() run: a cache hit
            warm = time.perf_counter() - start
            stats = {side: _stats(t) for side, t in times.items()}
            ratio = stats["api"]["p50"] / stats["bare"]["p50"]
            results[name] = {"url": url, **stats, "warm_seconds": warm, "ratio_p50": ratio}
            print(
                f"  {name:<11} bare p50 {stats['bare']['p50']:.4f} s  api p50 "
                f"{stats['api']['p50']:.4f} s  ratio {ratio:.2f}×  warm {warm * 1000:.1f} ms",
                flush=True,
            )
    stamp = _stats(_timed(cache.stamp, args.repeat))
    print(f"  data stamp check p50 {stamp['p50'] * 1000:.1f} ms (at most once a second)")
    wh.close()

    print(
        f"\n{'case':<12}{'bare p50':>10}{'bare p95':>10}{'API p50':>10}{'API p95':>10}"
        f"{'ratio':>8}{'warm ms':>9}"
    )
    for name, r in results.items():
        verdict = "ok" if r["ratio_p50"] <= TARGET_RATIO else f"over {TARGET_RATIO}×"
        print(
            f"{name:<12}{r['bare']['p50']:>10.4f}{r['bare']['p95']:>10.4f}{r['api']['p50']:>10.4f}"
            f"{r['api']['p95']:>10.4f}{r['ratio_p50']:>7.2f}×{r['warm_seconds'] * 1000:>9.1f}"
            f"  {verdict}"
        )
    out = {
        "customers": args.customers,
        "seed": args.seed,
        "repeat": args.repeat,
        "machine": platform.platform(),
        "duckdb": duckdb.__version__,
        "target_ratio": TARGET_RATIO,
        "cases": results,
        "stamp_check": stamp,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95, "min": ordered[0]}


if __name__ == "__main__":
    main()
