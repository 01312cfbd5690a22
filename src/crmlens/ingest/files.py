"""Read the input of ``crmlens ingest`` as one source: a file, a folder or glob of same-shaped
files, or a PostgreSQL table or query.

Every file is read by the readers of ``crmlens load`` (:func:`crmlens.ingest.readers.read_batches`:
strict decoding, a detected or checked encoding, no mojibake), batch by batch, and spooled to an
Arrow file in a work folder, which is then memory-mapped: memory stays bounded by a batch however
large the files are. Two columns are added: ``source_file`` (the file's name, kept in the
quarantine's copy of a bad row; for a database the table's name, or ``query``) and ``__line`` (the
row's line in its own file, which the quarantine reports; a row's ordinal in a Parquet file or a
query result). The files of a folder must share their headers.

>>> is_database("postgresql://shop@/crm?host=/run/postgresql"), is_database("orders.csv")
(True, False)
"""

from __future__ import annotations

import glob
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from crmlens.errors import ConfigError, SourceError
from crmlens.ingest.formats import LINE, spool
from crmlens.ingest.mapping_file import ReadOptions
from crmlens.ingest.postgres import postgres_source
from crmlens.ingest.readers import check_headers, read_batches
from crmlens.ingest.sniff import FORMAT_BY_SUFFIX, guess_format

#: ``progress(step, done, total, rows)``: files read or sources loaded so far, and rows so far.
IngestProgress = Callable[[str, int, int, int], None]
FILE_COLUMN = "source_file"
LINE_COLUMN = LINE
#: The suffixes of the files of a folder that are read (text, Excel, Parquet, JSON lines).
SUFFIXES = (".csv", ".txt", *FORMAT_BY_SUFFIX)
#: Rows kept per file for suggesting a mapping.
SAMPLE_ROWS = 1000
_URI_SCHEMES = ("postgresql://", "postgres://")
MAPPED = "named in the mapping"


def is_database(source: str | Path) -> bool:
    """Whether ``source`` is a PostgreSQL connection URI rather than a file, folder or glob."""
    return str(source).startswith(_URI_SCHEMES)


def expand_sources(source: str | Path) -> list[Path]:
    """The files of ``source``: a file, a folder (its files with a :data:`SUFFIXES` ending) or a
    glob pattern.

    Sorted by name, so that the files of a daily export load in date order.
    """
    text = str(source)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES]
    elif glob.has_magic(text):
        files = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    else:
        raise SourceError("no such file or folder", path=text)
    if not files:
        raise SourceError(f"no files ending in {', '.join(SUFFIXES)} match", path=text)
    return sorted(files)


@dataclass
class RawTable:
    """The rows of a source, as strings, with ``source_file`` and ``__line``.

    ``arrow`` is memory-mapped from spooled files in a work folder, which lives as long as the
    table needs it (the folder given to the reader, or one removed with this object).
    """

    label: str
    headers: tuple[str, ...]
    arrow: pa.Table
    files: tuple[Path, ...]
    seconds: float = 0.0
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.arrow.num_rows

    def sample(self, n: int = SAMPLE_ROWS) -> list[list[str | None]]:
        """The first ``n`` rows, values in header order."""
        part = self.arrow.slice(0, n)
        cols = [part.column(h).to_pylist() for h in self.headers]
        return [list(r) for r in zip(*cols, strict=True)] if cols else []


class _Spooler:
    """Spools the batches of each part of a source to its own Arrow file in one work folder."""

    def __init__(self, workdir: Path | None) -> None:
        self.owned = None
        if workdir is None:
            self.owned = tempfile.TemporaryDirectory(
                prefix="crmlens-ingest-", ignore_cleanup_errors=True
            )
            workdir = Path(self.owned.name)
        self.workdir = workdir
        self.parts: list[pa.Table] = []

    def add(
        self, name: str, headers: tuple[str, ...], batches: Iterator[pa.RecordBatch], label: str
    ) -> int:
        """Spool one part; ``source_file`` = ``name`` is added to each batch. Returns its rows."""
        if FILE_COLUMN in headers:
            raise SourceError(f"a column is named {FILE_COLUMN!r}, which ingest adds", path=label)
        tagged = (
            b.add_column(len(headers), FILE_COLUMN, pa.array([name] * b.num_rows, pa.string()))
            for b in batches
        )
        dst = self.workdir / f"{len(self.parts):04d}-{Path(name).stem or 'source'}.arrow"
        self.parts.append(spool(tagged, (*headers, FILE_COLUMN), dst, label))
        return self.parts[-1].num_rows

    def table(
        self, label: str, headers: tuple[str, ...], files: Sequence[Path], clock: float
    ) -> RawTable:
        """The parts as one table (memory-mapped, not copied)."""
        arrow = pa.concat_tables(self.parts)
        seconds = time.perf_counter() - clock
        return RawTable(label, headers, arrow, tuple(files), seconds, self.owned)


