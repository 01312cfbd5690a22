"""Readers: turn a source (a file, or a PostgreSQL table or query) into
:class:`~crmlens.warehouse.loading.SourceRows`.

How each format is read, memory bounded in every case but Excel:

- **CSV/TSV** with a one-character delimiter and a header line: DuckDB's ``read_csv`` reads the
  file itself. UTF-8 files (with or without a byte-order mark) are read as they are: DuckDB
  checks every byte as it reads (a load failing on an invalid byte then decodes the file in Python
  to name the line, see :meth:`ExportReader.explain`) and a byte search refuses U+FFFD; other
  encodings are transcoded, a chunk at a time, to a UTF-8 copy in the work folder, because DuckDB
  reads only UTF-8 and Latin-1 without downloading an extension.
- **whitespace-separated** or **header-less** text, **JSON lines**, **Parquet** and **PostgreSQL**:
  read in batches of text, spooled to an Arrow file in the work folder and memory-mapped
  (:mod:`crmlens.ingest.formats`, :mod:`crmlens.ingest.postgres`).
- **Excel** (.xlsx, .xls, …): one sheet read with ``python-calamine`` into an Arrow table of
  strings that keeps each row's sheet row number (a sheet holds at most about a million rows).

Encodings are detected or checked by :mod:`crmlens.ingest.encoding`: decoding is strict and garbled
text is refused, so mojibake never reaches the warehouse.
"""

from __future__ import annotations

import csv
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from python_calamine import CalamineWorkbook

from crmlens.errors import EncodingError, SourceError
from crmlens.ingest.encoding import (
    UTF8,
    canonical_encoding,
    check_not_garbled,
    detect_encoding,
    resolve,
    transcode,
    validate,
)
from crmlens.ingest.formats import (
    cell_text,
    jsonl_batches,
    jsonl_headers,
    parquet_batches,
    parquet_headers,
    spool,
    text_batches,
    text_headers,
)
from crmlens.ingest.postgres import postgres_source
from crmlens.ingest.spec import WHITESPACE, Format, SourceSpec
from crmlens.warehouse.loading import SourceRows

__all__ = [
    "ExportReader",
    "canonical_encoding",
    "check_headers",
    "detect_encoding",
    "duckdb_reads",
    "read_batches",
    "read_sheet",
    "read_source",
    "transcode",
]


def _csv_headers(path: Path, delimiter: str, header_row: int) -> tuple[str, ...]:
    """The header line of a UTF-8 CSV, read without decoding the rest of the file."""
    with path.open("rb") as fh:
        lines = [fh.readline() for _ in range(header_row)]
    try:
        line = lines[-1].decode("utf-8-sig" if header_row == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"expected UTF-8: {exc.reason}", path=path, row=header_row) from exc
    stripped = line.rstrip("\r\n")
    if "\r" in stripped:
        # old Mac line ends (CR only): readline found no LF, so the "header" is the whole file
        raise SourceError(
            "lines end in CR only (classic Mac); expected LF or CRLF line ends: re-save the file "
            "with Windows or Unix line ends",
            path=path,
            row=header_row,
        )
    try:
        headers = next(csv.reader([stripped], delimiter=delimiter), [])
    except csv.Error as exc:
        raise SourceError(f"cannot read the header line: {exc}", path=path, row=header_row) from exc
    if not any(h.strip() for h in headers):
        raise SourceError("no header line: the file is empty", path=path, row=header_row)
    return tuple(h.strip() for h in headers)


def _has_quote(path: Path) -> bool:
    """Whether the file holds a ``"`` at all (a memchr over the mapped file: fast)."""
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b'"') >= 0


def check_headers(
    headers: tuple[str, ...],
    required: Sequence[str],
    where: Path | str,
    row: int | None,
    *,
    needed_by: str,
) -> None:
    """:class:`SourceError` for duplicate headers, none at all, or a ``required`` one missing
    (``needed_by`` says what names it, e.g. ``for table customers``)."""
    dupes = sorted({h for h in headers if headers.count(h) > 1})
    if dupes:
        raise SourceError(f"duplicate columns {dupes}", path=where, row=row)
    if not headers:
        raise SourceError("no columns: the source is empty", path=where, row=row)
    missing = [h for h in required if h not in headers]
    if missing:
        raise SourceError(
            f"expected columns {missing} ({needed_by}), found {list(headers)}",
            path=where,
            row=row,
        )


