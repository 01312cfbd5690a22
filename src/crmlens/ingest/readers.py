"""Readers: turn a source file into :class:`~crmlens.warehouse.loading.SourceRows`.

UTF-8 CSV files (with or without a byte-order mark) go to DuckDB's ``read_csv`` untouched. Other
encodings are transcoded, streaming in chunks, to a temporary UTF-8 copy first, because DuckDB reads
only UTF-8 and Latin-1 without downloading an extension. Excel sheets are read with
``python-calamine`` into an Arrow table of strings that keeps each row's sheet row number.
"""

from __future__ import annotations

import codecs
import csv
import mmap
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from charset_normalizer import from_bytes
from python_calamine import CalamineWorkbook

from crmlens.errors import EncodingError, SourceError
from crmlens.ingest.spec import SourceSpec
from crmlens.warehouse.loading import SourceRows

_CHUNK = 1 << 20  # bytes per read when transcoding: memory stays bounded whatever the file size
_UTF8 = ("utf-8", "utf-8-sig")
# GBK and GB2312 files are decoded as GB18030, their superset, so a stray newer character passes
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030"}


def canonical_encoding(name: str) -> str:
    """The Python codec name, with GBK and GB2312 widened to GB18030.

    >>> canonical_encoding("GBK"), canonical_encoding("utf8")
    ('gb18030', 'utf-8')
    """
    codec = codecs.lookup(name).name
    return _SUPERSETS.get(codec, codec)


def detect_encoding(path: Path, sample_bytes: int = 1 << 20) -> str:
    """The encoding of a text file, guessed by ``charset_normalizer`` from its first megabyte."""
    with path.open("rb") as fh:
        sample = fh.read(sample_bytes)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    best = from_bytes(sample).best()
    if best is None:
        raise EncodingError("cannot determine the text encoding; declare it in the spec", path=path)
    return canonical_encoding(best.encoding)


def transcode(src: Path, dst: Path, encoding: str, *, chunk_size: int = _CHUNK) -> None:
    """Copy ``src`` in ``encoding`` to ``dst`` in UTF-8, a chunk at a time; line ends are kept.

    Raises :class:`EncodingError` naming the line of the first byte that is not valid ``encoding``.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    with src.open("rb") as fin, dst.open("w", encoding="utf-8", newline="") as fout:
        while chunk := fin.read(chunk_size):
            try:
                fout.write(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                # "\n" is never part of a multi-byte GBK/GB18030/Big5 character: counting is safe
                at = line + chunk.count(b"\n", 0, max(exc.start, 0))
                bad = exc.object[exc.start : exc.start + 4]
                raise EncodingError(
                    f"expected {encoding}, found bytes {bad!r} that are not valid {encoding}",
                    path=src,
                    row=at,
                ) from exc
            line += chunk.count(b"\n")
        try:
            fout.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise EncodingError(
                f"expected {encoding}, the file ends inside a character", path=src, row=line
            ) from exc


def _csv_headers(path: Path, delimiter: str, header_row: int) -> tuple[str, ...]:
    """The header line of a UTF-8 CSV, read without decoding the rest of the file."""
    with path.open("rb") as fh:
        lines = [fh.readline() for _ in range(header_row)]
    try:
        line = lines[-1].decode("utf-8-sig" if header_row == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"expected UTF-8: {exc.reason}", path=path, row=header_row) from exc
    headers = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    if not any(h.strip() for h in headers):
        raise SourceError("no header line: the file is empty", path=path, row=header_row)
    return tuple(h.strip() for h in headers)


def _has_quote(path: Path) -> bool:
    """Whether the file holds a ``"`` at all (a memchr over the mapped file: fast)."""
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b'"') >= 0


def _check_headers(spec: SourceSpec, path: Path, headers: tuple[str, ...]) -> None:
    dupes = sorted({h for h in headers if headers.count(h) > 1})
    if dupes:
        raise SourceError(f"duplicate columns {dupes}", path=path, row=spec.header_row)
    missing = [h for h in spec.source_headers if h not in headers]
    if missing:
        raise SourceError(
            f"expected columns {missing} (for table {spec.table}), found {list(headers)}",
            path=path,
            row=spec.header_row,
        )


class ExportReader:
    """Reads the sources of one export folder, using ``workdir`` for transcoded copies.

    Reads each file once: two specs over one file (the survey's responses and scores) share it.
    """

    def __init__(self, export_dir: Path, workdir: Path) -> None:
        self.export_dir = export_dir
        self.workdir = workdir
        self._csv: dict[tuple[str, str], Path] = {}
        self._sheets: dict[tuple[str, str | None, int], tuple[tuple[str, ...], pa.Table]] = {}

    def path(self, spec: SourceSpec) -> Path:
        """The file of ``spec``; :class:`SourceError` if it is missing."""
        path = self.export_dir.joinpath(*spec.path.split("/"))
        if not path.is_file():
            raise SourceError(f"missing file (expected for table {spec.table})", path=path)
        return path

    def read(self, spec: SourceSpec) -> SourceRows:
        """The rows of ``spec``'s file, ready for :func:`crmlens.warehouse.loading.load_source`."""
        path = self.path(spec)
        if spec.format == "excel":
            headers, arrow = self._sheet(spec, path)
            _check_headers(spec, path, headers)
            return SourceRows(spec.path, headers, arrow=arrow)
        utf8 = self._utf8_copy(spec, path)
        headers = _csv_headers(utf8, spec.delimiter, spec.header_row)
        _check_headers(spec, path, headers)
        return SourceRows(
            spec.path,
            headers,
            csv_path=utf8,
            delimiter=spec.delimiter,
            header_line=spec.header_row,
            may_span_lines=_has_quote(utf8),
        )

    def _utf8_copy(self, spec: SourceSpec, path: Path) -> Path:
        """``path`` itself if it is UTF-8, else a transcoded copy (made once per encoding)."""
        encoding = detect_encoding(path) if spec.encoding == "auto" else spec.encoding
        encoding = canonical_encoding(encoding)
        if encoding in _UTF8 or encoding == "ascii":  # DuckDB skips a byte-order mark itself
            return path
        key = (spec.path, encoding)
        if key not in self._csv:
            out = self.workdir / f"{len(self._csv):03d}-{path.name}"
            transcode(path, out, encoding)
            self._csv[key] = out
        return self._csv[key]

    def _sheet(self, spec: SourceSpec, path: Path) -> tuple[tuple[str, ...], pa.Table]:
        key = (spec.path, spec.sheet, spec.header_row)
        if key not in self._sheets:
            self._sheets[key] = read_sheet(path, spec.sheet, spec.header_row)
        return self._sheets[key]


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
            out.append(_cell_text(row[i]) if i < len(row) else None)
    headers = tuple(name for _, name in named)
    arrays = [pa.array(col, pa.string()) for col in columns] + [pa.array(lines, pa.int64())]
    return headers, pa.Table.from_arrays(arrays, names=[*headers, "__line"])


def _data_rows(grid: list[list[Any]], header_row: int) -> Iterator[tuple[int, list[Any]]]:
    for index, row in enumerate(grid[header_row:], start=header_row + 1):
        if any(cell not in ("", None) for cell in row):
            yield index, row


def _cell_text(value: Any) -> str | None:
    """A cell as the text a CSV export would hold."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    return str(value)