def read_files(
    files: Sequence[Path],
    options: ReadOptions,
    *,
    expected: Sequence[str] = (),
    label: str | None = None,
    progress: IngestProgress | None = None,
    workdir: Path | None = None,
) -> RawTable:
    """All ``files`` as one table of strings; :class:`SourceError` if their headers differ.

    The format of each file is ``options.format``, or, for ``auto``, guessed from its first
    bytes and its suffix. ``workdir`` receives the spooled rows (default: a folder removed with
    the returned table).
    """
    if not files:
        raise ConfigError("no files to read")
    clock = time.perf_counter()
    spooler = _Spooler(workdir)
    headers: tuple[str, ...] | None = None
    rows = 0
    for done, path in enumerate(files):
        if progress:
            progress("read", done, len(files), rows)
        fmt = guess_format(path) if options.format == "auto" else options.format
        delimiter = "\t" if fmt == "tsv" and options.delimiter == "," else options.delimiter
        these, batches = read_batches(
            path,
            fmt,  # type: ignore[arg-type]  # ReadOptions checks it is a file format
            encoding=options.encoding,
            delimiter=delimiter,
            header_row=options.header_row,
            sheet=options.sheet,
        )
        row = options.header_row if fmt in ("csv", "tsv", "excel") and options.header_row else None
        if headers is None:
            check_headers(these, expected, path, row, needed_by=MAPPED)
            headers = these
        elif these != headers:
            raise SourceError(
                f"expected the headers of {files[0].name} {list(headers)}, found {list(these)}",
                path=path,
                row=row,
            )
        rows += spooler.add(path.name, these, batches, str(path))
    if progress:
        progress("read", len(files), len(files), rows)
    assert headers is not None
    name = label or (str(files[0]) if len(files) == 1 else f"{files[0].parent}/*{files[0].suffix}")
    return spooler.table(name, headers, files, clock)


def read_input(
    source: str | Path,
    options: ReadOptions | None = None,
    *,
    table: str | None = None,
    query: str | None = None,
    expected: Sequence[str] = (),
    progress: IngestProgress | None = None,
    workdir: Path | None = None,
) -> RawTable:
    """The rows of a file, folder or glob (see :func:`expand_sources`, :func:`read_files`), or,
    with ``table`` (``schema.table``) or ``query``, of a PostgreSQL database whose connection
    string or URI ``source`` is.

    A database source is named ``pg:<table>`` or ``pg:query``, never by its connection string
    (it may hold a password).
    """
    if table is None and query is None:
        if is_database(source):
            where = str(source).rsplit("@", 1)[-1]  # what precedes an @ may hold a password
            raise ConfigError(f"{where}: name the --table or the --query to read")
        files = expand_sources(source)
        return read_files(
            files, options or ReadOptions(), expected=expected, progress=progress, workdir=workdir
        )
    clock = time.perf_counter()
    name = table.rsplit(".", 1)[-1].strip('"') if table else "query"
    label = f"pg:{table}" if table else "pg:query"
    if progress:
        progress("read", 0, 1, 0)
    spooler = _Spooler(workdir)
    scratch = spooler.workdir / "pg-copy.csv"
    headers, batches = postgres_source(
        str(source), table=table, query=query, label=label, scratch=scratch
    )
    check_headers(headers, expected, label, None, needed_by=MAPPED)
    rows = spooler.add(name, headers, batches, label)
    scratch.unlink()  # spooled: the COPY output is no longer needed
    if progress:
        progress("read", 1, 1, rows)
    return spooler.table(label, headers, (), clock)