class ExportReader:
    """Reads the sources of one export folder, using ``workdir`` for transcoded and spooled copies.

    Reads each source once: two specs reading one file the same way (the survey's responses and
    scores) share its rows.
    """

    def __init__(self, export_dir: Path, workdir: Path) -> None:
        self.export_dir = Path(export_dir)
        self.workdir = Path(workdir)
        self._cache: dict[tuple[Any, ...], SourceRows] = {}
        self._copies = 0

    def path(self, spec: SourceSpec) -> Path:
        """The file of ``spec``; :class:`SourceError` if it is missing."""
        path = self.export_dir.joinpath(*spec.path.split("/"))
        if not path.is_file():
            raise SourceError(f"missing file (expected for table {spec.table})", path=path)
        return path

    def read(self, spec: SourceSpec) -> SourceRows:
        """The rows of ``spec``'s source, ready for :func:`crmlens.warehouse.loading.load_source`."""
        key = (
            spec.path, spec.format, spec.encoding, spec.delimiter, spec.sheet, spec.header_row,
            spec.dsn, spec.source_table, spec.query,
        )  # fmt: skip
        if key not in self._cache:
            self._cache[key] = self._read(spec)
        rows = self._cache[key]
        where = spec.path if spec.format == "postgres" else self.path(spec)
        row = spec.header_row if spec.format in ("csv", "tsv", "excel") else None
        check_headers(
            rows.headers, spec.source_headers, where, row, needed_by=f"for table {spec.table}"
        )
        return rows

    def _read(self, spec: SourceSpec) -> SourceRows:
        if spec.format == "postgres":
            assert spec.dsn is not None  # SourceSpec checks a postgres source has one
            headers, batches = postgres_source(
                spec.dsn,
                table=spec.source_table,
                query=spec.query,
                label=spec.path,
                scratch=self._scratch("pg", ".csv"),
            )
            return self._spooled(spec, headers, batches)
        path = self.path(spec)
        if not duckdb_reads(spec.format, spec.delimiter, spec.header_row):
            headers, batches = read_batches(
                path,
                spec.format,
                encoding=spec.encoding,
                delimiter=spec.delimiter,
                header_row=spec.header_row,
                sheet=spec.sheet,
            )
            return self._spooled(spec, headers, batches)
        utf8 = self._utf8_copy(path, resolve(path, spec.encoding))
        return SourceRows(
            spec.path,
            _csv_headers(utf8, spec.delimiter, spec.header_row),
            csv_path=utf8,
            delimiter=spec.delimiter,
            header_line=spec.header_row,
            may_span_lines=_has_quote(utf8),
        )

    def _scratch(self, stem: str, suffix: str) -> Path:
        """A new file name in the work folder."""
        self._copies += 1
        return self.workdir / f"{self._copies:03d}-{stem}{suffix}"

    def _spooled(
        self, spec: SourceSpec, headers: tuple[str, ...], batches: Iterator[pa.RecordBatch]
    ) -> SourceRows:
        dst = self._scratch(Path(spec.path).name or "source", ".arrow")
        return SourceRows(spec.path, headers, arrow=spool(batches, headers, dst, spec.path))

    def explain(self, spec: SourceSpec, error: BaseException) -> SourceError | None:
        """Why DuckDB could not read ``spec``'s file, when DuckDB's own message (``error``) does not
        say it well: an invalid byte in a UTF-8 file it read as it is (the error of a strict
        decoding, naming the line; DuckDB names a line of the records it parsed), or lines ending
        in both CRLF and LF, which its parser rejects without naming a line. None otherwise."""
        if spec.format == "postgres" or not duckdb_reads(
            spec.format, spec.delimiter, spec.header_row
        ):
            return None
        try:
            path = self.path(spec)
            encoding = resolve(path, spec.encoding)
            if encoding in UTF8:
                validate(path, "utf-8" if encoding == "ascii" else encoding)
        except EncodingError as exc:
            return exc
        except SourceError:
            return None
        if "invalid state" in str(error):
            line = first_other_line_end(path)
            if line is not None:
                return SourceError(
                    "lines end in both CRLF and LF (this is the first line ending otherwise than "
                    "line 1), which DuckDB's CSV parser cannot read; re-save the file with one "
                    "kind of line ends",
                    path=path,
                    row=line,
                )
        return None

    def _utf8_copy(self, path: Path, encoding: str) -> Path:
        """``path`` itself if it is UTF-8 (DuckDB checks its bytes as it reads: see
        :meth:`explain`), else a transcoded copy."""
        if encoding in UTF8:  # DuckDB skips a byte-order mark itself
            check_not_garbled(path)
            return path
        out = self._scratch(path.stem, path.suffix)
        transcode(path, out, encoding)
        return out


