"""Benchmark the metrics layer against hand-written DuckDB SQL and against pandas.

    python bench/bench_metrics.py                      # the 1M-customer demo company
    python bench/bench_metrics.py --customers 200000   # quicker

Uses the demo export cached by bench/run.py (bench/.cache/c<customers>-s<seed>, generated here
the same way when absent) and loads it once into bench/.cache/c<customers>-s<seed>.duckdb (kept
for later runs). Then times, warm (one untimed run first) and best of ``--repeat`` (taking turns):

1. the seed-002 KPI overview (new customers, 客单价, 30-day retention, NPS with 环比, 同比 and
   target) for 2021-11, through ``crmlens.metrics.overview``;
2. revenue, buying customers and AOV by region × customer type × tier over 2021, with shares,
   through ``breakdown``;
3. the monthly first-order cohort table of 2021, through ``cohort_table``.

Each against a hand-written DuckDB SQL statement on the same connection computing the same numbers
(``bench/metrics_baselines.py``; target: crmlens ≤ 1.3× its time) and a pandas implementation on
frames already in memory (the speed-up is reported). The numbers of all three are checked equal —
counts exactly, money and ratios to 1e-9 relative — before any timing counts. Writes
bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

import metrics_baselines as base
from crmlens.metrics import SEED_OVERVIEW, Scope, breakdown, cohort_table, overview
from crmlens.warehouse import Warehouse

HERE = Path(__file__).resolve().parent

TARGET_RATIO = 1.3
DIMS = ("region", "customer_type", "tier")
BREAKDOWN_METRICS = ("revenue", "customers", "aov")
REL = 1e-9


# -- data -----------------------------------------------------------------------------------
def export_dir(cache: Path, customers: int, seed: int) -> Path:
    """The demo export, generated (as bench/run.py does, so either reuses it) when absent."""
    data = cache / f"c{customers}-s{seed}"
    if (data / "manifest.json").exists():
        return data
    from harness import Bench

    shutil.rmtree(data, ignore_errors=True)
    print(f"generating the demo company at {customers:,} customers into {data} …", flush=True)
    bench = Bench("generate", {"customers": customers, "seed": seed})
    result = bench.run_step(
        "generate demo exports",
        "generate",
        f"--customers={customers}",
        f"--seed={seed}",
        f"--out={data}",
    )
    (data / "generate-timing.json").write_text(json.dumps(result.__dict__), encoding="utf-8")
    return data


def warehouse_file(cache: Path, customers: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The loaded warehouse and its load record; loaded once, then reused while its record says
    the load finished (a half-written file from an interrupted load is loaded again)."""
    from crmlens.ingest import load_demo_export

    path = cache / f"c{customers}-s{seed}.duckdb"
    record = path.with_name(path.name + ".json")
    if path.exists() and record.exists():
        with Warehouse(path):  # read-write once: migrates a file cached by an older crmlens
            pass
        return path, json.loads(record.read_text(encoding="utf-8"))
    data = export_dir(cache, customers, seed)
    for stale in (path, path.with_name(path.name + ".wal"), record):
        stale.unlink(missing_ok=True)
    print(f"loading {data} into {path} …", flush=True)
    start = time.perf_counter()
    with Warehouse(path) as wh:
        load_demo_export(wh, data)
        wh.checkpoint()
        rows = {d["table"]: d["rows"] for d in wh.describe() if d["kind"] == "data"}
    info = {"customers": customers, "seed": seed, "load_seconds": time.perf_counter() - start}
    info["rows"] = rows
    record.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path, info


# -- the crmlens side, in the baselines' shape ----------------------------------------------
def overview_crmlens(wh: Warehouse) -> pd.DataFrame:
    frame = overview(wh, SEED_OVERVIEW, Scope.parse("2021-11"))
    rows = []
    for r in frame.itertuples():
        for pid, column in enumerate(("value", "previous", "last_year")):
            rows.append((r.metric, pid, getattr(r, column)))
        if r.target is not None:
            rows.append((f"{r.metric}_target", 0, r.target))
    return pd.DataFrame(rows, columns=["metric", "period_id", "value"])


def breakdown_crmlens(wh: Warehouse) -> pd.DataFrame:
    frame = breakdown(wh, BREAKDOWN_METRICS, Scope.parse("2021"), DIMS)
    return frame[[*DIMS, "revenue", "customers", "aov", "revenue_share", "customers_share"]]


def cohort_crmlens(wh: Warehouse) -> pd.DataFrame:
    return cohort_table(wh, Scope.parse("2021-01", "2021-12"), periods=base.COHORT_PERIODS)


