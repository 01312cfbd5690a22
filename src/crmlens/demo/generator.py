"""``generate``: write the whole demo company (every export, ``planted.json`` and ``manifest.json``).

Order of work: build the world; write the CRM/product masters and stream the shop's orders and lines
(measuring the core effects on the clean truth while streaming); write the targets; run the
peripheral writers (marketing, service, survey, behaviour, sales), which add their own effects and
dirt to the world; write the experiments (they reference the A/B-test campaign marketing created);
then record what was planted and a manifest with a checksum per file.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from python_calamine import CalamineWorkbook

from crmlens.demo import effects
from crmlens.demo.calendar import build_calendar
from crmlens.demo.members_export import MEMBERS_FILE, write_masters
from crmlens.demo.people import build_world
from crmlens.demo.planning_export import write_experiments, write_targets
from crmlens.demo.shop_export import write_shop
from crmlens.demo.world import DemoConfig, DemoWorld

Progress = Callable[[str, int, int], None]

PERIPHERAL_WRITERS = ("marketing", "service", "survey", "behaviour", "sales")
PLANTED_FILE = "planted.json"
MANIFEST_FILE = "manifest.json"
# encodings the contract fixes; every other CSV and JSON file is plain UTF-8
ENCODINGS = {MEMBERS_FILE: "gbk", "service/tickets.csv": "utf-8-sig"}
SURVEY_HEADER_ROW = 3  # survey workbook: title, blank row, header, then data


def generate(config: DemoConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Write the demo company's exports to ``config.out_dir`` and return the manifest.

    ``progress(step, done, total)`` is called as work advances. The output is byte-identical for
    the same ``config`` (seed and size) and does not depend on ``config.chunk_customers``.
    """
    return _generate(config, progress, PERIPHERAL_WRITERS)


def _generate(
    config: DemoConfig, progress: Progress | None, peripherals: Sequence[str]
) -> dict[str, Any]:
    """:func:`generate` with a chosen list of peripheral writer modules."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda step, done, total: None)
    steps = 4 + len(peripherals)

    report("world", 0, steps)
    world = build_world(config)
    calendar = build_calendar(config.start, config.end)
    report("world", 1, steps)
    paths = write_masters(world, out)
    report("members", 2, steps)
    shop_paths, tally = write_shop(world, out, progress)
    paths += shop_paths
    paths += write_targets(world, out, tally, calendar)
    _record_core_effects(world, tally, calendar)
    report("shop", 3, steps)

    for number, name in enumerate(peripherals, start=4):
        writer = importlib.import_module(f"crmlens.demo.{name}")
        paths += writer.write(world, out, progress)
        report(name, number, steps)
    paths += write_experiments(world, out)

    planted = out / PLANTED_FILE
    _write_json(planted, planted_record(world))
    paths.append(planted)
    manifest = build_manifest(world, out, paths)
    _write_json(out / MANIFEST_FILE, manifest)
    report("manifest", steps, steps)
    return manifest


def _record_core_effects(world: DemoWorld, tally: Any, calendar: Any) -> None:
    """Measure the effects the core generator planted and add them to ``world.effects``."""
    world.effects["tiers"] = effects.tiers(world, tally)
    world.effects["demographics"] = effects.demographics(world)
    world.effects["covid_dip"] = effects.covid_dip(world, tally, calendar)
    world.effects["kiosk_pilot"] = effects.kiosk_pilot(world, calendar)
    world.effects["churned_categories"] = effects.churned_categories(world, tally, calendar)
    world.effects["customer_mix"] = effects.customer_mix(world, tally)


def planted_record(world: DemoWorld) -> dict[str, Any]:
    """The content of ``planted.json``."""
    config = world.config
    return {
        "seed": config.seed,
        "customers": config.customers,
        "period": {"start": config.start.isoformat(), "end": config.end.isoformat()},
        "effects": world.effects,
        "dirt": dict(sorted(world.dirt.items())),
        "dirt_notes": (
            "Counts are exact. Each dirty row has one kind of dirt only. Duplicates count the "
            "extra rows; other kinds count distinct rows of the de-duplicated file (members: "
            "one row per 会员卡号, the newest 更新时间)."
        ),
    }


def build_manifest(world: DemoWorld, out: Path, paths: Sequence[Path]) -> dict[str, Any]:
    """Seed, size and per written file: data rows, encoding and SHA-256."""
    files = {}
    for path in sorted(set(paths), key=lambda p: p.relative_to(out).as_posix()):
        relative = path.relative_to(out).as_posix()
        encoding = _encoding(relative)
        files[relative] = {
            "rows": _count_rows(path, encoding),
            "encoding": encoding,
            "sha256": _sha256(path),
        }
    return {"seed": world.config.seed, "customers": world.config.customers, "files": files}


def _encoding(relative: str) -> str:
    if relative.endswith(".xlsx"):
        return "xlsx"
    return ENCODINGS.get(relative, "utf-8")


def _count_rows(path: Path, encoding: str) -> int:
    """Data rows: CSV records after the header, workbook rows after the header row, JSON: 1."""
    if encoding == "xlsx":
        workbook = CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
        return max(len(sheet) - SURVEY_HEADER_ROW, 0)
    if path.suffix == ".json":
        return 1
    with path.open(encoding=encoding, newline="") as handle:
        header = next(csv.reader(handle), [])
    # every column as text: no type inference that a later block could contradict
    names = [f"c{i}" for i in range(len(header))]
    read = pacsv.ReadOptions(
        encoding=encoding.replace("-sig", ""), column_names=names, skip_rows=1, block_size=1 << 24
    )
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    rows = 0
    with pacsv.open_csv(path, read_options=read, convert_options=convert) as reader:
        for batch in reader:
            rows += batch.num_rows
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _write_json(path: Path, content: dict[str, Any]) -> None:
    text = json.dumps(content, ensure_ascii=False, indent=2, default=_json_default)
    path.write_text(text + "\n", encoding="utf-8")