def first_other_line_end(path: Path, *, chunk_size: int = 1 << 24) -> int | None:
    """The first line (from 1) ending otherwise than line 1 does (CRLF vs LF), or None. Line
    breaks inside a quoted value do not end a record and are not compared.

    Read in chunks, line by line in Python: only for explaining a failed read.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_bytes(b'a,b\\r\\n1,"x\\ny"\\r\\n2,y\\n3,z\\r\\n')
    >>> first_other_line_end(p)
    4
    """
    first: bool | None = None
    line, before, quoted = 1, b"", False
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            start = 0
            while (i := chunk.find(b"\n", start)) >= 0:
                quoted ^= chunk.count(b'"', start, i) % 2 == 1
                if not quoted:
                    crlf = (chunk[i - 1 : i] if i else before) == b"\r"
                    if first is None:
                        first = crlf
                    elif crlf != first:
                        return line
                line, start = line + 1, i + 1
            quoted ^= chunk.count(b'"', start) % 2 == 1
            before = chunk[-1:]
    return None


def duckdb_reads(format: str, delimiter: str, header_row: int) -> bool:
    """Whether DuckDB's ``read_csv`` reads the file itself: delimited text with a header line."""
    return format in ("csv", "tsv") and delimiter != WHITESPACE and header_row > 0


def read_batches(
    path: Path,
    format: Format,
    *,
    encoding: str = "auto",
    delimiter: str = ",",
    header_row: int = 1,
    sheet: str | None = None,
) -> tuple[tuple[str, ...], Iterator[pa.RecordBatch]]:
    """The headers and text batches (values as text, plus ``__line``) of a file of any format.

    Text is decoded strictly in the encoding given (checked for garbling) or detected (``auto``);
    the batches come one at a time, so memory stays bounded by a batch (a sheet, for Excel).
    """
    if format == "excel":
        if header_row < 1:
            raise SourceError(f"a sheet's header row counts from 1, got {header_row}", path=path)
        headers, arrow = read_sheet(path, sheet, header_row)
        return headers, iter(arrow.to_batches())
    if format == "parquet":
        return parquet_headers(path), (batch for _, batch in parquet_batches(path))
    if format == "postgres":
        raise SourceError("a postgres source is a database, not a file", path=path)
    codec = resolve(path, encoding)
    if format == "jsonl":
        headers = jsonl_headers(path, codec)
        return headers, jsonl_batches(path, codec, headers)
    headers = text_headers(path, codec, delimiter, header_row)
    return headers, text_batches(path, codec, delimiter, header_row, headers)


def read_source(spec: SourceSpec, base_dir: Path, workdir: Path) -> SourceRows:
    """The rows of one source (a file under ``base_dir``, or a database), for the loader.

    ``workdir`` receives transcoded and spooled copies and must outlive the load. To read several
    sources, keep one :class:`ExportReader`: it reads a source shared by two specs once.
    """
    return ExportReader(base_dir, workdir).read(spec)


def read_sheet(path: Path, sheet: str | None, header_row: int) -> tuple[tuple[str, ...], pa.Table]:
    """Headers and an all-string Arrow table (plus ``__line``, the sheet row) of one sheet.

    Blank rows are skipped; numbers that are whole print without ``.0``; dates as ISO text.
    """
    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for unreadable files
        raise SourceError(f"cannot be read as an Excel workbook: {exc}", path=path) from exc
    if sheet is not None and sheet not in book.sheet_names:
        raise SourceError(f"expected a sheet {sheet!r}, found {book.sheet_names}", path=path)
    ws = book.get_sheet_by_name(sheet) if sheet else book.get_sheet_by_index(0)
    grid = ws.to_python(skip_empty_area=False)  # row 0 is sheet row 1
    if len(grid) < header_row:
        raise SourceError("no header row: the sheet is too short", path=path, row=header_row)
    named = [(i, str(h).strip()) for i, h in enumerate(grid[header_row - 1]) if str(h).strip()]
    lines: list[int] = []
    columns: list[list[str | None]] = [[] for _ in named]
    for line, row in _data_rows(grid, header_row):
        lines.append(line)
        for out, (i, _) in zip(columns, named, strict=True):
            out.append(cell_text(row[i]) if i < len(row) else None)
    headers = tuple(name for _, name in named)
    arrays = [pa.array(col, pa.string()) for col in columns] + [pa.array(lines, pa.int64())]
    return headers, pa.Table.from_arrays(arrays, names=[*headers, "__line"])


def _data_rows(grid: list[list[Any]], header_row: int) -> Iterator[tuple[int, list[Any]]]:
    for index, row in enumerate(grid[header_row:], start=header_row + 1):
        if any(cell not in ("", None) for cell in row):
            yield index, row
