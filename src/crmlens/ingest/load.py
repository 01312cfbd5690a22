"""Load an export folder into the warehouse, all or nothing, with row accounting.

Every source of a load is read, cleaned and upserted inside one warehouse transaction together with
its ``quarantine`` records and the ``load_log`` rows: a failure anywhere leaves the warehouse
exactly as it was and raises :class:`~crmlens.errors.LoadError` naming the file.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from crmlens.errors import CrmlensError, LoadError
from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.readers import ExportReader
from crmlens.ingest.spec import SourceSpec
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading import SourceResult, anon_salt, load_source, write_load_log

#: ``progress(step, done, total)``: called before each source and once when all are committed.
Progress = Callable[[str, int, int], None]
PROGRESS_STEP = "load"


@dataclass(frozen=True)
class LoadReport:
    """What one load did, per source, in load order."""

    load_id: str
    sources: tuple[SourceResult, ...]
    seconds: float

    @property
    def balanced(self) -> bool:
        """Rows read = loaded + quarantined + merged, for every source."""
        return all(s.balanced for s in self.sources)

    def source(self, path: str, table: str | None = None) -> SourceResult:
        """The result of the source file ``path`` (and ``table``, for a file feeding two)."""
        for s in self.sources:
            if s.source == path and table in (None, s.table):
                return s
        raise KeyError(f"no source {path!r}" + (f" for table {table!r}" if table else ""))

    def totals(self) -> dict[str, int]:
        """Rows read, loaded, quarantined and merged, and values cleared, over all sources."""
        fields = ("rows_read", "rows_loaded", "rows_quarantined", "rows_merged", "values_cleared")
        return {f: sum(getattr(s, f) for s in self.sources) for f in fields}


def load_demo_export(
    warehouse: Warehouse, export_dir: Path, *, progress: Progress | None = None
) -> LoadReport:
    """Load a folder written by ``crmlens demo-data`` (docs/demo-exports.md) into ``warehouse``."""
    return load_sources(warehouse, export_dir, DEMO_SOURCES, progress=progress)


def load_sources(
    warehouse: Warehouse,
    export_dir: Path,
    specs: Sequence[SourceSpec],
    *,
    progress: Progress | None = None,
) -> LoadReport:
    """Load ``specs`` (in order: referenced tables first) from ``export_dir``, all or nothing."""
    export_dir = Path(export_dir)
    started, clock = datetime.now(), time.perf_counter()
    load_id = f"{started:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    results: list[SourceResult] = []
    current: SourceSpec | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="crmlens-load-") as tmp,
            warehouse.transaction() as con,
        ):
            reader = ExportReader(export_dir, Path(tmp))
            salt = anon_salt(con)
            for done, current in enumerate(specs):
                if progress:
                    progress(PROGRESS_STEP, done, len(specs))
                rows = reader.read(current)
                results.append(
                    load_source(con, rows, current, load_id=load_id, loaded_at=started, salt=salt)
                )
            current = None
            write_load_log(con, load_id, results)
    except (CrmlensError, duckdb.Error) as exc:
        raise LoadError(_failure(exc, export_dir, current)) from exc
    if progress:
        progress(PROGRESS_STEP, len(specs), len(specs))
    return LoadReport(load_id, tuple(results), time.perf_counter() - clock)


def _failure(exc: Exception, export_dir: Path, spec: SourceSpec | None) -> str:
    """One line naming the file (when the failure is a file's) and saying nothing was loaded."""
    # DuckDB's CSV errors run over many lines: keep what and where, drop the suggested options
    lines = []
    for line in str(exc).strip().splitlines():
        if not line.strip() or line.startswith("Possible"):
            break
        lines.append(line.strip())
    message = "; ".join(lines) or type(exc).__name__
    if spec is not None and spec.path not in message:
        where = export_dir.joinpath(*spec.path.split("/"))
        message = f"{where} (table {spec.table}): {message}"
    return f"load failed, the warehouse is unchanged: {message}"
