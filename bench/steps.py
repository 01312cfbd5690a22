"""Benchmark steps, each run in its own process by harness.Bench; prints one JSON line.

python bench/steps.py generate --customers 1000000 --seed 42 --out bench/.cache/c1000000-s42
python bench/steps.py baseline-load --data DIR --warehouse W.duckdb
python bench/steps.py load --data DIR --warehouse W.duckdb
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    """CPU time of all the process's threads: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def generate(args: argparse.Namespace) -> dict[str, Any]:
    from crmlens.demo import DemoConfig, generate

    manifest = generate(DemoConfig(customers=args.customers, seed=args.seed, out_dir=args.out))
    return {"rows": sum(f["rows"] for f in manifest["files"].values())}


def baseline_load(args: argparse.Namespace) -> dict[str, Any]:
    """The floor: every export into a table with DuckDB's own readers, no cleaning at all.

    DuckDB reads UTF-8 (with or without BOM) itself; other encodings need an extension download, so
    the baseline transcodes those in Python first, as cheaply as possible. Excel goes through
    python-calamine, the same reader crmlens uses. The file is in DuckDB's default storage format,
    or with ``--storage-version=crmlens`` in the one crmlens writes its warehouse in.
    """
    import duckdb
    import pyarrow as pa
    from python_calamine import CalamineWorkbook

    manifest = json.loads((args.data / "manifest.json").read_text(encoding="utf-8"))
    config: dict[str, str] = {}
    if args.storage_version == "crmlens":  # the format crmlens writes its warehouse in
        from crmlens.warehouse.connection import STORAGE_VERSION

        config["storage_compatibility_version"] = STORAGE_VERSION
    con = duckdb.connect(str(args.warehouse), config=config)
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (rel, info) in enumerate(sorted(manifest["files"].items())):
            path = args.data / rel
            name = f"t{i}"
            if rel.endswith(".xlsx"):
                sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
                header_at = next(j for j, r in enumerate(sheet) if sum(1 for v in r if v) > 3)
                header = [str(h) for h in sheet[header_at]]
                data = sheet[header_at + 1 :]
                arrow = pa.table({h: [str(r[k]) for r in data] for k, h in enumerate(header)})
                con.register("arrow_view", arrow)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow_view")
                con.unregister("arrow_view")
            else:
                encoding = info.get("encoding", "utf-8").lower()
                if encoding not in ("utf-8", "utf-8-sig", "utf8"):
                    utf8 = Path(tmp) / f"{name}.csv"
                    with (
                        path.open(encoding=encoding, newline="") as src,
                        utf8.open("w", encoding="utf-8", newline="") as dst,
                    ):
                        while chunk := src.read(1 << 22):
                            dst.write(chunk)
                    path = utf8
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv(?)", [str(path)])
            rows += con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    con.execute("CHECKPOINT")
    con.close()
    return {"rows": rows}


def load(args: argparse.Namespace) -> dict[str, Any]:
    from crmlens.ingest import load_demo_export
    from crmlens.warehouse import Warehouse

    with Warehouse(args.warehouse) as wh:
        report = load_demo_export(wh, args.data)
        wh.checkpoint()
    return {
        "rows": sum(s.rows_read for s in report.sources),
        "rows_loaded": sum(s.rows_loaded for s in report.sources),
        "balanced": report.balanced,
    }


STEPS = {"generate": generate, "baseline-load": baseline_load, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument(
        "--storage-version",
        default="duckdb",
        choices=["duckdb", "crmlens"],
        help="baseline-load: the file's storage format, DuckDB's default or crmlens's",
    )
    args = parser.parse_args()
    if args.warehouse is not None and args.warehouse.exists():
        args.warehouse.unlink()
    started, cpu = time.perf_counter(), _cpu_seconds()
    out = STEPS[args.step](args)
    out["seconds"] = time.perf_counter() - started
    out["cpu_seconds"] = _cpu_seconds() - cpu
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