# -- checking and timing --------------------------------------------------------------------
def compare(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], exact: set[str]) -> float:
    """The largest relative difference between ``a`` and ``b`` matched on ``keys``;
    AssertionError when a value is missing on one side only (a row absent from one side counts
    as missing values: SQL has no row for a period without surveys, crmlens has NPS None), exact
    columns differ, or a number is off by more than :data:`REL`."""
    j = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"))
    worst = 0.0
    for column in (c for c in a.columns if c not in keys):
        for x, y in zip(j[f"{column}_a"], j[f"{column}_b"], strict=True):
            x = None if x is None or pd.isna(x) else float(x)
            y = None if y is None or pd.isna(y) else float(y)
            assert (x is None) == (y is None), f"{column}: {x} vs {y}"
            if x is None or y is None:
                continue
            if column in exact:
                assert x == y, f"{column}: {x} vs {y}"
            diff = abs(x - y) / max(abs(x), abs(y)) if x != y else 0.0
            assert diff <= REL or abs(x - y) <= 1e-12, f"{column}: {x} vs {y}"
            worst = max(worst, diff)
    return worst


def run_case(
    name: str,
    impls: dict[str, Callable[[], pd.DataFrame]],
    keys: list[str],
    exact: set[str],
    repeat: int,
) -> dict[str, Any]:
    """Time the three implementations of a case and check that their numbers agree.

    Each runs once untimed (warm caches), then the three take turns ``repeat`` times and each
    keeps its fastest run: on a shared machine a burst of load then hits all three alike rather
    than whichever happened to be running.
    """
    results = {impl: fn() for impl, fn in impls.items()}
    seconds = dict.fromkeys(impls, math.inf)
    for _ in range(repeat):
        for impl, fn in impls.items():
            start = time.perf_counter()
            results[impl] = fn()
            seconds[impl] = min(seconds[impl], time.perf_counter() - start)
    for impl, s in seconds.items():
        print(f"  {name:<10} {impl:<8} {s:8.3f} s", flush=True)
    return {
        "seconds": seconds,
        "rows": len(results["crmlens"]),
        "max_rel_diff_vs_sql": compare(results["crmlens"], results["sql"], keys, exact),
        "max_rel_diff_vs_pandas": compare(results["crmlens"], results["pandas"], keys, exact),
        "ratio_vs_sql": seconds["crmlens"] / seconds["sql"],
        "speedup_vs_pandas": seconds["pandas"] / seconds["crmlens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per step; fastest kept")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "metrics.json")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    path, loaded = warehouse_file(args.cache, args.customers, args.seed)
    wh = Warehouse(path, read_only=True)
    con: duckdb.DuckDBPyConnection = wh.raw  # the same connection and settings as crmlens
    start = time.perf_counter()
    frames = base.Frames.read(con)
    read_seconds = time.perf_counter() - start
    print(f"{loaded['rows']['orders']:,} orders; pandas frames read in {read_seconds:.1f} s")

    cases = {
        "overview": run_case(
            "overview",
            {
                "crmlens": lambda: overview_crmlens(wh),
                "sql": lambda: base.overview_sql(con),
                "pandas": lambda: base.overview_pandas(frames),
            },
            ["metric", "period_id"],
            set(),
            args.repeat,
        ),
        "breakdown": run_case(
            "breakdown",
            {
                "crmlens": lambda: breakdown_crmlens(wh),
                "sql": lambda: base.breakdown_sql(con, DIMS),
                "pandas": lambda: base.breakdown_pandas(frames, DIMS),
            },
            list(DIMS),
            {"customers"},
            args.repeat,
        ),
        "cohorts": run_case(
            "cohorts",
            {
                "crmlens": lambda: cohort_crmlens(wh),
                "sql": lambda: base.cohort_sql(con),
                "pandas": lambda: base.cohort_pandas(frames),
            },
            ["cohort", "period_index"],
            {"cohort_size", "value"},
            args.repeat,
        ),
    }
    wh.close()

    print(
        f"\n{'case':<11}{'crmlens s':>10}{'SQL s':>9}{'vs SQL':>9}{'pandas s':>10}{'speed-up':>10}"
    )
    for name, c in cases.items():
        s = c["seconds"]
        verdict = "ok" if c["ratio_vs_sql"] <= TARGET_RATIO else f"over {TARGET_RATIO}×"
        print(
            f"{name:<11}{s['crmlens']:>10.3f}{s['sql']:>9.3f}{c['ratio_vs_sql']:>8.2f}×"
            f"{s['pandas']:>10.3f}{c['speedup_vs_pandas']:>9.1f}×  {verdict}"
        )
    result = {
        "customers": args.customers,
        "seed": args.seed,
        "repeat": args.repeat,
        "machine": platform.platform(),
        "duckdb": duckdb.__version__,
        "rows": loaded["rows"],
        "load_seconds": loaded["load_seconds"],
        "pandas_read_seconds": read_seconds,
        "target_ratio_vs_sql": TARGET_RATIO,
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
