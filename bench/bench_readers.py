"""Readers benchmark: time and peak memory of reading a large GBK CSV and its other forms.

Generates a customers CSV of ``--rows`` lines (default 1.5 million, about 100 MB) in GBK, a
Parquet copy, then runs each reading step in a fresh process and reports its seconds and peak RSS
(VmHWM) above the process's RSS after imports. Memory must stay flat as the file grows:
run with ``--rows 300000`` and the default to compare.

    .venv/bin/python bench/bench_readers.py [--rows N] [--keep DIR] [--load]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADERS = [
    "会员卡号",
    "姓名",
    "性别",
    "出生日期",
    "城市",
    "会员等级",
    "营销授权",
    "注册时间",
    "备注",
]
NAMES = ["王秀英", "李娟", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄丽"]
CITIES = ["烟台", "青岛", "济南", "潍坊", "淄博"]
TIERS = ["白金", "黄金", "白银", "普通"]


def generate(folder: Path, rows: int) -> None:
    """customers.csv (GBK, CRLF, some quoted values) and customers.parquet."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from crmlens.ingest.encoding import transcode

    src = folder / "customers.csv"
    with src.open("w", encoding="gbk", newline="") as out:
        out.write(",".join(HEADERS) + "\r\n")
        chunk: list[str] = []
        for i in range(rows):
            note = '"备注, 第' + str(i % 97) + '条"' if i % 10 == 0 else ""
            chunk.append(
                f"M{i:08d},{NAMES[i % 8]},{'女' if i % 3 else '男'},19{60 + i % 40}-0{1 + i % 9}-1{i % 10},"
                f"{CITIES[i % 5]},{TIERS[i % 4]},{'是' if i % 2 else '否'},"
                f"2021-0{1 + i % 9}-1{i % 10} 10:{i % 60:02d}:00,{note}\r\n"
            )
            if len(chunk) == 50_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    utf8 = folder / "customers-utf8.csv"
    transcode(src, utf8, "gb18030")
    reader = pacsv.open_csv(
        str(utf8),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(HEADERS, "string")),
    )
    with pq.ParquetWriter(str(folder / "customers.parquet"), reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _spec(path: str, **reading: object):  # type: ignore[no-untyped-def]
    from crmlens.ingest.spec import ColumnSpec, SourceSpec

    targets = ["customer_id", "name", "gender", "birth_date", "city", "member_tier",
               "consent_marketing", "signup_date"]  # fmt: skip
    columns = tuple(ColumnSpec(t, h) for t, h in zip(targets, HEADERS, strict=False))
    return SourceSpec(path=path, table="customers", columns=columns, **reading)  # type: ignore[arg-type]


STEPS = {
    "transcode_gbk": ("customers.csv", {"encoding": "auto"}),
    "validate_utf8": ("customers-utf8.csv", {"encoding": "auto"}),
    "spool_text": ("customers.csv", {"encoding": "gbk", "header_row": 0}),
    "spool_parquet": ("customers.parquet", {"format": "parquet"}),
}


def peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM, which ``exec`` resets (``ru_maxrss`` would carry the
    parent's peak into a child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(name: str, folder: Path) -> dict[str, float]:
    """One step in this process: seconds and peak RSS (MB) above the RSS after imports."""
    from crmlens.ingest.readers import ExportReader

    work = Path(tempfile.mkdtemp(dir=folder))
    base = peak_mb()
    clock = time.perf_counter()
    if name == "load_gbk":
        from crmlens.ingest import load_sources
        from crmlens.warehouse import Warehouse

        with Warehouse(work / "w.duckdb") as wh:
            base = peak_mb()
            clock = time.perf_counter()
            load_sources(wh, folder, [_spec("customers.csv", encoding="auto")])
        rows = -1
    else:
        path, reading = STEPS[name]
        spec = _spec(path, **reading)
        if reading.get("header_row") == 0:  # numbered columns: map the first eight
            from dataclasses import replace

            from crmlens.ingest.spec import ColumnSpec

            cols = tuple(
                ColumnSpec(c.target, f"column_{i + 1}") for i, c in enumerate(spec.columns)
            )
            spec = replace(spec, columns=cols)
        rows_read = ExportReader(folder, work).read(spec)
        rows = rows_read.arrow.num_rows if rows_read.arrow is not None else -1
    seconds = time.perf_counter() - clock
    peak = peak_mb()
    return {"seconds": round(seconds, 2), "peak_mb": round(peak, 1),
            "above_imports_mb": round(peak - base, 1), "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    parser.add_argument("--load", action="store_true", help="also time a full warehouse load")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.folder)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="crmlens-bench-readers-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "customers.parquet").exists():
        clock = time.perf_counter()
        generate(folder, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - clock:.1f} s", flush=True)
    size = (folder / "customers.csv").stat().st_size / 1e6
    print(f"customers.csv (GBK): {size:.0f} MB")
    steps = [*STEPS, *(["load_gbk"] if args.load else [])]
    results = {}
    for name in steps:
        out = subprocess.run(
            [sys.executable, __file__, "--step", name, "--folder", str(folder)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:15s} {json.dumps(results[name])}", flush=True)
    print(json.dumps({"rows": args.rows, "csv_mb": round(size), "steps": results}))


if __name__ == "__main__":
    main()
