"""Sniff a source file: its format, encoding, delimiter, header row, sheets and first rows.

:func:`sniff` looks only at the start of a file (a sample of its bytes, the first rows of a sheet
or a Parquet file), so it is fast on any size. What it finds are guesses to show the user (``crmlens
ingest --dry-run``) and to prefill a :class:`~crmlens.ingest.spec.SourceSpec` with
:meth:`SniffResult.spec_options`; the readers then check every byte strictly.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from python_calamine import CalamineWorkbook

from crmlens.errors import SourceError
from crmlens.ingest.encoding import Detected, canonical_encoding, detect
from crmlens.ingest.formats import (
    cell_text,
    json_object,
    json_text,
    parquet_batches,
    parquet_headers,
    split_fields,
)
from crmlens.ingest.spec import WHITESPACE, Format

#: Bytes of a text file that sniffing decodes.
TEXT_SAMPLE = 1 << 16
#: Rows of a sheet or lines of a text file looked at to find the header and the delimiter.
SCAN_ROWS = 60
_DELIMITERS = (",", "\t", ";", "|")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
#: The format of a file by its suffix (text without a known suffix is ``csv``).
FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    **dict.fromkeys(_EXCEL_SUFFIXES, "excel"),
}


@dataclass(frozen=True)
class SniffResult:
    """What :func:`sniff` found; ``None`` where a field does not apply to the format."""

    path: Path
    format: Format
    #: Text formats: the encoding (a Python codec name) and the detector's confidence (0-1).
    encoding: str | None = None
    confidence: float | None = None
    #: CSV/TSV: one character or ``whitespace``.
    delimiter: str | None = None
    #: The line (text) or row (Excel) of the headers; 0 = the file has no header line.
    header_row: int = 1
    #: Excel: the sheet sniffed and all sheets of the workbook.
    sheet: str | None = None
    sheets: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    #: The first data rows as text (``None`` = empty), as many values as ``headers``.
    rows: tuple[tuple[str | None, ...], ...] = ()

    def spec_options(self) -> dict[str, object]:
        """The reading options as :class:`~crmlens.ingest.spec.SourceSpec` keyword arguments."""
        options: dict[str, object] = {"format": self.format}
        if self.format in ("csv", "tsv"):
            options |= {
                "encoding": self.encoding,
                "delimiter": self.delimiter,
                "header_row": self.header_row,
            }
        elif self.format == "jsonl":
            options["encoding"] = self.encoding
        elif self.format == "excel":
            options |= {"sheet": self.sheet, "header_row": self.header_row}
        return options


def guess_format(path: Path) -> Format:
    """The format of ``path`` from its leading bytes, else its suffix; text defaults to ``csv``.

    >>> guess_format(Path("orders.tsv")), guess_format(Path("events.ndjson"))
    ('tsv', 'jsonl')
    """
    head = b""
    if path.is_file():
        with path.open("rb") as fh:
            head = fh.read(8)
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # a zip (xlsx) or an OLE file (xls)
        return "excel"
    if head.startswith(b"PAR1"):
        return "parquet"
    return FORMAT_BY_SUFFIX.get(path.suffix.lower(), "csv")


def sniff(
    path: Path | str,
    *,
    rows: int = 20,
    format: Format | None = None,
    encoding: str = "auto",
    sheet: str | None = None,
) -> SniffResult:
    """Sniff ``path``; ``format``, ``encoding`` and ``sheet`` override what would be guessed.

    Raises :class:`~crmlens.errors.SourceError` (or its :class:`~crmlens.errors.EncodingError`)
    when the file is missing or cannot be read as ``format``.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError("missing file", path=path)
    fmt = format or guess_format(path)
    if fmt == "excel":
        return _sniff_excel(path, sheet, rows)
    if fmt == "parquet":
        return _sniff_parquet(path, rows)
    if fmt == "postgres":
        raise SourceError("a postgres source is a database, not a file", path=path)
    found = detect(path) if encoding == "auto" else Detected(canonical_encoding(encoding), 1.0)
    text = _head_text(path, found.encoding)
    if fmt == "jsonl":
        return _sniff_jsonl(path, found, text, rows)
    return _sniff_text(path, fmt, found, text, rows)


def _head_text(path: Path, encoding: str) -> str:
    """The first whole lines of the sample, decoded (a bad byte shows as U+FFFD here only)."""
    with path.open("rb") as fh:
        raw = fh.read(TEXT_SAMPLE)
        more = fh.read(1) != b""
    if more and b"\n" in raw:
        raw = raw[: raw.rfind(b"\n") + 1]
    return raw.decode(encoding, errors="replace")


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    return [len(split_fields(line, delimiter)) for line in lines]


def guess_delimiter(lines: list[str], preferred: str | None = None) -> str:
    """The character that splits most lines into the same number (≥ 2) of fields; else
    ``whitespace`` if runs of spaces do; else ``,``.

    Whitespace comes last because values often hold a space (``2021-03-05 10:21:00``).

    >>> guess_delimiter(["id;name", "1;王", "2;李"]), guess_delimiter([" 1  2 3", "4 5  6"])
    (';', 'whitespace')
    """

    def score(d: str) -> tuple[float, int]:
        counts = _field_counts(lines, d)
        if not counts:
            return 0.0, 0
        mode, freq = Counter(counts).most_common(1)[0]
        return (freq / len(counts), mode) if mode >= 2 else (0.0, 0)

    chars = [preferred] if preferred else []
    chars += [d for d in _DELIMITERS if d != preferred]
    best = max(chars, key=score)  # max keeps the first of equals: the preferred one
    if score(best)[0] >= 0.5:
        return best
    return WHITESPACE if score(WHITESPACE)[0] >= 0.5 else (preferred or ",")


