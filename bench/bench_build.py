"""Time each step of ``crmlens build`` on the demo company at a given scale.

    python bench/bench_build.py --customers 20000
    python bench/bench_build.py --customers 1000000 --label after

Uses the demo warehouse cached under bench/.cache (``c<customers>-s<seed>.duckdb``, the same file
bench/bench_metrics.py uses; generated and loaded here the same way when absent), copies it to a
temporary folder, so the cache is never written to, and runs :func:`crmlens.models.build.build`
on the copy, as ``crmlens build`` does (as of the default day). Prints the seconds of every build
step and merges them into bench/results/build.json under ``<label>/<customers>``, so runs at
several scales, and before and after a change, sit side by side. ``--profile FILE`` also writes a
cProfile of the build (read it with ``python -m pstats FILE``).

One run per scale: at a million customers a build takes minutes and the machines are shared, so
a figure is one sample, not a best-of; compare runs made close together.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_metrics import warehouse_file
from crmlens.models.build import STEPS, build
from crmlens.warehouse import Warehouse

HERE = Path(__file__).resolve().parent


def run_build(source: Path, profile: Path | None) -> dict[str, Any]:
    """Build into a copy of ``source``; seconds per step, rows per table and the headline."""
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        path = Path(tmp) / "w.duckdb"
        shutil.copy(source, path)
        marks: dict[str, float] = {}

        def progress(label: str, done: int, total: int) -> None:
            # printed as the build goes, so a slow step is visible before the build ends
            if done == 0:
                marks[label] = time.perf_counter()
            else:
                print(f"  {label:<36}{time.perf_counter() - marks[label]:>9.1f} s", flush=True)

        with Warehouse(path) as wh:
            profiler = cProfile.Profile() if profile else None
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            report = build(wh, progress=progress)
            if profiler:
                profiler.disable()
                profile.parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(str(profile))
            total = time.perf_counter() - start
    headline = {
        k: report.headline.get(k)
        for k in ("customers", "buyers", "n_clusters", "silhouette", "churn_auc")
    }
    return {
        "as_of": str(report.as_of),
        "seconds": {k: round(report.seconds.get(k, float("nan")), 2) for k in STEPS},
        "total_seconds": round(total, 2),
        "rows": report.rows,
        "headline": headline,
        "skipped": report.skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--label", default="current", help="key of this run in the results")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile here")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "build.json")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    source, _ = warehouse_file(args.cache, args.customers, args.seed)
    print(f"building {source} (a copy) …", flush=True)
    result = run_build(source, args.profile)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    result |= {
        "peak_rss_mb": round(peak_mb),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.platform(),
        "python": sys.version.split()[0],
    }
    print(f"  {'total':<36}{result['total_seconds']:>9.1f} s (peak RSS {peak_mb:,.0f} MB)")
    print(f"  {result['headline']}")

    previous: dict[str, Any] = {}
    if args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8"))
    runs = previous.setdefault("runs", {})
    runs.setdefault(args.label, {})[str(args.customers)] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.out} ({args.label}, {args.customers:,} customers)")


if __name__ == "__main__":
    main()
