"""Load sources into the warehouse, all or nothing, with row accounting.

Every source of a load is read (or comes already read, as :class:`Prepared` rows: ``crmlens
ingest`` reads and cleans its input first), then cleaned and upserted inside one warehouse
transaction together with its ``quarantine`` records and the ``load_log`` rows; identity
resolution then ties the new records to customers. A failure anywhere leaves the warehouse exactly
as it was and raises :class:`~crmlens.errors.LoadError` naming the file.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from crmlens.errors import CrmlensError, LoadError
from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.identity import resolve_identities
from crmlens.ingest.readers import ExportReader
from crmlens.ingest.spec import SourceSpec
from crmlens.warehouse import Warehouse
from crmlens.warehouse.derived import drop_derived
from crmlens.warehouse.identity_store import ResolutionCounts
from crmlens.warehouse.loading import (
    SourceResult,
    SourceRows,
    TableMapping,
    anon_salt,
    load_settings,
    load_source,
    write_load_log,
)

#: ``progress(step, done, total)``: called before each source and once when all are committed.
Progress = Callable[[str, int, int], None]
PROGRESS_STEP = "load"


@dataclass(frozen=True)
class Prepared:
    """A source already read: its rows and their mapping onto one table."""

    rows: SourceRows
    mapping: TableMapping


@dataclass(frozen=True)
class LoadReport:
    """What one load did, per source, in load order."""

    load_id: str
    sources: tuple[SourceResult, ...]
    seconds: float
    #: What identity resolution did after the sources were written (see crmlens.ingest.identity).
    identity: ResolutionCounts | None = None

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
    export_dir: Path | None,
    specs: Sequence[SourceSpec | Prepared],
    *,
    progress: Progress | None = None,
) -> LoadReport:
    """Load ``specs`` (in order: referenced tables first), all or nothing.

    A :class:`SourceSpec` is read from ``export_dir`` (or a database) during the load; a
    :class:`Prepared` source is loaded as it is (``export_dir`` may then be None).
    """
    folder = Path(export_dir) if export_dir is not None else Path.cwd()
    started, clock = datetime.now(), time.perf_counter()
    load_id = f"{started:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    results: list[SourceResult] = []
    current: SourceSpec | Prepared | None = None
    reader: ExportReader | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="crmlens-load-") as tmp,
            warehouse.transaction() as con,
        ):
            reader = ExportReader(folder, Path(tmp))
            salt = anon_salt(con)
            ahead = _ReadAhead(reader, specs)
            with ahead, load_settings(con):
                for done, current in enumerate(specs):
                    if progress:
                        progress(PROGRESS_STEP, done, len(specs))
                    if isinstance(current, Prepared):
                        rows, mapping = current.rows, current.mapping
                    else:
                        rows, mapping = ahead.rows(done), current
                    results.append(
                        load_source(
                            con, rows, mapping, load_id=load_id, loaded_at=started, salt=salt
                        )
                    )
            current = None
            write_load_log(con, load_id, results)
            # ties records carrying only a phone or e-mail to a customer (D4)
            identity = resolve_identities(con, load_id=load_id, resolved_at=started)
            # they describe the data before this load; `crmlens build` writes them again
            drop_derived(con)
    # UnicodeDecodeError: DuckDB cuts a long error text at ~10 kB, at times inside a character,
    # and its Python binding then fails to decode the message itself
    except (CrmlensError, duckdb.Error, UnicodeDecodeError) as exc:
        # DuckDB's message may not name the line (an invalid UTF-8 byte, mixed line ends)
        why = reader.explain(current, exc) if reader and isinstance(current, SourceSpec) else None
        if why is not None and isinstance(exc, duckdb.Error | UnicodeDecodeError):
            raise LoadError(_failure(why, folder, current)) from exc
        raise LoadError(_failure(exc, folder, current)) from exc
    if progress:
        progress(PROGRESS_STEP, len(specs), len(specs))
    return LoadReport(load_id, tuple(results), time.perf_counter() - clock, identity)


class _ReadAhead:
    """Reads the file sources of a load one ahead, on a thread, while DuckDB loads the one before.

    Reading is Python work on one core (transcoding, byte checks) and DuckDB releases the
    interpreter while it runs, so the two overlap. Sources are read in order, one at a time, by
    the one worker: the reader is never used by two threads at once. A read's error is raised when
    its rows are asked for, so a failure still names the source being loaded.
    """

    def __init__(self, reader: ExportReader, specs: Sequence[SourceSpec | Prepared]) -> None:
        self.reader = reader
        self.specs = specs
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmlens-read")
        self.pending: dict[int, Future[SourceRows]] = {}

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True)

    def _submit(self, index: int) -> None:
        if index < len(self.specs) and index not in self.pending:
            spec = self.specs[index]
            if isinstance(spec, SourceSpec):
                self.pending[index] = self.pool.submit(self.reader.read, spec)

    def rows(self, index: int) -> SourceRows:
        """The rows of source ``index`` (a :class:`SourceSpec`); starts reading the next one."""
        self._submit(index)
        future = self.pending.pop(index)
        rows = future.result()
        self._submit(index + 1)
        return rows


def _failure(exc: Exception, export_dir: Path, spec: SourceSpec | Prepared | None) -> str:
    """One line naming the file (when the failure is a file's) and saying nothing was loaded."""
    # DuckDB's CSV errors run over many lines: keep what and where, drop the suggested options
    lines = []
    for line in str(exc).strip().splitlines():
        if not line.strip() or line.startswith("Possible"):
            break
        lines.append(line.strip())
    message = "; ".join(lines) or type(exc).__name__
    if isinstance(spec, Prepared) and spec.rows.label not in message:
        message = f"{spec.rows.label} (table {spec.mapping.table}): {message}"
    elif isinstance(spec, SourceSpec) and spec.path not in message:
        where = (
            spec.path if spec.format == "postgres" else export_dir.joinpath(*spec.path.split("/"))
        )
        message = f"{where} (table {spec.table}): {message}"
    return f"load failed, the warehouse is unchanged: {message}"