def _looks_like_data(fields: list[str]) -> bool:
    """Whether every non-empty field is a number (a header has at least one word)."""
    values = [f.strip() for f in fields if f.strip()]
    return bool(values) and all(_is_number(v) for v in values)


def _is_number(value: str) -> bool:
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True


def _sniff_text(path: Path, fmt: Format, found: Detected, text: str, rows: int) -> SniffResult:
    lines = text.splitlines()[:SCAN_ROWS]
    content = [line for line in lines if line.strip()]
    delimiter = guess_delimiter(content, "\t" if fmt == "tsv" else None)
    counts = _field_counts(lines, delimiter)
    mode = Counter(c for c, line in zip(counts, lines, strict=True) if line.strip()).most_common(1)
    width = mode[0][0] if mode else 0
    header = next((i for i, c in enumerate(counts) if c >= width and width), 0)
    header_row = header + 1
    if lines and _looks_like_data(split_fields(lines[header], delimiter)):
        header_row = 0
    body = "\n".join(lines[header_row:] if header_row else lines[header:])
    parsed = _parse_rows(body, delimiter)
    if header_row:
        headers = tuple(f.strip() for f in split_fields(lines[header], delimiter))
    else:
        headers = tuple(f"column_{i + 1}" for i in range(width))
    sample = tuple(_fit(r, len(headers)) for r in parsed if any(f.strip() for f in r))[:rows]
    return SniffResult(
        path=path,
        format=fmt,
        encoding=found.encoding,
        confidence=found.confidence,
        delimiter=delimiter,
        header_row=header_row,
        headers=headers,
        rows=sample,
    )


def _parse_rows(body: str, delimiter: str) -> list[list[str]]:
    if delimiter == WHITESPACE:
        return [line.split() for line in body.splitlines()]
    return list(csv.reader(io.StringIO(body), delimiter=delimiter))


def _fit(row: list[str], width: int) -> tuple[str | None, ...]:
    values = [v if v.strip() else None for v in row[:width]]
    return tuple(values + [None] * (width - len(values)))


def _sniff_jsonl(path: Path, found: Detected, text: str, rows: int) -> SniffResult:
    records: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append(json_object(path, number, line))  # values as the reader will see them
        if len(records) >= max(rows, SCAN_ROWS):
            break
    headers = tuple(dict.fromkeys(k for r in records for k in r))
    sample = tuple(tuple(json_text(r.get(h)) for h in headers) for r in records[:rows])
    return SniffResult(
        path=path,
        format="jsonl",
        encoding=found.encoding,
        confidence=found.confidence,
        headers=headers,
        rows=sample,
    )


def _sniff_parquet(path: Path, rows: int) -> SniffResult:
    headers: tuple[str, ...] = ()
    sample: list[tuple[str | None, ...]] = []
    for names, batch in parquet_batches(path, batch_rows=max(rows, 1)):
        headers = names
        sample = [tuple(batch[h][i].as_py() for h in names) for i in range(batch.num_rows)]
        break
    else:
        headers = parquet_headers(path)
    return SniffResult(path=path, format="parquet", headers=headers, rows=tuple(sample[:rows]))


def _sniff_excel(path: Path, sheet: str | None, rows: int) -> SniffResult:
    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for unreadable files
        raise SourceError(f"cannot be read as an Excel workbook: {exc}", path=path) from exc
    names = tuple(book.sheet_names)
    if sheet is not None and sheet not in names:
        raise SourceError(f"expected a sheet {sheet!r}, found {list(names)}", path=path)
    chosen = sheet or (names[0] if names else None)
    if chosen is None:
        raise SourceError("the workbook has no sheets", path=path)
    grid: list[list[str | None]] = []
    for row in book.get_sheet_by_name(chosen).iter_rows():
        grid.append([cell_text(v) for v in row])
        if len(grid) >= SCAN_ROWS + rows:
            break
    header_row = guess_header_row(grid)
    headers: tuple[str, ...] = ()
    sample: list[tuple[str | None, ...]] = []
    if header_row:
        named = [(i, h.strip()) for i, h in enumerate(grid[header_row - 1]) if h and h.strip()]
        headers = tuple(h for _, h in named)
        for row in grid[header_row:]:
            if any(v is not None for v in row):
                sample.append(tuple(row[i] if i < len(row) else None for i, _ in named))
    return SniffResult(
        path=path,
        format="excel",
        header_row=header_row or 1,
        sheet=chosen,
        sheets=names,
        headers=headers,
        rows=tuple(sample[:rows]),
    )


def guess_header_row(grid: list[list[str | None]]) -> int:
    """The 1-based row of a sheet's headers: the first row as wide as the typical row whose
    cells are all words (title rows above a table have one cell); 0 for an empty sheet.

    >>> guess_header_row([["2021年调查"], [], ["编号", "门店", "得分"], ["Q1", "S01", "4"]])
    3
    """
    widths = [sum(v is not None for v in row) for row in grid[:SCAN_ROWS]]
    filled = [w for w in widths if w]
    if not filled:
        return 0
    width = Counter(filled).most_common(1)[0][0]
    wide = [i for i, w in enumerate(widths) if w >= width]
    for i in wide:
        if not _looks_like_data([v for v in grid[i] if v is not None]) and all(
            v is None or not _is_number(v) for v in grid[i]
        ):
            return i + 1
    return wide[0] + 1
